"""ASGI entry point: ``uvicorn config.asgi:application``.

Django's handler wrapped by the gateway's lifespan-aware application, which starts the
gateway's per-process runtime and flushes its queued metric rows on shutdown.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

django_application = get_asgi_application()

from gateway.asgi import with_gateway  # noqa: E402  (needs the apps loaded above)

application = with_gateway(django_application)
