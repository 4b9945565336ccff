"""Password guessing is throttled per account and per client address (django-axes)."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from tests.support.api import make_user

TOKEN = "/api/auth/token/"
LIMIT = 3
COOL_OFF_SECONDS = 15 * 60


@pytest.fixture(autouse=True)
def throttle(settings):
    settings.AXES_FAILURE_LIMIT = LIMIT
    return settings


@pytest.fixture
def users(db):
    return {name: make_user(name) for name in ("ada", "bob", "carol", "eve")}


def token(username: str, password: str, address: str = "10.0.0.1", **headers):
    return APIClient().post(
        TOKEN,
        {"username": username, "password": password},
        format="json",
        REMOTE_ADDR=address,
        **headers,
    )


def assert_locked_out(response) -> None:
    assert response.status_code == 429
    retry_after = int(response.headers["Retry-After"])
    assert 0 < retry_after <= COOL_OFF_SECONDS
    body = response.json()
    assert "Too many failed login attempts" in body["detail"]
    assert body["code"] == "login_locked_out"
    assert body["retry_after"] == retry_after


def test_failed_token_requests_lock_the_account_out(users):
    for _ in range(LIMIT - 1):
        assert token("ada", "wrong").status_code == 401
    # The failure that reaches the limit is already answered with the lockout.
    assert_locked_out(token("ada", "wrong"))
    assert_locked_out(token("ada", "wrong"))


def test_the_right_password_is_refused_while_locked(users):
    for _ in range(LIMIT):
        token("ada", "wrong")
    response = token("ada", "pw-ada")
    assert_locked_out(response)
    assert "access" not in response.json()


def test_the_account_is_locked_from_every_address(users):
    for number in range(LIMIT):
        token("ada", "wrong", address=f"10.0.1.{number}")
    assert_locked_out(token("ada", "pw-ada", address="10.0.2.1"))
    # Other accounts at those addresses are unaffected: one failure each.
    assert token("bob", "pw-bob", address="10.0.1.0").status_code == 200


def test_an_address_guessing_many_accounts_is_locked_out(users):
    for name in ("ada", "bob", "carol"):
        assert token(name, "wrong").status_code in (401, 429)
    # A fourth account, with its right password, from the same address.
    assert_locked_out(token("eve", "pw-eve"))
    # The same account from another address is fine: it has no failures of its own.
    assert token("eve", "pw-eve", address="10.9.9.9").status_code == 200


def test_success_resets_the_accounts_count(users):
    for _ in range(LIMIT - 1):
        assert token("ada", "wrong").status_code == 401
    assert token("ada", "pw-ada").status_code == 200
    for _ in range(LIMIT - 1):
        assert token("ada", "wrong").status_code == 401
    assert token("ada", "pw-ada").status_code == 200


def test_success_does_not_forgive_the_addresss_other_failures(users):
    """One valid account must not let its owner wipe the count of guesses at others."""
    assert token("bob", "wrong").status_code == 401
    assert token("carol", "wrong").status_code == 401
    assert token("eve", "pw-eve").status_code == 200
    assert token("ada", "wrong").status_code == 429
    assert_locked_out(token("eve", "pw-eve"))


def test_forwarded_for_is_ignored_without_a_configured_proxy(users):
    """A client cannot escape the per-address count by inventing X-Forwarded-For."""
    for number, name in enumerate(("ada", "bob", "carol")):
        token(name, "wrong", HTTP_X_FORWARDED_FOR=f"203.0.113.{number}")
    assert_locked_out(token("eve", "pw-eve", HTTP_X_FORWARDED_FOR="203.0.113.99"))


def test_behind_a_configured_proxy_the_forwarded_address_counts(users, throttle):
    throttle.AXES_IPWARE_META_PRECEDENCE_ORDER = ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"]
    throttle.AXES_IPWARE_PROXY_COUNT = 1
    for number, name in enumerate(("ada", "bob", "carol")):
        token(
            name, "wrong", address="10.0.0.2", HTTP_X_FORWARDED_FOR=f"203.0.113.{number}, 10.0.0.2"
        )
    # Every client came through the same proxy, yet each has its own count.
    assert (
        token(
            "eve", "pw-eve", address="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.99, 10.0.0.2"
        ).status_code
        == 200
    )
    for _ in range(LIMIT):
        token("eve", "wrong", address="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.7, 10.0.0.2")
    assert_locked_out(
        token("ada", "pw-ada", address="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.7, 10.0.0.2")
    )


# --- The admin login -----------------------------------------------------------------------


@pytest.fixture
def operator(db):
    return make_user("operator", is_staff=True, is_superuser=True)


def admin_login(username: str, password: str, address: str = "10.0.0.1"):
    return Client(REMOTE_ADDR=address).post(
        "/admin/login/?next=/admin/", {"username": username, "password": password}
    )


def test_admin_login_is_locked_out_with_a_clear_page(operator):
    for _ in range(LIMIT - 1):
        response = admin_login("operator", "wrong")
        assert response.status_code == 200  # the form again, with its error
    response = admin_login("operator", "wrong")
    assert response.status_code == 429
    assert 0 < int(response.headers["Retry-After"]) <= COOL_OFF_SECONDS
    page = response.content.decode()
    assert "Too many failed login attempts" in page
    assert "Try again in 15 minutes" in page
    # The right password does not get in either.
    response = admin_login("operator", "pw-operator")
    assert response.status_code == 429
    assert "_auth_user_id" not in response.client.session


def test_admin_login_works_below_the_limit(operator):
    admin_login("operator", "wrong")
    response = admin_login("operator", "pw-operator")
    assert response.status_code == 302
    assert response.url == "/admin/"
