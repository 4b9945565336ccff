"""Failed logins are throttled per account and per client address, with django-axes.

Axes counts failures in its own tables and refuses further attempts for
``AXES_COOLOFF_TIME`` once either count reaches ``AXES_FAILURE_LIMIT`` (settings in
``config/settings/base.py``). What is ours:

- :class:`LoginAttemptHandler`: a successful login forgives the failures against that
  account only. Axes' own reset drops every row matching the address as well, which
  would let anyone with one valid account wipe the per-address count of their guesses.
- :func:`lockout_response`: the 429 answer, JSON on the API and a page in the admin,
  both with ``Retry-After``.
- :class:`TokenObtainView`: simplejwt's token view, made visible to axes.
"""

from __future__ import annotations

import math

from axes.handlers.database import AxesDatabaseHandler
from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_client_username, get_cool_off
from axes.models import AccessAttempt
from django.contrib.auth.signals import user_logged_in
from django.db.models import Max
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError
from rest_framework_simplejwt.serializers import TokenObtainPairSerializer
from rest_framework_simplejwt.views import TokenObtainPairView


class LoginAttemptHandler(AxesDatabaseHandler):
    """Axes' database handler; a success resets the account's count, not the address's."""

    def reset_user_attempts(self, request: HttpRequest, credentials: dict | None = None) -> int:
        username = get_client_username(request, credentials)
        if username is None:
            return 0
        count, _ = AccessAttempt.objects.filter(username=username).delete()
        return count


def seconds_until_unlocked(request: HttpRequest, credentials: dict | None = None) -> int:
    """When the lockout of this request's account or address ends at the latest: the
    cool-off counted from the newest failure that still counts."""
    cool_off = get_cool_off(request)
    if cool_off is None:
        return 0
    handler = AxesProxyHandler.get_implementation()
    newest = None
    if isinstance(handler, AxesDatabaseHandler):
        AxesProxyHandler.update_request(request)
        for attempts in handler.get_user_attempts(request, credentials):
            latest = attempts.aggregate(latest=Max("attempt_time"))["latest"]
            if latest is not None and (newest is None or latest > newest):
                newest = latest
    if newest is None:
        return max(math.ceil(cool_off.total_seconds()), 1)
    remaining = (newest + cool_off - timezone.now()).total_seconds()
    return max(math.ceil(remaining), 1)


def lockout_response(
    request: HttpRequest,
    original_response: HttpResponse | None = None,
    credentials: dict | None = None,
) -> HttpResponse:
    """The answer to a locked-out login (``AXES_LOCKOUT_CALLABLE``)."""
    retry_after = seconds_until_unlocked(request, credentials)
    minutes = max(math.ceil(retry_after / 60), 1)
    message = (
        "Too many failed login attempts for this account or from this address. "
        f"Try again in {minutes} minute{'s' if minutes != 1 else ''}."
    )
    if request.path.startswith("/api/"):
        response: HttpResponse = JsonResponse(
            {"detail": message, "code": "login_locked_out", "retry_after": retry_after},
            status=429,
        )
    else:
        response = render(
            request,
            "admin/lockout.html",
            {"title": "Login temporarily locked", "message": message, "minutes": minutes},
            status=429,
        )
    response["Retry-After"] = str(retry_after)
    return response


@extend_schema(
    responses={
        200: TokenObtainPairSerializer,
        401: OpenApiResponse(description="Wrong username or password."),
        429: OpenApiResponse(
            description=(
                "Too many failed logins for this account or from this address; "
                "Retry-After says when to try again."
            )
        ),
    }
)
class TokenObtainView(TokenObtainPairView):
    """Takes a username and password and returns an access and refresh JSON web token
    pair. After too many failed logins for the account or from the client's address it
    answers 429, with Retry-After, until the cool-off ends (the right password too)."""

    # simplejwt calls authenticate() with DRF's request, so axes marks a lockout on that
    # wrapper; the mark is copied to Django's request, where AxesMiddleware answers 429.
    # A success is announced as Django's login() does, so axes resets the account's count.
    def post(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        try:
            serializer.is_valid(raise_exception=True)
        except TokenError as exc:
            raise InvalidToken(exc.args[0]) from exc
        finally:
            if getattr(request, "axes_locked_out", False):
                request._request.axes_locked_out = True
                request._request.axes_credentials = getattr(request, "axes_credentials", None)
        user = serializer.user  # type: ignore[attr-defined]  # set by the serializer's validate()
        user_logged_in.send(sender=type(user), request=request, user=user)
        return Response(serializer.validated_data, status=status.HTTP_200_OK)
