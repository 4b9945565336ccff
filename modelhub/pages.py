"""The operator dashboard: server-rendered pages over the same selectors as the API."""

from __future__ import annotations

import math
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.utils import timezone

from modelhub import selectors
from modelhub.models import Model, Organization, ProviderCredential
from modelhub.svg_charts import Bar, bar_chart, percent_bar
from modelhub.tenancy import (
    ALL_ORGANIZATIONS,
    AllOrganizations,
    OrganizationNotFound,
    find_visible_organization,
    user_memberships,
    visible_organizations,
)

SESSION_KEY = "dashboard_organization"
DEFAULT_RANGE = "30d"
# The preset ranges: what ``?range=`` accepts, how far back each reaches, and its label.
RANGES = {
    "24h": (timedelta(hours=24), "last 24 h"),
    "7d": (timedelta(days=7), "last 7 days"),
    "30d": (timedelta(days=30), "last 30 days"),
    "90d": (timedelta(days=90), "last 90 days"),
}
# A custom range spans at most this many days (the rollups keep a row per day).
MAX_CUSTOM_DAYS = 366


@dataclass(frozen=True)
class DateRange:
    """The days the dashboard sums, in whole UTC days (the rollups are daily)."""

    first_day: date
    last_day: date
    preset: str  # a key of RANGES, or "custom"
    label: str
    problem: str = ""  # why the asked-for range was replaced, shown on the page

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1


def _preset(name: str, now: datetime, problem: str = "") -> DateRange:
    span, label = RANGES[name]
    return DateRange(
        (now - span).astimezone(UTC).date(), now.astimezone(UTC).date(), name, label, problem
    )


def date_range(params, now: datetime | None = None) -> DateRange:
    """The range asked for by ``?range=<preset>`` or ``?from=YYYY-MM-DD&to=YYYY-MM-DD``;
    anything unusable falls back to the last 30 days with a message saying why."""
    now = now or timezone.now()
    wanted_from, wanted_to = params.get("from", "").strip(), params.get("to", "").strip()
    if wanted_from or wanted_to:
        today = now.astimezone(UTC).date()
        try:
            first = date.fromisoformat(wanted_from) if wanted_from else None
            last = date.fromisoformat(wanted_to) if wanted_to else today
        except ValueError:
            return _preset(
                DEFAULT_RANGE, now, "Dates must look like 2026-01-31; showing the last 30 days."
            )
        if first is None:
            problem = "A custom range needs a start date; showing the last 30 days."
        elif first > today:
            problem = "The range starts in the future; showing the last 30 days."
        elif first > last:
            problem = "The start date is after the end date; showing the last 30 days."
        elif (last - first).days + 1 > MAX_CUSTOM_DAYS:
            problem = (
                f"A custom range spans at most {MAX_CUSTOM_DAYS} days; showing the last 30 days."
            )
        else:
            last = min(last, today)
            return DateRange(first, last, "custom", f"{first:%d %b %Y} – {last:%d %b %Y}")
        return _preset(DEFAULT_RANGE, now, problem)
    name = params.get("range", DEFAULT_RANGE)
    if name not in RANGES:
        choices = ", ".join(RANGES)
        return _preset(
            DEFAULT_RANGE, now, f"Unknown range; choose one of {choices}. Showing the last 30 days."
        )
    return _preset(name, now)


def active_organization(request) -> Organization | AllOrganizations | None:
    """The organization shown: ``?org=<slug>``, else the last one chosen, else the first
    of the user's own; staff may also pick any organization or all of them (``?org=*``),
    and see all of them when they are in none.

    An organization the user may not see is a 404, like a missing one.
    """
    wanted = request.GET.get("org")
    if wanted:
        organization = find_visible_organization(request.user, wanted)
    else:
        organization = None
        remembered = request.session.get(SESSION_KEY)
        if remembered:
            # The user may have left it since; then the first one is shown.
            with suppress(OrganizationNotFound):
                organization = find_visible_organization(request.user, remembered)
        if organization is None:
            membership = user_memberships(request.user).order_by("organization__name").first()
            if membership is not None:
                organization = membership.organization
            elif request.user.is_staff:
                organization = ALL_ORGANIZATIONS
    if organization is not None:
        request.session[SESSION_KEY] = organization.slug
    return organization


