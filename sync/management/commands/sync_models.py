"""``manage.py sync_models``: sync the catalog from the providers, or load a snapshot."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from modelhub.models import SyncStatus
from sync import pipeline, policies, snapshots
from sync.pipeline import SyncResult
from sync.registry import REGISTRY

SNAPSHOT = "sync/snapshots/catalog.json.gz"

STATUS_STYLE = {
    SyncStatus.SUCCESS: "SUCCESS",
    SyncStatus.PARTIAL: "WARNING",
    SyncStatus.SKIPPED: "NOTICE",
    SyncStatus.FAILED: "ERROR",
}


@contextmanager
def quiet_logger(name: str, *, enabled: bool) -> Iterator[None]:
    """Only errors from logger ``name`` while the block runs."""
    logger = logging.getLogger(name)
    previous = logger.level
    if enabled:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(previous)


class Command(BaseCommand):
    help = (
        "Fetch every provider's model list and upsert the catalog (one transaction per "
        "provider), or load a snapshot file without network. Exits 1 if a provider failed."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--providers",
            nargs="+",
            metavar="SLUG",
            help=f"Only these providers ({', '.join(REGISTRY)}).",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Fetch and transform, report what would change, write nothing.",
        )
        parser.add_argument(
            "--verbose",
            action="store_true",
            help="Also list the ids of skipped records (-v 2 adds the pipeline's log).",
        )
        parser.add_argument(
            "--snapshot",
            metavar="FILE",
            help="Load this snapshot (.json or .json.gz) instead of fetching.",
        )
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="With --snapshot: load it only while the catalog has no model (first start).",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="Apply lists that shrank below SYNC_SHRINK_GUARD_RATIO.",
        )
        parser.add_argument(
            "--policies",
            action="store_true",
            help="Also fill provider policies from OpenRouter's provider list.",
        )

    def handle(self, *args, **options):
        slugs = options["providers"]
        unknown = [slug for slug in slugs or [] if slug not in REGISTRY]
        if unknown:
            raise CommandError(f"Unknown providers: {', '.join(unknown)}")
        self.verbose = options["verbose"]
        self.dry_run = dry_run = options["dry_run"]
        if dry_run:
            self.stdout.write(
                self.style.NOTICE("Dry run: fetching and comparing only, nothing is written.")
            )
        if options["if_empty"] and not options["snapshot"]:
            raise CommandError("--if-empty only applies to --snapshot.")
        # The command prints every provider's outcome itself; the pipeline's log lines
        # would say the same things a second time (-v 2 shows them too).
        with quiet_logger("sync", enabled=options["verbosity"] < 2):
            if options["snapshot"]:
                results = self._load_snapshot(Path(options["snapshot"]), slugs, options)
            else:
                specs = [REGISTRY[slug] for slug in slugs] if slugs else list(REGISTRY.values())
                with self._progress_bar(total=len(specs)):
                    results = pipeline.sync_providers(
                        slugs=slugs,
                        dry_run=dry_run,
                        trigger="command",
                        force=options["force"],
                        on_start=self._starting,
                        on_result=self._progress,
                    )
                if options["policies"] and not dry_run:
                    changed = policies.sync_provider_policies()
                    self.stdout.write(f"Provider policies updated on {changed} providers.")
        if results:
            self._summary(results)
        attempted = [r for r in results if r.status != SyncStatus.SKIPPED]
        if attempted and all(r.unreachable for r in attempted):
            self.stderr.write(
                "No provider could be reached (no network, a proxy, or a firewall?). Load "
                f"the bundled catalog instead: python manage.py sync_models --snapshot {SNAPSHOT}"
            )
        failed = [r.provider for r in results if r.status == SyncStatus.FAILED]
        if failed:
            raise CommandError(
                f"{len(failed)} provider(s) failed: {', '.join(failed)}", returncode=1
            )

    def _load_snapshot(self, path: Path, slugs, options) -> list[SyncResult]:
        if not path.exists():
            raise CommandError(f"No such snapshot: {path}")
        if options["if_empty"] and snapshots.catalog_has_models():
            self.stdout.write(f"The catalog has models already; {path} not loaded.")
            return []
        self.stdout.write(f"Loading snapshot {path}{' (dry run)' if self.dry_run else ''}")
        try:
            with self._progress_bar(total=None):
                return snapshots.load_snapshot(
                    path=path,
                    slugs=slugs,
                    dry_run=self.dry_run,
                    force=options["force"],
                    on_result=self._progress,
                )
        except (ValueError, KeyError) as exc:
            raise CommandError(f"Cannot read {path}: {exc}") from exc

    @contextmanager
    def _progress_bar(self, *, total: int | None):
        """A progress bar on a terminal; plain lines (logs, CI, pipes) get none."""
        self.bar = None
        if self.stdout.isatty():
            # The bar draws on the stream itself: OutputWrapper would add a newline per frame.
            self.bar = tqdm(total=total, unit="provider", file=self.stdout._out, leave=False)
        try:
            yield
        finally:
            if self.bar is not None:
                self.bar.close()
                self.bar = None

    def _write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=self.stdout._out)
        else:
            self.stdout.write(line)

    def _starting(self, spec) -> None:
        if self.bar is not None:
            self.bar.set_description(spec.slug)

    def _progress(self, result: SyncResult) -> None:
        style = getattr(self.style, STATUS_STYLE.get(result.status, "NOTICE"))
        self._write(style(f"  {result.provider:<12} {result.status:<8} {result.message}"))
        if self.verbose and result.skipped_ids:
            self._write(f"    skipped: {', '.join(result.skipped_ids)}")
        if self.bar is not None:
            self.bar.update(1)

    def _summary(self, results: list[SyncResult]) -> None:
        header = (
            "provider",
            "status",
            "fetched",
            "transf.",
            "skipped",
            "created",
            "updated",
            "unchanged",
            "deact.",
            "ms",
        )
        rows = [
            (
                r.provider,
                r.status,
                r.fetched,
                r.transformed,
                r.skipped,
                r.created,
                r.updated,
                r.unchanged,
                r.deactivated,
                r.duration_ms,
            )
            for r in results
        ]
        totals = ["total", ""] + [sum(row[i] for row in rows) for i in range(2, len(header))]
        widths = [
            max(len(str(row[i])) for row in [header, *rows, totals]) for i in range(len(header))
        ]

        def line(row) -> str:
            return "  ".join(
                str(value).ljust(w) if i < 2 else str(value).rjust(w)
                for i, (value, w) in enumerate(zip(row, widths, strict=True))
            )

        self.stdout.write("")
        if self.dry_run:
            self.stdout.write(self.style.NOTICE("Dry run: nothing was written."))
        self.stdout.write(line(header))
        self.stdout.write("  ".join("-" * w for w in widths))
        for row in rows:
            self.stdout.write(line(row))
        self.stdout.write("  ".join("-" * w for w in widths))
        self.stdout.write(line(totals))
