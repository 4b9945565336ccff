"""Drop cached keys, rules, plans and model lists as soon as their rows change.

modelhub announces every write the gateway caches (see :mod:`modelhub.invalidation`):
in this process through the ``tenant_changed`` signal, and to every process through a
Redis channel when ``REDIS_URL`` is set. One :class:`ChangeListener` per runtime hears
both and applies them on the runtime's event loop.

The subscriber is a single task on that loop. While it is not subscribed (at start-up,
or when Redis goes away) notices from other processes may be missed, so every cache
entry then lives at most ``GATEWAY_CACHE_DISCONNECTED_SECONDS``; when it subscribes
again it drops everything it holds, then entries keep their own TTLs until the next
disconnection. It reconnects with exponential backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time

from django.conf import settings

from modelhub.invalidation import channel_name, decode, tenant_changed

logger = logging.getLogger(__name__)

BACKOFF_FIRST_SECONDS = 0.1
BACKOFF_MAX_SECONDS = 5.0
# Without traffic the subscriber pings Redis this often; a connection that has not
# answered for three intervals is taken as lost (a silent network failure).
HEALTH_CHECK_SECONDS = 2.0
# How long a shutdown waits for the subscriber to stop, cancelling it again meanwhile.
CLOSE_SECONDS = 2.0


class ChangeListener:
    """Applies announced changes to one runtime's caches."""

    def __init__(self, runtime):
        self.runtime = runtime
        self.url = settings.REDIS_URL
        self.task: asyncio.Task | None = None
        self.subscribed = False
        self.delay = BACKOFF_FIRST_SECONDS
        self.dispatch_uid = f"gateway-runtime-{id(self)}"

    def start(self) -> None:
        tenant_changed.connect(self._receive, weak=False, dispatch_uid=self.dispatch_uid)
        if self.url:
            self.runtime.cap_cache_ttl(settings.GATEWAY_CACHE_DISCONNECTED_SECONDS)
            self.task = self.runtime.loop.create_task(self._listen())

    @property
    def listening(self) -> bool:
        """Whether every notice reaches this runtime (in-process only without Redis)."""
        return not self.url or self.subscribed

    def _receive(self, sender, organization_id=None, client_key_hash=None, **kwargs) -> None:
        # Writes run on other threads (Django's sync views, the gateway's database
        # threads); the caches belong to the event loop.
        with contextlib.suppress(RuntimeError):  # the loop has closed
            self.runtime.loop.call_soon_threadsafe(
                self.runtime.apply_change, organization_id, client_key_hash
            )

    async def _listen(self) -> None:
        import redis.asyncio as redis

        channel = channel_name(self.url)
        self.delay = BACKOFF_FIRST_SECONDS
        while True:
            client = redis.Redis.from_url(
                self.url,
                socket_connect_timeout=HEALTH_CHECK_SECONDS,
                socket_keepalive=True,
                # Named, so an operator can tell the subscribers apart in CLIENT LIST.
                client_name=f"modelhub-gateway-{os.getpid()}",
            )
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(channel)
                await self._read(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Loud once, then quiet while Redis stays away.
                log = logger.warning if self.delay == BACKOFF_FIRST_SECONDS else logger.debug
                log(
                    "Cache invalidation: no Redis subscription (%s); entries live at most "
                    "%s s; retrying in %.1f s",
                    exc,
                    settings.GATEWAY_CACHE_DISCONNECTED_SECONDS,
                    self.delay,
                )
            finally:
                self._set_subscribed(False)
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                with contextlib.suppress(Exception):
                    await client.aclose()
            await asyncio.sleep(self.delay)
            self.delay = min(self.delay * 2, BACKOFF_MAX_SECONDS)

    async def _read(self, pubsub) -> None:
        heard_at = time.monotonic()
        pinged_at = heard_at
        while True:
            message = await pubsub.get_message(timeout=HEALTH_CHECK_SECONDS)
            now = time.monotonic()
            if message is not None:
                heard_at = now
                self._handle(message)
            elif now - heard_at > 3 * HEALTH_CHECK_SECONDS:
                raise ConnectionError("no answer to ping")
            if now - pinged_at >= HEALTH_CHECK_SECONDS:
                pinged_at = now
                await pubsub.ping()

    def _handle(self, message: dict) -> None:
        kind = message.get("type")
        if kind == "subscribe":
            # Subscribed from here on: what changed before is unknown, so start afresh.
            self._set_subscribed(True)
        elif kind == "message":
            try:
                organization_id, client_key_hash = decode(message["data"])
            except (ValueError, TypeError, KeyError) as exc:
                logger.warning("Cache invalidation: ignored a malformed notice (%s)", exc)
                return
            self.runtime.apply_change(organization_id, client_key_hash)

    def _set_subscribed(self, subscribed: bool) -> None:
        if subscribed == self.subscribed:
            return
        self.subscribed = subscribed
        # Entries stored on either side of the change may have missed a notice.
        self.runtime.forget_everything()
        if subscribed:
            self.delay = BACKOFF_FIRST_SECONDS
            self.runtime.cap_cache_ttl(None)
            logger.info("Cache invalidation: subscribed to Redis")
        else:
            self.runtime.cap_cache_ttl(settings.GATEWAY_CACHE_DISCONNECTED_SECONDS)

    async def close(self) -> None:
        tenant_changed.disconnect(dispatch_uid=self.dispatch_uid)
        task = self.task
        if task is None:
            return
        # redis-py can lose a cancellation: one that arrives as its own read timeout
        # expires is taken for the timeout, and the subscriber's next read waits on the
        # socket for ever (a worker stopped by SIGTERM was seen waiting so for an hour).
        # It is cancelled again until it ends, for CLOSE_SECONDS at most.
        deadline = time.monotonic() + CLOSE_SECONDS
        while not task.done():
            if time.monotonic() >= deadline:
                logger.warning(
                    "Cache invalidation: the Redis subscriber did not stop within %s s; "
                    "shutting down without it",
                    CLOSE_SECONDS,
                )
                return
            task.cancel()
            await asyncio.wait({task}, timeout=0.1)
        with contextlib.suppress(asyncio.CancelledError):
            await task
