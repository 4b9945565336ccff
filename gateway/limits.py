"""Per-client-key limits, enforced atomically (credential quotas: ``modelhub.quotas``).

A client key may have requests per minute, tokens per minute and a budget per period.
Each is a counter of its window. A request is admitted when every counter is still below
its limit, and then reserves its share at once - one request, its estimated tokens, the
most it can cost - in a single atomic step (a Lua script in Redis, a locked transaction
in the database). When the request ends, the reservation is corrected to the actual
tokens and cost.

The budget reserves a bound, not an estimate: the prompt plus every completion token the
request may produce, at its most expensive candidate's prices. Since each counter holds
what finished requests cost plus at least what running ones can still cost, a request is
only admitted while everything admitted before it fits in the budget; spend can pass the
budget by at most the last admitted request's own cost, whatever the concurrency.

Money is counted in integer picodollars (1e-12 USD): Redis adds integers exactly, and
the cheapest catalog prices (1e-10 USD per token) still count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from typing import TYPE_CHECKING

from django.conf import settings
from django.utils import timezone

from gateway.errors import RateLimited
from modelhub.quotas import period_bounds
from modelhub.services import (
    CounterIncrement,
    limit_counters_adjust,
    limit_counters_purge,
    limit_counters_reserve,
)

if TYPE_CHECKING:
    from gateway.runtime import Runtime

PICODOLLARS = Decimal(10**12)


def to_picodollars(amount: Decimal) -> int:
    return int((amount * PICODOLLARS).to_integral_value(rounding=ROUND_CEILING))


@dataclass(frozen=True)
class Window:
    key: str
    limit: int
    amount: int
    expires_at: datetime
    retry_after: int
    description: str
    code: str


@dataclass
class Reservation:
    """What a request reserved; ``settle`` replaces estimates with actual usage."""

    windows: list[Window] = field(default_factory=list)
    tokens_key: str | None = None
    cost_key: str | None = None
    estimated_tokens: int = 0
    reserved_cost: int = 0  # picodollars: the request's worst case


def _minute(now: datetime) -> tuple[str, datetime, int]:
    start = now.replace(second=0, microsecond=0)
    end = start + timedelta(minutes=1)
    return start.strftime("%Y%m%d%H%M"), end, max(math.ceil((end - now).total_seconds()), 1)


def client_key_windows(
    key, *, estimated_tokens: int, worst_case_cost: Decimal, now: datetime
) -> Reservation:
    """The counters a request of ``key`` (a ``ClientKeyInfo``) must pass."""
    reservation = Reservation()
    minute, minute_end, minute_left = _minute(now)
    if key.rate_limit_rpm is not None:
        reservation.windows.append(
            Window(
                f"gw:ck:{key.id}:rpm:{minute}",
                key.rate_limit_rpm,
                1,
                minute_end,
                minute_left,
                f"Rate limit of {key.rate_limit_rpm} requests per minute reached.",
                "rate_limit_exceeded",
            )
        )
    if key.rate_limit_tpm is not None:
        tokens_key = f"gw:ck:{key.id}:tpm:{minute}"
        reservation.tokens_key = tokens_key
        reservation.estimated_tokens = estimated_tokens
        reservation.windows.append(
            Window(
                tokens_key,
                key.rate_limit_tpm,
                estimated_tokens,
                minute_end,
                minute_left,
                f"Rate limit of {key.rate_limit_tpm} tokens per minute reached.",
                "rate_limit_exceeded",
            )
        )
    if key.budget_amount is not None:
        start, end = period_bounds(key.budget_period, now)
        cost_key = f"gw:ck:{key.id}:spend:{key.budget_period}:{start:%Y%m%d%H}"
        reservation.cost_key = cost_key
        reservation.reserved_cost = to_picodollars(worst_case_cost)
        reservation.windows.append(
            Window(
                cost_key,
                to_picodollars(key.budget_amount),
                reservation.reserved_cost,
                end,
                max(math.ceil((end - now).total_seconds()), 1),
                f"The key's budget of {key.budget_amount} USD per {key.budget_period} is spent.",
                "budget_exceeded",
            )
        )
    return reservation


def reject(window: Window) -> RateLimited:
    return RateLimited(window.description, retry_after=window.retry_after, code=window.code)


# --- Backends -----------------------------------------------------------------------------

# Every counter must be below its limit; then every counter grows by its amount.
RESERVE_SCRIPT = """
for i = 1, #KEYS do
  local current = tonumber(redis.call('GET', KEYS[i]) or '0')
  if current >= tonumber(ARGV[3 * i - 1]) then
    return i
  end
