"""Django admin as staff: issuing client keys, and the filters and spend of the key and
request-log pages."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.messages import get_messages
from django.utils import timezone

from modelhub import services
from modelhub.crypto import hash_client_key
from modelhub.models import ClientKey, Model, Provider, User

KEY = re.compile(r"The new key is (\S+) - copy it now, it is not shown again\.")


@pytest.fixture
def staff_client(client, db):
    staff = User.objects.create_superuser("root", "root@example.com", "pw-root-123")
    client.force_login(staff)
    client.user = staff
    return client


def issue(staff_client, org, **fields):
    data = {
        "organization": org.pk,
        "name": "reporting",
        "allowed_models": "[]",
        "rate_limit_rpm": "",
        "rate_limit_tpm": "",
        "budget_amount": "",
        "budget_period": "month",
        "expires_at_0": "",
        "expires_at_1": "",
        **fields,
    }
    return staff_client.post("/admin/modelhub/clientkey/add/", data, follow=True)


def test_staff_issue_a_key_that_is_shown_once(staff_client, org):
    form = staff_client.get("/admin/modelhub/clientkey/add/")
    assert form.status_code == 200
    assert 'name="key_hash"' not in form.content.decode()

    response = issue(staff_client, org, budget_amount="12.50", rate_limit_rpm="60")
    assert response.status_code == 200
    shown = [str(m) for m in response.context["messages"]]
    raw = KEY.search(" ".join(shown)).group(1)
    html = response.content.decode()
    assert raw in html  # on the page after the save

    key = ClientKey.objects.for_org(org).get()
    assert key.key_hash == hash_client_key(raw)
    assert raw.startswith(key.prefix) and raw != key.prefix
    assert (key.name, key.budget_amount, key.rate_limit_rpm) == (
        "reporting",
        Decimal("12.50"),
        60,
    )
    assert key.created_by == staff_client.user
    # Nothing stores the raw key: not the row, and no page shows it again.
    assert raw not in str(ClientKey.objects.filter(pk=key.pk).values().get())
    for url in (
        "/admin/modelhub/clientkey/",
        f"/admin/modelhub/clientkey/{key.pk}/change/",
    ):
        page = staff_client.get(url)
        assert raw not in page.content.decode()
        assert not list(get_messages(page.wsgi_request))


def test_issued_key_works_with_the_gateway_lookup(staff_client, org):
    from gateway.auth import _load

    raw = KEY.search(" ".join(str(m) for m in issue(staff_client, org).context["messages"])).group(
        1
    )
    # What the gateway finds for the key an application would send.
    assert _load(hash_client_key(raw)).organization.pk == org.pk


def test_issue_form_refuses_bad_input_with_a_message(staff_client, org):
    past = timezone.now() - timedelta(days=1)
    response = issue(
        staff_client,
        org,
        budget_amount="-1",
        expires_at_0=f"{past:%Y-%m-%d}",
        expires_at_1=f"{past:%H:%M:%S}",
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "A new key must expire in the future." in errors["expires_at"]
    assert "budget_amount" in errors
    assert not ClientKey.objects.for_org(org).exists()
    assert not KEY.search(response.content.decode())


@pytest.fixture
def traffic(org, other_org):
    groq = Provider.objects.create(name="Groq", slug="groq")
    openrouter = Provider.objects.create(name="OpenRouter", slug="openrouter")
    llama = Model.objects.create(provider=groq, provider_model_id="llama", model_name="Llama")
    gpt = Model.objects.create(provider=openrouter, provider_model_id="gpt", model_name="GPT")
    ours = services.client_key_create(organization=org, name="ours-key").client_key
    theirs = services.client_key_create(organization=other_org, name="their-key").client_key

    def metric(organization, model, key, cost, success=True):
        return services.metric_create(
            organization=organization,
            provider=model.provider,
            model=model,
            client_key=key,
            requested_model=model.catalog_id,
            served_model=model.catalog_id,
            input_tokens=10,
            output_tokens=5,
            cost=Decimal(cost),
            latency_ms=100,
            success=success,
            status_code=200 if success else 502,
            request_id=f"req-{organization.slug}-{model.provider.slug}-{cost}-{success}",
        )

    metric(org, llama, ours, "0.25")
    metric(org, llama, ours, "0.5")
    metric(org, gpt, ours, "0", success=False)
    metric(other_org, gpt, theirs, "3")
    return {"ours": ours, "theirs": theirs, "groq": groq, "openrouter": openrouter}


def request_ids(response) -> set[str]:
    return {row.request_id for row in response.context["cl"].result_list}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=success", {"req-acme-groq-0.25-True", "req-acme-groq-0.5-True", "req-globex-openrouter-3-True"}),
        ("status=error", {"req-acme-openrouter-0-False"}),
        ("organization__id__exact={org}", {"req-acme-groq-0.25-True", "req-acme-groq-0.5-True", "req-acme-openrouter-0-False"}),
        ("provider__id__exact={openrouter}", {"req-acme-openrouter-0-False", "req-globex-openrouter-3-True"}),
        ("client_key__id__exact={theirs}", {"req-globex-openrouter-3-True"}),
        ("status=success&provider__id__exact={openrouter}", {"req-globex-openrouter-3-True"}),
    ],
)  # fmt: skip
def test_metric_admin_filters(staff_client, org, traffic, query, expected):
    query = query.format(
        org=org.pk, openrouter=traffic["openrouter"].pk, theirs=traffic["theirs"].pk
    )
    response = staff_client.get(f"/admin/modelhub/modelmetric/?{query}")
    assert response.status_code == 200
    assert request_ids(response) == expected
    html = response.content.decode()
    for title in ("By status", "By organization", "By provider", "By client key"):
        assert title in html


def test_client_key_admin_filters_and_spend(staff_client, org, other_org, traffic):
    revoked = services.client_key_create(organization=org, name="old-key").client_key
    services.client_key_revoke(client_key=revoked)
    response = staff_client.get(f"/admin/modelhub/clientkey/?organization__id__exact={org.pk}")
    assert {key.name for key in response.context["cl"].result_list} == {"ours-key", "old-key"}
    html = response.content.decode()
    assert "Spend (USD)" in html
    assert "0.7500" in html  # 0.25 + 0.5 from the rollups of the key's requests

    active = staff_client.get("/admin/modelhub/clientkey/?status=active")
    assert {key.name for key in active.context["cl"].result_list} == {"ours-key", "their-key"}
    gone = staff_client.get("/admin/modelhub/clientkey/?status=revoked")
    assert [key.name for key in gone.context["cl"].result_list] == ["old-key"]
    by_spend = staff_client.get("/admin/modelhub/clientkey/?o=6")  # ordered by spend
    assert by_spend.status_code == 200
    assert [key.name for key in by_spend.context["cl"].result_list][-1] == "their-key"
