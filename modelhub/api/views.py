"""Viewsets of the management API under ``/api/modelhub/``.

Every org-scoped viewset derives from :class:`OrganizationScopedViewSet`, which resolves
the active organization, checks roles and scopes the queryset each one declares (with
``scope``); each one declares serializers and filters, and calls services.
"""

from __future__ import annotations

from decimal import Decimal
from functools import cached_property
from typing import cast

from django.db.models import Count, Prefetch
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import exceptions, mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from modelhub import selectors, services
from modelhub.api import examples, filters, serializers
from modelhub.api.exports import csv_response
from modelhub.api.pagination import KeysetCursorPagination, keyset_ordering
from modelhub.api.tenancy import GlobalRowPermission, OrganizationScopedViewSet, RolePermission
from modelhub.models import (
    AuditLogEntry,
    ClientKey,
    HealthStatus,
    Membership,
    Model,
    ModelMetric,
    Organization,
    Provider,
    ProviderCredential,
    Role,
    RoutingRule,
    RoutingTarget,
    User,
    Webhook,
    WebhookDelivery,
)
from modelhub.quotas import current_usage, quota_states
from modelhub.routing import ProviderPreferences, RouteRequest, evaluate
from modelhub.tenancy import find_membership

ERRORS = {
    400: OpenApiResponse(description="Invalid input; the body says which field and why."),
    401: OpenApiResponse(description="Missing or invalid JWT."),
    403: OpenApiResponse(description="Your role does not allow this."),
    404: OpenApiResponse(description="Not found in the active organization."),
}
DATE_RANGE_PARAMETERS = [
    OpenApiParameter("start", OpenApiTypes.DATETIME, description="Default: 30 days before end."),
    OpenApiParameter("end", OpenApiTypes.DATETIME, description="Default: now."),
]


def _errors(*codes):
    return {code: ERRORS[code] for code in codes}


