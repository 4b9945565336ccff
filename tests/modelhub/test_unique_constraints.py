"""Uniqueness is the models' constraints, checked by the services' full_clean: a clash
is a 400 naming the field to change, on create and on update alike."""

from __future__ import annotations

from modelhub.models import Organization, Provider, RoutingRule
from tests.support.api import API
from tests.support.builders import make_credential, make_model, make_rule


def test_taken_organization_slug_on_update(org, other_org, owner_client):
    response = owner_client.patch(
        f"{API}/organizations/{org.slug}/", {"slug": other_org.slug}, format="json"
    )
    assert response.status_code == 400
    assert response.json() == {"slug": ["An organization with this slug already exists."]}
    assert Organization.objects.filter(slug=org.slug).exists()


def test_taken_global_provider_slug(global_provider, staff_admin_client):
    response = staff_admin_client.post(
        f"{API}/providers/",
        {"name": "Again", "slug": global_provider.slug, "is_global": True},
        format="json",
    )
    assert response.status_code == 400
    assert response.json() == {"slug": ["A provider with this slug already exists here."]}
    assert Provider.objects.global_rows().filter(slug=global_provider.slug).count() == 1


def test_a_private_provider_may_reuse_a_global_slug(global_provider, admin_client):
    response = admin_client.post(
        f"{API}/providers/", {"name": "Mine", "slug": global_provider.slug}, format="json"
    )
    assert response.status_code == 201


def test_renaming_a_model_onto_another_id_at_its_provider(private_provider, admin_client):
    make_model(private_provider, "taken")
    model = make_model(private_provider, "free")
    response = admin_client.patch(
        f"{API}/models/{model.pk}/", {"provider_model_id": "taken"}, format="json"
    )
    assert response.status_code == 400
    assert response.json() == {
        "provider_model_id": ["This provider already has a model with this id."]
    }


def test_renaming_a_credential_onto_a_taken_name(org, private_provider, admin_client):
    make_credential(org, private_provider, name="main")
    other = make_credential(org, private_provider, name="spare")
    response = admin_client.patch(f"{API}/api-keys/{other.pk}/", {"name": "main"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"name": ["A credential with this name exists for this provider."]}


def test_taken_rule_name(org, private_model, admin_client):
    make_rule(org, [private_model], name="fast")
    response = admin_client.post(
        f"{API}/routing-rules/",
        {"name": "fast", "match_model": "*", "targets": [{"model": private_model.pk}]},
        format="json",
    )
    assert response.status_code == 400
    assert response.json() == {"name": ["A rule with this name already exists."]}
    assert RoutingRule.objects.for_org(org).count() == 1
