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
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import DataError, IntegrityError, connection, transaction
from django.db.models.base import ModelState
from django.utils import timezone

from gateway import telemetry
from gateway.reserve import settle_limits, settle_limits_soon
from modelhub.models import ErrorSource, ModelMetric
from modelhub.redaction import bounded
from modelhub.services import (
    MetricReferenceCheck,
    client_keys_mark_used,
    encode_metric_row,
    estimate_cost,
    metrics_bulk_create,
    metrics_check_references,
    metrics_insert_encoded,
    provider_credential_add_usage,
)

if TYPE_CHECKING:
    from gateway.call import GatewayCall
    from gateway.errors import GatewayError
    from modelhub.models import Model
    from modelhub.routing import Candidate

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
    # Each failed upstream attempt, for the request log (see ModelMetric.failed_attempts).
    failed_attempts: list[dict] = field(default_factory=list)
    created_at: datetime = field(default_factory=timezone.now)
    # The organization's slug for the per-tenant series: known from the key, so labelling
    # a request needs no query.
    organization_slug: str = ""
    # The credential's counters and the key's last use already hold this request (a
    # retried batch must not add them twice).
    usage_written: bool = False
    # The row, encoded when the request is recorded (PostgreSQL; see MetricRecorder).
    encoded: bytes | None = field(default=None, repr=False)

    @property
    def success(self) -> bool:
        return 200 <= self.status_code < 300

    def metric_values(self) -> dict[str, object]:
        """The values of the request's ModelMetric row, by attribute name."""
        return {
            "id": None,
            "organization_id": self.organization_id,
            "client_key_id": self.client_key_id,
            "credential_id": self.credential_id,
            "provider_id": self.provider_id,
            "model_id": self.model_id,
            "routing_rule_id": self.routing_rule_id,
            "request_id": self.request_id[:64],
            "model_type": self.model_type,
            "requested_model": self.requested_model[:300],
            "served_model": self.served_model[:300],
            "strategy": self.strategy[:16],
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_tokens": self.cached_tokens,
            "total_tokens": self.input_tokens + self.output_tokens,
            "cost": self.cost,
            "latency_ms": self.latency_ms,
            "time_to_first_token_ms": self.time_to_first_token_ms,
            "status_code": self.status_code,
            "success": self.success,
            "error_type": self.error_type[:100],
            "error_message": bounded(self.error_message),
            "error_source": ErrorSource.of(
                status_code=self.status_code, error_type=self.error_type, attempts=self.attempts
            ),
            "failed_attempts": self.failed_attempts,
            "fallbacks_used": self.fallbacks_used,
            "attempts": self.attempts,
            "streamed": self.streamed,
            "created_at": self.created_at,
        }

    def as_metric(self) -> ModelMetric:
        # The row's attributes are set as ``Model.from_db`` leaves them, without
        # ``Model.__init__``, whose per-field work (descriptors, defaults, signals) cost
        # several times this on the writer thread, which shares the interpreter with the
        # event loop. ModelMetric has no field default or receiver this would skip, and a
        # test checks that every concrete field is set.
        metric = ModelMetric.__new__(ModelMetric)
        metric._state = ModelState()
        metric.__dict__.update(self.metric_values())
        return metric

    def encode(self) -> bytes:
        """The row as the PostgreSQL writer sends it (``encode_metric_row``)."""
        return encode_metric_row(self.metric_values())


