"""Catalog test fixtures: no outbound HTTP, fixed upstream URLs."""

from __future__ import annotations

import pytest
import responses as responses_lib

from tests.support.api import ADMIN_KEY
from tests.support.recorded import HF_API, OPENROUTER_API


@pytest.fixture(autouse=True)
def catalog_settings(settings):
    settings.HUGGINGFACE_API_URL = HF_API
    settings.HUGGINGFACE_TOKEN = ""
    settings.HUGGINGFACE_EXPAND = []
    settings.HUGGINGFACE_LIVE_FETCHES_PER_REQUEST = 3
    settings.HUGGINGFACE_BACKGROUND_REFRESH = False
    settings.OPENROUTER_API_URL = OPENROUTER_API
    settings.OPENROUTER_API_KEY = ""
    settings.ADMIN_API_KEY = ADMIN_KEY
    settings.CATALOG_GATEWAY_PREFERENCE = [
        "openrouter",
        "portkey",
        "featherless",
        "deepinfra",
        "chutes",
    ]
    return settings


@pytest.fixture(autouse=True)
def http():
    """Every outbound call is intercepted; an unregistered URL fails like an outage."""
    with responses_lib.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock
