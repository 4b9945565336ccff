"""Per-process state of the gateway: the pooled HTTP client, the database threads, caches.

One :class:`Runtime` lives per process (per event loop). The lifespan wrapper in
``gateway.asgi`` starts it when the server starts and closes it on shutdown, which
flushes the metric rows still queued; without lifespan events it starts on first use
and an exit hook writes what is left.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import gc
import logging
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from typing import Any, TypeVar

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, connections

from gateway import checks
from gateway.httpclient import HTTPClient

logger = logging.getLogger(__name__)

T = TypeVar("T")
MISSING = object()
# The last part of an entry's life in which reading it loads it again (see TTLCache).
REFRESH_AHEAD = 0.25


class TTLCache:
    """A small dict whose entries expire ``ttl`` seconds after they were stored.

    Writes elsewhere drop entries early (:meth:`discard`, :meth:`discard_where`,
    :meth:`clear`); a load that was already running then is not stored, since it may
    have read the rows as they were before the write. ``max_ttl`` caps every TTL while
    those notices may be missed (see :mod:`gateway.invalidation`).

    An entry read in the last quarter of its life is loaded again in the background
    (:meth:`get_or_load`) while the reader gets it as it is: under steady traffic no
    request waits for a reload when an entry expires. A plan's reload every two seconds
    (a query on a database thread) was a request's 12-20 ms every two seconds.
    """

    def __init__(self, ttl: float, maxsize: int = 10_000):
        self.ttl = ttl
        self.maxsize = maxsize
        self.max_ttl: float | None = None
        # key -> (expires, refresh from, value)
        self._data: dict[Any, tuple[float, float, Any]] = {}
        self._loading: dict[Any, asyncio.Future] = {}
        self._generation = 0

    def get(self, key, default=MISSING):
        entry = self._live_entry(key)
        return default if entry is None else entry[1]

    def _live_entry(self, key) -> tuple[float, Any] | None:
        """(refresh from, value) of an entry that has not expired; an expired one goes."""
        entry = self._data.get(key)
        if entry is None:
            return None
        expires, refresh_from, value = entry
        if expires < time.monotonic():
            self._data.pop(key, None)
            return None
        return refresh_from, value

    def set(self, key, value, ttl: float | None = None) -> None:
        if len(self._data) >= self.maxsize:
            self._data.clear()
        ttl = self.ttl if ttl is None else ttl
        if self.max_ttl is not None:
            ttl = min(ttl, self.max_ttl)
        now = time.monotonic()
        self._data[key] = (now + ttl, now + ttl * (1 - REFRESH_AHEAD), value)

    def _invalidate(self) -> None:
        # Loads in flight finish for their callers but are not stored, and later misses
        # start a fresh load instead of joining one that read old rows.
        self._generation += 1
        self._loading.clear()

    def discard(self, key) -> None:
        self._data.pop(key, None)
        self._invalidate()

    def discard_where(self, predicate: Callable[[Any, Any], bool]) -> None:
        """Drop the entries for which ``predicate(key, value)`` is true."""
        for key in [key for key, (_, _, value) in self._data.items() if predicate(key, value)]:
            del self._data[key]
        self._invalidate()

    def clear(self) -> None:
        self._data.clear()
        self._invalidate()

    async def get_or_load(
        self,
        key,
        load: Callable[[], Coroutine[Any, Any, T]],
        ttl: Callable[[T], float] | None = None,
    ) -> T:
        """The cached value, or the result of ``load()``; concurrent misses of one key share
        a single load. Without this, every request in flight when an entry expires would
        run the same database work at once. An entry near its end is returned as it is
        and loaded again in the background."""
        entry = self._live_entry(key)
        if entry is not None:
            refresh_from, value = entry
            if time.monotonic() >= refresh_from and key not in self._loading:
                # Its errors are the next reader's, who loads it again once expired.
                self._start_load(key, load, ttl)
            return value
        pending = self._loading.get(key)
        if pending is None:
            pending = self._start_load(key, load, ttl)
        # shield(): one caller giving up (a client disconnect) must not cancel the others.
        return await asyncio.shield(pending)

    def _start_load(
        self,
        key,
        load: Callable[[], Coroutine[Any, Any, T]],
        ttl: Callable[[T], float] | None,
    ) -> asyncio.Future:
        pending = asyncio.ensure_future(load())
        self._loading[key] = pending
        generation = self._generation

        def store(done: asyncio.Future) -> None:
            if self._loading.get(key) is done:
                del self._loading[key]
            if generation != self._generation:
                return
            if not done.cancelled() and done.exception() is None:
                result = done.result()
                self.set(key, result, ttl(result) if ttl else None)

        pending.add_done_callback(store)
        return pending


def _run_db_job(fn: Callable[..., T], args, kwargs) -> T:
    try:
        return fn(*args, **kwargs)
    except (InterfaceError, OperationalError):
        # A broken connection is dropped here and reopened by the next job.
        connection.close()
        raise


class Runtime:
    """The gateway's per-process resources, bound to one event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        from gateway.accounting import MetricRecorder
        from gateway.invalidation import ChangeListener
        from gateway.limits import build_limiter

        self.loop = loop
        self.closed = False
        # The ORM is synchronous: its calls run on a few long-lived threads, each keeping
        # its own connection, instead of a fresh thread (and connection) per request.
        self.db_threads = settings.GATEWAY_DB_THREADS
        self.db_executor = ThreadPoolExecutor(
            max_workers=self.db_threads, thread_name_prefix="gateway-db"
        )
        from gateway.upstreams import PolicyResolver

        # Every address an upstream host resolves to passes the outbound policy. One
        # client serves every tenant, and it keeps no cookies: those an upstream sets (a
        # CDN's, say) would go back with other tenants' requests.
        self.upstreams = HTTPClient(
            resolve=PolicyResolver().resolve,
            limit=settings.GATEWAY_UPSTREAM_MAX_CONNECTIONS,
            keepalive=settings.GATEWAY_UPSTREAM_KEEPALIVE_SECONDS,
            dns_ttl=300,
            loop=loop,
        )
        self.keys = TTLCache(settings.GATEWAY_KEY_CACHE_SECONDS)
        self.rules = TTLCache(settings.GATEWAY_PLAN_CACHE_SECONDS)
        self.plans = TTLCache(settings.GATEWAY_PLAN_CACHE_SECONDS)
        self.model_lists = TTLCache(settings.GATEWAY_MODEL_LIST_CACHE_SECONDS)
        self.secrets: dict[tuple[int, str], str] = {}
        self.background: set[asyncio.Task] = set()
        self.limiter = build_limiter(self)
        self.recorder = MetricRecorder(self)
        self.recorder.start()
        self.changes = ChangeListener(self)
        self.changes.start()

    async def db(self, fn: Callable[..., T], *args, **kwargs) -> T:
        """Run an ORM call on the database threads."""
        return await self.loop.run_in_executor(self.db_executor, _run_db_job, fn, args, kwargs)

    def spawn(self, coroutine: Coroutine) -> asyncio.Task:
        """Run work after the response without losing the task to garbage collection."""
        task = self.loop.create_task(coroutine)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return task

    def forget_plans(self) -> None:
        """Drop cached plans after a credential's health or quota changed."""
        self.plans.clear()

    @property
    def caches(self) -> tuple[TTLCache, ...]:
        return (self.keys, self.rules, self.plans, self.model_lists)

    def forget_everything(self) -> None:
        for cache in self.caches:
            cache.clear()

    def cap_cache_ttl(self, seconds: float | None) -> None:
        """Bound how long entries live (None: their own TTLs) while changes may go unseen."""
        for cache in self.caches:
            cache.max_ttl = seconds

    def apply_change(self, organization_id: int | None, client_key_hash: str | None) -> None:
        """Drop what a write to an organization's rows (or to one key) makes stale."""
        if organization_id is None:
            # The global catalog: every organization's plans and model lists.
            self.rules.clear()
            self.plans.clear()
            self.model_lists.clear()
            return

        def of_organization(key, value) -> bool:
            return key[0] == organization_id

        self.model_lists.discard_where(of_organization)
        if client_key_hash is not None:
            self.keys.discard(client_key_hash)
            return
        self.rules.discard(organization_id)
        self.plans.discard_where(of_organization)
        # Key snapshots carry the organization; a deleted one takes its keys with it.
        self.keys.discard_where(
            lambda digest, info: info is not None and info.organization.pk == organization_id
        )

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.background:
            await asyncio.wait(list(self.background), timeout=settings.GATEWAY_SHUTDOWN_TIMEOUT)
        await self.changes.close()
        await self.recorder.close()
        await self.limiter.close()
        if self.background:
            # Settles written by that close may have crossed webhook thresholds.
            await asyncio.wait(list(self.background), timeout=settings.GATEWAY_SHUTDOWN_TIMEOUT)
        await self.upstreams.close()
        await self.loop.run_in_executor(None, self._close_db_threads)

    def _close_db_threads(self) -> None:
        # Each thread closes its own connection (connections are thread-local), so the
        # database sees no idle sessions left behind; the barrier puts one job on each.
        barrier = threading.Barrier(self.db_threads, timeout=5)

        def close_connection():
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait()
            connections.close_all()

        futures = [self.db_executor.submit(close_connection) for _ in range(self.db_threads)]
        wait_futures(futures, timeout=10)
        self.db_executor.shutdown(wait=True)


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()
# The switch interval and the collector's thresholds before startup, restored at shutdown.
_process_tuning: tuple[float, tuple[int, ...]] | None = None
YOUNG_COLLECTION_THRESHOLD = 10_000


