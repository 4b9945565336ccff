"""Bearer-token guard for the operator endpoints (catalog sync, cache administration).

``Authorization: Bearer <ADMIN_API_KEY>`` is compared in constant time. A missing or
wrong key is a 401 that does not say which; an unset ``ADMIN_API_KEY`` disables the
endpoints (503) instead of leaving them open.
"""

from __future__ import annotations

import functools

from django.conf import settings
from django.http import JsonResponse

from modelhub.crypto import constant_time_equals

DISABLED_MESSAGE = "The admin API is disabled: set ADMIN_API_KEY to enable it."
UNAUTHORIZED_MESSAGE = "Invalid or missing admin API key."


def admin_key_error(request) -> JsonResponse | None:
    """The error response for a request without the right admin key, or None."""
    configured = settings.ADMIN_API_KEY
    if not configured:
        return JsonResponse({"detail": DISABLED_MESSAGE}, status=503)
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not constant_time_equals(token.strip(), configured):
        response = JsonResponse({"detail": UNAUTHORIZED_MESSAGE}, status=401)
        response["WWW-Authenticate"] = 'Bearer realm="admin"'
        return response
    return None


def require_admin_api_key(view):
    """Decorate a plain Django view so it runs only with the admin key."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        error = admin_key_error(request)
        if error is not None:
            return error
        return view(request, *args, **kwargs)

    return wrapped
