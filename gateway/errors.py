"""Errors in OpenAI's shape, so the OpenAI SDKs raise their typed exceptions.

OpenAI answers ``{"error": {"message", "type", "param", "code"}}`` with 400 for a bad
request, 401 for a bad key, 403 for a forbidden resource, 404 for an unknown model, 429
for limits and 5xx for its own failures; the SDKs map each status to an exception class.
"""

from __future__ import annotations

import json

from django.http import HttpResponse


class GatewayError(Exception):
    """An error returned to the caller as an OpenAI error object."""

    status = 500
    type = "server_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if type is not None:
            self.type = type
        if code is not None:
            self.code = code
        self.param = param
        self.headers = headers or {}

    def as_dict(self) -> dict:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def as_response(self) -> HttpResponse:
        response = HttpResponse(
            json.dumps(self.as_dict()), status=self.status, content_type="application/json"
        )
        for name, value in self.headers.items():
            response[name] = value
        return response


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"


class AuthenticationFailed(GatewayError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class PermissionDenied(GatewayError):
    status = 403
    type = "invalid_request_error"
    code = "model_not_allowed"


class ModelNotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class RateLimited(GatewayError):
    status = 429
    type = "rate_limit_exceeded"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None, **kwargs):
        headers = {"Retry-After": str(max(int(retry_after), 1))}
        super().__init__(message, code=code, headers=headers, **kwargs)
        self.retry_after = max(int(retry_after), 1)


class UpstreamFailed(GatewayError):
    """Every candidate failed; the status says how (502 bad gateway, 504 timeout)."""

    status = 502
    type = "upstream_error"
    code = "upstream_error"


class ServiceUnavailable(GatewayError):
    status = 503
    type = "service_unavailable"
    code = "no_healthy_upstream"


def upstream_error_body(status: int, message: str, *, type: str, code: str | None = None) -> bytes:
    return json.dumps(
        {"error": {"message": message, "type": type, "param": None, "code": code}}
    ).encode()


class AttemptFailed(Exception):
    """One upstream attempt failed; the attributes say whether to retry or fall back."""

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = True,
        credential_fault: bool = True,
        retry_after: float | None = None,
        response: HttpResponse | None = None,
    ):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.retryable = retryable
        self.credential_fault = credential_fault
        self.retry_after = retry_after
        # Set for the caller's own errors (400, 413, 422): the answer to send back.
        self.response = response
