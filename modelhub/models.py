"""The domain tables of the platform.

Tenancy is a shared schema with an ``organization`` foreign key. Every tenant-owned
model derives from :class:`OrganizationOwned`, whose queryset has ``for_org(org)``;
``for_org(None)`` raises, so a forgotten organization fails closed instead of leaking
every tenant's rows. The catalog (:class:`Provider`, :class:`Model`) also has global rows
(``organization`` null) kept by the sync, visible to every organization through
``visible_to(org)``.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from auditlog.models import AbstractLogEntry, LogEntryManager
from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.validators import MinValueValidator
from django.db import models, router
from django.db.models import Q
from django.utils import timezone

from modelhub.redaction import scrub_for_credential


class TenancyError(RuntimeError):
    """Raised when tenant data is queried without an organization."""


class AcrossTenantsMixin(models.QuerySet):
    """The one named escape hatch out of organization scoping.

    Reads that span every organization on purpose (staff panels, rollup rebuilds, the
    gateway's lookup of a key by its digest, the public catalog) start here instead of at
    ``.objects.all()``, so they are easy to find and each says why in ``reason``
    (``tests/modelhub/test_tenant_scoping.py`` fails on unnamed ones).
    """

    def across_tenants(self, *, reason: str):
        if not reason or not reason.strip():
            raise TenancyError("Say why a read crosses organizations: across_tenants(reason=...).")
        return self.all()


if TYPE_CHECKING:
    _ModelBase = models.Model
else:
    _ModelBase = object


class ConstraintErrorsOnFields(_ModelBase):
    """Reports a violated unique constraint under the field a person would change, with a
    message that says so.

    Django reports a constraint over several fields (the slug together with its owner) as
    an error of the whole row; the API and admin forms are clearer when it names the
    field. ``constraint_errors`` maps a constraint's name (or a unique field's name) to
    ``(field, message)``.
    """

    constraint_errors: dict[str, tuple[str, str]] = {}

    def unique_error_message(self, model_class, unique_check):
        if len(unique_check) == 1 and unique_check[0] in self.constraint_errors:
            return ValidationError(self.constraint_errors[unique_check[0]][1], code="unique")
        return super().unique_error_message(model_class, unique_check)

    def validate_constraints(self, exclude=None):
        using = router.db_for_write(self.__class__, instance=self)
        errors: dict[str, list] = {}
        for model_class, constraints in self.get_constraints():
            for constraint in constraints:
                try:
                    constraint.validate(model_class, self, exclude=exclude, using=using)
                except ValidationError as exc:
                    # Unique constraints name their fields; other constraints have none.
                    fields: list[str] = list(getattr(constraint, "fields", ()))
                    if constraint.name in self.constraint_errors:
                        field, message = self.constraint_errors[constraint.name]
                        errors.setdefault(field, []).append(ValidationError(message, code="unique"))
                    elif exc.code == "unique" and len(fields) == 1:
                        errors.setdefault(fields[0], []).append(exc)
                    else:
                        errors.setdefault(NON_FIELD_ERRORS, []).extend(exc.error_list)
        if errors:
            raise ValidationError(errors)


# Prices are USD per token: a billionth of a dollar per token and below is common
# (xAI and Novita quote in units that reach 1e-10), so keep 18 decimal places.
PRICE_FIELD: dict[str, Any] = {"max_digits": 28, "decimal_places": 18, "null": True, "blank": True}
COST_FIELD: dict[str, Any] = {"max_digits": 20, "decimal_places": 10}


class User(AbstractUser):
    """A person who signs in to the management API, admin or dashboard."""

    email = models.EmailField(blank=True)

    class Meta:
        db_table = "users"


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"


class OrgScopedQuerySet(AcrossTenantsMixin, models.QuerySet):
    """Queryset of tenant-owned rows; every read of tenant data starts at ``for_org``."""

    def for_org(self, organization: Organization | None):
        if organization is None:
            raise TenancyError("Tenant data queried without an organization.")
        return self.filter(organization=organization)


class MembershipQuerySet(OrgScopedQuerySet):
    def of_user(self, user):
        """A user's memberships, in every organization: how the active one is found."""
        return self.filter(user=user)


class BudgetPeriod(models.TextChoices):
    """Periods of an organization's budget (a key's may also be an hour or a week)."""

    DAY = "day", "Day"
    MONTH = "month", "Month"


class Organization(ConstraintErrorsOnFields, models.Model):
    """A tenant: a team that owns credentials, client keys, rules and metrics."""

    name = models.CharField(max_length=200, help_text="Display name of the organization.")
    slug = models.SlugField(
        max_length=100,
        unique=True,
        help_text="Unique identifier in URLs and the X-Organization header; derived from the name when omitted.",
    )
    # The organization's own limits, over all its client keys; each key's limits apply too.
    budget_amount = models.DecimalField(
        max_digits=20,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text='Most spend of all the organization\'s keys together per budget period in USD, e.g. "500.00"; null for no budget. Never negative.',
    )
    budget_period = models.CharField(
        max_length=8,
        choices=BudgetPeriod.choices,
        null=True,
        blank=True,
        default=BudgetPeriod.MONTH,
        help_text="Window of the organization's budget: day or month (reset at UTC midnight, or on the 1st); null for a budget that never resets.",
    )
    rate_limit_rpm = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Most requests per minute of all the organization's keys together; null for no limit.",
    )
    rate_limit_tpm = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Most tokens per minute of all the organization's keys together; null for no limit.",
    )
    created_at = models.DateTimeField(auto_now_add=True, help_text="When the row was created.")
    updated_at = models.DateTimeField(auto_now=True, help_text="When the row was last changed.")
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="organizations"
    )

    constraint_errors = {"slug": ("slug", "An organization with this slug already exists.")}

    class Meta:
        db_table = "organizations"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    """A user's role in an organization."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(
        max_length=16,
        choices=Role.choices,
        default=Role.MEMBER,
        help_text="owner: everything, including deleting the organization; admin: manage providers, keys and rules; member: read only.",
    )
    created_at = models.DateTimeField(
        auto_now_add=True, help_text="When the user joined the organization."
    )

    objects = MembershipQuerySet.as_manager()

    class Meta:
        db_table = "memberships"
        constraints = [
            models.UniqueConstraint(fields=["user", "organization"], name="uniq_membership")
        ]
        ordering = ["organization_id", "user_id"]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization} ({self.role})"


class OrganizationOwned(models.Model):
    """Abstract base of every row that belongs to exactly one organization."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")

    objects = OrgScopedQuerySet.as_manager()

    class Meta:
        abstract = True


