"""Usage rows survive deletions: a row naming something deleted since its request is
written with that reference empty, a row of a deleted organization is counted as dropped
with its reason, and neither holds up the rows behind it.

The batches are written in transactions of their own (``transactional_db``), as the
gateway writes them: the check of what a batch names locks those rows until it commits.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import tracemalloc
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, timedelta
from decimal import Decimal

import openai
import pytest
from django.db import OperationalError, connection
from django.db.models import Count, Sum, signals
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client import REGISTRY

from gateway import runtime as gateway_runtime
from gateway.accounting import MetricRecorder, UsageRecord, WriteOutcome, write_records
from modelhub import rollups, services
from modelhub.models import (
    ClientKey,
    ErrorSource,
    MetricDaily,
    Model,
    ModelMetric,
    Organization,
    Provider,
    ProviderCredential,
)
from tests.support.api import client_for
from tests.support.builders import rollup_snapshot
from tests.support.gateway import metrics_rows, wait_for

MESSAGES = [{"role": "user", "content": "hi"}]


def dropped(reason: str) -> float:
    value = REGISTRY.get_sample_value("gateway_metric_rows_dropped_total", {"reason": reason})
    return value or 0.0


def usage(organization_id: int, **fields) -> UsageRecord:
    fields.setdefault("input_tokens", 10)
    fields.setdefault("output_tokens", 5)
    fields.setdefault("cost", Decimal("0.0001"))
    fields.setdefault("latency_ms", 120)
    fields.setdefault("attempts", 1)
    return UsageRecord(
        organization_id=organization_id,
        client_key_id=fields.pop("client_key_id", None),
        endpoint="chat.completions",
        model_type="chat",
        requested_model=fields.pop("requested_model", "alpha/llama-3.1-8b"),
        request_id="gen-" + uuid.uuid4().hex,
        **fields,
    )


@pytest.fixture
def doomed(transactional_db, org, catalog):
    """One row of each kind a metric names, deleted: only their ids are left."""
    private = Provider.objects.create(
        organization=org, name="Private", slug="private", base_url="http://127.0.0.1:9/v1"
    )
    on_private = Model.objects.create(provider=private, provider_model_id="m1", model_name="M1")
    model = Model.objects.create(
        provider=catalog["providers"]["alpha"], provider_model_id="gone", model_name="Gone"
    )
    credential = services.provider_credential_create(
        organization=org, provider=catalog["providers"]["beta"], secret="sk-gone-0001", name="gone"
    )
    key = services.client_key_create(organization=org, name="gone").client_key
    rule = services.routing_rule_save(organization=org, name="gone", match_model="gone")
    doomed_org = Organization.objects.create(name="Doomed", slug="doomed")
    ids = {
        "provider": private.pk,
        "provider_model": on_private.pk,
        "model": model.pk,
        "credential": credential.pk,
        "client_key": key.pk,
        "routing_rule": rule.pk,
        "organization": doomed_org.pk,
    }
    for row in (private, model, credential, key, rule, doomed_org):
        row.delete()
    return ids


def mixed_batch(org, catalog, doomed):
    """Good rows, rows naming each kind of deleted row, rows of a deleted organization and
    one row the database refuses on its own (a negative token count)."""
    alpha = catalog["models"]["alpha"]
    credential = catalog["credentials"]["alpha"]
    key = services.client_key_create(organization=org, name="live").client_key
    rule = services.routing_rule_save(organization=org, name="live", match_model="fast")
    live = {
        "client_key_id": key.pk,
        "credential_id": credential.pk,
        "credential_quota_period": credential.quota_period,
        "provider_id": alpha.provider_id,
        "model_id": alpha.pk,
        "routing_rule_id": rule.pk,
        "served_model": alpha.catalog_id,
        "provider_slug": "alpha",
    }
    good = [usage(org.pk, **live) for _ in range(4)]
    dangling = {
        "client_key": usage(org.pk, **{**live, "client_key_id": doomed["client_key"]}),
        "credential": usage(org.pk, **{**live, "credential_id": doomed["credential"]}),
        "model": usage(org.pk, **{**live, "model_id": doomed["model"]}),
        "routing_rule": usage(org.pk, **{**live, "routing_rule_id": doomed["routing_rule"]}),
        "provider": usage(
            org.pk,
            **{**live, "provider_id": doomed["provider"], "model_id": doomed["provider_model"]},
        ),
    }
    orphans = [usage(doomed["organization"], **live) for _ in range(2)]
    invalid = usage(org.pk, **{**live, "input_tokens": -1})
    batch = [*good[:2], *dangling.values(), orphans[0], invalid, *good[2:], orphans[1]]
    return batch, good, dangling, key, credential


def test_a_batch_names_no_deleted_row_whichever_the_backend(transactional_db, org, doomed):
    """The table has no foreign key constraints (the database would check six for each
    row); the writer's check is what keeps its references whole."""
    assert not [
        constraint
        for constraint in connection.introspection.get_constraints(
            connection.cursor(), ModelMetric._meta.db_table
        ).values()
        if constraint["foreign_key"]
    ]
    record = usage(
        org.pk, client_key_id=doomed["client_key"], model_id=doomed["model"], provider_id=None
    )
    outcome = write_records([record, usage(doomed["organization"])])
    assert outcome.written == 1 and outcome.detached == {"client_key": 1, "model": 1}
    assert outcome.dropped == {"organization_deleted": 1}
    row = ModelMetric.objects.get()
    assert (row.organization_id, row.client_key_id, row.model_id) == (org.pk, None, None)


