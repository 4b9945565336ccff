"""Input and output serializers of the management API (they validate and present only)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import cast

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from modelhub import outbound, selectors
from modelhub.api.tenancy import ScopedRelatedField
from modelhub.audit import ACTIONS, object_types
from modelhub.models import (
    AuditLogEntry,
    ClientKey,
    ErrorSource,
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
    Webhook,
    WebhookDelivery,
    WebhookEvent,
)
from modelhub.routing import DATA_COLLECTION_CHOICES, PREFERENCE_SORTS, REQUEST_PARAMETERS

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


class OrganizationListSerializer(serializers.ListSerializer):
    """Reads the budget counters of a page of organizations at once, not one by one."""

    def to_representation(self, data):
        organizations = list(data.all() if hasattr(data, "all") else data)
        # The root serializer's context, which every child reads.
        context = cast(dict, cast(serializers.Serializer, self.child).context)
        context["budget_statuses"] = selectors.organization_budget_statuses(organizations)
        return super().to_representation(organizations)


class OrganizationSerializer(serializers.ModelSerializer):
    """An organization, the caller's role in it, and its limits over all its client keys.

    Members read the limits; admins and owners change them. Each request must fit in the
    limits of its key and of its organization; the 429 says which refused it."""

    slug = serializers.SlugField(
        max_length=100,
        required=False,
        help_text="Unique identifier in URLs and the X-Organization header; derived from the name when omitted.",
    )
    role = serializers.SerializerMethodField(
        help_text="Your role in the organization: owner, admin or member."
    )

    budget_spent = serializers.SerializerMethodField(
        help_text="Spend of all the organization's keys in the current budget period, in USD (finished requests); null without a budget."
    )
    budget_remaining = serializers.SerializerMethodField(
        help_text="What is left of the budget in the current period, in USD (never below 0); null without a budget."
    )
    budget_period_start = serializers.SerializerMethodField(
        help_text="Start of the current budget period (UTC); null without a budget or for a budget without a period."
    )
    budget_period_end = serializers.SerializerMethodField(
        help_text="When the budget resets (UTC); null without a budget or for a budget without a period."
    )

    class Meta:
        model = Organization
        fields = [
            "id", "name", "slug", "role", "budget_amount", "budget_period", "rate_limit_rpm",
            "rate_limit_tpm", "budget_spent", "budget_remaining", "budget_period_start",
            "budget_period_end", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = ["id", "role", "created_at", "updated_at"]
        list_serializer_class = OrganizationListSerializer
        extra_kwargs = {
            "rate_limit_rpm": {"max_value": 10**9},
            "rate_limit_tpm": {"max_value": 2 * 10**9},
            "budget_amount": {"min_value": Decimal(0)},
        }

    def get_role(self, organization) -> str | None:
        roles = self.context.get("roles") or {}
        return roles.get(organization.pk)

    def _budget(self, organization):
        if organization.budget_amount is None:
            return None
        statuses = self.context.get("budget_statuses") or {}
        status = statuses.get(organization.pk)
        return status or selectors.organization_budget_status(organization)

    @extend_schema_field(
        serializers.DecimalField(max_digits=32, decimal_places=12, allow_null=True)
    )
    def get_budget_spent(self, organization) -> str | None:
        status = self._budget(organization)
        return None if status is None else f"{status.spent:.12f}"

    @extend_schema_field(
        serializers.DecimalField(max_digits=32, decimal_places=12, allow_null=True)
    )
    def get_budget_remaining(self, organization) -> str | None:
        status = self._budget(organization)
        return None if status is None or status.remaining is None else f"{status.remaining:.12f}"

    def get_budget_period_start(self, organization) -> datetime | None:
        status = self._budget(organization)
        return None if status is None else status.period_start

    def get_budget_period_end(self, organization) -> datetime | None:
        status = self._budget(organization)
        return None if status is None else status.period_end


class MemberSerializer(serializers.ModelSerializer):
    """A member of an organization."""

    user_id = serializers.IntegerField(source="user.id", read_only=True, help_text="The user's id.")
    username = serializers.CharField(
        source="user.username", read_only=True, help_text="The user's login name."
    )
    email = serializers.CharField(
        source="user.email", read_only=True, help_text="The user's email address."
    )

    class Meta:
        model = Membership
        fields = ["id", "user_id", "username", "email", "role", "created_at"]
        read_only_fields = fields


class MemberCreateSerializer(serializers.Serializer):
    """Add an existing user by username or email."""

    username = serializers.CharField(
        required=False,
        max_length=150,
        help_text="Login name of an existing user to add (or give email).",
    )
    email = serializers.EmailField(
        required=False, help_text="Email address of an existing user to add (or give username)."
    )
    role = serializers.ChoiceField(
        choices=Role.choices, default=Role.MEMBER, help_text="owner, admin or member (default)."
    )

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
    role = serializers.ChoiceField(
        choices=Role.choices, help_text="The member's new role: owner, admin or member."
    )


# --- Catalog ------------------------------------------------------------------------------


class ProviderSerializer(serializers.ModelSerializer):
    """A provider; global rows (``is_global``) come from the catalog sync."""

    is_global = serializers.BooleanField(
        required=False,
        default=False,
        help_text="A catalog provider visible to every organization (staff only); false for your organization's private one.",
    )

    class Meta:
        model = Provider
        fields = [
            "id", "name", "slug", "base_url", "api_format", "api_key_env_var", "requires_api_key",
            "description", "site_url", "logo_url", "privacy_policy_url", "terms_of_service_url",
            "status_page_url", "may_log_prompts", "may_train_on_data", "moderated_by_openrouter",
            "needs_moderated", "is_active", "is_global", "last_synced_at", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = ["id", "last_synced_at", "created_at", "updated_at"]
        # Uniqueness per owner is the model's constraint, checked by the service.
        validators: list = []

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["is_global"] = instance.organization_id is None
        return data

    def validate_base_url(self, value: str) -> str:
        # The gateway sends requests, with the credential, to this URL: it passes the
        # outbound address policy (host names are checked again when resolved).
        if value:
            try:
                outbound.check_url(value)
            except outbound.OutboundURLRefused as exc:
                raise serializers.ValidationError(exc.message) from exc
        return value

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
        attrs["organization"] = None if is_global else organization
        return attrs


class ModelSerializer(serializers.ModelSerializer):
    """A model as one provider sells it; prices are USD per token."""

    provider = ScopedRelatedField(
        model=Provider,
        scope=editable_providers,
        help_text="The provider selling the model (its id): one of your organization's private providers (staff may name global ones).",
    )
    provider_slug = serializers.CharField(
        source="provider.slug",
        read_only=True,
        help_text='The provider\'s slug; call the model as "<provider_slug>/<provider_model_id>".',
    )
    is_global = serializers.SerializerMethodField(
        help_text="The model belongs to a global catalog provider."
    )

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


def _string_list(value, name):
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise serializers.ValidationError(f"{name} must be a list of strings.")
    # PostgreSQL's jsonb cannot hold a NUL character; CharField refuses it too.
    if any("\x00" in v for v in value):
        raise serializers.ValidationError(f"{name} cannot contain null characters.")
    return value


class CostEstimateInputSerializer(serializers.Serializer):
    """Usage to price; every count is a whole, non-negative number."""

    input_tokens = serializers.IntegerField(
        min_value=0, max_value=MAX_TOKENS, default=0, help_text="Prompt tokens."
    )
    output_tokens = serializers.IntegerField(
        min_value=0, max_value=MAX_TOKENS, default=0, help_text="Completion tokens."
    )
    cached_input_tokens = serializers.IntegerField(
        min_value=0,
        max_value=MAX_TOKENS,
        default=0,
        help_text="Prompt tokens read from the provider's cache (priced as cache reads).",
    )
    cache_write_tokens = serializers.IntegerField(
        min_value=0,
        max_value=MAX_TOKENS,
        default=0,
        help_text="Prompt tokens written to the provider's cache.",
    )
    reasoning_tokens = serializers.IntegerField(
        min_value=0, max_value=MAX_TOKENS, default=0, help_text="Reasoning tokens."
    )
    images = serializers.IntegerField(
        min_value=0, max_value=MAX_UNITS, default=0, help_text="Input images."
    )
    requests = serializers.IntegerField(
        min_value=0, max_value=MAX_UNITS, default=0, help_text="Requests (for per-request prices)."
    )
    web_searches = serializers.IntegerField(
        min_value=0, max_value=MAX_UNITS, default=0, help_text="Web searches."
    )


def exact_decimal(**kwargs) -> serializers.DecimalField:
    """A Decimal shown with every digit it has: per-token prices carry up to 18 decimal
    places and counts up to 1e9, so any fixed quantization would round or overflow."""
    return serializers.DecimalField(max_digits=None, decimal_places=None, **kwargs)


class CostEstimateSerializer(serializers.Serializer):
    model = serializers.IntegerField(help_text="The model priced (its id).")
    currency = serializers.CharField(help_text="Always USD.")
    estimated_cost = exact_decimal(
        allow_null=True, help_text="The total; null when a needed price is unknown."
    )
    breakdown = serializers.DictField(
        child=exact_decimal(), help_text="Cost of each priced part (prompt, completion, ...)."
    )
    unit_prices = serializers.DictField(
        child=exact_decimal(allow_null=True), help_text="The model's prices used, USD per unit."
    )
    missing_prices = serializers.ListField(
        child=serializers.CharField(), help_text="Parts with usage but no known price."
    )
    detail = serializers.CharField(
        required=False, help_text="Why the estimate is incomplete, when it is."
    )


# --- Provider credentials -----------------------------------------------------------------


class ProviderCredentialSerializer(serializers.ModelSerializer):
    """A provider credential; the secret is write-only and shown only as ``secret_hint``."""

    provider = ScopedRelatedField(
        model=Provider,
        scope=visible_providers,
        help_text="The provider this secret is for (its id): a global one or one of your organization's.",
    )
    provider_slug = serializers.CharField(
        source="provider.slug", read_only=True, help_text="The provider's slug."
    )
    # Required on create only (checked in validate): the secret is never shown, so a client
    # replaying a GET into a PUT cannot resend it, and keeping the stored one is right.
    secret = serializers.CharField(
        write_only=True,
        required=False,
        max_length=4096,
        trim_whitespace=True,
        help_text="The provider's API key; stored encrypted, never returned (see secret_hint). Required on create; omit it to keep the stored one.",
    )
    last_error = serializers.CharField(
        source="visible_last_error",
        read_only=True,
        help_text="The last upstream error of this credential, with its secret removed.",
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
        return attrs


class QuotaStateSerializer(serializers.Serializer):
    quota = serializers.CharField(source="name", help_text="requests, tokens or cost.")
    limit = serializers.DecimalField(
        min_value=0,
        max_digits=30,
        decimal_places=6,
        allow_null=True,
        help_text="The quota; null for no limit.",
    )
    used = serializers.DecimalField(
        min_value=0, max_digits=30, decimal_places=6, help_text="Used in the current period."
    )
    remaining = serializers.DecimalField(
        max_digits=30,
        decimal_places=6,
        allow_null=True,
        help_text="Left in the current period; null for no limit.",
    )
    percent_used = serializers.FloatField(
        allow_null=True, help_text="used / limit in percent; null for no limit."
    )
    period_start = serializers.DateTimeField(help_text="Start of the current period.")
    resets_at = serializers.DateTimeField(help_text="When the counters reset.")


class QuotaStatusSerializer(serializers.Serializer):
    credential = serializers.IntegerField(help_text="The credential (its id).")
    quota_period = serializers.CharField(help_text="hour, day, week or month.")
    quotas = QuotaStateSerializer(many=True, help_text="One entry per quota.")


class UsageSummaryItemSerializer(serializers.Serializer):
    credential = serializers.IntegerField(help_text="The credential (its id).")
    name = serializers.CharField(help_text="The credential's name.")
    provider_slug = serializers.CharField(help_text="Its provider's slug.")
    quota_period = serializers.CharField(help_text="hour, day, week or month.")
    requests = serializers.IntegerField(help_text="Requests in the current period.")
    tokens = serializers.IntegerField(help_text="Tokens in the current period.")
    cost = serializers.DecimalField(
        min_value=0,
        max_digits=30,
        decimal_places=10,
        help_text="Spend in USD in the current period.",
    )


class UsageSummarySerializer(serializers.Serializer):
    credentials = UsageSummaryItemSerializer(many=True, help_text="One entry per credential.")
    total_requests = serializers.IntegerField(help_text="Requests of every credential.")
    total_tokens = serializers.IntegerField(help_text="Tokens of every credential.")
    total_cost = serializers.DecimalField(
        min_value=0, max_digits=30, decimal_places=10, help_text="Spend in USD of every credential."
    )


class UnhealthyCredentialSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The credential's id.")
    name = serializers.CharField(help_text="The credential's name.")
    provider_slug = serializers.CharField(source="provider.slug", help_text="Its provider's slug.")
    health_status = serializers.CharField(help_text="degraded or unhealthy.")
    last_error = serializers.CharField(
        source="visible_last_error", help_text="The last upstream error, credentials removed."
    )
    consecutive_failures = serializers.IntegerField(help_text="Failures since the last success.")
    last_failure_at = serializers.DateTimeField(
        allow_null=True, help_text="When a call last failed."
    )
    cooldown_until = serializers.DateTimeField(
        allow_null=True, help_text="Not used before this time."
    )


class HealthStatusSerializer(serializers.Serializer):
    counts = serializers.DictField(
        child=serializers.IntegerField(), help_text="Credentials per health status."
    )
    total = serializers.IntegerField(help_text="Credentials in all.")
    unhealthy = UnhealthyCredentialSerializer(
        many=True, help_text="The credentials that are not healthy."
    )


# --- Client keys --------------------------------------------------------------------------


class ClientKeySerializer(serializers.ModelSerializer):
    """A gateway key; only its prefix is ever shown after creation."""

    is_active = serializers.SerializerMethodField(help_text="Neither revoked nor expired.")

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

    key = serializers.CharField(
        read_only=True,
        help_text='The full key, shown this once: send it as "Authorization: Bearer <key>" to /v1.',
    )

    class Meta(ClientKeySerializer.Meta):
        fields = [*ClientKeySerializer.Meta.fields, "key"]


# --- Routing rules ------------------------------------------------------------------------


class RoutingTargetSerializer(serializers.ModelSerializer):
    model = ScopedRelatedField(
        model=Model,
        scope=visible_models,
        help_text="The model to call (its id): from the catalog or your private providers.",
    )
    credential = ScopedRelatedField(
        model=ProviderCredential,
        scope=org_credentials,
        required=False,
        allow_null=True,
        help_text="Pin one of your credentials of the model's provider (its id); null to let the gateway choose.",
    )
    weight = serializers.IntegerField(
        min_value=0,
        max_value=10000,
        default=1,
        help_text="Share of traffic under the weighted strategy (0 to 10000).",
    )

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
    min_input_tokens = serializers.IntegerField(
        min_value=0,
        max_value=MAX_TOKENS,
        required=False,
        help_text="Match only requests with at least this many estimated input tokens.",
    )
    max_input_tokens = serializers.IntegerField(
        min_value=0,
        max_value=MAX_TOKENS,
        required=False,
        help_text="Match only requests with at most this many estimated input tokens.",
    )
    tags = serializers.ListField(
        child=serializers.CharField(max_length=100),
        required=False,
        max_length=50,
        help_text="Match only requests whose metadata carries every one of these tags.",
    )


class RoutingRuleSerializer(serializers.ModelSerializer):
    """A rule: what it matches, how it orders its targets, and whether it falls back."""

    targets = RoutingTargetSerializer(many=True, help_text="The models to try, in order (1 to 50).")
    conditions = RuleConditionsSerializer(
        required=False, help_text="Further conditions, all of which must hold."
    )

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
        conditions = attrs.get("conditions") or {}
        low, high = conditions.get("min_input_tokens"), conditions.get("max_input_tokens")
        if low is not None and high is not None and low > high:
            raise serializers.ValidationError(
                {"conditions": "min_input_tokens is larger than max_input_tokens."}
            )
        return attrs


class KnownKeysOnly(serializers.Serializer):
    """Refuses keys the serializer has no field for, naming them, instead of dropping
    them: a misspelt preference must not pass for one that was applied."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = [key for key in data if key not in self.fields]
            if unknown:
                known = ", ".join(self.fields)
                raise serializers.ValidationError(
                    {key: [f"Unknown key; this object takes {known}."] for key in unknown}
                )
        return super().to_internal_value(data)