def observe(record: UsageRecord, counters: telemetry.CounterBuffer) -> None:
    """Update the Prometheus series for one finished request, through ``counters``: its
    counters and durations are added with the next flush."""
    if record.provider_slug:
        provider, model = telemetry.series_labels(
            record.provider_slug,
            record.served_model or "none",
            is_global=record.provider_is_global,
        )
    else:
        provider, model = "none", "none"
    add = counters.add
    add(telemetry.REQUESTS, (record.endpoint, provider, model, str(record.status_code)))
    counters.observe(
        telemetry.LATENCY, (record.endpoint, provider, model), record.latency_ms / 1000
    )
    if record.time_to_first_token_ms is not None:
        counters.observe(
            telemetry.TIME_TO_FIRST_TOKEN, (provider, model), record.time_to_first_token_ms / 1000
        )
    if record.input_tokens:
        add(telemetry.TOKENS, (provider, model, "input"), record.input_tokens)
    if record.output_tokens:
        add(telemetry.TOKENS, (provider, model, "output"), record.output_tokens)
    if record.cost:
        add(telemetry.COST, (provider, model), float(record.cost))
    if record.organization_slug:
        observe_organization(record, counters)


def observe_refusal(organization: str, endpoint: str, status: int) -> None:
    """The per-tenant series of a request refused before it had a usage row: the
    caller's own bad input, or the upstream's 4xx answer to it."""
    telemetry.ORGANIZATION_REQUESTS.labels(organization, endpoint, f"{status // 100}xx").inc()
    kind = telemetry.error_kind(status, "", 0)
    if kind:
        telemetry.ORGANIZATION_ERRORS.labels(organization, kind).inc()


def observe_organization(record: UsageRecord, counters: telemetry.CounterBuffer) -> None:
    """The per-tenant series of one finished request, labelled by the organization's slug."""
    organization = record.organization_slug
    add = counters.add
    status_class = f"{record.status_code // 100}xx"
    add(telemetry.ORGANIZATION_REQUESTS, (organization, record.endpoint, status_class))
    if record.input_tokens:
        add(telemetry.ORGANIZATION_TOKENS, (organization, "input"), record.input_tokens)
    if record.output_tokens:
        add(telemetry.ORGANIZATION_TOKENS, (organization, "output"), record.output_tokens)
    if record.cost:
        add(telemetry.ORGANIZATION_COST, (organization,), float(record.cost))
    kind = telemetry.error_kind(record.status_code, record.error_type, record.attempts)
    if kind:
        add(telemetry.ORGANIZATION_ERRORS, (organization, kind))
    if record.fallbacks_used:
        add(telemetry.ORGANIZATION_FALLBACKS, (organization,), record.fallbacks_used)


# Why a metric row was not written: the ``reason`` label of
# gateway_metric_rows_dropped_total.
DROP_ORGANIZATION_DELETED = "organization_deleted"
DROP_INVALID_ROW = "invalid_row"
DROP_QUEUE_FULL = "queue_full"
DROP_DATABASE_UNREACHABLE = "database_unreachable"
DROP_REASONS = {
    DROP_ORGANIZATION_DELETED: "their organization was deleted",
    DROP_INVALID_ROW: "the database refused them on their own",
    DROP_QUEUE_FULL: "more than GATEWAY_METRICS_MAX_PENDING rows waited for the database",
    DROP_DATABASE_UNREACHABLE: "the database could not be reached or take the write",
}
for _reason in DROP_REASONS:
    # Every reason is exported from the start, at zero, so that alerts see it appear.
    telemetry.METRIC_ROWS_DROPPED.labels(_reason)


# The rows' own faults: a constraint or a value the database refuses, a value that
# cannot be converted for it. Retrying such rows as they are cannot help, so they are
# isolated and dropped. Any other error (the database unreachable, locked or not
# migrated yet, the process misconfigured) is no fault of the rows: they are kept and
# written later.
ROW_ERRORS = (IntegrityError, DataError, ArithmeticError, ValueError)


def database_unavailable(exc: BaseException) -> bool:
    """Whether an error says the rows cannot be written now rather than that they are
    wrong (see ROW_ERRORS)."""
    return not isinstance(exc, ROW_ERRORS)


