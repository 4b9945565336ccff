"""Liveness and readiness probes for load balancers and orchestrators.

Probes come from inside the deployment (a container's health check on 127.0.0.1, a load
balancer by IP address) with a Host header that ``DJANGO_ALLOWED_HOSTS`` rightly does not
list. :func:`probe_middleware`, placed first, answers them before any host validation;
they read no request data, so no host header can be abused through them.
"""

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.utils.decorators import sync_and_async_middleware


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


PROBES = {"/healthz": healthz, "/readyz": readyz}


@sync_and_async_middleware
def probe_middleware(get_response):
    """Answer ``/healthz`` and ``/readyz`` whatever the Host header says.

    Async-capable so the gateway's async views keep running without a thread hop; only a
    probe itself (the database check) runs in a thread.
    """

    def probe_for(request):
        return PROBES.get(request.path_info) if request.method in ("GET", "HEAD") else None

    if iscoroutinefunction(get_response):

        async def middleware(request):
            probe = probe_for(request)
            if probe is not None:
                return await sync_to_async(probe)(request)
            return await get_response(request)

    else:

        def middleware(request):
            probe = probe_for(request)
            if probe is not None:
                return probe(request)
            return get_response(request)

    return middleware
