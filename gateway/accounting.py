"""Usage accounting off the request's critical path.

Each request leaves one :class:`UsageRecord`. Prometheus counters are updated at once
(in memory); the database rows - the ``ModelMetric`` row, the credential's usage
counters and the client key's ``last_used_at`` - are written in batches by a background
task, and whatever is queued is written when the process shuts down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from gateway import telemetry
from modelhub.models import ClientKey, ModelMetric
from modelhub.redaction import bounded
from modelhub.services import metrics_bulk_create, provider_credential_add_usage

logger = logging.getLogger(__name__)


@dataclass
class UsageRecord:
    organization_id: int
    client_key_id: int | None
    endpoint: str
    model_type: str
    requested_model: str
    request_id: str
    served_model: str = ""
    provider_slug: str = ""
    provider_id: int | None = None
    # Global catalog provider (no organization): its names may appear in metric labels.
    provider_is_global: bool = False
    model_id: int | None = None
    credential_id: int | None = None
    credential_quota_period: str | None = None
    # The credential's request was already counted when its quota was reserved.
    credential_request_counted: bool = False
    routing_rule_id: int | None = None
    strategy: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost: Decimal = Decimal(0)
    latency_ms: int = 0
    time_to_first_token_ms: int | None = None
    status_code: int = 200
    error_type: str = ""
    error_message: str = ""
    attempts: int = 0
    fallbacks_used: int = 0
    streamed: bool = False
    created_at: datetime = field(default_factory=timezone.now)

    @property
    def success(self) -> bool:
        return 200 <= self.status_code < 300

    def as_metric(self) -> ModelMetric:
        return ModelMetric(
            organization_id=self.organization_id,
            client_key_id=self.client_key_id,
            credential_id=self.credential_id,
            provider_id=self.provider_id,
            model_id=self.model_id,
            routing_rule_id=self.routing_rule_id,
            request_id=self.request_id[:64],
            model_type=self.model_type,
            requested_model=self.requested_model[:300],
            served_model=self.served_model[:300],
            strategy=self.strategy[:16],
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cached_tokens=self.cached_tokens,
            total_tokens=self.input_tokens + self.output_tokens,
            cost=self.cost,
            latency_ms=self.latency_ms,
            time_to_first_token_ms=self.time_to_first_token_ms,
            status_code=self.status_code,
            success=self.success,
            error_type=self.error_type[:100],
            error_message=bounded(self.error_message),
            fallbacks_used=self.fallbacks_used,
            attempts=self.attempts,
            streamed=self.streamed,
            created_at=self.created_at,
        )


def observe(record: UsageRecord) -> None:
    """Update the Prometheus series for one finished request."""
    if record.provider_slug:
        provider, model = telemetry.series_labels(
            record.provider_slug,
            record.served_model or "none",
            is_global=record.provider_is_global,
        )
    else:
        provider, model = "none", "none"
    telemetry.REQUESTS.labels(record.endpoint, provider, model, str(record.status_code)).inc()
    telemetry.LATENCY.labels(record.endpoint, provider, model).observe(record.latency_ms / 1000)
    if record.time_to_first_token_ms is not None:
        telemetry.TIME_TO_FIRST_TOKEN.labels(provider, model).observe(
            record.time_to_first_token_ms / 1000
        )
    if record.input_tokens:
        telemetry.TOKENS.labels(provider, model, "input").inc(record.input_tokens)
    if record.output_tokens:
        telemetry.TOKENS.labels(provider, model, "output").inc(record.output_tokens)
    if record.cost:
        telemetry.COST.labels(provider, model).inc(float(record.cost))


def write_records(records: list[UsageRecord]) -> None:
    """Write a batch: metric rows, credential usage counters, client keys' last use."""
    now = timezone.now()
    usage: dict[int, list] = defaultdict(lambda: [0, 0, Decimal(0), None])
    last_used: dict[int, datetime] = {}
    for record in records:
        if record.credential_id is not None and record.attempts:
            counters = usage[record.credential_id]
            counters[0] += 0 if record.credential_request_counted else 1
            counters[1] += record.input_tokens + record.output_tokens
            counters[2] += record.cost
            counters[3] = record.credential_quota_period
        if record.client_key_id is not None:
            last_used[record.client_key_id] = max(
                record.created_at, last_used.get(record.client_key_id, record.created_at)
            )
    with transaction.atomic():
        metrics_bulk_create(record.as_metric() for record in records)
        for credential_id, (requests, tokens, cost, period) in sorted(usage.items()):
            provider_credential_add_usage(
                credential_id=credential_id,
                period=period,
                requests=requests,
                tokens=tokens,
                cost=cost,
                now=now,
            )
        for client_key_id, used_at in sorted(last_used.items()):
            ClientKey.objects.filter(pk=client_key_id).update(last_used_at=used_at)


class MetricRecorder:
    """Queues usage records and writes them in batches on the database threads."""

    def __init__(self, runtime):
        self.runtime = runtime
        self.pending: list[UsageRecord] = []
        self.wakeup = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.housekeeping_at = 0.0

    def start(self) -> None:
        self.task = self.runtime.loop.create_task(self._run())

    def record(self, record: UsageRecord) -> None:
        observe(record)
        self.pending.append(record)
        if len(self.pending) >= settings.GATEWAY_METRICS_BATCH_SIZE:
            self.wakeup.set()

    async def _run(self) -> None:
        interval = settings.GATEWAY_METRICS_FLUSH_SECONDS
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wakeup.wait(), timeout=interval)
            self.wakeup.clear()
            await self.flush()
            await self._housekeeping()

    async def _housekeeping(self) -> None:
        now = self.runtime.loop.time()
        if now < self.housekeeping_at:
            return
        self.housekeeping_at = now + 60
        try:
            await self.runtime.limiter.purge_expired()
        except Exception:
            logger.exception("Could not purge expired limit counters")

    async def flush(self) -> None:
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        try:
            await self.runtime.db(write_records, batch)
        except Exception:
            logger.exception("Could not write %d metric rows; keeping them for retry", len(batch))
            self._keep(batch)

    def _keep(self, batch: list[UsageRecord]) -> None:
        self.pending[:0] = batch
        overflow = len(self.pending) - settings.GATEWAY_METRICS_MAX_PENDING
        if overflow > 0:
            del self.pending[:overflow]
            telemetry.METRIC_ROWS_DROPPED.inc(overflow)
            logger.error("Dropped %d metric rows: the database is unreachable", overflow)

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        for _ in range(3):
            await self.flush()
            if not self.pending:
                return
            await asyncio.sleep(0.2)
        telemetry.METRIC_ROWS_DROPPED.inc(len(self.pending))
        logger.error(
            "Lost %d metric rows at shutdown: the database is unreachable", len(self.pending)
        )

    def write_pending_sync(self) -> None:
        batch, self.pending = self.pending, []
        if batch:
            try:
                write_records(batch)
            except Exception:
                logger.exception("Could not write %d metric rows at exit", len(batch))