def _price_ceiling(help_text: str):
    return serializers.DecimalField(
        max_digits=30,
        decimal_places=12,
        min_value=0,
        required=False,
        allow_null=True,
        help_text=help_text,
    )


class ProviderMaxPriceSerializer(KnownKeysOnly):
    prompt = _price_ceiling("Highest price accepted per million prompt tokens, in USD.")
    completion = _price_ceiling("Highest price accepted per million completion tokens, in USD.")
    request = _price_ceiling("Highest price accepted per request, in USD.")
    image = _price_ceiling("Highest price accepted per input image, in USD.")


def _slug_list(help_text: str):
    return serializers.ListField(
        child=serializers.CharField(max_length=100),
        required=False,
        allow_null=True,
        max_length=50,
        help_text=help_text,
    )


class ProviderPreferencesSerializer(KnownKeysOnly):
    """OpenRouter-style provider preferences: they narrow and reorder the candidates the
    organization's routing rules and the catalog yield, never add one. An unknown key is
    refused."""

    order = _slug_list(
        "Provider slugs to try first, in this order; the others follow unless "
        "`allow_fallbacks` is false."
    )
    only = _slug_list("Provider slugs allowed to serve the request; no others.")
    ignore = _slug_list("Provider slugs never to use for this request.")
    allow_fallbacks = serializers.BooleanField(
        required=False,
        allow_null=True,
        help_text=(
            "Default true. False: only the providers of `order` (or `only`) may serve; with "
            "neither, only the first provider of the plan."
        ),
    )
    sort = serializers.ChoiceField(
        choices=PREFERENCE_SORTS,
        required=False,
        allow_null=True,
        help_text=(
            "Order the candidates by catalog price (prompt plus completion), observed "
            "latency, or observed throughput (output tokens per second), over the last day."
        ),
    )
    max_price = ProviderMaxPriceSerializer(
        required=False,
        allow_null=True,
        help_text="Refuse models dearer than these prices (catalog prices of each provider).",
    )
    data_collection = serializers.ChoiceField(
        choices=DATA_COLLECTION_CHOICES,
        required=False,
        allow_null=True,
        help_text=(
            '"deny" keeps only providers the catalog knows neither train on nor retain '
            "prompts; an unknown policy counts as not allowed."
        ),
    )
    require_parameters = serializers.BooleanField(
        required=False,
        allow_null=True,
        help_text="Only models that support every generation parameter of the request.",
    )


