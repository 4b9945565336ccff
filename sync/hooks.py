"""Provider-specific hooks that the registry's entries name.

``*_prepare`` reshape a record that field paths alone cannot read, ``*_token_priced``
tell whether a record's token prices are token prices, and :func:`fetch_fal_prices`
is fal's second call for its prices. They use the fetch and the transform helpers;
neither of those imports this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from sync.fetch import FetchError, fetch_page
from sync.transforms import cheapest_offer, lookup, to_decimal

if TYPE_CHECKING:
    import requests


def openrouter_prepare(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    """The per-model endpoints call nests hosts in ``endpoints[]``: use the cheapest one."""
    if "endpoints" not in raw or "pricing" in raw:
        return raw
    offer = cheapest_offer(raw.get("endpoints"), "pricing.prompt") or {}
    return {
        **raw,
        "pricing": offer.get("pricing") or {},
        "context_length": offer.get("context_length"),
        "top_provider": {"max_completion_tokens": offer.get("max_completion_tokens")},
        "supported_parameters": offer.get("supported_parameters") or [],
    }


def deepinfra_prepare(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    record = dict(raw)
    if "metadata" in raw and raw.get("metadata") is None:
        # The OpenAI route has no metadata for embedding, image and other non-LLM models.
        record["type"] = "other"
    pricing = raw.get("pricing") if isinstance(raw.get("pricing"), Mapping) else {}
    ratio = to_decimal(pricing.get("rate_per_input_token_cached"))
    prompt = to_decimal(pricing.get("cents_per_input_token"))
    if ratio is not None and prompt is not None:
        # /models/list quotes the cached-input price as a fraction of the input price.
        record["_cache_read_cents"] = str(prompt * ratio)
    return record


def deepinfra_token_priced(record: Mapping[str, Any]) -> bool:
    kind = lookup(record, "pricing.type")
    return not isinstance(kind, str) or kind in {"tokens", "input_tokens"}


def together_token_priced(record: Mapping[str, Any]) -> bool:
    # Image, audio and transcription models carry 0 or per-character numbers in input/output.
    return record.get("type") not in {"image", "audio", "transcribe", "video"}


def huggingface_prepare(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    """The router lists each model once with every host; price = cheapest live host."""
    providers = raw.get("providers") if isinstance(raw.get("providers"), list) else []
    contexts = [p.get("context_length") for p in providers if isinstance(p, Mapping)]
    contexts = [c for c in contexts if isinstance(c, int) and c > 0]
    features = []
    for host in providers:
        if isinstance(host, Mapping) and host.get("status") == "live":
            if host.get("supports_tools"):
                features.append("tools")
            if host.get("supports_structured_output"):
                features.append("structured_outputs")
    return {
        **raw,
        "_offer": cheapest_offer(providers, "pricing.input", status_path="status", live="live"),
        "_context": max(contexts) if contexts else None,
        "_features": features,
    }


def helicone_prepare(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    return {**raw, "_offer": cheapest_offer(raw.get("endpoints"), "pricing.prompt")}


def aimo_prepare(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    return {**raw, "_offer": cheapest_offer(raw.get("providers"), "pricing.prompt")}


def gemini_prepare(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    methods = raw.get("supportedGenerationMethods") or []
    if "generateContent" in methods:
        kind = "chat"
    elif "embedContent" in methods:
        kind = "embedding"
    elif "predict" in methods:
        kind = "image"
    else:
        kind = "other"
    return {**raw, "type": kind}


def mistral_prepare(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    capabilities = raw.get("capabilities") if isinstance(raw.get("capabilities"), Mapping) else {}
    if capabilities.get("completion_chat"):
        kind = "chat"
    elif capabilities.get("classification"):
        kind = "moderation"
    else:
        kind = ""  # embeddings and OCR: the id tells
    inputs = ["text", "image"] if capabilities.get("vision") else None
    return {**raw, "type": kind, "_inputs": inputs}


def anthropic_prepare(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    capabilities = raw.get("capabilities") if isinstance(raw.get("capabilities"), Mapping) else {}
    image = lookup(capabilities, "image_input.supported") is True
    # Every Claude model on the Messages API takes tools; the list has no flag for it.
    return {
        **raw,
        "_inputs": ["text", "image"] if image else ["text"],
        "_outputs": ["text"],
        "_features": ["tools"],
    }


def fireworks_prepare(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    image = raw.get("supports_image_input") or raw.get("supportsImageInput")
    kind = str(raw.get("kind") or "").lower()
    if kind == "hf_base_model" and raw.get("supports_chat") is False:
        kind = "other"  # e.g. Whisper: listed as a base model without chat
    return {**raw, "type": kind, "_inputs": ["text", "image"] if image else None}


FAL_IMAGE_UNITS = {"image", "images"}
FAL_REQUEST_UNITS = {"request", "requests", "call", "calls", "generation", "video", "videos"}


def fal_prepare(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    status = lookup(raw, "metadata.status")
    record = {**raw, "_active": status != "deprecated" if isinstance(status, str) else None}
    pricing = raw.get("pricing")
    if isinstance(pricing, Mapping) and pricing.get("currency", "USD") == "USD":
        unit = str(pricing.get("unit", "")).strip().lower()
        # Only per-image and per-call prices have a column; per megapixel, second or
        # character prices stay in the raw record.
        if unit in FAL_IMAGE_UNITS:
            record["_image_price"] = pricing.get("unit_price")
        elif unit in FAL_REQUEST_UNITS:
            record["_request_price"] = pricing.get("unit_price")
    return record


FAL_PRICING_URL = "https://api.fal.ai/v1/models/pricing"
FAL_PRICING_BATCH = 50


def fetch_fal_prices(
    records: list[Any], *, session: requests.Session, headers: Mapping[str, str], secret: str
) -> list[Any]:
    """Attach fal's per-endpoint price (``{unit_price, unit, currency}``) as ``pricing``.

    fal lists models without prices; the pricing call needs a key and takes endpoint ids
    in batches. Without a key the models still land, unpriced.
    """
    if not secret:
        return records
    ids = [
        r["endpoint_id"]
        for r in records
        if isinstance(r, Mapping) and isinstance(r.get("endpoint_id"), str)
    ]
    prices: dict[str, Any] = {}
    for start in range(0, len(ids), FAL_PRICING_BATCH):
        batch = ids[start : start + FAL_PRICING_BATCH]
        url = f"{FAL_PRICING_URL}?{urlencode([('endpoint_id', i) for i in batch])}"
        payload = fetch_page(session, url, headers=headers, secret=secret)
        entries = payload.get("prices") if isinstance(payload, Mapping) else None
        if not isinstance(entries, list):
            raise FetchError("fal pricing: no 'prices' list in the response")
        for entry in entries:
            if isinstance(entry, Mapping) and isinstance(entry.get("endpoint_id"), str):
                prices[entry["endpoint_id"]] = dict(entry)
    return [
        {**r, "pricing": prices[r["endpoint_id"]]}
        if isinstance(r, Mapping) and r.get("endpoint_id") in prices
        else r
        for r in records
    ]
