"""The project's part of the OpenAPI schema: the probes, and the hook that adds every
app's declared operations (see ``modelhub.api.openapi``) to the generated schema."""

from __future__ import annotations

from importlib import import_module

from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

from modelhub.api.openapi import NO_AUTH, Operation

# Modules with an OPERATIONS list; one per app whose views are not DRF views.
DECLARING_MODULES = ("config.openapi", "gateway.openapi", "catalog.openapi", "sync.openapi")


class LivenessSerializer(serializers.Serializer):
    status = serializers.CharField(help_text='Always "ok": the process answers.')


class ReadinessSerializer(serializers.Serializer):
    status = serializers.CharField(help_text='"ok" when every check passed, else "unavailable".')
    checks = serializers.DictField(
        child=serializers.CharField(),
        help_text=(
            'Per dependency ("database", and "redis" when REDIS_URL is set): "ok" or '
            '"error: <exception class>".'
        ),
    )
    detail = serializers.CharField(
        required=False, help_text="Present when not ready: which parts are unreachable."
    )


OPERATIONS = [
    Operation(
        "/healthz",
        "get",
        {
            "operation_id": "healthz",
            "summary": "Liveness probe",
            "description": "The process is up and serving requests; checks nothing else.",
            "tags": ["probes"],
            "auth": NO_AUTH,
            "responses": {200: LivenessSerializer},
        },
    ),
    Operation(
        "/readyz",
        "get",
        {
            "operation_id": "readyz",
            "summary": "Readiness probe",
            "description": (
                "The database and, when REDIS_URL is set, Redis answer. A load balancer "
                "should send traffic only while this is 200."
            ),
            "tags": ["probes"],
            "auth": NO_AUTH,
            "responses": {
                200: ReadinessSerializer,
                503: OpenApiResponse(
                    ReadinessSerializer, description="A dependency is unreachable."
                ),
            },
        },
    ),
]


def declared_endpoints(endpoints):
    """drf-spectacular preprocessing hook: DRF's endpoints plus the declared operations."""
    endpoints = list(endpoints)
    for module_name in DECLARING_MODULES:
        for operation in import_module(module_name).OPERATIONS:
            endpoints.append(
                (
                    operation.path,
                    operation.path_regex,
                    operation.method.upper(),
                    operation.callback(),
                )
            )
    return endpoints


# simplejwt's serializers carry no help text; their fields are the first thing people use.
TOKEN_FIELD_DESCRIPTIONS = {
    "TokenObtainPairRequest": {
        "username": "Your login name.",
        "password": "Your password.",
    },
    "TokenObtainPair": {
        "access": "The JWT to send as `Authorization: Bearer <access>` (short-lived).",
        "refresh": "Exchange it at /api/auth/token/refresh/ for a new access token.",
    },
    "TokenRefreshRequest": {"refresh": "The refresh token from /api/auth/token/."},
    "TokenRefresh": {"access": "A new access token."},
    "TokenVerifyRequest": {"token": "An access or refresh token to check."},
}


def describe_token_fields(result, generator, request, public):
    """drf-spectacular postprocessing hook: describe the JWT endpoints' fields."""
    schemas = result.get("components", {}).get("schemas", {})
    for component, fields in TOKEN_FIELD_DESCRIPTIONS.items():
        properties = schemas.get(component, {}).get("properties", {})
        for name, text in fields.items():
            if name in properties:
                properties[name].setdefault("description", text)
    return result
