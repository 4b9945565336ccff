"""Render time of the operator pages with a large catalog and a million metric rows.

    python bench/pages.py                       # SQLite file in a temporary directory
    DATABASE_URL=postgres://... python bench/pages.py --metrics 1000000 --models 50000

Creates the data once (bulk inserts), then renders each page through Django's test
client, logged in, and prints p50/p99 over the repetitions and the SQL query count.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=50_000)
    parser.add_argument("--metrics", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--only", help="measure only paths starting with this prefix")
    args = parser.parse_args()
    setup_django(args.database_url)
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
