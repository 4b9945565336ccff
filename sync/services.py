"""The catalog sync pipeline: fetch -> transform -> upsert, one provider per transaction.

A provider whose list cannot be fetched completely, or that looks like garbage (no valid
record, or far fewer models than it had), fails alone: its rows stay exactly as they
were and the other providers still sync. Rows are keyed by (provider, provider_model_id),
written with set-based statements (see :mod:`sync.bulk`) and skipped entirely when their
content hash is unchanged, so a re-sync of the same data writes no model rows.
Models that vanish are marked inactive, never deleted: routing rules, metrics and
client-key allow-lists point at them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import requests
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from modelhub.cache import bump_catalog_version
from modelhub.invalidation import publish_tenant_change
from modelhub.models import Model, Provider, SyncRun, SyncStatus
from sync import bulk
from sync.fetch import (
    FetchError,
    extract_items,
    fetch_page,
    fetch_records,
    redact,
    request_headers,
    too_many_records,
)
from sync.registry import ProviderSpec, all_specs, get_spec
from sync.transforms import MalformedRecord, ModelRecord, transform_record

logger = logging.getLogger("sync")

OPENROUTER_PROVIDERS_URL = "https://openrouter.ai/api/v1/providers"
SNAPSHOT_FORMAT = 1
# Columns an update rewrites: everything the sync owns, never ``created_at``.
UPDATE_FIELDS = [
    f.name for f in dataclasses.fields(ModelRecord) if f.name != "provider_model_id"
] + ["sync_hash", "last_synced_at", "updated_at"]
MAX_LOGGED_SKIPS = 50


class SyncAborted(Exception):
    """The fetched list is not trustworthy enough to replace the stored one."""


@dataclasses.dataclass
class SyncResult:
    """What one provider run did (or, in a dry run, would do)."""

    provider: str
    status: str
    dry_run: bool = False
    provider_id: int | None = None
    sync_run_id: int | None = None
    fetched: int = 0
    transformed: int = 0
    skipped: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deactivated: int = 0
    duration_ms: int = 0
    error: str = ""
    transient: bool = False
    # No HTTP answer at all: the provider's host could not be reached.
    unreachable: bool = False
    skipped_ids: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status in (SyncStatus.SUCCESS, SyncStatus.PARTIAL)

    @property
    def rows_written(self) -> int:
        return self.created + self.updated + self.deactivated

    @property
    def message(self) -> str:
        counts = (
            f"Fetched: {self.fetched}, Transformed: {self.transformed}, Skipped: {self.skipped}"
        )
        if self.status == SyncStatus.SKIPPED:
            return f"Skipped {self.provider}: {self.error}"
        if not self.ok:
            return f"Sync of {self.provider} failed: {self.error}"
        if self.dry_run:
            return (
                f"Dry run: would sync {self.transformed} models from {self.provider} "
                f"(create {self.created}, update {self.updated}, "
                f"deactivate {self.deactivated}). {counts}"
            )
        return f"Synced {self.transformed} models from {self.provider}. {counts}"

    def details(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "provider_id": self.provider_id,
            "status": self.status,
            "dry_run": self.dry_run,
            "models_fetched": self.fetched,
            "models_transformed": self.transformed,
            "models_synced": self.transformed if self.ok else 0,
            "models_skipped": self.skipped,
            "models_created": self.created,
            "models_updated": self.updated,
            "models_unchanged": self.unchanged,
            "models_deactivated": self.deactivated,
            "skipped_ids": self.skipped_ids,
            "duration_ms": self.duration_ms,
            "sync_run_id": self.sync_run_id,
            "error": self.error,
        }


# --- transform ----------------------------------------------------------------------------


def transform_records(
    *, spec: ProviderSpec, raw_records: Iterable[Any]
) -> tuple[list[ModelRecord], list[str]]:
    """Normalised records and the ids (or positions) of the ones that had to be skipped."""
    records: list[ModelRecord] = []
    skipped: list[str] = []
    seen: set[str] = set()
    for position, raw in enumerate(raw_records):
        try:
            record = transform_record(spec, raw)
        except MalformedRecord as exc:
            label = _record_label(spec, raw, position)
            skipped.append(label)
            if len(skipped) <= MAX_LOGGED_SKIPS:
                logger.warning("sync %s: skipped record %s: %s", spec.slug, label, exc)
            continue
        except Exception as exc:  # one odd record must not sink the list
            label = _record_label(spec, raw, position)
            skipped.append(label)
            logger.warning(
                "sync %s: skipped record %s: %s: %s", spec.slug, label, type(exc).__name__, exc
            )
            continue
        if record.provider_model_id in seen:
            skipped.append(record.provider_model_id)
            logger.warning("sync %s: skipped duplicate id %s", spec.slug, record.provider_model_id)
            continue
        seen.add(record.provider_model_id)
        records.append(record)
    return records, skipped


def _record_label(spec: ProviderSpec, raw: Any, position: int) -> str:
    if isinstance(raw, Mapping):
        for path in spec.field_paths["id"]:
            value = raw.get(path)
            if isinstance(value, (str, int)) and str(value):
                return str(value)[:200]
    return f"#{position}"


# --- upsert -------------------------------------------------------------------------------


@dataclasses.dataclass
class _Plan:
    to_create: list[dict[str, Any]]
    to_update: list[dict[str, Any]]
    to_deactivate: list[int]
    unchanged: int
    previously_active: int


def _plan(*, provider_id: int | None, records: Sequence[ModelRecord], now: dt.datetime) -> _Plan:
    existing: dict[str, tuple[int, str, bool]] = {}
    if provider_id is not None:
        rows = Model.objects.filter(provider_id=provider_id).values_list(
            "id", "provider_model_id", "sync_hash", "is_active"
        )
        existing = {mid: (pk, digest, active) for pk, mid, digest, active in rows}
    to_create, to_update = [], []
    unchanged = 0
    for record in records:
        digest, raw_json = record.digest_and_raw_json()
        current = existing.get(record.provider_model_id)
        if current is not None and current[1] == digest and current[2] == record.is_active:
            unchanged += 1
            continue
        row = record.as_row()
        row.update(raw=bulk.RawJSON(raw_json), sync_hash=digest, last_synced_at=now, updated_at=now)
        if current is None:
            row.update(provider_id=provider_id, created_at=now)
            to_create.append(row)
        else:
            row["id"] = current[0]
            to_update.append(row)
    listed = {r.provider_model_id for r in records}
    to_deactivate = [
        pk for mid, (pk, _, active) in existing.items() if active and mid not in listed
    ]
    previously_active = sum(1 for _, _, active in existing.values() if active)
    return _Plan(to_create, to_update, to_deactivate, unchanged, previously_active)


def _guard(*, plan: _Plan, count: int) -> None:
    before = plan.previously_active
    if before and count == 0:
        raise SyncAborted(f"the list is empty but {before} models are active; nothing changed")
    ratio = settings.SYNC_SHRINK_GUARD_RATIO
    if before >= settings.SYNC_SHRINK_GUARD_MIN_MODELS and count < before * ratio:
        raise SyncAborted(
            f"the list shrank from {before} to {count} models (below {ratio:.0%}); "
            "nothing changed (force the sync to accept it)"
        )


def _upsert(
    *, spec: ProviderSpec, records: Sequence[ModelRecord], result: SyncResult, force: bool
) -> None:
    now = timezone.now()
    with transaction.atomic():
        # Serialises concurrent syncs of one provider (beat + an operator's click).
        provider = Provider.objects.global_rows().select_for_update().filter(slug=spec.slug).first()
        plan = _plan(provider_id=provider.pk if provider else None, records=records, now=now)
        if not force:
            _guard(plan=plan, count=len(records))
        wanted = spec.provider_fields()
        if provider is None:
            provider = Provider.objects.create(slug=spec.slug, last_synced_at=now, **wanted)
            for row in plan.to_create:
                row["provider_id"] = provider.pk
        else:
            changed = {k: v for k, v in wanted.items() if getattr(provider, k) != v}
            Provider.objects.filter(pk=provider.pk).update(
                last_synced_at=now, updated_at=now, **changed
            )
        result.provider_id = provider.pk
        result.created = bulk.insert_rows(plan.to_create)
        result.updated = bulk.update_rows(plan.to_update, UPDATE_FIELDS)
        result.deactivated = bulk.deactivate_rows(plan.to_deactivate, now=now)
        result.unchanged = plan.unchanged
        if result.rows_written:
            transaction.on_commit(bump_catalog_version)
            # Gateways drop the plans and model lists built from the old rows.
            publish_tenant_change(None)


def _dry_run(
    *, spec: ProviderSpec, records: Sequence[ModelRecord], result: SyncResult, force: bool
) -> None:
    provider = Provider.objects.global_rows().filter(slug=spec.slug).first()
    plan = _plan(provider_id=provider.pk if provider else None, records=records, now=timezone.now())
    if not force:
        _guard(plan=plan, count=len(records))
    result.provider_id = provider.pk if provider else None
    result.created = len(plan.to_create)
    result.updated = len(plan.to_update)
    result.deactivated = len(plan.to_deactivate)
    result.unchanged = plan.unchanged


# --- one provider -------------------------------------------------------------------------


def sync_provider(
    *,
    spec: ProviderSpec,
    dry_run: bool = False,
    trigger: str = "manual",
    force: bool = False,
    records: Sequence[ModelRecord] | None = None,
    session: requests.Session | None = None,
) -> SyncResult:
    """Sync one provider and record a SyncRun; never raises for a provider-level failure.

    ``records`` skips the fetch and transform (a snapshot load). ``force`` accepts a list
    the shrink guard would refuse, but not one longer than ``SYNC_MAX_RECORDS``: that cap
    bounds the memory and the transaction of one sync, which no operator's judgement of
    the list changes (a provider that really lists more needs a higher setting). A dry run reads and plans but writes no catalog row; its
    SyncRun (``dry_run`` set) is the record that it happened.
    """
    started = time.monotonic()
    result = SyncResult(provider=spec.slug, status=SyncStatus.RUNNING, dry_run=dry_run)
    reason = spec.skip_reason() if records is None else ""
    run = SyncRun.objects.create(
        provider_slug=spec.slug,
        status=SyncStatus.SKIPPED if reason else SyncStatus.RUNNING,
        dry_run=dry_run,
        trigger=trigger[:32],
    )
    result.sync_run_id = run.pk
    secret = spec.api_key()
    try:
        if reason:
            result.status, result.error = SyncStatus.SKIPPED, reason
            logger.info("sync %s: skipped: %s", spec.slug, reason)
        else:
            if records is None:
                raw_records = fetch_records(spec, session=session)
                result.fetched = len(raw_records)
                records, skipped_ids = transform_records(spec=spec, raw_records=raw_records)
                result.skipped, result.skipped_ids = len(skipped_ids), skipped_ids[:100]
                if raw_records and not records:
                    raise SyncAborted(f"none of the {len(raw_records)} records could be read")
            else:
                result.fetched = len(records)
                if len(records) > settings.SYNC_MAX_RECORDS:
                    raise SyncAborted(too_many_records(len(records)))
            result.transformed = len(records)
            if dry_run:
                _dry_run(spec=spec, records=records, result=result, force=force)
            else:
                _upsert(spec=spec, records=records, result=result, force=force)
            result.status = SyncStatus.PARTIAL if result.skipped else SyncStatus.SUCCESS
    except FetchError as exc:
        result.status, result.error = SyncStatus.FAILED, redact(str(exc), secret)
        result.transient, result.unreachable = exc.transient, exc.unreachable
    except SyncAborted as exc:
        result.status, result.error = SyncStatus.FAILED, redact(str(exc), secret)
    except Exception as exc:  # one provider's bug must not stop the others
        logger.exception("sync %s: unexpected error", spec.slug)
        result.status = SyncStatus.FAILED
        result.error = redact(f"{type(exc).__name__}: {exc}", secret)[:2000]
    if result.status == SyncStatus.FAILED:
        logger.warning("sync %s: failed: %s", spec.slug, result.error)
    result.duration_ms = int((time.monotonic() - started) * 1000)
    _finish_run(run=run, result=result)
    return result


def _finish_run(*, run: SyncRun, result: SyncResult) -> None:
    now = timezone.now()
    SyncRun.objects.filter(pk=run.pk).update(
        provider_id=result.provider_id,
        status=result.status,
        finished_at=now,
        duration_ms=result.duration_ms,
        models_fetched=result.fetched,
        models_transformed=result.transformed,
        models_skipped=result.skipped,
        models_created=result.created,
        models_updated=result.updated,
        models_deactivated=result.deactivated,
        error=result.error,
        details={"unchanged": result.unchanged, "skipped_ids": result.skipped_ids},
    )


SYNC_LOCK_KEY = "sync:all:lock"


def acquire_sync_lock() -> str | None:
    """Take the lock of a full catalog sync; a token to release it with, or ``None``.

    ``cache.add`` is atomic in Redis (production) and in local memory (the embedded setup,
    where Celery runs eagerly in this one process), so one mechanism serves both.
    """
    token = uuid.uuid4().hex
    if cache.add(SYNC_LOCK_KEY, token, timeout=settings.SYNC_LOCK_SECONDS):
        return token
    return None


def release_sync_lock(token: str) -> None:
    """Release the lock if ``token`` still holds it (an expired lock may be another run's)."""
    if cache.get(SYNC_LOCK_KEY) == token:
        cache.delete(SYNC_LOCK_KEY)


def sync_providers(
    *,
    slugs: Sequence[str] | None = None,
    dry_run: bool = False,
    trigger: str = "manual",
    force: bool = False,
    on_start: Callable[[ProviderSpec], None] | None = None,
    on_result: Callable[[SyncResult], None] | None = None,
) -> list[SyncResult]:
    """Sync providers one after another (all registered ones by default)."""
    specs = [get_spec(slug) for slug in slugs] if slugs else list(all_specs())
    unknown = [slug for slug, spec in zip(slugs or [], specs, strict=False) if spec is None]
    if unknown:
        raise ValueError(f"unknown providers: {', '.join(unknown)}")
    results = []
    with requests.Session() as session:
        for spec in specs:
            if on_start:
                on_start(spec)
            result = sync_provider(
                spec=spec, dry_run=dry_run, trigger=trigger, force=force, session=session
            )
            results.append(result)
            if on_result:
                on_result(result)
    return results


# --- provider policies from OpenRouter ---------------------------------------------------

POLICY_URL_FIELDS = ("privacy_policy_url", "terms_of_service_url", "status_page_url")


def provider_policies(payload: Any) -> dict[str, dict[str, Any]]:
    """OpenRouter's /api/v1/providers body as Provider column values per OpenRouter slug."""
    policies: dict[str, dict[str, Any]] = {}
    for entry in extract_items(get_spec("openrouter"), payload):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("slug"), str):
            continue
        values: dict[str, Any] = {}
        for field in POLICY_URL_FIELDS:
            url = entry.get(field)
            values[field] = (
                url if isinstance(url, str) and url.startswith("http") and len(url) <= 500 else ""
            )
        data_policy = entry.get("data_policy")
        if isinstance(data_policy, Mapping):
            for key, field in (
                ("training", "may_train_on_data"),
                ("retainsPrompts", "may_log_prompts"),
                ("retains_prompts", "may_log_prompts"),
            ):
                if isinstance(data_policy.get(key), bool):
                    values[field] = data_policy[key]
        for key in ("moderated_by_openrouter", "is_moderated"):
            if isinstance(entry.get(key), bool):
                values["moderated_by_openrouter"] = entry[key]
        if isinstance(entry.get("needs_moderated"), bool):
            values["needs_moderated"] = entry["needs_moderated"]
        policies[entry["slug"]] = values
    return policies


