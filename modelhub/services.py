"""Writes of the domain: every write with a rule behind it is a function here."""

from __future__ import annotations

import functools
import json
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from operator import itemgetter
from typing import cast

import orjson
import psycopg
from auditlog.context import disable_auditlog
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, models, transaction
from django.db.models import F, ForeignKey
from django.utils import timezone
from django.utils.text import slugify
from psycopg.types.json import Jsonb

from modelhub import budgets, outbound, rollups, selectors, webhooks
from modelhub.crypto import (
    decrypt_secret,
    encrypt_secret,
    generate_client_key,
    hash_client_key,
    mask_secret,
)
from modelhub.invalidation import publish_tenant_change
from modelhub.models import (
    ClientKey,
    DeliveryStatus,
    ErrorSource,
    HealthStatus,
    LimitCounter,
    Membership,
    Model,
    ModelMetric,
    Organization,
    Provider,
    ProviderCredential,
    Role,
    RoutingRule,
    RoutingTarget,
    StoredResponse,
    User,
    Webhook,
    WebhookDelivery,
    WebhookEvent,
    responses_retention_cutoff,
)
from modelhub.quotas import below_quotas_q, period_bounds
from modelhub.redaction import scrub, scrub_for_credential

WEBHOOK_SECRET_PREFIX = "whsec_"

# --- Organizations and members -----------------------------------------------------------


@transaction.atomic
def organization_create(*, name: str, owner: User, slug: str = "", **fields) -> Organization:
    """Create an organization with ``owner`` as its owner; without a slug, the name's
    slug is used. ``fields`` may set its limits and budget."""
    organization = Organization(name=name, slug=slug or slugify(name)[:100], **fields)
    if not organization.slug:
        raise ValidationError({"slug": "Give a slug: the name has no letters to derive one."})
    organization.full_clean()
    organization.save()
    Membership.objects.create(organization=organization, user=owner, role=Role.OWNER)
    return organization


def organization_update(*, organization: Organization, **fields) -> Organization:
    for name, value in fields.items():
        setattr(organization, name, value)
    organization.full_clean()
    organization.save()
    # The gateway's key snapshots carry the organization (its slug names aliases).
    publish_tenant_change(organization.pk)
    return organization


@transaction.atomic
def organization_delete(*, organization: Organization) -> None:
    """Delete an organization with its keys, credentials and rules; its keys stop
    working on every gateway worker once this commits."""
    organization_id = organization.pk
    organization.delete()
    publish_tenant_change(organization_id)


def lock_organization_being_deleted(sender, instance: Organization, **kwargs) -> None:
    """Connected to ``pre_delete`` of Organization (``ModelhubConfig.ready``), which
    Django sends before it deletes anything of the organization, whoever deletes it
    (the API, the admin, a queryset).

    The metric writer locks the organization (FOR KEY SHARE) before it adds to the daily
    rollups the deletion deletes. Locked only by its own DELETE, last, the two could each
    wait for the other until the writer's lock_timeout; locked first, the deletion waits
    for the batch, then deletes it with the rest."""
    list(Organization.objects.select_for_update().filter(pk=instance.pk).values("pk"))


def _owner_count(organization: Organization) -> int:
    return Membership.objects.for_org(organization).filter(role=Role.OWNER).count()


# Who may grant which role is the API's permission (modelhub.api.tenancy.RolePermission);
# these services keep what holds whoever calls them: an organization always has an owner.


@transaction.atomic
def membership_add(*, organization: Organization, user: User, role: str) -> Membership:
    if Membership.objects.for_org(organization).filter(user=user).exists():
        raise ValidationError({"user": "This user is already a member of the organization."})
    return Membership.objects.create(organization=organization, user=user, role=role)


@transaction.atomic
def membership_change_role(*, membership: Membership, role: str) -> Membership:
    # Lock the organization's owner rows so two concurrent demotions cannot both pass.
    list(
        Membership.objects.for_org(membership.organization)
        .filter(role=Role.OWNER)
        .select_for_update()
    )
    demoting_owner = membership.role == Role.OWNER and role != Role.OWNER
    if demoting_owner and _owner_count(membership.organization) <= 1:
        raise ValidationError(
            {"role": "The last owner cannot be demoted; add another owner first."}
        )
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership) -> None:
    list(
        Membership.objects.for_org(membership.organization)
        .filter(role=Role.OWNER)
        .select_for_update()
    )
    if membership.role == Role.OWNER and _owner_count(membership.organization) <= 1:
        raise ValidationError(
            {"detail": "The last owner cannot leave; add another owner or delete the organization."}
        )
    membership.delete()


# --- Catalog: providers and models -------------------------------------------------------
# The gateway caches plans and model lists built from these rows; a global row (no
# organization) concerns every organization, hence publish_tenant_change(None).


def provider_create(
    *, organization: Organization | None, name: str, slug: str, **fields
) -> Provider:
    """Add a provider: an organization's private one, or a global one (``organization``
    None). The slug is unique per owner (the model's constraints say so)."""
    provider = Provider(organization=organization, name=name, slug=slug, **fields)
    provider.full_clean()
    provider.save()
    publish_tenant_change(provider.organization_id)
    return provider


def provider_update(*, provider: Provider, **fields) -> Provider:
    for name, value in fields.items():
        setattr(provider, name, value)
    provider.full_clean()
    provider.save()
    publish_tenant_change(provider.organization_id)
    return provider


def provider_delete(*, provider: Provider) -> None:
    """Delete a provider with its models and the credentials for it."""
    organization_id = provider.organization_id
    provider.delete()
    publish_tenant_change(organization_id)