class WriteOutcome:
    """What became of a batch. Filled in as the work proceeds, so that when the database
    goes away half-way, ``unwritten`` still names exactly the records left to write."""

    def __init__(self, records: list[UsageRecord]):
        self._left = {id(record): record for record in records}
        self.written = 0
        self.detached: Counter = Counter()
        self.dropped: Counter = Counter()
        self.details: dict[str, str] = {}

    @property
    def unwritten(self) -> list[UsageRecord]:
        return list(self._left.values())

    def done(self, records: list[UsageRecord]) -> None:
        for record in records:
            self._left.pop(id(record), None)

    def drop(self, reason: str, count: int, detail: str) -> None:
        self.dropped[reason] += count
        self.details.setdefault(reason, detail)


def _add_usage(records: list[UsageRecord], now: datetime) -> None:
    """Credential usage counters and client keys' last use, for the records not yet
    counted. Both are UPDATEs: a credential or key deleted since matches no row."""
    usage: dict[int, list] = defaultdict(lambda: [0, 0, Decimal(0), None])
    last_used: dict[int, datetime] = {}
    for record in records:
        if record.usage_written:
            continue
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
    for credential_id, (requests, tokens, cost, period) in sorted(usage.items()):
        provider_credential_add_usage(
            credential_id=credential_id,
            period=period,
            requests=requests,
            tokens=tokens,
            cost=cost,
            now=now,
        )
    client_keys_mark_used(last_used=last_used)


# How long the writer waits for a row lock on PostgreSQL (milliseconds). A deletion of
# an organization, provider or key can lock rows in the opposite order to the writer;
# PostgreSQL then aborts one of the two after deadlock_timeout (1 s by default). Giving
# up first, the writer is the one: its rows are kept and written with the next flush,
# and the deletion goes through instead of failing.
LOCK_TIMEOUT_MS = 500


def _yield_to_deletions() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = {int(LOCK_TIMEOUT_MS)}")


def _write_metrics(records: list[UsageRecord]) -> MetricReferenceCheck:
    """Write the rows of ``records`` and fold them into the rollups, after
    ``metrics_check_references`` (whose check is returned)."""
    _yield_to_deletions()
    if connection.vendor != "postgresql":
        return metrics_bulk_create([record.as_metric() for record in records])
    checked = metrics_check_references(records)
    if checked.rows:
        metrics_insert_encoded([_encoded(record, checked) for record in checked.rows])
    return checked


def _encoded(record: UsageRecord, checked: MetricReferenceCheck) -> bytes:
    deleted = checked.deleted_references(record) if checked.missing else None
    if deleted:
        return encode_metric_row({**record.metric_values(), **deleted})
    return record.encoded or record.encode()


def _settle(
    outcome: WriteOutcome, records: list[UsageRecord], checked: MetricReferenceCheck
) -> None:
    """Book a committed part of the batch."""
    outcome.written += len(checked.rows)
    outcome.detached.update(checked.detached)
    if checked.orphaned:
        organizations = sorted({row.organization_id for row in checked.orphaned})
        outcome.drop(
            DROP_ORGANIZATION_DELETED,
            len(checked.orphaned),
            "organization ids " + ", ".join(map(str, organizations)),
        )
    outcome.done(records)