# --- Organizations and members -----------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="List my organizations"),
    create=extend_schema(
        summary="Create an organization (you become its owner)", examples=examples.ORGANIZATION
    ),
    retrieve=extend_schema(
        summary="Retrieve an organization",
        responses={200: serializers.OrganizationSerializer, **_errors(401, 404)},
    ),
    update=extend_schema(summary="Update an organization (admins and owners)"),
    partial_update=extend_schema(summary="Update an organization (admins and owners)"),
    destroy=extend_schema(
        summary="Delete an organization (owners only)",
        responses={204: None, **_errors(401, 403, 404)},
    ),
)
class OrganizationViewSet(viewsets.ModelViewSet):
    """Organizations the caller belongs to; the role comes from the caller's membership."""

    serializer_class = serializers.OrganizationSerializer
    permission_classes = [permissions.IsAuthenticated, RolePermission]
    lookup_field = "slug"
    lookup_value_regex = "[^/]+"
    action_roles = {"destroy": Role.OWNER}
    search_fields = ["name", "slug"]
    ordering_fields = ["name", "slug", "created_at"]
    filterset_fields = ["slug"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Organization.objects.none()
        return Organization.objects.filter(memberships__user=self.user).order_by("name")

    @property
    def user(self) -> User:
        # IsAuthenticated has run: never the anonymous user here.
        return cast(User, self.request.user)

    @cached_property
    def membership(self) -> Membership | None:
        """The caller's membership in the organization of the URL; None for the list and
        create, which concern no one organization."""
        if self.lookup_field not in self.kwargs:
            return None
        return find_membership(self.request.user, self.kwargs[self.lookup_field])

    @cached_property
    def roles(self) -> dict[int, str]:
        return dict(
            Membership.objects.of_user(self.request.user).values_list("organization_id", "role")
        )

    def get_serializer_context(self):
        context = dict(super().get_serializer_context())
        if not getattr(self, "swagger_fake_view", False):
            context["roles"] = self.roles
        return context

    def get_object(self):
        # The role was checked (RolePermission) when the membership was found; a detail
        # URL always names an organization.
        return cast(Membership, self.membership).organization

    def perform_create(self, serializer):
        serializer.instance = services.organization_create(
            owner=self.user, **serializer.validated_data
        )
        self.roles[serializer.instance.pk] = Role.OWNER

    def perform_update(self, serializer):
        serializer.instance = services.organization_update(
            organization=serializer.instance, **serializer.validated_data
        )

    def perform_destroy(self, instance):
        services.organization_delete(organization=instance)


class MemberViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    OrganizationScopedViewSet,
):
    """Members of the organization named in the URL."""

    queryset = Membership.objects.select_related("user").order_by("created_at", "id")
    serializer_class = serializers.MemberSerializer
    # Members may remove themselves (leave); removing others needs admin.
    action_roles = {"destroy": Role.MEMBER}
    other_member_roles = {"destroy": Role.ADMIN}
    manages_roles = True
    search_fields = ["user__username", "user__email"]
    ordering_fields = ["created_at", "role"]
    filterset_fields = ["role"]

    @cached_property
    def membership(self) -> Membership:
        return find_membership(self.request.user, self.kwargs["organization_slug"])

    def get_serializer_class(self):
        if self.action == "create":
            return serializers.MemberCreateSerializer
        if self.action in ("update", "partial_update"):
            return serializers.MemberUpdateSerializer
        return serializers.MemberSerializer

    @extend_schema(
        summary="Add a member",
        request=serializers.MemberCreateSerializer,
        responses={201: serializers.MemberSerializer, **_errors(400, 401, 403, 404)},
        examples=examples.MEMBER,
    )
    def create(self, request, *args, **kwargs):
        data = self.get_serializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.membership_add(
            organization=self.organization,
            user=data.validated_data["user"],
            role=data.validated_data["role"],
        )
        return Response(serializers.MemberSerializer(membership).data, status=201)

    @extend_schema(
        summary="Change a member's role",
        request=serializers.MemberUpdateSerializer,
        responses={200: serializers.MemberSerializer, **_errors(400, 401, 403, 404)},
    )
    def update(self, request, *args, **kwargs):
        target = self.get_object()
        data = self.get_serializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.membership_change_role(
            membership=target, role=data.validated_data["role"]
        )
        return Response(serializers.MemberSerializer(membership).data)

    @extend_schema(
        summary="Change a member's role",
        request=serializers.MemberUpdateSerializer,
        responses={200: serializers.MemberSerializer, **_errors(400, 401, 403, 404)},
    )
    def partial_update(self, request, *args, **kwargs):
        return self.update(request, *args, **kwargs)

    @extend_schema(
        summary="Remove a member (or leave)", responses={204: None, **_errors(400, 401, 403, 404)}
    )
    def destroy(self, request, *args, **kwargs):
        target = self.get_object()
        services.membership_remove(membership=target)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Catalog ------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="List global providers and the organization's own"),
    create=extend_schema(summary="Add a private provider (admins)", examples=examples.PROVIDER),
)
class ProviderViewSet(viewsets.ModelViewSet, OrganizationScopedViewSet):
    """Providers: the global catalog plus the active organization's private endpoints."""

    queryset = Provider.objects.all()
    scope = "visible"
    permission_classes = [*OrganizationScopedViewSet.permission_classes, GlobalRowPermission]
    serializer_class = serializers.ProviderSerializer
    filterset_class = filters.ProviderFilter
    search_fields = ["name", "slug", "description"]
    ordering_fields = ["name", "slug", "created_at", "last_synced_at"]
    ordering = ["name", "id"]

    def owner_of(self, provider):
        return provider.organization_id

    def perform_create(self, serializer):
        serializer.instance = services.provider_create(**serializer.validated_data)

    def perform_update(self, serializer):
        serializer.instance = services.provider_update(
            provider=serializer.instance, **serializer.validated_data
        )

    def perform_destroy(self, instance):
        services.provider_delete(provider=instance)