# --- Catalog -------------------------------------------------------------------------


class ApiFormat(models.TextChoices):
    OPENAI = "openai", "OpenAI-compatible"
    ANTHROPIC = "anthropic", "Anthropic Messages"
    GEMINI = "gemini", "Google Gemini"
    OLLAMA = "ollama", "Ollama"
    OTHER = "other", "Other"


class CatalogQuerySet(AcrossTenantsMixin, models.QuerySet):
    """Catalog rows: global ones (no organization) plus an organization's private ones."""

    organization_path = "organization"

    def visible_to(self, organization: Organization | None):
        if organization is None:
            raise TenancyError("Catalog queried without an organization.")
        path = self.organization_path
        return self.filter(Q(**{f"{path}__isnull": True}) | Q(**{path: organization}))

    def for_org(self, organization: Organization | None):
        """Only the organization's private rows (what it may edit)."""
        if organization is None:
            raise TenancyError("Catalog queried without an organization.")
        return self.filter(**{self.organization_path: organization})

    def global_rows(self):
        return self.filter(**{f"{self.organization_path}__isnull": True})


class Provider(ConstraintErrorsOnFields, models.Model):
    """A company or endpoint that serves models.

    Global rows (``organization`` null) are maintained by the catalog sync and staff;
    an organization may add private ones (a self-hosted Ollama, a private endpoint).
    """

    organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.CASCADE, related_name="providers"
    )
    name = models.CharField(
        max_length=200, help_text='Display name, e.g. "Groq" or "Our vLLM cluster".'
    )
    slug = models.SlugField(
        max_length=100,
        help_text='Identifier, unique per owner; models are called as "<slug>/<provider_model_id>".',
    )
    base_url = models.URLField(
        max_length=500,
        blank=True,
        help_text="Root of the provider's API as an OpenAI SDK would take it, e.g. https://api.groq.com/openai/v1.",
    )
    api_format = models.CharField(
        max_length=16,
        choices=ApiFormat.choices,
        default=ApiFormat.OPENAI,
        help_text="Wire format the gateway speaks to it: openai (OpenAI-compatible), anthropic, gemini, ollama or other.",
    )
    api_key_env_var = models.CharField(
        max_length=100,
        blank=True,
        help_text="Environment variable holding an operator-wide key for a global provider, e.g. GROQ_API_KEY.",
    )
    # A local Ollama or a private endpoint may need no key at all.
    requires_api_key = models.BooleanField(
        default=True,
        help_text="Whether calls need a credential; false for a local server without authentication.",
    )
    description = models.TextField(blank=True, help_text="Free text about the provider.")
    site_url = models.URLField(max_length=500, blank=True, help_text="The provider's web site.")
    logo_url = models.URLField(max_length=500, blank=True, help_text="URL of the provider's logo.")
    privacy_policy_url = models.URLField(
        max_length=500, blank=True, help_text="The provider's privacy policy."
    )
    terms_of_service_url = models.URLField(
        max_length=500, blank=True, help_text="The provider's terms of service."
    )
    status_page_url = models.URLField(
        max_length=500, blank=True, help_text="The provider's status page."
    )
    may_log_prompts = models.BooleanField(
        null=True, blank=True, help_text="Whether the provider may keep prompts; null when unknown."
    )
    may_train_on_data = models.BooleanField(
        null=True,
        blank=True,
        help_text="Whether the provider may train on prompts; null when unknown.",
    )
    moderated_by_openrouter = models.BooleanField(
        default=False, help_text="OpenRouter moderates requests to this provider."
    )
    needs_moderated = models.BooleanField(
        default=False, help_text="Requests must pass moderation before reaching the provider."
    )
    is_active = models.BooleanField(
        default=True, help_text="Inactive providers are neither listed nor routed to."
    )
    last_synced_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the catalog sync last refreshed the provider; null for private ones.",
    )
    created_at = models.DateTimeField(auto_now_add=True, help_text="When the row was created.")
    updated_at = models.DateTimeField(auto_now=True, help_text="When the row was last changed.")

    objects = CatalogQuerySet.as_manager()

    constraint_errors = {
        "uniq_provider_slug_per_org": ("slug", "A provider with this slug already exists here."),
        "uniq_global_provider_slug": ("slug", "A provider with this slug already exists here."),
    }

    class Meta:
        db_table = "providers"
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "slug"], name="uniq_provider_slug_per_org"
            ),
            models.UniqueConstraint(
                fields=["slug"],
                condition=Q(organization__isnull=True),
                name="uniq_global_provider_slug",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_global(self) -> bool:
        return self.organization_id is None


# Capability names people filter and route by -> the Model column that holds each.
CAPABILITY_FIELDS = {
    "vision": "supports_vision",
    "tools": "supports_tools",
    "json": "supports_json_mode",
    "json_mode": "supports_json_mode",
    "streaming": "supports_streaming",
}


class ModelQuerySet(CatalogQuerySet):
    organization_path = "provider__organization"

    def active(self):
        return self.filter(is_active=True, provider__is_active=True)


class Model(ConstraintErrorsOnFields, models.Model):
    """A model as one provider sells it; ``provider_model_id`` is the name sent upstream."""

    provider = models.ForeignKey(
        Provider,
        on_delete=models.CASCADE,
        related_name="models",
        help_text="The provider selling the model (its id).",
    )
    provider_model_id = models.CharField(
        max_length=300,
        help_text="The exact model name sent upstream, e.g. llama-3.1-8b-instant; unique per provider.",
    )
    model_name = models.CharField(
        max_length=300, help_text='Display name, e.g. "Llama 3.1 8B Instant".'
    )
    author = models.CharField(
        max_length=200, blank=True, help_text="Who made the weights, e.g. meta-llama."
    )
    canonical_slug = models.CharField(
        max_length=300,
        blank=True,
        db_index=True,
        help_text="Provider-independent slug of the weights, to find the same model at other providers.",
    )
    description = models.TextField(blank=True, help_text="Free text about the model.")
    context_length = models.PositiveIntegerField(
        null=True, blank=True, help_text="Context window in tokens."
    )
    max_completion_tokens = models.PositiveIntegerField(
        null=True, blank=True, help_text="Most tokens one answer may have."
    )
    modality = models.CharField(
        max_length=100,
        blank=True,
        default="text->text",
        help_text="Inputs and outputs, e.g. text->text or text+image->text.",
    )
    input_modalities = models.JSONField(
        default=list, blank=True, help_text='What the model reads, e.g. ["text", "image"].'
    )
    output_modalities = models.JSONField(
        default=list, blank=True, help_text='What the model writes, e.g. ["text"].'
    )
    tokenizer = models.CharField(
        max_length=100, blank=True, help_text="Tokenizer family, e.g. Llama3."
    )
    instruct_type = models.CharField(
        max_length=100, blank=True, help_text="Chat template family, e.g. llama3."
    )
    supports_streaming = models.BooleanField(default=True, help_text="Answers can be streamed.")
    supports_vision = models.BooleanField(default=False, help_text="Accepts images.")
    supports_tools = models.BooleanField(
        default=False, help_text="Supports tool (function) calling."
    )
    supports_json_mode = models.BooleanField(default=False, help_text="Supports JSON output mode.")
    supported_parameters = models.JSONField(
        default=list,
        blank=True,
        help_text='Request parameters the provider honours for it, e.g. ["temperature", "tools"].',
    )
    is_moderated = models.BooleanField(
        default=False, help_text="The provider moderates its content."
    )
    pricing_prompt = models.DecimalField(
        **PRICE_FIELD, help_text="USD per prompt (input) token, e.g. 0.00000005; null when unknown."
    )
    pricing_completion = models.DecimalField(
        **PRICE_FIELD, help_text="USD per completion (output) token; null when unknown."
    )
    pricing_image = models.DecimalField(**PRICE_FIELD, help_text="USD per input image.")
    pricing_request = models.DecimalField(
        **PRICE_FIELD, help_text="USD per request, on top of tokens."
    )
    pricing_web_search = models.DecimalField(**PRICE_FIELD, help_text="USD per web search.")
    pricing_internal_reasoning = models.DecimalField(
        **PRICE_FIELD, help_text="USD per reasoning token."
    )
    pricing_cache_read = models.DecimalField(
        **PRICE_FIELD, help_text="USD per prompt token read from the provider's cache."
    )
    pricing_cache_write = models.DecimalField(
        **PRICE_FIELD, help_text="USD per prompt token written to the provider's cache."
    )
    hugging_face_id = models.CharField(
        max_length=300,
        blank=True,
        db_index=True,
        help_text="Repository of the weights on Hugging Face, e.g. meta-llama/Llama-3.1-8B-Instruct.",
    )
    per_request_limits = models.JSONField(null=True, blank=True)
    upstream_created_at = models.DateTimeField(
        null=True, blank=True, help_text="When the provider published the model."
    )
    deprecated_at = models.DateTimeField(
        null=True, blank=True, help_text="When the provider deprecated it, if it did."
    )
    is_active = models.BooleanField(
        default=True, help_text="Inactive models are neither listed nor routed to."
    )
    last_synced_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the catalog sync last saw the model; null for private ones.",
    )
    raw = models.JSONField(default=dict, blank=True)
    # Digest of the normalised fields, so a re-sync can tell an unchanged row at a glance.
    sync_hash = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, help_text="When the row was created.")
    updated_at = models.DateTimeField(auto_now=True, help_text="When the row was last changed.")

    objects = ModelQuerySet.as_manager()

    constraint_errors = {
        "uniq_model_per_provider": (
            "provider_model_id",
            "This provider already has a model with this id.",
        )
    }

    class Meta:
        db_table = "models"
        ordering = ["model_name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "provider_model_id"], name="uniq_model_per_provider"
            )
        ]
        indexes = [
            models.Index(fields=["is_active", "pricing_prompt"], name="models_active_price"),
            models.Index(fields=["is_active", "context_length"], name="models_active_ctx"),
            models.Index(fields=["modality"], name="models_modality"),
            # The default ordering of every catalog listing.
            models.Index(fields=["model_name", "id"], name="models_name_id"),
            # Lookups by a provider's own id across providers (the unique index leads with
            # the provider).
            models.Index(fields=["provider_model_id"], name="models_provider_model_id"),
        ]

    def __str__(self) -> str:
        return f"{self.provider.slug}/{self.provider_model_id}"

    @property
    def catalog_id(self) -> str:
        return f"{self.provider.slug}/{self.provider_model_id}"


