"""Catalog rows for the tests, created directly (the sync is not needed to serve them)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from modelhub.models import Model, Provider

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

# OpenRouter pricing key -> Model column.
PRICE_COLUMNS = {
    "prompt": "pricing_prompt",
    "completion": "pricing_completion",
    "image": "pricing_image",
    "request": "pricing_request",
    "web_search": "pricing_web_search",
    "internal_reasoning": "pricing_internal_reasoning",
    "input_cache_read": "pricing_cache_read",
    "input_cache_write": "pricing_cache_write",
}


def fixture(relative: str) -> dict:
    return json.loads((FIXTURES / relative).read_text())


def make_provider(slug: str, **fields) -> Provider:
    fields.setdefault("name", slug.replace("-", " ").title())
    return Provider.objects.create(slug=slug, **fields)


def make_model(provider: Provider, model_id: str, **fields) -> Model:
    fields.setdefault("model_name", model_id)
    fields.setdefault("modality", "text->text")
    fields.setdefault("input_modalities", ["text"])
    fields.setdefault("output_modalities", ["text"])
    return Model.objects.create(provider=provider, provider_model_id=model_id, **fields)


def model_from_openrouter(provider: Provider, record: dict) -> Model:
    """A row holding what the sync keeps of one OpenRouter ``/api/v1/models`` record."""
    architecture = record["architecture"]
    top = record["top_provider"]
    prices = {
        column: Decimal(record["pricing"][key])
        for key, column in PRICE_COLUMNS.items()
        if isinstance(record["pricing"].get(key), str)
    }
    return make_model(
        provider,
        record["id"],
        model_name=record["name"],
        canonical_slug=record.get("canonical_slug") or "",
        hugging_face_id=record.get("hugging_face_id") or "",
        description=record.get("description") or "",
        context_length=record.get("context_length"),
        max_completion_tokens=top.get("max_completion_tokens"),
        is_moderated=top.get("is_moderated", False),
        modality=architecture["modality"],
        input_modalities=architecture["input_modalities"],
        output_modalities=architecture["output_modalities"],
        tokenizer=architecture.get("tokenizer") or "",
        instruct_type=architecture.get("instruct_type") or "",
        supported_parameters=record.get("supported_parameters") or [],
        per_request_limits=record.get("per_request_limits"),
        upstream_created_at=datetime.fromtimestamp(record["created"], tz=UTC),
        author=record["id"].split("/", 1)[0].lstrip("~"),
        raw=record,
        **prices,
    )


def openrouter_records() -> list[dict]:
    return fixture("providers/openrouter.json")["response"]["data"]


def load_openrouter(provider: Provider | None = None) -> tuple[Provider, list[Model]]:
    provider = provider or make_provider(
        "openrouter", name="OpenRouter", site_url="https://openrouter.ai"
    )
    return provider, [model_from_openrouter(provider, r) for r in openrouter_records()]


def hf_body(name: str) -> dict:
    """The response body of a recorded Hugging Face model API call."""
    return fixture(f"huggingface/{name}.json")["response"]