@extend_schema_view(
    list=extend_schema(summary="List models (global catalog and the organization's own)"),
    create=extend_schema(
        summary="Add a model to a private provider (admins)", examples=examples.MODEL
    ),
)
class ModelViewSet(viewsets.ModelViewSet, OrganizationScopedViewSet):
    """Models of the providers the organization sees; prices are USD per token."""

    queryset = Model.objects.select_related("provider")
    scope = "visible"
    permission_classes = [*OrganizationScopedViewSet.permission_classes, GlobalRowPermission]
    serializer_class = serializers.ModelSerializer
    filterset_class = filters.ModelFilter
    search_fields = ["model_name", "provider_model_id", "canonical_slug", "author"]
    ordering_fields = [
        "model_name",
        "provider_model_id",
        "pricing_prompt",
        "pricing_completion",
        "context_length",
        "created_at",
        "upstream_created_at",
    ]
    ordering = ["model_name", "id"]
    action_roles = {"estimate_cost": Role.MEMBER}

    def owner_of(self, model):
        return model.provider.organization_id

    def perform_create(self, serializer):
        serializer.instance = services.model_create(**serializer.validated_data)

    def perform_update(self, serializer):
        serializer.instance = services.model_update(
            model=serializer.instance, **serializer.validated_data
        )

    def perform_destroy(self, instance):
        services.model_delete(model=instance)

    @extend_schema(
        summary="Estimate the cost of a request",
        description=(
            "Prices the given usage at the model's per-token (and per-image, per-request) "
            "prices, in Decimal. Cached input tokens use the cache-read price when the "
            "model has one. A model without the needed prices answers with "
            "`estimated_cost: null` and names the missing prices."
        ),
        request=serializers.CostEstimateInputSerializer,
        responses={200: serializers.CostEstimateSerializer, **_errors(400, 401, 404)},
        examples=examples.COST_ESTIMATE,
    )
    @action(detail=True, methods=["post"])
    def estimate_cost(self, request, pk=None):
        model = self.get_object()
        data = serializers.CostEstimateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        estimate = services.estimate_cost(model=model, usage=data.validated_data)
        body = {
            "model": model.pk,
            "currency": "USD",
            "estimated_cost": None if estimate.missing_prices else estimate.total,
            "breakdown": estimate.breakdown,
            "unit_prices": estimate.unit_prices,
            "missing_prices": estimate.missing_prices,
        }
        if estimate.missing_prices:
            body["detail"] = (
                "This model has no price for: " + ", ".join(estimate.missing_prices) + "."
            )
        return Response(serializers.CostEstimateSerializer(body).data)