# --- Credentials and keys ---------------------------------------------------------------


class QuotaPeriod(models.TextChoices):
    HOUR = "hour", "Hour"
    DAY = "day", "Day"
    WEEK = "week", "Week"
    MONTH = "month", "Month"


class HealthStatus(models.TextChoices):
    HEALTHY = "healthy", "Healthy"
    DEGRADED = "degraded", "Degraded"
    UNHEALTHY = "unhealthy", "Unhealthy"


class ProviderCredential(ConstraintErrorsOnFields, OrganizationOwned):
    """An organization's secret for one provider ("API key" in the management API).

    The secret is stored only as a Fernet token (see ``modelhub.crypto``) and is never
    returned; ``secret_hint`` is what people see.
    """

    provider = models.ForeignKey(
        Provider,
        on_delete=models.CASCADE,
        related_name="credentials",
        help_text="The provider this secret is for (its id).",
    )
    name = models.CharField(
        max_length=200,
        help_text="A name to tell the organization's credentials of one provider apart.",
    )
    encrypted_secret = models.TextField(editable=False)
    secret_hint = models.CharField(
        max_length=32,
        editable=False,
        help_text="The last characters of the secret, to recognise it; the secret itself is never returned.",
    )
    is_active = models.BooleanField(default=True, help_text="Inactive credentials are never used.")
    priority = models.IntegerField(
        default=0,
        help_text="Lower is tried first among the credentials of a provider (-1000 to 1000).",
    )
    weight = models.PositiveIntegerField(
        default=1, help_text="Share of traffic among credentials of equal priority."
    )
    quota_period = models.CharField(
        max_length=8,
        choices=QuotaPeriod.choices,
        default=QuotaPeriod.MONTH,
        help_text="Window of the quotas and usage counters: hour, day, week or month.",
    )
    quota_requests = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Most requests per period; null for no limit."
    )
    quota_tokens = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Most tokens per period; null for no limit."
    )
    quota_cost = models.DecimalField(
        max_digits=20,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text='Most spend per period in USD, e.g. "100.00"; null for no limit.',
    )
    period_started_at = models.DateTimeField(
        default=timezone.now, help_text="Start of the current quota period."
    )
    used_requests = models.PositiveBigIntegerField(
        default=0, help_text="Requests in the current period."
    )
    used_tokens = models.PositiveBigIntegerField(
        default=0, help_text="Tokens in the current period."
    )
    used_cost = models.DecimalField(
        default=Decimal("0"), **COST_FIELD, help_text="Spend in USD in the current period."
    )
    health_status = models.CharField(
        max_length=16,
        choices=HealthStatus.choices,
        default=HealthStatus.HEALTHY,
        help_text="healthy, degraded (recent failures) or unhealthy (cooling down).",
    )
    last_error = models.TextField(
        blank=True,
        help_text="The last upstream error seen with this credential (secrets scrubbed).",
    )
    consecutive_failures = models.PositiveIntegerField(
        default=0, help_text="Failures since the last success."
    )
    last_success_at = models.DateTimeField(
        null=True, blank=True, help_text="When a call last succeeded."
    )
    last_failure_at = models.DateTimeField(
        null=True, blank=True, help_text="When a call last failed."
    )
    cooldown_until = models.DateTimeField(
        null=True, blank=True, help_text="Not used before this time after repeated failures."
    )
    last_used_at = models.DateTimeField(
        null=True, blank=True, help_text="When the gateway last used it."
    )
    created_at = models.DateTimeField(auto_now_add=True, help_text="When the row was created.")
    updated_at = models.DateTimeField(auto_now=True, help_text="When the row was last changed.")

    constraint_errors = {
        "uniq_credential_name": ("name", "A credential with this name exists for this provider.")
    }

    class Meta:
        db_table = "provider_credentials"
        ordering = ["provider_id", "priority", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "provider", "name"], name="uniq_credential_name"
            )
        ]
        indexes = [models.Index(fields=["organization", "provider", "is_active"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.secret_hint})"

    @property
    def visible_last_error(self) -> str:
        """``last_error`` as the API shows it: without this credential's secret, even in a
        row written before upstream text was scrubbed."""
        return scrub_for_credential(self.last_error, self)


class ClientKey(OrganizationOwned):
    """A key applications send to the gateway; only its SHA-256 digest is stored."""

    name = models.CharField(max_length=200, help_text="A name for the application using the key.")
    prefix = models.CharField(
        max_length=16,
        editable=False,
        db_index=True,
        help_text="The first characters of the key, to recognise it; the full key is shown once at creation.",
    )
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    allowed_models = models.JSONField(
        default=list,
        blank=True,
        help_text="Model names or patterns (* and ? wildcards) the key may call; empty for every model.",
    )
    rate_limit_rpm = models.PositiveIntegerField(
        null=True, blank=True, help_text="Most requests per minute; null for no limit."
    )
    rate_limit_tpm = models.PositiveIntegerField(
        null=True, blank=True, help_text="Most tokens per minute; null for no limit."
    )
    budget_amount = models.DecimalField(
        max_digits=20,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text='Most spend per budget period in USD, e.g. "25.00"; null for no budget. Never negative.',
    )
    budget_period = models.CharField(
        max_length=8,
        choices=QuotaPeriod.choices,
        default=QuotaPeriod.MONTH,
        help_text="Window of the budget: hour, day, week or month.",
    )
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="The key stops working at this time; null for never."
    )
    revoked_at = models.DateTimeField(
        null=True, blank=True, help_text="When the key was revoked; revoked keys never work again."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_used_at = models.DateTimeField(
        null=True, blank=True, help_text="When the gateway last accepted the key."
    )
    created_at = models.DateTimeField(auto_now_add=True, help_text="When the row was created.")
    updated_at = models.DateTimeField(auto_now=True, help_text="When the row was last changed.")

    class Meta:
        db_table = "client_keys"
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def is_usable(self, now=None) -> bool:
        now = now or timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


# --- Routing -------------------------------------------------------------------------


class ModelType(models.TextChoices):
    CHAT = "chat", "Chat"
    COMPLETION = "completion", "Completion"
    EMBEDDING = "embedding", "Embedding"


class RoutingStrategy(models.TextChoices):
    PRIORITY = "priority", "Fixed priority order"
    CHEAPEST = "cheapest", "Cheapest first"
    LOWEST_LATENCY = "lowest_latency", "Lowest observed latency first"
    WEIGHTED = "weighted", "Weighted random"


class RoutingRule(ConstraintErrorsOnFields, OrganizationOwned):
    """Matches requests and yields an ordered plan of target models.

    ``match_model`` is the requested model or alias the rule answers to (``*`` and ``?``
    wildcards allowed); ``model_type`` narrows it to chat, completion or embedding;
    ``conditions`` holds optional ``min_input_tokens``, ``max_input_tokens`` and ``tags``
    (all must be present in the request's metadata).
    """

    name = models.CharField(
        max_length=200, help_text="Unique name of the rule in the organization."
    )
    description = models.TextField(blank=True, help_text="Free text: what the rule is for.")
    match_model = models.CharField(
        max_length=300,
        help_text='The requested model or alias the rule answers to; * and ? wildcards allowed, e.g. "fast-chat" or "gpt-4*".',
    )
    model_type = models.CharField(
        max_length=16,
        choices=ModelType.choices,
        blank=True,
        help_text="Only requests of this kind: chat, completion or embedding; blank for any.",
    )
    conditions = models.JSONField(
        default=dict,
        blank=True,
        help_text="Further conditions, all of which must hold: min_input_tokens, max_input_tokens, tags.",
    )
    strategy = models.CharField(
        max_length=16,
        choices=RoutingStrategy.choices,
        default=RoutingStrategy.PRIORITY,
        help_text="Order of the targets: priority (as listed), cheapest, lowest_latency or weighted (random by weight).",
    )
    fallback_enabled = models.BooleanField(
        default=True, help_text="Whether a failed target falls back to the next one."
    )
    max_attempts = models.PositiveSmallIntegerField(
        default=3, help_text="Most upstream calls for one request, retries included (1 to 10)."
    )
    priority = models.IntegerField(
        default=100, help_text="Lower is evaluated first when several rules match."
    )
    is_active = models.BooleanField(default=True, help_text="Inactive rules are ignored.")
    created_at = models.DateTimeField(auto_now_add=True, help_text="When the row was created.")
    updated_at = models.DateTimeField(auto_now=True, help_text="When the row was last changed.")

    constraint_errors = {"uniq_rule_name": ("name", "A rule with this name already exists.")}

    class Meta:
        db_table = "routing_rules"
        ordering = ["priority", "id"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="uniq_rule_name")
        ]

    def __str__(self) -> str:
        return self.name


