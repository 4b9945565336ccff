"""JWT endpoints, and a valid token required everywhere under /api/modelhub/."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from tests.support.api import API, make_user


@pytest.fixture
def user(org, member_factory):
    return member_factory(org, "member", user=make_user("ada"))


def post(url, data):
    return APIClient().post(url, data, format="json")


def test_obtain_refresh_verify(user):
    tokens = post("/api/auth/token/", {"username": "ada", "password": "pw-ada"}).json()
    assert set(tokens) == {"access", "refresh"}
    assert post("/api/auth/token/verify/", {"token": tokens["access"]}).status_code == 200

    refreshed = post("/api/auth/token/refresh/", {"refresh": tokens["refresh"]})
    assert refreshed.status_code == 200
    access = refreshed.json()["access"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    assert client.get(f"{API}/providers/").status_code == 200


@pytest.mark.parametrize(
    "data",
    [
        {"username": "ada", "password": "wrong"},
        {"username": "nobody", "password": "pw-ada"},
    ],
)
def test_obtain_with_bad_credentials_is_401(data, user):
    response = post("/api/auth/token/", data)
    assert response.status_code == 401
    assert "access" not in response.json()


@pytest.mark.parametrize("data", [{}, {"username": "ada"}, {"password": "x"}])
def test_obtain_with_missing_fields_is_400(data, user):
    assert post("/api/auth/token/", data).status_code == 400


def test_inactive_users_get_no_token(user):
    user.is_active = False
    user.save()
    assert post("/api/auth/token/", {"username": "ada", "password": "pw-ada"}).status_code == 401


@pytest.mark.parametrize("token", ["garbage", "", "a.b.c"])
def test_verify_and_refresh_reject_bad_tokens(token, user):
    assert post("/api/auth/token/verify/", {"token": token}).status_code in (400, 401)
    assert post("/api/auth/token/refresh/", {"refresh": token}).status_code in (400, 401)


def test_an_access_token_is_not_a_refresh_token(user):
    access = str(AccessToken.for_user(user))
    assert post("/api/auth/token/refresh/", {"refresh": access}).status_code == 401


def expired_token(user) -> str:
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=-timedelta(seconds=1))
    return str(token)


ENDPOINTS = [
    ("get", "organizations/"),
    ("post", "organizations/"),
    ("get", "organizations/acme/"),
    ("patch", "organizations/acme/"),
    ("delete", "organizations/acme/"),
    ("get", "organizations/acme/members/"),
    ("post", "organizations/acme/members/"),
    ("get", "providers/"),
    ("post", "providers/"),
    ("get", "providers/1/"),
    ("get", "models/"),
    ("post", "models/1/estimate_cost/"),
    ("get", "api-keys/"),
    ("get", "api-keys/usage_summary/"),
    ("get", "api-keys/health_status/"),
    ("get", "api-keys/1/quota_status/"),
    ("get", "client-keys/"),
    ("post", "client-keys/"),
    ("post", "client-keys/1/revoke/"),
    ("get", "routing-rules/"),
    ("post", "routing-rules/evaluate/"),
    ("delete", "routing-rules/1/"),
    ("get", "metrics/"),
    ("post", "metrics/"),
    ("get", "metrics/cost_summary/"),
    ("get", "metrics/optimization_stats/"),
    ("get", "metrics/dashboard_summary/"),
]
BAD_AUTH = {
    "none": None,
    "garbage": "Bearer not-a-jwt",
    "wrong-scheme": "Token abc",
    "expired": "expired",
    "refresh-token": "refresh",
    "tampered": "tampered",
}


@pytest.mark.parametrize("auth", list(BAD_AUTH), ids=str)
@pytest.mark.parametrize(("method", "path"), ENDPOINTS, ids=lambda v: str(v))
def test_everything_needs_a_valid_token(method, path, auth, user):
    client = APIClient()
    header = BAD_AUTH[auth]
    if header == "expired":
        header = f"Bearer {expired_token(user)}"
    elif header == "refresh":
        header = f"Bearer {RefreshToken.for_user(user)}"
    elif header == "tampered":
        header = f"Bearer {AccessToken.for_user(user)}x"
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)
    response = getattr(client, method)(f"{API}/{path}", {}, format="json")
    assert response.status_code == 401
    assert "detail" in response.json()
