"""Create the demo organization and a superuser on a fresh installation (idempotent)."""

from __future__ import annotations

import os
import secrets

from django.core.management.base import BaseCommand
from django.db import transaction

from modelhub import services
from modelhub.models import Membership, Organization, Role, User

DEMO_SLUG = "demo"


class Command(BaseCommand):
    help = (
        "Create a superuser (from DJANGO_SUPERUSER_USERNAME / _PASSWORD / _EMAIL, or generated "
        "and printed once) and a demo organization owned by it. Safe to run again."
    )

    @transaction.atomic
    def handle(self, *args, **options):
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME") or "admin"
        email = os.environ.get("DJANGO_SUPERUSER_EMAIL") or "admin@example.com"
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD")

        user = User.objects.filter(username=username).first()
        if user is None:
            generated = not password
            password = password or secrets.token_urlsafe(12)
            user = User.objects.create_superuser(username=username, email=email, password=password)
            if generated:
                self.stdout.write(
                    self.style.WARNING(
                        "Created superuser — write the password down, it is not shown again:\n"
                        f"    username: {username}\n    password: {password}"
                    )
                )
            else:
                self.stdout.write(f"Created superuser '{username}' from the environment.")
        else:
            self.stdout.write(f"Superuser '{username}' exists; password unchanged.")

        organization = Organization.objects.filter(slug=DEMO_SLUG).first()
        if organization is None:
            organization = services.organization_create(name="Demo", slug=DEMO_SLUG, owner=user)
            self.stdout.write(f"Created organization '{DEMO_SLUG}' owned by '{username}'.")
        elif not Membership.objects.filter(organization=organization, user=user).exists():
            Membership.objects.create(organization=organization, user=user, role=Role.OWNER)
