"""Limits of client keys and their organizations, enforced atomically together
(credential quotas: ``modelhub.quotas``).

A client key may have requests per minute, tokens per minute and a budget per period;
so may its organization, over all its keys together. Each is a counter of its window. A
request is admitted when every counter - the key's and the organization's - is still
below its limit, and then reserves its share in all of them at once - one request, its
estimated tokens, the most it can cost - in a single atomic step (a Lua script in Redis,
a locked transaction in the database). If any counter refuses, none is raised. When the
request ends, the reservation is corrected to the actual tokens and cost.

The budget reserves a bound, not an estimate: the prompt plus every completion token the
request may produce, at its most expensive candidate's prices. Since each counter holds
what finished requests cost plus at least what running ones can still cost, a request is
only admitted while everything admitted before it fits in the budget; spend can pass the
budget by at most the last admitted request's own cost, whatever the concurrency. That
holds for the organization's budget as for a key's, however many keys share it.

Settling also adds the actual cost to each budget's spend counter (see
``modelhub.budgets``); its value before and after tells which webhook thresholds the
request crossed, without a query.

Money is counted in integer picodollars (1e-12 USD): Redis adds integers exactly, and
the cheapest catalog prices (1e-10 USD per token) still count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from django.conf import settings
from django.utils import timezone

from gateway.errors import RateLimited
from modelhub.budgets import (
    CLIENT_KEY,
    ORGANIZATION,
    PICODOLLARS,
    budget_period_bounds,
    crossed_thresholds,
    from_picodollars,
    reservation_counter,
    spend_counter,
    to_picodollars,
)
from modelhub.services import (
    CounterIncrement,
    limit_counters_purge,
    limit_counters_reserve,
    limit_counters_settle,
)

if TYPE_CHECKING:
    from gateway.runtime import Runtime

__all__ = ["PICODOLLARS", "from_picodollars", "to_picodollars"]

# Which limit refused a request: the key's own, or its organization's.
SCOPE_KEY = "key"
SCOPE_ORGANIZATION = "organization"


@dataclass(frozen=True)
class Window:
    key: str
    limit: int
    amount: int
    expires_at: datetime
    retry_after: int
    description: str
    code: str
    scope: str = SCOPE_KEY


@dataclass(frozen=True)
class Budget:
    """A budget a request counts against: its spend counter, and what a threshold event
    about it says."""

    subject: str  # modelhub.budgets.ORGANIZATION or CLIENT_KEY
    subject_id: int
    amount: Decimal
    period: str | None
    period_start: datetime | None
    spend_key: str
    expires_at: datetime
    thresholds: tuple[int, ...]


@dataclass(frozen=True)
class Crossing:
    """A budget whose spend went from ``before`` to ``after`` (picodollars) past
    ``thresholds`` (percentages) when a request settled."""

    budget: Budget
    before: int
    after: int
    thresholds: tuple[int, ...]


@dataclass
class Reservation:
    """What a request reserved; ``settle`` replaces estimates with actual usage."""

    windows: list[Window] = field(default_factory=list)
    tokens_keys: list[str] = field(default_factory=list)
    cost_keys: list[str] = field(default_factory=list)
    budgets: list[Budget] = field(default_factory=list)
    estimated_tokens: int = 0
    reserved_cost: int = 0  # picodollars: the request's worst case


def _minute(now: datetime) -> tuple[str, datetime, int]:
    start = now.replace(second=0, microsecond=0)
    end = start + timedelta(minutes=1)
    return start.strftime("%Y%m%d%H%M"), end, max(math.ceil((end - now).total_seconds()), 1)


@dataclass(frozen=True)
class _Owner:
    """Whose limits: a key or an organization, in the words and names its windows use."""

    subject: str
    subject_id: int
    scope: str
    whose: str  # "The key's" / "The organization's"
    code_prefix: str


def _add_windows(
    reservation: Reservation,
    owner: _Owner,
    limits,
    *,
    thresholds: tuple[int, ...],
    worst_case: int,
    now: datetime,
) -> None:
    """The windows of one owner's limits (``limits`` has rate_limit_rpm, rate_limit_tpm,
    budget_amount and budget_period: a ClientKeyInfo or an Organization)."""
    minute, minute_end, minute_left = _minute(now)
    prefix = f"gw:{owner.subject}:{owner.subject_id}"
    if limits.rate_limit_rpm is not None:
        reservation.windows.append(
            Window(
                f"{prefix}:rpm:{minute}",
                limits.rate_limit_rpm,
                1,
                minute_end,
                minute_left,
                f"{owner.whose} rate limit of {limits.rate_limit_rpm} requests per minute reached.",
                f"{owner.code_prefix}rate_limit_exceeded",
                owner.scope,
            )
        )
    if limits.rate_limit_tpm is not None:
        tokens_key = f"{prefix}:tpm:{minute}"
        reservation.tokens_keys.append(tokens_key)
        reservation.windows.append(
            Window(
                tokens_key,
                limits.rate_limit_tpm,
                reservation.estimated_tokens,
                minute_end,
                minute_left,
                f"{owner.whose} rate limit of {limits.rate_limit_tpm} tokens per minute reached.",
                f"{owner.code_prefix}rate_limit_exceeded",
                owner.scope,
            )
        )
    if limits.budget_amount is not None:
        period = limits.budget_period or None
        start, end = budget_period_bounds(period, now)
        cost_key = reservation_counter(owner.subject, owner.subject_id, period, start)
        reservation.cost_keys.append(cost_key)
        per = f" per {period}" if period else ""
        reservation.windows.append(
            Window(
                cost_key,
                to_picodollars(limits.budget_amount),
                worst_case,
                end,
                max(math.ceil((end - now).total_seconds()), 1),
                f"{owner.whose} budget of {limits.budget_amount} USD{per} is spent.",
                f"{owner.code_prefix}budget_exceeded",
                owner.scope,
            )
        )
        reservation.budgets.append(
            Budget(
                subject=owner.subject,
                subject_id=owner.subject_id,
                amount=limits.budget_amount,
                period=period,
                period_start=start,
                spend_key=spend_counter(owner.subject, owner.subject_id, period, start),
                expires_at=end,
                thresholds=thresholds,
            )
        )


def has_limits(key) -> bool:
    """Whether a request of ``key`` (a ``ClientKeyInfo``) has any counter to pass."""
    return any(
        owner.rate_limit_rpm is not None
        or owner.rate_limit_tpm is not None
        or owner.budget_amount is not None
        for owner in (key, key.organization)
    )


def request_windows(
    key, *, estimated_tokens: int, worst_case_cost: Decimal, now: datetime
) -> Reservation:
    """The counters a request of ``key`` (a ``ClientKeyInfo``) must pass: the key's own
    and its organization's."""
    reservation = Reservation(estimated_tokens=estimated_tokens)
    if key.budget_amount is not None or key.organization.budget_amount is not None:
        reservation.reserved_cost = to_picodollars(worst_case_cost)
    thresholds = key.budget_thresholds
    _add_windows(
        reservation,
        _Owner(CLIENT_KEY, key.id, SCOPE_KEY, "The key's", ""),
        key,
        thresholds=thresholds.get(CLIENT_KEY, ()),
        worst_case=reservation.reserved_cost,
        now=now,
    )
    organization = key.organization
    _add_windows(
        reservation,
        _Owner(
            ORGANIZATION, organization.pk, SCOPE_ORGANIZATION, "The organization's", "organization_"
        ),
        organization,
        thresholds=thresholds.get(ORGANIZATION, ()),
        worst_case=reservation.reserved_cost,
        now=now,
    )
    return reservation


