"""An upstream that quotes the credential back in its error text must not leak it.

The fake upstream's ``echo_secret*`` actions answer with the request's ``Authorization``
or ``x-api-key`` header, the bare key and its random part, as a JSON error, an HTML page,
the first event of a stream or an event in the middle of one. The key must come out of
none of: the SDK's exception, the stream's error event, the metric row, the credential's
``last_error``, the management API and the log.
"""

from __future__ import annotations

import json
import logging
import secrets

import openai
import pytest

from gateway.upstreams import UpstreamCall
from modelhub.models import Model, ModelMetric, Provider, ProviderCredential
from modelhub.redaction import REDACTED
from modelhub.services import provider_credential_create
from tests.support.gateway import metrics_rows, wait_for
from tests.support.upstream import Action

API = "/api/modelhub"
MESSAGES = [{"role": "user", "content": "hi"}]

# Keys shaped like the real ones: a vendor prefix and a long random part.
OPENAI_SECRET = "sk-proj-" + secrets.token_hex(20)
ANTHROPIC_SECRET = "sk-ant-api03-" + secrets.token_hex(20)


@pytest.fixture(params=["openai", "anthropic"])
def leaky(request, org, upstream):
    """A global provider whose upstream will quote our key back; yields what to call."""
    if request.param == "openai":
        provider = Provider.objects.create(
            name="Leaky", slug="leaky", base_url=f"{upstream.url}/openai/v1"
        )
        secret, upstream_model = OPENAI_SECRET, "leaky-gpt"
    else:
        provider = Provider.objects.create(
            name="Leaky Claude",
            slug="leaky-claude",
            base_url=f"{upstream.url}/anthropic/v1",
            api_format="anthropic",
        )
        secret, upstream_model = ANTHROPIC_SECRET, "leaky-haiku"
    Model.objects.create(provider=provider, provider_model_id=upstream_model, model_name="Leaky")
    credential = provider_credential_create(
        organization=org, provider=provider, secret=secret, name="leaky"
    )
    return {
        "model": f"{provider.slug}/{upstream_model}",
        "upstream_model": upstream_model,
        "secret": secret,
        "credential": credential,
    }


@pytest.fixture
def logs(caplog):
    caplog.set_level(logging.INFO)
    return caplog


def assert_no_secret(text: str, secret: str) -> None:
    text = text.lower()
    assert secret.lower() not in text
    # The prefix-free forms: without "sk-", and the random part alone.
    assert secret.split("-", 1)[1].lower() not in text
    assert secret.rsplit("-", 1)[1].lower() not in text


def assert_stored_and_served_without_secret(leaky, api_client, member, org, logs, *, health):
    """The metric row, the credential, the API a member reads and the log: no secret."""
    secret = leaky["secret"]
    row = metrics_rows(1, requested_model=leaky["model"])[-1]
    assert row.error_message
    assert_no_secret(row.error_message, secret)
    credential = ProviderCredential.objects.get(pk=leaky["credential"].pk)
    if health:
        wait_for(lambda: ProviderCredential.objects.get(pk=credential.pk).last_error)
        credential.refresh_from_db()
        assert REDACTED in credential.last_error
    assert_no_secret(credential.last_error, secret)

    client = api_client(member, org)
    tail = secret.rsplit("-", 1)[1]
    for url in (
        f"{API}/api-keys/",
        f"{API}/api-keys/{credential.pk}/",
        f"{API}/api-keys/health_status/",
        f"{API}/metrics/",
        f"{API}/metrics/?search={secret}",
        f"{API}/metrics/?search={tail}",
        f"{API}/metrics/dashboard_summary/",
    ):
        response = client.get(url)
        assert response.status_code == 200, url
        assert_no_secret(response.content.decode(), secret)
    if health:
        body = client.get(f"{API}/api-keys/health_status/").json()
        assert [c["last_error"] for c in body["unhealthy"] if c["id"] == credential.pk]

    failures = [r for r in logs.records if "Upstream attempt" in r.getMessage()]
    assert failures, "the upstream failure is logged"
    assert any(REDACTED in r.getMessage() for r in failures)
    assert_no_secret(logs.text, secret)
    for record in logs.records:
        assert_no_secret(record.getMessage(), secret)


