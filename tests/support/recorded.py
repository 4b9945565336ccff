"""Recorded upstream responses under ``tests/fixtures`` (providers' model lists, Hugging
Face model API answers), and the fake hosts the catalog and sync tests answer them on."""

from __future__ import annotations

import json
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
PROVIDER_FIXTURES = FIXTURES / "providers"

HF_API = "https://hf.example.test/api"
OPENROUTER_API = "https://openrouter.example.test/api/v1"


def fixture(relative: str) -> dict:
    return json.loads((FIXTURES / relative).read_text(encoding="utf-8"))


def load_wrapper(name: str) -> dict:
    """A recorded provider response with its metadata (``tests/fixtures/providers``)."""
    return fixture(f"providers/{name}")


def load_response(name: str):
    return load_wrapper(name)["response"]


def openrouter_records() -> list[dict]:
    return load_response("openrouter.json")["data"]


def hf_body(name: str) -> dict:
    """The response body of a recorded Hugging Face model API call."""
    return fixture(f"huggingface/{name}.json")["response"]


def hf_url(hugging_face_id: str) -> str:
    return f"{HF_API}/models/{hugging_face_id}"


def hf_calls(http) -> list[str]:
    """The Hugging Face URLs a ``responses`` mock was asked for, in order."""
    return [c.request.url for c in http.calls if c.request.url.startswith(HF_API)]