def write_records(records: list[UsageRecord], outcome: WriteOutcome | None = None) -> WriteOutcome:
    """Write a batch: credential usage counters and client keys' last use, then the metric
    rows with their daily rollups.

    Two transactions, so that the one inserting rows holds no lock on a credential or
    key: a deletion that has already removed a row the new rows name would otherwise wait
    for the writer while the writer's check of what its rows name waits for it (a
    deadlock). The counters go first and are not added again when the rows have to be
    retried.

    The rows go in one transaction, after ``metrics_check_references``: what a
    row names that was deleted since its request becomes NULL, and the rows of a deleted
    organization are set aside. Should the database refuse the rows (a value it cannot
    store), the batch is written in halves down to single rows: a row that fails on its
    own is dropped and reported, every other row is written, and the rollups only ever
    count the rows that were. An error saying the database is unavailable is raised as
    it is, with ``outcome.unwritten`` naming the records still to write.
    """
    outcome = outcome if outcome is not None else WriteOutcome(records)
    try:
        with transaction.atomic():
            _yield_to_deletions()
            _add_usage(records, timezone.now())
    except Exception as exc:
        if database_unavailable(exc):
            raise
        # Counters, not rows: the rows below are still written and counted.
        logger.exception("Could not add the usage of %d requests to credentials", len(records))
    for record in records:
        record.usage_written = True

    parts = [list(records)]
    refused = False
    while parts:
        part = parts.pop()
        try:
            with transaction.atomic():
                checked = _write_metrics(part)
        except Exception as exc:
            if database_unavailable(exc):
                raise
            if len(part) == 1:
                record = part[0]
                logger.error(
                    "Dropped the metric row of request %s (organization %s): %s: %s",
                    record.request_id,
                    record.organization_id,
                    type(exc).__name__,
                    exc,
                )
                outcome.drop(DROP_INVALID_ROW, 1, f"{type(exc).__name__}: {exc}")
                outcome.done(part)
            else:
                if not refused:
                    refused = True
                    logger.warning(
                        "The database refused a batch of %d metric rows (%s: %s); writing "
                        "it in parts",
                        len(part),
                        type(exc).__name__,
                        exc,
                    )
                middle = len(part) // 2
                parts.extend((part[middle:], part[:middle]))
            continue
        _settle(outcome, part, checked)
    return outcome


