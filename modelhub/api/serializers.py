"""Input and output serializers of the management API (they validate and present only)."""

from __future__ import annotations

from decimal import Decimal

from django.utils.text import slugify
from rest_framework import serializers

from modelhub import selectors
from modelhub.api.tenancy import ScopedRelatedField
from modelhub.models import (
    ClientKey,
    Membership,
    Model,
    ModelMetric,
    ModelType,
    Organization,
    Provider,
    ProviderCredential,
    Role,
    RoutingRule,
    RoutingTarget,
    User,
)

MAX_TOKENS = 10**9  # far above any context window; larger counts are typos or abuse
MAX_UNITS = 10**6  # images, requests, searches


def visible_providers(organization, user):
    return Provider.objects.visible_to(organization)


def editable_providers(organization, user):
    """Providers whose models the caller may add: its own, and global ones for staff."""
    if user is not None and user.is_staff:
        return Provider.objects.visible_to(organization)
    return Provider.objects.for_org(organization)


def visible_models(organization, user):
    return Model.objects.visible_to(organization).select_related("provider")


def org_credentials(organization, user):
    return ProviderCredential.objects.for_org(organization)


def org_client_keys(organization, user):
    return ClientKey.objects.for_org(organization)


def org_rules(organization, user):
    return RoutingRule.objects.for_org(organization)


# --- Organizations ---------------------------------------------------------------------


class OrganizationSerializer(serializers.ModelSerializer):
    """An organization and the caller's role in it."""

    slug = serializers.SlugField(max_length=100, required=False)
    role = serializers.SerializerMethodField()

    class Meta:
        model = Organization
        fields = ["id", "name", "slug", "role", "created_at", "updated_at"]
        read_only_fields = ["id", "role", "created_at", "updated_at"]

    def get_role(self, organization) -> str | None:
        roles = self.context.get("roles") or {}
        return roles.get(organization.pk)

    def validate(self, attrs):
        if self.instance is None and not attrs.get("slug"):
            attrs["slug"] = slugify(attrs.get("name", ""))[:100]
            if not attrs["slug"]:
                raise serializers.ValidationError(
                    {"slug": "Give a slug: the name has no letters to derive one."}
                )
        slug = attrs.get("slug")
        if slug:
            taken = Organization.objects.filter(slug=slug)
            if self.instance is not None:
                taken = taken.exclude(pk=self.instance.pk)
            if taken.exists():
                raise serializers.ValidationError(
                    {"slug": "An organization with this slug already exists."}
                )
        return attrs


class MemberSerializer(serializers.ModelSerializer):
    """A member of an organization."""

    user_id = serializers.IntegerField(source="user.id", read_only=True)
    username = serializers.CharField(source="user.username", read_only=True)
    email = serializers.CharField(source="user.email", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "user_id", "username", "email", "role", "created_at"]
        read_only_fields = fields


class MemberCreateSerializer(serializers.Serializer):
    """Add an existing user by username or email."""

    username = serializers.CharField(required=False, max_length=150)
    email = serializers.EmailField(required=False)
    role = serializers.ChoiceField(choices=Role.choices, default=Role.MEMBER)

    def validate(self, attrs):
        username, email = attrs.get("username"), attrs.get("email")
        if not username and not email:
            raise serializers.ValidationError(
                {"username": "Give the username or the email of the user to add."}
            )
        users = User.objects.filter(is_active=True)
        user = (
            users.filter(username=username).first()
            if username
            else users.filter(email__iexact=email).first()
        )
        if user is None:
            raise serializers.ValidationError(
                {"username": "No active user with this username or email."}
            )
        attrs["user"] = user
        return attrs


class MemberUpdateSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


# --- Catalog ------------------------------------------------------------------------------