end
for i = 1, #KEYS do
  redis.call('INCRBY', KEYS[i], ARGV[3 * i - 2])
  redis.call('EXPIREAT', KEYS[i], ARGV[3 * i])
end
return 0
"""


class RedisLimiter:
    def __init__(self, url: str):
        import redis.asyncio as redis

        # A bounded pool that makes callers wait for a free connection instead of failing
        # when a burst (a thousand streams opening at once) outnumbers the connections.
        pool = redis.BlockingConnectionPool.from_url(
            url,
            max_connections=settings.GATEWAY_LIMIT_REDIS_CONNECTIONS,
            timeout=settings.GATEWAY_LIMIT_REDIS_WAIT_SECONDS,
        )
        self.client = redis.Redis(connection_pool=pool)
        self.script = self.client.register_script(RESERVE_SCRIPT)

    async def reserve(self, windows: list[Window]) -> Window | None:
        if not windows:
            return None
        args: list[int] = []
        for window in windows:
            args += [window.amount, window.limit, int(window.expires_at.timestamp()) + 60]
        failed = int(await self.script(keys=[w.key for w in windows], args=args))
        return windows[failed - 1] if failed else None

    async def adjust(self, deltas: list[tuple[str, int]]) -> None:
        """Add each delta to its counter, in one round trip."""
        deltas = [(key, delta) for key, delta in deltas if delta]
        if len(deltas) == 1:
            await self.client.incrby(*deltas[0])
        elif deltas:
            async with self.client.pipeline(transaction=False) as pipe:
                for key, delta in deltas:
                    pipe.incrby(key, delta)
                await pipe.execute()

    async def purge_expired(self) -> None:
        """Redis expires the counters itself."""

    async def close(self) -> None:
        await self.client.aclose()


def _reserve_in_database(windows: list[Window]) -> Window | None:
    increments = [CounterIncrement(w.key, w.limit, w.amount, w.expires_at) for w in windows]
    failed = limit_counters_reserve(increments=increments)
    return None if failed is None else windows[failed]


class DatabaseLimiter:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime

    async def reserve(self, windows: list[Window]) -> Window | None:
        if not windows:
            return None
        return await self.runtime.db(_reserve_in_database, windows)

    async def adjust(self, deltas: list[tuple[str, int]]) -> None:
        deltas = [(key, delta) for key, delta in deltas if delta]
        if deltas:
            await self.runtime.db(limit_counters_adjust, deltas=deltas)

    async def purge_expired(self) -> None:
        await self.runtime.db(
            limit_counters_purge, expired_before=timezone.now() - timedelta(minutes=5)
        )

    async def close(self) -> None:
        """Nothing to release: the database threads belong to the runtime."""


def build_limiter(runtime: Runtime) -> RedisLimiter | DatabaseLimiter:
    backend = settings.GATEWAY_LIMIT_BACKEND
    if backend == "redis" or (backend == "auto" and settings.REDIS_URL):
        return RedisLimiter(settings.GATEWAY_LIMIT_REDIS_URL or settings.REDIS_URL)
    return DatabaseLimiter(runtime)


async def settle(
    limiter: RedisLimiter | DatabaseLimiter, reservation: Reservation, *, tokens: int, cost: Decimal
) -> None:
    """Replace the reserved amounts by what the request actually used (giving back the
    difference between a budget's worst case and the actual cost)."""
    deltas = []
    if reservation.tokens_key:
        deltas.append((reservation.tokens_key, tokens - reservation.estimated_tokens))
    if reservation.cost_key:
        deltas.append((reservation.cost_key, to_picodollars(cost) - reservation.reserved_cost))
    await limiter.adjust(deltas)
