"""The id of one gateway request, sent back as ``x-request-id`` and kept in its metric row.

A caller (or the load balancer in front of the gateway) may send its own ``X-Request-Id``
to correlate its logs with ours; a well-formed one (1 to 64 letters, digits, ``.``,
``_``, ``:`` or ``-``, so it fits the metric row's column whole) is used as it is. Anything
else is ignored and the gateway makes one in OpenAI's style, ``gen-`` and 32 hex digits.
An incoming id is the caller's word, not a unique key: two requests may carry the same one.
"""

from __future__ import annotations

import re
import secrets

# Compiled once: this runs on every request.
_WELL_FORMED = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def new_request_id() -> str:
    # 128 random bits as a UUID4's hex would hold (less its six fixed bits), without
    # building the UUID object.
    return "gen-" + secrets.token_hex(16)


def request_id_for(incoming: str | None) -> str:
    """The caller's id when it is well-formed, a new one otherwise."""
    if incoming and _WELL_FORMED.fullmatch(incoming):
        return incoming
    return new_request_id()
