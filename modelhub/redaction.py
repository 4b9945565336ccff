"""Scrubbing secrets out of text that came from an upstream provider.

Some providers quote the credential back in their error messages ("Incorrect API key
provided: sk-...", or the whole ``Authorization`` header). That text is shown to the
client, logged, and stored in ``ProviderCredential.last_error`` and
``ModelMetric.error_message``, which every member of the organization can read, so every
known secret of the call is replaced before the text goes anywhere, and stored error text
is bounded.

The gateway scrubs where upstream text enters it; modelhub scrubs again where it stores
``last_error`` and where the API returns stored error text (rows written before the
gateway scrubbed may still hold a key).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from modelhub.crypto import SecretDecryptionError, decrypt_secret

# The longest error text the platform stores or returns for one failure.
MAX_ERROR_LENGTH = 1000
REDACTED = "[redacted]"

# A key's vendor prefix ("sk-", "sk-ant-api03-", "gsk_", "xai-") is short; what follows it
# is the random part, which an upstream may quote on its own. Suffixes after a separator
# near the start are scrubbed too, as long as they are long enough to be the secret
# itself rather than a common word.
_PREFIX_SPAN = 24
_MIN_VARIANT_LENGTH = 12
_SEPARATORS = "-_."
_SCHEMES = ("bearer ", "basic ", "token ")


def secret_variants(secret: str) -> set[str]:
    """The forms in which ``secret`` may come back: itself, without a scheme such as
    ``Bearer``, and its prefix-free tails."""
    secret = (secret or "").strip()
    for scheme in _SCHEMES:
        if secret.lower().startswith(scheme):
            secret = secret[len(scheme) :].strip()
    if not secret:
        return set()
    variants = {secret}
    for index, char in enumerate(secret[:_PREFIX_SPAN]):
        if char in _SEPARATORS:
            tail = secret[index + 1 :]
            if len(tail) >= _MIN_VARIANT_LENGTH:
                variants.add(tail)
    return variants


def secret_pattern(secrets: Iterable[str]) -> re.Pattern[str] | None:
    """One case-insensitive pattern matching every variant of ``secrets``, longest first
    (so a secret is replaced whole rather than leaving its prefix behind)."""
    variants: set[str] = set()
    for secret in secrets:
        variants |= secret_variants(secret)
    if not variants:
        return None
    ordered = sorted(variants, key=len, reverse=True)
    return re.compile("|".join(re.escape(variant) for variant in ordered), re.IGNORECASE)


def bounded(text: str, limit: int = MAX_ERROR_LENGTH) -> str:
    """``text`` cut to ``limit`` characters, marked when it was cut."""
    if len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def scrub(text: str, secrets: Iterable[str] = (), *, pattern: re.Pattern[str] | None = None) -> str:
    """``text`` with every variant of ``secrets`` (or ``pattern``'s matches) replaced,
    then bounded."""
    if not text:
        return ""
    pattern = pattern or secret_pattern(secrets)
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    return bounded(text)


@lru_cache(maxsize=1024)
def _credential_pattern(encrypted_secret: str) -> re.Pattern[str] | None:
    try:
        return secret_pattern([decrypt_secret(encrypted_secret)])
    except SecretDecryptionError:
        return None


def scrub_for_credential(text: str, credential: object) -> str:
    """``text`` without ``credential``'s own secret, bounded; ``credential`` may be None
    (the text is then only bounded)."""
    if not text:
        return ""
    encrypted = getattr(credential, "encrypted_secret", "")
    return scrub(text, pattern=_credential_pattern(encrypted) if encrypted else None)
