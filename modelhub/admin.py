"""Django admin for operators: every table, secrets never shown, the actions they need."""

from __future__ import annotations

from typing import TYPE_CHECKING

from auditlog.admin import LogEntryAdmin
from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.db import models
from django.db.models import Count, DecimalField, OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from modelhub import outbound, services
from modelhub.invalidation import publish_tenant_change
from modelhub.models import (
    AuditLogEntry,
    ClientKey,
    HuggingFaceMetrics,
    Membership,
    MetricDaily,
    Model,
    ModelMetric,
    Organization,
    Provider,
    ProviderCredential,
    RoutingRule,
    RoutingTarget,
    User,
)

if TYPE_CHECKING:
    _AdminBase = admin.ModelAdmin
else:
    _AdminBase = object


class PublishesTenantChanges(_AdminBase):
    """Saves and deletes made here reach every gateway worker's caches at once.

    ``changes_of(obj)`` names what the row concerns: ``(organization id or None for
    the global catalog, client key digest or None)``. Saves publish after the inlines
    are saved (a rule's targets); bulk actions publish themselves, since
    ``queryset.update()`` passes none of these hooks.
    """

    def changes_of(self, obj) -> tuple[int | None, str | None]:
        return obj.organization_id, None

    def _publish(self, changes) -> None:
        for organization_id, client_key_hash in set(changes):
            publish_tenant_change(organization_id, client_key_hash=client_key_hash)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        self._publish([self.changes_of(form.instance)])

    def delete_model(self, request, obj):
        changes = [self.changes_of(obj)]
        super().delete_model(request, obj)
        self._publish(changes)

    def delete_queryset(self, request, queryset):
        changes = [self.changes_of(obj) for obj in queryset]
        super().delete_queryset(request, queryset)
        self._publish(changes)


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ["username", "email", "is_staff", "is_active", "date_joined"]


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Organization)
class OrganizationAdmin(PublishesTenantChanges, admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]

    def changes_of(self, organization):
        return organization.pk, None


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__username", "organization__slug"]
    autocomplete_fields = ["user", "organization"]


class ProviderForm(forms.ModelForm):
    """Refuses a base URL the outbound address policy does not allow the gateway to call
    (the admin builds the form's fields from the model)."""

    def clean_base_url(self) -> str:
        value = self.cleaned_data.get("base_url") or ""
        if value:
            try:
                outbound.check_url(value)
            except outbound.OutboundURLRefused as exc:
                raise forms.ValidationError(exc.message, code="outbound_policy") from exc
        return value


@admin.register(Provider)
class ProviderAdmin(PublishesTenantChanges, admin.ModelAdmin):
    form = ProviderForm
    # A URL typed without a scheme is taken as https (Django 6's default, without the warning).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    list_display = [
        "name",
        "slug",
        "organization",
        "api_format",
        "is_active",
        "model_count",
        "last_synced_at",
    ]
    list_filter = ["is_active", "api_format", ("organization", admin.EmptyFieldListFilter)]
    search_fields = ["name", "slug"]
    readonly_fields = ["last_synced_at", "created_at", "updated_at"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_model_count=Count("models"))

    @admin.display(description="Models", ordering="_model_count")
    def model_count(self, provider) -> int:
        return provider._model_count


@admin.register(Model)
class ModelAdmin(PublishesTenantChanges, admin.ModelAdmin):
    list_display = [
        "model_name",
        "provider",
        "provider_model_id",
        "context_length",
        "pricing_prompt",
        "pricing_completion",
        "modality",
        "is_active",
    ]
    list_filter = ["is_active", "provider", "supports_vision", "supports_tools", "modality"]
    search_fields = ["model_name", "provider_model_id", "canonical_slug", "hugging_face_id"]
    list_select_related = ["provider"]
    readonly_fields = ["raw", "sync_hash", "last_synced_at", "created_at", "updated_at"]
    actions = ["deactivate", "activate"]
    show_full_result_count = False

    def changes_of(self, model):
        return model.provider.organization_id, None

    def _set_active(self, queryset, is_active: bool) -> int:
        owners = set(queryset.values_list("provider__organization_id", flat=True))
        count = queryset.update(is_active=is_active, updated_at=timezone.now())
        self._publish((owner, None) for owner in owners)
        return count

    @admin.action(description="Deactivate selected models")
    def deactivate(self, request, queryset):
        count = self._set_active(queryset, False)
        self.message_user(request, f"Deactivated {count} models.")

    @admin.action(description="Activate selected models")
    def activate(self, request, queryset):
        count = self._set_active(queryset, True)
        self.message_user(request, f"Activated {count} models.")


