"""Secrets scrubbed from error text: the scrubber, the service that stores ``last_error``,
and the API reading rows that were stored before the gateway scrubbed them."""

from __future__ import annotations

import pytest

from modelhub import services
from modelhub.models import ModelMetric, ProviderCredential
from modelhub.redaction import MAX_ERROR_LENGTH, REDACTED, bounded, scrub, secret_variants
from tests.support.api import API
from tests.support.builders import make_credential, make_metric, make_provider

SECRET = "sk-ant-api03-0a1b2c3d4e5f60718293a4b5c6d7e8f9"
RANDOM_PART = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"


def test_variants_cover_the_prefix_free_forms_and_the_bearer_header():
    variants = secret_variants(f"Bearer {SECRET}")
    assert SECRET in variants
    assert "ant-api03-" + RANDOM_PART in variants
    assert RANDOM_PART in variants
    # Short tails would scrub ordinary words: only long ones count.
    assert all(len(v) >= 12 for v in variants)


def test_scrub_replaces_every_form_and_leaves_no_fragment():
    text = (
        f"Authorization: Bearer {SECRET}; x-api-key: {SECRET.upper()}; key ...{RANDOM_PART}; "
        "nothing else changes"
    )
    scrubbed = scrub(text, [SECRET])
    assert SECRET.lower() not in scrubbed.lower()
    assert RANDOM_PART not in scrubbed
    assert "sk-" not in scrubbed  # the whole key is replaced, prefix included
    assert scrubbed.count(REDACTED) == 3
    assert scrubbed.endswith("nothing else changes")


def test_scrub_bounds_the_text_after_replacing():
    # A key straddling the bound must not survive as a cut-off half.
    text = "x" * (MAX_ERROR_LENGTH - 10) + SECRET
    scrubbed = scrub(text, [SECRET])
    assert len(scrubbed) <= MAX_ERROR_LENGTH
    assert SECRET[:8] not in scrubbed
    assert bounded("y" * 5000) == "y" * (MAX_ERROR_LENGTH - 1) + "…"


def test_record_failure_scrubs_the_credentials_own_secret(org):
    credential = make_credential(org, make_provider(), secret=SECRET)
    stored = services.provider_credential_record_failure(
        credential=credential, error=f"http_401: bad key {SECRET} ({RANDOM_PART})" * 50
    )
    assert SECRET not in stored.last_error
    assert RANDOM_PART not in stored.last_error
    assert REDACTED in stored.last_error
    assert len(stored.last_error) <= MAX_ERROR_LENGTH


@pytest.fixture
def legacy_rows(org):
    """A credential and a metric row whose error text was stored with the key in it."""
    credential = make_credential(org, make_provider(), secret=SECRET)
    ProviderCredential.objects.filter(pk=credential.pk).update(
        last_error=f"http_401: Invalid key {SECRET}", health_status="unhealthy"
    )
    metric = make_metric(org, credential=credential, status_code=502, success=False)
    ModelMetric.objects.filter(pk=metric.pk).update(
        error_message=f"Every upstream failed; last error: key ...{RANDOM_PART}"
    )
    return credential, metric


def test_the_api_never_returns_a_stored_secret(legacy_rows, member_client):
    credential, metric = legacy_rows
    for url in (
        f"{API}/api-keys/",
        f"{API}/api-keys/{credential.pk}/",
        f"{API}/api-keys/health_status/",
        f"{API}/metrics/",
        f"{API}/metrics/{metric.pk}/",
        f"{API}/metrics/dashboard_summary/",
    ):
        response = member_client.get(url)
        assert response.status_code == 200, url
        body = response.content.decode()
        assert RANDOM_PART not in body, url
    detail = member_client.get(f"{API}/api-keys/{credential.pk}/").json()
    assert detail["last_error"] == f"http_401: Invalid key {REDACTED}"
    row = member_client.get(f"{API}/metrics/{metric.pk}/").json()
    assert row["error_message"] == f"Every upstream failed; last error: key ...{REDACTED}"