def sync_provider_policies(*, session: requests.Session | None = None) -> int:
    """Fill the policy columns of the global Provider rows; returns how many rows changed."""
    spec = get_spec("openrouter")
    api_key = spec.api_key()
    if not api_key:
        logger.info("sync policies: skipped: %s is not set", spec.env_var)
        return 0
    with requests.Session() if session is None else session as http:
        payload = fetch_page(
            http, OPENROUTER_PROVIDERS_URL, headers=request_headers(spec, api_key), secret=api_key
        )
    policies = provider_policies(payload)
    by_slug = {}
    for provider_spec in all_specs():
        for slug in provider_spec.openrouter_slugs:
            if slug in policies:
                by_slug[provider_spec.slug] = policies[slug]
                break
    changed = []
    fields: set[str] = set()
    for provider in Provider.objects.global_rows().filter(slug__in=by_slug):
        values = by_slug[provider.slug]
        diff = {k: v for k, v in values.items() if getattr(provider, k) != v}
        if diff:
            for key, value in diff.items():
                setattr(provider, key, value)
            fields |= diff.keys()
            changed.append(provider)
    if changed:
        Provider.objects.bulk_update(changed, sorted(fields | {"updated_at"}))
        transaction.on_commit(bump_catalog_version)
        publish_tenant_change(None)
    return len(changed)