# --- Provider credentials -----------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="List provider credentials (secrets are never returned)"),
    create=extend_schema(
        summary="Add a provider credential (admins)", examples=examples.CREDENTIAL
    ),
)
class ProviderCredentialViewSet(viewsets.ModelViewSet, OrganizationScopedViewSet):
    """Provider credentials ("API keys"): encrypted at rest, shown only as a masked hint."""

    queryset = ProviderCredential.objects.select_related("provider")
    serializer_class = serializers.ProviderCredentialSerializer
    filterset_class = filters.ProviderCredentialFilter
    search_fields = ["name", "provider__slug", "secret_hint"]
    ordering_fields = ["name", "priority", "created_at", "last_used_at", "health_status"]
    ordering = ["provider_id", "priority", "id"]

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        serializer.instance = services.provider_credential_create(
            organization=self.organization,
            provider=data.pop("provider"),
            secret=data.pop("secret"),
            name=data.pop("name"),
            **data,
        )

    def perform_update(self, serializer):
        serializer.instance = services.provider_credential_update(
            credential=serializer.instance, **serializer.validated_data
        )

    def perform_destroy(self, instance):
        services.provider_credential_delete(credential=instance)

    @extend_schema(
        summary="Usage per credential and in total for the current period",
        responses={200: serializers.UsageSummarySerializer, **_errors(401)},
    )
    @action(detail=False, methods=["get"])
    def usage_summary(self, request):
        rows: list[dict] = []
        totals: dict[str, int | Decimal] = {"requests": 0, "tokens": 0, "cost": Decimal(0)}
        for credential in self.filter_queryset(self.get_queryset()):
            requests, tokens, cost = current_usage(credential)
            rows.append(
                {
                    "credential": credential.pk,
                    "name": credential.name,
                    "provider_slug": credential.provider.slug,
                    "quota_period": credential.quota_period,
                    "requests": requests,
                    "tokens": tokens,
                    "cost": cost,
                }
            )
            totals["requests"] += requests
            totals["tokens"] += tokens
            totals["cost"] += cost
        body = {
            "credentials": rows,
            "total_requests": totals["requests"],
            "total_tokens": totals["tokens"],
            "total_cost": totals["cost"],
        }
        return Response(serializers.UsageSummarySerializer(body).data)

    @extend_schema(
        summary="Credential health: counts by status and the unhealthy ones",
        responses={200: serializers.HealthStatusSerializer, **_errors(401)},
    )
    @action(detail=False, methods=["get"])
    def health_status(self, request):
        queryset = self.get_queryset()
        counts = {value: 0 for value in HealthStatus.values}
        for row in queryset.values("health_status").annotate(n=Count("id")):
            counts[row["health_status"]] = row["n"]
        unhealthy = queryset.exclude(health_status=HealthStatus.HEALTHY).order_by(
            "-last_failure_at", "id"
        )
        body = {"counts": counts, "total": sum(counts.values()), "unhealthy": list(unhealthy)}
        return Response(serializers.HealthStatusSerializer(body).data)

    @extend_schema(
        summary="State of each quota of a credential",
        responses={200: serializers.QuotaStatusSerializer, **_errors(401, 404)},
    )
    @action(detail=True, methods=["get"])
    def quota_status(self, request, pk=None):
        credential = self.get_object()
        body = {
            "credential": credential.pk,
            "quota_period": credential.quota_period,
            "quotas": quota_states(credential),
        }
        return Response(serializers.QuotaStatusSerializer(body).data)


# --- Client keys --------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="List client keys (prefix only)"),
    retrieve=extend_schema(summary="Retrieve a client key (prefix only)"),
)
class ClientKeyViewSet(viewsets.ModelViewSet, OrganizationScopedViewSet):
    """Keys that applications send to the gateway; the full key is shown once, at creation."""

    queryset = ClientKey.objects.all()
    serializer_class = serializers.ClientKeySerializer
    filterset_class = filters.ClientKeyFilter
    search_fields = ["name", "prefix"]
    ordering_fields = ["name", "created_at", "last_used_at", "expires_at"]
    ordering = ["-created_at", "-id"]

    @extend_schema(
        summary="Create a client key",
        description="The response holds the full key in `key`; it is stored only as a hash and never shown again.",
        responses={201: serializers.ClientKeyCreatedSerializer, **_errors(400, 401, 403)},
        examples=examples.CLIENT_KEY,
    )
    def create(self, request, *args, **kwargs):
        data = self.get_serializer(data=request.data)
        data.is_valid(raise_exception=True)
        issued = services.client_key_create(
            organization=self.organization, created_by=request.user, **data.validated_data
        )
        # Shown this once, by ClientKeyCreatedSerializer.key; never stored.
        issued.client_key.key = issued.raw_key  # type: ignore[attr-defined]
        body = serializers.ClientKeyCreatedSerializer(issued.client_key).data
        return Response(body, status=status.HTTP_201_CREATED)

    def perform_update(self, serializer):
        serializer.instance = services.client_key_update(
            client_key=serializer.instance, **serializer.validated_data
        )

    def perform_destroy(self, instance):
        services.client_key_delete(client_key=instance)

    @extend_schema(
        summary="Revoke a client key",
        request=None,
        responses={200: serializers.ClientKeySerializer, **_errors(401, 403, 404)},
    )
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        client_key = services.client_key_revoke(client_key=self.get_object())
        return Response(serializers.ClientKeySerializer(client_key).data)


