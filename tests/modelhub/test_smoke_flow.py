"""An operator's first session, end to end: token, organization, provider, key, rule, route."""

from decimal import Decimal

from modelhub.models import Model, Provider, ProviderCredential


def test_first_session(db, client):
    from modelhub.models import User

    User.objects.create_user(username="ada", password="s3cret-pass")
    tokens = client.post(
        "/api/auth/token/",
        {"username": "ada", "password": "s3cret-pass"},
        content_type="application/json",
    ).json()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {tokens['access']}"}
    assert (
        client.post(
            "/api/auth/token/verify/", {"token": tokens["access"]}, content_type="application/json"
        ).status_code
        == 200
    )

    # No organization yet: a 400 that says what to do.
    response = client.get("/api/modelhub/providers/", **auth)
    assert response.status_code == 400
    assert "organization" in response.json()["detail"].lower()

    org = client.post(
        "/api/modelhub/organizations/",
        {"name": "Research Lab"},
        content_type="application/json",
        **auth,
    ).json()
    assert org["slug"] == "research-lab" and org["role"] == "owner"

    groq = Provider.objects.create(
        name="Groq", slug="groq", base_url="https://api.groq.com/openai/v1"
    )
    llama = Model.objects.create(
        provider=groq,
        provider_model_id="llama-3.1-8b-instant",
        model_name="Llama 3.1 8B Instant",
        pricing_prompt=Decimal("0.00000005"),
        pricing_completion=Decimal("0.00000008"),
        context_length=131072,
    )
    response = client.post(
        "/api/modelhub/api-keys/",
        {"provider": groq.pk, "name": "main", "secret": "gsk_live_abcdefghijklmnop9876"},
        content_type="application/json",
        **auth,
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert "secret" not in body and body["secret_hint"] == "gsk...9876"
    stored = ProviderCredential.objects.get()
    assert "abcdefghijklmnop" not in stored.encrypted_secret

    response = client.post(
        "/api/modelhub/routing-rules/evaluate/",
        {"model": "groq/llama-3.1-8b-instant", "estimated_input_tokens": 1000},
        content_type="application/json",
        **auth,
    )
    assert response.status_code == 200, response.json()
    plan = response.json()
    assert plan["matched_rule"] is None
    assert [c["model"] for c in plan["candidates"]] == [llama.pk]
    assert plan["candidates"][0]["credential"] == stored.pk

    response = client.post(
        f"/api/modelhub/models/{llama.pk}/estimate_cost/",
        {"input_tokens": 1000, "output_tokens": 500},
        content_type="application/json",
        **auth,
    )
    assert response.status_code == 200
    # 1000 * 0.00000005 + 500 * 0.00000008 = 0.00005 + 0.00004
    assert Decimal(response.json()["estimated_cost"]) == Decimal("0.00009")
