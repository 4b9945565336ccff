"""Catalog snapshots: build one from the provider fixtures, load one without network.

A snapshot holds transformed records; loading it goes through the same pipeline as a
live sync (:func:`sync.pipeline.sync_provider` with ``records``), guards included.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from modelhub.models import Model, SyncRun, SyncStatus
from sync.fetch import FetchError, extract_items
from sync.pipeline import SyncResult, sync_provider, transform_records
from sync.registry import ProviderSpec, all_specs, get_spec
from sync.transforms import ModelRecord

logger = logging.getLogger("sync")

SNAPSHOT_FORMAT = 1


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
    return Model.objects.global_rows().exists()


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