# --- snapshots ----------------------------------------------------------------------------


def _open_text(path: Path, mode: str):
    if path.suffix == ".gz":
        return gzip.open(path, mode + "t", encoding="utf-8")
    return path.open(mode, encoding="utf-8")


def read_snapshot(*, path: Path) -> dict[str, list[ModelRecord]]:
    with _open_text(path, "r") as handle:
        data = json.load(handle)
    if not isinstance(data, Mapping) or data.get("format") != SNAPSHOT_FORMAT:
        raise ValueError(f"{path} is not a catalog snapshot (format {SNAPSHOT_FORMAT})")
    return {
        entry["slug"]: [ModelRecord.from_json(model) for model in entry["models"]]
        for entry in data["providers"]
    }


def catalog_has_models() -> bool:
    """Whether any global provider has models (a snapshot then only loads when forced)."""
    return Model.objects.filter(provider__organization__isnull=True).exists()


def load_snapshot(
    *,
    path: Path,
    slugs: Sequence[str] | None = None,
    dry_run: bool = False,
    force: bool = False,
    on_result: Callable[[SyncResult], None] | None = None,
) -> list[SyncResult]:
    """Upsert a snapshot's providers through the same pipeline, without any network.

    Providers already synced from their live API are skipped unless ``force``.
    """
    catalog = read_snapshot(path=path)
    # A snapshot bootstraps an empty machine; it must not roll back a provider that has
    # since been synced from its live API (``make run`` loads it on every start).
    live = set(
        SyncRun.objects.filter(
            provider_slug__in=list(catalog),
            status__in=[SyncStatus.SUCCESS, SyncStatus.PARTIAL],
            dry_run=False,
        )
        .exclude(trigger="snapshot")
        .values_list("provider_slug", flat=True)
    )
    results = []
    for slug, records in catalog.items():
        spec = get_spec(slug)
        if spec is None:
            logger.warning("snapshot %s: unknown provider %s ignored", path, slug)
            continue
        if slugs and slug not in slugs:
            continue
        if slug in live and not force:
            result = SyncResult(
                provider=slug,
                status=SyncStatus.SKIPPED,
                dry_run=dry_run,
                error="already synced from the live API (force to load the snapshot anyway)",
            )
            results.append(result)
            if on_result:
                on_result(result)
            continue
        result = sync_provider(
            spec=spec, dry_run=dry_run, trigger="snapshot", force=force, records=records
        )
        results.append(result)
        if on_result:
            on_result(result)
    return results


