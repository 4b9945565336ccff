"""Webhooks: the secret shown once, the outbound policy, signed deliveries with retries,
and one event per threshold and budget period."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from modelhub import services
from modelhub.budgets import CLIENT_KEY, ORGANIZATION
from modelhub.crypto import decrypt_secret
from modelhub.models import DeliveryStatus, Webhook, WebhookDelivery, WebhookEvent
from tests.support.api import API
from tests.support.builders import db_state, make_client_key, make_credential, make_provider

MAY = datetime(2026, 5, 1, tzinfo=UTC)
JUNE = datetime(2026, 6, 1, tzinfo=UTC)


def make_webhook(org, url, **fields) -> services.CreatedWebhook:
    return services.webhook_create(organization=org, url=url, **fields)


def crossed(org, thresholds, *, period_start=MAY, subject=ORGANIZATION, subject_id=None):
    return services.webhook_budget_crossed(
        organization_id=org.pk,
        subject=subject,
        subject_id=org.pk if subject_id is None else subject_id,
        amount=Decimal("10"),
        period="month",
        period_start=period_start,
        spent=Decimal("5.5"),
        thresholds=thresholds,
    )


# --- The API ------------------------------------------------------------------------------


def test_the_secret_is_shown_once_and_stored_encrypted(org, owner_client):
    response = owner_client.post(
        f"{API}/webhooks/",
        {"url": "https://hooks.example.com/budget", "thresholds": [100, 50, 50]},
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    secret = body["secret"]
    assert secret.startswith("whsec_") and len(secret) > 30
    assert body["thresholds"] == [50, 100]
    assert sorted(body["events"]) == sorted(WebhookEvent.values)
    webhook = Webhook.objects.get(pk=body["id"])
    assert secret not in webhook.encrypted_secret
    assert decrypt_secret(webhook.encrypted_secret) == secret

    for response in (
        owner_client.get(f"{API}/webhooks/{webhook.pk}/"),
        owner_client.get(f"{API}/webhooks/"),
        owner_client.patch(f"{API}/webhooks/{webhook.pk}/", {"is_active": False}, format="json"),
    ):
        assert response.status_code == 200
        assert secret not in response.content.decode()
        assert "secret" not in response.content.decode()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://10.0.0.5/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://2130706433/hook",
        "ftp://hooks.example.com/hook",
        "https://user:pw@hooks.example.com/hook",
    ],
)
def test_urls_the_outbound_policy_refuses_are_a_400(url, org, owner_client, settings):
    settings.GATEWAY_ALLOW_PRIVATE_UPSTREAMS = False
    before = db_state()
    response = owner_client.post(f"{API}/webhooks/", {"url": url}, format="json")
    assert response.status_code == 400, response.json()
    assert "url" in response.json()
    assert db_state() == before
    assert not Webhook.objects.exists()


def test_an_update_to_a_refused_url_is_a_400(org, owner_client, settings):
    webhook = make_webhook(org, "https://hooks.example.com/a").webhook
    settings.GATEWAY_ALLOW_PRIVATE_UPSTREAMS = False
    response = owner_client.patch(
        f"{API}/webhooks/{webhook.pk}/", {"url": "http://192.168.1.1/x"}, format="json"
    )
    assert response.status_code == 400
    assert "not allowed" in response.json()["url"][0]
    webhook.refresh_from_db()
    assert webhook.url == "https://hooks.example.com/a"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("thresholds", [0]),
        ("thresholds", [1001]),
        ("thresholds", []),
        ("thresholds", ["half"]),
        ("thresholds", list(range(1, 30))),
        ("events", ["budget.exploded"]),
        ("events", []),
        ("url", "not a url"),
    ],
)
def test_bad_webhook_fields_are_400_naming_the_field(field, value, org, owner_client):
    payload = {"url": "https://hooks.example.com/a", field: value}
    response = owner_client.post(f"{API}/webhooks/", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()


def test_another_organizations_webhook_and_its_deliveries_are_404(org, other_org, owner_client):
    theirs = make_webhook(other_org, "https://hooks.example.com/theirs").webhook
    crossed(other_org, [50])
    for path in (
        f"{API}/webhooks/{theirs.pk}/",
        f"{API}/webhooks/{theirs.pk}/deliveries/",
        f"{API}/webhooks/{theirs.pk}/deliveries/{WebhookDelivery.objects.get().pk}/",
    ):
        response = owner_client.get(path)
        assert response.status_code == 404, path
        assert response.json() == owner_client.get(path.replace(str(theirs.pk), "987654")).json()
    assert owner_client.delete(f"{API}/webhooks/{theirs.pk}/").status_code == 404
    assert Webhook.objects.filter(pk=theirs.pk).exists()


def test_deliveries_list_the_webhooks_events(org, owner_client):
    webhook = make_webhook(org, "https://hooks.example.com/a").webhook
    other = make_webhook(org, "https://hooks.example.com/b").webhook
    crossed(org, [50, 80])
    response = owner_client.get(f"{API}/webhooks/{webhook.pk}/deliveries/")
    assert response.status_code == 200
    rows = response.json()["results"]
    assert sorted(row["threshold"] for row in rows) == [50, 80]
    assert {row["webhook"] for row in rows} == {webhook.pk}
    assert rows[0]["status"] == "pending" and rows[0]["payload"]["event"] == (
        "organization.budget_threshold"
    )
    assert other.pk != webhook.pk


# --- Deliveries ---------------------------------------------------------------------------


@pytest.fixture
def deliver_now(celery_eager, django_capture_on_commit_callbacks):
    """Run the deliveries queued by ``action()`` at once, as a worker would."""

    def run(action):
        with django_capture_on_commit_callbacks(execute=True):
            return action()

    return run


def test_a_threshold_crossing_is_one_signed_post(org, receiver, deliver_now, settings):
    created = make_webhook(org, f"{receiver.url}/hooks/budget?team=1", thresholds=[50, 80])
    deliveries = deliver_now(lambda: crossed(org, [50]))
    [event] = receiver.wait_for(1)
    assert event.path == "/hooks/budget"
    assert event.signed_with(created.secret)
    assert not event.signed_with(created.secret + "x")
    assert event.headers["content-type"] == "application/json"
    assert event.headers["x-modelhub-event"] == "organization.budget_threshold"
    assert event.headers["x-modelhub-delivery"] == str(deliveries[0].pk)
    body = event.json
    assert body["event"] == "organization.budget_threshold"
    assert body["organization"] == {"id": org.pk, "slug": org.slug, "name": org.name}
    assert body["budget"] == {
        "amount": "10",
        "period": "month",
        "period_start": "2026-05-01T00:00:00+00:00",
        "period_end": "2026-06-01T00:00:00+00:00",
    }
    assert body["spent"] == "5.5" and body["threshold"] == 50
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.DELIVERED
    assert delivery.attempts == 1 and delivery.response_code == 200
    assert delivery.delivered_at is not None and delivery.last_error == ""


def test_each_threshold_fires_once_per_period(org, receiver, deliver_now):
    make_webhook(org, f"{receiver.url}/hook", thresholds=[50, 80, 100])
    deliver_now(lambda: crossed(org, [50]))
    # Another worker, or a retried settle, reports the same crossing: nothing more.
    assert deliver_now(lambda: crossed(org, [50])) == []
    deliver_now(lambda: crossed(org, [80, 100]))
    # Thresholds no webhook asked for send nothing.
    assert deliver_now(lambda: crossed(org, [90])) == []
    # The next period starts afresh.
    deliver_now(lambda: crossed(org, [50], period_start=JUNE))
    received = receiver.wait_for(4)
    assert sorted(
        (r.json["budget"]["period_start"][:7], r.json["threshold"]) for r in received
    ) == [
        ("2026-05", 50),
        ("2026-05", 80),
        ("2026-05", 100),
        ("2026-06", 50),
    ]
    assert WebhookDelivery.objects.count() == 4


def test_key_budget_events_name_the_key_and_go_only_to_subscribers(org, receiver, deliver_now):
    make_webhook(org, f"{receiver.url}/keys", events=[WebhookEvent.CLIENT_KEY_BUDGET])
    make_webhook(org, f"{receiver.url}/orgs", events=[WebhookEvent.ORGANIZATION_BUDGET])
    key = make_client_key(org, name="batch", budget_amount=Decimal("10"))
    deliver_now(lambda: crossed(org, [100], subject=CLIENT_KEY, subject_id=key.pk))
    [event] = receiver.wait_for(1)
    assert event.path == "/keys"
    assert event.json["client_key"] == {"id": key.pk, "name": "batch", "prefix": key.prefix}
    assert event.json["event"] == "client_key.budget_threshold"


def test_a_receiver_error_is_retried_until_it_succeeds(org, receiver, deliver_now, settings):
    settings.WEBHOOK_MAX_ATTEMPTS = 4
    created = make_webhook(org, f"{receiver.url}/flaky")
    receiver.answer(500, 503)
    deliver_now(lambda: crossed(org, [50]))
    received = receiver.wait_for(3)
    # Every attempt carries the same signed body.
    assert len({r.body for r in received}) == 1
    assert all(r.signed_with(created.secret) for r in received)
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.DELIVERED
    assert delivery.attempts == 3 and delivery.response_code == 200


def test_a_delivery_gives_up_after_its_attempts(org, receiver, celery_eager, settings):
    from modelhub.tasks import deliver_webhook

    settings.WEBHOOK_MAX_ATTEMPTS = attempts = 3
    make_webhook(org, f"{receiver.url}/down")
    [delivery] = crossed(org, [50])
    receiver.answer(*[502] * 10)
    deliver_webhook.delay(delivery.pk)
    assert len(receiver.wait_for(attempts)) == attempts
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.attempts == attempts and delivery.response_code == 502
    assert "502" in delivery.last_error
    # Run again (a redelivered task): it was given up, nothing is sent.
    deliver_webhook.delay(delivery.pk)
    assert len(receiver.received) == attempts


def test_a_client_error_is_not_retried(org, receiver, deliver_now):
    make_webhook(org, f"{receiver.url}/gone")
    receiver.answer(410)
    deliver_now(lambda: crossed(org, [50]))
    receiver.wait_for(1)
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.FAILED and delivery.attempts == 1
    assert delivery.response_code == 410


def test_network_errors_are_retried_and_recorded_without_the_url(org, deliver_now, settings):
    settings.WEBHOOK_MAX_ATTEMPTS = 2
    settings.WEBHOOK_TIMEOUT_SECONDS = 1
    # Nothing listens on port 9 of loopback: the connection is refused. The URL's token
    # must not end up in the recorded error.
    make_webhook(org, "http://127.0.0.1:9/hook/tok_abcdefghijklmnopqrstuvwx")
    deliver_now(lambda: crossed(org, [50]))
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.attempts == 2 and delivery.response_code is None
    assert delivery.last_error
    assert "tok_abcdefghijklmnopqrstuvwx" not in delivery.last_error


def test_the_policy_is_checked_again_at_delivery(org, receiver, deliver_now, settings):
    # Accepted while private addresses were allowed (or while "localhost" resolved to a
    # public address); refused at delivery once they are not: nothing reaches the host.
    port = receiver.url.rsplit(":", 1)[1]
    make_webhook(org, f"http://localhost:{port}/rebound")
    make_webhook(org, f"{receiver.url}/literal")
    settings.GATEWAY_ALLOW_PRIVATE_UPSTREAMS = False
    deliver_now(lambda: crossed(org, [50]))
    assert receiver.received == []
    deliveries = list(WebhookDelivery.objects.all())
    assert len(deliveries) == 2
    for delivery in deliveries:
        assert delivery.status == DeliveryStatus.FAILED and delivery.attempts == 1
        assert "not allowed" in delivery.last_error or "refuses" in delivery.last_error


def test_a_credential_turning_unhealthy_is_one_event(org, receiver, deliver_now, settings):
    settings.CREDENTIAL_FAILURE_THRESHOLD = 2
    created = make_webhook(
        org, f"{receiver.url}/health", events=[WebhookEvent.CREDENTIAL_UNHEALTHY]
    )
    credential = make_credential(org, make_provider(org, slug="p1"), name="main")
    for _ in range(4):
        deliver_now(
            lambda: services.provider_credential_record_failure(
                credential=credential, error="server_error: 503 from sk-secret-value-123456"
            )
        )
    [event] = receiver.wait_for(1)
    assert event.signed_with(created.secret)
    body = event.json
    assert body["event"] == "credential.unhealthy"
    assert body["credential"]["id"] == credential.pk
    assert body["credential"]["provider"] == "p1"
    assert WebhookDelivery.objects.count() == 1