class MetricRecorder:
    """Queues usage records and writes them in batches on the database threads.

    A batch is never retried as a whole for a fault of its own rows: ``write_records``
    isolates what the database refuses, so one bad row cannot hold up the rows behind it.
    Only when the database is unreachable are the rows kept (up to
    GATEWAY_METRICS_MAX_PENDING) and written with the next flush. Every row that is
    not written is counted in gateway_metric_rows_dropped_total with its reason.
    """

    def __init__(self, runtime):
        self.runtime = runtime
        self.pending: list[UsageRecord] = []
        self.wakeup = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.writing: asyncio.Task | None = None
        self.housekeeping_at = 0.0
        self.dropped: Counter = Counter()
        self.last_error = ""
        self.unavailable = False
        self.counters = telemetry.CounterBuffer()
        # The PostgreSQL writer takes its rows encoded (``encode_metric_row``).
        self.encodes_rows = connection.vendor == "postgresql"

    def start(self) -> None:
        self.task = self.runtime.loop.create_task(self._run())

    def record(self, record: UsageRecord) -> None:
        observe(record, self.counters)
        if self.encodes_rows:
            # Here, a few microseconds of each request, rather than all of a batch's at
            # once on the writer thread, which would hold the GIL from the event loop
            # meanwhile. A record that cannot be encoded is left to the writer, whose
            # isolation of bad rows reports it.
            try:
                record.encoded = record.encode()
            except Exception:
                logger.exception("Could not encode the metric row of request %s", record.request_id)
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
            if self.unavailable:
                # Rows kept for retry fill the queue and wake the loop at once: against a
                # database that is down, try again only after the interval.
                await asyncio.sleep(interval)

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
        self.counters.apply()
        if self.writing is not None and not self.writing.done():
            await asyncio.shield(self.writing)
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        self.writing = self.runtime.loop.create_task(self._write(batch))
        # shield(): a shutdown cancelling the flush loop must not abandon a batch half-way
        # (its database thread would go on writing it with nobody to hear how it went);
        # close() waits for it instead.
        await asyncio.shield(self.writing)

    async def _write(self, batch: list[UsageRecord]) -> None:
        # In parts of GATEWAY_METRICS_BATCH_SIZE: after an outage the queue may hold many
        # thousands of rows, and neither a transaction nor the isolation of a bad row
        # should have to span them all.
        size = max(settings.GATEWAY_METRICS_BATCH_SIZE, 1)
        for start in range(0, len(batch), size):
            part = batch[start : start + size]
            outcome = WriteOutcome(part)
            try:
                await self.runtime.db(write_records, part, outcome)
            except Exception as exc:
                unwritten = outcome.unwritten + batch[start + size :]
                self.last_error = f"{type(exc).__name__}: {exc}"
                logger.warning(
                    "Could not write %d metric rows, the database is unavailable (%s); "
                    "keeping them for retry",
                    len(unwritten),
                    self.last_error,
                )
                self.unavailable = True
                self._account(outcome)
                self._keep(unwritten)
                return
            self.unavailable = False
            self._account(outcome)

    def _account(self, outcome: WriteOutcome) -> None:
        if outcome.detached:
            logger.info(
                "Wrote %d metric rows; references to deleted rows left empty: %s",
                outcome.written,
                ", ".join(f"{name} {count}" for name, count in sorted(outcome.detached.items())),
            )
        for reason, count in sorted(outcome.dropped.items()):
            self._count_dropped(reason, count, outcome.details.get(reason, ""))

    def _count_dropped(self, reason: str, count: int, detail: str = "") -> None:
        self.dropped[reason] += count
        telemetry.METRIC_ROWS_DROPPED.labels(reason).inc(count)
        logger.log(
            # Deleting an organization deletes its usage too: expected, but never silent.
            logging.WARNING if reason == DROP_ORGANIZATION_DELETED else logging.ERROR,
            "Dropped %d metric rows (%s): %s%s",
            count,
            reason,
            DROP_REASONS[reason],
            f" ({detail})" if detail else "",
        )

    def _keep(self, batch: list[UsageRecord]) -> None:
        self.pending[:0] = batch
        overflow = len(self.pending) - settings.GATEWAY_METRICS_MAX_PENDING
        if overflow > 0:
            del self.pending[:overflow]
            self._count_dropped(DROP_QUEUE_FULL, overflow, self.last_error)

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        before = Counter(self.dropped)
        for attempt in range(3):
            if attempt:
                await asyncio.sleep(0.2)
            await self.flush()
            if not self.pending:
                break
        if self.pending:
            lost, self.pending = self.pending, []
            self._count_dropped(DROP_DATABASE_UNREACHABLE, len(lost), self.last_error)
        self._report_shutdown(self.dropped - before)

    def _report_shutdown(self, dropped: Counter) -> None:
        if dropped:
            logger.error(
                "At shutdown %d metric rows could not be written: %s",
                sum(dropped.values()),
                "; ".join(
                    f"{count} {reason} ({DROP_REASONS[reason]})"
                    for reason, count in sorted(dropped.items())
                ),
            )

    def write_pending_sync(self) -> None:
        """Write what is queued from the exit hook, with the same isolation of bad rows."""
        self.counters.apply()
        batch, self.pending = self.pending, []
        if not batch:
            return
        before = Counter(self.dropped)
        outcome = WriteOutcome(batch)
        try:
            write_records(batch, outcome)
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            outcome.drop(DROP_DATABASE_UNREACHABLE, len(outcome.unwritten), self.last_error)
        self._account(outcome)
        self._report_shutdown(self.dropped - before)


# --- One request's account ------------------------------------------------------------------


def new_record(call: GatewayCall) -> UsageRecord:
    plan = call.plan
    return UsageRecord(
        organization_id=call.key.organization.pk,
        organization_slug=call.key.organization.slug,
        client_key_id=call.key.id,
        endpoint=call.endpoint.name,
        model_type=call.endpoint.model_type,
        requested_model=call.requested_model,
        request_id=call.request_id,
        routing_rule_id=plan.rule.pk if plan and plan.rule else None,
        strategy=plan.strategy if plan else "",
        streamed=call.stream,
    )