def test_write_isolates_dangling_references_and_refused_rows(org, catalog, doomed, caplog):
    batch, good, dangling, key, credential = mixed_batch(org, catalog, doomed)
    with caplog.at_level(logging.WARNING, logger="gateway.accounting"):
        outcome = write_records(batch)

    assert outcome.unwritten == []
    assert outcome.written == len(good) + len(dangling)
    assert outcome.dropped == {"organization_deleted": 2, "invalid_row": 1}
    assert outcome.detached == {
        "client_key": 1,
        "credential": 1,
        "model": 2,
        "routing_rule": 1,
        "provider": 1,
    }
    rows = {row.request_id: row for row in ModelMetric.objects.all()}
    assert set(rows) == {record.request_id for record in [*good, *dangling.values()]}
    for record in good:
        row = rows[record.request_id]
        assert (row.client_key_id, row.credential_id, row.model_id, row.routing_rule_id) == (
            record.client_key_id,
            record.credential_id,
            record.model_id,
            record.routing_rule_id,
        )
    for reference, record in dangling.items():
        row = rows[record.request_id]
        assert getattr(row, f"{reference}_id") is None
        assert row.input_tokens == 10 and row.cost == Decimal("0.0001")
    provider_row = rows[dangling["provider"].request_id]
    assert provider_row.model_id is None and provider_row.client_key_id == key.pk
    assert "IntegrityError" in caplog.text and dangling["client_key"].request_id not in caplog.text

    # The live credential counts every request that named it, written or not; the key
    # saw its last use.
    credential.refresh_from_db()
    named = [r for r in batch if r.credential_id == credential.pk]
    assert credential.used_requests == len(named)
    assert credential.used_tokens == sum(r.input_tokens + r.output_tokens for r in named)
    key.refresh_from_db()
    assert key.last_used_at is not None

    # The rollups hold exactly the rows written.
    written = rollup_snapshot()
    assert sum(row[6] for row in written[0]) == outcome.written
    rollups.rebuild()
    assert rollup_snapshot() == written


def test_the_rollups_written_with_the_rows_are_what_a_rebuild_computes(
    transactional_db, org, catalog, monkeypatch
):
    """The writer folds its rows into the rollups as it writes them (on PostgreSQL, in the
    statements that insert them, here of 5 rows each); ``rebuild()`` computes them again
    from the rows. Latencies on and around the bucket bounds, successes and failures of
    each source, two UTC days, a request that reached no provider, and each key of the
    usage rollup."""
    monkeypatch.setattr(services, "METRIC_ROWS_PER_STATEMENT", 5)
    alpha = catalog["models"]["alpha"]
    beta = catalog["models"]["beta"]
    key = services.client_key_create(organization=org, name="fold").client_key
    now = timezone.now()
    yesterday = now.replace(hour=23, minute=59, second=59) - timedelta(days=1)
    on_alpha = {
        "provider_id": alpha.provider_id,
        "model_id": alpha.pk,
        "served_model": alpha.catalog_id,
    }
    on_beta = {
        "provider_id": beta.provider_id,
        "model_id": beta.pk,
        "served_model": beta.catalog_id,
    }
    latencies = [0, 1, 24, 25, 26, 99, 100, 101, 119_999, 120_000, 120_001, 900_000]
    batch = [
        usage(org.pk, latency_ms=latency, cost=Decimal(f"0.00{index}7"), **on_alpha)
        for index, latency in enumerate(latencies)
    ]
    batch += [
        usage(org.pk, client_key_id=key.pk, input_tokens=3, output_tokens=0, **on_beta),
        usage(org.pk, created_at=yesterday, fallbacks_used=2, **on_beta),
        usage(org.pk, status_code=400, error_type="invalid_request_error", **on_alpha),
        usage(org.pk, status_code=502, error_type="upstream_error", **on_beta),
        usage(org.pk, status_code=429, error_type="rate_limit_exceeded", attempts=0),
        usage(org.pk, status_code=503, error_type="no_provider_available", attempts=0),
    ]
    outcome = write_records(batch)
    assert outcome.written == len(batch) and not outcome.dropped

    written = rollup_snapshot()
    usage_rows, latency_rows = written
    assert sum(row[6] for row in usage_rows) == len(batch)
    assert {row[1] for row in usage_rows} == {now.astimezone(UTC).date(), yesterday.date()}
    buckets = {row[3]: row[4] for row in latency_rows if row[2] == alpha.provider_id}
    expected: dict[int, int] = {}
    for latency in latencies:
        bucket = rollups.latency_bucket(latency)
        expected[bucket] = expected.get(bucket, 0) + 1
    assert buckets == expected
    rollups.rebuild()
    assert rollup_snapshot() == written


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite runs one writer at a time")
def test_writers_flushing_at_once_add_up_in_the_rollups(transactional_db, org, catalog):
    """Workers share the database: batches naming the same rollup rows, written from
    several threads at once (each with its own connection), all land, and the rollups
    count every row once. The keys come in a different order in each batch."""
    models = [catalog["models"]["alpha"], catalog["models"]["beta"]]
    latencies = [10, 60, 130, 900, 2_200]

    def batch(seed: int) -> list[UsageRecord]:
        records = [
            usage(
                org.pk,
                provider_id=model.provider_id,
                model_id=model.pk,
                served_model=model.catalog_id,
                latency_ms=latency,
            )
            for model in models
            for latency in latencies
        ]
        return records[seed % len(records) :] + records[: seed % len(records)]

    def write(seed: int) -> WriteOutcome:
        try:
            return write_records(batch(seed)[:: 1 if seed % 2 else -1])
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(write, range(24)))

    assert [outcome.written for outcome in outcomes] == [10] * 24
    assert not any(outcome.dropped for outcome in outcomes)
    assert ModelMetric.objects.count() == 240
    assert sum(MetricDaily.objects.values_list("requests", flat=True)) == 240
    written = rollup_snapshot()
    rollups.rebuild()
    assert rollup_snapshot() == written