# --- Routing rules ------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="List routing rules"),
    create=extend_schema(summary="Create a routing rule (admins)", examples=examples.ROUTING_RULE),
)
class RoutingRuleViewSet(viewsets.ModelViewSet, OrganizationScopedViewSet):
    """Routing rules: which requests they match and the ordered targets they yield."""

    queryset = RoutingRule.objects.prefetch_related(
        Prefetch("targets", queryset=RoutingTarget.objects.order_by("position", "id"))
    )
    serializer_class = serializers.RoutingRuleSerializer
    filterset_class = filters.RoutingRuleFilter
    search_fields = ["name", "match_model", "description"]
    ordering_fields = ["priority", "name", "created_at"]
    ordering = ["priority", "id"]
    action_roles = {"evaluate": Role.MEMBER}

    def _save(self, serializer, rule=None):
        data = dict(serializer.validated_data)
        targets = data.pop("targets", None)
        serializer.instance = services.routing_rule_save(
            organization=self.organization, rule=rule, targets=targets, **data
        )

    def perform_create(self, serializer):
        self._save(serializer)

    def perform_update(self, serializer):
        self._save(serializer, rule=serializer.instance)

    def perform_destroy(self, instance):
        services.routing_rule_delete(rule=instance)

    @extend_schema(
        summary="Evaluate routing for a request",
        description=(
            "Answers with the matched rule (or none), the ordered plan of candidates (model, "
            "provider, credential, unit prices) and, for each model or credential dropped, "
            "why: model_inactive, no_credential, credential_inactive, "
            "credential_cooling_down, over_quota, context_too_small, capability_missing, "
            "fallback_disabled; and, for the request's provider preferences (`provider`, "
            "as the gateway takes it), provider_ignored, provider_not_in_only, "
            "provider_not_in_order, provider_fallbacks_disabled, over_max_price, "
            "data_collection, missing_parameter."
        ),
        request=serializers.EvaluateInputSerializer,
        responses={200: serializers.RoutingPlanSerializer, **_errors(400, 401)},
        examples=examples.EVALUATE,
    )
    @action(detail=False, methods=["post"])
    def evaluate(self, request):
        data = serializers.EvaluateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        preferences = values.get("provider")
        plan = evaluate(
            organization=self.organization,
            request=RouteRequest(
                requested_model=values["model"],
                model_type=values["model_type"],
                fallback_models=tuple(values.get("fallback_models") or ()),
                estimated_input_tokens=values["estimated_input_tokens"],
                required_capabilities=frozenset(values.get("required_capabilities") or ()),
                tags=frozenset(values.get("tags") or ()),
                preferences=(
                    ProviderPreferences.build(**preferences) if preferences is not None else None
                ),
                parameters=frozenset(values.get("parameters") or ()),
            ),
        )
        return Response(serializers.RoutingPlanSerializer(plan).data)


# --- Metrics ------------------------------------------------------------------------------


