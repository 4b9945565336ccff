"""How the OpenAPI schema describes what DRF cannot see on its own.

The gateway, the public catalog, the operator endpoints and the probes are plain Django
views (the gateway's are async and skip DRF on purpose: it costs time on every request).
Each of those apps keeps one ``openapi.py`` with a list of :class:`Operation`: a path, a
method and the ``extend_schema`` arguments that describe it, with serializers for the
bodies so that drf-spectacular builds and validates their components like any other.
``config.openapi.declared_endpoints`` hands them to the generator; nothing routes to
them. Documenting a new endpoint is one more ``Operation`` in its app's list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.parsers import JSONParser
from rest_framework.views import APIView

# Names of the security schemes (declared in SPECTACULAR_SETTINGS["APPEND_COMPONENTS"]).
SecurityRequirement = list[dict[str, list[str]]]
CLIENT_KEY_AUTH: SecurityRequirement = [{"clientKey": []}, {"clientKeyHeader": []}]
ADMIN_KEY_AUTH: SecurityRequirement = [{"adminKey": []}]
NO_AUTH: SecurityRequirement = []


class DetailErrorSerializer(serializers.Serializer):
    """The error body of the catalog, operator and management endpoints."""

    detail = serializers.CharField(help_text="What went wrong, in words a person can act on.")


@dataclass(frozen=True)
class Operation:
    """One documented operation of a view DRF does not know about.

    ``path`` is the OpenAPI path with ``{name}`` parameters; ``schema`` holds the
    keyword arguments of :func:`drf_spectacular.utils.extend_schema` (``operation_id``,
    ``request``, ``responses``, ``auth``, ...). ``path_types`` names the Django path
    converter of each parameter (``path`` keeps slashes), for the generator's regex.
    """

    path: str
    method: str
    schema: dict = field(default_factory=dict)
    path_types: dict = field(default_factory=dict)

    @property
    def path_regex(self) -> str:
        def group(match):
            name = match.group(1)
            body = ".+" if self.path_types.get(name) == "path" else "[^/]+"
            return f"(?P<{name}>{body})"

        return "^" + re.sub(r"\{(\w+)\}", group, self.path.lstrip("/")) + "$"

    def callback(self):
        """A DRF view function that only carries this operation's schema."""

        def handler(view, request, *args, **kwargs):  # never routed, never called
            raise NotImplementedError

        name = re.sub(r"\W", "", (self.schema.get("operation_id") or self.path).title())
        view: type[APIView] = type(
            f"{name}DocumentedView",
            (APIView,),
            {
                "authentication_classes": [],
                "permission_classes": [],
                # The plain views read JSON bodies only.
                "parser_classes": [JSONParser],
                self.method.lower(): extend_schema(**self.schema)(handler),
            },
        )
        return view.as_view()


class AutoSchema(SpectacularAutoSchema):
    """drf-spectacular's inspector, with decimal patterns that honour ``min_value`` and
    the implicit primary keys described.

    Decimals travel as strings; drf-spectacular's pattern always allows a minus sign,
    so Swagger UI's example of a budget or a price was a negative amount the API
    refuses. A field with ``min_value >= 0`` gets a pattern without the sign. The ``id``
    of every model is Django's automatic primary key, which carries no help text.
    """

    def _map_basic_serializer(self, serializer, direction):
        schema = super()._map_basic_serializer(serializer, direction)
        primary_key = schema.get("properties", {}).get("id")
        if primary_key is not None and not primary_key.get("description"):
            primary_key["description"] = "The object's id, used in its URL and to refer to it."
        return schema

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        min_value = getattr(field, "min_value", None)
        if (
            isinstance(field, serializers.DecimalField)
            and min_value is not None
            and min_value >= 0
            and isinstance(schema.get("pattern"), str)
        ):
            schema["pattern"] = schema["pattern"].replace("^-?", "^", 1)
        return schema
