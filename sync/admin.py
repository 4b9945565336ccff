"""Django admin for the sync: the list of runs, and "sync now" and "discover
models" actions on providers.

modelhub owns the Provider admin and must not import sync, so the action is added from
here: admin modules are imported in INSTALLED_APPS order (modelhub before sync), and this
module re-registers a subclass of whatever Provider admin is registered, keeping all of
its options. When none is registered yet, a plain one is.
"""

from __future__ import annotations

from django.contrib import admin, messages

from modelhub.models import Provider, SyncRun
from sync import discovery
from sync.registry import get_spec
from sync.tasks import enqueue_provider_syncs


@admin.register(SyncRun)
class SyncRunAdmin(admin.ModelAdmin):
    list_display = (
        "provider_slug",
        "status",
        "dry_run",
        "trigger",
        "started_at",
        "duration_ms",
        "models_fetched",
        "models_transformed",
        "models_skipped",
        "models_created",
        "models_updated",
        "models_deactivated",
    )
    list_filter = ("status", "dry_run", "trigger", "provider_slug")
    search_fields = ("provider_slug", "error")
    date_hierarchy = "started_at"
    ordering = ("-started_at", "-id")
    list_select_related = ("provider",)

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in SyncRun._meta.fields]

    def has_add_permission(self, request):
        return False  # runs are written by the sync only

    def has_change_permission(self, request, obj=None):
        return False


@admin.action(description="Sync now (queue a catalog sync of the selected providers)")
def sync_now(modeladmin, request, queryset):
    slugs = [slug for slug in queryset.values_list("slug", flat=True) if get_spec(slug)]
    unknown = queryset.exclude(slug__in=slugs).count()
    enqueue_provider_syncs(slugs=slugs, trigger=f"admin:{request.user.get_username()}")
    if slugs:
        modeladmin.message_user(request, f"Sync queued for {', '.join(slugs)}.", messages.SUCCESS)
    if unknown:
        modeladmin.message_user(
            request,
            f"{unknown} provider(s) have no sync entry (private or custom).",
            messages.WARNING,
        )


@admin.action(description="Discover models (of the selected private providers)")
def discover_models(modeladmin, request, queryset):
    """Run discovery now, provider by provider, and say what each one did; global
    providers are left to the catalog sync."""
    private = queryset.filter(organization__isnull=False)
    skipped = queryset.count() - private.count()
    for provider in private:
        try:
            result = discovery.discover_provider_models(provider.pk, provider.organization_id)
        except discovery.DiscoveryError as exc:
            modeladmin.message_user(request, f"{provider.slug}: {exc.message}", messages.ERROR)
            continue
        counts = ", ".join(f"{name} {value}" for name, value in result.as_dict().items())
        modeladmin.message_user(request, f"{provider.slug}: {counts}.", messages.SUCCESS)
    if skipped:
        modeladmin.message_user(
            request,
            f"{skipped} global provider(s) skipped: the catalog sync maintains them.",
            messages.WARNING,
        )


def _provider_admin_with_sync_action() -> None:
    registered = admin.site._registry.get(Provider)
    base = type(registered) if registered is not None else admin.ModelAdmin
    if registered is not None and sync_now in (registered.actions or ()):
        return
    if registered is not None:
        admin.site.unregister(Provider)
    attrs = {"actions": [*(base.actions or ()), sync_now, discover_models], "__module__": __name__}
    if registered is None:
        attrs.update(
            list_display=("name", "slug", "organization", "is_active", "last_synced_at"),
            search_fields=("name", "slug"),
        )
    admin.site.register(Provider, type("ProviderSyncAdmin", (base,), attrs))


_provider_admin_with_sync_action()
