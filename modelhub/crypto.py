"""Encryption of secrets at rest and hashing of client keys.

Provider credentials are encrypted with Fernet (AES-128-CBC + HMAC-SHA256) under
``FIELD_ENCRYPTION_KEY``. The setting may hold several comma-separated keys: the first
encrypts, every one decrypts, so keys can be rotated without downtime.

Client keys are random 256-bit tokens, so a plain SHA-256 digest is enough to store them:
there is nothing to brute-force, and the gateway can look a key up by digest in one query.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

CLIENT_KEY_PREFIX = "mh-"


class SecretDecryptionError(RuntimeError):
    """A stored secret could not be decrypted with the configured keys."""


@lru_cache(maxsize=4)
def _fernet(key_setting: str) -> MultiFernet:
    keys = [k.strip() for k in key_setting.split(",") if k.strip()]
    try:
        return MultiFernet([Fernet(k) for k in keys])
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEY must hold one or more url-safe base64 32-byte Fernet keys."
        ) from exc


def encrypt_secret(plaintext: str) -> str:
    return _fernet(settings.FIELD_ENCRYPTION_KEY).encrypt(plaintext.encode()).decode()


def decrypt_secret(token: str) -> str:
    try:
        return _fernet(settings.FIELD_ENCRYPTION_KEY).decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretDecryptionError(
            "The stored secret cannot be decrypted with the configured keys."
        ) from exc


def mask_secret(plaintext: str) -> str:
    """A hint that identifies a secret without revealing it: ``sk-...a1b2``."""
    if len(plaintext) < 12:
        return "..."
    return f"{plaintext[:3]}...{plaintext[-4:]}"


def hash_client_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def generate_client_key() -> tuple[str, str, str]:
    """Return ``(raw_key, prefix, digest)``; the raw key is shown once and never stored."""
    raw = CLIENT_KEY_PREFIX + secrets.token_urlsafe(32)
    return raw, raw[: len(CLIENT_KEY_PREFIX) + 8], hash_client_key(raw)


def constant_time_equals(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
