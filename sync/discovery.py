"""Model discovery for an organization's private provider (a vLLM, an Ollama, a proxy).

The provider's own model list is fetched with the organization's credential and written
through the same transform, plan and set-based upsert as the catalog sync, so a
discovered model is indistinguishable from a synced one. The URL passes the outbound
address policy twice: its syntax and IP literal (:func:`modelhub.outbound.check_url`),
then every address its host name resolves to (:func:`modelhub.outbound.address_refusal`),
before any connection is made. Any fault leaves the provider's rows exactly as they were.
"""

from __future__ import annotations

import dataclasses
from urllib.parse import urlsplit

from django.db import transaction
from django.utils import timezone

from modelhub import crypto, outbound
from modelhub.cache import bump_catalog_version
from modelhub.invalidation import publish_tenant_change
from modelhub.models import ApiFormat, Organization, Provider, ProviderCredential
from sync import bulk, pipeline
from sync.fetch import FetchError, extract_items, fetch_page, redact, request_headers
from sync.spec import ProviderSpec


class DiscoveryError(Exception):
    """Discovery could not run or its answer was refused; nothing was written.

    ``status`` is the HTTP status the API answers with: 400 for what the organization can
    fix (URL, credential), 502 for what the provider answered (or did not).
    """

    def __init__(self, message: str, *, status: int = 502):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclasses.dataclass
class DiscoveryResult:
    created: int = 0
    updated: int = 0
    deactivated: int = 0
    unchanged: int = 0
    total: int = 0

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def list_url(provider: Provider) -> str:
    """``{base_url}/models``, or Ollama's ``{root}/api/tags`` (its root is the base URL
    without the ``/v1`` of its OpenAI-compatible API)."""
    base = provider.base_url.rstrip("/")
    if provider.api_format == ApiFormat.OLLAMA:
        root = base[: -len("/v1")] if base.endswith("/v1") else base
        return f"{root}/api/tags"
    return f"{base}/models"


def provider_spec(provider: Provider) -> ProviderSpec:
    """A registry-style spec for a private provider, so the sync's transforms apply."""
    url = list_url(provider)
    if provider.api_format == ApiFormat.OLLAMA:
        return ProviderSpec(
            slug=provider.slug,
            name=provider.name,
            list_url=url,
            base_url=provider.base_url,
            env_var="",
            api_format=ApiFormat.OLLAMA,
            auth_required=False,
            items_path="models|data",
            fields={"id": ("model", "name", "id"), "name": ("name", "id"), "created": ("created",)},
            author_from_id=False,
        )
    return ProviderSpec(
        slug=provider.slug,
        name=provider.name,
        list_url=url,
        base_url=provider.base_url,
        env_var="",
        api_format=provider.api_format,
    )


def check_destination(url: str) -> None:
    """Refuse (400) a URL the outbound policy refuses, before any connection."""
    try:
        outbound.resolve_url(url)
    except outbound.OutboundURLRefused as exc:
        raise DiscoveryError(
            f"The provider's base URL is refused. {exc.message}", status=400
        ) from None
    except OSError:
        raise DiscoveryError(
            f"cannot resolve the provider's host {urlsplit(url).hostname}"
        ) from None


def _credential_secret(provider: Provider, organization: Organization) -> str:
    credential = (
        ProviderCredential.objects.for_org(organization)
        .filter(provider=provider, is_active=True)
        .order_by("priority", "id")
        .first()
    )
    if credential is None:
        if provider.requires_api_key:
            raise DiscoveryError(
                "The organization has no active credential for this provider; add one with "
                "POST /api/modelhub/api-keys/ (or mark the provider as needing no key).",
                status=400,
            )
        return ""
    return crypto.decrypt_secret(credential.encrypted_secret)


def discover_provider_models(provider_id: int, organization_id: int) -> DiscoveryResult:
    """Fetch the private provider's model list and upsert it; raises :class:`DiscoveryError`.

    Vanished models are deactivated, never deleted. An empty or unreadable list is an
    error, not "every model vanished".
    """
    import requests  # imported when used: see sync/fetch.py

    organization = Organization.objects.get(pk=organization_id)
    provider = Provider.objects.for_org(organization).get(pk=provider_id)
    spec = provider_spec(provider)
    url = spec.list_url
    check_destination(url)
    secret = _credential_secret(provider, organization)
    try:
        with requests.Session() as session:
            # Redirects would leave the checked destination.
            session.max_redirects = 0
            payload = fetch_page(session, url, headers=request_headers(spec, secret), secret=secret)
        raw_records = extract_items(spec, payload)
    except FetchError as exc:
        raise DiscoveryError(
            f"Discovery failed: {redact(str(exc), secret)}; no model was changed."
        ) from None
    except requests.TooManyRedirects:
        raise DiscoveryError("Discovery failed: the provider answered with a redirect.") from None
    records, _ = pipeline.transform_records(spec=spec, raw_records=raw_records)
    if not records:
        raise DiscoveryError(
            f"Discovery failed: the provider listed no usable model ({len(raw_records)} "
            "records); no model was changed."
        )
    return _upsert(provider_id=provider.pk, organization=organization, records=records)


def _upsert(*, provider_id: int, organization: Organization, records) -> DiscoveryResult:
    now = timezone.now()
    with transaction.atomic():
        # Serialises concurrent discoveries of one provider.
        providers = Provider.objects.for_org(organization).filter(pk=provider_id)
        providers.select_for_update().first()
        plan = pipeline._plan(provider_id=provider_id, records=records, now=now)
        try:
            pipeline._guard(plan=plan, count=len(records))
        except pipeline.SyncAborted as exc:
            raise DiscoveryError(f"Discovery refused: {exc}.") from None
        result = DiscoveryResult(
            created=bulk.insert_rows(plan.to_create),
            updated=bulk.update_rows(plan.to_update, pipeline.UPDATE_FIELDS),
            deactivated=bulk.deactivate_rows(plan.to_deactivate, now=now),
            unchanged=plan.unchanged,
            total=len(records),
        )
        providers.update(last_synced_at=now, updated_at=now)
        if result.created + result.updated + result.deactivated:
            transaction.on_commit(bump_catalog_version)
            publish_tenant_change(organization.pk)
    return result
