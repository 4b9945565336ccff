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
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from typing import Any, TypeVar

import aiohttp
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, connections

from gateway import checks

logger = logging.getLogger(__name__)

T = TypeVar("T")
MISSING = object()


class TTLCache:
    """A small dict whose entries expire ``ttl`` seconds after they were stored."""

    def __init__(self, ttl: float, maxsize: int = 10_000):
        self.ttl = ttl
        self.maxsize = maxsize
        self._data: dict[Any, tuple[float, Any]] = {}
        self._loading: dict[Any, asyncio.Future] = {}

    def get(self, key, default=MISSING):
        entry = self._data.get(key)
        if entry is None:
            return default
        expires, value = entry
        if expires < time.monotonic():
            self._data.pop(key, None)
            return default
        return value

    def set(self, key, value, ttl: float | None = None) -> None:
        if len(self._data) >= self.maxsize:
            self._data.clear()
        self._data[key] = (time.monotonic() + (self.ttl if ttl is None else ttl), value)

    def clear(self) -> None:
        self._data.clear()
        self._loading.clear()

    async def get_or_load(
        self,
        key,
        load: Callable[[], Coroutine[Any, Any, T]],
        ttl: Callable[[T], float] | None = None,
    ) -> T:
        """The cached value, or the result of ``load()``; concurrent misses of one key share
        a single load. Without this, every request in flight when an entry expires would
        run the same database work at once."""
        value = self.get(key)
        if value is not MISSING:
            return value
        pending = self._loading.get(key)
        if pending is None:
            pending = asyncio.ensure_future(load())
            self._loading[key] = pending

            def store(done: asyncio.Future) -> None:
                if self._loading.get(key) is done:
                    del self._loading[key]
                if not done.cancelled() and done.exception() is None:
                    result = done.result()
                    self.set(key, result, ttl(result) if ttl else None)

            pending.add_done_callback(store)
        # shield(): one caller giving up (a client disconnect) must not cancel the others.
        return await asyncio.shield(pending)


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

        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                # Every address an upstream host resolves to passes the outbound policy.
                resolver=PolicyResolver(),
                limit=settings.GATEWAY_UPSTREAM_MAX_CONNECTIONS,
                ttl_dns_cache=300,
                keepalive_timeout=settings.GATEWAY_UPSTREAM_KEEPALIVE_SECONDS,
            ),
            skip_auto_headers=("User-Agent",),
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

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.background:
            await asyncio.wait(list(self.background), timeout=settings.GATEWAY_SHUTDOWN_TIMEOUT)
        await self.recorder.close()
        await self.limiter.close()
        await self.session.close()
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


@atexit.register
def _write_leftover_metrics() -> None:
    """Without a lifespan shutdown (a server that sends none), write what is queued."""
    runtime = _runtime
    if runtime is not None and not runtime.closed:
        runtime.recorder.write_pending_sync()