def test_a_batch_checks_what_it_names_at_once_whatever_its_size(org, catalog, doomed):
    """What a batch names is looked up once per batch, not per row: one statement on
    PostgreSQL, which locks the rows it finds; a query per referenced table on SQLite."""
    _, good, _, _, _ = mixed_batch(org, catalog, doomed)
    tables = [
        field.related_model._meta.db_table
        for field in ModelMetric._meta.concrete_fields
        if field.is_relation
    ]

    def lookups(records):
        with CaptureQueriesContext(connection) as queries:
            outcome = write_records(records)
        assert outcome.written == len(records) and outcome.detached == {}
        assert outcome.dropped == {}
        return [
            q["sql"]
            for q in queries.captured_queries
            if q["sql"].startswith(("SELECT", "WITH"))
            and any(f'FROM "{table}"' in q["sql"] for table in tables)
        ]

    few = lookups(good[:1])
    many = lookups([usage(org.pk, **_same_names(good[0])) for _ in range(40)])
    assert len(few) == len(many) == (1 if connection.vendor == "postgresql" else len(tables))
    if connection.vendor == "postgresql":
        assert "FOR KEY SHARE" in many[0]
    assert ModelMetric.objects.count() == 41


def _same_names(record: UsageRecord) -> dict:
    return {
        name: getattr(record, name)
        for name in ("client_key_id", "credential_id", "provider_id", "model_id")
        + ("routing_rule_id", "credential_quota_period", "served_model", "provider_slug")
    }


def test_a_usage_record_becomes_the_row_it_names_field_by_field(org):
    """``as_metric`` sets the row's attributes itself, without ``Model.__init__``: every
    concrete field must get its own value, and a field added to the model must be set."""
    # Each value once: the row must carry what the record holds, under the same name.
    fields = {
        "client_key_id": 11,
        "credential_id": 12,
        "provider_id": 13,
        "model_id": 14,
        "routing_rule_id": 15,
        "served_model": "alpha/served",
        "strategy": "fallback",
        "input_tokens": 21,
        "output_tokens": 22,
        "cached_tokens": 23,
        "cost": Decimal("0.25"),
        "latency_ms": 31,
        "time_to_first_token_ms": 32,
        "status_code": 502,
        "error_type": "upstream_error",
        "error_message": "bad gateway",
        "attempts": 3,
        "fallbacks_used": 2,
        "streamed": True,
        "failed_attempts": [{"provider": "alpha", "status_code": 502}],
    }
    record = usage(org.pk, **fields)
    row = record.as_metric()
    expected = {
        **fields,
        "id": None,
        "organization_id": org.pk,
        "request_id": record.request_id,
        "model_type": "chat",
        "requested_model": "alpha/llama-3.1-8b",
        "total_tokens": 43,
        "success": False,
        "error_source": ErrorSource.PROVIDER,
        "created_at": record.created_at,
    }
    assert {f.attname: getattr(row, f.attname) for f in ModelMetric._meta.concrete_fields} == (
        expected
    )
    # Nor may the model gain a receiver that Model.__init__ would have run.
    assert not signals.pre_init.has_listeners(ModelMetric)
    assert not signals.post_init.has_listeners(ModelMetric)


