"""Fixtures of the management API tests: callers by role and a small private catalog."""

from __future__ import annotations

import pytest

from modelhub.models import Role
from tests.support.api import client_for, make_user
from tests.support.builders import make_model, make_provider


@pytest.fixture
def caller(org, other_org, member_factory):
    """``caller(role)``: an API client acting on ``org`` as that role.

    ``non_member`` belongs to ``other_org`` only and names ``org`` in ``X-Organization``;
    ``anonymous`` sends no token.
    """

    def build(role: str, organization=None):
        organization = organization or org
        if role == "anonymous":
            return client_for(None, organization)
        if role == "non_member":
            return client_for(member_factory(other_org, Role.OWNER), organization)
        return client_for(member_factory(organization, role), organization)

    return build


@pytest.fixture
def owner_client(owner, org):
    return client_for(owner, org)


@pytest.fixture
def admin_client(admin_user, org):
    return client_for(admin_user, org)


@pytest.fixture
def member_client(member, org):
    return client_for(member, org)


@pytest.fixture
def other_admin_client(other_org, member_factory):
    return client_for(member_factory(other_org, Role.ADMIN), other_org)


@pytest.fixture
def staff_admin_client(org, member_factory):
    user = make_user("staff-admin", is_staff=True)
    member_factory(org, Role.ADMIN, user=user)
    return client_for(user, org)


@pytest.fixture
def private_provider(org):
    return make_provider(org, slug="acme-private")


@pytest.fixture
def foreign_provider(other_org):
    return make_provider(other_org, slug="globex-private")


@pytest.fixture
def global_provider(db):
    return make_provider(None, slug="openai", name="OpenAI")


@pytest.fixture
def private_model(private_provider):
    return make_model(private_provider, "acme-llm")


@pytest.fixture
def foreign_model(foreign_provider):
    return make_model(foreign_provider, "globex-llm")


@pytest.fixture
def global_model(global_provider):
    return make_model(global_provider, "gpt-4o-mini")