class RoutingTarget(models.Model):
    """One target of a rule: a model, optionally pinned to a credential, with a weight."""

    rule = models.ForeignKey(RoutingRule, on_delete=models.CASCADE, related_name="targets")
    model = models.ForeignKey(
        Model, on_delete=models.CASCADE, related_name="+", help_text="The model to call (its id)."
    )
    credential = models.ForeignKey(
        ProviderCredential,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Pin this credential (of the model's provider); null to let the gateway choose.",
    )
    position = models.PositiveIntegerField(
        default=0, help_text="Place in the rule's list, from 0; set from the order of `targets`."
    )
    weight = models.PositiveIntegerField(
        default=1, help_text="Share of traffic under the weighted strategy."
    )

    class Meta:
        db_table = "routing_targets"
        ordering = ["rule_id", "position", "id"]

    def __str__(self) -> str:
        # Ids, not names: admin lists print many of these and must not query for each.
        return f"#{self.position}: model {self.model_id} (weight {self.weight})"


# --- Metrics and sync ------------------------------------------------------------------


class ErrorSource(models.TextChoices):
    """Whose failure a failed request is: the caller's, a provider's or the gateway's."""

    CLIENT = "client", "Client"
    PROVIDER = "provider", "Provider"
    GATEWAY = "gateway", "Gateway"

    @classmethod
    def of(cls, *, status_code: int, error_type: str, attempts: int) -> str:
        """The source of a request's outcome; "" for a success.

        A 4xx of the gateway's own (bad input, missing key, the caller's own rate limits,
        budget or quotas) or the upstream's 4xx answer to the caller's input is the
        client's; an ``upstream_*`` error (an upstream 429, timeout or failure) or a 5xx
        after an upstream attempt is the provider's; any other 5xx is the gateway's own.
        """
        if status_code < 400:
            return ""
        if error_type.startswith("upstream_"):
            return cls.PROVIDER
        if status_code < 500:
            return cls.CLIENT
        return cls.PROVIDER if attempts else cls.GATEWAY


class ModelMetric(OrganizationOwned):
    """One gateway request (or one reported through the API) with its usage and cost."""

    # No foreign key constraints: the database would check each of the six references of
    # every row the gateway writes, at commit, which was most of the database's work for a
    # request. The writer checks a batch's references at once in the transaction that
    # writes it (services.metrics_check_references), and on PostgreSQL triggers
    # on the referenced tables apply on_delete when rows are deleted (migration 0013).
    #
    # Not indexed alone: every index below starts with the organization and serves its
    # lookups, and the gateway writes every row through all of this table's indexes.
    organization = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    client_key = models.ForeignKey(
        ClientKey,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
        help_text="The client key that made the request (its id).",
    )
    credential = models.ForeignKey(
        ProviderCredential,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
        help_text="The provider credential used (its id).",
    )
    provider = models.ForeignKey(
        Provider,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
        help_text="The provider that served (its id).",
    )
    model = models.ForeignKey(
        Model,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
        help_text="The model that served (its id).",
    )
    routing_rule = models.ForeignKey(
        RoutingRule,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
        help_text="The routing rule that planned the request (its id).",
    )
    request_id = models.CharField(
        max_length=64,
        blank=True,
        help_text="The gateway's request id, also in the X-Request-Id header.",
    )
    model_type = models.CharField(
        max_length=16,
        choices=ModelType.choices,
        default=ModelType.CHAT,
        help_text="chat, completion or embedding.",
    )
    requested_model = models.CharField(max_length=300, help_text="The model the client asked for.")
    served_model = models.CharField(
        max_length=300, blank=True, help_text="The catalog id of the model that answered."
    )
    strategy = models.CharField(max_length=16, blank=True, help_text="The routing strategy used.")
    input_tokens = models.PositiveIntegerField(default=0, help_text="Prompt tokens.")
    output_tokens = models.PositiveIntegerField(default=0, help_text="Completion tokens.")
    cached_tokens = models.PositiveIntegerField(
        default=0, help_text="Prompt tokens read from the provider's cache."
    )
    total_tokens = models.PositiveIntegerField(
        default=0, help_text="Input and output tokens; computed when omitted."
    )
    cost = models.DecimalField(default=Decimal("0"), **COST_FIELD, help_text="Cost in USD.")
    latency_ms = models.PositiveIntegerField(
        default=0, help_text="Time from request to the end of the answer, in milliseconds."
    )
    time_to_first_token_ms = models.PositiveIntegerField(
        null=True, blank=True, help_text="Time to the first streamed token, in milliseconds."
    )
    status_code = models.PositiveSmallIntegerField(
        default=200, help_text="HTTP status returned to the client."
    )
    success = models.BooleanField(default=True, help_text="Whether the request succeeded.")
    error_type = models.CharField(
        max_length=100, blank=True, help_text="Error code when it failed, e.g. upstream_timeout."
    )
    error_message = models.TextField(blank=True, help_text="Error message when it failed.")
    error_source = models.CharField(
        max_length=8,
        choices=ErrorSource.choices,
        blank=True,
        help_text="Whose failure it was: client (the caller's input or limits), provider "
        "(upstream errors, timeouts, upstream 429) or gateway; empty for a success.",
    )
    failed_attempts = models.JSONField(
        default=list,
        blank=True,
        help_text="Each failed upstream attempt, in order: provider, credential and model "
        "ids, error_type and the upstream's status (null when none came back).",
    )
    fallbacks_used = models.PositiveSmallIntegerField(
        default=0, help_text="Candidates given up on before the one that served."
    )
    attempts = models.PositiveSmallIntegerField(
        default=1, help_text="Upstream calls made, retries included."
    )
    streamed = models.BooleanField(default=False, help_text="Whether the answer was streamed.")
    created_at = models.DateTimeField(
        default=timezone.now,
        db_index=True,
        help_text="When the request was made; now when omitted.",
    )

    class Meta:
        db_table = "model_metrics"
        ordering = ["-created_at", "-id"]
        # The request log pages by keyset on (ordering field, id) within an organization:
        # one index per ordering, so any page costs one short index range scan.
        indexes = [
            models.Index(fields=["organization", "created_at", "id"], name="metrics_org_time_id"),
            models.Index(fields=["organization", "cost", "id"], name="metrics_org_cost_id"),
            models.Index(
                fields=["organization", "latency_ms", "id"], name="metrics_org_latency_id"
            ),
            # Failures are a few percent of the rows: browsing them must not scan the rest.
            models.Index(
                fields=["organization", "created_at", "id"],
                name="metrics_org_failed",
                condition=Q(success=False),
            ),
            models.Index(
                fields=["organization", "provider", "created_at"], name="metrics_org_prov"
            ),
            models.Index(fields=["organization", "model", "created_at"], name="metrics_org_model"),
            models.Index(
                fields=["organization", "client_key", "created_at"], name="metrics_org_key"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.requested_model} -> {self.served_model} ({self.status_code})"

    @property
    def visible_error_message(self) -> str:
        """``error_message`` as the API shows it: without the secret of the credential that
        served the request (load it with ``select_related("credential")``)."""
        return scrub_for_credential(self.error_message, self.credential)


class SyncStatus(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCESS = "success", "Success"
    PARTIAL = "partial", "Success with skipped records"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"


class SyncRun(models.Model):
    """One run of the catalog sync for one provider."""

    provider_slug = models.SlugField(max_length=100, db_index=True)
    provider = models.ForeignKey(
        Provider, null=True, blank=True, on_delete=models.SET_NULL, related_name="sync_runs"
    )
    status = models.CharField(max_length=16, choices=SyncStatus.choices, default=SyncStatus.RUNNING)
    dry_run = models.BooleanField(default=False)
    trigger = models.CharField(max_length=32, blank=True)
    started_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    models_fetched = models.PositiveIntegerField(default=0)
    models_transformed = models.PositiveIntegerField(default=0)
    models_skipped = models.PositiveIntegerField(default=0)
    models_created = models.PositiveIntegerField(default=0)
    models_updated = models.PositiveIntegerField(default=0)
    models_deactivated = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        db_table = "sync_runs"
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"{self.provider_slug} {self.status} at {self.started_at:%Y-%m-%d %H:%M}"


class HuggingFaceMetrics(models.Model):
    """Hugging Face model-card metrics for one ``hugging_face_id``, with their fetch time."""

    hugging_face_id = models.CharField(max_length=300, unique=True)
    found = models.BooleanField(default=True)
    data = models.JSONField(default=dict, blank=True)
    fetched_at = models.DateTimeField(default=timezone.now, db_index=True)
    error = models.CharField(max_length=300, blank=True)

    class Meta:
        db_table = "huggingface_metrics"
        verbose_name_plural = "Hugging Face metrics"

    def __str__(self) -> str:
        return self.hugging_face_id


class MetricDaily(models.Model):
    """Daily totals of :class:`ModelMetric`, kept up to date as metrics are written.

    The dashboard and its API read these instead of scanning every request. The key
    columns hold plain ids with 0 for "none" (not foreign keys) so that an upsert can
    match them: SQL unique constraints treat NULLs as distinct. They are derived data;
    ``manage.py rebuild_metric_rollups`` recomputes them from the requests.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    provider_pk = models.PositiveBigIntegerField(default=0)
    model_pk = models.PositiveBigIntegerField(default=0)
    client_key_pk = models.PositiveBigIntegerField(default=0)
    served_model = models.CharField(max_length=300, blank=True)
    requests = models.PositiveBigIntegerField(default=0)
    errors = models.PositiveBigIntegerField(default=0)
    # Of ``errors``: the callers' own (4xx) and the providers'; the rest are the gateway's.
    client_errors = models.PositiveBigIntegerField(default=0)
    provider_errors = models.PositiveBigIntegerField(default=0)
    input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    total_tokens = models.PositiveBigIntegerField(default=0)
    cost = models.DecimalField(default=Decimal("0"), **COST_FIELD)
    latency_sum_ms = models.PositiveBigIntegerField(default=0)
    successes = models.PositiveBigIntegerField(default=0)
    fallbacks = models.PositiveBigIntegerField(default=0)

    class Meta:
        db_table = "metric_daily"
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "organization",
                    "day",
                    "provider_pk",
                    "model_pk",
                    "client_key_pk",
                    "served_model",
                ],
                name="uniq_metric_daily",
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} organization {self.organization_id}: {self.requests} requests"


class MetricDailyLatency(models.Model):
    """Per organization, day and provider: how many successful requests fell in each
    latency bucket (see ``modelhub.rollups.LATENCY_BUCKETS_MS``), for percentiles."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    provider_pk = models.PositiveBigIntegerField(default=0)
    bucket = models.PositiveSmallIntegerField()
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        db_table = "metric_daily_latency"
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "day", "provider_pk", "bucket"],
                name="uniq_metric_daily_latency",
            )
        ]

    def __str__(self) -> str:
        return (
            f"{self.day} organization {self.organization_id} provider {self.provider_pk}: "
            f"{self.count} in bucket {self.bucket}"
        )


