"""What ``gateway.asgi.GatewayASGIHandler`` takes from Django's ASGI handler.

The lean handler subclasses ``django.core.handlers.asgi.ASGIHandler`` and replaces its
``handle``, ``load_middleware`` and ``send_response``, calling the rest by name. A
Django release that renames, re-signs or changes these internals breaks the gateway
quietly, so these tests fail first, naming what to re-read in Django before the version
range is widened.
"""

import inspect
import io
import re

import django
import pytest
from django.core.handlers.asgi import ASGIHandler, ASGIRequest, get_script_prefix
from django.core.handlers.base import BaseHandler
from django.core.handlers.exception import convert_exception_to_response
from django.http import HttpRequest, HttpResponse
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.security import SecurityMiddleware
from django.utils.log import log_response

from gateway.asgi import GatewayASGIHandler, ScopeHeaders, SecurityHeaders

# The Django versions GatewayASGIHandler was checked against, [lowest, next major).
CHECKED_FROM = (5, 2)
CHECKED_BELOW = (6, 0)

RECHECK = (
    "Django {version} is outside the range GatewayASGIHandler (gateway/asgi.py) was "
    "checked against. Re-read django/core/handlers/asgi.py (ASGIHandler.handle, "
    "create_request, read_body, run_get_response, send_response, listen_for_disconnect) "
    "and base.py (load_middleware, _get_response_async), compare with the lean "
    "handler, run tests/gateway and bench/gateway.py, then widen CHECKED_BELOW here."
)

# name -> (parameters after self, is a coroutine function)
RELIED_ON = {
    "create_request": (["scope", "body_file"], False),
    "read_body": (["receive"], True),
    "run_get_response": (["request"], True),
    "send_response": (["response", "send"], True),
    "listen_for_disconnect": (["receive"], True),
    "load_middleware": (["is_async"], False),
    "_get_response_async": (["request"], True),
}


def test_django_version_is_in_the_checked_range():
    version = django.VERSION[:2]
    assert CHECKED_FROM <= version < CHECKED_BELOW, RECHECK.format(version=django.__version__)


def test_the_handler_methods_it_calls_keep_their_signatures():
    for name, (parameters, is_coroutine) in RELIED_ON.items():
        method = getattr(ASGIHandler, name, None)
        assert method is not None, f"ASGIHandler.{name} is gone. " + RECHECK.format(
            version=django.__version__
        )
        found = list(inspect.signature(method).parameters)[1:]
        assert found == parameters, (
            f"ASGIHandler.{name}{inspect.signature(method)} changed (was {parameters}). "
            + RECHECK.format(version=django.__version__)
        )
        assert inspect.iscoroutinefunction(method) is is_coroutine, (
            f"ASGIHandler.{name} is {'no longer' if is_coroutine else 'now'} a coroutine. "
            + RECHECK.format(version=django.__version__)
        )


def test_the_module_functions_it_calls_keep_their_signatures():
    assert list(inspect.signature(get_script_prefix).parameters) == ["scope"]
    assert list(inspect.signature(convert_exception_to_response).parameters) == ["get_response"]


def test_load_middleware_sets_what_the_base_handler_reads():
    """The override sets the attributes Django's response path reads; a new one there
    would be missing on the lean handler."""
    source = inspect.getsource(BaseHandler)
    for attribute in (
        "_view_middleware",
        "_template_response_middleware",
        "_exception_middleware",
        "_middleware_chain",
    ):
        assert f"self.{attribute}" in source, RECHECK.format(version=django.__version__)
    handler = GatewayASGIHandler()
    read = {a[len("self.") :] for a in _self_attributes(BaseHandler._get_response_async)}
    read |= {a[len("self.") :] for a in _self_attributes(BaseHandler.get_response_async)}
    missing = {a for a in read if a.startswith("_") and not hasattr(handler, a)}
    assert not missing, f"The lean handler lacks {sorted(missing)}. " + RECHECK.format(
        version=django.__version__
    )


def test_a_request_body_set_by_the_handler_is_the_one_views_read():
    """The handler reads the body itself and stores it in ``_body`` and ``_stream``."""
    request = HttpRequest()
    request._body = b'{"model": "m"}'
    assert request.body == b'{"model": "m"}', RECHECK.format(version=django.__version__)


def _self_attributes(function) -> set[str]:
    return set(re.findall(r"self\.[A-Za-z_]+", inspect.getsource(function)))


def test_what_an_exact_route_reproduces_of_the_response_path():
    """``run_exact_route`` calls the resolved view as ``get_response_async`` would with no
    middleware: resolution, the view, an exception made a response, an error logged."""
    outer = inspect.getsource(BaseHandler.get_response_async)
    inner = inspect.getsource(BaseHandler._get_response_async)
    for expected, source in (
        ("self._middleware_chain(request)", outer),
        ("response.status_code >= 400", outer),
        ('"%s: %s",', outer),
        ("response.reason_phrase,", outer),
        ("self.resolve_request(request)", inner),
        ("self.make_view_atomic(callback)", inner),
    ):
        assert expected in source, RECHECK.format(version=django.__version__)
    assert list(inspect.signature(log_response).parameters)[:2] == ["message", "args"]