def test_an_encoded_row_takes_the_memory_of_its_length(org):
    """A worker holds a batch of encoded rows at a time: each is copied out of orjson's
    output, whose buffer is several kilobytes however short the row."""
    records = [usage(org.pk) for _ in range(200)]
    records[0].encode()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        encoded = [record.encode() for record in records]
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    length = sum(map(len, encoded))
    assert length < held < 2 * length


def test_a_row_is_read_back_as_it_was_written(org):
    """The writer's path (rows as one JSON array on PostgreSQL): text, numbers and the
    JSON of the failed attempts come back unchanged, characters JSON escapes included."""
    awkward = 'quote " backslash \\ tab \t newline \n unicode \u00e9\u2603 nul-free'
    failed = [{"provider": 1, "error_type": awkward, "status_code": 502, "detail": None}]
    record = usage(
        org.pk,
        error_message=awkward,
        failed_attempts=failed,
        cost=Decimal("0.0001234567"),
        status_code=502,
    )
    write_records([record])
    row = ModelMetric.objects.get(request_id=record.request_id)
    assert row.failed_attempts == failed
    assert row.error_message == awkward
    assert row.cost == Decimal("0.0001234567")
    assert row.created_at == record.created_at


def test_write_at_exit_isolates_the_same_way(org, catalog, doomed, caplog):
    """The exit hook (a server without lifespan events) writes through the same path and
    reports what it could not write, per reason."""
    batch, good, dangling, _, _ = mixed_batch(org, catalog, doomed)
    recorder = MetricRecorder(runtime=None)
    recorder.pending = list(batch)
    before = {reason: dropped(reason) for reason in ("organization_deleted", "invalid_row")}
    with caplog.at_level(logging.ERROR, logger="gateway.accounting"):
        recorder.write_pending_sync()

    assert recorder.pending == []
    assert ModelMetric.objects.count() == len(good) + len(dangling)
    assert dropped("organization_deleted") - before["organization_deleted"] == 2
    assert dropped("invalid_row") - before["invalid_row"] == 1
    assert "At shutdown 3 metric rows could not be written" in caplog.text
    assert "2 organization_deleted" in caplog.text and "1 invalid_row" in caplog.text
    assert "unreachable" not in caplog.text


# --- The database unavailable ---------------------------------------------------------------


class UnavailableDatabase:
    """The boundary a recorder writes through, failing its calls as a database server that
    refuses connections would (the calls numbered in ``failing``), running the others on
    the test database."""

    def __init__(self, failing):
        self.failing = failing
        self.calls = 0
        self.loop = None

    async def db(self, fn, *args, **kwargs):
        self.calls += 1
        if self.calls in self.failing:
            raise OperationalError(
                'connection to server at "127.0.0.1", port 5433 failed: Connection refused'
            )

        def job():
            try:
                return fn(*args, **kwargs)
            finally:
                connection.close()

        return await asyncio.to_thread(job)


def run_recorder(database, scenario):
    async def main():
        database.loop = asyncio.get_running_loop()
        recorder = MetricRecorder(database)
        await scenario(recorder)
        return recorder

    return asyncio.run(main())


@pytest.fixture
def live(transactional_db, org, catalog):
    credential = catalog["credentials"]["alpha"]
    return {
        "credential_id": credential.pk,
        "credential_quota_period": credential.quota_period,
        "model_id": catalog["models"]["alpha"].pk,
        "provider_id": catalog["providers"]["alpha"].pk,
    }


