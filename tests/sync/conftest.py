"""Fixtures of the sync tests: recorded provider responses served through ``responses``."""

from __future__ import annotations

import pytest
import responses

from sync.registry import PROVIDERS, REGISTRY, ProviderSpec
from tests.support.api import ADMIN_KEY


@pytest.fixture(autouse=True)
def _no_provider_keys(monkeypatch):
    """Start every test with no provider key and no Ollama, whatever the shell has."""
    for spec in PROVIDERS:
        monkeypatch.delenv(spec.env_var, raising=False)
        if spec.base_url_env:
            monkeypatch.delenv(spec.base_url_env, raising=False)


@pytest.fixture
def http():
    """Every HTTP call goes to ``responses``; an unregistered URL is a connection error."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def serve(http):
    """``serve(slug, body, status=200)`` answers the provider's list URL with ``body``."""

    def add(slug: str, body, *, status: int = 200, url: str | None = None, **kwargs):
        spec: ProviderSpec = REGISTRY[slug]
        target = url or spec.resolved_list_url()
        if isinstance(body, (dict, list)):
            http.add(responses.GET, target, json=body, status=status, **kwargs)
        else:
            http.add(responses.GET, target, body=body, status=status, **kwargs)

    return add


@pytest.fixture
def admin_key(settings):
    settings.ADMIN_API_KEY = ADMIN_KEY
    return ADMIN_KEY
