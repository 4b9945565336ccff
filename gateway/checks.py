"""System checks of the gateway's deployment settings."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core import checks

logger = logging.getLogger(__name__)

METRICS_TOKEN_UNSET = checks.Warning(
    "METRICS_TOKEN is not set: /metrics is open to anyone who can reach the server.",
    hint="Set METRICS_TOKEN and have Prometheus send it as a bearer token "
    "(authorization: credentials), or keep /metrics off the public network.",
    id="gateway.W001",
)


def check_metrics_token(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """An open ``/metrics`` is fine on a developer's machine, not in production."""
    if settings.DEBUG or settings.METRICS_TOKEN:
        return []
    return [METRICS_TOKEN_UNSET]


def warn_at_startup() -> None:
    """ASGI servers run no system checks: say it in the log when the gateway starts."""
    for message in check_metrics_token():
        if message.id in settings.SILENCED_SYSTEM_CHECKS:
            continue
        logger.warning("%s (%s) %s", message.msg, message.id, message.hint)