def _organization_budget(organization):
    """The organization's own budget use; None for the all-organizations view and for an
    organization without a budget."""
    if organization is ALL_ORGANIZATIONS or organization.budget_amount is None:
        return None
    return selectors.organization_budget_status(organization)


def _budget_bar(status, label: str):
    """A bar of spent / budget, for a key's budget or the organization's."""
    if status is None:
        return None
    return percent_bar(status.percent_used, label=label)


def _daily_bars(daily: list[dict], start: date, days: int, key: str, fmt: str) -> list[Bar]:
    by_date = {row["date"]: row for row in daily}
    # A few bars leave no room under each for the month: the title on hover still has it.
    label = "%d" if days <= 4 else "%d %b"
    bars = []
    for offset in range(days):
        day = start + timedelta(days=offset)
        value = by_date.get(day, {}).get(key, 0) or 0
        bars.append(Bar(day.strftime(label), float(value), f"{day:%Y-%m-%d}: {fmt.format(value)}"))
    return bars


@login_required
def dashboard(request):
    """Spend, traffic, latency, budgets and credential health of one organization (or,
    for staff, of all of them) over a range of days."""
    organization = active_organization(request)
    context = {
        "organizations": visible_organizations(request.user),
        "organization": organization,
        "all_organizations": ALL_ORGANIZATIONS,
        "is_all": organization is ALL_ORGANIZATIONS,
        "ranges": [(name, label) for name, (_, label) in RANGES.items()],
    }
    if organization is None:
        return render(request, "dashboard/index.html", context)

    period = date_range(request.GET)
    start = datetime.combine(period.first_day, time.min, tzinfo=UTC)
    end = datetime.combine(period.last_day, time.max, tzinfo=UTC)
    summary = selectors.dashboard_summary(organization=organization, start=start, end=end)
    slowest = max((row["p95_ms"] or 0 for row in summary["latency_by_provider"]), default=0)
    for row in summary["latency_by_provider"]:
        share = row["p95_ms"] / slowest * 100 if row["p95_ms"] and slowest else 0
        row["p95_bar"] = percent_bar(
            share, label=f"p95 at {share:.0f}% of the slowest provider's", levels=False
        )
    for credential in summary["credentials"]:
        for quota in credential["quotas"]:
            quota["bar"] = percent_bar(quota["percent_used"], label=f"{quota['quota']} quota used")
    budgets_unavailable = ""
    try:
        budgets = selectors.client_key_budget_overview(organization)
    except selectors.LimitCountersUnavailable:
        # The rest of the page comes from the database; say what is missing instead of failing.
        budgets = []
        budgets_unavailable = "The gateway's budget counters (Redis) did not answer; try again."
    for row in budgets:
        row["bar"] = _budget_bar(row["status"], "of the key's budget spent")
    organization_budget = _organization_budget(organization)
    label_every = math.ceil(period.days / 4)  # at most five date labels under a chart
    context.update(
        period=period,
        summary=summary,
        budgets=budgets,
        budgets_unavailable=budgets_unavailable,
        organization_budget=organization_budget,
        organization_budget_bar=_budget_bar(
            organization_budget, "of the organization's budget spent"
        ),
        spend_chart=bar_chart(
            _daily_bars(summary["daily"], period.first_day, period.days, "cost", "${:.4f}"),
            axis_format="${:g}",
            label_every=label_every,
            aria_label="Spend per day",
        ),
        requests_chart=bar_chart(
            _daily_bars(summary["daily"], period.first_day, period.days, "requests", "{} requests"),
            color="#0d9488",
            label_every=label_every,
            aria_label="Requests per day",
        ),
        has_credentials=isinstance(organization, AllOrganizations)
        or ProviderCredential.objects.for_org(organization).exists(),
        catalog_empty=not (
            Model.objects.global_rows()
            if isinstance(organization, AllOrganizations)
            else Model.objects.visible_to(organization)
        )
        .filter(is_active=True)
        .exists(),
    )
    return render(request, "dashboard/index.html", context)