def model_create(*, provider: Provider, provider_model_id: str, model_name: str, **fields) -> Model:
    """Add a model to a provider; ``provider_model_id`` is unique per provider."""
    model = Model(
        provider=provider, provider_model_id=provider_model_id, model_name=model_name, **fields
    )
    model.full_clean()
    model.save()
    publish_tenant_change(provider.organization_id)
    return model


def model_update(*, model: Model, **fields) -> Model:
    owner_before = model.provider.organization_id
    for name, value in fields.items():
        setattr(model, name, value)
    model.full_clean()
    model.save()
    # A model moved to another provider leaves the old owner's lists as well.
    for organization_id in {owner_before, model.provider.organization_id}:
        publish_tenant_change(organization_id)
    return model


def model_delete(*, model: Model) -> None:
    organization_id = model.provider.organization_id
    model.delete()
    publish_tenant_change(organization_id)


# --- Provider credentials ----------------------------------------------------------------


def provider_credential_create(
    *, organization: Organization, provider: Provider, secret: str, name: str, **fields
) -> ProviderCredential:
    credential = ProviderCredential(
        organization=organization,
        provider=provider,
        name=name,
        encrypted_secret=encrypt_secret(secret),
        secret_hint=mask_secret(secret),
        **fields,
    )
    credential.full_clean(exclude=["encrypted_secret", "secret_hint"])
    credential.save()
    publish_tenant_change(credential.organization_id)
    return credential


def provider_credential_update(
    *, credential: ProviderCredential, secret: str | None = None, **fields
) -> ProviderCredential:
    for name, value in fields.items():
        setattr(credential, name, value)
    if secret:
        credential.encrypted_secret = encrypt_secret(secret)
        credential.secret_hint = mask_secret(secret)
        # A new secret deserves a fresh start.
        credential.health_status = HealthStatus.HEALTHY
        credential.consecutive_failures = 0
        credential.cooldown_until = None
    credential.full_clean(exclude=["encrypted_secret", "secret_hint"])
    credential.save()
    publish_tenant_change(credential.organization_id)
    return credential


def provider_credential_delete(*, credential: ProviderCredential) -> None:
    organization_id = credential.organization_id
    credential.delete()
    publish_tenant_change(organization_id)


def provider_credential_disable(*, credentials) -> int:
    """Switch credentials off (a queryset, e.g. the admin's selection)."""
    organization_ids = set(credentials.values_list("organization_id", flat=True))
    count = credentials.update(is_active=False, updated_at=timezone.now())
    for organization_id in organization_ids:
        publish_tenant_change(organization_id)
    return count


def provider_credential_roll_period(*, credential_id: int, period: str, now: datetime) -> None:
    """Start a new quota period (counters back to zero) if the stored one is over."""
    start, _ = period_bounds(period, now)
    ProviderCredential.objects.filter(pk=credential_id, period_started_at__lt=start).update(
        period_started_at=now, used_requests=0, used_tokens=0, used_cost=Decimal(0)
    )


def provider_credential_add_usage(
    *,
    credential_id: int,
    period: str,
    requests: int = 1,
    tokens: int,
    cost: Decimal,
    now: datetime | None = None,
) -> None:
    """Add usage to a credential's counters of the current period, atomically in the
    database (concurrent writers add up, none overwrites another)."""
    now = now or timezone.now()
    provider_credential_roll_period(credential_id=credential_id, period=period, now=now)
    ProviderCredential.objects.filter(pk=credential_id).update(
        used_requests=F("used_requests") + requests,
        used_tokens=F("used_tokens") + tokens,
        used_cost=F("used_cost") + cost,
        last_used_at=now,
    )


def provider_credential_record_success(
    *, credential: ProviderCredential, now: datetime | None = None
) -> None:
    now = now or timezone.now()
    ProviderCredential.objects.filter(pk=credential.pk).update(
        health_status=HealthStatus.HEALTHY,
        consecutive_failures=0,
        cooldown_until=None,
        last_success_at=now,
    )
    # Other gateway workers may hold plans without this credential.
    publish_tenant_change(credential.organization_id)


MAX_COOLDOWN_SECONDS = 3600


def provider_credential_record_failure(
    *, credential: ProviderCredential, error: str, now: datetime | None = None
) -> ProviderCredential:
    """Count a failure; past the threshold the credential is unhealthy and cools down.

    The cooldown doubles with each further failure (up to a cap); when it ends the
    evaluator tries the credential again, and one success makes it healthy.
    """
    now = now or timezone.now()
    with transaction.atomic():
        # FOR NO KEY UPDATE: the metric writer's check of what its rows name (FOR KEY
        # SHARE) does not wait for it, nor it for the writer.
        credential = ProviderCredential.objects.select_for_update(no_key=True).get(pk=credential.pk)
        was_unhealthy = credential.health_status == HealthStatus.UNHEALTHY
        credential.consecutive_failures += 1
        credential.last_failure_at = now
        # The gateway scrubbed the text already; any other caller gets the same guard.
        credential.last_error = scrub_for_credential(error, credential)
        threshold = settings.CREDENTIAL_FAILURE_THRESHOLD
        if credential.consecutive_failures >= threshold:
            # The exponent cap only keeps the number small; the hour is the real ceiling.
            exponent = min(credential.consecutive_failures - threshold, 20)
            seconds = min(settings.CREDENTIAL_COOLDOWN_SECONDS * 2**exponent, MAX_COOLDOWN_SECONDS)
            credential.health_status = HealthStatus.UNHEALTHY
            credential.cooldown_until = now + timedelta(seconds=seconds)
        else:
            credential.health_status = HealthStatus.DEGRADED
        # The gateway's bookkeeping, not a person's change: no audit entry, and no
        # extra read of the row for one.
        with disable_auditlog():
            credential.save(
                update_fields=[
                    "consecutive_failures",
                    "last_failure_at",
                    "last_error",
                    "health_status",
                    "cooldown_until",
                    "updated_at",
                ]
            )
        publish_tenant_change(credential.organization_id)
        if credential.health_status == HealthStatus.UNHEALTHY and not was_unhealthy:
            # Decided under the row lock: one event per turn to unhealthy, however many
            # gateway workers saw the failures.
            webhook_credential_unhealthy(credential=credential, now=now)
    return credential


