"""The one scoping mechanism of the management API.

:class:`OrganizationScopedViewSet` resolves the request's active organization and
membership, checks the caller's role against one declaration (:data:`METHOD_ROLES`,
narrowed per action with ``action_roles``), and hands subclasses ``self.organization``
to scope their queryset. :class:`ScopedRelatedField` scopes every primary-key field of
input the same way: an id that belongs to another organization is "does not exist".
"""

from __future__ import annotations

import re
from functools import cached_property

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema_field
from rest_framework import exceptions, permissions, serializers, viewsets

from modelhub.api.openapi import AutoSchema
from modelhub.models import Membership, Organization, Role

ORGANIZATION_HEADER = "X-Organization"

ROLE_RANK = {Role.MEMBER: 1, Role.ADMIN: 2, Role.OWNER: 3}

# Who may use which HTTP method: members read; admins and owners write. Views narrow
# this per action (an organization's deletion is for owners only, say).
METHOD_ROLES = {
    "GET": Role.MEMBER,
    "HEAD": Role.MEMBER,
    "OPTIONS": Role.MEMBER,
    "POST": Role.ADMIN,
    "PUT": Role.ADMIN,
    "PATCH": Role.ADMIN,
    "DELETE": Role.ADMIN,
}


SLUG = re.compile(r"[-a-zA-Z0-9_]+")


def is_slug(value: str) -> bool:
    """Whether ``value`` could be an organization's slug. Anything else (a NUL byte, say,
    which PostgreSQL refuses in a query) is simply not found, without asking the database."""
    return bool(SLUG.fullmatch(value)) and len(value) <= 100


def has_role(membership: Membership, required: str) -> bool:
    return ROLE_RANK[membership.role] >= ROLE_RANK[required]


def resolve_membership(request) -> Membership:
    """The caller's membership in the active organization.

    ``X-Organization: <slug>`` picks it; without the header the user's only membership
    is used. An organization the user is not in is a 404, like a missing one.
    """
    memberships = Membership.objects.select_related("organization").filter(user=request.user)
    slug = request.headers.get(ORGANIZATION_HEADER, "").strip()
    if slug:
        membership = memberships.filter(organization__slug=slug).first() if is_slug(slug) else None
        if membership is None:
            raise exceptions.NotFound(f"Organization '{slug}' not found.")
        return membership
    found = list(memberships[:21])
    if not found:
        raise exceptions.ValidationError(
            {
                "detail": "You belong to no organization. Create one with POST "
                "/api/modelhub/organizations/ or ask an admin to add you."
            }
        )
    if len(found) > 1:
        slugs = ", ".join(sorted(m.organization.slug for m in found))
        raise exceptions.ValidationError(
            {
                "detail": f"You belong to several organizations ({slugs}); send the "
                f"'{ORGANIZATION_HEADER}: <slug>' header to choose one."
            }
        )
    return found[0]


class RolePermission(permissions.BasePermission):
    """Allows a method when the caller's role in the organization reaches the required one."""

    message = "Your role in this organization does not allow this action."

    def has_permission(self, request, view) -> bool:
        membership = view.membership
        return has_role(membership, view.required_role(request))


class OrganizationHeaderSchema(AutoSchema):
    def get_override_parameters(self):
        return [
            *super().get_override_parameters(),
            OpenApiParameter(
                ORGANIZATION_HEADER,
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                required=False,
                description="Slug of the active organization; needed when you belong to several.",
            ),
        ]


class OrganizationScopedViewSet(viewsets.GenericViewSet):
    """Base of every org-scoped endpoint: resolves the organization and checks roles."""

    permission_classes = [permissions.IsAuthenticated, RolePermission]
    schema = OrganizationHeaderSchema()
    action_roles: dict[str, str] = {}
    # Any path segment reaches the view, so a malformed id ("1.5") is the API's JSON 404
    # rather than the URL resolver's HTML page.
    lookup_value_regex = "[^/]+"

    @cached_property
    def membership(self) -> Membership:
        return resolve_membership(self.request)

    @property
    def organization(self) -> Organization:
        return self.membership.organization

    def required_role(self, request) -> str:
        if self.action in self.action_roles:
            return self.action_roles[self.action]
        return METHOD_ROLES.get(request.method, Role.OWNER)

    @property
    def is_schema_generation(self) -> bool:
        return getattr(self, "swagger_fake_view", False)

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if not self.is_schema_generation and self.request.user.is_authenticated:
            context["organization"] = self.organization
        return context


@extend_schema_field(OpenApiTypes.INT)
class ScopedRelatedField(serializers.PrimaryKeyRelatedField):
    """A primary-key field whose choices are scoped to the active organization.

    ``scope`` is a callable ``(organization, user) -> queryset`` of ``model``. Without an
    organization in the serializer context there are no choices at all (fail closed).
    """

    def __init__(self, *, model, scope, **kwargs):
        self.model = model
        self.scope = scope
        super().__init__(**kwargs)

    def get_queryset(self):
        organization = self.context.get("organization")
        if organization is None:
            return self.model.objects.none()
        request = self.context.get("request")
        return self.scope(organization, getattr(request, "user", None))
