"""Secrets sent by email: 256 random bits, stored only as SHA-256, compared in constant time.

A link carries `<row id>.<secret>`. Lookup is by id (so the database never compares
secrets); the stored hash is then compared with `hmac.compare_digest`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

SECRET_BYTES = 32  # 256 bits
_TOKEN = re.compile(r"^(\d{1,19})\.([A-Za-z0-9_-]{43})$")


def new_secret() -> tuple[str, bytes]:
    secret = secrets.token_urlsafe(SECRET_BYTES)
    return secret, hash_secret(secret)


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def compose(row_id: int, secret: str) -> str:
    return f"{row_id}.{secret}"


def parse(token: str | None) -> tuple[int, str] | None:
    if not token or len(token) > 80:
        return None
    match = _TOKEN.match(token)
    if not match:
        return None
    row_id = int(match.group(1))
    if not 0 < row_id < 2**63:
        return None
    return row_id, match.group(2)


def matches(secret: str, stored_hash: bytes) -> bool:
    return hmac.compare_digest(hash_secret(secret), bytes(stored_hash))
