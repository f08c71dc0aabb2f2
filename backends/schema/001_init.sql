-- 001_init: users, paths, trips and trip members. utf8mb4 and InnoDB throughout (Galera needs InnoDB
-- and a primary key on every table). Every entity row has a `version`, bumped by each UPDATE.
-- IF NOT EXISTS: DDL is not transactional, so a file cut short by a crash must be safe to run again.
-- Owners and members are not foreign keys to users: a deleted user's paths and trips stay as history.

CREATE TABLE IF NOT EXISTS users (
    id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    login         VARCHAR(64)     NOT NULL,
    password_hash VARCHAR(255)    NOT NULL,
    first_name    VARCHAR(100)    NOT NULL,
    last_name     VARCHAR(100)    NOT NULL,
    email         VARCHAR(254)    NOT NULL,
    title         VARCHAR(100)    NOT NULL DEFAULT '',
    version       INT UNSIGNED    NOT NULL DEFAULT 1,
    created_at    DATETIME(6)     NOT NULL,
    updated_at    DATETIME(6)     NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_users_login (login),
    -- the name masks: last name (+ first name) prefix, or first name prefix alone
    KEY ix_users_last_first (last_name, first_name),
    KEY ix_users_first (first_name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS paths (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    owner_id    BIGINT UNSIGNED NOT NULL,
    start_point VARCHAR(200)    NOT NULL,
    end_point   VARCHAR(200)    NOT NULL,
    version     INT UNSIGNED    NOT NULL DEFAULT 1,
    created_at  DATETIME(6)     NOT NULL,
    updated_at  DATETIME(6)     NOT NULL,
    PRIMARY KEY (id),
    KEY ix_paths_start (start_point),
    KEY ix_paths_owner (owner_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS trips (
    id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    owner_id     BIGINT UNSIGNED NOT NULL,
    path_id      BIGINT UNSIGNED NOT NULL,
    name         VARCHAR(200)    NOT NULL,
    starts_at    DATETIME(6)     NOT NULL,
    finishes_at  DATETIME(6)     NOT NULL,
    member_count INT UNSIGNED    NOT NULL DEFAULT 0,
    version      INT UNSIGNED    NOT NULL DEFAULT 1,
    created_at   DATETIME(6)     NOT NULL,
    updated_at   DATETIME(6)     NOT NULL,
    PRIMARY KEY (id),
    KEY ix_trips_owner (owner_id),
    CONSTRAINT fk_trips_path FOREIGN KEY (path_id) REFERENCES paths (id),
    CONSTRAINT ck_trips_times CHECK (starts_at < finishes_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS trip_members (
    trip_id   BIGINT UNSIGNED NOT NULL,
    user_id   BIGINT UNSIGNED NOT NULL,
    joined_at DATETIME(6)     NOT NULL,
    PRIMARY KEY (trip_id, user_id),
    KEY ix_trip_members_user (user_id),
    CONSTRAINT fk_trip_members_trip FOREIGN KEY (trip_id) REFERENCES trips (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
