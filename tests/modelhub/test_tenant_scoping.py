"""One scoping mechanism: the base viewset scopes, and cross-tenant reads say so.

Every read of an organization's rows starts at ``for_org`` (or ``visible_to`` for the
catalog, ``of_user`` for a user's memberships); a read that spans organizations on
purpose starts at ``across_tenants(reason=...)``. The scan below fails, naming file and
line, on any other use of these models' managers in the apps' code.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from modelhub.api.tenancy import OrganizationScopedViewSet
from modelhub.models import ModelMetric, ProviderCredential, TenancyError

ROOT = Path(__file__).resolve().parents[2]
APPS = ["modelhub", "gateway", "catalog", "sync"]

# Models whose rows belong to an organization (or, for the catalog, may).
SCOPED_MODELS = [
    "Membership",
    "ProviderCredential",
    "ClientKey",
    "RoutingRule",
    "ModelMetric",
    "Provider",
    "Model",
    "StoredResponse",
    "AuditLogEntry",
    "Webhook",
    "WebhookDelivery",
]
# Where a manager use may start: a scope, the escape hatch, or a write of new rows.
ALLOWED_METHODS = {
    "for_org",
    "visible_to",
    "of_user",
    "global_rows",  # the catalog's global rows: no organization's private ones
    "across_tenants",
    "none",
    "create",
    "bulk_create",
    "bulk_update",
}
USE = re.compile(r"\b(" + "|".join(SCOPED_MODELS) + r")\.objects\s*\.\s*(\w+)")

# Uses in code this check does not own, by (file, model), and why they may cross tenants.
ALLOWED_USES = {
    ("gateway/auth.py", "ClientKey"): "a client key is found by its digest, before any "
    "organization is known",
    ("sync/pipeline.py", "Model"): "the sync and a private provider's discovery read the "
    "models of the one provider they write",
    ("sync/bulk.py", "Model"): "the sync and discovery write the models of one provider by id",
    ("modelhub/services.py", "ClientKey"): "last_used_at of the keys that made gateway "
    "requests, by their ids",
    ("modelhub/services.py", "ProviderCredential"): "usage and health counters of a "
    "credential the caller holds, written by its id",
}
# The base viewset scopes the querysets its subclasses declare, in these modules.
DECLARED_QUERYSET = re.compile(r"^\s*queryset = ")
VIEWSET_MODULES = {"modelhub/api/views.py", "sync/views.py"}


def offenders() -> list[str]:
    found = []
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if "/migrations/" in relative:
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                for match in USE.finditer(line):
                    model, method = match.groups()
                    if method in ALLOWED_METHODS or (relative, model) in ALLOWED_USES:
                        continue
                    if relative in VIEWSET_MODULES and DECLARED_QUERYSET.match(line):
                        continue
                    found.append(f"{relative}:{number}: {line.strip()}")
    return found


def test_reads_of_tenant_rows_are_scoped_or_say_why_they_cross_tenants():
    assert offenders() == []


def test_the_scan_finds_an_unscoped_read(tmp_path, monkeypatch):
    app = tmp_path / "modelhub"
    app.mkdir()
    (app / "leak.py").write_text("keys = ClientKey.objects.filter(name='x')\n")
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    assert offenders() == ["modelhub/leak.py:1: keys = ClientKey.objects.filter(name='x')"]


def test_across_tenants_needs_a_reason(db):
    with pytest.raises(TenancyError):
        ProviderCredential.objects.across_tenants(reason=" ")
    assert list(ModelMetric.objects.across_tenants(reason="a test")) == []


def test_a_scoped_viewset_cannot_define_get_queryset():
    with pytest.raises(TypeError, match="get_queryset"):

        class Leaky(OrganizationScopedViewSet):
            queryset = ProviderCredential.objects.all()

            def get_queryset(self):
                return ProviderCredential.objects.all()


def test_a_mixin_cannot_bring_get_queryset_either():
    class Unscoped:
        def get_queryset(self):
            return ProviderCredential.objects.all()

    with pytest.raises(TypeError, match="Unscoped defines get_queryset"):

        class Leaky(Unscoped, OrganizationScopedViewSet):
            queryset = ProviderCredential.objects.all()


def test_scope_must_be_own_or_visible():
    with pytest.raises(TypeError, match="scope"):

        class Unknown(OrganizationScopedViewSet):
            queryset = ProviderCredential.objects.all()
            scope = "everything"