def test_rows_wait_for_an_unreachable_database_up_to_the_limit(settings, org, live):
    settings.GATEWAY_METRICS_MAX_PENDING = 6
    records = [usage(org.pk, **live) for _ in range(8)]
    before = {reason: dropped(reason) for reason in ("queue_full", "invalid_row")}

    async def scenario(recorder):
        for record in records[:4]:
            recorder.record(record)
        await recorder.flush()
        assert recorder.pending == records[:4]
        for record in records[4:]:
            recorder.record(record)
        await recorder.flush()
        # The oldest rows go first when the queue is over its limit.
        assert recorder.pending == records[2:]
        await recorder.flush()
        assert recorder.pending == []

    run_recorder(UnavailableDatabase(failing={1, 2}), scenario)
    assert set(ModelMetric.objects.values_list("request_id", flat=True)) == {
        record.request_id for record in records[2:]
    }
    assert dropped("queue_full") - before["queue_full"] == 2
    assert dropped("invalid_row") == before["invalid_row"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the PostgreSQL writer's path")
def test_a_row_is_encoded_when_recorded_and_one_that_cannot_be_is_dropped_alone(org, live, caplog):
    """The recorder encodes each row as its request is recorded, so that the writer thread
    only joins them. A row that cannot be encoded (a value JSON has no form for) is left
    to the writer, which drops it alone, reported, and writes the others."""
    records = [usage(org.pk, **live) for _ in range(5)]
    records[2].failed_attempts = [{"detail": object()}]
    before = dropped("invalid_row")

    async def scenario(recorder):
        for record in records:
            recorder.record(record)
        assert [record.encoded is not None for record in records] == [1, 1, 0, 1, 1]
        assert records[0].encoded == records[0].encode()
        await recorder.flush()
        assert recorder.pending == []

    with caplog.at_level(logging.ERROR, logger="gateway.accounting"):
        run_recorder(UnavailableDatabase(failing=set()), scenario)
    assert set(ModelMetric.objects.values_list("request_id", flat=True)) == {
        record.request_id for i, record in enumerate(records) if i != 2
    }
    assert dropped("invalid_row") - before == 1
    assert f"Could not encode the metric row of request {records[2].request_id}" in caplog.text


def test_a_part_written_before_the_database_went_away_is_not_written_twice(
    settings, org, catalog, live
):
    settings.GATEWAY_METRICS_BATCH_SIZE = 2
    records = [usage(org.pk, **live) for _ in range(5)]

    async def scenario(recorder):
        recorder.pending = list(records)
        await recorder.flush()
        assert recorder.pending == records[2:]
        await recorder.flush()
        assert recorder.pending == []

    database = UnavailableDatabase(failing={2})
    run_recorder(database, scenario)
    assert database.calls == 4  # 2 rows, refused, then 2 + 1
    assert sorted(ModelMetric.objects.values_list("request_id", flat=True)) == sorted(
        record.request_id for record in records
    )
    credential = ProviderCredential.objects.get(pk=live["credential_id"])
    assert credential.used_requests == 5
    assert MetricDaily.objects.get().requests == 5


def test_shutdown_with_the_database_down_says_so(org, live, caplog):
    records = [usage(org.pk, **live) for _ in range(3)]
    before = dropped("database_unreachable")

    async def scenario(recorder):
        recorder.pending = list(records)
        await recorder.close()
        assert recorder.pending == []

    with caplog.at_level(logging.ERROR, logger="gateway.accounting"):
        run_recorder(UnavailableDatabase(failing=range(1, 100)), scenario)
    assert ModelMetric.objects.count() == 0
    assert dropped("database_unreachable") - before == 3
    assert "At shutdown 3 metric rows could not be written: 3 database_unreachable" in caplog.text
    assert "Connection refused" in caplog.text


# --- Under traffic --------------------------------------------------------------------------


class Traffic:
    """Requests through the real OpenAI SDK, counting what the gateway answered."""

    def __init__(self, gateway, raw_key: str, model: str):
        self.sdk = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=raw_key, max_retries=0)
        self.model = model
        self.statuses: list[int] = []
        self.lock = threading.Lock()

    def send(self, count: int) -> None:
        for _ in range(count):
            try:
                self.sdk.chat.completions.create(model=self.model, messages=MESSAGES)
                status = 200
            except openai.APIStatusError as exc:
                status = exc.status_code
            with self.lock:
                self.statuses.append(status)

    @property
    def recorded(self) -> int:
        """Requests that leave a usage row: all but those refused at authentication."""
        return sum(1 for status in self.statuses if status != 401)


def flush() -> None:
    """Run one flush of the gateway's recorder on its event loop and wait for it."""
    runtime = gateway_runtime._runtime
    assert runtime is not None
    asyncio.run_coroutine_threadsafe(runtime.recorder.flush(), runtime.loop).result(timeout=30)


@pytest.fixture
def tenants(org, other_org, catalog, upstream, owner):
    """The organization whose things get deleted, with an org-private provider the victim
    requests go to, and a bystander organization on the shared catalog."""
    private = Provider.objects.create(
        organization=org, name="Private", slug="private", base_url=f"{upstream.url}/openai/v1"
    )
    model = Model.objects.create(
        provider=private,
        provider_model_id="llama-3.1-8b",
        model_name="Private Llama",
        pricing_prompt=Decimal("0.000001"),
        pricing_completion=Decimal("0.000002"),
    )
    credential = services.provider_credential_create(
        organization=org, provider=private, secret="sk-private-0001", name="private"
    )
    rule = services.routing_rule_save(
        organization=org, name="fast", match_model="fast", targets=[{"model": model}]
    )
    services.provider_credential_create(
        organization=other_org,
        provider=catalog["providers"]["alpha"],
        secret="sk-other-0001",
        name="alpha",
    )
    return {
        "provider": private,
        "model": model,
        "credential": credential,
        "routing_rule": rule,
        "victim_key": services.client_key_create(organization=org, name="victim"),
        "same_org_key": services.client_key_create(organization=org, name="neighbour"),
        "other_org_key": services.client_key_create(organization=other_org, name="other"),
        "api": client_for(owner, org),
    }


