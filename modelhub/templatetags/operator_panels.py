"""Panels on the admin index: catalog sync runs and provider-credential health."""

from __future__ import annotations

from django import template
from django.db.models import Count, Max

from modelhub.models import HealthStatus, Model, ProviderCredential, SyncRun

register = template.Library()

RECENT_RUNS = 10


@register.inclusion_tag("admin/operator_panels.html")
def operator_panels():
    # The admin index is for staff and spans every tenant on purpose: operators watch the
    # whole installation here, so these reads are deliberately not organization-scoped.
    runs = list(
        SyncRun.objects.select_related("provider").order_by("-started_at", "-id")[:RECENT_RUNS]
    )
    credentials = ProviderCredential.objects.across_tenants(reason="staff panel")
    health = {status: 0 for status in HealthStatus.values}
    for row in credentials.values("health_status").annotate(n=Count("id")):
        health[row["health_status"]] = row["n"]
    unhealthy = list(
        credentials.exclude(health_status=HealthStatus.HEALTHY)
        .select_related("organization", "provider")
        .order_by("-last_failure_at", "id")[:RECENT_RUNS]
    )
    catalog = Model.objects.across_tenants(reason="staff panel").aggregate(
        models=Count("id"), last_synced=Max("last_synced_at")
    )
    return {
        "runs": runs,
        "health": health,
        "unhealthy": unhealthy,
        "catalog": catalog,
    }
