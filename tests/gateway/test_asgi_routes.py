"""The lean handler's routes: paths without parameters are resolved once, at start-up,
and answer exactly as Django's resolver and response path would."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from django.http import HttpResponse
from django.urls import get_resolver
from django.urls.resolvers import RoutePattern

from gateway import proxy
from gateway.asgi import GATEWAY_URLCONF, GatewayASGIHandler, exact_routes

pytestmark = pytest.mark.usefixtures("catalog")

MODEL = "alpha/llama-3.1-8b"


def _parameterless_paths() -> list[str]:
    return [
        "/" + str(entry.pattern)
        for entry in get_resolver(GATEWAY_URLCONF).url_patterns
        if isinstance(entry.pattern, RoutePattern) and not entry.pattern.converters
    ]


def test_every_route_without_parameters_is_resolved_once_as_django_would():
    routes = exact_routes(GATEWAY_URLCONF)
    paths = _parameterless_paths()
    assert "/v1/chat/completions" in paths and "/metrics" in paths
    assert sorted(routes) == sorted(paths)
    for path, route in routes.items():
        match = get_resolver(GATEWAY_URLCONF).resolve(path)
        assert (route.match.func, route.match.url_name) == (match.func, match.url_name)
        # The view is called without csrf_exempt's wrapper (the lean handler runs no
        # CSRF middleware), inside the wrapper that makes an exception a response.
        called = route.view.__wrapped__
        if getattr(match.func, "csrf_exempt", False):
            assert called is match.func.__wrapped__
        else:
            assert called is match.func
        assert called.__code__.co_qualname == match.func.__name__
    assert any(getattr(route.match.func, "csrf_exempt", False) for route in routes.values())


def test_only_csrf_exempts_own_wrapper_is_taken_off():
    from functools import wraps

    from django.views.decorators.csrf import csrf_exempt

    from gateway.asgi import without_csrf_wrapper

    async def view(request):
        return HttpResponse()

    def other(function):
        @wraps(function)
        async def wrapper(request):
            return await function(request)

        wrapper.csrf_exempt = True
        return wrapper

    assert without_csrf_wrapper(csrf_exempt(view)) is view
    assert without_csrf_wrapper(view) is view
    marked = other(view)
    assert without_csrf_wrapper(marked) is marked


def test_a_path_with_parameters_or_unknown_still_goes_through_the_resolver(gateway, make_key):
    key = make_key()
    headers = {"Authorization": f"Bearer {key.raw_key}"}
    detail = httpx.get(f"{gateway.url}/v1/models/{MODEL}", headers=headers, timeout=10)
    assert detail.status_code == 200 and detail.json()["id"] == MODEL
    unknown = httpx.get(f"{gateway.url}/v1/no/such/thing", headers=headers, timeout=10)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "unknown_url"


def test_an_exception_in_a_view_is_djangos_500_and_the_next_request_is_served(
    gateway, make_key, monkeypatch, caplog
):
    key = make_key()

    async def broken(*args, **kwargs):
        raise RuntimeError("a bug in the view")

    monkeypatch.setattr(proxy, "handle", broken)
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"Authorization": f"Bearer {key.raw_key}"}
    with caplog.at_level(logging.ERROR, logger="django.request"):
        failed = httpx.post(
            f"{gateway.url}/v1/chat/completions", json=body, headers=headers, timeout=10
        )
    assert failed.status_code == 500
    assert failed.headers["x-request-id"]
    assert any(
        record.exc_info and "a bug in the view" in str(record.exc_info[1])
        for record in caplog.records
    )
    monkeypatch.undo()
    served = httpx.post(
        f"{gateway.url}/v1/chat/completions", json=body, headers=headers, timeout=10
    )
    assert served.status_code == 200, served.text[:300]


def test_an_error_status_of_an_exact_route_is_logged_as_django_logs_it(gateway, caplog):
    with caplog.at_level(logging.WARNING, logger="django.request"):
        refused = httpx.post(f"{gateway.url}/v1/chat/completions", json={}, timeout=10)
    assert refused.status_code == 401
    assert any(
        record.name == "django.request"
        and record.levelno == logging.WARNING
        and record.getMessage() == "Unauthorized: /v1/chat/completions"
        for record in caplog.records
    )


def test_send_response_writes_headers_cookies_and_the_body_in_one_message():
    response = HttpResponse(b"x" * 5_000_000, content_type="application/json")
    response["X-Request-Id"] = "abc"
    response.set_cookie("name", "value")
    sent = []

    async def send(message):
        sent.append(message)

    asyncio.run(GatewayASGIHandler().send_response(response, send))
    start, body = sent
    assert start["status"] == 200
    headers = dict(start["headers"])
    assert headers[b"Content-Type"] == b"application/json"
    assert headers[b"X-Request-Id"] == b"abc"
    assert headers[b"Set-Cookie"].startswith(b"name=value")
    assert headers[b"Content-Length"] == b"5000000"
    assert body == {"type": "http.response.body", "body": b"x" * 5_000_000}


def test_answers_are_framed_by_their_length_and_streams_are_not(gateway, make_key):
    key = make_key()
    headers = {"Authorization": f"Bearer {key.raw_key}"}
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    for response in (
        httpx.get(f"{gateway.url}/v1/models", headers=headers, timeout=10),
        httpx.get(f"{gateway.url}/v1/models/{MODEL}", headers=headers, timeout=10),
        httpx.post(f"{gateway.url}/v1/chat/completions", json=body, headers=headers, timeout=10),
        httpx.post(f"{gateway.url}/v1/chat/completions", json={}, timeout=10),
    ):
        assert response.headers["content-length"] == str(len(response.content))
        assert "transfer-encoding" not in response.headers
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/chat/completions",
        json={**body, "stream": True},
        headers=headers,
        timeout=10,
    ) as streamed:
        assert streamed.status_code == 200
        assert "content-length" not in streamed.headers
        assert streamed.headers["transfer-encoding"] == "chunked"
        assert b"[DONE]" in streamed.read()
