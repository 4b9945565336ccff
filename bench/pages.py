"""Render time of the operator pages with a large catalog and a million metric rows,
and the request log (/api/modelhub/metrics/) at up to ten million.

    python bench/pages.py                       # SQLite file in a temporary directory
    DATABASE_URL=postgres://... python bench/pages.py --metrics 1000000 --models 50000
    DATABASE_URL=postgres://... python bench/pages.py --request-log               # 1M rows
    DATABASE_URL=postgres://... nice -n 10 python bench/pages.py --request-log --rows 10000000

Creates the data once (bulk inserts), then renders each page through Django's test
client, logged in, and prints p50/p99 over the repetitions and the SQL query count.

``--request-log`` (PostgreSQL only) fills the log of its own organization with
``INSERT ... SELECT generate_series`` to ``--rows`` rows over 120 days, then measures,
through the API with a JWT: cursor pages in each ordering (first, deep and walked pages),
filtered pages, the CSV export (rows/s and how much the process grows while streaming)
and the retention task's cost per 10,000-row batch, first batches against last.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def setup_django(database_url: str | None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    else:
        path = Path(tempfile.mkdtemp()) / "bench-pages.sqlite3"
        os.environ["DATABASE_URL"] = f"sqlite:///{path}"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def seed(models: int, metrics: int, providers: int = 25) -> None:
    from django.db import connection
    from django.utils import timezone

    from modelhub import rollups, services
    from modelhub.models import (
        ClientKey,
        MetricDaily,
        Model,
        ModelMetric,
        Organization,
        Provider,
        ProviderCredential,
        User,
    )

    if Organization.objects.filter(slug="bench").exists():
        if not MetricDaily.objects.exists():
            rollups.rebuild()
        return
    rng = random.Random(7)
    user = User.objects.create_user("bench", password="bench-password-1")
    user.is_staff = True
    user.save()
    org = services.organization_create(name="Bench", slug="bench", owner=user)
    provider_rows = Provider.objects.bulk_create(
        Provider(name=f"Provider {i}", slug=f"provider-{i}") for i in range(providers)
    )
    batch = []
    for i in range(models):
        price = Decimal(rng.randint(1, 5000)) / Decimal(10**8)
        batch.append(
            Model(
                provider=provider_rows[i % providers],
                provider_model_id=f"author-{i % 400}/model-{i}",
                model_name=f"Model {i}",
                context_length=rng.choice([8192, 32768, 131072, 1048576]),
                modality=rng.choice(["text->text", "text+image->text", "text->image"]),
                supports_vision=i % 3 == 0,
                supports_tools=i % 2 == 0,
                pricing_prompt=price,
                pricing_completion=price * 3,
                hugging_face_id=f"author-{i % 400}/Model-{i % 5000}",
            )
        )
        if len(batch) == 5000:
            Model.objects.bulk_create(batch)
            batch = []
    Model.objects.bulk_create(batch)
    keys = [
        services.client_key_create(organization=org, name=f"key-{i}").client_key for i in range(20)
    ]
    for provider in provider_rows[:5]:
        services.provider_credential_create(
            organization=org,
            provider=provider,
            secret=f"sk-bench-{provider.slug}-0000",
            name="main",
        )
    model_ids = list(Model.objects.values_list("id", "provider_id", "provider_model_id")[:500])
    now = timezone.now()
    batch = []
    for i in range(metrics):
        model_id, provider_id, name = model_ids[i % len(model_ids)]
        ok = rng.random() > 0.03
        batch.append(
            ModelMetric(
                organization=org,
                client_key=keys[i % len(keys)],
                provider_id=provider_id,
                model_id=model_id,
                requested_model=name,
                served_model=name,
                input_tokens=500,
                output_tokens=200,
                total_tokens=700,
                cost=Decimal(rng.randint(1, 1000)) / Decimal(10**5),
                latency_ms=rng.randint(80, 4000),
                success=ok,
                status_code=200 if ok else 502,
                fallbacks_used=1 if rng.random() < 0.05 else 0,
                created_at=now - timedelta(seconds=rng.randint(0, 29 * 86400)),
            )
        )
        if len(batch) == 10000:
            ModelMetric.objects.bulk_create(batch)
            batch = []
    ModelMetric.objects.bulk_create(batch)
    # Raw rows were bulk-inserted like an import; fold them into the daily rollups the way
    # an operator would after one.
    rollups.rebuild()
    assert ClientKey.objects.count() == 20 and ProviderCredential.objects.count() == 5
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE model_metrics")
            cursor.execute("VACUUM ANALYZE models")


def measure(paths: list[str], repeat: int) -> list[tuple[str, float, float, int, int]]:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from modelhub.models import User

    client = Client()
    client.force_login(User.objects.get(username="bench"))
    rows = []
    for path in paths:
        timings = []
        for _ in range(repeat):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = client.get(path)
                timings.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (path, response.status_code)
        timings.sort()
        p99 = timings[min(len(timings) - 1, int(len(timings) * 0.99))]
        rows.append((path, statistics.median(timings), p99, len(queries), len(response.content)))
    return rows


# --- The request log ------------------------------------------------------------------------

LOG_ORG = "bench-request-log"
LOG_SPAN_DAYS = 120


def seed_log(rows: int) -> dict:
    """The request log's organization, keys and providers, and ``rows`` metric rows of
    it (topped up when fewer are there): ids grow with time as the gateway writes them;
    1 in 33 fails at the provider (502), 1 in 50 is the caller's (400)."""
    from django.db import connection
    from django.utils import timezone

    from modelhub import services
    from modelhub.models import ClientKey, Model, ModelMetric, Organization, Provider, User

    organization = Organization.objects.filter(slug=LOG_ORG).first()
    if organization is None:
        user = User.objects.create_user(LOG_ORG, password="bench-password-1")
        organization = services.organization_create(name=LOG_ORG, slug=LOG_ORG, owner=user)
        for i in range(20):
            services.client_key_create(organization=organization, name=f"key-{i}")
        for i in range(5):
            provider = Provider.objects.create(
                organization=organization, name=f"Log provider {i}", slug=f"log-provider-{i}"
            )
            Model.objects.create(provider=provider, provider_model_id=f"model-{i}")
    keys = list(ClientKey.objects.for_org(organization).order_by("id").values_list("id", flat=True))
    models = list(
        Model.objects.filter(provider__organization=organization)
        .order_by("provider_id")
        .values_list("id", "provider_id")
    )
    have = ModelMetric.objects.for_org(organization).count()
    now = timezone.now()
    step = 1_000_000
    for start in range(have, rows, step):
        stop = min(start + step, rows) - 1
        began = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO model_metrics (
                    organization_id, client_key_id, provider_id, model_id, request_id,
                    model_type, requested_model, served_model, strategy, input_tokens,
                    output_tokens, cached_tokens, total_tokens, cost, latency_ms,
                    status_code, success, error_type, error_message, error_source,
                    failed_attempts, fallbacks_used, attempts, streamed, created_at)
                SELECT %(org)s, (%(keys)s::bigint[])[1 + i %% 20],
                    (%(providers)s::bigint[])[1 + i %% 5], (%(models)s::bigint[])[1 + i %% 5],
                    'bench-' || i, 'chat', 'model-' || (i %% 5), 'model-' || (i %% 5), '',
                    500, 200, 0, 700, ((i * 7919) %% 1000) / 100000.0,
                    80 + (i * 104729) %% 4000,
                    CASE WHEN i %% 33 = 0 THEN 502 WHEN i %% 50 = 0 THEN 400 ELSE 200 END,
                    NOT (i %% 33 = 0 OR i %% 50 = 0),
                    CASE WHEN i %% 33 = 0 THEN 'upstream_error'
                         WHEN i %% 50 = 0 THEN 'invalid_request_error' ELSE '' END,
                    '',
                    CASE WHEN i %% 33 = 0 THEN 'provider' WHEN i %% 50 = 0 THEN 'client'
                         ELSE '' END,
                    '[]'::jsonb, 0, 1, i %% 4 = 0,
                    %(now)s - make_interval(secs => (%(rows)s - i) * %(span)s / %(rows)s)
                FROM generate_series(%(start)s::bigint, %(stop)s::bigint) AS i
                """,
                {
                    "org": organization.pk,
                    "keys": keys,
                    "providers": [provider for _, provider in models],
                    "models": [model for model, _ in models],
                    "rows": rows,
                    "span": LOG_SPAN_DAYS * 86400.0,
                    "now": now,
                    "start": start,
                    "stop": stop,
                },
            )
        print(f"  inserted rows {start:,}..{stop:,} in {time.perf_counter() - began:.1f} s")
    if have < rows:
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE model_metrics")
    return {"organization": organization, "keys": keys, "models": models}


def _api_client(organization):
    from rest_framework.test import APIClient
    from rest_framework_simplejwt.tokens import RefreshToken

    from modelhub.models import User

    client = APIClient()
    token = RefreshToken.for_user(User.objects.get(username=LOG_ORG)).access_token
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    client.defaults["HTTP_X_ORGANIZATION"] = organization.slug
    return client


SQL_MS: list[float] = []  # the database's share of each timed request


def _timed(client, path: str, params: dict | None = None):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        response = client.get(path, params)
        elapsed = (time.perf_counter() - started) * 1000
    assert response.status_code == 200, (path, params, response.content[:300])
    SQL_MS.append(sum(float(query["time"]) for query in queries) * 1000)
    return elapsed, response


def _sql_note(count: int) -> str:
    """The median database time of the last ``count`` timed requests."""
    return f"SQL p50 {statistics.median(SQL_MS[-count:]):.1f} ms"


def _percentiles(timings: list[float]) -> tuple[float, float]:
    ordered = sorted(timings)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


def _deep_cursor(organization, ordering: str) -> str:
    """The cursor of a page in the middle of the log, as a ``next`` link would carry it."""
    from base64 import b64encode
    from urllib.parse import urlencode

    from modelhub.models import ModelMetric

    field = ordering.removeprefix("-")
    middle = ModelMetric.objects.for_org(organization).count() // 2
    row = (
        ModelMetric.objects.for_org(organization)
        .order_by(ordering, "-id" if ordering.startswith("-") else "id")
        .values(field, "id")[middle]
    )
    value = row[field].isoformat() if hasattr(row[field], "isoformat") else row[field]
    return b64encode(urlencode({"p": f"{value}|{row['id']}"}).encode()).decode()


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure_request_log(seeded: dict, repeat: int, walk: int, export_rows: int) -> list[tuple]:
    from django.conf import settings

    organization = seeded["organization"]
    client = _api_client(organization)
    path = "/api/modelhub/metrics/"
    rows: list[tuple] = []

    for ordering in ("-created_at", "cost", "-latency_ms"):
        firsts = [_timed(client, path, {"ordering": ordering})[0] for _ in range(repeat)]
        rows.append((f"first page, ordering={ordering}", *_percentiles(firsts), _sql_note(repeat)))
        deep = _deep_cursor(organization, ordering)
        deeps = [
            _timed(client, path, {"ordering": ordering, "cursor": deep})[0] for _ in range(repeat)
        ]
        rows.append(
            (f"page in the middle, ordering={ordering}", *_percentiles(deeps), _sql_note(repeat))
        )
        timings, response = [], client.get(path, {"ordering": ordering})
        for _ in range(walk):
            elapsed, response = _timed(client, response.json()["next"])
            timings.append(elapsed)
        rows.append(
            (
                f"{walk} next pages walked, ordering={ordering}",
                *_percentiles(timings),
                _sql_note(walk),
            )
        )

    provider = seeded["models"][0][1]
    since = "2000-01-01T00:00:00Z"
    filtered = {
        "error_source=provider": {"error_source": "provider"},
        "client_key=<one of 20>": {"client_key": seeded["keys"][3]},
        "provider=<one of 5>&since": {"provider": provider, "since": since},
        "status_code=400&ordering=-cost": {"status_code": 400, "ordering": "-cost"},
        "streamed=true&success=false": {"streamed": "true", "success": "false"},
    }
    for name, params in filtered.items():
        timings = [_timed(client, path, params)[0] for _ in range(repeat)]
        first = client.get(path, params).json()
        nexts = []
        for _ in range(min(walk, 20)):
            if not first["next"]:
                break
            elapsed, response = _timed(client, first["next"])
            first = response.json()
            nexts.append(elapsed)
        count = len(timings) + len(nexts)
        rows.append((f"filtered: {name}", *_percentiles(timings + nexts), _sql_note(count)))

    settings.METRICS_EXPORT_MAX_ROWS = export_rows
    before = _rss_mb()
    peak = before
    started = time.perf_counter()
    response = client.get(path, {"format": "csv"})
    lines = 0
    for chunk in response.streaming_content:
        lines += chunk.count(b"\n")
        peak = max(peak, _rss_mb())
    elapsed = time.perf_counter() - started
    exported = lines - 2  # the header and the truncation line
    rows.append(
        (
            f"CSV export of {exported:,} rows",
            elapsed * 1000,
            None,
            f"{exported / elapsed:,.0f} rows/s, RSS +{peak - before:.1f} MiB",
        )
    )
    return rows


def measure_retention(batches: int) -> list[tuple]:
    """The retention service one 10,000-row batch at a time, on the oldest rows."""
    from modelhub.services import metrics_delete_expired

    timings = []
    for _ in range(batches):
        started = time.perf_counter()
        result = metrics_delete_expired(days=90, batch_size=10_000, max_seconds=0)
        timings.append((time.perf_counter() - started) * 1000)
        if result.finished:
            break
    head, tail = timings[:5], timings[-5:]
    return [
        (
            f"retention: {len(timings)} batches of 10,000 rows",
            *_percentiles(timings),
            f"first 5 {statistics.mean(head):.0f} ms, last 5 {statistics.mean(tail):.0f} ms",
        )
    ]


def request_log(args) -> None:
    from django.db import connection

    if connection.vendor != "postgresql":
        sys.exit("--request-log measures PostgreSQL: give --database-url or DATABASE_URL.")
    started = time.perf_counter()
    seeded = seed_log(args.rows)
    print(f"{args.rows:,} rows ready in {time.perf_counter() - started:.1f} s")
    results = measure_request_log(seeded, args.repeat, args.walk, args.export_rows)
    results += measure_retention(args.retention_batches)
    print(
        f"\n{'request log, ' + format(args.rows, ',') + ' rows':<52} {'p50 ms':>8} "
        f"{'p95 ms':>8}  notes"
    )
    for name, p50, p95, note in results:
        p95_text = f"{p95:8.1f}" if p95 is not None else f"{'':>8}"
        print(f"{name:<52} {p50:8.1f} {p95_text}  {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=50_000)
    parser.add_argument("--metrics", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--only", help="measure only paths starting with this prefix")
    parser.add_argument(
        "--request-log", action="store_true", help="measure the request log instead"
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="request log rows")
    parser.add_argument("--walk", type=int, default=100, help="next pages walked per ordering")
    parser.add_argument("--export-rows", type=int, default=200_000, help="rows exported as CSV")
    parser.add_argument(
        "--retention-batches", type=int, default=30, help="retention batches measured"
    )
    args = parser.parse_args()
    setup_django(args.database_url)
    if args.request_log:
        request_log(args)
        return
    from django.db import connection

    started = time.perf_counter()
    seed(args.models, args.metrics)
    print(f"data ready in {time.perf_counter() - started:.1f} s on {connection.vendor}")
    paths = [
        "/dashboard/",
        "/catalog/browse/",
        "/catalog/browse/?q=model-4&sort=price",
        "/catalog/browse/?modality=text%2Bimage-%3Etext&capability=vision&min_context=100000&sort=-price",
    ]
    paths = [path for path in paths if not args.only or path.startswith(args.only)]
    print(f"{'page':<92} {'p50 ms':>8} {'p99 ms':>8} {'queries':>8} {'KiB':>6}")
    for path, p50, p99, queries, size in measure(paths, args.repeat):
        print(f"{path:<92} {p50:8.1f} {p99:8.1f} {queries:8d} {size / 1024:6.0f}")


if __name__ == "__main__":
    main()
