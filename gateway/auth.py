"""Client key authentication: by SHA-256 digest, cached for a few seconds.

The cache holds a snapshot of the key (and a short negative entry for unknown keys), so
a revoked key stops working within ``GATEWAY_KEY_CACHE_SECONDS``; expiry is checked
against the snapshot on every request and is exact.

The snapshot carries what every request of the key needs: its organization with the
organization's own limits and budget, and the budget thresholds the organization's
webhooks watch. A write to any of them announces a tenant change, which drops the
organization's snapshots on every gateway worker (``gateway.invalidation``).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from gateway.errors import AuthenticationFailed
from modelhub.crypto import hash_client_key
from modelhub.models import ClientKey, Organization
from modelhub.selectors import webhook_budget_thresholds


@dataclass(frozen=True)
class ClientKeyInfo:
    id: int
    name: str
    organization: Organization
    allowed_models: tuple[str, ...]
    rate_limit_rpm: int | None
    rate_limit_tpm: int | None
    budget_amount: Decimal | None
    budget_period: str
    expires_at: datetime | None
    revoked_at: datetime | None
    # Percentages of the key's and of the organization's budget whose crossing some active
    # webhook wants to hear of, by budget subject (modelhub.budgets.CLIENT_KEY, ORGANIZATION).
    budget_thresholds: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    def allows(self, name: str) -> bool:
        """Whether the key may ask for ``name``; no list means every model."""
        if not self.allowed_models:
            return True
        return any(
            name == pattern or fnmatch.fnmatchcase(name, pattern) for pattern in self.allowed_models
        )

    def allows_model(self, model) -> bool:
        if not self.allowed_models:
            return True
        names = {model.catalog_id, model.provider_model_id}
        if model.canonical_slug:
            names.add(model.canonical_slug)
        return any(self.allows(name) for name in names)


def _load(digest: str) -> ClientKeyInfo | None:
    key = ClientKey.objects.select_related("organization").filter(key_hash=digest).first()
    if key is None:
        return None
    return ClientKeyInfo(
        id=key.pk,
        name=key.name,
        organization=key.organization,
        allowed_models=tuple(key.allowed_models or ()),
        rate_limit_rpm=key.rate_limit_rpm,
        rate_limit_tpm=key.rate_limit_tpm,
        budget_amount=key.budget_amount,
        budget_period=key.budget_period,
        expires_at=key.expires_at,
        revoked_at=key.revoked_at,
        budget_thresholds=webhook_budget_thresholds(key.organization),
    )


def raw_key_of(headers) -> str | None:
    # X-Api-Key first: the OpenAI SDK always sends a bearer token (the OPENAI_API_KEY of its
    # environment when given none), so a client that adds X-Api-Key means that key.
    api_key = headers.get("X-Api-Key", "").strip()
    if api_key:
        return api_key
    authorization = headers.get("Authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


async def authenticate(runtime, headers) -> ClientKeyInfo:
    raw = raw_key_of(headers)
    if raw is None:
        raise AuthenticationFailed(
            "Missing API key: send it as 'Authorization: Bearer <key>' or 'X-Api-Key: <key>'.",
            code="missing_api_key",
        )
    digest = hash_client_key(raw)
    info = await runtime.keys.get_or_load(
        digest,
        lambda: runtime.db(_load, digest),
        # Unknown keys are remembered only briefly, so a key created a moment ago works.
        ttl=lambda found: (
            settings.GATEWAY_KEY_CACHE_SECONDS
            if found
            else min(settings.GATEWAY_KEY_CACHE_SECONDS, 1)
        ),
    )
    if info is None:
        raise AuthenticationFailed("Incorrect API key provided.")
    if info.revoked_at is not None:
        raise AuthenticationFailed("This API key has been revoked.", code="revoked_api_key")
    if info.expires_at is not None and info.expires_at <= timezone.now():
        raise AuthenticationFailed("This API key has expired.", code="expired_api_key")
    return info
