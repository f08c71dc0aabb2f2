"""The JSON bodies the users service accepts."""
from __future__ import annotations

import re

from backends.common.validation import Email, Schema, Str

# Printable text: control characters in a name only ever break logs and terminals.
_TEXT = re.compile(r"[^\x00-\x1f\x7f]*")

LOGIN = Str(3, 64, re.compile(r"[A-Za-z0-9_.-]+"), "3..64 letters, digits, '_', '.' or '-'")
PASSWORD = Str(8, 128)
NAME = Str(1, 100, _TEXT, "printable text")
TITLE = Str(0, 100, _TEXT, "printable text")

PROFILE: Schema = {"first_name": NAME, "last_name": NAME, "email": Email(), "title": TITLE}
REGISTER: Schema = {"login": LOGIN, "password": PASSWORD, **PROFILE}
# PUT replaces every profile field (the password only when given); PATCH sends any subset.
UPDATE: Schema = {**PROFILE, "password": PASSWORD}
CREDENTIALS: Schema = {"login": Str(1, 64), "password": Str(1, 128)}