class EvaluateInputSerializer(serializers.Serializer):
    """A request to route, as the gateway would see it."""

    model_type = serializers.ChoiceField(
        choices=ModelType.choices,
        default=ModelType.CHAT,
        help_text="chat, completion or embedding.",
    )
    model = serializers.CharField(max_length=300, help_text="The requested model or alias.")
    fallback_models = serializers.ListField(
        child=serializers.CharField(max_length=300),
        required=False,
        max_length=10,
        help_text="Fallbacks the request names (the `models` field of the gateway).",
    )
    estimated_input_tokens = serializers.IntegerField(
        min_value=0,
        max_value=MAX_TOKENS,
        default=0,
        help_text="Estimated prompt tokens, for token conditions.",
    )
    required_capabilities = serializers.ListField(
        child=serializers.ChoiceField(
            choices=["vision", "tools", "json", "json_mode", "streaming"]
        ),
        required=False,
        help_text="Capabilities the candidates must have.",
    )
    tags = serializers.ListField(
        child=serializers.CharField(max_length=100),
        required=False,
        max_length=50,
        help_text="Tags of the request's metadata.",
    )
    provider = ProviderPreferencesSerializer(
        required=False,
        allow_null=True,
        help_text="The request's provider preferences, as the gateway takes them.",
    )
    parameters = serializers.ListField(
        child=serializers.ChoiceField(choices=sorted(REQUEST_PARAMETERS)),
        required=False,
        max_length=len(REQUEST_PARAMETERS),
        help_text=(
            "Generation parameters the request sets (tools, response_format, temperature, "
            "...), checked when `provider.require_parameters` is true."
        ),
    )