def current() -> Runtime:
    """The runtime of the running event loop, started on first use."""
    global _runtime
    loop = asyncio.get_running_loop()
    runtime = _runtime
    if runtime is not None and runtime.loop is loop and not runtime.closed:
        return runtime
    with _runtime_lock:
        if _runtime is None or _runtime.loop is not loop or _runtime.closed:
            _runtime = Runtime(loop)
        return _runtime


async def startup() -> None:
    checks.warn_at_startup()
    current()
    # Everything loaded so far (Django, the apps, the URL and settings objects: some
    # hundred thousand objects) lives as long as the process. Left to the collector, each
    # full collection walks all of it on the event loop, stalling every request in
    # flight for tens of milliseconds every second or two under load; frozen, they are
    # never walked again, and collections only see what requests leave behind.
    gc.freeze()
    global _process_tuning
    if _process_tuning is None:
        _process_tuning = (sys.getswitchinterval(), gc.get_threshold())
    # The metric writer and the other database threads share the interpreter with the
    # event loop: whenever one of them runs Python, the loop waits up to the switch
    # interval for its turn (5 ms by default), and the requests in flight with it. A
    # flush of 500 metric rows holds the interpreter some 20 ms in all; in turns of at
    # most 1 ms, a request in flight during it pays at most a few, not tens.
    sys.setswitchinterval(settings.GATEWAY_SWITCH_INTERVAL_MS / 1000)
    # A young collection comes each time the objects the collector tracks have grown by
    # the threshold (allocations less deallocations): under load, at the default of 700,
    # one every thirty-odd requests, walking the objects of every request in flight and
    # promoting those still alive into the older generations, whose collections follow
    # in turn. At 10,000 all of them run some fourteen times less often, for at most
    # 10,000 more objects awaiting collection; bench/instructions.py counted 3% fewer
    # instructions a request.
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *_process_tuning[1][1:])


async def shutdown() -> None:
    global _runtime
    runtime = _runtime
    if runtime is None or runtime.loop is not asyncio.get_running_loop():
        return
    try:
        await runtime.close()
    finally:
        with _runtime_lock:
            if _runtime is runtime:
                _runtime = None
        # Collectable again, for a process that goes on (an embedding server, tests).
        gc.unfreeze()
        _restore_process_tuning()


def _restore_process_tuning() -> None:
    global _process_tuning
    if _process_tuning is not None:
        switch_interval, threshold = _process_tuning
        sys.setswitchinterval(switch_interval)
        gc.set_threshold(*threshold)
        _process_tuning = None


@atexit.register
def _write_leftover_metrics() -> None:
    """Without a lifespan shutdown (a server that sends none), write what is queued."""
    runtime = _runtime
    if runtime is not None and not runtime.closed:
        runtime.recorder.write_pending_sync()
