"""Batched Redis reservations: the requests that reserve at the same time go to Redis in
one script call, and each is still taken whole, in arrival order, as if alone."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from functools import partial
from urllib.parse import urlsplit

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from gateway.limits import RedisLimiter, Window

pytestmark = pytest.mark.services


def _window(key: str, limit: int, amount: int = 1) -> Window:
    return Window(
        key,
        limit,
        amount,
        timezone.now() + timedelta(minutes=1),
        60,
        f"{key} is full.",
        "rate_limit_exceeded",
    )


class _Counted:
    """The limiter's script calls, counting them and the requests each carried."""

    def __init__(self, send):
        self.send = send
        self.batches: list[int] = []
        self.sent = asyncio.Event()

    def __call__(self, batch, settles):
        self.batches.append(len(batch))
        self.sent.set()
        return self.send(batch, settles)


async def _connected(limiter: RedisLimiter, counted: _Counted) -> None:
    """A first call opens the limiter's connection (as a running gateway's has)."""
    await limiter.reserve([_window("gw:ck:0:rpm:warm-up", 10)])
    counted.batches.clear()
    counted.sent.clear()


def _limiter(url: str | None = None) -> tuple[RedisLimiter, _Counted]:
    limiter = RedisLimiter(url or django_settings.GATEWAY_LIMIT_REDIS_URL)
    counted = _Counted(limiter.reserves._send)
    limiter.reserves._send = counted  # type: ignore[method-assign]
    return limiter, counted


def test_concurrent_reservations_share_one_call_and_stay_exact(redis_limits):
    async def run():
        limiter, counted = _limiter()
        rpm = _window("gw:ck:1:rpm:test", 7)
        try:
            await _connected(limiter, counted)
            # Twenty requests reserve in the same turn of the loop: the first leaves at
            # once, the others while it is in flight, and they leave together after it.
            answers = await asyncio.gather(*[limiter.reserve([rpm]) for _ in range(20)])
        finally:
            await limiter.close()
        return answers, counted.batches

    answers, batches = asyncio.run(run())
    assert batches == [1, 19]
    # The first seven, in arrival order, are admitted; the rest see the full window.
    assert answers[:7] == [None] * 7
    assert [answer.key for answer in answers[7:]] == ["gw:ck:1:rpm:test"] * 13
    assert int(redis_limits.get("gw:ck:1:rpm:test")) == 7


def test_a_refused_request_raises_none_of_its_counters_and_others_go_on(redis_limits):
    redis_limits.set("gw:org:1:budget", 100)

    async def run():
        limiter, counted = _limiter()
        tokens = _window("gw:ck:1:tpm:test", 1_000, amount=50)
        budget = _window("gw:org:1:budget", 100, amount=5)
        try:
            await _connected(limiter, counted)
            answers = await asyncio.gather(
                limiter.reserve([tokens, budget]),  # the organization's budget is spent
                limiter.reserve([tokens]),
                limiter.reserve([_window("gw:ck:2:rpm:test", 1), tokens]),
            )
        finally:
            await limiter.close()
        return answers, counted.batches

    answers, batches = asyncio.run(run())
    assert batches == [1, 2]
    assert answers[0].key == "gw:org:1:budget"
    assert answers[1:] == [None, None]
    assert int(redis_limits.get("gw:ck:1:tpm:test")) == 100
    assert int(redis_limits.get("gw:ck:2:rpm:test")) == 1
    assert int(redis_limits.get("gw:org:1:budget")) == 100


def test_reservations_arriving_during_a_call_leave_together_after_it(redis_limits):
    async def run():
        limiter, counted = _limiter()
        rpm = _window("gw:ck:1:rpm:test", 1_000)
        try:
            await _connected(limiter, counted)
            first = asyncio.ensure_future(limiter.reserve([rpm]))
            await asyncio.sleep(0)  # the first call is on its way
            later = [asyncio.ensure_future(limiter.reserve([rpm])) for _ in range(5)]
            answers = await asyncio.gather(first, *later)
        finally:
            await limiter.close()
        return answers, counted.batches

    answers, batches = asyncio.run(run())
    assert answers == [None] * 6
    assert batches == [1, 5]
    assert int(redis_limits.get("gw:ck:1:rpm:test")) == 6


