"""Benchmark of the catalog sync on a large synthetic catalog.

Builds a catalog in the shapes of the recorded provider responses (tests/fixtures/
providers), serves it through ``responses`` (no network), and times three passes of the
real pipeline per database: a first sync, an unchanged re-sync, and a re-sync where 10%
of the records changed (their prices where the shape has prices, otherwise another field
of the raw record). For each pass it prints wall time, SQL statements per provider
(min-max) and model rows written.

    .venv/bin/python bench/sync.py                       # SQLite, 100 and 50,000 models
    .venv/bin/python bench/sync.py --postgres postgres://user@127.0.0.1:5432/postgres
    DATABASE_URL=postgres://... .venv/bin/python bench/sync.py --sizes 100 5000 50000

Each (database, size) runs in a fresh child process against a throwaway database (a
temporary SQLite file, or a ``bench_sync_<pid>`` database created on the PostgreSQL
server and dropped afterwards).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "providers"
PRICE_KEYS = {
    "prompt",
    "input",
    "input_tokens",
    "cents_per_input_token",
    "input_token_price_per_m",
    "prompt_text_token_price",
    "inputCostPerToken",
}


# --- child: one database, one catalog size --------------------------------------------------


def _set_path(record: dict, path: str, value) -> None:
    parts = path.split(".")
    for part in parts[:-1]:
        record = record[part]
    record[parts[-1]] = value


def _bump_prices(node) -> bool:
    """Raise every input price found anywhere in a record by 10%; True if one was found."""
    found = False
    if isinstance(node, dict):
        for key, value in node.items():
            if key in PRICE_KEYS:
                if isinstance(value, dict) and isinstance(value.get("amount"), int):
                    value["amount"] += 1
                    found = True
                elif isinstance(value, bool):
                    continue
                elif isinstance(value, (int, float)) and value > 0:
                    node[key] = type(value)(value * 1.1) if isinstance(value, float) else value + 1
                    found = True
                elif isinstance(value, str):
                    try:
                        number = Decimal(value)
                    except ArithmeticError:
                        continue
                    if number > 0:
                        node[key] = str(number * Decimal("1.1"))
                        found = True
            else:
                found = _bump_prices(value) or found
    elif isinstance(node, list):
        for item in node:
            found = _bump_prices(item) or found
    return found


def _templates(spec, extract_items):
    """The model records and envelope of the provider's main fixture."""
    candidates = []
    for path in sorted(FIXTURES.glob("*.json")):
        wrapper = json.loads(path.read_text())
        if wrapper.get("provider") != spec.slug:
            continue
        try:
            items = extract_items(spec, wrapper["response"])
        except Exception:  # not a model list
            continue
        rank = (wrapper.get("list_url") != spec.list_url, path.stem != spec.slug)
        candidates.append((rank, wrapper["response"], items))
    candidates.sort(key=lambda c: c[0])
    _, envelope, items = candidates[0]
    return envelope, [i for i in items if isinstance(i, dict)]


def _catalog(specs, per_provider: int, extract_items) -> dict[str, tuple[object, list[dict]]]:
    catalog = {}
    for spec in specs:
        envelope, templates = _templates(spec, extract_items)
        id_path = next(p for p in spec.field_paths["id"] if p in templates[0])
        records = []
        for n in range(per_provider):
            record = copy.deepcopy(templates[n % len(templates)])
            _set_path(record, id_path, f"{record[id_path]}-bench-{n}")
            records.append(record)
        catalog[spec.slug] = (envelope, records)
    return catalog


def _body(spec, envelope, records) -> bytes:
    if isinstance(envelope, list):
        return json.dumps(records).encode()
    body = copy.deepcopy(
        {k: v for k, v in envelope.items() if k not in ("nextPageToken", "next_cursor")}
    )
    for path in spec.items_path.split("|"):
        if path and path.split(".")[0] in body:
            _set_path(body, path, records)
            break
    if "has_more" in body:
        body["has_more"] = False
    if isinstance(body.get("links"), dict):
        body["links"]["next"] = None
    for key in ("total", "total_count"):
        if key in body:
            body[key] = len(records)
    if "limit" in body:
        body["limit"] = len(records)
    return json.dumps(body).encode()


