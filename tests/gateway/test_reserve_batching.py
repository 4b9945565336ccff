"""Batched Redis reservations: the requests that reserve at the same time go to Redis in
one script call, and each is still taken whole, in arrival order, as if alone."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from functools import partial

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

    def __init__(self, call):
        self.call = call
        self.batches: list[int] = []
        self.sent = asyncio.Event()

    async def __call__(self, keys, args):
        self.batches.append(args[0])
        self.sent.set()
        return await self.call(keys, args)


def _limiter(url: str | None = None) -> tuple[RedisLimiter, _Counted]:
    limiter = RedisLimiter(url or django_settings.GATEWAY_LIMIT_REDIS_URL)
    counted = _Counted(limiter.reserves.call)
    limiter.reserves.call = counted  # type: ignore[method-assign]
    return limiter, counted


def test_concurrent_reservations_share_one_call_and_stay_exact(redis_limits):
    async def run():
        limiter, counted = _limiter()
        rpm = _window("gw:ck:1:rpm:test", 7)
        try:
            # Twenty requests reserve in the same turn of the loop.
            answers = await asyncio.gather(*[limiter.reserve([rpm]) for _ in range(20)])
        finally:
            await limiter.close()
        return answers, counted.batches

    answers, batches = asyncio.run(run())
    assert batches == [20]
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
            answers = await asyncio.gather(
                limiter.reserve([tokens, budget]),  # the organization's budget is spent
                limiter.reserve([tokens]),
                limiter.reserve([_window("gw:ck:2:rpm:test", 1), tokens]),
            )
        finally:
            await limiter.close()
        return answers, counted.batches

    answers, batches = asyncio.run(run())
    assert batches == [3]
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


def test_a_caller_that_stops_waiting_gets_its_reservation_given_back(redis_limits):
    async def run():
        limiter, counted = _limiter()
        rpm = _window("gw:ck:1:rpm:test", 2)
        given_back = []
        try:
            # Cancelled before its batch leaves: its counters are left out.
            early = asyncio.ensure_future(limiter.reserve([rpm], lambda: given_back.append(0)))
            await asyncio.sleep(0)
            early.cancel()
            # Cancelled while the call is in flight: two are admitted, one is refused, and
            # only the admitted ones are given back.
            late = [
                asyncio.ensure_future(limiter.reserve([rpm], partial(given_back.append, n)))
                for n in (1, 2, 3)
            ]
            await counted.sent.wait()
            for reserving in late:
                reserving.cancel()
            await limiter.close()
        finally:
            await limiter.pool.aclose()
        return counted.batches, given_back, [reserving.cancelled() for reserving in [early, *late]]

    batches, given_back, cancelled = asyncio.run(run())
    assert batches == [3]
    assert given_back == [1, 2]
    assert cancelled == [True] * 4
    assert int(redis_limits.get("gw:ck:1:rpm:test")) == 2


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


def test_unreachable_redis_fails_each_request_of_the_batch(redis_limits):
    async def run():
        # Nothing listens on port 1.
        limiter, counted = _limiter("redis://127.0.0.1:1/0")
        rpm = _window("gw:ck:1:rpm:test", 10)
        try:
            answers = await asyncio.gather(
                *[limiter.reserve([rpm]) for _ in range(3)], return_exceptions=True
            )
            # The next batch is tried afresh.
            again = await asyncio.gather(limiter.reserve([rpm]), return_exceptions=True)
        finally:
            await limiter.close()
        return answers + again, counted.batches

    import redis.exceptions

    answers, batches = asyncio.run(run())
    assert batches == [3, 1]
    assert all(isinstance(answer, redis.exceptions.ConnectionError) for answer in answers)


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
