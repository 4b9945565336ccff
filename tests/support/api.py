"""Users and authenticated clients of the management API."""

from __future__ import annotations

from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from modelhub.models import Organization, User

API = "/api/modelhub"
ROLES = ["owner", "admin", "member", "non_member", "anonymous"]
# The operators' key (ADMIN_API_KEY) of the sync and cache admin endpoints.
ADMIN_KEY = "test-admin-key-0123456789"


def make_user(username: str, **extra) -> User:
    return User.objects.create_user(username=username, password="pw-" + username, **extra)


def client_for(user: User | None, organization: Organization | None = None) -> APIClient:
    """A DRF client carrying ``user``'s JWT and naming ``organization`` in X-Organization."""
    client = APIClient()
    if user is not None:
        token = RefreshToken.for_user(user).access_token
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    if organization is not None:
        client.defaults["HTTP_X_ORGANIZATION"] = organization.slug
    return client
