"""Liveness and readiness probes for load balancers and orchestrators."""

from django.conf import settings
from django.db import connection
from django.http import JsonResponse


def healthz(request):
    """The process is up and serving requests."""
    return JsonResponse({"status": "ok"})


def _check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "not ready"
        return f"{type(exc).__name__}"
    return None


def _check_redis() -> str | None:
    if not settings.REDIS_URL:
        return None
    try:
        import redis

        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2
        )
        client.ping()
    except Exception as exc:
        return f"{type(exc).__name__}"
    return None


def readyz(request):
    """The database and, when configured, Redis answer; 503 names the failing part."""
    checks = {"database": _check_database()}
    if settings.REDIS_URL:
        checks["redis"] = _check_redis()
    failing = [name for name, error in checks.items() if error]
    body = {
        "status": "ok" if not failing else "unavailable",
        "checks": {
            name: ("ok" if not error else f"error: {error}") for name, error in checks.items()
        },
    }
    if failing:
        body["detail"] = "Not ready: " + ", ".join(failing) + " unreachable."
    return JsonResponse(body, status=503 if failing else 200)