class LimitCounter(models.Model):
    """One rate-limit or budget counter of one time window, for installations without
    Redis: ``key`` names the owner, the limit and the window (a minute for requests and
    tokens per minute, the budget period for spend). Updated under a row lock."""

    key = models.CharField(max_length=200, unique=True)
    value = models.BigIntegerField(default=0)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        db_table = "limit_counters"

    def __str__(self) -> str:
        return f"{self.key}={self.value}"


# --- Stored responses (the gateway's Responses API) ------------------------------------------


def responses_retention_cutoff(now=None):
    """Stored responses created before this moment are past RESPONSES_RETENTION_DAYS: they
    read as gone even before the retention task removes them."""
    return (now or timezone.now()) - timedelta(days=settings.RESPONSES_RETENTION_DAYS)


class StoredResponse(OrganizationOwned):
    """An answer of the gateway's ``POST /v1/responses`` kept for its organization (the
    request's ``store``), so that a later request continues the conversation with
    ``previous_response_id`` and ``GET /v1/responses/{id}`` reads it back. Removed after
    RESPONSES_RETENTION_DAYS by a periodic task."""

    response_id = models.CharField(
        max_length=64, unique=True, help_text='The response\'s id, "resp_" and random hex.'
    )
    client_key = models.ForeignKey(
        ClientKey,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The client key that created it (its id).",
    )
    model = models.CharField(max_length=300, help_text="The model the client asked for.")
    response = models.JSONField(help_text="The Response object as it was returned.")
    input_items = models.JSONField(
        default=list, help_text="The request's own input, as Responses API items."
    )
    history = models.JSONField(
        default=list,
        help_text="The items of the earlier turns it continued (previous_response_id).",
    )
    created_at = models.DateTimeField(
        default=timezone.now, db_index=True, help_text="When the response was created."
    )

    class Meta:
        db_table = "stored_responses"
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.response_id

    @property
    def conversation(self) -> list[dict]:
        """Every item a continuation starts from: earlier turns, this input, this output."""
        return [*self.history, *self.input_items, *(self.response.get("output") or [])]


