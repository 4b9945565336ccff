"""Organizations, the active organization of a request, and membership management."""

from __future__ import annotations

import pytest

from modelhub.models import Membership, Organization, Role
from tests.support.api import API, make_user
from tests.support.builders import db_state

ORGS = f"{API}/organizations/"


def members_url(org, pk=None):
    base = f"{ORGS}{org.slug}/members/"
    return f"{base}{pk}/" if pk else base


def membership(user, org):
    return Membership.objects.get(user=user, organization=org)


# --- Organizations ------------------------------------------------------------------------


def test_list_shows_only_my_organizations_with_my_role(org, other_org, member_factory, api_client):
    user = member_factory(org, Role.ADMIN)
    Organization.objects.create(name="Initech", slug="initech")
    response = api_client(user).get(ORGS)
    assert response.status_code == 200
    rows = response.json()["results"]
    assert [(r["slug"], r["role"]) for r in rows] == [("acme", "admin")]


def test_create_makes_the_creator_owner(db, api_client):
    user = make_user("founder")
    response = api_client(user).post(ORGS, {"name": "Research Lab"}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["slug"] == "research-lab"
    assert body["role"] == "owner"
    assert membership(user, Organization.objects.get(slug="research-lab")).role == Role.OWNER


def test_create_with_a_taken_slug_is_400(org, api_client):
    response = api_client(make_user("late")).post(
        ORGS, {"name": "Acme 2", "slug": "acme"}, format="json"
    )
    assert response.status_code == 400
    assert "slug" in response.json()
    assert Organization.objects.count() == 1


def test_create_with_a_name_without_letters_asks_for_a_slug(db, api_client):
    response = api_client(make_user("x")).post(ORGS, {"name": "!!!"}, format="json")
    assert response.status_code == 400
    assert "slug" in response.json()


def test_retrieve(org, member, api_client):
    response = api_client(member).get(f"{ORGS}acme/")
    assert response.status_code == 200
    assert response.json()["name"] == "Acme"
    assert response.json()["role"] == "member"


def test_retrieve_an_organization_i_am_not_in_is_404(org, other_org, member_factory, api_client):
    user = member_factory(other_org, Role.OWNER)
    assert api_client(user).get(f"{ORGS}acme/").status_code == 404


@pytest.mark.parametrize(("role", "status"), [("owner", 200), ("admin", 200), ("member", 403)])
def test_update_needs_admin(role, status, org, member_factory, api_client):
    client = api_client(member_factory(org, role))
    before = db_state()
    response = client.patch(f"{ORGS}acme/", {"name": "Acme Corp"}, format="json")
    assert response.status_code == status
    org.refresh_from_db()
    if status == 200:
        assert org.name == "Acme Corp"
    else:
        assert db_state() == before


@pytest.mark.parametrize(("role", "status"), [("owner", 204), ("admin", 403), ("member", 403)])
def test_delete_is_for_owners_only(role, status, org, member_factory, api_client):
    client = api_client(member_factory(org, role))
    response = client.delete(f"{ORGS}acme/")
    assert response.status_code == status
    assert Organization.objects.filter(pk=org.pk).exists() is (status != 204)


def test_delete_by_a_non_member_is_404(org, other_org, member_factory, api_client):
    client = api_client(member_factory(other_org, Role.OWNER))
    assert client.delete(f"{ORGS}acme/").status_code == 404
    assert Organization.objects.filter(pk=org.pk).exists()


def test_anonymous_is_401(org):
    from rest_framework.test import APIClient

    assert APIClient().get(ORGS).status_code == 401
    assert APIClient().post(ORGS, {"name": "x"}, format="json").status_code == 401


# --- The active organization -----------------------------------------------------------


def test_header_picks_the_organization(org, other_org, member_factory, api_client):
    user = member_factory(org, Role.MEMBER)
    member_factory(other_org, Role.MEMBER, user=user)
    client = api_client(user, other_org)
    response = client.get(f"{API}/client-keys/")
    assert response.status_code == 200
    client_for_acme = api_client(user, org)
    assert client_for_acme.get(f"{API}/client-keys/").status_code == 200


def test_header_chooses_whose_rows_are_written(org, other_org, member_factory, api_client):
    user = member_factory(org, Role.ADMIN)
    member_factory(other_org, Role.ADMIN, user=user)
    response = api_client(user, other_org).post(f"{API}/client-keys/", {"name": "k"}, format="json")
    assert response.status_code == 201
    from modelhub.models import ClientKey

    assert ClientKey.objects.get().organization == other_org


def test_no_header_and_one_membership_works(org, member, api_client):
    assert api_client(member).get(f"{API}/client-keys/").status_code == 200


def test_no_membership_is_400_saying_what_to_send(db, api_client):
    response = api_client(make_user("loner")).get(f"{API}/client-keys/")
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "organization" in detail.lower()
    assert "/api/modelhub/organizations/" in detail


def test_several_memberships_without_header_is_400_naming_it(
    org, other_org, member_factory, api_client
):
    user = member_factory(org, Role.MEMBER)
    member_factory(other_org, Role.MEMBER, user=user)
    response = api_client(user).get(f"{API}/client-keys/")
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "X-Organization" in detail
    assert "acme" in detail and "globex" in detail


def test_header_of_an_organization_i_am_not_in_is_404(org, other_org, member_factory, api_client):
    user = member_factory(other_org, Role.OWNER)
    response = api_client(user, org).get(f"{API}/client-keys/")
    assert response.status_code == 404
    missing = api_client(user)
    missing.defaults["HTTP_X_ORGANIZATION"] = "no-such-org"
    assert missing.get(f"{API}/client-keys/").status_code == 404


# --- Members ------------------------------------------------------------------------------


def test_members_list(org, owner, member, api_client):
    response = api_client(member).get(members_url(org))
    assert response.status_code == 200
    rows = response.json()["results"]
    assert {(r["username"], r["role"]) for r in rows} == {
        (owner.username, "owner"),
        (member.username, "member"),
    }


@pytest.mark.parametrize("by", ["username", "email"])
def test_admin_adds_a_member_by_username_or_email(by, org, admin_user, api_client):
    newcomer = make_user("newcomer", email="New@Example.com")
    value = newcomer.username if by == "username" else "new@example.com"
    response = api_client(admin_user).post(members_url(org), {by: value}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["username"] == "newcomer"
    assert response.json()["role"] == "member"
    assert membership(newcomer, org).role == Role.MEMBER


@pytest.mark.parametrize(
    "payload",
    [{}, {"username": "ghost"}, {"email": "ghost@example.com"}, {"username": "x", "role": "god"}],
)
def test_add_member_bad_input_is_400(payload, org, admin_user, api_client):
    before = db_state()
    response = api_client(admin_user).post(members_url(org), payload, format="json")
    assert response.status_code == 400
    assert db_state() == before


def test_adding_an_existing_member_is_400(org, admin_user, member, api_client):
    response = api_client(admin_user).post(
        members_url(org), {"username": member.username}, format="json"
    )
    assert response.status_code == 400


def test_admin_changes_a_members_role(org, admin_user, member, api_client):
    target = membership(member, org)
    response = api_client(admin_user).patch(
        members_url(org, target.pk), {"role": "admin"}, format="json"
    )
    assert response.status_code == 200
    target.refresh_from_db()
    assert target.role == Role.ADMIN


def test_admin_cannot_add_an_owner(org, admin_user, api_client):
    newcomer = make_user("newcomer")
    before = db_state()
    response = api_client(admin_user).post(
        members_url(org), {"username": "newcomer", "role": "owner"}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["detail"] == "Only owners can manage owners."
    assert db_state() == before
    assert not Membership.objects.filter(user=newcomer).exists()


def test_admin_cannot_promote_to_owner(org, admin_user, member, api_client):
    before = db_state()
    target = membership(member, org)
    response = api_client(admin_user).patch(
        members_url(org, target.pk), {"role": "owner"}, format="json"
    )
    assert response.status_code == 403
    assert db_state() == before


def test_admin_cannot_promote_self_to_owner(org, owner, admin_user, api_client):
    before = db_state()
    target = membership(admin_user, org)
    response = api_client(admin_user).patch(
        members_url(org, target.pk), {"role": "owner"}, format="json"
    )
    assert response.status_code == 403
    assert db_state() == before


def test_admin_cannot_demote_or_remove_an_owner(org, owner, admin_user, member_factory, api_client):
    member_factory(org, Role.OWNER)  # a second owner: the rule, not the last-owner one, applies
    target = membership(owner, org)
    client = api_client(admin_user)
    before = db_state()
    assert (
        client.patch(members_url(org, target.pk), {"role": "member"}, format="json").status_code
        == 403
    )
    assert client.delete(members_url(org, target.pk)).status_code == 403
    assert db_state() == before


def test_owner_promotes_and_demotes_owners(org, owner, admin_user, api_client):
    client = api_client(owner)
    target = membership(admin_user, org)
    assert (
        client.patch(members_url(org, target.pk), {"role": "owner"}, format="json").status_code
        == 200
    )
    target.refresh_from_db()
    assert target.role == Role.OWNER
    assert (
        client.patch(members_url(org, target.pk), {"role": "admin"}, format="json").status_code
        == 200
    )
    target.refresh_from_db()
    assert target.role == Role.ADMIN


def test_owner_removes_another_owner(org, owner, member_factory, api_client):
    second = member_factory(org, Role.OWNER)
    target = membership(second, org)
    assert api_client(owner).delete(members_url(org, target.pk)).status_code == 204
    assert not Membership.objects.filter(pk=target.pk).exists()


def test_last_owner_cannot_be_demoted(org, owner, api_client):
    target = membership(owner, org)
    before = db_state()
    response = api_client(owner).patch(
        members_url(org, target.pk), {"role": "admin"}, format="json"
    )
    assert response.status_code == 400
    assert "last owner" in str(response.json()).lower()
    assert db_state() == before


def test_last_owner_cannot_leave(org, owner, api_client):
    target = membership(owner, org)
    before = db_state()
    response = api_client(owner).delete(members_url(org, target.pk))
    assert response.status_code == 400
    assert "last owner" in response.json()["detail"].lower()
    assert db_state() == before


def test_an_owner_may_leave_when_another_owner_remains(org, owner, member_factory, api_client):
    member_factory(org, Role.OWNER)
    target = membership(owner, org)
    assert api_client(owner).delete(members_url(org, target.pk)).status_code == 204


def test_a_member_can_leave(org, owner, member, api_client):
    target = membership(member, org)
    assert api_client(member).delete(members_url(org, target.pk)).status_code == 204
    assert not Membership.objects.filter(pk=target.pk).exists()


def test_a_member_cannot_remove_someone_else(org, owner, member, member_factory, api_client):
    other = membership(member_factory(org, Role.MEMBER), org)
    before = db_state()
    assert api_client(member).delete(members_url(org, other.pk)).status_code == 403
    assert db_state() == before


def test_a_member_cannot_change_roles(org, owner, member, api_client):
    target = membership(member, org)
    before = db_state()
    response = api_client(member).patch(
        members_url(org, target.pk), {"role": "admin"}, format="json"
    )
    assert response.status_code == 403
    assert db_state() == before


def test_members_of_an_organization_i_am_not_in_are_404(org, other_org, member_factory, api_client):
    client = api_client(member_factory(other_org, Role.OWNER))
    assert client.get(members_url(org)).status_code == 404