class PlanCandidateSerializer(serializers.Serializer):
    model = serializers.IntegerField(source="model.pk", help_text="The model's id.")
    model_id = serializers.CharField(
        source="model.catalog_id", help_text="Its catalog id, provider/model."
    )
    provider_model_id = serializers.CharField(
        source="model.provider_model_id", help_text="The name sent upstream."
    )
    provider = serializers.CharField(source="model.provider.slug", help_text="The provider's slug.")
    credential = serializers.IntegerField(
        source="credential.pk",
        allow_null=True,
        default=None,
        help_text="The credential that would be used (its id); null for an environment key or none.",
    )
    credential_source = serializers.CharField(help_text="organization, environment or none.")
    pricing_prompt = serializers.DecimalField(
        min_value=0,
        source="model.pricing_prompt",
        max_digits=28,
        decimal_places=18,
        allow_null=True,
        help_text="USD per prompt token.",
    )
    pricing_completion = serializers.DecimalField(
        min_value=0,
        source="model.pricing_completion",
        max_digits=28,
        decimal_places=18,
        allow_null=True,
        help_text="USD per completion token.",
    )
    context_length = serializers.IntegerField(
        source="model.context_length", allow_null=True, help_text="Context window in tokens."
    )
    observed_latency_ms = serializers.FloatField(
        allow_null=True, help_text="Average latency seen recently, in milliseconds."
    )
    observed_throughput = serializers.FloatField(
        allow_null=True,
        help_text=(
            "Output tokens per second seen recently; only read for the throughput preference."
        ),
    )