def _fixture_order(spec: ProviderSpec, path: Path, wrapper: Mapping[str, Any]) -> tuple:
    # The file captured from the URL the registry uses comes first; then <slug>.json.
    return (wrapper.get("list_url") != spec.list_url, path.stem != spec.slug, path.name)


def build_snapshot(*, fixtures_dir: Path, output: Path) -> dict[str, int]:
    """Write a snapshot of every fixture response, transformed; returns models per provider.

    A provider may have fixtures of several list routes: they are merged, the registry's
    own list URL first, and a model id seen earlier wins. Of several captures of one URL
    (Groq's 2024, 2025 and 2026 lists) only the preferred one counts, so models a provider
    has since retired do not come back. Files that are not model lists (OpenRouter's
    provider directory, fal's pricing lookup) are left out.
    """
    grouped: dict[str, dict[str, tuple[tuple, list[Any]]]] = {}
    for path in sorted(fixtures_dir.glob("*.json")):
        wrapper = json.loads(path.read_text(encoding="utf-8"))
        spec = get_spec(wrapper.get("provider", "")) if isinstance(wrapper, Mapping) else None
        if spec is None or not spec.in_snapshot:
            continue
        try:
            items = extract_items(spec, wrapper["response"])
        except FetchError:
            continue
        if not items or not _looks_like_model(spec, items[0]):
            continue
        order = _fixture_order(spec, path, wrapper)
        by_url = grouped.setdefault(spec.slug, {})
        url = str(wrapper.get("list_url", path.name))
        if url not in by_url or order < by_url[url][0]:
            by_url[url] = (order, items)
    providers = []
    counts = {}
    for spec in all_specs():
        if spec.slug not in grouped:
            continue
        merged: list[ModelRecord] = []
        seen: set[str] = set()
        for _, items in sorted(grouped[spec.slug].values(), key=lambda pair: pair[0]):
            records, _skipped = transform_records(spec=spec, raw_records=items)
            for record in records:
                if record.provider_model_id not in seen:
                    seen.add(record.provider_model_id)
                    merged.append(record)
        providers.append({"slug": spec.slug, "models": [r.to_json() for r in merged]})
        counts[spec.slug] = len(merged)
    document = {
        "format": SNAPSHOT_FORMAT,
        "description": "Catalog built from the provider fixtures in tests/fixtures/providers.",
        "providers": providers,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if output.suffix == ".gz":
        # mtime=0 keeps the file byte-identical when the fixtures did not change.
        with output.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
            gz.write(text.encode("utf-8"))
    else:
        output.write_text(text, encoding="utf-8")
    return counts


def _looks_like_model(spec: ProviderSpec, item: Any) -> bool:
    return isinstance(item, Mapping) and any(
        isinstance(item.get(path), str) for path in spec.field_paths["id"]
    )


# --- read side for the admin API ----------------------------------------------------------


def provider_overview() -> list[dict[str, Any]]:
    """Every registered provider with its key status, model counts and last runs."""
    rows = {
        p.slug: p
        for p in Provider.objects.global_rows().annotate(
            model_count=Count("models"),
            active_model_count=Count("models", filter=Q(models__is_active=True)),
        )
    }
    last_runs = _last_runs()
    overview = []
    for spec in all_specs():
        provider = rows.get(spec.slug)
        last, last_ok = last_runs.get(spec.slug, (None, None))
        overview.append(
            {
                "slug": spec.slug,
                "name": spec.name,
                "provider_id": provider.pk if provider else None,
                "env_var": spec.env_var,
                "key_configured": spec.key_configured,
                "key_required": spec.auth_required,
                "syncable": not spec.skip_reason(),
                "skip_reason": spec.skip_reason(),
                "model_count": provider.model_count if provider else 0,
                "active_model_count": provider.active_model_count if provider else 0,
                "last_synced_at": provider.last_synced_at.isoformat()
                if provider and provider.last_synced_at
                else None,
                "last_run": _run_summary(last),
                "last_success_at": last_ok.finished_at.isoformat()
                if last_ok and last_ok.finished_at
                else None,
            }
        )
    return overview


def _last_runs() -> dict[str, tuple[SyncRun | None, SyncRun | None]]:
    """Latest run and latest successful real run per provider, in two queries."""

    def newest(runs) -> dict[str, SyncRun]:
        ids = runs.values("provider_slug").annotate(last=Max("id")).values("last")
        return {run.provider_slug: run for run in SyncRun.objects.filter(id__in=ids)}

    latest = newest(SyncRun.objects.all())
    good = newest(
        SyncRun.objects.filter(status__in=[SyncStatus.SUCCESS, SyncStatus.PARTIAL], dry_run=False)
    )
    return {slug: (latest.get(slug), good.get(slug)) for slug in latest.keys() | good.keys()}


def _run_summary(run: SyncRun | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "id": run.pk,
        "status": run.status,
        "dry_run": run.dry_run,
        "trigger": run.trigger,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "duration_ms": run.duration_ms,
        "models_fetched": run.models_fetched,
        "models_transformed": run.models_transformed,
        "models_skipped": run.models_skipped,
        "models_created": run.models_created,
        "models_updated": run.models_updated,
        "models_deactivated": run.models_deactivated,
        "error": run.error,
    }


def sync_status() -> dict[str, Any]:
    """Totals, the last run per provider and the providers whose data is stale."""
    interval = dt.timedelta(hours=settings.SYNC_INTERVAL_HOURS)
    cutoff = timezone.now() - interval
    last_runs = _last_runs()
    providers = Provider.objects.global_rows()
    stale = []
    runs = {}
    skipped = {}
    for spec in all_specs():
        last, last_ok = last_runs.get(spec.slug, (None, None))
        runs[spec.slug] = _run_summary(last)
        if spec.skip_reason():
            skipped[spec.slug] = spec.skip_reason()
            continue
        if last_ok is None or (last_ok.finished_at or last_ok.started_at) < cutoff:
            stale.append(spec.slug)
    models = Model.objects.filter(provider__organization__isnull=True)
    return {
        "interval_hours": settings.SYNC_INTERVAL_HOURS,
        "totals": {
            "providers": providers.count(),
            "active_providers": providers.filter(is_active=True).count(),
            "models": models.count(),
            "active_models": models.filter(is_active=True).count(),
        },
        "last_runs": runs,
        "stale_providers": stale,
        # Never synced here, and why (a missing key): scheduled syncs leave them out.
        "skipped_providers": skipped,
    }
