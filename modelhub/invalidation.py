"""Tell the gateway's caches that an organization's keys, rules or providers changed.

Each gateway process caches client keys, routing rules, plans and model lists so that a
request costs no database round trip. Whatever writes one of those rows calls
:func:`publish_tenant_change`; once the transaction commits, the change is

- sent to the receivers of :data:`tenant_changed` in this process (the gateway's
  runtime connects one), and
- published on a Redis channel when ``REDIS_URL`` is set, which every gateway process
  subscribes to, so the other workers and machines drop their entries too.

A failed publish is logged and never fails the write: the caches' time limits still
bound how long a change can go unseen.

modelhub imports no other app, so the gateway listens here instead of being called.
"""

from __future__ import annotations

import json
import logging
import threading
from functools import partial

from django.conf import settings
from django.db import transaction
from django.dispatch import Signal

logger = logging.getLogger(__name__)

# Sent with ``organization_id`` (None: the global catalog changed, which concerns every
# organization) and ``client_key_hash`` (None unless a single key changed).
tenant_changed = Signal()

_client_lock = threading.Lock()
_client = None
_client_url = None


def channel_name(url: str) -> str:
    """The pub/sub channel of a Redis URL's database.

    Pub/sub ignores the database number, so deployments that share a Redis server on
    different databases would hear each other; the channel name carries the number.
    """
    from redis.connection import parse_url

    database = parse_url(url).get("db", 0) if url else 0
    return f"modelhub:tenant-changes:{database}"


def encode(organization_id: int | None, client_key_hash: str | None) -> str:
    return json.dumps({"organization": organization_id, "client_key_hash": client_key_hash})


def decode(payload: bytes | str) -> tuple[int | None, str | None]:
    data = json.loads(payload)
    organization_id = data.get("organization")
    client_key_hash = data.get("client_key_hash")
    if organization_id is not None and not isinstance(organization_id, int):
        raise ValueError("organization must be an integer or null")
    if client_key_hash is not None and not isinstance(client_key_hash, str):
        raise ValueError("client_key_hash must be a string or null")
    return organization_id, client_key_hash


def _redis_client():
    """One small client per process; short timeouts, so an unreachable Redis delays a
    write by a fraction of a second, not a TCP timeout."""
    global _client, _client_url
    url = settings.REDIS_URL
    with _client_lock:
        if _client is None or _client_url != url:
            import redis

            _client = redis.Redis.from_url(
                url,
                socket_timeout=settings.TENANT_CHANGES_PUBLISH_TIMEOUT,
                socket_connect_timeout=settings.TENANT_CHANGES_PUBLISH_TIMEOUT,
            )
            _client_url = url
        return _client


def deliver(organization_id: int | None, client_key_hash: str | None = None) -> None:
    """Notify this process's receivers, then the other processes through Redis."""
    for _receiver, error in tenant_changed.send_robust(
        sender=None, organization_id=organization_id, client_key_hash=client_key_hash
    ):
        if error is not None:
            logger.error("A cache receiver failed: %r", error, exc_info=error)
    if not settings.REDIS_URL:
        return
    try:
        _redis_client().publish(
            channel_name(settings.REDIS_URL), encode(organization_id, client_key_hash)
        )
    except Exception as exc:
        # Other workers keep their entries until the caches' time limit ends them.
        logger.warning(
            "Could not publish a change of organization %s to Redis: %s", organization_id, exc
        )


def publish_tenant_change(organization_id: int | None, *, client_key_hash: str | None = None):
    """Announce, once the current transaction commits, that the gateway must reload what
    it caches for ``organization_id`` (``None``: every organization) or for one key."""
    transaction.on_commit(partial(deliver, organization_id, client_key_hash))