class ProviderSerializer(serializers.ModelSerializer):
    """A provider; global rows (``is_global``) come from the catalog sync."""

    is_global = serializers.BooleanField(required=False, default=False)

    class Meta:
        model = Provider
        fields = [
            "id", "name", "slug", "base_url", "api_format", "api_key_env_var", "requires_api_key",
            "description", "site_url", "logo_url", "privacy_policy_url", "terms_of_service_url",
            "status_page_url", "may_log_prompts", "may_train_on_data", "moderated_by_openrouter",
            "needs_moderated", "is_active", "is_global", "last_synced_at", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = ["id", "last_synced_at", "created_at", "updated_at"]
        # Uniqueness per owner is checked in validate(), where the owner is known.
        validators: list = []

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["is_global"] = instance.organization_id is None
        return data

    def validate(self, attrs):
        request = self.context["request"]
        organization = self.context["organization"]
        is_global = attrs.pop("is_global", self.instance.is_global if self.instance else False)
        if is_global and not request.user.is_staff:
            raise serializers.ValidationError(
                {"is_global": "Only staff can create global providers."}
            )
        if self.instance is not None and is_global != self.instance.is_global:
            raise serializers.ValidationError({"is_global": "A provider cannot change owner."})
        owner = None if is_global else organization
        slug = attrs.get("slug", self.instance.slug if self.instance else None)
        clash = Provider.objects.filter(slug=slug, organization=owner)
        if self.instance is not None:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            raise serializers.ValidationError(
                {"slug": "A provider with this slug already exists here."}
            )
        attrs["organization"] = owner
        return attrs


class ModelSerializer(serializers.ModelSerializer):
    """A model as one provider sells it; prices are USD per token."""

    provider = ScopedRelatedField(model=Provider, scope=editable_providers)
    provider_slug = serializers.CharField(source="provider.slug", read_only=True)
    is_global = serializers.SerializerMethodField()

    class Meta:
        model = Model
        fields = [
            "id", "provider", "provider_slug", "model_name", "provider_model_id", "author",
            "canonical_slug", "description", "context_length", "max_completion_tokens", "modality",
            "input_modalities", "output_modalities", "tokenizer", "instruct_type",
            "supports_streaming", "supports_vision", "supports_tools", "supports_json_mode",
            "supported_parameters", "pricing_prompt", "pricing_completion", "pricing_image",
            "pricing_request", "pricing_web_search", "pricing_internal_reasoning",
            "pricing_cache_read", "pricing_cache_write", "hugging_face_id", "upstream_created_at",
            "deprecated_at", "is_active", "is_global", "last_synced_at", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = ["id", "last_synced_at", "created_at", "updated_at"]
        validators: list = []
        extra_kwargs = {
            name: {"min_value": Decimal(0)}
            for name in [
                "pricing_prompt", "pricing_completion", "pricing_image", "pricing_request",
                "pricing_web_search", "pricing_internal_reasoning", "pricing_cache_read",
                "pricing_cache_write",
            ]
        }  # fmt: skip

    def get_is_global(self, model) -> bool:
        return model.provider.organization_id is None

    def validate_input_modalities(self, value):
        return _string_list(value, "input_modalities")

    def validate_output_modalities(self, value):
        return _string_list(value, "output_modalities")

    def validate_supported_parameters(self, value):
        return _string_list(value, "supported_parameters")

    def validate(self, attrs):
        provider = attrs.get("provider", self.instance.provider if self.instance else None)
        model_id = attrs.get(
            "provider_model_id", self.instance.provider_model_id if self.instance else None
        )
        clash = Model.objects.filter(provider=provider, provider_model_id=model_id)
        if self.instance is not None:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            raise serializers.ValidationError(
                {"provider_model_id": "This provider already has a model with this id."}
            )
        return attrs


def _string_list(value, name):
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise serializers.ValidationError(f"{name} must be a list of strings.")
    # PostgreSQL's jsonb cannot hold a NUL character; CharField refuses it too.
    if any("\x00" in v for v in value):
        raise serializers.ValidationError(f"{name} cannot contain null characters.")
    return value


class CostEstimateInputSerializer(serializers.Serializer):
    """Usage to price; every count is a whole, non-negative number."""

    input_tokens = serializers.IntegerField(min_value=0, max_value=MAX_TOKENS, default=0)
    output_tokens = serializers.IntegerField(min_value=0, max_value=MAX_TOKENS, default=0)
    cached_input_tokens = serializers.IntegerField(min_value=0, max_value=MAX_TOKENS, default=0)
    cache_write_tokens = serializers.IntegerField(min_value=0, max_value=MAX_TOKENS, default=0)
    reasoning_tokens = serializers.IntegerField(min_value=0, max_value=MAX_TOKENS, default=0)
    images = serializers.IntegerField(min_value=0, max_value=MAX_UNITS, default=0)
    requests = serializers.IntegerField(min_value=0, max_value=MAX_UNITS, default=0)
    web_searches = serializers.IntegerField(min_value=0, max_value=MAX_UNITS, default=0)


def exact_decimal(**kwargs) -> serializers.DecimalField:
    """A Decimal shown with every digit it has: per-token prices carry up to 18 decimal
    places and counts up to 1e9, so any fixed quantization would round or overflow."""
    return serializers.DecimalField(max_digits=None, decimal_places=None, **kwargs)


class CostEstimateSerializer(serializers.Serializer):
    model = serializers.IntegerField()
    currency = serializers.CharField()
    estimated_cost = exact_decimal(allow_null=True)
    breakdown = serializers.DictField(child=exact_decimal())
    unit_prices = serializers.DictField(child=exact_decimal(allow_null=True))
    missing_prices = serializers.ListField(child=serializers.CharField())
    detail = serializers.CharField(required=False)


# --- Provider credentials -----------------------------------------------------------------


class ProviderCredentialSerializer(serializers.ModelSerializer):
    """A provider credential; the secret is write-only and shown only as ``secret_hint``."""

    provider = ScopedRelatedField(model=Provider, scope=visible_providers)
    provider_slug = serializers.CharField(source="provider.slug", read_only=True)
    # Required on create only (checked in validate): the secret is never shown, so a client
    # replaying a GET into a PUT cannot resend it, and keeping the stored one is right.
    secret = serializers.CharField(
        write_only=True, required=False, max_length=4096, trim_whitespace=True
    )

    class Meta:
        model = ProviderCredential
        fields = [
            "id", "provider", "provider_slug", "name", "secret", "secret_hint", "is_active",
            "priority", "weight", "quota_period", "quota_requests", "quota_tokens", "quota_cost",
            "period_started_at", "used_requests", "used_tokens", "used_cost", "health_status",
            "last_error", "consecutive_failures", "last_success_at", "last_failure_at",
            "cooldown_until", "last_used_at", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = [
            "id", "secret_hint", "period_started_at", "used_requests", "used_tokens", "used_cost",
            "health_status", "last_error", "consecutive_failures", "last_success_at",
            "last_failure_at", "cooldown_until", "last_used_at", "created_at", "updated_at",
        ]  # fmt: skip
        validators: list = []
        extra_kwargs = {
            "priority": {"min_value": -1000, "max_value": 1000},
            "weight": {"min_value": 0, "max_value": 10000},
            "quota_requests": {"max_value": 10**15},
            "quota_tokens": {"max_value": 10**15},
        }

    def validate_secret(self, value):
        if not value:
            raise serializers.ValidationError("The secret cannot be empty.")
        return value

    def validate(self, attrs):
        if self.instance is None and "secret" not in attrs:
            raise serializers.ValidationError({"secret": "This field is required."})
        provider = attrs.get("provider", self.instance.provider if self.instance else None)
        name = attrs.get("name", self.instance.name if self.instance else None)
        clash = ProviderCredential.objects.filter(
            organization=self.context["organization"], provider=provider, name=name
        )
        if self.instance is not None:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            raise serializers.ValidationError(
                {"name": "A credential with this name exists for this provider."}
            )
        return attrs


class QuotaStateSerializer(serializers.Serializer):
    quota = serializers.CharField(source="name")
    limit = serializers.DecimalField(max_digits=30, decimal_places=6, allow_null=True)
    used = serializers.DecimalField(max_digits=30, decimal_places=6)
    remaining = serializers.DecimalField(max_digits=30, decimal_places=6, allow_null=True)
    percent_used = serializers.FloatField(allow_null=True)
    period_start = serializers.DateTimeField()
    resets_at = serializers.DateTimeField()


class QuotaStatusSerializer(serializers.Serializer):
    credential = serializers.IntegerField()
    quota_period = serializers.CharField()
    quotas = QuotaStateSerializer(many=True)


class UsageSummaryItemSerializer(serializers.Serializer):
    credential = serializers.IntegerField()
    name = serializers.CharField()
    provider_slug = serializers.CharField()
    quota_period = serializers.CharField()
    requests = serializers.IntegerField()
    tokens = serializers.IntegerField()
    cost = serializers.DecimalField(max_digits=30, decimal_places=10)


class UsageSummarySerializer(serializers.Serializer):
    credentials = UsageSummaryItemSerializer(many=True)
    total_requests = serializers.IntegerField()
    total_tokens = serializers.IntegerField()
    total_cost = serializers.DecimalField(max_digits=30, decimal_places=10)


class UnhealthyCredentialSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    provider_slug = serializers.CharField(source="provider.slug")
    health_status = serializers.CharField()
    last_error = serializers.CharField()
    consecutive_failures = serializers.IntegerField()
    last_failure_at = serializers.DateTimeField(allow_null=True)
    cooldown_until = serializers.DateTimeField(allow_null=True)


class HealthStatusSerializer(serializers.Serializer):
    counts = serializers.DictField(child=serializers.IntegerField())
    total = serializers.IntegerField()
    unhealthy = UnhealthyCredentialSerializer(many=True)


# --- Client keys --------------------------------------------------------------------------


class ClientKeySerializer(serializers.ModelSerializer):
    """A gateway key; only its prefix is ever shown after creation."""

    is_active = serializers.SerializerMethodField()

    class Meta:
        model = ClientKey
        fields = [
            "id", "name", "prefix", "allowed_models", "rate_limit_rpm", "rate_limit_tpm",
            "budget_amount", "budget_period", "expires_at", "revoked_at", "is_active",
            "last_used_at", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = [
            "id",
            "prefix",
            "revoked_at",
            "last_used_at",
            "created_at",
            "updated_at",
        ]
        extra_kwargs = {
            "rate_limit_rpm": {"max_value": 10**9},
            "rate_limit_tpm": {"max_value": 2 * 10**9},
        }

    def get_is_active(self, client_key) -> bool:
        return client_key.is_usable()

    def validate_allowed_models(self, value):
        return _string_list(value, "allowed_models")


class ClientKeyCreatedSerializer(ClientKeySerializer):
    """The new key, with its full value: store it now, it is never shown again."""

    key = serializers.CharField(read_only=True)

    class Meta(ClientKeySerializer.Meta):
        fields = [*ClientKeySerializer.Meta.fields, "key"]


# --- Routing rules ------------------------------------------------------------------------


class RoutingTargetSerializer(serializers.ModelSerializer):
    model = ScopedRelatedField(model=Model, scope=visible_models)
    credential = ScopedRelatedField(
        model=ProviderCredential, scope=org_credentials, required=False, allow_null=True
    )
    weight = serializers.IntegerField(min_value=0, max_value=10000, default=1)

    class Meta:
        model = RoutingTarget
        fields = ["model", "credential", "weight", "position"]
        read_only_fields = ["position"]

    def validate(self, attrs):
        # A partial update skips missing fields, but a target without a model means nothing.
        if "model" not in attrs:
            raise serializers.ValidationError({"model": "This field is required."})
        credential = attrs.get("credential")
        if credential is not None and credential.provider_id != attrs["model"].provider_id:
            raise serializers.ValidationError(
                {"credential": "The credential belongs to another provider than the model."}
            )
        return attrs


class RuleConditionsSerializer(serializers.Serializer):
    min_input_tokens = serializers.IntegerField(min_value=0, max_value=MAX_TOKENS, required=False)
    max_input_tokens = serializers.IntegerField(min_value=0, max_value=MAX_TOKENS, required=False)
    tags = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, max_length=50
    )


class RoutingRuleSerializer(serializers.ModelSerializer):
    """A rule: what it matches, how it orders its targets, and whether it falls back."""

    targets = RoutingTargetSerializer(many=True)
    conditions = RuleConditionsSerializer(required=False)

    class Meta:
        model = RoutingRule
        fields = [
            "id", "name", "description", "match_model", "model_type", "conditions", "strategy",
            "fallback_enabled", "max_attempts", "priority", "is_active", "targets", "created_at",
            "updated_at",
        ]  # fmt: skip
        read_only_fields = ["id", "created_at", "updated_at"]
        validators: list = []
        extra_kwargs = {
            "max_attempts": {"min_value": 1, "max_value": 10},
            "priority": {"min_value": -10000, "max_value": 10000},
        }

    def validate_targets(self, value):
        if not value:
            raise serializers.ValidationError("A rule needs at least one target.")
        if len(value) > 50:
            raise serializers.ValidationError("A rule has at most 50 targets.")
        return value

    def validate(self, attrs):
        name = attrs.get("name", self.instance.name if self.instance else None)
        clash = RoutingRule.objects.for_org(self.context["organization"]).filter(name=name)
        if self.instance is not None:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            raise serializers.ValidationError({"name": "A rule with this name already exists."})
        conditions = attrs.get("conditions") or {}
        low, high = conditions.get("min_input_tokens"), conditions.get("max_input_tokens")
        if low is not None and high is not None and low > high:
            raise serializers.ValidationError(
                {"conditions": "min_input_tokens is larger than max_input_tokens."}
            )
        return attrs


class EvaluateInputSerializer(serializers.Serializer):
    """A request to route, as the gateway would see it."""

    model_type = serializers.ChoiceField(choices=ModelType.choices, default=ModelType.CHAT)
    model = serializers.CharField(max_length=300)
    fallback_models = serializers.ListField(
        child=serializers.CharField(max_length=300), required=False, max_length=10
    )
    estimated_input_tokens = serializers.IntegerField(min_value=0, max_value=MAX_TOKENS, default=0)
    required_capabilities = serializers.ListField(
        child=serializers.ChoiceField(
            choices=["vision", "tools", "json", "json_mode", "streaming"]
        ),
        required=False,
    )
    tags = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, max_length=50
    )


class PlanCandidateSerializer(serializers.Serializer):
    model = serializers.IntegerField(source="model.pk")
    model_id = serializers.CharField(source="model.catalog_id")
    provider_model_id = serializers.CharField(source="model.provider_model_id")
    provider = serializers.CharField(source="model.provider.slug")
    credential = serializers.IntegerField(source="credential.pk", allow_null=True, default=None)
    credential_source = serializers.CharField()
    pricing_prompt = serializers.DecimalField(
        source="model.pricing_prompt", max_digits=28, decimal_places=18, allow_null=True
    )
    pricing_completion = serializers.DecimalField(
        source="model.pricing_completion", max_digits=28, decimal_places=18, allow_null=True
    )
    context_length = serializers.IntegerField(source="model.context_length", allow_null=True)
    observed_latency_ms = serializers.FloatField(allow_null=True)


class PlanRejectionSerializer(serializers.Serializer):
    model = serializers.IntegerField(source="model.pk", allow_null=True, default=None)
    model_id = serializers.CharField(source="model.catalog_id", allow_null=True, default=None)
    requested = serializers.CharField()
    credential = serializers.IntegerField(source="credential.pk", allow_null=True, default=None)
    reason = serializers.CharField()
    detail = serializers.CharField()


class PlanRuleSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class RoutingPlanSerializer(serializers.Serializer):
    matched_rule = PlanRuleSerializer(source="rule", allow_null=True)
    strategy = serializers.CharField()
    fallback_enabled = serializers.BooleanField()
    max_attempts = serializers.IntegerField()
    candidates = PlanCandidateSerializer(many=True)
    rejected = PlanRejectionSerializer(many=True)
    unresolved = serializers.ListField(child=serializers.CharField())


# --- Metrics ------------------------------------------------------------------------------


class ModelMetricSerializer(serializers.ModelSerializer):
    """One request's usage, cost and timing."""

    client_key = ScopedRelatedField(
        model=ClientKey, scope=org_client_keys, required=False, allow_null=True
    )
    credential = ScopedRelatedField(
        model=ProviderCredential, scope=org_credentials, required=False, allow_null=True
    )
    provider = ScopedRelatedField(
        model=Provider, scope=visible_providers, required=False, allow_null=True
    )
    model = ScopedRelatedField(model=Model, scope=visible_models, required=False, allow_null=True)
    routing_rule = ScopedRelatedField(
        model=RoutingRule, scope=org_rules, required=False, allow_null=True
    )

    class Meta:
        model = ModelMetric
        fields = [
            "id", "client_key", "credential", "provider", "model", "routing_rule", "request_id",
            "model_type", "requested_model", "served_model", "strategy", "input_tokens",
            "output_tokens", "cached_tokens", "total_tokens", "cost", "latency_ms",
            "time_to_first_token_ms", "status_code", "success", "error_type", "error_message",
            "fallbacks_used", "attempts", "streamed", "created_at",
        ]  # fmt: skip
        read_only_fields = ["id"]
        extra_kwargs = {
            "input_tokens": {"max_value": MAX_TOKENS},
            "output_tokens": {"max_value": MAX_TOKENS},
            "cached_tokens": {"max_value": MAX_TOKENS},
            "total_tokens": {"max_value": 2 * MAX_TOKENS, "required": False},
            "latency_ms": {"max_value": 86_400_000},
            "time_to_first_token_ms": {"max_value": 86_400_000},
            "status_code": {"min_value": 100, "max_value": 599},
            "fallbacks_used": {"max_value": 100},
            "attempts": {"min_value": 1, "max_value": 100},
            "cost": {"min_value": Decimal(0)},
            "created_at": {"required": False},
        }


class DateRangeSerializer(serializers.Serializer):
    start = serializers.DateTimeField(required=False)
    end = serializers.DateTimeField(required=False)

    def validate(self, attrs):
        if attrs.get("start") and attrs.get("end") and attrs["start"] > attrs["end"]:
            raise serializers.ValidationError({"start": "start is after end."})
        try:
            selectors.report_range(attrs.get("start"), attrs.get("end"))
        except OverflowError:
            # Without start the range reaches back DEFAULT_REPORT_DAYS, before year 1.
            raise serializers.ValidationError(
                {
                    "end": f"end is too early: without start, a report covers the "
                    f"{selectors.DEFAULT_REPORT_DAYS} days before end."
                }
            )
        return attrs


class _GroupSerializer(serializers.Serializer):
    requests = serializers.IntegerField()
    tokens = serializers.IntegerField()
    cost = serializers.DecimalField(max_digits=30, decimal_places=10)


class CostByModelSerializer(_GroupSerializer):
    model = serializers.IntegerField(allow_null=True)
    served_model = serializers.CharField()


class CostByProviderSerializer(_GroupSerializer):
    provider = serializers.IntegerField(allow_null=True)
    provider_slug = serializers.CharField(allow_null=True)


class CostByDaySerializer(_GroupSerializer):
    date = serializers.DateField()


class CostSummarySerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    total_cost = serializers.DecimalField(max_digits=30, decimal_places=10)
    total_requests = serializers.IntegerField()
    total_tokens = serializers.IntegerField()
    by_model = CostByModelSerializer(many=True)
    by_provider = CostByProviderSerializer(many=True)
    by_day = CostByDaySerializer(many=True)


class StrategyLatencySerializer(serializers.Serializer):
    strategy = serializers.CharField()
    requests = serializers.IntegerField()
    avg_latency_ms = serializers.FloatField(allow_null=True)


class RerouteSavingsSerializer(serializers.Serializer):
    requested_model = serializers.CharField()
    requests = serializers.IntegerField()
    actual_cost = serializers.DecimalField(max_digits=30, decimal_places=10)
    requested_model_cost = serializers.DecimalField(
        max_digits=30, decimal_places=10, allow_null=True
    )
    savings = serializers.DecimalField(max_digits=30, decimal_places=10, allow_null=True)


class OptimizationStatsSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    total_requests = serializers.IntegerField()
    rerouted_requests = serializers.IntegerField()
    requests_with_fallback = serializers.IntegerField()
    fallbacks_taken = serializers.IntegerField()
    estimated_savings = serializers.DecimalField(max_digits=30, decimal_places=10)
    savings_by_requested_model = RerouteSavingsSerializer(many=True)
    latency_by_strategy = StrategyLatencySerializer(many=True)


class DashboardTotalsSerializer(serializers.Serializer):
    requests = serializers.IntegerField()
    successful_requests = serializers.IntegerField()
    failed_requests = serializers.IntegerField()
    error_rate = serializers.FloatField()
    tokens = serializers.IntegerField()
    cost = serializers.DecimalField(max_digits=30, decimal_places=10)
    avg_latency_ms = serializers.FloatField(allow_null=True)
    fallbacks_taken = serializers.IntegerField()


class DashboardDaySerializer(serializers.Serializer):
    date = serializers.DateField()
    requests = serializers.IntegerField()
    errors = serializers.IntegerField()
    tokens = serializers.IntegerField()
    cost = serializers.DecimalField(max_digits=30, decimal_places=10)


class TopKeySerializer(_GroupSerializer):
    client_key = serializers.IntegerField(allow_null=True)
    name = serializers.CharField(allow_null=True)
    prefix = serializers.CharField(allow_null=True)


class ProviderLatencySerializer(serializers.Serializer):
    provider = serializers.IntegerField(allow_null=True)
    provider_slug = serializers.CharField(allow_null=True)
    requests = serializers.IntegerField()
    errors = serializers.IntegerField()
    error_rate = serializers.FloatField()
    fallbacks = serializers.IntegerField()
    avg_latency_ms = serializers.FloatField(allow_null=True)
    p50_ms = serializers.IntegerField(allow_null=True)
    p95_ms = serializers.IntegerField(allow_null=True)


class CredentialQuotaSerializer(serializers.Serializer):
    quota = serializers.CharField()
    limit = serializers.DecimalField(max_digits=30, decimal_places=6, allow_null=True)
    used = serializers.DecimalField(max_digits=30, decimal_places=6)
    percent_used = serializers.FloatField(allow_null=True)
    resets_at = serializers.DateTimeField()


class CredentialOverviewSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    provider_slug = serializers.CharField()
    secret_hint = serializers.CharField()
    is_active = serializers.BooleanField()
    health_status = serializers.CharField()
    last_error = serializers.CharField()
    consecutive_failures = serializers.IntegerField()
    last_failure_at = serializers.DateTimeField(allow_null=True)
    cooldown_until = serializers.DateTimeField(allow_null=True)
    quotas = CredentialQuotaSerializer(many=True)


class DashboardSummarySerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    totals = DashboardTotalsSerializer()
    daily = DashboardDaySerializer(many=True)
    top_models = CostByModelSerializer(many=True)
    top_client_keys = TopKeySerializer(many=True)
    credential_health = serializers.DictField(child=serializers.IntegerField())
    latency_by_provider = ProviderLatencySerializer(many=True)
    credentials = CredentialOverviewSerializer(many=True)