class HeldReplies:
    """A proxy in front of Redis for one test: while ``holding``, each reply waits for
    ``let_one()`` (a slow Redis for this connection, and no other test's)."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        self.host, self.port, self.database = parts.hostname, parts.port or 6379, parts.path
        self.holding = False
        self.gate = asyncio.Event()

    async def __aenter__(self):
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"redis://127.0.0.1:{port}{self.database}"
        return self

    async def __aexit__(self, *exc):
        self.server.close()

    def let_one(self) -> None:
        self.gate.set()

    async def handle(self, reader, writer):
        redis_reader, redis_writer = await asyncio.open_connection(self.host, self.port)

        async def pipe(source, destination, held: bool):
            while data := await source.read(65536):
                if held and self.holding:
                    await self.gate.wait()
                    self.gate.clear()
                destination.write(data)
            destination.close()

        await asyncio.gather(
            pipe(reader, redis_writer, False),
            pipe(redis_reader, writer, True),
            return_exceptions=True,
        )


def test_a_caller_that_stops_waiting_gets_its_reservation_given_back(redis_limits):
    async def run():
        async with HeldReplies(django_settings.GATEWAY_LIMIT_REDIS_URL) as redis:
            limiter, counted = _limiter(redis.url)
            rpm = _window("gw:ck:1:rpm:test", 3)
            given_back = []
            await _connected(limiter, counted)
            # Redis's replies wait: what comes while a call is in flight waits for it.
            redis.holding = True
            first = asyncio.ensure_future(limiter.reserve([rpm]))
            await counted.sent.wait()
            counted.sent.clear()
            # Cancelled before its batch leaves: its counters are left out.
            early = asyncio.ensure_future(limiter.reserve([rpm], lambda: given_back.append(0)))
            await asyncio.sleep(0)
            early.cancel()
            # Cancelled while the call is in flight: two are admitted, one is refused,
            # and only the admitted ones are given back.
            late = [
                asyncio.ensure_future(limiter.reserve([rpm], partial(given_back.append, n)))
                for n in (1, 2, 3)
            ]
            await asyncio.sleep(0)
            redis.let_one()  # the first call's reply: the second call leaves
            await counted.sent.wait()
            for reserving in late:
                reserving.cancel()
            redis.holding = False
            redis.let_one()
            await limiter.close()
            return (
                counted.batches,
                given_back,
                first.result(),
                [reserving.cancelled() for reserving in [early, *late]],
            )

    batches, given_back, first, cancelled = asyncio.run(asyncio.wait_for(run(), 10))
    assert batches == [1, 3]
    assert first is None
    assert given_back == [1, 2]
    assert cancelled == [True] * 4
    assert int(redis_limits.get("gw:ck:1:rpm:test")) == 3


def test_a_redis_without_the_script_is_sent_it_again(redis_limits):
    async def run():
        limiter, _ = _limiter()
        rpm = _window("gw:ck:1:rpm:test", 10)
        try:
            first = await limiter.reserve([rpm])
            # Redis restarted or its scripts were flushed.
            redis_limits.script_flush()
            second = await limiter.reserve([rpm])
        finally:
            await limiter.close()
        return first, second

    assert asyncio.run(run()) == (None, None)
    assert int(redis_limits.get("gw:ck:1:rpm:test")) == 2


def test_unreachable_redis_fails_each_request_of_the_batch(redis_limits, monkeypatch):
    from gateway import resp

    attempts = []

    async def connect(url):
        attempts.append(url)
        return await real_connect(url)

    real_connect = resp.connect
    monkeypatch.setattr(resp, "connect", connect)

    async def run():
        # Nothing listens on port 1.
        limiter, counted = _limiter("redis://127.0.0.1:1/0")
        rpm = _window("gw:ck:1:rpm:test", 10)
        try:
            answers = await asyncio.gather(
                *[limiter.reserve([rpm]) for _ in range(3)], return_exceptions=True
            )
            # The next request tries afresh.
            again = await asyncio.gather(limiter.reserve([rpm]), return_exceptions=True)
        finally:
            await limiter.close()
        return answers + again, counted.batches

    answers, batches = asyncio.run(run())
    assert len(attempts) == 2 and batches == []
    assert all(isinstance(answer, ConnectionError) for answer in answers)


def test_settles_ride_with_the_next_reservations(redis_limits):
    redis_limits.set("gw:ck:1:tpm:test", 300)
    spend_expiry = int((timezone.now() + timedelta(days=1)).timestamp())

    async def run():
        limiter, counted = _limiter()
        tpm = _window("gw:ck:1:tpm:test", 300, amount=100)
        try:
            # The window is full until the settle gives back what a request did not use.
            settled = asyncio.ensure_future(
                limiter.reserves.submit_settle(
                    [("gw:ck:1:tpm:test", -250), ("gw:ck:1:tpm:ended", -40)],
                    [("gw:ck:1:spent:test", 9, spend_expiry)],
                )
            )
            refused_or_not = await limiter.reserves.submit(
                [tpm.key], [tpm.amount, tpm.limit, spend_expiry], None
            )
            return await settled, refused_or_not, counted.batches
        finally:
            await limiter.close()

    spends, answer, batches = asyncio.run(run())
    # One call: the settle first, then the reservation it made room for.
    assert batches == [1]
    assert (spends, answer) == ([9], 0)
    assert int(redis_limits.get("gw:ck:1:tpm:test")) == 150
    # A counter whose window ended is not started again below zero.
    assert redis_limits.get("gw:ck:1:tpm:ended") is None
    assert int(redis_limits.get("gw:ck:1:spent:test")) == 9
    assert 0 < redis_limits.ttl("gw:ck:1:spent:test") <= 86_400