DELETIONS = {
    # kind: (the victim's requested model, the API path of the deletion, the metric's field)
    "client_key": ("private/llama-3.1-8b", "client-keys/{victim_key}/", "client_key_id"),
    "credential": ("private/llama-3.1-8b", "api-keys/{credential}/", "credential_id"),
    "model": ("private/llama-3.1-8b", "models/{model}/", "model_id"),
    "routing_rule": ("fast", "routing-rules/{routing_rule}/", "routing_rule_id"),
    "provider": ("private/llama-3.1-8b", "providers/{provider}/", "provider_id"),
    "organization": ("private/llama-3.1-8b", "organizations/acme/", None),
}


@pytest.fixture
def quiet_gateway(gateway_settings, gateway):
    """The gateway with its periodic flush out of the way: the test flushes, so that rows
    are known to be queued when the deletion commits. Restarted for the setting to hold."""
    gateway_settings.GATEWAY_METRICS_FLUSH_SECONDS = 3600
    gateway.stop()
    from config.asgi import application
    from tests.support.upstream import ServerThread

    server = ServerThread(application, lifespan="on").start()
    yield server
    server.stop()


@pytest.mark.parametrize("kind", list(DELETIONS))
def test_deletion_under_traffic_keeps_every_row_recorded(
    kind, org, other_org, tenants, quiet_gateway, caplog
):
    victim_model, path, field_name = DELETIONS[kind]
    victim = Traffic(quiet_gateway, tenants["victim_key"].raw_key, victim_model)
    bystanders = [
        Traffic(quiet_gateway, tenants["other_org_key"].raw_key, "alpha/llama-3.1-8b"),
    ]
    if kind != "organization":
        bystanders.append(
            Traffic(quiet_gateway, tenants["same_org_key"].raw_key, "alpha/llama-3.1-8b")
        )
    target = {
        name: (value.client_key.pk if name.endswith("_key") else value.pk)
        for name, value in tenants.items()
        if name not in ("api",)
    }
    url = "/api/modelhub/" + path.format(**target)
    before = dropped("organization_deleted")

    # Rows written before the deletion, and rows queued when it commits.
    victim.send(3)
    flush()
    assert ModelMetric.objects.count() == 3
    victim.send(4)
    assert victim.recorded == 7
    with caplog.at_level(logging.INFO, logger="gateway.accounting"):
        with ThreadPoolExecutor(max_workers=len(bystanders) + 1) as pool:
            running = [pool.submit(traffic.send, 12) for traffic in bystanders]
            # The deletion commits while the other tenants' requests are being served.
            response = tenants["api"].delete(url)
            assert response.status_code == 204, response.content
            # Requests that still come in with cached keys and plans name the deleted row.
            running.append(pool.submit(victim.send, 4))
            for future in running:
                future.result()
        flush()
        for traffic in bystanders:
            traffic.send(3)
        flush()

    victim_rows = ModelMetric.objects.filter(requested_model=victim_model)
    for traffic in bystanders:
        assert traffic.statuses == [200] * 15
    bystander_rows = ModelMetric.objects.filter(requested_model="alpha/llama-3.1-8b")
    assert bystander_rows.count() == 15 * len(bystanders)
    assert set(bystander_rows.values_list("organization_id", flat=True)) == (
        {other_org.pk} if kind == "organization" else {org.pk, other_org.pk}
    )
    if kind == "organization":
        # The rows queued at the deletion and those of requests served afterwards from
        # cached keys can no longer exist: counted, with their reason.
        assert victim_rows.count() == 0
        lost = victim.recorded - 3
        assert dropped("organization_deleted") - before == lost
        assert f"Dropped {lost} metric rows (organization_deleted)" in caplog.text
    else:
        assert victim_rows.count() == victim.recorded
        # No row names the deleted row (requests after the deletion may be served by
        # another credential or provider, which their rows name).
        deleted_pk = target["victim_key" if kind == "client_key" else kind]
        assert not victim_rows.filter(**{field_name: deleted_pk}).exists()
        assert victim_rows.filter(**{field_name: None}).exists()
        assert dropped("organization_deleted") == before
        assert "references to deleted rows left empty" in caplog.text
    assert "refused" not in caplog.text and "unreachable" not in caplog.text

    # The rollups count the rows written, per organization and day.
    def totals(queryset, requests):
        return sorted(
            queryset.values_list("organization_id")
            .annotate(n=Sum(requests) if requests else Count("id"), cost=Sum("cost"))
            .order_by()
        )

    assert totals(MetricDaily.objects.all(), "requests") == totals(ModelMetric.objects.all(), None)


