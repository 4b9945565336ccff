"""How the active organization is found, for every way in.

The management API names it in the ``X-Organization`` header, the dashboard in ``?org=``
(remembered in the session), the organization URLs in their path. Each is a thin adapter
over :func:`find_membership`, so an organization the user is not in is "not found"
everywhere, exactly like one that does not exist. No DRF here: the dashboard uses it too.
"""

from __future__ import annotations

import re

from django.http import Http404

from modelhub.models import Membership, Organization

SLUG = re.compile(r"[-a-zA-Z0-9_]+")


class OrganizationNotFound(Http404):
    """No organization of that slug among the user's (it may exist for others)."""

    def __init__(self, slug: str):
        super().__init__(f"Organization '{slug}' not found.")


def is_slug(value: str) -> bool:
    """Whether ``value`` could be an organization's slug. Anything else (a NUL byte, say,
    which PostgreSQL refuses in a query) is simply not found, without asking the database."""
    return bool(SLUG.fullmatch(value)) and len(value) <= 100


def user_memberships(user):
    """Every organization the user is in, with the organization loaded."""
    return Membership.objects.of_user(user).select_related("organization")


def find_membership(user, slug: str) -> Membership:
    """The user's membership in the organization ``slug``; :class:`OrganizationNotFound`
    when there is none, whether or not the organization exists."""
    membership = (
        user_memberships(user).filter(organization__slug=slug).first() if is_slug(slug) else None
    )
    if membership is None:
        raise OrganizationNotFound(slug)
    return membership


class AllOrganizations:
    """The staff view of the operator pages over every organization at once.

    Selectors given it instead of an organization read through ``across_tenants``; a
    member's request never resolves to it (see :func:`find_visible_organization`).
    """

    pk = None
    slug = "*"  # never an organization's slug (see SLUG), so the two cannot collide
    name = "All organizations"

    def __str__(self) -> str:
        return self.name


ALL_ORGANIZATIONS = AllOrganizations()


def visible_organizations(user):
    """The organizations the operator pages may show ``user``: every one to staff, their
    own to everybody else."""
    if user.is_staff:
        return Organization.objects.order_by("name")
    return Organization.objects.filter(memberships__user=user).order_by("name")


def find_visible_organization(user, slug: str) -> Organization | AllOrganizations:
    """The organization ``slug`` as the operator pages show it to ``user``: staff may pick
    any organization or all of them (``*``); others only their own. Anything else is
    :class:`OrganizationNotFound`."""
    if user.is_staff:
        if slug == ALL_ORGANIZATIONS.slug:
            return ALL_ORGANIZATIONS
        found = Organization.objects.filter(slug=slug).first() if is_slug(slug) else None
        if found is None:
            raise OrganizationNotFound(slug)
        return found
    return find_membership(user, slug).organization
