"""End to end in headless Chromium: log in, read the dashboard, filter the catalog.

Uses Debian's ``chromium`` driven by Playwright against Django's live server. Screenshots
land in ``artifacts/screenshots/`` for people to look at after a run.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from modelhub import services
from modelhub.models import Model, Provider, User
from tests.support.browser import (
    ARTIFACTS,
    BROWSER_GROUP,
    launched_chromium,
)

pytestmark = BROWSER_GROUP


@pytest.fixture
def browser(seeded):
    # Started after the data is in: Playwright's sync API runs an event loop in this
    # thread, and Django refuses ORM calls from a thread with a running loop.
    with launched_chromium() as browser:
        yield browser


@pytest.fixture
def seeded(transactional_db):
    admin = User.objects.create_superuser("operator", "ops@example.com", "e2e-password-123")
    org = services.organization_create(name="Research Lab", slug="research", owner=admin)
    groq = Provider.objects.create(name="Groq", slug="groq", site_url="https://groq.com")
    openrouter = Provider.objects.create(name="OpenRouter", slug="openrouter")
    llama = Model.objects.create(
        provider=groq,
        provider_model_id="llama-3.1-8b-instant",
        model_name="Llama 3.1 8B Instant",
        context_length=131072,
        pricing_prompt=Decimal("0.00000005"),
        pricing_completion=Decimal("0.00000008"),
        hugging_face_id="meta-llama/Llama-3.1-8B-Instruct",
        supports_tools=True,
    )
    Model.objects.create(
        provider=openrouter,
        provider_model_id="meta-llama/llama-3.1-8b-instruct",
        model_name="Meta: Llama 3.1 8B Instruct",
        context_length=131072,
        pricing_prompt=Decimal("0.00000002"),
        pricing_completion=Decimal("0.00000005"),
        hugging_face_id="meta-llama/Llama-3.1-8B-Instruct",
        supports_tools=True,
    )
    Model.objects.create(
        provider=openrouter,
        provider_model_id="openai/gpt-4o",
        model_name="OpenAI: GPT-4o",
        modality="text+image->text",
        context_length=128000,
        pricing_prompt=Decimal("0.0000025"),
        pricing_completion=Decimal("0.00001"),
        supports_vision=True,
        supports_tools=True,
    )
    credential = services.provider_credential_create(
        organization=org,
        provider=groq,
        secret="gsk_e2e_secret_value_0001",
        name="main",
        quota_requests=100,
    )
    key = services.client_key_create(organization=org, name="web-app").client_key
    for latency in (120, 240, 480):
        services.metric_create(
            organization=org,
            provider=groq,
            model=llama,
            credential=credential,
            client_key=key,
            requested_model="groq/llama-3.1-8b-instant",
            served_model="groq/llama-3.1-8b-instant",
            input_tokens=1000,
            output_tokens=500,
            cost=Decimal("0.25"),
            latency_ms=latency,
            created_at=timezone.now(),
        )
    return {"admin": admin, "org": org}


def test_login_dashboard_and_catalog_filter(live_server, seeded, browser):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(15_000)

    page.goto(f"{live_server.url}/admin/login/?next=/dashboard/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "e2e-password-123")
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/dashboard/")
    assert page.text_content("#total-cost").strip() == "$0.7500"
    assert page.text_content("#total-requests").strip() == "3"
    assert "groq" in page.text_content("#provider-latency")
    assert "gsk...0001" in page.text_content("#credentials")
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

    phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    phone.context.add_cookies(page.context.cookies())
    phone.goto(f"{live_server.url}/dashboard/")
    assert phone.text_content("#total-cost").strip() == "$0.7500"
    phone.screenshot(path=str(ARTIFACTS / "dashboard-phone.png"), full_page=True)
    phone.close()

    page.goto(f"{live_server.url}/catalog/browse/")
    assert page.locator("#catalog-table tbody tr").count() == 3
    page.fill("input[name=q]", "llama")
    page.select_option("select[name=sort]", "price")
    page.click("#catalog-filters button[type=submit]")
    page.wait_for_url("**/catalog/browse/?*q=llama*")
    rows = page.locator("#catalog-table tbody tr")
    assert rows.count() == 2
    # cheapest first: OpenRouter's $0.02/1M before Groq's $0.05/1M
    assert rows.nth(0).locator(".price-in").text_content().strip() == "$0.02"
    assert rows.nth(1).locator(".price-in").text_content().strip() == "$0.05"
    page.screenshot(path=str(ARTIFACTS / "catalog-filtered.png"), full_page=True)

    page.select_option("select[name=capability]", "vision")
    page.fill("input[name=q]", "")
    page.click("#catalog-filters button[type=submit]")
    page.wait_for_url("**capability=vision*")
    assert page.locator("#catalog-table tbody tr").count() == 1
    assert "GPT-4o" in page.text_content("#catalog-table")

    page.goto(f"{live_server.url}/catalog/browse/?q=llama&sort=price")
    page.click("text=Llama 3.1 8B Instant")
    page.wait_for_selector("#price-comparison")
    comparison = page.locator("#price-comparison tbody tr")
    assert comparison.count() == 2
    assert "OpenRouter" in comparison.nth(0).text_content()
    page.screenshot(path=str(ARTIFACTS / "catalog-model.png"), full_page=True)
    page.close()
