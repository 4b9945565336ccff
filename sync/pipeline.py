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
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from auditlog.context import disable_auditlog
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from modelhub.cache import bump_catalog_version
from modelhub.invalidation import publish_tenant_change
from modelhub.models import Model, Provider, SyncRun, SyncStatus
from sync import bulk
from sync.fetch import FetchError, fetch_records, redact, too_many_records
from sync.registry import ProviderSpec, all_specs, get_spec
from sync.transforms import MalformedRecord, ModelRecord, transform_record

if TYPE_CHECKING:
    import requests

logger = logging.getLogger("sync")

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
            # The sync's own record is its SyncRun, as for the models it writes in bulk.
            with disable_auditlog():
                provider = Provider.objects.create(slug=spec.slug, last_synced_at=now, **wanted)
            for row in plan.to_create:
                row["provider_id"] = provider.pk
        else:
            changed = {k: v for k, v in wanted.items() if getattr(provider, k) != v}
            Provider.objects.global_rows().filter(pk=provider.pk).update(
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
    import requests  # imported when used: see sync/fetch.py

    specs = [get_spec(slug) for slug in slugs] if slugs else list(all_specs())
    unknown = [slug for slug, spec in zip(slugs or [], specs, strict=False) if spec is None]
    if unknown:
        raise ValueError(f"unknown providers: {', '.join(unknown)}")
    results = []
    with requests.Session() as session:
        for spec in filter(None, specs):
            if on_start:
                on_start(spec)
            result = sync_provider(
                spec=spec, dry_run=dry_run, trigger=trigger, force=force, session=session
            )
            results.append(result)
            if on_result:
                on_result(result)
    return results
