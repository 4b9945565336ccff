"""Hugging Face enrichment: the model API client and the store of fetched metrics.

Metrics live in :class:`~modelhub.models.HuggingFaceMetrics` with their fetch time and in
the cache (keyed by the catalog version). An entry is fresh for ``HUGGINGFACE_FRESH_SECONDS``
(an hour); a transient failure (outage, 429, 5xx) is retried after
``HUGGINGFACE_RETRY_SECONDS`` and keeps serving the last good metrics meanwhile.

A request looks metrics up with :func:`metrics_for`: fresh entries come from the cache or
the store, at most ``live_budget`` never-seen ids are fetched live, stale and left-over ids
are queued for the ``catalog.refresh_huggingface_metrics`` task. Nothing here raises to the
caller: every failure is "no metrics for that model".
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import quote

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Max, Min, Q
from django.utils import timezone

from catalog import http_session, scheduling
from catalog.selectors import public_models
from modelhub.cache import catalog_version
from modelhub.models import HuggingFaceMetrics

if TYPE_CHECKING:
    import requests

logger = logging.getLogger(__name__)

NOT_FOUND = "not_found"
RATE_LIMITED = "rate_limited"
UPSTREAM_ERROR = "upstream_error"
UNAVAILABLE = "unavailable"
INVALID_RESPONSE = "invalid_response"
# Answers that will not change by asking again soon: kept as long as a success.
DEFINITIVE_ERRORS = frozenset({"", NOT_FOUND, INVALID_RESPONSE})

# While Hugging Face is down or rate-limits us, no request tries it again for this long.
BREAKER_KEY = "catalog:hf:paused"
BREAKER_SECONDS = 60
HITS_KEY = "catalog:hf:hits"
MISSES_KEY = "catalog:hf:misses"
# One queued refresh per id per window, however many requests see it stale.
QUEUED_SECONDS = 300


# --- Client -----------------------------------------------------------------------------


class FetchResult:
    """The outcome of one model API call: parsed metrics or an error code."""

    __slots__ = ("metrics", "error", "retry_after")

    def __init__(self, metrics: dict | None, error: str = "", retry_after: int | None = None):
        self.metrics = metrics
        self.error = error
        self.retry_after = retry_after


def _int_or_none(value) -> int | None:
    return value if type(value) is int else None


def _str_or_none(value) -> str | None:
    return value if isinstance(value, str) and value else None


def _num_parameters(body: dict) -> int | None:
    # numParameters appears in the Hub's listing shapes; the model API has only safetensors,
    # where ``parameters`` may split one model over several dtypes (gpt-oss: BF16 + U8), so
    # ``total`` is the number to trust.
    direct = _int_or_none(body.get("numParameters"))
    if direct is not None:
        return direct
    safetensors = body.get("safetensors")
    if not isinstance(safetensors, dict):
        return None
    total = _int_or_none(safetensors.get("total"))
    if total is not None:
        return total
    parameters = safetensors.get("parameters")
    if isinstance(parameters, dict):
        counts = [v for v in parameters.values() if type(v) is int]
        return sum(counts) if counts else None
    return None


def _author_data(body: dict) -> dict | None:
    data = body.get("authorData")
    if not isinstance(data, dict):
        return None
    return {
        "name": _str_or_none(data.get("name")),
        "fullname": _str_or_none(data.get("fullname")),
        "avatar_url": _str_or_none(data.get("avatarUrl")),
        "follower_count": _int_or_none(data.get("followerCount")),
    }


def _inference_providers(body: dict) -> list[str]:
    listed = body.get("availableInferenceProviders")
    if isinstance(listed, list):
        names = [p.get("provider") if isinstance(p, dict) else p for p in listed]
        return [n for n in names if isinstance(n, str)]
    # inferenceProviderMapping: a list of {provider, status, ...} in current answers, a
    # {provider: {status, ...}} object in older ones. Only live mappings serve requests.
    mapping = body.get("inferenceProviderMapping")
    if isinstance(mapping, dict):
        mapping = [{"provider": k, **v} for k, v in mapping.items() if isinstance(v, dict)]
    if not isinstance(mapping, list):
        return []
    return [
        m["provider"]
        for m in mapping
        if isinstance(m, dict)
        and isinstance(m.get("provider"), str)
        and m.get("status", "live") == "live"
    ]


def parse_model(body) -> dict | None:
    """The catalog's ``huggingface_metrics`` from a model API body, or None if unusable.

    Missing or oddly typed fields become ``null``. ``gated`` is kept as the Hub writes it:
    ``false`` or the gating mode (``"auto"``, ``"manual"``).
    """
    if not isinstance(body, dict) or not isinstance(body.get("id") or body.get("modelId"), str):
        return None
    gated = body.get("gated")
    if not isinstance(gated, bool | str):
        gated = None
    widget_urls = body.get("widgetOutputUrls")
    return {
        "downloads": _int_or_none(body.get("downloads")),
        "likes": _int_or_none(body.get("likes")),
        "pipeline_tag": _str_or_none(body.get("pipeline_tag")),
        "num_parameters": _num_parameters(body),
        "gated": gated,
        "private": body.get("private") if isinstance(body.get("private"), bool) else None,
        "last_modified": _str_or_none(body.get("lastModified")),
        "author": _str_or_none(body.get("author")),
        "author_data": _author_data(body),
        "available_inference_providers": _inference_providers(body),
        "widget_output_urls": [u for u in widget_urls if isinstance(u, str)]
        if isinstance(widget_urls, list)
        else [],
        # Requests are anonymous (or use the platform's token), never the visitor's account.
        "is_liked_by_user": body.get("isLikedByUser") is True,
    }


def _retry_after(response: requests.Response) -> int | None:
    value = response.headers.get("Retry-After", "")
    return int(value) if value.isdigit() else None


def fetch_model(hugging_face_id: str) -> FetchResult:
    """GET the Hub's model API for one id; every failure is a :class:`FetchResult` error."""
    url = f"{settings.HUGGINGFACE_API_URL.rstrip('/')}/models/{quote(hugging_face_id, safe='/')}"
    params = [("expand[]", name) for name in settings.HUGGINGFACE_EXPAND]
    headers = {"Accept": "application/json"}
    if settings.HUGGINGFACE_TOKEN:
        headers["Authorization"] = f"Bearer {settings.HUGGINGFACE_TOKEN}"
    import requests  # imported when used: see sync/fetch.py

    try:
        response = http_session.shared().get(
            url, params=params, headers=headers, timeout=settings.HUGGINGFACE_TIMEOUT_SECONDS
        )
    except requests.RequestException as exc:
        logger.warning("Hugging Face unreachable for %s: %s", hugging_face_id, exc)
        return FetchResult(None, UNAVAILABLE)
    # Private and unknown repositories answer 401 or 404; both mean "no public card".
    if response.status_code in (401, 403, 404):
        return FetchResult(None, NOT_FOUND)
    if response.status_code == 429:
        return FetchResult(None, RATE_LIMITED, _retry_after(response))
    if response.status_code != 200:
        return FetchResult(None, UPSTREAM_ERROR)
    try:
        metrics = parse_model(response.json())
    except ValueError:
        metrics = None
    if metrics is None:
        return FetchResult(None, INVALID_RESPONSE)
    return FetchResult(metrics)


