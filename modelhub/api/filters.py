"""django-filter filtersets of the management API lists, and the filter backends."""

from __future__ import annotations

from datetime import UTC

import django_filters as filters
from django import forms
from django_filters.fields import IsoDateTimeField
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import filters as drf_filters
from rest_framework.exceptions import ValidationError

from modelhub.audit import ACTIONS, object_types
from modelhub.models import (
    AuditLogEntry,
    ClientKey,
    ErrorSource,
    HealthStatus,
    Model,
    ModelMetric,
    ModelType,
    Provider,
    ProviderCredential,
    RoutingRule,
    RoutingStrategy,
)
from modelhub.validators import unusable_text_reason, validate_query_text

# The database's integer range: a larger number in a query string is a 400, not an
# overflow inside the database driver.
INTEGER_MIN, INTEGER_MAX = -(2**63), 2**63 - 1


class IntegerFilter(filters.NumberFilter):
    """A whole number within the database's integer range."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", INTEGER_MIN)
        kwargs.setdefault("max_value", INTEGER_MAX)
        super().__init__(*args, **kwargs)


class _BoundedIsoDateTimeField(IsoDateTimeField):
    def to_python(self, value):
        result = super().to_python(value)
        if result is None:
            return None
        try:
            # The database adapter converts to UTC too; year 1 or 9999 may not survive it.
            return result.astimezone(UTC)
        except OverflowError:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from None


class DateTimeFilter(filters.IsoDateTimeFilter):
    """An ISO 8601 datetime; one that overflows in UTC is invalid, not a crash."""

    field_class = _BoundedIsoDateTimeField


class FilterSet(filters.FilterSet):
    """Text filters refuse what the database cannot compare: NUL characters, unpaired
    surrogates and undecodable bytes are a 400 naming the parameter, not a 500."""

    @classmethod
    def get_filters(cls):
        found = super().get_filters()
        for declared in found.values():
            if isinstance(declared, filters.CharFilter):
                validators = declared.extra.get("validators", [])
                if validate_query_text not in validators:
                    declared.extra["validators"] = [*validators, validate_query_text]
        return found


class FilterBackend(DjangoFilterBackend):
    """django-filter's backend; the filtersets it builds from ``filterset_fields`` get
    the same text checks as the declared ones."""

    filterset_base = FilterSet


class SearchFilter(drf_filters.SearchFilter):
    """DRF's search, with unusable text answered as a 400 naming ``search``."""

    def get_search_terms(self, request):
        value = request.query_params.get(self.search_param, "")
        reason = unusable_text_reason(value)
        if reason is not None:
            raise ValidationError({self.search_param: [f"This value {reason}."]})
        return super().get_search_terms(request)


def id_filter(field_name: str) -> IntegerFilter:
    # Plain ids, not ModelChoiceFilter: a choice filter would answer "invalid choice" for
    # a missing id but filter silently for another organization's, telling them apart.
    return IntegerFilter(field_name=field_name)


class ProviderFilter(FilterSet):
    is_global = filters.BooleanFilter(field_name="organization", lookup_expr="isnull")

    class Meta:
        model = Provider
        fields = ["slug", "api_format", "is_active", "requires_api_key"]


class ModelFilter(FilterSet):
    provider = id_filter("provider")
    provider_slug = filters.CharFilter(field_name="provider__slug")
    modality = filters.CharFilter(field_name="modality", lookup_expr="iexact")
    min_price_prompt = filters.NumberFilter(field_name="pricing_prompt", lookup_expr="gte")
    max_price_prompt = filters.NumberFilter(field_name="pricing_prompt", lookup_expr="lte")
    min_price_completion = filters.NumberFilter(field_name="pricing_completion", lookup_expr="gte")
    max_price_completion = filters.NumberFilter(field_name="pricing_completion", lookup_expr="lte")
    min_context_length = IntegerFilter(field_name="context_length", lookup_expr="gte")
    max_context_length = IntegerFilter(field_name="context_length", lookup_expr="lte")
    is_global = filters.BooleanFilter(field_name="provider__organization", lookup_expr="isnull")

    class Meta:
        model = Model
        fields = [
            "is_active",
            "supports_streaming",
            "supports_vision",
            "supports_tools",
            "supports_json_mode",
            "hugging_face_id",
        ]


