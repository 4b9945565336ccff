"""Quota periods and the state of a provider credential's quotas.

Periods are calendar periods in UTC (the hour, the day, the ISO week starting Monday,
the month). Counters on a credential belong to the period that contains
``period_started_at``; once that period is over they count as zero until the next write
resets them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db.models import F, Q
from django.utils import timezone

from modelhub.models import ProviderCredential, QuotaPeriod


def period_bounds(period: str, now: datetime | None = None) -> tuple[datetime, datetime]:
    """Start (inclusive) and end (exclusive) of the period that contains ``now``."""
    now = (now or timezone.now()).astimezone(UTC)
    if period == QuotaPeriod.HOUR:
        start = now.replace(minute=0, second=0, microsecond=0)
        return start, start + timedelta(hours=1)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == QuotaPeriod.DAY:
        return day, day + timedelta(days=1)
    if period == QuotaPeriod.WEEK:
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    if period == QuotaPeriod.MONTH:
        start = day.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
        return start, end
    raise ValueError(f"Unknown quota period: {period!r}")


@dataclass(frozen=True)
class QuotaState:
    name: str
    limit: int | Decimal | None
    used: int | Decimal
    period_start: datetime
    resets_at: datetime

    @property
    def remaining(self) -> int | Decimal | None:
        if self.limit is None:
            return None
        return max(self.limit - self.used, type(self.limit)(0))

    @property
    def percent_used(self) -> float | None:
        if self.limit is None:
            return None
        if not self.limit:
            return 100.0
        return round(float(self.used) / float(self.limit) * 100, 2)

    @property
    def exhausted(self) -> bool:
        return self.limit is not None and self.used >= self.limit


def current_usage(
    credential: ProviderCredential, now: datetime | None = None
) -> tuple[int, int, Decimal]:
    """``(requests, tokens, cost)`` used in the current period."""
    start, _ = period_bounds(credential.quota_period, now)
    if credential.period_started_at < start:
        return 0, 0, Decimal("0")
    return credential.used_requests, credential.used_tokens, credential.used_cost


def quota_states(credential: ProviderCredential, now: datetime | None = None) -> list[QuotaState]:
    start, end = period_bounds(credential.quota_period, now)
    requests, tokens, cost = current_usage(credential, now)
    return [
        QuotaState("requests", credential.quota_requests, requests, start, end),
        QuotaState("tokens", credential.quota_tokens, tokens, start, end),
        QuotaState("cost", credential.quota_cost, cost, start, end),
    ]


def exhausted_state(
    credential: ProviderCredential, now: datetime | None = None
) -> QuotaState | None:
    """The first exhausted quota, or None."""
    return next((state for state in quota_states(credential, now) if state.exhausted), None)


def exhausted_quota(credential: ProviderCredential, now: datetime | None = None) -> str | None:
    """The name of the first exhausted quota, or None."""
    state = exhausted_state(credential, now)
    return state.name if state is not None else None


def has_quota(credential: ProviderCredential) -> bool:
    """Whether any quota limits the credential (only then is each request counted first)."""
    return any(
        limit is not None
        for limit in (credential.quota_requests, credential.quota_tokens, credential.quota_cost)
    )


def below_quotas_q() -> Q:
    """Credentials none of whose quotas is used up (counters as stored: roll the period
    first)."""
    return (
        (Q(quota_requests__isnull=True) | Q(used_requests__lt=F("quota_requests")))
        & (Q(quota_tokens__isnull=True) | Q(used_tokens__lt=F("quota_tokens")))
        & (Q(quota_cost__isnull=True) | Q(used_cost__lt=F("quota_cost")))
    )