def test_credential_usage_and_last_use_survive_deleted_rows(tenants, quiet_gateway):
    """The counters of a deleted credential and the last use of a deleted key are
    UPDATEs that match nothing: the rest of the batch is still written."""
    victim = Traffic(quiet_gateway, tenants["victim_key"].raw_key, "private/llama-3.1-8b")
    neighbour = Traffic(quiet_gateway, tenants["same_org_key"].raw_key, "alpha/llama-3.1-8b")
    victim.send(3)
    neighbour.send(2)
    tenants["credential"].delete()
    ClientKey.objects.filter(pk=tenants["victim_key"].client_key.pk).delete()
    flush()
    assert ModelMetric.objects.count() == 5
    alpha = ProviderCredential.objects.get(provider__slug="alpha", organization__slug="acme")
    assert alpha.used_requests == 2
    neighbour_key = ClientKey.objects.get(pk=tenants["same_org_key"].client_key.pk)
    assert neighbour_key.last_used_at is not None


def test_shutdown_names_what_it_could_not_write(org, tenants, quiet_gateway, caplog):
    """Rows of an organization deleted before the last flush are reported as such at
    shutdown, not as a database that is unreachable."""
    victim = Traffic(quiet_gateway, tenants["victim_key"].raw_key, "private/llama-3.1-8b")
    neighbour = Traffic(quiet_gateway, tenants["other_org_key"].raw_key, "alpha/llama-3.1-8b")
    victim.send(2)
    neighbour.send(3)
    Organization.objects.filter(pk=org.pk).delete()
    with caplog.at_level(logging.ERROR, logger="gateway.accounting"):
        quiet_gateway.stop()
    assert ModelMetric.objects.count() == 3
    assert "At shutdown 2 metric rows could not be written: 2 organization_deleted" in caplog.text
    assert "unreachable" not in caplog.text