@extend_schema_view(
    create=extend_schema(summary="Report a request metric (admins)", examples=examples.METRIC),
)
class ModelMetricViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    OrganizationScopedViewSet,
):
    """The request log: one row per gateway request (or one reported through the API),
    with its usage, cost, timing and whose failure it was; and the reports built from
    them (aggregated in the database)."""

    # The credential's secret scrubs stored error text (visible_error_message).
    queryset = ModelMetric.objects.select_related("credential")
    serializer_class = serializers.ModelMetricSerializer
    filterset_class = filters.ModelMetricFilter
    # No OrderingFilter: the keyset pagination orders, and refuses an ordering it has no
    # index for.
    filter_backends = [filters.FilterBackend, filters.SearchFilter]
    pagination_class = KeysetCursorPagination
    search_fields = ["requested_model", "served_model", "request_id"]
    ordering_fields = ["created_at", "cost", "latency_ms"]
    ordering = ["-created_at", "-id"]

    def perform_content_negotiation(self, request, force=False):
        # ?format=csv is the list's export, not a renderer: errors still answer in JSON.
        if self.action == "list" and request.query_params.get("format") == "csv":
            return JSONRenderer(), JSONRenderer.media_type
        return super().perform_content_negotiation(request, force)

    @extend_schema(
        summary="The request log: filter, order and page through requests, or export them",
        description=(
            "Pages by cursor: follow `next` and `previous` as they are. `ordering` is one of "
            "`created_at`, `cost`, `latency_ms`, with `-` for descending (default "
            "`-created_at`). `since` is inclusive and `until` exclusive. `format=csv` "
            "streams every matching row (in the same order, at most "
            "METRICS_EXPORT_MAX_ROWS; a last line starting with `# truncated` says when "
            "more matched) instead of a page."
        ),
        parameters=[
            OpenApiParameter(
                "format",
                OpenApiTypes.STR,
                enum=["json", "csv"],
                description="csv: the whole filtered log as a CSV file.",
            )
        ],
        responses={
            (200, "application/json"): serializers.ModelMetricSerializer(many=True),
            (200, "text/csv"): OpenApiTypes.STR,
            **_errors(400, 401),
        },
    )
    def list(self, request, *args, **kwargs):
        if request.query_params.get("format") != "csv":
            return super().list(request, *args, **kwargs)
        queryset = self.filter_queryset(self.get_queryset())
        ordered = queryset.order_by(*keyset_ordering(request, self))
        return csv_response(request._request, ordered, filename="requests.csv")

    def perform_create(self, serializer):
        serializer.instance = services.metric_create(
            organization=self.organization, **serializer.validated_data
        )

    def _range(self):
        data = serializers.DateRangeSerializer(data=self.request.query_params)
        data.is_valid(raise_exception=True)
        return data.validated_data.get("start"), data.validated_data.get("end")

    def _report(self, selector, serializer_class):
        start, end = self._range()
        body = selector(organization=self.organization, start=start, end=end)
        return Response(serializer_class(body).data)

    @extend_schema(
        summary="Cost over a date range, in total and by model, provider and day",
        parameters=DATE_RANGE_PARAMETERS,
        responses={200: serializers.CostSummarySerializer, **_errors(400, 401)},
    )
    @action(detail=False, methods=["get"])
    def cost_summary(self, request):
        return self._report(selectors.cost_summary, serializers.CostSummarySerializer)

    @extend_schema(
        summary="What routing achieved: reroutes, fallbacks, savings, latency per strategy",
        parameters=DATE_RANGE_PARAMETERS,
        responses={200: serializers.OptimizationStatsSerializer, **_errors(400, 401)},
    )
    @action(detail=False, methods=["get"])
    def optimization_stats(self, request):
        return self._report(selectors.optimization_stats, serializers.OptimizationStatsSerializer)

    @extend_schema(
        summary="Totals, daily series, top models and keys for a dashboard, in one call",
        parameters=DATE_RANGE_PARAMETERS,
        responses={200: serializers.DashboardSummarySerializer, **_errors(400, 401)},
    )
    @action(detail=False, methods=["get"])
    def dashboard_summary(self, request):
        return self._report(selectors.dashboard_summary, serializers.DashboardSummarySerializer)