# --- Store ------------------------------------------------------------------------------


def _cache_key(hugging_face_id: str) -> str:
    digest = hashlib.sha1(hugging_face_id.encode(), usedforsecurity=False).hexdigest()
    return f"catalog:v{catalog_version()}:hf:{digest}"


def _lifetime(error: str) -> int:
    if error in DEFINITIVE_ERRORS:
        return settings.HUGGINGFACE_FRESH_SECONDS
    return settings.HUGGINGFACE_RETRY_SECONDS


def _fresh_until(entry: HuggingFaceMetrics) -> datetime:
    return entry.fetched_at + timedelta(seconds=_lifetime(entry.error))


def _served(entry: HuggingFaceMetrics) -> dict | None:
    return entry.data if entry.found and entry.data else None


def _remember(hugging_face_id: str, metrics: dict | None, fresh_until: datetime) -> None:
    seconds = int((fresh_until - timezone.now()).total_seconds())
    if seconds > 0:
        cache.set(_cache_key(hugging_face_id), {"metrics": metrics}, seconds)


def store_result(hugging_face_id: str, result: FetchResult) -> HuggingFaceMetrics:
    """Save one fetch; a transient failure keeps the last good metrics it replaces."""
    defaults: dict = {"fetched_at": timezone.now(), "error": result.error}
    if result.metrics is not None:
        defaults.update(found=True, data=result.metrics)
    elif result.error in DEFINITIVE_ERRORS:
        defaults.update(found=False, data={})
    create_defaults = {"found": False, "data": {}, **defaults}
    try:
        with transaction.atomic():
            entry, _ = HuggingFaceMetrics.objects.update_or_create(
                hugging_face_id=hugging_face_id,
                defaults=defaults,
                create_defaults=create_defaults,
            )
    except IntegrityError:  # a concurrent request stored it first
        HuggingFaceMetrics.objects.filter(hugging_face_id=hugging_face_id).update(**defaults)
        entry = HuggingFaceMetrics.objects.get(hugging_face_id=hugging_face_id)
    _remember(hugging_face_id, _served(entry), _fresh_until(entry))
    return entry