# --- Audit trail -----------------------------------------------------------------------


def audited_organization_id(instance: models.Model) -> int | None:
    """The organization an audited row belongs to; None for the global catalog.

    Rows reach their organization through their own column (every
    :class:`OrganizationOwned` row, a membership, a private provider), through a parent
    (a model through its provider, a routing target through its rule), or are one.
    """
    if isinstance(instance, Organization):
        return instance.pk
    if isinstance(instance, Model):
        return instance.provider.organization_id
    if isinstance(instance, RoutingTarget):
        return instance.rule.organization_id
    return getattr(instance, "organization_id", None)


class AuditLogEntryQuerySet(OrgScopedQuerySet):
    """Entries of the audit trail: ``for_org`` gives an organization's, and entries of the
    global catalog (no organization) are reached only across tenants (staff)."""


# django-auditlog ships no types: mypy cannot see the class from_queryset builds.
class AuditLogEntryManager(LogEntryManager.from_queryset(AuditLogEntryQuerySet)):  # type: ignore[misc]
    """django-auditlog's manager, writing each entry's organization as it is created."""

    def log_create(self, instance, force_log: bool = False, **kwargs):
        kwargs.setdefault("organization_id", audited_organization_id(instance))
        return super().log_create(instance, force_log=force_log, **kwargs)

    def log_m2m_changes(self, changed_queryset, instance, operation, field_name, **kwargs):
        kwargs.setdefault("organization_id", audited_organization_id(instance))
        return super().log_m2m_changes(changed_queryset, instance, operation, field_name, **kwargs)


