"""Latency of the public catalog with 50,000 stored models, measured in-process.

    .venv/bin/python bench/catalog.py [--models 50000] [--iterations 200]

Builds a fresh database (a temporary SQLite file, or a throwaway ``test_`` database on the
PostgreSQL server named by ``DATABASE_URL``), bulk-creates providers, models and fresh
Hugging Face metrics, then times requests through Django's test client (URL routing,
middleware, views, cache, JSON) and prints p50/p99 per case:

- ``/catalog/models?limit=100`` cold (cache cleared before every request) and warm;
- ``/catalog/model/{provider}/{model}`` cold and warm, over distinct models.

No request leaves the process: Hugging Face metrics are pre-stored, live fetches are off,
and no OpenRouter key is set. The cache is local memory unless ``REDIS_URL`` is set.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROVIDERS = 30
GATEWAYS = ("openrouter", "portkey", "featherless", "deepinfra", "chutes")
AUTHORS = ("meta-llama", "qwen", "mistralai", "google", "deepseek", "openai", "nvidia", "ibm")


def configure(tmpdir: str) -> bool:
    """Point Django at a throwaway database; True when it is PostgreSQL."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    os.environ["HUGGINGFACE_LIVE_FETCHES_PER_REQUEST"] = "0"
    os.environ["HUGGINGFACE_BACKGROUND_REFRESH"] = "false"
    os.environ["HUGGINGFACE_API_URL"] = "http://127.0.0.1:9/api"
    os.environ["OPENROUTER_API_KEY"] = ""
    postgres = os.environ.get("DATABASE_URL", "").startswith(("postgres", "pgsql"))
    if not postgres:
        os.environ["DATABASE_URL"] = f"sqlite:///{tmpdir}/bench.sqlite3"
    import django

    django.setup()
    return postgres


def populate(total_models: int) -> list[str]:
    """Providers, ``total_models`` models (each family offered by five providers) and
    fresh metrics; returns detail paths of distinct models."""
    from modelhub.models import HuggingFaceMetrics, Model, Provider

    rng = random.Random(7)
    slugs = list(GATEWAYS) + [f"provider-{n:02d}" for n in range(PROVIDERS - len(GATEWAYS))]
    providers = Provider.objects.bulk_create(
        Provider(name=slug.title(), slug=slug, site_url=f"https://{slug}.example") for slug in slugs
    )
    families = total_models // 5
    rows, hf_ids, paths = [], set(), []
    for family in range(families):
        author = AUTHORS[family % len(AUTHORS)]
        name = f"model-{family}-{rng.choice(['instruct', 'chat', 'base'])}"
        hf_id = f"{author}/{name}" if family % 2 == 0 else ""
        if hf_id:
            hf_ids.add(hf_id)
        prompt = Decimal(rng.randint(1, 5000)) / Decimal(10**9)
        offered_by = rng.sample(providers, 5)
        for provider in offered_by:
            gateway_style = provider.slug in GATEWAYS
            rows.append(
                Model(
                    provider=provider,
                    provider_model_id=f"{author}/{name}" if gateway_style else name,
                    model_name=f"{author.title()}: {name}",
                    author=author,
                    canonical_slug=f"{author}/{name}" if provider.slug == "openrouter" else "",
                    description="A benchmark model. " * 10,
                    context_length=rng.choice([8192, 32768, 131072, 1048576]),
                    max_completion_tokens=rng.choice([4096, 16384, None]),
                    modality="text->text",
                    input_modalities=["text"],
                    output_modalities=["text"],
                    tokenizer="Llama3",
                    supported_parameters=["max_tokens", "temperature", "tools"],
                    supports_tools=rng.random() < 0.5,
                    pricing_prompt=prompt * Decimal(rng.choice([1, 2, 3])),
                    pricing_completion=prompt * 4,
                    hugging_face_id=hf_id,
                    raw={"id": name, "note": "x" * 200},
                )
            )
        # Detail paths name the model as a gateway lists it.
        listed_by_gateway = any(p.slug in GATEWAYS for p in offered_by)
        if listed_by_gateway and len(paths) < 1000 and rng.random() < 0.2:
            paths.append(f"{author}/{name}")
    Model.objects.bulk_create(rows, batch_size=2000)
    HuggingFaceMetrics.objects.bulk_create(
        (
            HuggingFaceMetrics(
                hugging_face_id=hf_id,
                data={
                    "downloads": 1000,
                    "likes": 10,
                    "pipeline_tag": "text-generation",
                    "num_parameters": 7_000_000_000,
                    "gated": False,
                    "private": False,
                    "last_modified": "2025-01-12T02:10:10.000Z",
                    "author": hf_id.split("/")[0],
                    "author_data": None,
                    "available_inference_providers": [],
                    "widget_output_urls": [],
                    "is_liked_by_user": False,
                },
            )
            for hf_id in hf_ids
        ),
        batch_size=2000,
    )
    return paths


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[max(math.ceil(fraction * len(ordered)) - 1, 0)]


def measure(client, urls: list[str], *, cold: bool) -> list[float]:
    from django.core.cache import cache

    timings = []
    for url in urls:
        if cold:
            cache.clear()
        start = time.perf_counter()
        response = client.get(url)
        timings.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (url, response.status_code, response.content[:200])
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=int, default=50_000)
    parser.add_argument("--iterations", type=int, default=200)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmpdir:
        postgres = configure(tmpdir)
        from django.core.management import call_command
        from django.db import connection
        from django.test import Client

        test_db = None
        if postgres:
            test_db = connection.creation.create_test_db(verbosity=0, autoclobber=True)
        else:
            call_command("migrate", verbosity=0)
        try:
            started = time.perf_counter()
            paths = populate(args.models)
            from modelhub.models import Model

            stored = Model.objects.count()
            print(
                f"{connection.vendor}: {stored} models stored in "
                f"{time.perf_counter() - started:.1f} s; {args.iterations} requests per case"
            )
            client = Client()
            n = args.iterations
            list_urls = ["/catalog/models?limit=100"] * n
            detail_urls = [f"/catalog/model/{paths[i % len(paths)]}" for i in range(n)]
            measure(client, list_urls[:5] + detail_urls[:5], cold=False)  # warm-up imports
            cases = [
                ("/catalog/models?limit=100", "cold", measure(client, list_urls, cold=True)),
                ("/catalog/models?limit=100", "warm", measure(client, list_urls, cold=False)),
                (
                    "/catalog/model/{provider}/{model}",
                    "cold",
                    measure(client, detail_urls, cold=True),
                ),
            ]
            measure(client, detail_urls, cold=False)  # fill the cache for every model
            cases.append(
                (
                    "/catalog/model/{provider}/{model}",
                    "warm",
                    measure(client, detail_urls, cold=False),
                )
            )
            print(f"| {'endpoint':<34} | {'cache':<5} | {'n':>4} | {'p50 ms':>7} | {'p99 ms':>7} |")
            print(f"|{'-' * 36}|{'-' * 7}|{'-' * 6}|{'-' * 9}|{'-' * 9}|")
            for name, cache_state, samples in cases:
                print(
                    f"| {name:<34} | {cache_state:<5} | {len(samples):>4} | "
                    f"{percentile(samples, 0.5):>7.2f} | {percentile(samples, 0.99):>7.2f} |"
                )
        finally:
            if test_db is not None:
                connection.creation.destroy_test_db(test_db, verbosity=0)


if __name__ == "__main__":
    main()
