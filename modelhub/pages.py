"""The operator dashboard: server-rendered pages over the same selectors as the API."""

from __future__ import annotations

from contextlib import suppress
from datetime import date, datetime, time, timedelta

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.utils import timezone

from modelhub import selectors
from modelhub.models import Membership, Model, ProviderCredential
from modelhub.svg_charts import Bar, bar_chart, percent_bar
from modelhub.tenancy import OrganizationNotFound, find_membership, user_memberships

SESSION_KEY = "dashboard_organization"
DAYS = 30


def active_membership(request) -> Membership | None:
    """The organization shown: ``?org=<slug>``, else the last one chosen, else the first.

    An organization the user is not in is a 404, like a missing one.
    """
    wanted = request.GET.get("org")
    if wanted:
        membership = find_membership(request.user, wanted)
    else:
        membership = None
        remembered = request.session.get(SESSION_KEY)
        if remembered:
            # The user may have left it since; then the first one is shown.
            with suppress(OrganizationNotFound):
                membership = find_membership(request.user, remembered)
        membership = membership or (
            user_memberships(request.user).order_by("organization__name").first()
        )
    if membership is not None:
        request.session[SESSION_KEY] = membership.organization.slug
    return membership


def _daily_bars(daily: list[dict], start: date, days: int, key: str, fmt: str) -> list[Bar]:
    by_date = {row["date"]: row for row in daily}
    bars = []
    for offset in range(days):
        day = start + timedelta(days=offset)
        value = by_date.get(day, {}).get(key, 0) or 0
        bars.append(
            Bar(day.strftime("%d %b"), float(value), f"{day:%Y-%m-%d}: {fmt.format(value)}")
        )
    return bars


@login_required
def dashboard(request):
    """Spend, traffic, latency and credential health of one organization, last 30 days."""
    membership = active_membership(request)
    memberships = user_memberships(request.user).order_by("organization__name")
    context = {"memberships": memberships, "membership": membership, "days": DAYS}
    if membership is None:
        return render(request, "dashboard/index.html", context)

    organization = membership.organization
    today = timezone.localdate()
    first_day = today - timedelta(days=DAYS - 1)
    start = timezone.make_aware(datetime.combine(first_day, time.min))
    summary = selectors.dashboard_summary(
        organization=organization, start=start, end=timezone.now()
    )
    slowest = max((row["p95_ms"] or 0 for row in summary["latency_by_provider"]), default=0)
    for row in summary["latency_by_provider"]:
        row["p95_bar"] = percent_bar(
            row["p95_ms"] / slowest * 100 if row["p95_ms"] and slowest else 0
        )
    for credential in summary["credentials"]:
        for quota in credential["quotas"]:
            quota["bar"] = percent_bar(quota["percent_used"])
    label_every = 5
    context.update(
        summary=summary,
        spend_chart=bar_chart(
            _daily_bars(summary["daily"], first_day, DAYS, "cost", "${:.4f}"),
            axis_format="${:g}",
            label_every=label_every,
            aria_label="Spend per day",
        ),
        requests_chart=bar_chart(
            _daily_bars(summary["daily"], first_day, DAYS, "requests", "{} requests"),
            color="#0d9488",
            label_every=label_every,
            aria_label="Requests per day",
        ),
        has_credentials=ProviderCredential.objects.for_org(organization).exists(),
        catalog_empty=not Model.objects.visible_to(organization).filter(is_active=True).exists(),
    )
    return render(request, "dashboard/index.html", context)