class ProviderCredentialForm(forms.ModelForm):
    """Sets the secret without ever displaying it: leave it empty to keep the current one."""

    secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Write-only. Leave empty to keep the stored secret.",
    )

    class Meta:
        model = ProviderCredential
        fields = [
            "organization",
            "provider",
            "name",
            "is_active",
            "priority",
            "weight",
            "quota_period",
            "quota_requests",
            "quota_tokens",
            "quota_cost",
            "health_status",
            "consecutive_failures",
            "cooldown_until",
        ]

    def clean(self):
        cleaned = super().clean() or {}
        if self.instance.pk is None and not cleaned.get("secret"):
            self.add_error("secret", "A new credential needs a secret.")
        return cleaned


@admin.register(ProviderCredential)
class ProviderCredentialAdmin(PublishesTenantChanges, admin.ModelAdmin):
    form = ProviderCredentialForm
    list_display = [
        "name",
        "organization",
        "provider",
        "secret_hint",
        "is_active",
        "health_status",
        "consecutive_failures",
        "cooldown_until",
        "last_used_at",
    ]
    list_filter = ["is_active", "health_status", "provider"]
    search_fields = ["name", "organization__slug", "provider__slug", "secret_hint"]
    list_select_related = ["organization", "provider"]
    readonly_fields = [
        "secret_hint",
        "used_requests",
        "used_tokens",
        "used_cost",
        "period_started_at",
        "last_error",
        "last_success_at",
        "last_failure_at",
        "last_used_at",
    ]
    actions = ["disable", "reset_health"]

    def save_model(self, request, obj, form, change):
        secret = form.cleaned_data.get("secret")
        fields = {
            name: form.cleaned_data[name]
            for name in form.cleaned_data
            if name not in ("secret", "organization", "provider")
        }
        if change:
            services.provider_credential_update(credential=obj, secret=secret or None, **fields)
        else:
            created = services.provider_credential_create(
                organization=form.cleaned_data["organization"],
                provider=form.cleaned_data["provider"],
                secret=secret,
                **fields,
            )
            obj.pk = created.pk

    @admin.action(description="Disable selected credentials")
    def disable(self, request, queryset):
        count = services.provider_credential_disable(credentials=queryset)
        self.message_user(request, f"Disabled {count} credentials.")

    @admin.action(description="Mark selected credentials healthy (end cooldown)")
    def reset_health(self, request, queryset):
        for credential in queryset:
            services.provider_credential_record_success(credential=credential)
        self.message_user(request, "Health reset.")


class ClientKeyStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("expired", "Expired"), ("revoked", "Revoked")]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True).exclude(expires_at__lte=now)
        if self.value() == "expired":
            return queryset.filter(revoked_at__isnull=True, expires_at__lte=now)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


class ClientKeyIssueForm(forms.ModelForm):
    """What a new key needs; the key itself is generated on save (see ``save_model``)."""

    class Meta:
        model = ClientKey
        fields = [
            "organization",
            "name",
            "allowed_models",
            "rate_limit_rpm",
            "rate_limit_tpm",
            "budget_amount",
            "budget_period",
            "expires_at",
        ]

    def clean_expires_at(self):
        expires_at = self.cleaned_data.get("expires_at")
        if expires_at is not None and expires_at <= timezone.now():
            raise forms.ValidationError("A new key must expire in the future.")
        return expires_at


