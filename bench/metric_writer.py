"""The gateway's metric writer on PostgreSQL: what writing a batch of metric rows costs
the writer thread and the database, per row.

    .venv/bin/python bench/metric_writer.py                  # a PostgreSQL of its own
    .venv/bin/python bench/metric_writer.py --rounds 10 --batch 500
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/mydb .venv/bin/python bench/metric_writer.py

Writes batches of usage records as the gateway does (``write_records``: a credential's
counters and a key's last use, the reference check, the rows and their daily rollups),
each record encoded beforehand as the gateway encodes it when the request ends. For each
batch it measures the wall time, the CPU of the writing thread and the CPU of the
PostgreSQL backend serving it (read from ``/proc``, so only when the server runs on this
machine).

The baseline, measured in the same run and alternated with it round by round: the same
batches into the table with the six foreign key constraints it had before (deferred,
checked at commit), which the writer's one check per batch replaces. The constraints are
only added on a PostgreSQL of the benchmark's own; with ``DATABASE_URL`` the baseline is
skipped and the database's schema is left alone (the rows are written in an organization
of their own, left in place).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

from loading import bench_gateway

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The six references, as migration 0013 found them: (column, table, on delete).
CONSTRAINTS = [
    ("organization_id", "organizations", "CASCADE"),
    ("client_key_id", "client_keys", "SET NULL"),
    ("credential_id", "provider_credentials", "SET NULL"),
    ("provider_id", "providers", "SET NULL"),
    ("model_id", "models", "SET NULL"),
    ("routing_rule_id", "routing_rules", "SET NULL"),
]


def setup_django(database_url: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    os.environ["DATABASE_URL"] = database_url
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    if connection.vendor != "postgresql":
        raise SystemExit("This benchmark measures the PostgreSQL writer: give a postgres:// URL.")
    call_command("migrate", verbosity=0)


def seed() -> dict:
    from modelhub import services
    from modelhub.models import Model, Organization, Provider

    suffix = uuid.uuid4().hex[:8]
    organization = Organization.objects.create(name=f"Writer {suffix}", slug=f"writer-{suffix}")
    provider = Provider.objects.create(
        organization=organization,
        name=f"Writer {suffix}",
        slug=f"writer-{suffix}",
        base_url="http://127.0.0.1:9/v1",
    )
    model = Model.objects.create(provider=provider, provider_model_id="m1", model_name="M1")
    credential = services.provider_credential_create(
        organization=organization, provider=provider, secret="sk-bench-0001", name="bench"
    )
    key = services.client_key_create(organization=organization, name="bench").client_key
    rule = services.routing_rule_save(organization=organization, name="bench", match_model="m1")
    return {
        "organization_id": organization.pk,
        "client_key_id": key.pk,
        "credential_id": credential.pk,
        "credential_quota_period": credential.quota_period,
        "provider_id": provider.pk,
        "model_id": model.pk,
        "routing_rule_id": rule.pk,
    }


def records(names: dict, count: int) -> list:
    from gateway.accounting import UsageRecord

    batch = []
    for index in range(count):
        record = UsageRecord(
            endpoint="chat.completions",
            model_type="chat",
            requested_model="writer/m1",
            served_model="writer/m1",
            request_id="gen-" + uuid.uuid4().hex,
            provider_slug="writer",
            input_tokens=400 + index % 300,
            output_tokens=20 + index % 40,
            cost=Decimal("0.000123"),
            latency_ms=5 + index % 200,
            attempts=1,
            **names,
        )
        record.encoded = record.encode()
        batch.append(record)
    return batch


def backend_cpu(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(names: dict, batches: int, size: int) -> tuple[list[float], float, float | None]:
    """Wall ms per batch, and writer and database CPU µs per row, over ``batches``."""
    from django.db import connection

    from gateway.accounting import write_records

    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    prepared = [records(names, size) for _ in range(batches)]
    walls = []
    thread_start = time.thread_time()
    server_start = backend_cpu(pid)
    for batch in prepared:
        started = time.perf_counter()
        outcome = write_records(batch)
        walls.append((time.perf_counter() - started) * 1000)
        assert outcome.written == size and not outcome.dropped, outcome.dropped
    writer = (time.thread_time() - thread_start) / (batches * size) * 1e6
    server_end = backend_cpu(pid)
    server = None
    if server_start is not None and server_end is not None:
        server = (server_end - server_start) / (batches * size) * 1e6
    return walls, writer, server


def set_constraints(present: bool) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        for column, table, action in CONSTRAINTS:
            name = f"bench_model_metrics_{column}_fk"
            if present:
                cursor.execute(
                    f"ALTER TABLE model_metrics ADD CONSTRAINT {name} FOREIGN KEY ({column}) "
                    f"REFERENCES {table} (id) ON DELETE {action} "
                    "DEFERRABLE INITIALLY DEFERRED NOT VALID"
                )
            else:
                cursor.execute(f"ALTER TABLE model_metrics DROP CONSTRAINT IF EXISTS {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=500, help="rows per batch (500)")
    parser.add_argument("--batches", type=int, default=8, help="batches per round (8)")
    parser.add_argument("--rounds", type=int, default=5, help="alternated rounds (5)")
    args = parser.parse_args()

    services = None
    database_url = os.environ.get("DATABASE_URL", "")
    own = not database_url.startswith("postgres")
    if own:
        services = bench_gateway().Services(Path(tempfile.mkdtemp(prefix="bench-writer-")))
        database_url = services.start_postgres()
    try:
        setup_django(database_url)
        names = seed()
        measure(names, 2, args.batch)  # warm: connections, statement, caches
        variants = ["writer"] + (["with constraints"] if own else [])
        figures: dict[str, list] = {variant: [] for variant in variants}
        for _ in range(args.rounds):
            for variant in variants:
                set_constraints(variant == "with constraints")
                try:
                    figures[variant].append(measure(names, args.batches, args.batch))
                finally:
                    set_constraints(False)
        print_table(figures, args)
    finally:
        if services is not None:
            services.stop()


def print_table(figures: dict[str, list], args) -> None:
    print(
        f"\n{args.rounds} rounds of {args.batches} batches of {args.batch} rows, alternated; "
        "medians over the rounds"
    )
    header = f"{'variant':<18}{'wall ms/batch':>14}{'writer µs/row':>15}{'database µs/row':>17}"
    print(header)
    print("-" * len(header))
    medians = {}
    for variant, rounds in figures.items():
        wall = statistics.median(statistics.median(walls) for walls, _, _ in rounds)
        writer = statistics.median(cpu for _, cpu, _ in rounds)
        servers = [server for _, _, server in rounds if server is not None]
        server = statistics.median(servers) if servers else None
        medians[variant] = (wall, writer, server)
        shown = f"{server:17.1f}" if server is not None else f"{'n/a':>17}"
        print(f"{variant:<18}{wall:14.1f}{writer:15.1f}{shown}")
    if "with constraints" in medians:
        (wall, _, server), (base_wall, _, base_server) = (
            medians["writer"],
            medians["with constraints"],
        )
        ratio = f", database CPU x{server / base_server:.2f}" if server and base_server else ""
        print(f"writer / with constraints: wall x{wall / base_wall:.2f}{ratio}")


if __name__ == "__main__":
    main()
