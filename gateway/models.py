"""The gateway's own table: limit counters, used when no Redis is configured.

Rate limits and budgets of client keys are counters in time windows (a minute for
requests and tokens per minute, the budget period for spend). With Redis they live in
Redis; without it they live here, one row per key and window, updated under a row lock.
"""

from django.db import models


class LimitCounter(models.Model):
    """One counter of one window: ``key`` names the owner, the limit and the window."""

    key = models.CharField(max_length=200, unique=True)
    value = models.BigIntegerField(default=0)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        db_table = "gateway_limit_counters"

    def __str__(self) -> str:
        return f"{self.key}={self.value}"