def _pause_if_failing(result: FetchResult) -> None:
    if result.error in (UNAVAILABLE, RATE_LIMITED, UPSTREAM_ERROR):
        cache.set(BREAKER_KEY, result.error, result.retry_after or BREAKER_SECONDS)


def refresh(hugging_face_id: str) -> HuggingFaceMetrics | None:
    """Fetch and store one id now, unless Hugging Face is paused after a failure."""
    if cache.get(BREAKER_KEY):
        return None
    result = fetch_model(hugging_face_id)
    _pause_if_failing(result)
    return store_result(hugging_face_id, result)


def _count(key: str, amount: int) -> None:
    if amount <= 0:
        return
    if not cache.add(key, amount, timeout=None):
        try:
            cache.incr(key, amount)
        except ValueError:  # evicted between add and incr
            cache.set(key, amount, timeout=None)


def _queue_refresh(hugging_face_ids: list[str]) -> None:
    if not hugging_face_ids or not settings.HUGGINGFACE_BACKGROUND_REFRESH:
        return
    queued = [i for i in hugging_face_ids if cache.add(f"catalog:hf:queued:{i}", 1, QUEUED_SECONDS)]
    if not queued:
        return
    scheduling.enqueue_on_commit(scheduling.REFRESH_HUGGINGFACE_METRICS, queued)


def metrics_for(hugging_face_ids: Iterable[str], *, live_budget: int) -> dict[str, dict | None]:
    """Metrics by Hugging Face id (``None`` when unknown) for one response.

    At most two cache round trips and one store query, plus up to ``live_budget`` live
    calls for ids never fetched before. Without a background worker the unused budget goes
    to stale entries, so they still get refreshed.
    """
    ids = list(dict.fromkeys(i for i in hugging_face_ids if i))
    if not ids:
        return {}
    keys = {_cache_key(i): i for i in ids}
    found: dict[str, dict | None] = {
        keys[k]: v["metrics"] for k, v in cache.get_many(list(keys)).items()
    }
    hits = len(found)
    missing = [i for i in ids if i not in found]
    stale: list[str] = []
    if missing:
        now = timezone.now()
        for entry in HuggingFaceMetrics.objects.filter(hugging_face_id__in=missing):
            found[entry.hugging_face_id] = _served(entry)
            fresh_until = _fresh_until(entry)
            if fresh_until > now:
                hits += 1
                _remember(entry.hugging_face_id, _served(entry), fresh_until)
            else:
                stale.append(entry.hugging_face_id)
    never_fetched = [i for i in ids if i not in found]
    _count(HITS_KEY, hits)
    _count(MISSES_KEY, len(ids) - hits)

    live = never_fetched[:live_budget]
    if not settings.HUGGINGFACE_BACKGROUND_REFRESH:
        live += stale[: max(live_budget - len(live), 0)]
    for hugging_face_id in live:
        refreshed = refresh(hugging_face_id)
        if refreshed is None:  # paused: keep what we have, try again later
            break
        found[hugging_face_id] = _served(refreshed)
    fetched = set(live)
    _queue_refresh([i for i in stale + never_fetched if i not in fetched])
    return {i: found.get(i) for i in ids}