class PlanRejectionSerializer(serializers.Serializer):
    model = serializers.IntegerField(
        source="model.pk",
        allow_null=True,
        default=None,
        help_text="The model's id, when one was found.",
    )
    model_id = serializers.CharField(
        source="model.catalog_id", allow_null=True, default=None, help_text="Its catalog id."
    )
    requested = serializers.CharField(help_text="The name that was asked for.")
    credential = serializers.IntegerField(
        source="credential.pk",
        allow_null=True,
        default=None,
        help_text="The credential involved (its id).",
    )
    reason = serializers.CharField(
        help_text=(
            "A code: model_inactive, no_credential, credential_inactive, "
            "credential_cooling_down, over_quota, context_too_small, capability_missing, "
            "fallback_disabled, duplicate; from the provider preferences: provider_ignored, "
            "provider_not_in_only, provider_not_in_order, provider_fallbacks_disabled, "
            "over_max_price, data_collection, missing_parameter."
        )
    )
    detail = serializers.CharField(help_text="The reason in words.")


class PlanRuleSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The rule's id.")
    name = serializers.CharField(help_text="The rule's name.")


class RoutingPlanSerializer(serializers.Serializer):
    matched_rule = PlanRuleSerializer(
        source="rule", allow_null=True, help_text="The rule that matched; null when none did."
    )
    strategy = serializers.CharField(help_text="The strategy applied.")
    fallback_enabled = serializers.BooleanField(
        help_text="Whether failures fall back to the next candidate."
    )
    max_attempts = serializers.IntegerField(help_text="Most upstream calls.")
    candidates = PlanCandidateSerializer(
        many=True, help_text="The candidates, in the order they would be tried."
    )
    rejected = PlanRejectionSerializer(many=True, help_text="Candidates left out, and why.")
    unresolved = serializers.ListField(
        child=serializers.CharField(), help_text="Requested names that match no model."
    )


# --- Metrics ------------------------------------------------------------------------------


class FailedAttemptSerializer(serializers.Serializer):
    """One upstream attempt that failed, and whose it was."""

    provider = serializers.IntegerField(help_text="The provider that failed (its id).")
    credential = serializers.IntegerField(
        allow_null=True, help_text="The provider credential used (its id); null for none."
    )
    model = serializers.IntegerField(help_text="The model asked for (its id).")
    error_type = serializers.CharField(
        help_text="How it failed: timeout, connection, http_503, client_error, ..."
    )
    status_code = serializers.IntegerField(
        allow_null=True, help_text="The upstream's HTTP status; null when none came back."
    )


class ModelMetricSerializer(serializers.ModelSerializer):
    """One request's usage, cost and timing."""

    error_source = serializers.ChoiceField(
        choices=ErrorSource.choices,
        allow_blank=True,
        read_only=True,
        help_text="Whose failure it was: client (the caller's input or limits), provider "
        "(upstream errors, timeouts, upstream 429) or gateway; empty for a success.",
    )
    failed_attempts = FailedAttemptSerializer(
        many=True,
        read_only=True,
        help_text="Each failed upstream attempt, in order, including those the request "
        "fell back from.",
    )

    client_key = ScopedRelatedField(
        model=ClientKey,
        scope=org_client_keys,
        required=False,
        allow_null=True,
        help_text="The client key that made the request (its id).",
    )
    credential = ScopedRelatedField(
        model=ProviderCredential,
        scope=org_credentials,
        required=False,
        allow_null=True,
        help_text="The provider credential used (its id).",
    )
    provider = ScopedRelatedField(
        model=Provider,
        scope=visible_providers,
        required=False,
        allow_null=True,
        help_text="The provider that served (its id).",
    )
    model = ScopedRelatedField(
        model=Model,
        scope=visible_models,
        required=False,
        allow_null=True,
        help_text="The model that served (its id).",
    )
    routing_rule = ScopedRelatedField(
        model=RoutingRule,
        scope=org_rules,
        required=False,
        allow_null=True,
        help_text="The routing rule that planned the request (its id).",
    )

    class Meta:
        model = ModelMetric
        fields = [
            "id", "client_key", "credential", "provider", "model", "routing_rule", "request_id",
            "model_type", "requested_model", "served_model", "strategy", "input_tokens",
            "output_tokens", "cached_tokens", "total_tokens", "cost", "latency_ms",
            "time_to_first_token_ms", "status_code", "success", "error_type", "error_message",
            "error_source", "failed_attempts", "fallbacks_used", "attempts", "streamed",
            "created_at",
        ]  # fmt: skip
        read_only_fields = ["id", "error_source", "failed_attempts"]
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

    def to_representation(self, instance):
        data = super().to_representation(instance)
        # Stored upstream text, shown without the serving credential's secret.
        data["error_message"] = instance.visible_error_message
        return data