def usage_numbers(usage: dict | None) -> tuple[int, int, int]:
    """``(input, output, cached)`` tokens from an OpenAI usage object."""
    if not isinstance(usage, dict):
        return 0, 0, 0
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    details = usage.get("prompt_tokens_details") or {}
    cached = int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0
    return prompt, completion, cached


def cost_of(model: Model, input_tokens: int, output_tokens: int, cached: int) -> Decimal:
    usage = {
        "input_tokens": input_tokens - cached,
        "cached_input_tokens": cached,
        "output_tokens": output_tokens,
        "requests": 1,
    }
    return estimate_cost(model=model, usage=usage).total


def charge(
    record: UsageRecord, candidate: Candidate, input_used: int, output_used: int, cached: int
) -> tuple[int, Decimal]:
    """Put the usage and its cost on the record; returns ``(tokens, cost)``."""
    cost = cost_of(candidate.model, input_used, output_used, cached)
    record.input_tokens, record.output_tokens, record.cached_tokens = (
        input_used,
        output_used,
        cached,
    )
    record.cost = cost
    return input_used + output_used, cost


def describe(record: UsageRecord, candidate: Candidate) -> None:
    """Name the candidate on the record: the one that answered, or the last that failed."""
    model = candidate.model
    record.served_model = model.catalog_id
    record.provider_slug = model.provider.slug
    record.provider_id = model.provider_id
    record.provider_is_global = model.provider.organization_id is None
    record.model_id = model.pk
    credential = candidate.credential
    record.credential_id = credential.pk if credential is not None else None
    record.credential_quota_period = credential.quota_period if credential is not None else None


def note_failed_attempt(record: UsageRecord, candidate: Candidate, kind: str, status) -> None:
    """Attribute a failed upstream attempt to the provider, credential and model that
    failed, whether the request then fell back, retried or ended."""
    credential = candidate.credential
    record.failed_attempts.append(
        {
            "provider": candidate.model.provider_id,
            "credential": credential.pk if credential is not None else None,
            "model": candidate.model.pk,
            "error_type": kind,
            "status_code": status,
        }
    )


def _queue_record(call: GatewayCall, record: UsageRecord) -> None:
    record.attempts = call.attempts
    record.fallbacks_used = max(call.candidates_tried - 1, 0)
    record.latency_ms = call.elapsed_ms()
    call.runtime.recorder.record(record)


def finish(call: GatewayCall, record: UsageRecord, *, tokens: int, cost: Decimal) -> None:
    """Queue the usage record and settle the key's limits in the background (for streams
    that ended and requests that were cancelled: nothing is left to answer)."""
    _queue_record(call, record)
    if call.reservation is not None and not settle_limits_soon(call, tokens, cost):
        call.runtime.spawn(settle_limits(call, tokens, cost))


async def finish_and_settle(
    call: GatewayCall, record: UsageRecord, *, tokens: int, cost: Decimal
) -> None:
    """Queue the usage record and settle the key's limits before the answer goes out, so
    the client's next request already counts what this one really used (one counter
    update; the metric row itself is still written in the background). Coalesced Redis
    settles are only queued: they land within GATEWAY_LIMIT_SETTLE_INTERVAL_MS, and until
    then the counters hold the reservation, at least the actual cost."""
    _queue_record(call, record)
    await settle_limits(call, tokens, cost)


async def account_error(call: GatewayCall, record: UsageRecord, error: GatewayError) -> None:
    """The request ends in the gateway's own error: nothing was used."""
    record.status_code = error.status
    record.error_type = error.code or error.type
    record.error_message = error.message
    await finish_and_settle(call, record, tokens=0, cost=Decimal(0))


def account_disconnect(call: GatewayCall, record: UsageRecord) -> None:
    """The client hung up before an answer: 499, accounted in the background."""
    record.status_code = 499
    record.error_type = "client_disconnected"
    finish(call, record, tokens=0, cost=Decimal(0))