def test_an_organization_deleted_while_a_batch_of_its_rows_is_written(
    transactional_db, org, monkeypatch
):
    """The writer has locked the organization (its check) and has yet to add to the
    rollups that the deletion deletes: the deletion waits for the batch, then deletes it
    with the rest. Neither waits for the other in a cycle, which would end in the
    writer's lock timeout (a batch kept for later, the database taken for unavailable)."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite runs one writer at a time")
    write_records([usage(org.pk)])  # a rollup row for the deletion to delete
    from gateway import accounting

    insert = accounting.metrics_insert_encoded
    checked = threading.Event()

    def once_the_deletion_waits(encoded):
        checked.set()
        # The deletion is waiting for a lock: on the organization, or (locking it last)
        # on the organization after it has deleted the rollups this batch adds to.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not waiting_for_locks():
            time.sleep(0.02)
        insert(encoded)

    monkeypatch.setattr(accounting, "metrics_insert_encoded", once_the_deletion_waits)
    outcomes: dict = {}

    def write():
        try:
            outcomes["write"] = write_records([usage(org.pk) for _ in range(3)])
        except Exception as exc:
            outcomes["write"] = exc
        finally:
            connection.close()

    def delete():
        try:
            services.organization_delete(organization=Organization.objects.get(pk=org.pk))
            outcomes["delete"] = "deleted"
        except Exception as exc:
            outcomes["delete"] = exc
        finally:
            connection.close()

    writer = threading.Thread(target=write)
    writer.start()
    assert checked.wait(10)
    deleter = threading.Thread(target=delete)
    deleter.start()
    writer.join(15)
    deleter.join(15)
    assert outcomes["delete"] == "deleted"
    assert isinstance(outcomes["write"], WriteOutcome), outcomes["write"]
    assert outcomes["write"].written == 3
    assert not ModelMetric.objects.filter(organization_id=org.pk).exists()
    assert not MetricDaily.objects.filter(organization_id=org.pk).exists()


def waiting_for_locks() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0] > 0


def test_deletions_racing_the_periodic_flush_succeed(org, other_org, tenants, gateway, owner):
    """With the flush running every 50 ms, a usage row can commit between Django's
    clearing of the references and its DELETE: the deletion must not fail on it."""
    bystander = Traffic(gateway, tenants["other_org_key"].raw_key, "alpha/llama-3.1-8b")
    victims: list[Traffic] = []

    def under_traffic(issued, path):
        victim = Traffic(gateway, issued.raw_key, "private/llama-3.1-8b")
        victims.append(victim)
        stop = threading.Event()

        def send():
            while not stop.is_set():
                victim.send(1)
                bystander.send(1)

        sender = threading.Thread(target=send)
        sender.start()
        try:
            wait_for(lambda: len(victim.statuses) >= 5)
            response = tenants["api"].delete(f"/api/modelhub/{path}")
            wait_for(lambda: len(victim.statuses) >= 15)
        finally:
            stop.set()
            sender.join()
        assert response.status_code == 204, response.content

    for name in ("one", "two", "three"):
        issued = services.client_key_create(organization=org, name=name)
        under_traffic(issued, f"client-keys/{issued.client_key.pk}/")
    wait_for(
        lambda: (
            ModelMetric.objects.filter(organization=org).count()
            == sum(victim.recorded for victim in victims)
        )
    )
    assert not ModelMetric.objects.filter(organization=org, client_key__isnull=False).exists()
    under_traffic(tenants["victim_key"], f"providers/{tenants['provider'].pk}/")
    issued = services.client_key_create(organization=org, name="last")
    under_traffic(issued, "organizations/acme/")

    assert bystander.statuses == [200] * len(bystander.statuses)
    metrics_rows(len(bystander.statuses), organization=other_org)
    assert ModelMetric.objects.filter(organization=other_org).count() == len(bystander.statuses)
    wait_for(lambda: not ModelMetric.objects.filter(organization_id=org.pk).exists())


def test_the_database_applies_the_usage_tables_on_delete(transactional_db):
    """On PostgreSQL the rollups' constraints carry the action themselves (see migration
    0007); an AlterField on one of these keys would quietly take it away again."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite runs one writer at a time: the constraints keep Django's default")
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT con.conrelid::regclass::text, att.attname, con.confdeltype, con.condeferred
            FROM pg_constraint con
            JOIN pg_attribute att ON att.attrelid = con.conrelid AND att.attnum = con.conkey[1]
            WHERE con.contype = 'f'
              AND con.conrelid::regclass::text IN
                  ('model_metrics', 'metric_daily', 'metric_daily_latency')
            """
        )
        actions = {
            (table, column): (action, deferred) for table, column, action, deferred in cursor
        }
    assert actions == {
        ("metric_daily", "organization_id"): ("c", True),
        ("metric_daily_latency", "organization_id"): ("c", True),
    }


METRIC_REFERENCES = {
    # kind: (the table Django deletes from, the metric row's column)
    "organization": ("organizations", "organization_id"),
    "client_key": ("client_keys", "client_key_id"),
    "credential": ("provider_credentials", "credential_id"),
    "provider": ("providers", "provider_id"),
    "model": ("models", "model_id"),
    "routing_rule": ("routing_rules", "routing_rule_id"),
}


@pytest.mark.parametrize("kind", list(METRIC_REFERENCES))
def test_a_row_written_while_django_deletes_what_it_names_follows_on_delete(
    transactional_db, org, catalog, kind
):
    """Django clears the references to a row, then deletes it; a metric row committed in
    between still names it. The DELETE itself clears that reference (or deletes the row
    of a deleted organization): the triggers of migration 0013, in place of the
    constraints' actions."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite runs one writer at a time: Django's clearing is all there is")
    provider = Provider.objects.create(
        organization=org, name="Private", slug="private", base_url="http://127.0.0.1:9/v1"
    )
    victims = {
        "organization": lambda: Organization.objects.create(name="Doomed", slug="doomed"),
        "client_key": lambda: services.client_key_create(organization=org, name="k").client_key,
        "credential": lambda: services.provider_credential_create(
            organization=org, provider=provider, secret="sk-doomed-0001", name="doomed"
        ),
        "provider": lambda: provider,
        "model": lambda: Model.objects.create(
            provider=provider, provider_model_id="m1", model_name="M1"
        ),
        "routing_rule": lambda: services.routing_rule_save(
            organization=org, name="doomed", match_model="doomed"
        ),
    }
    victim = victims[kind]()
    table, column = METRIC_REFERENCES[kind]
    kept = ModelMetric.objects.create(organization=org, requested_model="kept")
    names = {"organization_id": org.pk, column: victim.pk}
    late: list[str] = []

    def between(execute, sql, params, many, context):
        if not late and sql.startswith(f'DELETE FROM "{table}" '):
            late.append("late")
            # The writer's statement, without its check: as a row checked just before.
            row = ModelMetric(requested_model="late", **names)
            services.metrics_insert_encoded([services.encode_metric_row(row.__dict__)])
        return execute(sql, params, many, context)

    with connection.execute_wrapper(between):
        victim.delete()
    assert late == ["late"]
    rows = ModelMetric.objects.filter(requested_model="late")
    if kind == "organization":
        assert not rows.exists()
    else:
        assert getattr(rows.get(), column) is None
    assert ModelMetric.objects.filter(pk=kept.pk).exists()


def test_no_metric_index_serves_the_organization_alone(transactional_db):
    """Every lookup by organization has a composite index that starts with it; an index
    on the organization alone would only add to the cost of each row written."""
    with connection.cursor() as cursor:
        indexes = connection.introspection.get_constraints(cursor, ModelMetric._meta.db_table)
    single = [
        name
        for name, index in indexes.items()
        if index["index"] and not index["primary_key"] and index["columns"] == ["organization_id"]
    ]
    assert single == []
    leading = {
        name for name, index in indexes.items() if index["columns"][:1] == ["organization_id"]
    }
    assert {"metrics_org_time_id", "metrics_org_key", "metrics_org_model"} <= leading
