"""The request log at /api/modelhub/metrics/: filters, keyset cursor pages in every
ordering, the streamed CSV export, and whose failure each request was."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from modelhub.models import ErrorSource, ModelMetric
from tests.support.api import API
from tests.support.builders import make_client_key, make_metric, make_model, make_provider

METRICS = f"{API}/metrics/"
T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content[:300]
    return [row["id"] for row in response.json()["results"]]


def walk(client, params: dict) -> list[int]:
    """Every row id of the log, following ``next`` links from the first page."""
    found: list[int] = []
    response = client.get(METRICS, params)
    while True:
        found += ids(response)
        link = response.json()["next"]
        if link is None:
            return found
        response = client.get(link)


def walk_back(client, params: dict) -> list[int]:
    """Go to the last page by ``next``, then back to the first by ``previous``."""
    response = client.get(METRICS, params)
    while response.json()["next"]:
        response = client.get(response.json()["next"])
    found = ids(response)
    while response.json()["previous"]:
        response = client.get(response.json()["previous"])
        found = ids(response) + found
    return found


@pytest.fixture
def log(org, other_org):
    """Requests of ``org`` with every kind of outcome, and one of another organization."""
    openai = make_provider(None, slug="openai")
    groq = make_provider(None, slug="groq")
    gpt = make_model(openai, "gpt-4o")
    llama = make_model(groq, "llama")
    app = make_client_key(org, name="app")
    batch = make_client_key(org, name="batch")
    rows = {
        "ok": make_metric(org, provider=openai, model=gpt, client_key=app, created_at=T0),
        "streamed": make_metric(
            org,
            provider=groq,
            model=llama,
            client_key=batch,
            streamed=True,
            cost=Decimal("0.5"),
            latency_ms=900,
            created_at=T0 + timedelta(hours=1),
        ),
        "bad_input": make_metric(
            org,
            client_key=app,
            status_code=400,
            success=False,
            error_type="invalid_request_error",
            attempts=0,
            created_at=T0 + timedelta(hours=2),
        ),
        "own_limit": make_metric(
            org,
            client_key=app,
            status_code=429,
            success=False,
            error_type="rate_limit_exceeded",
            attempts=0,
            created_at=T0 + timedelta(hours=3),
        ),
        "upstream_429": make_metric(
            org,
            provider=groq,
            model=llama,
            client_key=batch,
            status_code=429,
            success=False,
            error_type="upstream_rate_limited",
            attempts=2,
            created_at=T0 + timedelta(hours=4),
        ),
        "upstream_down": make_metric(
            org,
            provider=openai,
            model=gpt,
            client_key=app,
            status_code=502,
            success=False,
            error_type="upstream_error",
            attempts=3,
            latency_ms=3000,
            created_at=T0 + timedelta(days=1),
        ),
        "no_upstream": make_metric(
            org,
            status_code=503,
            success=False,
            error_type="no_healthy_upstream",
            attempts=0,
            created_at=T0 + timedelta(days=2),
        ),
    }
    rows["foreign"] = make_metric(other_org, provider=openai, model=gpt, created_at=T0)
    return {"rows": rows, "openai": openai, "groq": groq, "gpt": gpt, "app": app, "batch": batch}


def test_error_source_tells_the_callers_failures_from_the_providers(log, member_client):
    body = {row["id"]: row for row in member_client.get(METRICS).json()["results"]}
    rows = log["rows"]
    sources = {name: body[rows[name].pk]["error_source"] for name in rows if name != "foreign"}
    assert sources == {
        "ok": "",
        "streamed": "",
        "bad_input": "client",
        "own_limit": "client",
        "upstream_429": "provider",
        "upstream_down": "provider",
        "no_upstream": "gateway",
    }


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (
            lambda d: {"since": "2026-03-01T13:00:00Z"},
            ["no_upstream", "upstream_down", "upstream_429", "own_limit", "bad_input", "streamed"],
        ),
        # until is exclusive: the row at exactly 13:00 is not in it.
        (lambda d: {"until": "2026-03-01T13:00:00Z"}, ["ok"]),
        (
            # 13:00+01:00 is 12:00 UTC; until is exclusive.
            lambda d: {"since": "2026-03-01T13:00:00+01:00", "until": "2026-03-01T15:00:00Z"},
            ["bad_input", "streamed", "ok"],
        ),
        (lambda d: {"client_key": d["batch"].pk}, ["upstream_429", "streamed"]),
        (lambda d: {"provider": d["openai"].pk}, ["upstream_down", "ok"]),
        (lambda d: {"model": d["gpt"].pk}, ["upstream_down", "ok"]),
        (lambda d: {"status_code": 429}, ["upstream_429", "own_limit"]),
        (lambda d: {"success": "true"}, ["streamed", "ok"]),
        (lambda d: {"streamed": "true"}, ["streamed"]),
        (lambda d: {"error_type": "upstream_error"}, ["upstream_down"]),
        (lambda d: {"error_source": "client"}, ["own_limit", "bad_input"]),
        (lambda d: {"error_source": "provider"}, ["upstream_down", "upstream_429"]),
        (lambda d: {"error_source": "gateway"}, ["no_upstream"]),
        (
            lambda d: {"error_source": "provider", "provider": d["groq"].pk, "success": "false"},
            ["upstream_429"],
        ),
    ],
)
def test_filters(params, expected, log, member_client):
    found = ids(member_client.get(METRICS, params(log)))
    assert found == [log["rows"][name].pk for name in expected]


@pytest.mark.parametrize("name", ["since", "until"])
@pytest.mark.parametrize(
    "value", ["yesterday", "2026-02-30T00:00:00Z", "0001-01-01T00:00:00+05:00"]
)
def test_bad_times_are_a_400_naming_the_parameter(name, value, log, member_client):
    response = member_client.get(METRICS, {name: value})
    assert response.status_code == 400
    assert name in response.json()


def test_since_after_until_is_a_400(log, member_client):
    response = member_client.get(
        METRICS, {"since": "2026-03-02T00:00:00Z", "until": "2026-03-01T00:00:00Z"}
    )
    assert response.status_code == 400
    assert "before until" in str(response.json()["since"])


@pytest.mark.parametrize("ordering", ["total_tokens", "nonsense", "-", "--cost", "cost,id", "id"])
def test_an_ordering_without_an_index_is_a_400_naming_the_choices(ordering, log, member_client):
    response = member_client.get(METRICS, {"ordering": ordering})
    assert response.status_code == 400
    message = str(response.json()["ordering"])
    assert "created_at" in message and "latency_ms" in message


@pytest.mark.parametrize(
    "cursor",
    ["garbage", "cD0x", "cD14fDE=", "cD0yMDI2LTAzLTAxVDEyOjAwOjAwfHg=", "%00", "cj0xJnA9"],
)
def test_a_bad_cursor_is_a_400(cursor, log, member_client):
    response = member_client.get(METRICS, {"cursor": cursor, "ordering": "-created_at"})
    if response.status_code == 200:
        # "r=1&p=" with an empty position: the first page, backwards; harmless.
        return
    assert response.status_code == 400, response.content[:200]
    assert "cursor" in response.json()


@pytest.fixture
def tied(org, other_org):
    """150 rows sharing three costs and three latencies, and another organization's."""
    created = [
        make_metric(
            org,
            cost=Decimal(i % 3),
            latency_ms=100 * (i % 3),
            created_at=T0 + timedelta(seconds=i // 2),  # pairs share a timestamp
        ).pk
        for i in range(150)
    ]
    make_metric(other_org, cost=Decimal(1), latency_ms=100, created_at=T0)
    return created


@pytest.mark.parametrize("ordering", ["-created_at", "created_at", "cost", "-cost", "latency_ms",
                                      "-latency_ms"])  # fmt: skip
def test_cursor_pages_visit_every_row_once_in_order_despite_ties(ordering, tied, member_client):
    field = ordering.removeprefix("-")
    expected = list(
        ModelMetric.objects.filter(pk__in=tied)
        .order_by(ordering, f"{'-' if ordering.startswith('-') else ''}id")
        .values_list("id", flat=True)
    )
    params = {"ordering": ordering, "page_size": 7}
    assert walk(member_client, params) == expected
    assert walk_back(member_client, params) == expected
    first = member_client.get(METRICS, params).json()
    assert first["previous"] is None and "count" not in first
    assert field in first["results"][0]


def test_page_size_is_capped_at_200(org, member_client):
    ModelMetric.objects.bulk_create(
        ModelMetric(organization=org, requested_model="m", created_at=T0) for _ in range(205)
    )
    body = member_client.get(METRICS, {"page_size": 100000}).json()
    assert len(body["results"]) == 200 and body["next"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner")
@pytest.mark.parametrize(
    ("ordering", "index"),
    [
        ("-created_at", "metrics_org_time_id"),
        ("cost", "metrics_org_cost_id"),
        ("-latency_ms", "metrics_org_latency_id"),
    ],
)
def test_every_ordering_pages_by_an_index_without_sorting(
    ordering, index, tied, org, member_client
):
    """Each page of each ordering is one range scan of its composite index: no sort of
    the organization's rows, however many there are."""
    second = member_client.get(METRICS, {"ordering": ordering, "page_size": 5}).json()["next"]
    with CaptureQueriesContext(connection) as captured:
        assert member_client.get(second).status_code == 200
    [page] = [q["sql"] for q in captured if 'FROM "model_metrics"' in q["sql"]]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        cursor.execute(f"EXPLAIN {page}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert index in plan, plan
    assert "Sort" not in plan, plan


def test_failed_requests_have_an_index_of_their_own(log):
    names = {index.name for index in ModelMetric._meta.indexes}
    assert {"metrics_org_time_id", "metrics_org_cost_id", "metrics_org_latency_id"} <= names
    failed = next(
        index for index in ModelMetric._meta.indexes if index.name == "metrics_org_failed"
    )
    assert failed.condition is not None


# --- CSV export ---------------------------------------------------------------------------


def read_csv(response) -> list[list[str]]:
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"].startswith("text/csv")
    assert response.streaming
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_csv_export_is_the_filtered_log_in_order(log, member_client):
    rows = read_csv(member_client.get(METRICS, {"format": "csv", "error_source": "client"}))
    header, *body = rows
    assert header[:3] == ["id", "created_at", "request_id"]
    column = {name: header.index(name) for name in header}
    assert [int(row[column["id"]]) for row in body] == [
        log["rows"]["own_limit"].pk,
        log["rows"]["bad_input"].pk,
    ]
    assert {row[column["error_source"]] for row in body} == {"client"}
    assert body[0][column["client_key"]] == str(log["app"].pk)


def test_csv_export_follows_the_ordering_and_leaves_other_organizations_out(log, member_client):
    rows = read_csv(member_client.get(METRICS, {"format": "csv", "ordering": "-latency_ms"}))
    exported = [int(row[0]) for row in rows[1:]]
    assert exported[:2] == [log["rows"]["upstream_down"].pk, log["rows"]["streamed"].pk]
    assert log["rows"]["foreign"].pk not in exported
    assert len(exported) == 7


def test_csv_export_is_bounded_and_says_when_it_stopped(settings, log, member_client):
    settings.METRICS_EXPORT_MAX_ROWS = 3
    response = member_client.get(METRICS, {"format": "csv"})
    assert response["X-Export-Max-Rows"] == "3"
    rows = read_csv(response)
    assert len(rows) == 1 + 3 + 1
    assert rows[-1][0].startswith("# truncated: more than 3 rows match")
    settings.METRICS_EXPORT_MAX_ROWS = 7
    rows = read_csv(member_client.get(METRICS, {"format": "csv"}))
    assert len(rows) == 1 + 7 and not rows[-1][0].startswith("#")


def test_csv_cells_cannot_become_spreadsheet_formulas(org, member_client):
    make_metric(org, requested_model='=HYPERLINK("http://evil","x")', error_message="+1")
    header, row = read_csv(member_client.get(METRICS, {"format": "csv"}))
    assert row[header.index("requested_model")] == '\'=HYPERLINK("http://evil","x")'
    assert row[header.index("error_message")] == "'+1"


def test_csv_export_errors_answer_in_json(log, member_client):
    response = member_client.get(METRICS, {"format": "csv", "since": "nope"})
    assert response.status_code == 400
    assert "since" in response.json()
    response = member_client.get(METRICS, {"format": "csv", "ordering": "id"})
    assert response.status_code == 400 and "ordering" in response.json()


def test_csv_export_reads_rows_in_chunks(org, member_client, monkeypatch):
    """The rows come from a database cursor a chunk at a time, never all at once."""
    from modelhub.api import exports

    monkeypatch.setattr(exports, "CHUNK_SIZE", 10)
    ModelMetric.objects.bulk_create(
        ModelMetric(organization=org, requested_model=f"m{i}", created_at=T0) for i in range(35)
    )
    response = member_client.get(METRICS, {"format": "csv"})
    chunks = list(response.streaming_content)
    assert len(chunks) == 1 + 4  # the header, then chunks of at most 10 rows
    assert sum(chunk.count(b"\n") for chunk in chunks) == 36


def test_error_source_is_derived_not_taken_from_the_caller(org, admin_client):
    response = admin_client.post(
        METRICS,
        {"requested_model": "x", "status_code": 504, "attempts": 2, "error_source": "client"},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["error_source"] == "provider"
    assert ModelMetric.objects.get().error_source == ErrorSource.PROVIDER