def reject(window: Window) -> RateLimited:
    error = RateLimited(window.description, retry_after=window.retry_after, code=window.code)
    # Which limit refused: the key's own or the organization's (shared by all its keys).
    error.headers["X-RateLimit-Scope"] = window.scope
    return error


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

    async def settle(
        self, deltas: list[tuple[str, int]], spends: list[CounterIncrement]
    ) -> list[int]:
        """Add each delta to its counter and each spend to its spend counter, in one round
        trip; returns the spend counters' new values."""
        deltas = [(key, delta) for key, delta in deltas if delta]
        if not deltas and not spends:
            return []
        if len(deltas) == 1 and not spends:
            await self.client.incrby(*deltas[0])
            return []
        async with self.client.pipeline(transaction=False) as pipe:
            for key, delta in deltas:
                pipe.incrby(key, delta)
            for spend in spends:
                pipe.incrby(spend.key, spend.amount)
                pipe.expireat(spend.key, int(spend.expires_at.timestamp()) + 60)
            results = await pipe.execute()
        return [int(value) for value in results[len(deltas) :: 2]]

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

    async def settle(
        self, deltas: list[tuple[str, int]], spends: list[CounterIncrement]
    ) -> list[int]:
        deltas = [(key, delta) for key, delta in deltas if delta]
        if not deltas and not spends:
            return []
        return await self.runtime.db(limit_counters_settle, deltas=deltas, spends=spends)

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
) -> list[Crossing]:
    """Replace the reserved amounts by what the request actually used (giving back the
    difference between a budget's worst case and the actual cost), add the cost to each
    budget's spend, and return the budgets whose thresholds that spend crossed."""
    deltas = [(key, tokens - reservation.estimated_tokens) for key in reservation.tokens_keys]
    actual = to_picodollars(cost)
    deltas += [(key, actual - reservation.reserved_cost) for key in reservation.cost_keys]
    budgets = reservation.budgets if actual > 0 else []
    spends = [CounterIncrement(b.spend_key, 0, actual, b.expires_at) for b in budgets]
    totals = await limiter.settle(deltas, spends)
    crossings = []
    for budget, after in zip(budgets, totals, strict=True):
        crossed = crossed_thresholds(
            budget.thresholds, budget=budget.amount, before=after - actual, after=after
        )
        if crossed:
            crossings.append(Crossing(budget, after - actual, after, tuple(crossed)))
    return crossings