def refresh_many(hugging_face_ids: Iterable[str], *, force: bool = False) -> int:
    """Refresh the ids that are stale (or all of them with ``force``); returns how many
    were fetched. Stops early while Hugging Face is paused after a failure."""
    ids = list(dict.fromkeys(i for i in hugging_face_ids if i))
    if not force:
        now = timezone.now()
        fresh = {
            e.hugging_face_id
            for e in HuggingFaceMetrics.objects.filter(hugging_face_id__in=ids)
            if _fresh_until(e) > now
        }
        ids = [i for i in ids if i not in fresh]
    fetched = 0
    for hugging_face_id in ids:
        cache.delete(f"catalog:hf:queued:{hugging_face_id}")
        if refresh(hugging_face_id) is None:
            break
        fetched += 1
    return fetched


# --- Administration ---------------------------------------------------------------------


def _fresh_condition(now: datetime) -> Q:
    definitive = Q(error__in=DEFINITIVE_ERRORS) & Q(
        fetched_at__gt=now - timedelta(seconds=settings.HUGGINGFACE_FRESH_SECONDS)
    )
    transient = ~Q(error__in=DEFINITIVE_ERRORS) & Q(
        fetched_at__gt=now - timedelta(seconds=settings.HUGGINGFACE_RETRY_SECONDS)
    )
    return definitive | transient


def cache_status() -> dict:
    """Counts and ages of the stored metrics and the hit rate since the last clear."""
    now = timezone.now()
    entries = HuggingFaceMetrics.objects.all()
    bounds = entries.aggregate(oldest=Min("fetched_at"), newest=Max("fetched_at"))
    total = entries.count()
    fresh = entries.filter(_fresh_condition(now)).count()
    hits = int(cache.get(HITS_KEY) or 0)
    misses = int(cache.get(MISSES_KEY) or 0)
    return {
        "entries": total,
        "fresh": fresh,
        "stale": total - fresh,
        "with_metrics": entries.filter(found=True).count(),
        "failed": entries.exclude(error="").count(),
        "oldest_fetched_at": bounds["oldest"].isoformat() if bounds["oldest"] else None,
        "newest_fetched_at": bounds["newest"].isoformat() if bounds["newest"] else None,
        "fresh_seconds": settings.HUGGINGFACE_FRESH_SECONDS,
        "live_fetches_per_request": settings.HUGGINGFACE_LIVE_FETCHES_PER_REQUEST,
        "paused": bool(cache.get(BREAKER_KEY)),
        "hits": hits,
        "misses": misses,
        "hit_rate": round(hits / (hits + misses), 4) if hits + misses else None,
    }


def clear() -> int:
    """Forget every stored metric, its cached copies and the hit counters."""
    deleted, _ = HuggingFaceMetrics.objects.all().delete()
    # The cached copies are keyed by the catalog version, which this must not bump (it
    # would drop every catalog answer); they are deleted one by one instead.
    ids = public_models().exclude(hugging_face_id="").values_list("hugging_face_id", flat=True)
    cache.delete_many([_cache_key(i) for i in set(ids)])
    cache.delete_many([HITS_KEY, MISSES_KEY, BREAKER_KEY])
    return deleted