class DateRangeSerializer(serializers.Serializer):
    start = serializers.DateTimeField(required=False, help_text="From this time.")
    end = serializers.DateTimeField(required=False, help_text="Until this time.")

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
            ) from None
        return attrs


class _GroupSerializer(serializers.Serializer):
    requests = serializers.IntegerField(help_text="Requests.")
    tokens = serializers.IntegerField(help_text="Tokens.")
    cost = serializers.DecimalField(
        min_value=0, max_digits=30, decimal_places=10, help_text="Spend in USD."
    )


class CostByModelSerializer(_GroupSerializer):
    model = serializers.IntegerField(
        allow_null=True, help_text="The model's id; null when unknown."
    )
    served_model = serializers.CharField(help_text="Its catalog id.")


class CostByProviderSerializer(_GroupSerializer):
    provider = serializers.IntegerField(
        allow_null=True, help_text="The provider's id; null when unknown."
    )
    provider_slug = serializers.CharField(allow_null=True, help_text="Its slug.")


class CostByDaySerializer(_GroupSerializer):
    date = serializers.DateField(help_text="The day (UTC).")


class CostSummarySerializer(serializers.Serializer):
    start = serializers.DateTimeField(help_text="Start of the range.")
    end = serializers.DateTimeField(help_text="End of the range.")
    total_cost = serializers.DecimalField(
        min_value=0, max_digits=30, decimal_places=10, help_text="Spend in USD."
    )
    total_requests = serializers.IntegerField(help_text="Requests.")
    total_tokens = serializers.IntegerField(help_text="Tokens.")
    by_model = CostByModelSerializer(many=True, help_text="Totals per served model.")
    by_provider = CostByProviderSerializer(many=True, help_text="Totals per provider.")
    by_day = CostByDaySerializer(many=True, help_text="Totals per day.")


class StrategyLatencySerializer(serializers.Serializer):
    strategy = serializers.CharField(help_text="The routing strategy.")
    requests = serializers.IntegerField(help_text="Requests routed with it.")
    avg_latency_ms = serializers.FloatField(
        allow_null=True, help_text="Their average latency in milliseconds."
    )


class RerouteSavingsSerializer(serializers.Serializer):
    requested_model = serializers.CharField(help_text="The model asked for.")
    requests = serializers.IntegerField(help_text="Requests served by another model.")
    actual_cost = serializers.DecimalField(
        min_value=0, max_digits=30, decimal_places=10, help_text="What they cost, in USD."
    )
    requested_model_cost = serializers.DecimalField(
        min_value=0,
        max_digits=30,
        decimal_places=10,
        allow_null=True,
        help_text="What the requested model would have cost; null when unknown.",
    )
    savings = serializers.DecimalField(
        max_digits=30,
        decimal_places=10,
        allow_null=True,
        help_text="The difference; null when unknown.",
    )


class OptimizationStatsSerializer(serializers.Serializer):
    start = serializers.DateTimeField(help_text="Start of the range.")
    end = serializers.DateTimeField(help_text="End of the range.")
    total_requests = serializers.IntegerField(help_text="Requests.")
    rerouted_requests = serializers.IntegerField(
        help_text="Requests served by another model than requested."
    )
    requests_with_fallback = serializers.IntegerField(
        help_text="Requests that fell back at least once."
    )
    fallbacks_taken = serializers.IntegerField(help_text="Fallbacks in all.")
    estimated_savings = serializers.DecimalField(
        max_digits=30,
        decimal_places=10,
        help_text="USD saved by rerouting, where prices are known.",
    )
    savings_by_requested_model = RerouteSavingsSerializer(
        many=True, help_text="Savings per requested model."
    )
    latency_by_strategy = StrategyLatencySerializer(
        many=True, help_text="Latency per routing strategy."
    )


