"""``manage.py build_catalog_snapshot``: rebuild the shipped snapshot from the fixtures."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from sync import snapshots

DEFAULT_FIXTURES = Path(settings.BASE_DIR) / "tests" / "fixtures" / "providers"
DEFAULT_OUTPUT = Path(__file__).resolve().parents[2] / "snapshots" / "catalog.json.gz"


class Command(BaseCommand):
    help = (
        "Transform the recorded provider responses in tests/fixtures/providers into the "
        "catalog snapshot that `sync_models --snapshot` loads without network."
    )

    def add_arguments(self, parser):
        parser.add_argument("--fixtures", default=str(DEFAULT_FIXTURES), metavar="DIR")
        parser.add_argument("--output", default=str(DEFAULT_OUTPUT), metavar="FILE")

    def handle(self, *args, **options):
        fixtures = Path(options["fixtures"])
        if not fixtures.is_dir():
            raise CommandError(f"No fixtures directory at {fixtures}")
        output = Path(options["output"])
        counts = snapshots.build_snapshot(fixtures_dir=fixtures, output=output)
        for slug, count in counts.items():
            self.stdout.write(f"  {slug:<12} {count:>5} models")
        self.stdout.write(
            self.style.SUCCESS(
                f"Wrote {sum(counts.values())} models from {len(counts)} providers to {output}"
            )
        )
