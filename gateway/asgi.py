"""The ASGI application around Django: lifespan events and a lean path for the gateway.

Django's ASGI handler answers only HTTP; it rejects the ``lifespan`` scope, so nothing
would start the gateway's runtime or flush its queued metric rows on shutdown. The
wrapper handles lifespan itself and passes every other scope on.

Requests to ``/v1/`` and ``/metrics`` go to a second Django handler without the
middleware stack of the admin and the management API: the gateway authenticates with
client keys and uses no session, CSRF, user or message middleware, and each of them
costs a hop to a thread on every request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.exception import convert_exception_to_response
from django.urls import set_script_prefix

from gateway import runtime

logger = logging.getLogger(__name__)

GATEWAY_URLCONF = "gateway.urls"
GATEWAY_PREFIXES = ("/v1/",)
GATEWAY_PATHS = ("/metrics",)


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
        get_response = self._get_response_async if is_async else self._get_response
        self._middleware_chain = convert_exception_to_response(get_response)

    async def __call__(self, scope, receive, send):
        await self.handle(scope, receive, send)

    async def handle(self, scope, receive, send):
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        request, error_response = self.create_request(scope, body_file)
        try:
            if request is None:
                await self.send_response(error_response, send)
                return
            # The view runs beside a listener for the client's disconnect, which cancels
            # it (and with it the upstream request) when the client goes away.
            process = asyncio.create_task(self._process(request, send))
            disconnect = asyncio.create_task(self.listen_for_disconnect(receive))
            done, _ = await asyncio.wait({process, disconnect}, return_when=asyncio.FIRST_COMPLETED)
            for task in (disconnect, process):
                if task in done:
                    with contextlib.suppress(RequestAborted, asyncio.CancelledError):
                        task.result()
                else:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, RequestAborted):
                        await task
        finally:
            body_file.close()

    async def _process(self, request, send) -> None:
        # Resolve against the gateway's own routes, not the whole site's list.
        request.urlconf = GATEWAY_URLCONF
        response = await self.run_get_response(request)
        with contextlib.suppress(asyncio.CancelledError):
            await self.send_response(response, send)


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
                await self.gateway_application(scope, receive, send)
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