class DashboardTotalsSerializer(serializers.Serializer):
    requests = serializers.IntegerField(help_text="Requests.")
    successful_requests = serializers.IntegerField(help_text="Requests that succeeded.")
    failed_requests = serializers.IntegerField(help_text="Requests that failed.")
    error_rate = serializers.FloatField(help_text="Failed / all, from 0 to 1.")
    client_errors = serializers.IntegerField(
        help_text="Failed requests that were the caller's fault: bad input, its own limits."
    )
    provider_errors = serializers.IntegerField(
        help_text="Failed requests that were a provider's: upstream errors, timeouts, 429."
    )
    client_error_rate = serializers.FloatField(help_text="Client errors / all, from 0 to 1.")
    provider_error_rate = serializers.FloatField(help_text="Provider errors / all, from 0 to 1.")
    tokens = serializers.IntegerField(help_text="Tokens.")
    cost = serializers.DecimalField(
        min_value=0, max_digits=30, decimal_places=10, help_text="Spend in USD."
    )
    avg_latency_ms = serializers.FloatField(
        allow_null=True, help_text="Average latency in milliseconds."
    )
    fallbacks_taken = serializers.IntegerField(help_text="Fallbacks in all.")


class DashboardDaySerializer(serializers.Serializer):
    date = serializers.DateField(help_text="The day (UTC).")
    requests = serializers.IntegerField(help_text="Requests.")
    errors = serializers.IntegerField(help_text="Failed requests.")
    tokens = serializers.IntegerField(help_text="Tokens.")
    cost = serializers.DecimalField(
        min_value=0, max_digits=30, decimal_places=10, help_text="Spend in USD."
    )


class TopKeySerializer(_GroupSerializer):
    client_key = serializers.IntegerField(
        allow_null=True, help_text="The key's id; null when deleted."
    )
    name = serializers.CharField(allow_null=True, help_text="The key's name.")
    prefix = serializers.CharField(allow_null=True, help_text="The key's prefix.")


class ProviderLatencySerializer(serializers.Serializer):
    provider = serializers.IntegerField(allow_null=True, help_text="The provider's id.")
    provider_slug = serializers.CharField(allow_null=True, help_text="Its slug.")
    requests = serializers.IntegerField(help_text="Requests.")
    errors = serializers.IntegerField(help_text="Failed requests.")
    error_rate = serializers.FloatField(help_text="Failed / all, from 0 to 1.")
    provider_errors = serializers.IntegerField(
        help_text="Failed requests that were the provider's, not the caller's."
    )
    provider_error_rate = serializers.FloatField(help_text="Provider errors / all, from 0 to 1.")
    fallbacks = serializers.IntegerField(help_text="Fallbacks away from it.")
    avg_latency_ms = serializers.FloatField(
        allow_null=True, help_text="Average latency in milliseconds."
    )
    p50_ms = serializers.IntegerField(allow_null=True, help_text="Median latency in milliseconds.")
    p95_ms = serializers.IntegerField(
        allow_null=True, help_text="95th percentile latency in milliseconds."
    )


class CredentialQuotaSerializer(serializers.Serializer):
    quota = serializers.CharField(help_text="requests, tokens or cost.")
    limit = serializers.DecimalField(
        min_value=0,
        max_digits=30,
        decimal_places=6,
        allow_null=True,
        help_text="The quota; null for no limit.",
    )
    used = serializers.DecimalField(
        min_value=0, max_digits=30, decimal_places=6, help_text="Used in the current period."
    )
    percent_used = serializers.FloatField(allow_null=True, help_text="used / limit in percent.")
    resets_at = serializers.DateTimeField(help_text="When the counters reset.")


class CredentialOverviewSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The credential's id.")
    name = serializers.CharField(help_text="Its name.")
    provider_slug = serializers.CharField(help_text="Its provider's slug.")
    secret_hint = serializers.CharField(help_text="The last characters of the secret.")
    is_active = serializers.BooleanField(help_text="Whether it is used.")
    health_status = serializers.CharField(help_text="healthy, degraded or unhealthy.")
    last_error = serializers.CharField(help_text="The last upstream error.")
    consecutive_failures = serializers.IntegerField(help_text="Failures since the last success.")
    last_failure_at = serializers.DateTimeField(
        allow_null=True, help_text="When a call last failed."
    )
    cooldown_until = serializers.DateTimeField(
        allow_null=True, help_text="Not used before this time."
    )
    quotas = CredentialQuotaSerializer(many=True, help_text="Its quotas and usage.")


class DashboardSummarySerializer(serializers.Serializer):
    start = serializers.DateTimeField(help_text="Start of the range.")
    end = serializers.DateTimeField(help_text="End of the range.")
    totals = DashboardTotalsSerializer(help_text="Totals of the range.")
    daily = DashboardDaySerializer(many=True, help_text="Totals per day.")
    top_models = CostByModelSerializer(many=True, help_text="Models by spend.")
    top_client_keys = TopKeySerializer(many=True, help_text="Client keys by spend.")
    credential_health = serializers.DictField(
        child=serializers.IntegerField(), help_text="Credentials per health status."
    )
    latency_by_provider = ProviderLatencySerializer(
        many=True, help_text="Latency and errors per provider."
    )
    credentials = CredentialOverviewSerializer(
        many=True, help_text="Every credential with its health and quotas."
    )


# --- Audit log ----------------------------------------------------------------------------

AUDIT_ACTION_NAMES = {value: name for name, value in ACTIONS.items()}
AUDIT_OBJECT_TYPES = {content_type: name for name, content_type in object_types().items()}