class ProviderCredentialFilter(FilterSet):
    provider = id_filter("provider")
    health_status = filters.ChoiceFilter(choices=HealthStatus.choices)

    class Meta:
        model = ProviderCredential
        fields = ["is_active"]


class ClientKeyFilter(FilterSet):
    revoked = filters.BooleanFilter(field_name="revoked_at", lookup_expr="isnull", exclude=True)

    class Meta:
        model = ClientKey
        fields = ["name"]


class RoutingRuleFilter(FilterSet):
    model_type = filters.ChoiceFilter(choices=ModelType.choices)
    strategy = filters.ChoiceFilter(choices=RoutingStrategy.choices)

    class Meta:
        model = RoutingRule
        fields = ["is_active", "match_model"]


class ModelMetricFilter(FilterSet):
    """The request log's filters. ``since`` is inclusive and ``until`` exclusive, so that
    consecutive windows neither overlap nor leave a gap; ``start``/``end`` (both
    inclusive) are the reports' names for the same range."""

    since = DateTimeFilter(
        field_name="created_at", lookup_expr="gte", label="From this time (ISO 8601), inclusive."
    )
    until = DateTimeFilter(
        field_name="created_at", lookup_expr="lt", label="Before this time (ISO 8601), exclusive."
    )
    start = DateTimeFilter(field_name="created_at", lookup_expr="gte")
    end = DateTimeFilter(field_name="created_at", lookup_expr="lte")
    error_source = filters.ChoiceFilter(choices=ErrorSource.choices)
    model_type = filters.ChoiceFilter(choices=ModelType.choices)
    model = id_filter("model")
    provider = id_filter("provider")
    client_key = id_filter("client_key")
    credential = id_filter("credential")
    routing_rule = id_filter("routing_rule")

    class Meta:
        model = ModelMetric
        fields = [
            "success",
            "requested_model",
            "served_model",
            "status_code",
            "streamed",
            "error_type",
        ]

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        data = self.form.cleaned_data
        since, until = data.get("since"), data.get("until")
        if since and until and since >= until:
            raise ValidationError({"since": ["since must be before until."]})
        return queryset


class AuditLogFilter(FilterSet):
    """Filters of the audit log; ``since`` must not be after ``until``."""

    object_type = filters.ChoiceFilter(
        choices=[(name, name) for name in object_types()],
        method="filter_object_type",
        help_text="What changed: " + ", ".join(object_types()) + ".",
    )
    object_id = IntegerFilter(field_name="object_id", help_text="The changed object's id.")
    actor = IntegerFilter(field_name="actor_id", help_text="The id of the user who changed it.")
    action = filters.ChoiceFilter(
        choices=[(name, name) for name in ACTIONS],
        method="filter_action",
        help_text="create, update or delete.",
    )
    since = DateTimeFilter(
        field_name="timestamp", lookup_expr="gte", help_text="Changes at or after this time."
    )
    until = DateTimeFilter(
        field_name="timestamp", lookup_expr="lte", help_text="Changes at or before this time."
    )

    class Meta:
        model = AuditLogEntry
        fields: list[str] = []

    def filter_object_type(self, queryset, name, value):
        app_label, model = object_types()[value]
        return queryset.filter(content_type__app_label=app_label, content_type__model=model)

    def filter_action(self, queryset, name, value):
        return queryset.filter(action=ACTIONS[value])

    def is_valid(self) -> bool:
        if not super().is_valid():
            return False
        since, until = self.form.cleaned_data.get("since"), self.form.cleaned_data.get("until")
        if since and until and since > until:
            self.form.add_error("until", "until must not be before since.")
            return False
        return True
