"""JSON on the gateway's hot path: orjson, with the standard library's behaviour kept.

Every request is parsed once and encoded once for its upstream, and answers are parsed
to check and account them; orjson does each several times faster than ``json``, which
counts with large prompts. Where the two disagree the standard library decides, so
what the gateway accepts and sends does not change: input orjson refuses (integers
beyond 64 bits, lone surrogates, nesting deeper than orjson's limit) is parsed again
by ``json``, which accepts it or raises the error callers already handle, and a value
orjson cannot encode is encoded by ``json``. orjson writes UTF-8 without escaping
non-ASCII characters and without spaces: the same JSON, fewer bytes.

One difference is deliberate: a request body with ``NaN`` or ``Infinity`` (not JSON;
orjson would encode them as ``null``, changing the caller's value) is refused.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value.")


def loads(data: bytes | str, *, allow_nan: bool = True) -> Any:
    """Parse ``data`` as ``json.loads`` does (same results, same errors); with
    ``allow_nan=False``, ``NaN`` and ``Infinity`` raise ``ValueError``."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        if allow_nan:
            return json.loads(data)
        return json.loads(data, parse_constant=_refuse_constant)


def dumps(value: Any) -> bytes:
    """Encode ``value`` as JSON bytes, in an object of its own size.

    orjson returns its output in the buffer it grew while writing, allocated at up to
    about ten times the JSON's length (4 KB for a short body, 2 MB for 200 KB; only the
    pages written are resident). Upstream bodies are what this encodes, each held for
    the whole of its request, streams included, so the output is copied into a bytes
    object of its own length: 0.3-0.5 µs a body.
    """
    try:
        return bytes(memoryview(orjson.dumps(value)))
    except TypeError:
        return json.dumps(value).encode()


def encoded_size(value: Any) -> int:
    """The bytes of ``value`` as compact UTF-8 JSON, as orjson writes it.

    What orjson cannot encode (a lone surrogate, an integer beyond 64 bits) is measured
    as the standard library's ASCII JSON, whose escapes are never shorter than the UTF-8
    they stand for: the size stays an upper bound of the text's bytes.
    """
    try:
        return len(orjson.dumps(value))
    except TypeError:
        return len(json.dumps(value, separators=(",", ":")))
