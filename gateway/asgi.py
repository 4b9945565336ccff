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

import logging

from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import convert_exception_to_response

from gateway import runtime

logger = logging.getLogger(__name__)

GATEWAY_PREFIXES = ("/v1/",)
GATEWAY_PATHS = ("/metrics",)


class GatewayASGIHandler(ASGIHandler):
    """Django's ASGI handler with no middleware: URL resolution and the async views."""

    def load_middleware(self, is_async=False):
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        get_response = self._get_response_async if is_async else self._get_response
        self._middleware_chain = convert_exception_to_response(get_response)


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
