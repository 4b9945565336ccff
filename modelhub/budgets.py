"""Budgets of organizations and client keys: their periods, counters and thresholds.

The gateway keeps two counters per budget and period (in Redis, or in ``LimitCounter``
rows without it):

- the *reservation* counter, which admits requests: what finished requests cost plus
  the worst case of those still running (see ``gateway.limits``);
- the *spend* counter: what finished requests actually cost. It is what a person reads
  as "spent" and what threshold events compare against, so a burst of large
  reservations never reports a threshold that was not reached.

Both are named here, so the gateway that writes them and the selectors that read them
agree. Money is counted in integer picodollars (1e-12 USD).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_CEILING, Decimal

from django.conf import settings

from modelhub.quotas import period_bounds

PICODOLLARS = Decimal(10**12)
# A budget without a period never resets: its counters keep until this date.
NEVER = datetime(9999, 1, 1, tzinfo=UTC)
# The period start a budget without a period records its threshold events under.
LIFETIME_START = datetime(1970, 1, 1, tzinfo=UTC)
# The subjects of a budget: the prefix of their counters.
ORGANIZATION = "org"
CLIENT_KEY = "ck"


def counters_redis_url() -> str:
    """The Redis the gateway keeps its limit and budget counters in (GATEWAY_LIMIT_BACKEND),
    or "" when they are ``LimitCounter`` rows."""
    backend = settings.GATEWAY_LIMIT_BACKEND
    if backend == "redis" or (backend == "auto" and settings.REDIS_URL):
        return settings.GATEWAY_LIMIT_REDIS_URL or settings.REDIS_URL
    return ""


def to_picodollars(amount: Decimal) -> int:
    return int((amount * PICODOLLARS).to_integral_value(rounding=ROUND_CEILING))


def from_picodollars(value: int) -> Decimal:
    return Decimal(value) / PICODOLLARS


def budget_period_bounds(period: str | None, now: datetime) -> tuple[datetime | None, datetime]:
    """Start and end of the budget period containing ``now``: calendar periods in UTC;
    ``(None, NEVER)`` for a budget without a period."""
    if not period:
        return None, NEVER
    return period_bounds(period, now)


def _period_label(period: str | None, start: datetime | None) -> str:
    if not period or start is None:
        return "total"
    return f"{period}:{start:%Y%m%d%H}"


def reservation_counter(subject: str, subject_id: int, period: str | None, start) -> str:
    """The counter that admits requests (settled cost plus running worst cases)."""
    return f"gw:{subject}:{subject_id}:spend:{_period_label(period, start)}"


def spend_counter(subject: str, subject_id: int, period: str | None, start) -> str:
    """The counter of what finished requests cost in the period."""
    return f"gw:{subject}:{subject_id}:spent:{_period_label(period, start)}"


def crossed_thresholds(thresholds, *, budget: Decimal, before: int, after: int) -> list[int]:
    """The percentages of ``budget`` that spend (picodollars) passed going from ``before``
    to ``after``. Spend only grows, and each counter update is atomic, so every threshold
    is crossed by exactly one update per period."""
    limit = to_picodollars(budget)
    if limit <= 0 or after <= before:
        return []
    return [t for t in sorted(set(thresholds)) if before < (limit * t + 99) // 100 <= after]


@dataclass(frozen=True)
class BudgetStatus:
    """A budget in its current period, as the counters hold it."""

    amount: Decimal | None
    period: str | None
    spent: Decimal
    remaining: Decimal | None
    period_start: datetime | None
    period_end: datetime | None

    @property
    def percent_used(self) -> float:
        """Spend as a percentage of the budget (100 for a budget of zero)."""
        if not self.amount:
            return 100.0
        return round(float(self.spent) / float(self.amount) * 100, 2)