@pytest.mark.parametrize(
    "headers",
    [
        [(b"host", b"example.com"), (b"authorization", b"Bearer sk-1")],
        [(b"content-type", b"application/json"), (b"content-length", b"12")],
        [(b"x-api-key", b"one"), (b"x-api-key", b"two"), (b"accept", b"*/*")],
        [(b"x_api_key", b"spoofed"), (b"x-api-key", b"real")],
        [(b"X-Mixed-Case", b"a"), (b"x-mixed-case", b"b")],
        [(b"cookie", b"a=1; "), (b"cookie", b"b=2")],
        [(b"x-latin", "caf\xe9".encode("latin1"))],
        [],
    ],
    ids=["plain", "unprefixed", "repeated", "underscore", "case", "cookies", "latin1", "none"],
)
def test_scope_headers_are_the_headers_django_builds(headers):
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "query_string": b"",
        "headers": headers,
    }
    django_headers = ASGIRequest(scope, io.BytesIO()).headers
    ours = ScopeHeaders(headers)
    assert dict(ours.items()) == dict(django_headers.items()), RECHECK.format(
        version=django.__version__
    )
    for name in ("X-Api-Key", "x_api_key", "AUTHORIZATION", "content-type", "x-mixed-case"):
        assert ours.get(name) == django_headers.get(name)


def test_response_headers_are_stored_by_lowercased_name():
    """``send_response`` and ``SecurityHeaders`` read and fill the header mapping's store."""
    response = HttpResponse(content_type="application/json")
    response["X-Request-Id"] = "req-1"
    assert response.headers._store == {
        "content-type": ("Content-Type", "application/json"),
        "x-request-id": ("X-Request-Id", "req-1"),
    }
    assert list(response.items()) == list(response.headers._store.values())


SECURITY_SETTINGS = {
    "defaults": {},
    "hsts": {
        "SECURE_HSTS_SECONDS": 3600,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_HSTS_PRELOAD": True,
    },
    "other-values": {
        "X_FRAME_OPTIONS": "sameorigin",
        "SECURE_REFERRER_POLICY": ["origin", " strict-origin"],
        "SECURE_CROSS_ORIGIN_OPENER_POLICY": "same-origin-allow-popups",
        "SECURE_HSTS_SECONDS": 60,
    },
    "none": {
        "SECURE_CONTENT_TYPE_NOSNIFF": False,
        "SECURE_REFERRER_POLICY": None,
        "SECURE_CROSS_ORIGIN_OPENER_POLICY": None,
    },
}


def _views_response(kind: str) -> HttpResponse:
    response = HttpResponse(b"{}", content_type="application/json")
    if kind == "own-headers":
        response["X-Frame-Options"] = "SAMEORIGIN"
        response["Referrer-Policy"] = "no-referrer"
        response["Strict-Transport-Security"] = "max-age=1"
    elif kind == "exempt":
        response.xframe_options_exempt = True
    return response


@pytest.mark.parametrize("kind", ["plain", "own-headers", "exempt"])
@pytest.mark.parametrize("secure", [False, True], ids=["http", "https"])
@pytest.mark.parametrize("configured", list(SECURITY_SETTINGS))
def test_security_headers_are_those_the_middleware_adds(settings, configured, secure, kind):
    """``SecurityHeaders`` adds what ``SecurityMiddleware`` and ``XFrameOptionsMiddleware``
    would, in their order, for the project's settings at start-up."""
    for name, value in SECURITY_SETTINGS[configured].items():
        setattr(settings, name, value)
    request = HttpRequest()
    request.is_secure = lambda: secure

    expected = _views_response(kind)
    expected = SecurityMiddleware(lambda r: None).process_response(request, expected)
    expected = XFrameOptionsMiddleware(lambda r: None).process_response(request, expected)
    actual = _views_response(kind)
    SecurityHeaders().add(request, actual)

    assert list(actual.items()) == list(expected.items())


def test_csrf_exempts_wrapper_only_awaits_the_view():
    """``without_csrf_wrapper`` takes the wrapper off the exact routes' views."""
    from django.views.decorators import csrf

    source = inspect.getsource(csrf.csrf_exempt)
    for expected in (
        "async def _view_wrapper(request, *args, **kwargs):",
        "return await view_func(request, *args, **kwargs)",
        "_view_wrapper.csrf_exempt = True",
        "return wraps(view_func)(_view_wrapper)",
    ):
        assert expected in source, RECHECK.format(version=django.__version__)