def child(database_url: str, total: int, provider_count: int) -> dict:
    os.environ["DATABASE_URL"] = database_url
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    os.environ["LOG_LEVEL"] = "ERROR"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    import responses
    from django.core.management import call_command
    from django.db import connection

    from modelhub.models import Model
    from sync import pipeline
    from sync.fetch import extract_items
    from sync.registry import all_specs

    call_command("migrate", verbosity=0)
    specs = [s for s in all_specs() if not s.base_url_env][:provider_count]
    for spec in specs:
        if spec.auth_required:
            os.environ[spec.env_var] = "bench-key-0123456789"
    per_provider = max(total // len(specs), 1)
    catalog = _catalog(specs, per_provider, extract_items)

    changed = {}
    for slug, (envelope, records) in catalog.items():
        records = copy.deepcopy(records)
        for record in records[::10]:
            if not _bump_prices(record):
                record["bench_revision"] = 2
        changed[slug] = (envelope, records)

    statements = {"n": 0}

    def count(execute, sql, params, many, context):
        statements["n"] += 1
        return execute(sql, params, many, context)

    passes = []
    for label, source in (
        ("first sync", catalog),
        ("unchanged re-sync", catalog),
        ("10% changed", changed),
    ):
        bodies = {s.slug: _body(s, *source[s.slug]) for s in specs}
        per_provider_queries = []
        written = 0
        failed = []
        started = time.perf_counter()
        with responses.RequestsMock(assert_all_requests_are_fired=False) as http:
            for spec in specs:
                http.add(
                    responses.GET,
                    spec.resolved_list_url(),
                    body=bodies[spec.slug],
                    content_type="application/json",
                )
            for spec in specs:
                statements["n"] = 0
                with connection.execute_wrapper(count):
                    result = pipeline.sync_provider(spec=spec, trigger="bench")
                if not result.ok:
                    failed.append(f"{spec.slug}: {result.error}")
                per_provider_queries.append(statements["n"])
                written += result.rows_written
        elapsed = time.perf_counter() - started
        passes.append(
            {
                "pass": label,
                "seconds": round(elapsed, 2),
                "queries_min": min(per_provider_queries),
                "queries_max": max(per_provider_queries),
                "rows_written": written,
                "failed": failed,
            }
        )
    return {
        "vendor": connection.vendor,
        "models": Model.objects.count(),
        "providers": len(specs),
        "passes": passes,
    }


# --- parent: databases, sizes, the table -----------------------------------------------------


def _postgres_database(url: str, name: str, *, create: bool) -> str:
    import psycopg

    parts = urlsplit(url)
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if create:
            conn.execute(f'CREATE DATABASE "{name}"')
        else:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return urlunsplit(parts._replace(path=f"/{name}"))


def run_child(database_url: str, total: int, providers: int) -> dict:
    output = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            database_url,
            "--sizes",
            str(total),
            "--providers",
            str(providers),
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 50_000])
    parser.add_argument("--providers", type=int, default=25)
    parser.add_argument(
        "--postgres",
        default=os.environ.get("DATABASE_URL", "")
        if os.environ.get("DATABASE_URL", "").startswith("postgres")
        else "",
    )
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--child", metavar="DATABASE_URL", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        print(json.dumps(child(args.child, args.sizes[0], args.providers)))
        return

    results = []
    for size in args.sizes:
        if not args.no_sqlite:
            with tempfile.TemporaryDirectory() as tmp:
                results.append(run_child(f"sqlite:///{tmp}/bench.sqlite3", size, args.providers))
        if args.postgres:
            name = f"bench_sync_{os.getpid()}"
            url = _postgres_database(args.postgres, name, create=True)
            try:
                results.append(run_child(url, size, args.providers))
            finally:
                _postgres_database(args.postgres, name, create=False)

    header = (
        f"{'database':<10} {'models':>7} {'prov.':>5}  {'pass':<18} {'time (s)':>9} "
        f"{'SQL/provider':>12} {'rows written':>12}"
    )
    print(header)
    print("-" * len(header))
    for result in results:
        for p in result["passes"]:
            queries = (
                f"{p['queries_min']}-{p['queries_max']}"
                if p["queries_min"] != p["queries_max"]
                else str(p["queries_min"])
            )
            print(
                f"{result['vendor']:<10} {result['models']:>7} {result['providers']:>5}  "
                f"{p['pass']:<18} {p['seconds']:>9.2f} {queries:>12} {p['rows_written']:>12}"
            )
            for failure in p["failed"]:
                print(f"    FAILED {failure}")


if __name__ == "__main__":
    main()