# --- Audit log ----------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        summary="List changes to the organization, newest first (admins and owners)",
        responses={200: serializers.AuditLogEntrySerializer(many=True), **_errors(400, 401, 403)},
    ),
    retrieve=extend_schema(
        summary="Retrieve one change (admins and owners)",
        responses={200: serializers.AuditLogEntrySerializer, **_errors(401, 403, 404)},
    ),
)
class AuditLogViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrganizationScopedViewSet):
    """Who changed the organization's settings, when, from which address, and what changed:
    the organization, its members, private providers and models, provider credentials
    (never their secrets), client keys (never the key) and routing rules with their
    targets. Changes to the global catalog are not an organization's and are not listed.
    """

    queryset = AuditLogEntry.objects.select_related("actor", "content_type")
    serializer_class = serializers.AuditLogEntrySerializer
    filterset_class = filters.AuditLogFilter
    ordering_fields = ["timestamp"]
    ordering = ["-timestamp", "-id"]
    action_roles = {"list": Role.ADMIN, "retrieve": Role.ADMIN}


# --- Webhooks -----------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="List webhooks (secrets are never returned)"),
    retrieve=extend_schema(summary="Retrieve a webhook"),
    update=extend_schema(summary="Update a webhook (admins)"),
    partial_update=extend_schema(summary="Update a webhook (admins)"),
    destroy=extend_schema(
        summary="Delete a webhook and its deliveries (admins)",
        responses={204: None, **_errors(401, 403, 404)},
    ),
)
class WebhookViewSet(viewsets.ModelViewSet, OrganizationScopedViewSet):
    """Webhooks: signed POSTs when a budget of the organization or of one of its keys
    crosses a threshold (once per budget period), or when a credential turns unhealthy."""

    queryset = Webhook.objects.all()
    serializer_class = serializers.WebhookSerializer
    filterset_fields = ["is_active"]
    search_fields = ["url", "description"]
    ordering_fields = ["created_at", "updated_at"]
    ordering = ["-created_at", "-id"]

    @extend_schema(
        summary="Create a webhook (admins)",
        description="The response holds the signing secret in `secret`; it is stored encrypted and never shown again.",
        responses={201: serializers.WebhookCreatedSerializer, **_errors(400, 401, 403)},
        examples=examples.WEBHOOK,
    )
    def create(self, request, *args, **kwargs):
        data = self.get_serializer(data=request.data)
        data.is_valid(raise_exception=True)
        created = services.webhook_create(organization=self.organization, **data.validated_data)
        # Shown this once, by WebhookCreatedSerializer.secret; stored encrypted.
        created.webhook.secret = created.secret  # type: ignore[attr-defined]
        body = serializers.WebhookCreatedSerializer(created.webhook).data
        return Response(body, status=status.HTTP_201_CREATED)

    def perform_update(self, serializer):
        serializer.instance = services.webhook_update(
            webhook=serializer.instance, **serializer.validated_data
        )

    def perform_destroy(self, instance):
        services.webhook_delete(webhook=instance)


@extend_schema_view(
    list=extend_schema(summary="List a webhook's deliveries, newest first"),
    retrieve=extend_schema(summary="Retrieve one delivery of a webhook"),
)
class WebhookDeliveryViewSet(viewsets.ReadOnlyModelViewSet, OrganizationScopedViewSet):
    """Every event sent to a webhook, with its status, attempts and last error (read only)."""

    queryset = WebhookDelivery.objects.all()
    serializer_class = serializers.WebhookDeliverySerializer
    filterset_fields = ["status", "event"]
    ordering_fields = ["created_at", "last_attempt_at"]
    ordering = ["-created_at", "-id"]

    def safely_get_queryset(self, queryset):
        return queryset.filter(webhook_id=self.webhook.pk)

    @cached_property
    def webhook(self) -> Webhook:
        # Another organization's webhook is a 404, like a missing one.
        found = (
            Webhook.objects.for_org(self.organization)
            .filter(pk=_integer_or_none(self.kwargs.get("webhook_pk")))
            .first()
        )
        if found is None:
            raise exceptions.NotFound("No webhook with this id in the organization.")
        return found


def _integer_or_none(value) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if 0 < number < 2**63 else None
