"""The dashboard's range switch and staff organization switcher, in headless Chromium."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from modelhub import services
from modelhub.models import Model, Organization, Provider, User
from tests.support.browser import ARTIFACTS, BROWSER_GROUP, launched_chromium

pytestmark = BROWSER_GROUP


@pytest.fixture
def seeded(transactional_db):
    staff = User.objects.create_user("operator", password="e2e-password-123", is_staff=True)
    research = services.organization_create(name="Research Lab", slug="research", owner=staff)
    sales = Organization.objects.create(name="Sales", slug="sales")
    groq = Provider.objects.create(name="Groq", slug="groq")
    llama = Model.objects.create(
        provider=groq, provider_model_id="llama-3.1-8b-instant", model_name="Llama 3.1 8B"
    )
    # research: $1 today and $2 twenty days ago; sales: $4 today.
    for organization, cost, days_ago in ((research, "1", 0), (research, "2", 20), (sales, "4", 0)):
        services.metric_create(
            organization=organization,
            provider=groq,
            model=llama,
            requested_model="groq/llama-3.1-8b-instant",
            served_model="groq/llama-3.1-8b-instant",
            input_tokens=10,
            output_tokens=5,
            cost=Decimal(cost),
            latency_ms=100,
            created_at=timezone.now() - timedelta(days=days_ago, minutes=1),
        )


@pytest.fixture
def browser(seeded):
    # Started after the data is in (Playwright's sync API runs an event loop here).
    with launched_chromium() as browser:
        yield browser


def test_range_switch_and_staff_switcher(live_server, browser):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(15_000)
    page.goto(f"{live_server.url}/admin/login/?next=/dashboard/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "e2e-password-123")
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/dashboard/")

    # The staff member's own organization first, over the default 30 days.
    expect(page.locator("#view-name")).to_have_text("Research Lab")
    expect(page.locator("#range-label")).to_have_text("last 30 days")
    expect(page.locator("#total-cost")).to_have_text("$3.0000")

    page.click("a.range-preset[data-range='7d']")
    page.wait_for_url("**range=7d*")
    expect(page.locator("#range-label")).to_have_text("last 7 days")
    expect(page.locator("#total-cost")).to_have_text("$1.0000")

    # The switcher submits on change and keeps the range.
    page.select_option("#org", "*")
    page.wait_for_url("**org=*&range=7d")
    expect(page.locator("#view-name")).to_have_text("All organizations")
    expect(page.locator("#view-scope")).to_contain_text("every organization")
    expect(page.locator("#range-label")).to_have_text("last 7 days")
    expect(page.locator("#total-cost")).to_have_text("$5.0000")
    page.screenshot(path=str(ARTIFACTS / "dashboard-all-organizations.png"), full_page=True)

    page.select_option("#org", "sales")
    page.wait_for_url("**org=sales*")
    expect(page.locator("#view-name")).to_have_text("Sales")
    expect(page.locator("#total-cost")).to_have_text("$4.0000")

    # A custom range, then one the page refuses with a message instead of an error.
    today = timezone.now().date()
    page.select_option("#org", "research")
    page.wait_for_url("**org=research*")
    page.fill("#range-from", f"{today - timedelta(days=25):%Y-%m-%d}")
    page.fill("#range-to", f"{today - timedelta(days=10):%Y-%m-%d}")
    page.click("#range-form button[type=submit]")
    page.wait_for_url("**from=*")
    expect(page.locator("#total-cost")).to_have_text("$2.0000")
    assert page.locator("#range-notice").count() == 0

    page.fill("#range-from", f"{today:%Y-%m-%d}")
    page.fill("#range-to", f"{today - timedelta(days=3):%Y-%m-%d}")
    page.click("#range-form button[type=submit]")
    page.wait_for_selector("#range-notice")
    expect(page.locator("#range-notice")).to_contain_text("start date is after the end date")
    expect(page.locator("#range-label")).to_have_text("last 30 days")
    page.close()