@admin.register(ClientKey)
class ClientKeyAdmin(PublishesTenantChanges, admin.ModelAdmin):
    list_display = [
        "name",
        "organization",
        "prefix",
        "rate_limit_rpm",
        "budget_amount",
        "spend",
        "expires_at",
        "revoked_at",
        "last_used_at",
    ]
    list_filter = [ClientKeyStatusFilter, "organization", "budget_period"]
    search_fields = ["name", "prefix", "organization__slug"]
    list_select_related = ["organization"]
    readonly_fields = ["prefix", "revoked_at", "last_used_at", "created_by"]
    exclude = ["key_hash"]
    actions = ["revoke"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            # Issuing: the same fields as POST /api/modelhub/client-keys/.
            kwargs["form"] = ClientKeyIssueForm
            kwargs["fields"] = ClientKeyIssueForm.Meta.fields
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else []

    def get_queryset(self, request):
        # Spend of each key from the daily rollups: one subquery, not a query per row.
        spend = (
            MetricDaily.objects.filter(
                client_key_pk=OuterRef("pk"), organization_id=OuterRef("organization_id")
            )
            .order_by()
            .values("client_key_pk")
            .annotate(total=Sum("cost"))
            .values("total")
        )
        return (
            super()
            .get_queryset(request)
            .annotate(
                _spend=Coalesce(
                    Subquery(spend, output_field=DecimalField(max_digits=20, decimal_places=10)),
                    0,
                    output_field=DecimalField(max_digits=20, decimal_places=10),
                )
            )
        )

    @admin.display(description="Spend (USD)", ordering="_spend")
    def spend(self, client_key) -> str:
        return f"{client_key._spend:.4f}"

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        fields = {name: form.cleaned_data[name] for name in ClientKeyIssueForm.Meta.fields}
        issued = services.client_key_create(created_by=request.user, **fields)
        obj.pk, obj.prefix, obj.key_hash = (
            issued.client_key.pk,
            issued.client_key.prefix,
            issued.client_key.key_hash,
        )
        obj.created_at = issued.client_key.created_at
        # Shown on the next page only: the key is not stored, so it can never be shown again.
        self.message_user(
            request,
            f"The new key is {issued.raw_key} - copy it now, it is not shown again.",
            messages.WARNING,
            extra_tags="issued-client-key",
        )

    def response_add(self, request, obj, post_url_continue=None):
        # The key was announced above; skip the stock "added successfully" line.
        return self.response_post_save_add(request, obj)

    def changes_of(self, client_key):
        return client_key.organization_id, client_key.key_hash

    @admin.action(description="Revoke selected keys")
    def revoke(self, request, queryset):
        for client_key in queryset:
            services.client_key_revoke(client_key=client_key)
        self.message_user(request, f"Revoked {queryset.count()} keys.", messages.SUCCESS)


class RoutingTargetInline(admin.TabularInline):
    model = RoutingTarget
    extra = 0
    raw_id_fields = ["model", "credential"]


@admin.register(RoutingRule)
class RoutingRuleAdmin(PublishesTenantChanges, admin.ModelAdmin):
    list_display = [
        "name",
        "organization",
        "match_model",
        "model_type",
        "strategy",
        "priority",
        "is_active",
    ]
    list_filter = ["is_active", "strategy", "model_type"]
    search_fields = ["name", "match_model", "organization__slug"]
    inlines = [RoutingTargetInline]


class MetricStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("success", "Success"), ("error", "Error")]

    def queryset(self, request, queryset):
        if self.value() in ("success", "error"):
            return queryset.filter(success=self.value() == "success")
        return queryset


@admin.register(ModelMetric)
class ModelMetricAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "organization",
        "provider",
        "client_key",
        "requested_model",
        "served_model",
        "status_code",
        "total_tokens",
        "cost",
        "latency_ms",
        "fallbacks_used",
    ]
    list_filter = [
        MetricStatusFilter,
        "organization",
        "provider",
        "client_key",
        "model_type",
        "streamed",
    ]
    search_fields = ["requested_model", "served_model", "request_id"]
    date_hierarchy = "created_at"
    list_select_related = ["organization", "provider", "client_key"]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(HuggingFaceMetrics)
class HuggingFaceMetricsAdmin(admin.ModelAdmin):
    list_display = ["hugging_face_id", "found", "fetched_at", "error"]
    list_filter = ["found"]
    search_fields = ["hugging_face_id"]
    readonly_fields = ["data", "fetched_at"]


# django-auditlog's page of the log, registered for AUDITLOG_LOGENTRY_MODEL, with the
# organization and the client's address added. It is read-only: no adding, changing or
# deleting entries (the library's own permissions), for staff of every organization.
admin.site.unregister(AuditLogEntry)


@admin.register(AuditLogEntry)
class AuditLogEntryAdmin(LogEntryAdmin):
    list_display = [*LogEntryAdmin.list_display, "organization", "remote_addr"]
    list_select_related = [*LogEntryAdmin.list_select_related, "organization"]
    list_filter = [*LogEntryAdmin.list_filter, "organization"]
    fieldsets = [
        (None, {"fields": ["created", "user_url", "remote_addr", "organization", "resource_url"]}),
        ("Changes", {"fields": ["action", "msg"]}),
    ]
