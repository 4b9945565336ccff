"""``manage.py sync_models``: sync the catalog from the providers, or load a snapshot."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from modelhub.models import SyncStatus
from sync import services
from sync.registry import REGISTRY
from sync.services import SyncResult

STATUS_STYLE = {
    SyncStatus.SUCCESS: "SUCCESS",
    SyncStatus.PARTIAL: "WARNING",
    SyncStatus.SKIPPED: "NOTICE",
    SyncStatus.FAILED: "ERROR",
}


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
            "--verbose", action="store_true", help="Also list the ids of skipped records."
        )
        parser.add_argument(
            "--snapshot",
            metavar="FILE",
            help="Load this snapshot (.json or .json.gz) instead of fetching.",
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
        dry_run = options["dry_run"]
        if options["snapshot"]:
            path = Path(options["snapshot"])
            if not path.exists():
                raise CommandError(f"No such snapshot: {path}")
            self.stdout.write(f"Loading snapshot {path}{' (dry run)' if dry_run else ''}")
            try:
                results = services.load_snapshot(
                    path=path,
                    slugs=slugs,
                    dry_run=dry_run,
                    force=options["force"],
                    on_result=self._progress,
                )
            except (ValueError, KeyError) as exc:
                raise CommandError(f"Cannot read {path}: {exc}")
        else:
            results = services.sync_providers(
                slugs=slugs,
                dry_run=dry_run,
                trigger="command",
                force=options["force"],
                on_start=self._starting,
                on_result=self._progress,
            )
            if options["policies"] and not dry_run:
                changed = services.sync_provider_policies()
                self.stdout.write(f"Provider policies updated on {changed} providers.")
        self._summary(results)
        failed = [r.provider for r in results if r.status == SyncStatus.FAILED]
        if failed:
            raise CommandError(
                f"{len(failed)} provider(s) failed: {', '.join(failed)}", returncode=1
            )

    def _starting(self, spec) -> None:
        # A transient "fetching" line only where it can be overwritten.
        if self.stdout.isatty():
            self.stdout.write(f"  {spec.slug:<12} fetching ...", ending="\r")
            self.stdout.flush()

    def _progress(self, result: SyncResult) -> None:
        style = getattr(self.style, STATUS_STYLE.get(result.status, "NOTICE"))
        self.stdout.write(style(f"  {result.provider:<12} {result.status:<8} {result.message}"))
        if self.verbose and result.skipped_ids:
            self.stdout.write(f"    skipped: {', '.join(result.skipped_ids)}")

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
        self.stdout.write(line(header))
        self.stdout.write("  ".join("-" * w for w in widths))
        for row in rows:
            self.stdout.write(line(row))
        self.stdout.write("  ".join("-" * w for w in widths))
        self.stdout.write(line(totals))
