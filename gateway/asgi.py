"""The ASGI application around Django: lifespan events and a lean path for the gateway.

Django's ASGI handler answers only HTTP; it rejects the ``lifespan`` scope, so nothing
would start the gateway's runtime or flush its queued metric rows on shutdown. The
wrapper handles lifespan itself and passes every other scope on.

Requests to ``/v1/`` and ``/metrics`` go to a second Django handler without the
middleware stack of the admin and the management API: the gateway authenticates with
client keys and uses no session, CSRF, user or message middleware, and each of them
costs a hop to a thread on every request.

What that stack would do and the gateway still needs is done here, cheaply: the Host
header is checked against ``ALLOWED_HOSTS`` (a JSON 400 otherwise), the security headers
of ``SecurityMiddleware`` and ``XFrameOptionsMiddleware`` are added with the project's
settings, and every answer, errors included, carries ``x-request-id``. Bodies are bounded
by ``GATEWAY_MAX_BODY_BYTES`` (prompts are large; Django's form-sized
``DATA_UPLOAD_MAX_MEMORY_SIZE`` applies to the rest of the site), checked from
``Content-Length`` before reading and again while reading, for chunked bodies.

The gateway's paths without parameters (the completion endpoints, ``/v1/models``,
``/metrics``) are resolved once, at start-up, and their views called directly; the
others go through Django's resolver. Responses are sent without Django's chunking.

Why a handler of its own: the stock handler with the site's middleware added about
3.1 ms to the median request and served 229 requests per second; this one adds about
1.1 ms and serves 1,023 (``bench/gateway.py``, SQLite, one worker). It overrides
``handle``, ``load_middleware`` and ``send_response`` of Django's ``ASGIHandler`` and
calls some of its internals by name; ``tests/gateway/test_asgi_django_contract.py``
pins them and the Django versions they were checked against, and fails on an upgrade
until they are re-checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import io
import logging
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from typing import Any, cast

from django.conf import settings
from django.core.exceptions import DisallowedHost, RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.exception import convert_exception_to_response
from django.http import HttpRequest, HttpResponse
from django.http.request import HttpHeaders
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.security import SecurityMiddleware
from django.urls import get_resolver, set_script_prefix, set_urlconf
from django.urls.resolvers import RoutePattern
from django.utils.log import log_response
from django.views.decorators.csrf import csrf_exempt

from gateway import anthropic, runtime
from gateway.errors import InvalidRequest
from gateway.request_ids import request_id_for

logger = logging.getLogger(__name__)

GATEWAY_URLCONF = "gateway.urls"
GATEWAY_PREFIXES = ("/v1/",)
GATEWAY_PATHS = ("/metrics",)
ANTHROPIC_PREFIX = "/v1/messages"


class BodyTooLarge(Exception):
    """The request body is longer than ``GATEWAY_MAX_BODY_BYTES``."""


def _unused_get_response(request):  # pragma: no cover - the middleware is never called
    raise AssertionError("Only the middleware's process_response is used.")


def body_too_large(limit: int):
    return InvalidRequest(
        f"The request body is larger than this gateway accepts ({limit} bytes).",
        status=413,
        code="request_too_large",
    ).as_response()


class GatewayASGIHandler(ASGIHandler):
    """Django's ASGI handler cut down for the gateway's async views.

    No middleware, and none of the per-request thread hops of the stock handler: it
    opens a thread-sensitive context per request and runs the ``request_started`` and
    ``request_finished`` receivers (database connection housekeeping) and
    ``response.close()`` through ``sync_to_async``. The gateway's views never touch a
    database connection on the event loop (their ORM calls run on the runtime's own
    database threads, which keep their connections), and their responses hold no
    resources to close, so the hot path stays on the event loop.
    """

    def load_middleware(self, is_async=False):
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        # The two private methods of BaseHandler that run the view (pinned by
        # tests/gateway/test_asgi_django_contract.py); the stubs do not declare them.
        get_response = self._get_response_async if is_async else self._get_response  # type: ignore[attr-defined]
        self._middleware_chain = convert_exception_to_response(get_response)

    def __init__(self):
        super().__init__()
        self.security_headers = SecurityHeaders()
        self.exact_routes = exact_routes(GATEWAY_URLCONF)

    async def __call__(self, scope, receive, send):
        await self.handle(scope, receive, send)

    async def handle(self, scope, receive, send):
        # The request is built before its body is read, so that the Host check, the
        # Content-Length check and the request id come first.
        request, error_response = self.create_request(scope, io.BytesIO())
        if request is None:
            error_response = InvalidRequest(
                "The request line or headers could not be decoded.", code="invalid_request"
            ).as_response()
            await self.send_response(self.finish_response(None, error_response), send)
            return
        # What Django would build from META on first use, built from the scope's list.
        request.headers = ScopeHeaders(scope.get("headers", ()))
        request_id = request_id_for(request.META.get("HTTP_X_REQUEST_ID"))
        request.request_id = request_id  # type: ignore[attr-defined]
        error_response = self.check_request(request)
        if error_response is None:
            limit = settings.GATEWAY_MAX_BODY_BYTES
            try:
                body = await self.read_limited_body(receive, limit)
            except RequestAborted:
                return
            except BodyTooLarge:
                error_response = body_too_large(limit)
        if error_response is not None:
            if request.path.startswith(ANTHROPIC_PREFIX):
                # Anthropic's clients read Anthropic's error shape, refusals made here too.
                error_response = anthropic.MessagesDialect().client_error(error_response)
            await self.send_response(self.finish_response(request, error_response), send)
            return
        # Bounded above; Django's own limit (DATA_UPLOAD_MAX_MEMORY_SIZE, checked when
        # ``request.body`` is first read) is for forms and would refuse large prompts.
        request._body = body
        request._stream = io.BytesIO(body)
        del body  # only the request holds it now, until the view has read it (_process)
        set_script_prefix(get_script_prefix(scope))
        # The view runs in this task, beside a listener for the client's disconnect that
        # cancels it (and with it the upstream request) when the client goes away. Django's
        # handler runs the view as a task of its own instead: a task and a turn of the
        # event loop more before each request starts.
        view = asyncio.current_task()
        assert view is not None
        finished = False

        def client_gone(listener: asyncio.Task) -> None:
            if not finished and not listener.cancelled():
                view.cancel()

        listener = asyncio.create_task(self.listen_for_disconnect(receive))
        listener.add_done_callback(client_gone)
        try:
            await self._process(request, send)
        except asyncio.CancelledError:
            if not listener.done() or listener.cancelled():
                raise  # cancelled from outside (the server is shutting down)
        finally:
            finished = True
            if not listener.done():
                listener.cancel()
            elif not listener.cancelled():
                # The client left: this task's cancellation was ours and is handled.
                while view.cancelling():
                    view.uncancel()
                error = listener.exception()
                if error is not None and not isinstance(error, RequestAborted):
                    raise error  # not a disconnect: a message the protocol does not allow

    def check_request(self, request):
        """The JSON error for a disallowed Host or a body declared too large, or None."""
        try:
            request.get_host()
        except DisallowedHost:
            return InvalidRequest(
                "Invalid Host header: this server does not answer for that host name.",
                code="invalid_host",
            ).as_response()
        declared = request.META.get("CONTENT_LENGTH")
        if declared:
            try:
                length = int(declared)
            except ValueError:
                length = -1
            if length < 0:
                return InvalidRequest(
                    "The Content-Length header must be a whole number of bytes.",
                    code="invalid_request",
                ).as_response()
            limit = settings.GATEWAY_MAX_BODY_BYTES
            if length > limit:
                return body_too_large(limit)
        return None

    async def read_limited_body(self, receive, limit: int) -> bytes:
        """The whole body, or :class:`BodyTooLarge` as soon as it passes ``limit``."""
        chunks = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise RequestAborted()
            chunk = message.get("body")
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise BodyTooLarge()
                chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def finish_response(self, request, response):
        """Add what the middleware stack would: security headers, and the request id."""
        if request is None:
            # The scope could not be decoded into a request: answer as for a plain one.
            request = HttpRequest()
            request.request_id = request_id_for(None)
        response.headers.setdefault("X-Request-Id", request.request_id)
        self.security_headers.add(request, response)
        return response

    async def _process(self, request, send) -> None:
        # Resolve against the gateway's own routes, not the whole site's list.
        request.urlconf = GATEWAY_URLCONF
        route = self.exact_routes.get(request.path_info)
        if route is None:
            response = await self.run_get_response(request)
        else:
            response = await self.run_exact_route(route, request)
        # The view has read the body. A streamed answer keeps the request for as long as
        # it lasts, and with it the prompt it no longer needs: let that copy go.
        request._body = b""
        request._stream = io.BytesIO()
        self.finish_response(request, response)
        with contextlib.suppress(asyncio.CancelledError):
            await self.send_response(response, send)

    async def run_exact_route(self, route: ExactRoute, request):
        """What ``run_get_response`` does for a path resolved once, at start-up.

        With no middleware, Django's path comes down to: resolve, call the view (an
        exception becomes Django's error response), log an error status. The resolution
        is the part that depends on the request, and for a path without parameters it
        never changes.
        """
        set_urlconf(GATEWAY_URLCONF)
        request.resolver_match = route.match
        response = await route.view(request)
        if response.status_code >= 400:
            log_response(
                "%s: %s", response.reason_phrase, request.path, response=response, request=request
            )
        return response

    async def send_response(self, response, send):
        """Django's ``send_response`` for the gateway's answers, without its chunking.

        Django cuts each body (and each streamed part) into pieces through a generator of
        its own; the ASGI server writes a body of any size as it comes, so every part is
        sent as one message here.
        """
        # The header mapping's own store ({lowercased name: (name, value)}, pinned by the
        # contract test): iterating the mapping looks each name up again.
        store = response.headers._store
        headers = [(name.encode("ascii"), value.encode("latin1")) for name, value in store.values()]
        for cookie in response.cookies.values():
            headers.append((b"Set-Cookie", cookie.output(header="").encode("ascii").strip()))
        status = response.status_code
        if response.streaming:
            body = b""
        else:
            body = response.content
            # Its length is known: framed by Content-Length, as OpenAI's answers are, rather
            # than chunked by the server for want of it.
            if status not in (204, 304) and status >= 200 and "content-length" not in store:
                headers.append((b"Content-Length", str(len(body)).encode("ascii")))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        if not response.streaming:
            await send({"type": "http.response.body", "body": body})
            return
        # The gateway's streams are async iterators: read through ``streaming_content``
        # (bytes), not ``aiter(response)``, which adds a generator of its own per part.
        parts = response.streaming_content if response.is_async else aiter(response)
        async with aclosing(parts) as content:
            async for part in content:
                if part:
                    await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body"})


class SecurityHeaders:
    """The headers Django's ``SecurityMiddleware`` and ``XFrameOptionsMiddleware`` add to
    a response, worked out once from the settings.

    Their ``process_response`` builds and checks each value again for every response.
    Here both run once, at start-up, on an empty response for a plain and for a secure
    request (only Strict-Transport-Security depends on it); what they added is copied
    into each response that has no such header of its own, as theirs would be. A
    response marked ``xframe_options_exempt`` gets no X-Frame-Options.
    """

    def __init__(self) -> None:
        security = SecurityMiddleware(_unused_get_response)
        xframe = XFrameOptionsMiddleware(_unused_get_response)

        def added(secure: bool) -> list[tuple[str, tuple[str, str]]]:
            request = HttpRequest()
            request.is_secure = lambda: secure  # type: ignore[method-assign]
            response = HttpResponse()
            before = set(response.headers._store)
            xframe.process_response(request, security.process_response(request, response))
            return [(k, v) for k, v in response.headers._store.items() if k not in before]

        self.plain = added(False)
        self.secure = added(True)
        self.by_scheme = self.secure != self.plain

    def add(self, request, response) -> None:
        headers = self.plain
        if self.by_scheme and request.is_secure():
            headers = self.secure
        store = response.headers._store
        exempt = getattr(response, "xframe_options_exempt", False)
        for name, item in headers:
            if name not in store and not (exempt and name == "x-frame-options"):
                store[name] = item


class ScopeHeaders(HttpHeaders):
    """``request.headers`` read from the ASGI scope's header list.

    The same mapping as Django's ``HttpHeaders``, which an ``ASGIRequest`` builds on first
    use by parsing every key of ``META`` back into a header name: names with an
    underscore are left out (``ASGIRequest`` drops them, against spoofing by the
    ambiguity with hyphens), repeated headers are joined with commas, names are kept
    title-cased and looked up in any case.
    """

    def __init__(self, headers) -> None:
        joined: dict[str, str] = {}
        for raw_name, raw_value in headers:
            name = raw_name.decode("latin1")
            if "_" in name:
                continue
            name = name.lower()
            value = raw_value.decode("latin1")
            joined[name] = f"{joined[name]},{value}" if name in joined else value
        self._store = {name: (name.title(), value) for name, value in joined.items()}


class ExactRoute:
    """A gateway route without parameters: its view, ready to call, and its match."""

    __slots__ = ("match", "view")

    def __init__(self, match) -> None:
        self.match = match
        # As the middleware chain does for the resolved view: an exception becomes
        # Django's error response (logged), not a failure of the connection.
        # (Typed by what the gateway's views are: coroutine functions, which is checked.)
        self.view = cast(
            Callable[[HttpRequest], Awaitable[Any]],
            convert_exception_to_response(without_csrf_wrapper(match.func)),
        )


def without_csrf_wrapper(view):
    """The view that ``csrf_exempt`` wrapped, if it did: its wrapper only awaits the view,
    and marks it for ``CsrfViewMiddleware``, which the lean handler does not run."""
    code = getattr(view, "__code__", None)
    if (
        getattr(view, "csrf_exempt", False)
        and code is not None
        and code.co_qualname == _CSRF_WRAPPER
    ):
        return view.__wrapped__
    return view


# The wrapper's own name (``wraps`` gives it the view's name, not its code's).
_CSRF_WRAPPER = csrf_exempt(_unused_get_response).__code__.co_qualname


def exact_routes(urlconf: str) -> dict[str, ExactRoute]:
    """The routes of ``urlconf`` whose path has no parameter, by path, resolved once."""
    resolver = get_resolver(urlconf)
    routes = {}
    for entry in resolver.url_patterns:
        pattern = getattr(entry, "pattern", None)
        if isinstance(pattern, RoutePattern) and not pattern.converters:
            path = "/" + str(pattern)
            match = resolver.resolve(path)
            # A synchronous view needs Django's thread hop: it keeps the resolver's path.
            if inspect.iscoroutinefunction(match.func):
                routes[path] = ExactRoute(match)
    return routes


class LifespanApplication:
    """Handles ``lifespan`` (start the runtime, flush it on shutdown) and routes HTTP."""

    def __init__(self, application, gateway_application=None):
        self.application = application
        self.gateway_application = gateway_application

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        if self.gateway_application is not None and scope["type"] == "http":
            path = scope.get("path", "")
            root = scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root) :]
            if path.startswith(GATEWAY_PREFIXES) or path in GATEWAY_PATHS:
                # Its ``__call__`` only awaits ``handle``: one coroutine less a request.
                await self.gateway_application.handle(scope, receive, send)
                return
        await self.application(scope, receive, send)

    async def lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await runtime.startup()
                except Exception as exc:
                    logger.exception("The gateway could not start")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await runtime.shutdown()
                except Exception as exc:
                    logger.exception("The gateway did not shut down cleanly")
                    await send({"type": "lifespan.shutdown.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.shutdown.complete"})
                return


def with_gateway(application) -> LifespanApplication:
    """Wrap Django's ASGI application; call after ``django.setup()``."""
    return LifespanApplication(application, GatewayASGIHandler())