@pytest.mark.parametrize("status", [401, 500])
def test_json_error_quoting_the_key_is_scrubbed(
    status, leaky, client, upstream, api_client, member, org, logs
):
    upstream.script(leaky["upstream_model"], *[Action("echo_secret", status=status)] * 3)
    with pytest.raises(openai.APIStatusError) as error:
        client.chat.completions.create(model=leaky["model"], messages=MESSAGES)
    assert error.value.status_code == 502
    assert REDACTED in error.value.message
    assert_no_secret(error.value.message, leaky["secret"])
    assert_no_secret(error.value.response.text, leaky["secret"])
    assert_stored_and_served_without_secret(leaky, api_client, member, org, logs, health=True)


def test_client_error_passed_through_is_scrubbed(
    leaky, client, upstream, api_client, member, org, logs
):
    """A 400 goes back to the caller as the upstream's message: scrubbed, still a 400."""
    upstream.script(leaky["upstream_model"], Action("echo_secret", status=400))
    with pytest.raises(openai.BadRequestError) as error:
        client.chat.completions.create(model=leaky["model"], messages=MESSAGES)
    assert REDACTED in error.value.message
    assert "Invalid credentials" in error.value.message
    assert_no_secret(error.value.message, leaky["secret"])
    assert_no_secret(json.dumps(error.value.body), leaky["secret"])
    row = metrics_rows(1, requested_model=leaky["model"])[-1]
    assert row.status_code == 400
    assert REDACTED in row.error_message
    assert_no_secret(row.error_message, leaky["secret"])
    response = api_client(member, org).get(f"{API}/metrics/?search={leaky['secret']}")
    assert_no_secret(response.content.decode(), leaky["secret"])


def test_html_error_page_is_never_echoed(leaky, client, upstream, api_client, member, org, logs):
    upstream.script(leaky["upstream_model"], *[Action("echo_secret_html", status=502)] * 3)
    with pytest.raises(openai.APIStatusError) as error:
        client.chat.completions.create(model=leaky["model"], messages=MESSAGES)
    assert "The upstream answered HTTP 502 with a non-JSON body" in error.value.message
    assert "<html" not in error.value.response.text
    assert_no_secret(error.value.response.text, leaky["secret"])
    row = metrics_rows(1, requested_model=leaky["model"])[-1]
    assert "non-JSON body" in row.error_message
    assert "<html" not in row.error_message
    credential = ProviderCredential.objects.get(pk=leaky["credential"].pk)
    assert "non-JSON body" in credential.last_error
    assert_no_secret(credential.last_error, leaky["secret"])
    assert_no_secret(logs.text, leaky["secret"])


def test_error_as_first_stream_event_is_scrubbed(
    leaky, client, upstream, api_client, member, org, logs
):
    upstream.script(leaky["upstream_model"], *[Action("echo_secret_first_event")] * 3)
    with pytest.raises(openai.APIStatusError) as error:
        stream = client.chat.completions.create(
            model=leaky["model"], messages=MESSAGES, stream=True
        )
        list(stream)
    assert REDACTED in error.value.message
    assert_no_secret(error.value.response.text, leaky["secret"])
    assert_stored_and_served_without_secret(leaky, api_client, member, org, logs, health=True)


def test_error_in_the_middle_of_a_stream_is_scrubbed(
    leaky, client, upstream, api_client, member, org, logs
):
    upstream.script(leaky["upstream_model"], Action("echo_secret_mid_stream"))
    stream = client.chat.completions.create(model=leaky["model"], messages=MESSAGES, stream=True)
    with pytest.raises(openai.APIError) as error:
        list(stream)
    # The stream had started (200, first event relayed): the gateway's own error event.
    assert error.value.body["code"] == "upstream_stream_error"
    assert REDACTED in error.value.message
    assert_no_secret(error.value.message, leaky["secret"])
    assert_no_secret(json.dumps(error.value.body), leaky["secret"])
    wait_for(lambda: ModelMetric.objects.filter(requested_model=leaky["model"]).exists())
    assert_stored_and_served_without_secret(leaky, api_client, member, org, logs, health=True)


def test_the_upstream_call_keeps_its_secrets_out_of_its_repr():
    call = UpstreamCall(
        "http://127.0.0.1/v1/chat/completions",
        {"Authorization": f"Bearer {OPENAI_SECRET}"},
        b"{}",
        False,
        (OPENAI_SECRET, f"Bearer {OPENAI_SECRET}"),
    )
    assert_no_secret(repr(call), OPENAI_SECRET)
    assert call.scrub(f"bad key {OPENAI_SECRET}") == f"bad key {REDACTED}"