class AuditLogEntry(AbstractLogEntry):
    """One change to an audited row: who (``actor``), from where (``remote_addr``), when,
    what (``changes``: field -> [before, after]) and the organization it concerns.

    django-auditlog writes these (``AUDITLOG_LOGENTRY_MODEL``); the models and fields it
    records are listed in ``modelhub.audit``. The organization is a column rather than a
    key in ``additional_data`` so that the audit log is scoped like every tenant table,
    with ``for_org`` and an index. It is not a constraint: the history of an organization
    outlives it (the entries written while it is deleted name it after it is gone), and
    is then visible to staff only.
    """

    organization = models.ForeignKey(
        Organization,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
        help_text="The organization the changed row belongs to; null for the global catalog.",
    )

    objects = AuditLogEntryManager()

    class Meta(AbstractLogEntry.Meta):
        db_table = "audit_log"
        verbose_name = "audit log entry"
        verbose_name_plural = "audit log"
        ordering = ["-timestamp", "-id"]
        indexes = [
            models.Index(fields=["organization", "-timestamp"], name="audit_org_time"),
        ]


# --- Webhooks ------------------------------------------------------------------------


class WebhookEvent(models.TextChoices):
    ORGANIZATION_BUDGET = "organization.budget_threshold", "Organization budget threshold"
    CLIENT_KEY_BUDGET = "client_key.budget_threshold", "Client key budget threshold"
    CREDENTIAL_UNHEALTHY = "credential.unhealthy", "Credential unhealthy"