# --- Client keys --------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedClientKey:
    client_key: ClientKey
    raw_key: str


def client_key_create(
    *, organization: Organization, name: str, created_by: User | None = None, **fields
) -> IssuedClientKey:
    """Create a key; the raw value is returned here once and only its digest is stored."""
    expires_at = fields.get("expires_at")
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError({"expires_at": "A new key must expire in the future."})
    raw, prefix, digest = generate_client_key()
    client_key = ClientKey(
        organization=organization,
        name=name,
        prefix=prefix,
        key_hash=digest,
        created_by=created_by,
        **fields,
    )
    client_key.full_clean(exclude=["key_hash", "prefix"])
    client_key.save()
    # A gateway may remember the digest as unknown for a moment; it works at once.
    publish_tenant_change(organization.pk, client_key_hash=digest)
    return IssuedClientKey(client_key, raw)


def _publish_key(client_key: ClientKey) -> None:
    publish_tenant_change(client_key.organization_id, client_key_hash=client_key.key_hash)


def client_key_update(*, client_key: ClientKey, **fields) -> ClientKey:
    """Change a key's limits, allowed models or expiry; gateways apply it at once (an
    expiry in the past ends the key)."""
    for name, value in fields.items():
        setattr(client_key, name, value)
    client_key.full_clean(exclude=["key_hash", "prefix"])
    client_key.save()
    _publish_key(client_key)
    return client_key


# Name of the client keys that come from the API_KEYS setting (their values are not stored).
ENVIRONMENT_CLIENT_KEY_NAME = "API_KEYS"


@dataclass(frozen=True)
class EnvironmentKeysResult:
    active: int
    created: int
    revoked: int
    conflicts: int  # listed keys that already belong to another organization


