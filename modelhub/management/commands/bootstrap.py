"""Create the default organization, a superuser and the API_KEYS client keys (idempotent)."""

from __future__ import annotations

import os
import secrets

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from modelhub import services
from modelhub.models import Membership, Organization, Role, User


class Command(BaseCommand):
    help = (
        "Create a superuser (from DJANGO_SUPERUSER_USERNAME / _PASSWORD / _EMAIL, or generated "
        "and printed once), the default organization (DEFAULT_ORGANIZATION_SLUG) owned by it, "
        "and the gateway client keys listed in API_KEYS. Safe to run again."
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

        slug = settings.DEFAULT_ORGANIZATION_SLUG
        organization = Organization.objects.filter(slug=slug).first()
        if organization is None:
            organization = services.organization_create(
                name=slug.replace("-", " ").title(), slug=slug, owner=user
            )
            self.stdout.write(f"Created organization '{slug}' owned by '{username}'.")
        elif not Membership.objects.for_org(organization).filter(user=user).exists():
            Membership.objects.create(organization=organization, user=user, role=Role.OWNER)

        self._client_keys(organization)

    def _client_keys(self, organization: Organization) -> None:
        result = services.environment_client_keys_sync(
            organization=organization, raw_keys=settings.API_KEYS
        )
        if settings.API_KEYS_DEVELOPMENT_DEFAULT:
            self.stdout.write(
                self.style.WARNING(
                    f"Development client key of '{organization.slug}': send "
                    f"'X-Api-Key: {settings.DEV_CLIENT_KEY}' (or 'Authorization: Bearer "
                    f"{settings.DEV_CLIENT_KEY}') to /v1/. Set API_KEYS to replace it."
                )
            )
        elif result.active or result.revoked:
            self.stdout.write(
                f"Gateway client keys of '{organization.slug}' from API_KEYS: {result.active} "
                f"active ({result.created} new), {result.revoked} no longer listed revoked."
            )
        if result.conflicts:
            self.stderr.write(
                f"{result.conflicts} of API_KEYS already belong to another organization "
                "and were left there; choose other keys."
            )
