"""Recompute the daily metric rollups from the request metrics."""

from __future__ import annotations

from datetime import date

from django.core.management.base import BaseCommand, CommandError

from modelhub import rollups
from modelhub.models import Organization


class Command(BaseCommand):
    help = (
        "Recompute the daily rollups that the dashboard reads from the per-request metrics, "
        "for one organization or all, over a range of UTC days (all days by default)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--organization", help="slug of one organization")
        parser.add_argument("--since", type=date.fromisoformat, help="first day, YYYY-MM-DD")
        parser.add_argument("--until", type=date.fromisoformat, help="last day, YYYY-MM-DD")

    def handle(self, *args, organization=None, since=None, until=None, **options):
        org = None
        if organization:
            org = Organization.objects.filter(slug=organization).first()
            if org is None:
                raise CommandError(f"No organization with slug '{organization}'.")
        rows = rollups.rebuild(organization=org, start=since, end=until)
        self.stdout.write(f"Rebuilt {rows} daily rollup rows.")
