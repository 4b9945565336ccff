"""Validators for text that reaches database queries from outside (query strings, paths).

PostgreSQL text cannot hold a NUL character and the driver cannot encode an unpaired
surrogate, so either would fail the query with a 500. Bytes that are not UTF-8 arrive
decoded as U+FFFD (Django decodes query strings, and ASGI servers paths, with
``errors="replace"``); a parameter made of them is no text a person meant, and it is
refused with the rest rather than searched for.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError

REPLACEMENT_CHARACTER = "\ufffd"


def unusable_text_reason(value: str) -> str | None:
    """Why ``value`` cannot be used as query text, or None when it can."""
    if "\x00" in value:
        return "must not contain NUL characters"
    if value.isascii():
        return None
    if REPLACEMENT_CHARACTER in value:
        return "must be valid UTF-8"
    try:
        value.encode()
    except UnicodeEncodeError:
        return "must not contain unpaired surrogates"
    return None


def validate_query_text(value: object) -> None:
    """A form field validator: refuses text that could not be queried."""
    if isinstance(value, str):
        reason = unusable_text_reason(value)
        if reason is not None:
            raise ValidationError(f"This value {reason}.", code="invalid_text")
