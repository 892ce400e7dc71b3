"""API token secrets: generation and hashing (the secret itself is never stored)."""

import hashlib
import secrets

TOKEN_PREFIX = "fs_"  # noqa: S105 - a public prefix, not a secret


def generate_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
