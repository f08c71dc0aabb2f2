-- 002_token_version: a per-user token version, carried by every token as its `tv` claim. A password change
-- bumps it, which voids every token issued before; deleting the user (no row) voids them all.
ALTER TABLE users ADD COLUMN IF NOT EXISTS token_version INT UNSIGNED NOT NULL DEFAULT 1 AFTER password_hash;