def default_webhook_thresholds() -> list[int]:
    return [50, 80, 100]


def default_webhook_events() -> list[str]:
    return list(WebhookEvent.values)


class Webhook(OrganizationOwned):
    """A URL the platform POSTs to when a budget crosses a threshold or a credential turns
    unhealthy. Each body is signed with the webhook's secret (``X-ModelHub-Signature``);
    the secret is stored encrypted, as provider credentials are, and shown once."""

    url = models.URLField(
        max_length=2000,
        help_text="Where the events are POSTed; must pass the same outbound address policy as provider base URLs.",
    )
    description = models.CharField(
        max_length=200, blank=True, help_text="A note to tell the organization's webhooks apart."
    )
    events = models.JSONField(
        default=default_webhook_events,
        help_text="Events sent to this URL: organization.budget_threshold, client_key.budget_threshold, credential.unhealthy.",
    )
    thresholds = models.JSONField(
        default=default_webhook_thresholds,
        help_text="Percentages of a budget (1 to 1000) whose crossing sends a budget event, once per budget period.",
    )
    encrypted_secret = models.TextField(editable=False)
    is_active = models.BooleanField(default=True, help_text="Inactive webhooks are never called.")
    created_at = models.DateTimeField(auto_now_add=True, help_text="When the row was created.")
    updated_at = models.DateTimeField(auto_now=True, help_text="When the row was last changed.")

    class Meta:
        db_table = "webhooks"
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.description or f"webhook {self.pk}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RETRYING = "retrying", "Retrying"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


class WebhookDelivery(OrganizationOwned):
    """One event for one webhook and every attempt to deliver it (the webhook's
    organization owns it too, so it is scoped like every tenant row).

    The unique constraint is what sends a threshold at most once per budget period, across
    every gateway worker: a second crossing of the same threshold finds the row taken."""

    webhook = models.ForeignKey(
        Webhook,
        on_delete=models.CASCADE,
        related_name="deliveries",
        help_text="The webhook this event is sent to.",
    )
    event = models.CharField(
        max_length=40, choices=WebhookEvent.choices, help_text="What happened."
    )
    subject_id = models.BigIntegerField(
        help_text="The id of what the event is about: the organization, client key or credential."
    )
    threshold = models.PositiveIntegerField(
        null=True, blank=True, help_text="The percentage crossed (budget events only)."
    )
    period_start = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Start of the budget period the threshold was crossed in; the time of the event for other events.",
    )
    payload = models.JSONField(help_text="The JSON body sent.")
    status = models.CharField(
        max_length=16,
        choices=DeliveryStatus.choices,
        default=DeliveryStatus.PENDING,
        help_text="pending, retrying, delivered or failed (no attempts left).",
    )
    attempts = models.PositiveIntegerField(default=0, help_text="Attempts made so far.")
    response_code = models.PositiveIntegerField(
        null=True, blank=True, help_text="HTTP status of the last attempt's answer."
    )
    last_error = models.TextField(
        blank=True, help_text="Why the last attempt failed, if it did (secrets removed)."
    )
    created_at = models.DateTimeField(auto_now_add=True, help_text="When the event happened.")
    last_attempt_at = models.DateTimeField(
        null=True, blank=True, help_text="When the last attempt was made."
    )
    delivered_at = models.DateTimeField(
        null=True, blank=True, help_text="When the receiver accepted the event (2xx)."
    )

    class Meta:
        db_table = "webhook_deliveries"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["webhook", "-created_at"])]
        constraints = [
            models.UniqueConstraint(
                fields=["webhook", "event", "subject_id", "threshold", "period_start"],
                name="uniq_webhook_delivery_per_period",
            )
        ]

    def __str__(self) -> str:
        return f"{self.event} to webhook {self.webhook_id} ({self.status})"
