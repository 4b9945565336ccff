"""The one scoping mechanism of the management API.

:class:`OrganizationScopedViewSet` resolves the request's active organization and
membership, checks the caller's role against one declaration (:data:`METHOD_ROLES`,
narrowed per action with ``action_roles``), and scopes the subclass's declared
``queryset`` to the organization (``scope``: its own rows or the ones it sees). Subclasses
cannot override ``get_queryset``; they narrow the scoped queryset in
``safely_get_queryset``. :class:`ScopedRelatedField` scopes every primary-key field of
input the same way: an id that belongs to another organization is "does not exist".
"""

from __future__ import annotations

from functools import cached_property
from typing import cast

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema_field
from rest_framework import exceptions, permissions, serializers, viewsets

from modelhub.api.openapi import AutoSchema
from modelhub.models import Membership, Organization, Role
from modelhub.tenancy import find_membership, user_memberships

ORGANIZATION_HEADER = "X-Organization"

ROLE_RANK: dict[str, int] = {Role.MEMBER: 1, Role.ADMIN: 2, Role.OWNER: 3}

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

# What ``scope`` may say: the organization's own rows, or every row it sees (the global
# catalog and its private rows).
SCOPES = {"own": "for_org", "visible": "visible_to"}


def has_role(membership: Membership, required: str) -> bool:
    return ROLE_RANK[membership.role] >= ROLE_RANK[required]


def resolve_membership(request) -> Membership:
    """The caller's membership in the active organization.

    ``X-Organization: <slug>`` picks it; without the header the user's only membership
    is used. An organization the user is not in is a 404, like a missing one.
    """
    slug = request.headers.get(ORGANIZATION_HEADER, "").strip()
    if slug:
        return find_membership(request.user, slug)
    found = list(user_memberships(request.user)[:21])
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


def required_role(view, request) -> str:
    """The role an action needs: ``action_roles`` of the view, else :data:`METHOD_ROLES`."""
    roles = getattr(view, "action_roles", {})
    if view.action in roles:
        return roles[view.action]
    return METHOD_ROLES.get(request.method, Role.OWNER)


def _requested_role(request) -> object:
    data = request.data
    return data.get("role") if hasattr(data, "get") else None


class RolePermission(permissions.BasePermission):
    """Every role check of the API: the caller's role in the organization must reach the
    one the action needs (``action_roles``, else :data:`METHOD_ROLES`).

    A view without an organization for the request (``membership`` None: listing or
    creating one's organizations) needs no role. On memberships, two more rules:
    ``other_member_roles`` raises the bar for actions on another member's membership than
    the caller's own (anyone may leave; removing others is for admins), and only owners
    grant, change or remove the owner role (``manages_roles`` views).
    """

    message = "Your role in this organization does not allow this action."

    def has_permission(self, request, view) -> bool:
        membership = view.membership
        if membership is None:
            return True
        if not has_role(membership, required_role(view, request)):
            return False
        if getattr(view, "manages_roles", False) and _requested_role(request) == Role.OWNER:
            return self._owner(membership)
        return True

    def has_object_permission(self, request, view, obj) -> bool:
        if not isinstance(obj, Membership):
            return True
        own = obj.pk == view.membership.pk
        others = getattr(view, "other_member_roles", {})
        if view.action in others and not own and not has_role(view.membership, others[view.action]):
            return False
        if getattr(view, "manages_roles", False) and obj.role == Role.OWNER:
            leaving = own and view.action == "destroy"
            return leaving or self._owner(view.membership)
        return True

    def _owner(self, membership: Membership) -> bool:
        if membership.role != Role.OWNER:
            self.message = "Only owners can manage owners."
            return False
        return True


class GlobalRowPermission(permissions.BasePermission):
    """Rows of the global catalog (``view.owner_of(obj)`` is None) cannot be changed or
    deleted but by staff: the catalog sync maintains them. Actions that only read a row
    (a cost estimate, say) stay open."""

    message = "Global catalog rows are maintained by the catalog sync and are read-only."
    WRITES = ("update", "partial_update", "destroy")

    def has_object_permission(self, request, view, obj) -> bool:
        if view.action not in self.WRITES or request.user.is_staff:
            return True
        return view.owner_of(obj) is not None


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
    """Base of every org-scoped endpoint: resolves the organization, checks roles and
    scopes the declared ``queryset`` (``scope = "own"`` applies ``for_org``,
    ``"visible"`` applies ``visible_to``).

    ``get_queryset`` is this class's alone (defining it in a subclass is a TypeError):
    scoping cannot be forgotten or bypassed. Subclasses narrow the scoped queryset in
    :meth:`safely_get_queryset`.
    """

    permission_classes = [permissions.IsAuthenticated, RolePermission]
    schema = OrganizationHeaderSchema()
    action_roles: dict[str, str] = {}
    scope = "own"
    # Any path segment reaches the view, so a malformed id ("1.5") is the API's JSON 404
    # rather than the URL resolver's HTML page.
    lookup_value_regex = "[^/]+"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for klass in cls.__mro__:
            if klass is OrganizationScopedViewSet:
                break
            if "get_queryset" in vars(klass):
                raise TypeError(
                    f"{klass.__name__} defines get_queryset; {cls.__name__} must declare "
                    "`queryset` and `scope` and narrow them in safely_get_queryset()."
                )
        if cls.scope not in SCOPES:
            raise TypeError(f"{cls.__name__}.scope must be one of {sorted(SCOPES)}.")

    @cached_property
    def membership(self) -> Membership:
        return resolve_membership(self.request)

    @property
    def organization(self) -> Organization:
        return self.membership.organization

    @property
    def is_schema_generation(self) -> bool:
        return getattr(self, "swagger_fake_view", False)

    def get_queryset(self):
        declared = cast(QuerySet, type(self).queryset)
        if self.is_schema_generation:
            return declared.none()
        scoped = getattr(declared, SCOPES[self.scope])(self.organization)
        return self.safely_get_queryset(scoped)

    def safely_get_queryset(self, queryset):
        """Narrow the queryset, already scoped to the organization, for an action."""
        return queryset

    def get_serializer_context(self):
        context = dict(super().get_serializer_context())
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
