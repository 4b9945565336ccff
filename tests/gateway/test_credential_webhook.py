"""The gateway marking a credential unhealthy sends the credential.unhealthy event once."""

from __future__ import annotations

from modelhub.models import HealthStatus, ProviderCredential, WebhookDelivery, WebhookEvent
from modelhub.services import webhook_create
from tests.support.gateway import wait_for
from tests.support.upstream import Action

MESSAGES = [{"role": "user", "content": "hi"}]


def test_a_credential_the_gateway_marks_unhealthy_is_announced_once(
    client, upstream, catalog, org, receiver, celery_eager, gateway_settings
):
    gateway_settings.CREDENTIAL_FAILURE_THRESHOLD = 2
    created = webhook_create(
        organization=org,
        url=f"{receiver.url}/health",
        events=[WebhookEvent.CREDENTIAL_UNHEALTHY],
    )
    alpha = catalog["credentials"]["alpha"]
    # Alpha fails on each try; beta answers, so the requests themselves succeed.
    upstream.script("llama-3.1-8b", *[Action("status", status=503)] * 4)
    for _ in range(2):
        client.chat.completions.create(model="alpha/llama-3.1-8b", messages=MESSAGES)
    wait_for(
        lambda: ProviderCredential.objects.get(pk=alpha.pk).health_status == HealthStatus.UNHEALTHY
    )
    [event] = receiver.wait_for(1)
    assert event.signed_with(created.secret)
    assert event.json["event"] == "credential.unhealthy"
    assert event.json["credential"]["id"] == alpha.pk
    assert event.json["credential"]["provider"] == "alpha"
    assert "sk-alpha-secret-0001" not in event.body.decode()
    assert WebhookDelivery.objects.get().status == "delivered"
    assert len(receiver.received) == 1