@transaction.atomic
def environment_client_keys_sync(
    *, organization: Organization, raw_keys: Iterable[str], now: datetime | None = None
) -> EnvironmentKeysResult:
    """Make ``raw_keys`` (the operator's API_KEYS) client keys of ``organization``.

    Only SHA-256 digests are stored, like any client key, so metrics and limits work the
    same. Idempotent: a listed key that exists is kept (and restored if it was revoked by
    an earlier run); keys of an earlier API_KEYS that are no longer listed are revoked.
    """
    now = now or timezone.now()
    digests = {hash_client_key(raw): raw for raw in (k.strip() for k in raw_keys) if raw}
    # Every organization's keys: a listed key that belongs to another one is a conflict.
    listed = ClientKey.objects.across_tenants(reason="API_KEYS matched by digest")
    existing = {key.key_hash: key for key in listed.filter(key_hash__in=digests)}
    created = conflicts = 0
    for digest, raw in digests.items():
        key = existing.get(digest)
        if key is None:
            ClientKey.objects.create(
                organization=organization,
                name=ENVIRONMENT_CLIENT_KEY_NAME,
                # Enough to recognise a key in the admin, never enough to guess a short one.
                prefix=raw[: min(4, len(raw) // 3)],
                key_hash=digest,
            )
            created += 1
        elif key.organization_id != organization.pk:
            conflicts += 1
        elif key.name == ENVIRONMENT_CLIENT_KEY_NAME and key.revoked_at is not None:
            key.revoked_at = None
            key.save(update_fields=["revoked_at", "updated_at"])
    revoked = (
        ClientKey.objects.for_org(organization)
        .filter(name=ENVIRONMENT_CLIENT_KEY_NAME, revoked_at__isnull=True)
        .exclude(key_hash__in=digests)
        .update(revoked_at=now, updated_at=now)
    )
    if revoked:
        publish_tenant_change(organization.pk)
    return EnvironmentKeysResult(
        active=len(digests) - conflicts, created=created, revoked=revoked, conflicts=conflicts
    )


def client_key_revoke(*, client_key: ClientKey, now: datetime | None = None) -> ClientKey:
    if client_key.revoked_at is None:
        client_key.revoked_at = now or timezone.now()
        client_key.save(update_fields=["revoked_at", "updated_at"])
    _publish_key(client_key)
    return client_key


def client_key_delete(*, client_key: ClientKey) -> None:
    organization_id, digest = client_key.organization_id, client_key.key_hash
    client_key.delete()
    publish_tenant_change(organization_id, client_key_hash=digest)


# --- Routing rules ------------------------------------------------------------------------


@transaction.atomic
def routing_rule_save(
    *,
    organization: Organization,
    rule: RoutingRule | None = None,
    targets: Iterable[Mapping] | None = None,
    **fields,
) -> RoutingRule:
    """Create or update a rule; ``targets`` (when given) replaces the rule's targets."""
    rule = rule or RoutingRule(organization=organization)
    for name, value in fields.items():
        setattr(rule, name, value)
    rule.full_clean()
    rule.save()
    if targets is not None:
        _routing_targets_replace(rule=rule, targets=targets)
    publish_tenant_change(organization.pk)
    return rule


def _routing_targets_replace(*, rule: RoutingRule, targets: Iterable[Mapping]) -> None:
    """Give the rule these targets, in this order; the same list again changes nothing.

    Targets are saved one by one (a rule has at most 50), not in bulk, so that each
    added or removed target is in the audit log.
    """
    wanted = [
        RoutingTarget(
            rule=rule,
            model=target["model"],
            credential=target.get("credential"),
            weight=target.get("weight", 1),
            position=index,
        )
        for index, target in enumerate(targets)
    ]
    current = list(
        rule.targets.order_by("position", "id").values_list("model_id", "credential_id", "weight")
    )
    if current == [(t.model_id, t.credential_id, t.weight) for t in wanted]:
        return
    rule.targets.all().delete()
    for target in wanted:
        target.save()


def routing_rule_delete(*, rule: RoutingRule) -> None:
    organization_id = rule.organization_id
    rule.delete()
    publish_tenant_change(organization_id)


# --- Metrics and cost ---------------------------------------------------------------------


@dataclass(frozen=True)
class CostEstimate:
    total: Decimal
    breakdown: dict[str, Decimal]
    missing_prices: list[str]
    # The price applied to each counted item (None when the model has none).
    unit_prices: dict[str, Decimal | None]


# usage name -> (model price field, what it is counted in)
COST_COMPONENTS = {
    "input_tokens": "pricing_prompt",
    "output_tokens": "pricing_completion",
    "cached_input_tokens": "pricing_cache_read",
    "cache_write_tokens": "pricing_cache_write",
    "images": "pricing_image",
    "requests": "pricing_request",
    "web_searches": "pricing_web_search",
    "reasoning_tokens": "pricing_internal_reasoning",
}


def estimate_cost(*, model: Model, usage: Mapping[str, int]) -> CostEstimate:
    """Cost in USD of ``usage`` at the model's per-unit prices, in Decimal.

    Cached input tokens are billed at the cache-read price when the model has one and
    at the prompt price otherwise; they are part of ``input_tokens`` only if the caller
    counts them there, so callers pass them separately.
    """
    breakdown: dict[str, Decimal] = {}
    missing: list[str] = []
    unit_prices: dict[str, Decimal | None] = {}
    for name, price_field in COST_COMPONENTS.items():
        count = int(usage.get(name) or 0)
        if not count:
            continue
        price = getattr(model, price_field)
        if price is None and name == "cached_input_tokens":
            price = model.pricing_prompt
        unit_prices[name] = price
        if price is None:
            missing.append(name)
            continue
        breakdown[name] = price * count
    total = sum(breakdown.values(), Decimal(0))
    return CostEstimate(total, breakdown, missing, unit_prices)


def metric_create(*, organization: Organization, **fields) -> ModelMetric:
    fields.setdefault(
        "total_tokens", int(fields.get("input_tokens") or 0) + int(fields.get("output_tokens") or 0)
    )
    metric = ModelMetric(organization=organization, **fields)
    _attribute_error(metric)
    metric.full_clean(exclude=["organization"])
    with transaction.atomic():
        checked = metrics_check_references([metric])
        if checked.orphaned:
            raise ValidationError({"organization": "This organization has been deleted."})
        checked.clear_deleted_references()
        metric.save()
        rollups.add_metrics([metric])
    return metric


# A metric row's optional references. When the row one names is deleted, the reference
# becomes NULL: what on_delete=SET_NULL does to the metric rows already written.
METRIC_OPTIONAL_REFERENCES = ("client_key", "credential", "provider", "model", "routing_rule")


@dataclass
class MetricReferenceCheck:
    """What :func:`metrics_check_references` found about a batch of metric rows."""

    rows: list  # the rows whose organization exists: writable, with ``deleted_references``
    orphaned: list  # their organization is gone: they cannot be written
    detached: dict[str, int]  # reference name -> rows naming a deleted row by it
    missing: dict[str, set[int]]  # attribute name -> the deleted rows' primary keys named

    def deleted_references(self, row) -> dict[str, None]:
        """The row's attributes naming a deleted row, each mapped to None."""
        return {name: None for name, pks in self.missing.items() if getattr(row, name) in pks}

    def clear_deleted_references(self) -> list:
        """``rows``, their references to deleted rows set to None."""
        if self.missing:
            for row in self.rows:
                for name in self.deleted_references(row):
                    setattr(row, name, None)
        return self.rows


def existing_references(named: Mapping[type[models.Model], set[int]]) -> dict:
    """Of the primary keys ``named`` for each model, those whose row exists.

    On PostgreSQL the rows found are locked ``FOR KEY SHARE`` until the transaction
    ends, in one statement: a deletion of one of them waits for whatever the
    transaction writes naming it, and then clears those references itself (see
    migration 0013). The locks are taken in a fixed order, table by table and by key."""
    named = {model: pks for model, pks in named.items() if pks}
    if connection.vendor != "postgresql":
        return {model: _existing_pks(model, pks) for model, pks in named.items()}
    found: dict = {model: set() for model in named}
    if not named:
        return found
    models_in_order = sorted(named, key=lambda model: model._meta.db_table)
    quote = connection.ops.quote_name
    locks = ", ".join(
        f"locked_{index} AS MATERIALIZED (SELECT {quote(pk)} AS id "  # noqa: S608
        f"FROM {quote(model._meta.db_table)} WHERE {quote(pk)} = ANY(%s) "
        f"ORDER BY 1 FOR KEY SHARE)"
        for index, model in enumerate(models_in_order)
        for pk in [cast(str, model._meta.pk.column)]
    )
    union = " UNION ALL ".join(
        f"SELECT {index}, id FROM locked_{index}"  # noqa: S608
        for index in range(len(models_in_order))
    )
    with connection.cursor() as cursor:
        cursor.execute(f"WITH {locks} {union}", [sorted(named[model]) for model in models_in_order])
        for index, pk in cursor.fetchall():
            found[models_in_order[index]].add(pk)
    return found


def _existing_pks(model, pks: set[int], chunk: int = 500) -> set[int]:
    ordered = sorted(pks)
    found: set[int] = set()
    for start in range(0, len(ordered), chunk):
        found.update(
            model._base_manager.filter(pk__in=ordered[start : start + chunk])
            .order_by()
            .values_list("pk", flat=True)
        )
    return found


def metrics_check_references(rows: Iterable) -> MetricReferenceCheck:
    """Find what metric rows name that was deleted since they were made.

    ``rows`` are ModelMetric instances or anything with the same ``*_id`` attributes
    (the gateway's usage records); they are left as they are. The table has no foreign
    key constraints: this check, made in the transaction that writes the rows, stands
    for them, once per batch instead of six checks per row. A reference to a deleted row
    is to be written as NULL, as ``on_delete=SET_NULL`` makes it for the rows already
    written; a row whose organization is gone cannot be written at all. One statement
    on PostgreSQL, which locks the rows named until the write commits (see
    :func:`existing_references`)."""
    rows = list(rows)
    fields = [
        cast(ForeignKey, ModelMetric._meta.get_field(name)) for name in METRIC_OPTIONAL_REFERENCES
    ]
    named: dict = {Organization: {row.organization_id for row in rows}}
    for field in fields:
        named.setdefault(field.related_model, set()).update(
            getattr(row, field.attname) for row in rows
        )
        named[field.related_model].discard(None)
    existing = existing_references(named)
    organizations = existing.get(Organization, set())
    orphaned = [row for row in rows if row.organization_id not in organizations]
    if orphaned:
        rows = [row for row in rows if row.organization_id in organizations]
    detached: dict[str, int] = {}
    missing: dict[str, set[int]] = {}
    for name, field in zip(METRIC_OPTIONAL_REFERENCES, fields, strict=True):
        gone = named.get(field.related_model, set()) - existing.get(field.related_model, set())
        if not gone:
            continue
        count = sum(1 for row in rows if getattr(row, field.attname) in gone)
        if count:
            detached[name] = count
            missing[field.attname] = gone
    return MetricReferenceCheck(rows=rows, orphaned=orphaned, detached=detached, missing=missing)


def encode_metric_row(values: Mapping[str, object]) -> bytes:
    """A metric row as ``metrics_insert_encoded`` takes it: the JSON array of its values
    (``values`` maps ModelMetric's attribute names to them), in the statement's order.
    A value JSON cannot hold is the row's fault: ``ValueError``.

    The row is copied out of orjson's output, whose buffer is allocated at several
    kilobytes whatever the length (see ``gateway.jsoncodec.dumps``): a worker holds a
    batch of encoded rows at a time, and kept as they came they made it 5 MB larger."""
    try:
        return bytes(
            memoryview(orjson.dumps(_metrics_insert_statement()[2](values), default=_json_value))
        )
    except orjson.JSONEncodeError as exc:
        raise ValueError(f"A value of the metric row cannot be written: {exc}") from exc


# Rows a statement of ``metrics_insert_encoded`` carries at most: each statement's array
# passes through the client library's buffers, which keep the largest size they held.
METRIC_ROWS_PER_STATEMENT = 500


def metrics_insert_encoded(encoded: Sequence[bytes]) -> None:
    """Write rows made by ``encode_metric_row`` and fold them into the daily rollups, a
    statement for each ``METRIC_ROWS_PER_STATEMENT`` rows (PostgreSQL).

    The rows go as a JSON array, which the server takes apart; the rollups are summed by
    the database from what it inserted. Formatting the rows for COPY and folding them in
    Python cost the gateway's writer thread several times the database's own work,
    holding the GIL away from the event loop while it ran. The database checks types,
    lengths and constraints; its errors come out as Django's. What the rows name is
    checked by the caller, in the same transaction (``metrics_check_references``).
    The rows get no primary keys back."""
    sql, params, _ = _metrics_insert_statement()
    connection.ensure_connection()
    # A cursor binding its parameters on the server: the array goes to libpq as it is,
    # instead of being quoted into the statement's text (Django's client-side binding).
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        for start in range(0, len(encoded), METRIC_ROWS_PER_STATEMENT):
            part = encoded[start : start + METRIC_ROWS_PER_STATEMENT]
            payload = Jsonb(b"[" + b",".join(part) + b"]", dumps=_as_is)
            cursor.execute(sql, [payload, *params])


@functools.cache
def _metrics_insert_statement() -> tuple[str, list, itemgetter]:
    fields = [field for field in ModelMetric._meta.concrete_fields if not field.primary_key]
    quote = connection.ops.quote_name
    # JSON columns are taken as JSON; the rest as text cast to the column's type (a
    # string too long for its column fails when it is assigned, as with any insert).
    selected = ", ".join(
        f"item -> {index}"
        if isinstance(field, models.JSONField)
        else f"(item ->> {index})::{field.cast_db_type(connection)}"
        for index, field in enumerate(fields)
    )
    fold, params = rollups.fold_in_database("written")
    sql = (
        f"WITH written AS (INSERT INTO {quote(ModelMetric._meta.db_table)} "  # noqa: S608
        f"({', '.join(quote(cast(str, field.column)) for field in fields)}) "
        f"SELECT {selected} FROM jsonb_array_elements(%s::jsonb) AS item "
        f"RETURNING {', '.join(rollups.METRIC_FOLD_COLUMNS)}), {fold} SELECT 1"
    )
    return sql, params, itemgetter(*(field.attname for field in fields))


def _as_is(data: bytes) -> bytes:
    return data


def _json_value(value):
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not a metric column's type")


def _attribute_error(metric: ModelMetric) -> None:
    # Derived from the outcome, never taken from the caller: the dashboard splits its
    # error rate on it.
    metric.error_source = ErrorSource.of(
        status_code=metric.status_code, error_type=metric.error_type, attempts=metric.attempts
    )


def metrics_bulk_create(rows: Iterable[ModelMetric], batch_size: int = 500) -> MetricReferenceCheck:
    """Write many metric rows at once, with their daily rollups, after
    ``metrics_check_references`` (whose check is returned). On PostgreSQL the
    rows and rollups are one statement, and the rows get no primary keys back."""
    rows = list(rows)
    for row in rows:
        _attribute_error(row)
    with transaction.atomic():
        checked = metrics_check_references(rows)
        rows = checked.clear_deleted_references()
        if connection.vendor == "postgresql":
            if rows:
                metrics_insert_encoded([encode_metric_row(row.__dict__) for row in rows])
        else:
            rollups.add_metrics(ModelMetric.objects.bulk_create(rows, batch_size=batch_size))
    return checked


@dataclass
class RetentionResult:
    deleted: int
    batches: int
    finished: bool  # False when the time budget ran out with expired rows left


def metrics_delete_expired(
    *,
    days: int | None = None,
    batch_size: int | None = None,
    max_seconds: float | None = None,
    now: datetime | None = None,
) -> RetentionResult:
    """Delete the raw metric rows older than ``days`` (METRIC_RETENTION_DAYS), every
    organization's, in batches of ``batch_size`` rows.

    Each batch is one statement in its own transaction: the oldest rows by the
    ``created_at`` index, deleted by primary key. Locks and the write-ahead log stay
    bounded by the batch, and the gateway's inserts never wait long, whatever the
    backlog. The daily rollups (MetricDaily, MetricDailyLatency) are not touched: the
    dashboard keeps its history. With ``max_seconds`` the work stops after the batch that
    crosses it; the next run goes on where this one stopped.
    """
    days = settings.METRIC_RETENTION_DAYS if days is None else days
    batch_size = settings.METRIC_RETENTION_BATCH_SIZE if batch_size is None else batch_size
    if days < 1 or batch_size < 1:
        raise ValueError("Retention needs at least one day and one row per batch.")
    cutoff = (now or timezone.now()) - timedelta(days=days)
    # Retention is a policy of the installation, not of a tenant: every organization's rows.
    expired = (
        ModelMetric.objects.across_tenants(reason="metric retention")
        .filter(created_at__lt=cutoff)
        .order_by("created_at")
        .values("pk")
    )
    started = time.monotonic()
    deleted = batches = 0
    while True:
        with transaction.atomic():
            count, _ = (
                ModelMetric.objects.across_tenants(reason="metric retention")
                .filter(pk__in=expired[:batch_size])
                .delete()
            )
        if not count:
            return RetentionResult(deleted, batches, finished=True)
        deleted += count
        batches += 1
        if count < batch_size:
            return RetentionResult(deleted, batches, finished=True)
        if max_seconds is not None and time.monotonic() - started >= max_seconds:
            return RetentionResult(deleted, batches, finished=False)


def provider_credential_reserve_request(
    *, credential_id: int, period: str, now: datetime | None = None
) -> bool:
    """Count one request against the credential's quotas if none is used up.

    A single conditional UPDATE: concurrent requests cannot both take the last slot.
    Tokens and cost are added when the request's usage is written
    (``provider_credential_add_usage`` with ``requests=0``).
    """
    now = now or timezone.now()
    provider_credential_roll_period(credential_id=credential_id, period=period, now=now)
    updated = ProviderCredential.objects.filter(below_quotas_q(), pk=credential_id).update(
        used_requests=F("used_requests") + 1, last_used_at=now
    )
    return updated == 1


def client_keys_mark_used(*, last_used: Mapping[int, datetime]) -> None:
    """Set each client key's ``last_used_at``, in key order (a stable lock order)."""
    for client_key_id, used_at in sorted(last_used.items()):
        ClientKey.objects.filter(pk=client_key_id).update(last_used_at=used_at)


@dataclass(frozen=True)
class CounterIncrement:
    """One limit counter a request must find below ``limit``, then raise by ``amount``."""

    key: str
    limit: int
    amount: int
    expires_at: datetime


@transaction.atomic
def limit_counters_reserve(*, increments: Sequence[CounterIncrement]) -> int | None:
    """Raise every counter by its amount if each is still below its limit; otherwise
    change nothing and return the index of the first counter at its limit."""
    LimitCounter.objects.bulk_create(
        [LimitCounter(key=c.key, value=0, expires_at=c.expires_at) for c in increments],
        ignore_conflicts=True,
    )
    # Locked in key order, so two requests of one key cannot deadlock.
    values = dict(
        LimitCounter.objects.select_for_update()
        .filter(key__in=sorted(c.key for c in increments))
        .order_by("key")
        .values_list("key", "value")
    )
    for index, counter in enumerate(increments):
        if values.get(counter.key, 0) >= counter.limit:
            return index
    for counter in increments:
        if counter.amount:
            LimitCounter.objects.filter(key=counter.key).update(value=F("value") + counter.amount)
    return None


@transaction.atomic
def limit_counters_settle(
    *, deltas: Sequence[tuple[str, int]], spends: Sequence[CounterIncrement] = ()
) -> list[int]:
    """Add each delta to its counter (a reservation corrected to actual usage) and each
    spend's amount to its counter, created if need be; returns the spend counters' new
    values, in order. Rows are locked in key order, as ``limit_counters_reserve`` does."""
    if spends:
        LimitCounter.objects.bulk_create(
            [LimitCounter(key=c.key, value=0, expires_at=c.expires_at) for c in spends],
            ignore_conflicts=True,
        )
    amounts: dict[str, int] = {}
    for key, delta in [*deltas, *((c.key, c.amount) for c in spends)]:
        amounts[key] = amounts.get(key, 0) + delta
    values = dict(
        LimitCounter.objects.select_for_update()
        .filter(key__in=sorted(amounts))
        .order_by("key")
        .values_list("key", "value")
    )
    for key in sorted(amounts):
        if amounts[key] and key in values:
            LimitCounter.objects.filter(key=key).update(value=F("value") + amounts[key])
    return [values.get(c.key, 0) + amounts[c.key] for c in spends]


def limit_counters_purge(*, expired_before: datetime) -> int:
    """Delete counters whose window ended before ``expired_before``."""
    deleted, _ = LimitCounter.objects.filter(expires_at__lt=expired_before).delete()
    return deleted


# --- Stored responses --------------------------------------------------------------------


def stored_response_create(
    *,
    organization: Organization,
    response_id: str,
    model: str,
    response: dict,
    input_items: list[dict],
    history: list[dict],
    client_key_id: int | None = None,
) -> StoredResponse:
    """Keep a Responses API answer for ``organization`` (see :class:`StoredResponse`)."""
    return StoredResponse.objects.create(
        organization=organization,
        response_id=response_id,
        client_key_id=client_key_id,
        model=model[:300],
        response=response,
        input_items=input_items,
        history=history,
    )


def stored_response_delete(*, organization: Organization, response_id: str) -> bool:
    """Delete one of ``organization``'s stored responses; False when it has none by that id."""
    deleted, _ = (
        StoredResponse.objects.for_org(organization).filter(response_id=response_id).delete()
    )
    return bool(deleted)


def stored_responses_purge(*, now: datetime | None = None) -> int:
    """Delete the responses older than RESPONSES_RETENTION_DAYS, in every organization."""
    cutoff = responses_retention_cutoff(now)
    expired = StoredResponse.objects.across_tenants(
        reason="retention is the operator's policy for every organization"
    ).filter(created_at__lt=cutoff)
    deleted, _ = expired.delete()
    return deleted


# --- Webhooks -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CreatedWebhook:
    webhook: Webhook
    secret: str  # shown in the create response only; stored encrypted


def _check_webhook(webhook: Webhook) -> None:
    webhook.full_clean(exclude=["encrypted_secret"])
    try:
        outbound.check_url(webhook.url)
    except outbound.OutboundURLRefused as exc:
        raise ValidationError({"url": exc.message}) from None


def webhook_create(*, organization: Organization, url: str, **fields) -> CreatedWebhook:
    """Create a webhook with a new signing secret, returned here once."""
    secret = WEBHOOK_SECRET_PREFIX + secrets.token_urlsafe(32)
    webhook = Webhook(
        organization=organization, url=url, encrypted_secret=encrypt_secret(secret), **fields
    )
    _check_webhook(webhook)
    webhook.save()
    # The gateway's key snapshots carry the thresholds the organization's webhooks watch.
    publish_tenant_change(organization.pk)
    return CreatedWebhook(webhook, secret)


def webhook_update(*, webhook: Webhook, **fields) -> Webhook:
    for name, value in fields.items():
        setattr(webhook, name, value)
    _check_webhook(webhook)
    webhook.save()
    publish_tenant_change(webhook.organization_id)
    return webhook


def webhook_delete(*, webhook: Webhook) -> None:
    organization_id = webhook.organization_id
    webhook.delete()
    publish_tenant_change(organization_id)


def _queue_delivery(delivery: WebhookDelivery) -> None:
    from modelhub.tasks import deliver_webhook

    transaction.on_commit(lambda: deliver_webhook.delay(delivery.pk))


def _record_event(
    webhook: Webhook,
    *,
    event: str,
    subject_id: int,
    threshold: int | None,
    period_start: datetime,
    payload: dict,
) -> WebhookDelivery | None:
    """The delivery of one event to one webhook, queued; None when this event was
    recorded before (the unique constraint holds across every gateway worker)."""
    delivery, created = WebhookDelivery.objects.for_org(webhook.organization).get_or_create(
        organization_id=webhook.organization_id,
        webhook=webhook,
        event=event,
        subject_id=subject_id,
        threshold=threshold,
        period_start=period_start,
        defaults={"payload": payload},
    )
    if not created:
        return None
    _queue_delivery(delivery)
    return delivery


def _organization_payload(organization: Organization) -> dict:
    return {"id": organization.pk, "slug": organization.slug, "name": organization.name}


def webhook_budget_crossed(
    *,
    organization_id: int,
    subject: str,
    subject_id: int,
    amount: Decimal,
    period: str | None,
    period_start: datetime | None,
    spent: Decimal,
    thresholds: Sequence[int],
    now: datetime | None = None,
) -> list[WebhookDelivery]:
    """A budget's spend crossed ``thresholds`` (percentages): queue one delivery per
    webhook watching each of them - never a second one for the same threshold, budget
    and period."""
    now = now or timezone.now()
    organization = Organization.objects.filter(pk=organization_id).first()
    if organization is None:
        return []
    payload: dict = {
        "organization": _organization_payload(organization),
        "budget": {
            "amount": str(amount),
            "period": period,
            "period_start": period_start.isoformat() if period_start else None,
            "period_end": (
                period_bounds(period, period_start)[1].isoformat()
                if period and period_start
                else None
            ),
        },
        "spent": str(spent),
    }
    if subject == budgets.ORGANIZATION:
        event = WebhookEvent.ORGANIZATION_BUDGET
    else:
        event = WebhookEvent.CLIENT_KEY_BUDGET
        client_key = ClientKey.objects.for_org(organization).filter(pk=subject_id).first()
        if client_key is None:
            return []
        payload["client_key"] = {
            "id": client_key.pk,
            "name": client_key.name,
            "prefix": client_key.prefix,
        }
    deliveries = []
    for webhook in selectors.webhooks_for_event(organization, event):
        for threshold in sorted(set(thresholds) & set(webhook.thresholds or ())):
            delivery = _record_event(
                webhook,
                event=event,
                subject_id=subject_id,
                threshold=threshold,
                period_start=period_start or budgets.LIFETIME_START,
                payload={
                    "event": event,
                    "created_at": now.isoformat(),
                    **payload,
                    "threshold": threshold,
                },
            )
            if delivery is not None:
                deliveries.append(delivery)
    return deliveries


def webhook_credential_unhealthy(
    *, credential: ProviderCredential, now: datetime | None = None
) -> list[WebhookDelivery]:
    """A credential just turned unhealthy: queue the event for the webhooks watching it."""
    now = now or timezone.now()
    organization = credential.organization
    payload = {
        "event": WebhookEvent.CREDENTIAL_UNHEALTHY,
        "created_at": now.isoformat(),
        "organization": _organization_payload(organization),
        "credential": {
            "id": credential.pk,
            "name": credential.name,
            "provider": credential.provider.slug,
            "consecutive_failures": credential.consecutive_failures,
            "cooldown_until": (
                credential.cooldown_until.isoformat() if credential.cooldown_until else None
            ),
            "last_error": credential.visible_last_error,
        },
    }
    deliveries = []
    for webhook in selectors.webhooks_for_event(organization, WebhookEvent.CREDENTIAL_UNHEALTHY):
        delivery = _record_event(
            webhook,
            event=WebhookEvent.CREDENTIAL_UNHEALTHY,
            subject_id=credential.pk,
            threshold=None,
            period_start=now,
            payload=payload,
        )
        if delivery is not None:
            deliveries.append(delivery)
    return deliveries


# What came of one delivery attempt (the task retries RETRY).
DELIVERED, RETRY, FAILED, GONE = "delivered", "retry", "failed", "gone"


def webhook_delivery_attempt(*, delivery_id: int) -> tuple[str, int]:
    """Make one attempt to deliver an event and record it on the delivery row; returns
    what came of it and the attempts made so far.

    Network errors, timeouts and 5xx answers are worth another attempt, up to
    ``WEBHOOK_MAX_ATTEMPTS`` (the task's backoff decides when); a refused URL, a redirect
    or another 4xx is not. The outcome is DELIVERED, RETRY, FAILED, or GONE when the
    delivery (or its webhook) was deleted. A delivery already made or given up is left
    alone, so a task run twice sends nothing twice.
    """
    delivery = (
        WebhookDelivery.objects.across_tenants(reason="a delivery task names its row by id")
        .select_related("webhook")
        .filter(pk=delivery_id)
        .first()
    )
    if delivery is None:
        return GONE, 0
    if delivery.status == DeliveryStatus.DELIVERED:
        return DELIVERED, delivery.attempts
    if delivery.status == DeliveryStatus.FAILED:
        return FAILED, delivery.attempts
    last_attempt = delivery.attempts + 1 >= settings.WEBHOOK_MAX_ATTEMPTS
    webhook = delivery.webhook
    secret = decrypt_secret(webhook.encrypted_secret)
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "ModelHub-Webhooks/1",
        webhooks.SIGNATURE_HEADER: webhooks.signature(secret, body),
        webhooks.EVENT_HEADER: delivery.event,
        webhooks.DELIVERY_HEADER: str(delivery.pk),
    }
    code: int | None = None
    error = ""
    retry = False
    if not webhook.is_active:
        error = "The webhook was deactivated before the event could be delivered."
    else:
        try:
            code = webhooks.post(webhook.url, body, headers)
        except webhooks.DeliveryRefused as exc:
            error = str(exc)
        except Exception as exc:  # the network: refused, reset, timed out, unresolvable
            error = f"{type(exc).__name__}: {exc}"
            retry = True
        else:
            if 200 <= code < 300:
                error = ""
            elif code >= 500:
                error, retry = f"The receiver answered {code}.", True
            else:
                error = f"The receiver answered {code}; it is not retried."
    now = timezone.now()
    delivery.attempts += 1
    delivery.last_attempt_at = now
    delivery.response_code = code
    # The URL may carry a token of the receiver's; neither it nor the secret is kept.
    delivery.last_error = scrub(error, [secret, webhook.url])
    if code is not None and 200 <= code < 300:
        delivery.status, delivery.delivered_at, outcome = DeliveryStatus.DELIVERED, now, DELIVERED
    elif retry and not last_attempt:
        delivery.status, outcome = DeliveryStatus.RETRYING, RETRY
    else:
        delivery.status, outcome = DeliveryStatus.FAILED, FAILED
    delivery.save()
    return outcome, delivery.attempts