class AuditActorSerializer(serializers.Serializer):
    """The user who made a change."""

    id = serializers.IntegerField(
        allow_null=True, help_text="The user's id; null once the user is deleted."
    )
    username = serializers.CharField(
        allow_null=True, help_text="The user's login name; null once the user is deleted."
    )
    email = serializers.CharField(help_text="The user's email address when the change was made.")


class AuditChangeSerializer(serializers.Serializer):
    """One field's value before and after a change (null before a creation and after a
    deletion)."""

    before = serializers.JSONField(allow_null=True, help_text="The value before the change.")
    after = serializers.JSONField(allow_null=True, help_text="The value after the change.")


class AuditLogEntrySerializer(serializers.ModelSerializer):
    """One change to the organization's settings: who, when, from where and what."""

    action = serializers.SerializerMethodField(help_text="create, update or delete.")
    object_type = serializers.SerializerMethodField(
        help_text="What changed: organization, member, provider, model, api_key, client_key, "
        "routing_rule, routing_target or webhook."
    )
    object_id = serializers.IntegerField(help_text="The id of the changed object.")
    object_repr = serializers.CharField(help_text="The changed object as it was named then.")
    actor = serializers.SerializerMethodField(
        help_text="Who made the change; null for the platform's own changes."
    )
    remote_address = serializers.IPAddressField(
        source="remote_addr",
        allow_null=True,
        help_text="The client's address; null when the change came from no request.",
    )
    changes = serializers.SerializerMethodField(
        help_text="Changed fields, each with its value before and after. Secrets never appear."
    )

    class Meta:
        model = AuditLogEntry
        fields = [
            "id", "timestamp", "action", "object_type", "object_id", "object_repr", "actor",
            "remote_address", "changes",
        ]  # fmt: skip
        read_only_fields = fields
        extra_kwargs = {"timestamp": {"help_text": "When the change was made."}}

    def get_action(self, entry) -> str:
        return AUDIT_ACTION_NAMES.get(entry.action, "")

    def get_object_type(self, entry) -> str:
        key = (entry.content_type.app_label, entry.content_type.model)
        return AUDIT_OBJECT_TYPES.get(key, entry.content_type.model)

    @extend_schema_field(AuditActorSerializer(allow_null=True))
    def get_actor(self, entry) -> dict | None:
        if entry.actor is not None:
            return {
                "id": entry.actor.pk,
                "username": entry.actor.username,
                "email": entry.actor_email or entry.actor.email,
            }
        if entry.actor_email:
            return {"id": None, "username": None, "email": entry.actor_email}
        return None

    @extend_schema_field(serializers.DictField(child=AuditChangeSerializer()))
    def get_changes(self, entry) -> dict:
        return {
            field: {"before": values[0], "after": values[1]}
            for field, values in (entry.changes or {}).items()
            if isinstance(values, list | tuple) and len(values) == 2
        }


# --- Webhooks -----------------------------------------------------------------------------

MAX_THRESHOLDS = 20


class WebhookSerializer(serializers.ModelSerializer):
    """A webhook; its signing secret is shown once, in the create response."""

    url = serializers.URLField(
        max_length=2000,
        help_text="Where the events are POSTed (http or https); must pass the same outbound address policy as provider base URLs.",
    )
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=WebhookEvent.choices),
        allow_empty=False,
        max_length=len(WebhookEvent.choices),
        required=False,
        help_text="Events sent to this URL (default: all): organization.budget_threshold, client_key.budget_threshold, credential.unhealthy.",
    )
    thresholds = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=1000),
        allow_empty=False,
        max_length=MAX_THRESHOLDS,
        required=False,
        help_text="Percentages of a budget (1 to 1000; default [50, 80, 100]) whose crossing sends a budget event, once per budget period.",
    )

    class Meta:
        model = Webhook
        fields = [
            "id", "url", "description", "events", "thresholds", "is_active", "created_at",
            "updated_at",
        ]  # fmt: skip
        read_only_fields = ["id", "created_at", "updated_at"]

    def validate_url(self, value: str) -> str:
        # The platform POSTs to this URL: it passes the outbound address policy now, and
        # again (with the addresses its host resolves to) at every delivery.
        try:
            outbound.check_url(value)
        except outbound.OutboundURLRefused as exc:
            raise serializers.ValidationError(exc.message) from exc
        return value

    def validate_events(self, value):
        return sorted(set(value))

    def validate_thresholds(self, value):
        return sorted(set(value))


class WebhookCreatedSerializer(WebhookSerializer):
    """The new webhook with its signing secret: store it now, it is never shown again."""

    secret = serializers.CharField(
        read_only=True,
        help_text="The signing secret, shown this once: each event carries X-ModelHub-Signature: sha256=<hex HMAC-SHA256 of the raw body with this secret>.",
    )

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]


class WebhookDeliverySerializer(serializers.ModelSerializer):
    """One event sent (or being sent) to a webhook, with its attempts."""

    class Meta:
        model = WebhookDelivery
        fields = [
            "id", "webhook", "event", "subject_id", "threshold", "period_start", "payload",
            "status", "attempts", "response_code", "last_error", "created_at",
            "last_attempt_at", "delivered_at",
        ]  # fmt: skip
        read_only_fields = fields
