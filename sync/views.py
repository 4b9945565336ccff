"""Admin sync API: list providers, trigger syncs, read status (``ADMIN_API_KEY`` bearer).

Syncs run inside the request so the answer carries the counts; a full sync of every
provider takes as long as the slowest upstream (bounded by ``SYNC_HTTP_TIMEOUT`` per page).
"""

from __future__ import annotations

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from modelhub.admin_api import require_admin_api_key
from modelhub.api.tenancy import OrganizationScopedViewSet
from modelhub.models import Provider, Role, SyncStatus
from sync import discovery, locks, pipeline, selectors
from sync.registry import get_spec

TRUE_VALUES = {"true", "1", "yes"}
FALSE_VALUES = {"false", "0", "no", ""}


def _dry_run(request) -> bool | None:
    value = request.GET.get("dry_run", "false").strip().lower()
    if value in TRUE_VALUES:
        return True
    if value in FALSE_VALUES:
        return False
    return None


def _bad_dry_run() -> JsonResponse:
    return JsonResponse({"detail": "dry_run must be true or false."}, status=400)


@require_GET
@require_admin_api_key
def providers(request):
    """Every registered provider: key configured or not, model counts, last sync."""
    return JsonResponse({"providers": selectors.provider_overview()})


@csrf_exempt
@require_POST
@require_admin_api_key
def sync_one(request, slug: str):
    """Sync one provider now. 200 when it synced, 502 when the upstream failed,
    409 when it cannot run here (no key configured); the body has the same shape."""
    spec = get_spec(slug)
    if spec is None:
        return JsonResponse({"detail": f"Unknown provider '{slug}'."}, status=404)
    dry_run = _dry_run(request)
    if dry_run is None:
        return _bad_dry_run()
    result = pipeline.sync_provider(spec=spec, dry_run=dry_run, trigger="admin-api")
    status = 200 if result.ok else 409 if result.status == SyncStatus.SKIPPED else 502
    return JsonResponse(
        {"success": result.ok, "message": result.message, "details": result.details()},
        status=status,
    )


@csrf_exempt
@require_POST
@require_admin_api_key
def sync_all(request):
    """Sync every provider now; providers without a key are reported as skipped.
    409 while another full sync (this endpoint or the scheduled one) is running."""
    dry_run = _dry_run(request)
    if dry_run is None:
        return _bad_dry_run()
    token = locks.acquire_sync_lock()
    if token is None:
        return JsonResponse(
            {
                "success": False,
                "message": "Another catalog sync is still running; try again when it ends.",
            },
            status=409,
        )
    try:
        results = pipeline.sync_providers(dry_run=dry_run, trigger="admin-api")
    finally:
        locks.release_sync_lock(token)
    failed = [r.provider for r in results if r.status == SyncStatus.FAILED]
    synced = [r for r in results if r.ok]
    models = sum(r.transformed for r in synced)
    message = f"Synced {models} models from {len(synced)} providers"
    message += f"; failed: {', '.join(failed)}." if failed else "."
    return JsonResponse(
        {
            "success": not failed,
            "message": message,
            "details": [r.details() for r in results],
        }
    )


@require_GET
@require_admin_api_key
def status(request):
    """Totals, the last run of every provider, and the providers overdue for a sync."""
    return JsonResponse(selectors.sync_status())


class DiscoveryCountsSerializer(serializers.Serializer):
    created = serializers.IntegerField(help_text="Models the provider listed that were new.")
    updated = serializers.IntegerField(help_text="Known models whose listed data changed.")
    deactivated = serializers.IntegerField(
        help_text="Models no longer listed, now inactive (never deleted)."
    )
    unchanged = serializers.IntegerField(help_text="Known models listed with the same data.")
    total = serializers.IntegerField(help_text="Models in the provider's list.")


class ProviderDiscoveryViewSet(OrganizationScopedViewSet):
    """``POST /api/modelhub/providers/{id}/discover/``, served by the sync app.

    The management API's app may not import the sync (import-linter), so the endpoint
    lives here, under the providers' URL, on the management API's own base viewset: the
    same scoping (another organization's provider is a 404) and roles (admins).
    """

    queryset = Provider.objects.all()
    scope = "visible"
    serializer_class = DiscoveryCountsSerializer
    action_roles = {"discover": Role.ADMIN}

    @extend_schema(
        summary="Discover the models of a private provider (admins)",
        description=(
            "Fetches the provider's model list with the organization's credential "
            "(`GET {base_url}/models`, or `/api/tags` for Ollama), adds new models, updates "
            "changed ones and deactivates those no longer listed. On any fault (unreachable, "
            "rejected credential, unreadable or empty list) nothing changes."
        ),
        parameters=[
            OpenApiParameter(
                "id", int, OpenApiParameter.PATH, description="The private provider's id."
            )
        ],
        request=None,
        responses={200: DiscoveryCountsSerializer},
    )
    @action(detail=True, methods=["post"])
    def discover(self, request, pk=None):
        provider = self.get_object()
        if provider.organization_id is None:
            raise exceptions.PermissionDenied(
                "Global providers are maintained by the catalog sync; discovery is for "
                "the organization's private providers."
            )
        try:
            result = discovery.discover_provider_models(provider.pk, self.organization.pk)
        except discovery.DiscoveryError as exc:
            return Response({"detail": exc.message}, status=exc.status)
        return Response(DiscoveryCountsSerializer(result.as_dict()).data)
