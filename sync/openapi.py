"""The operator sync API's operations in the OpenAPI schema (plain Django views guarded by
the admin key; see ``sync.views``)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from modelhub.api.openapi import ADMIN_KEY_AUTH, DetailErrorSerializer, Operation
from modelhub.models import SyncStatus


class SyncRunSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The sync run's id.")
    status = serializers.ChoiceField(choices=SyncStatus.choices, help_text="How it ended.")
    dry_run = serializers.BooleanField(help_text="Fetched and transformed, wrote nothing.")
    trigger = serializers.CharField(help_text="What started it: beat, command, admin-api.")
    started_at = serializers.DateTimeField(help_text="Start.")
    finished_at = serializers.DateTimeField(allow_null=True, help_text="End; null if running.")
    duration_ms = serializers.IntegerField(allow_null=True, help_text="Duration.")
    models_fetched = serializers.IntegerField(help_text="Records the provider listed.")
    models_transformed = serializers.IntegerField(help_text="Records turned into models.")
    models_skipped = serializers.IntegerField(help_text="Records that were not models.")
    models_created = serializers.IntegerField(help_text="New models.")
    models_updated = serializers.IntegerField(help_text="Changed models.")
    models_deactivated = serializers.IntegerField(help_text="Models the provider dropped.")
    error = serializers.CharField(help_text="Why it failed; empty on success.")


class SyncProviderSerializer(serializers.Serializer):
    slug = serializers.CharField(help_text="The provider's slug in the registry.")
    name = serializers.CharField(help_text="Display name.")
    provider_id = serializers.IntegerField(
        allow_null=True, help_text="The catalog row, once synced."
    )
    env_var = serializers.CharField(help_text="Environment variable holding its key.")
    key_configured = serializers.BooleanField(help_text="That variable is set.")
    key_required = serializers.BooleanField(help_text="The model list needs a key.")
    syncable = serializers.BooleanField(help_text="A sync can run here now.")
    skip_reason = serializers.CharField(allow_null=True, help_text="Why it cannot.")
    model_count = serializers.IntegerField(help_text="Models in the catalog.")
    active_model_count = serializers.IntegerField(help_text="Active models in the catalog.")
    last_synced_at = serializers.DateTimeField(allow_null=True, help_text="Last sync.")
    last_run = SyncRunSummarySerializer(allow_null=True, help_text="The latest run.")
    last_success_at = serializers.DateTimeField(
        allow_null=True, help_text="End of the latest successful real run."
    )


class SyncProviderListSerializer(serializers.Serializer):
    providers = SyncProviderSerializer(many=True, help_text="Every registered provider.")


class SyncResultDetailSerializer(serializers.Serializer):
    provider = serializers.CharField(help_text="Provider slug.")
    provider_id = serializers.IntegerField(allow_null=True, help_text="The catalog row.")
    status = serializers.ChoiceField(choices=SyncStatus.choices, help_text="How it ended.")
    dry_run = serializers.BooleanField(help_text="Nothing was written.")
    models_fetched = serializers.IntegerField(help_text="Records the provider listed.")
    models_transformed = serializers.IntegerField(help_text="Records turned into models.")
    models_synced = serializers.IntegerField(help_text="Models written (0 when it failed).")
    models_skipped = serializers.IntegerField(help_text="Records that were not models.")
    models_created = serializers.IntegerField(help_text="New models.")
    models_updated = serializers.IntegerField(help_text="Changed models.")
    models_unchanged = serializers.IntegerField(help_text="Models already up to date.")
    models_deactivated = serializers.IntegerField(help_text="Models the provider dropped.")
    skipped_ids = serializers.ListField(
        child=serializers.CharField(), help_text="Ids of the skipped records."
    )
    duration_ms = serializers.IntegerField(allow_null=True, help_text="Duration.")
    sync_run_id = serializers.IntegerField(allow_null=True, help_text="The SyncRun row.")
    error = serializers.CharField(allow_null=True, help_text="Why it failed.")


class SyncOneResultSerializer(serializers.Serializer):
    success = serializers.BooleanField(help_text="The provider synced.")
    message = serializers.CharField(help_text="One line for people.")
    details = SyncResultDetailSerializer(help_text="Counts and timing.")


class SyncAllResultSerializer(serializers.Serializer):
    success = serializers.BooleanField(help_text="No provider failed.")
    message = serializers.CharField(help_text="One line for people.")
    details = SyncResultDetailSerializer(many=True, help_text="One entry per provider.")


class SyncTotalsSerializer(serializers.Serializer):
    providers = serializers.IntegerField(help_text="Global providers.")
    active_providers = serializers.IntegerField(help_text="Active global providers.")
    models = serializers.IntegerField(help_text="Models of global providers.")
    active_models = serializers.IntegerField(help_text="Active ones among them.")


class SyncStatusSerializer(serializers.Serializer):
    interval_hours = serializers.IntegerField(help_text="Hours between scheduled syncs.")
    totals = SyncTotalsSerializer(help_text="Catalog counts.")
    last_runs = serializers.DictField(
        child=SyncRunSummarySerializer(allow_null=True),
        help_text="The latest run per provider slug (null when never run).",
    )
    stale_providers = serializers.ListField(
        child=serializers.CharField(),
        help_text="Syncable providers without a successful run in the interval.",
    )


_DRY_RUN = OpenApiParameter(
    "dry_run",
    bool,
    OpenApiParameter.QUERY,
    description="Fetch and transform without writing (true/false, default false).",
)
_ERRORS = {
    401: OpenApiResponse(DetailErrorSerializer, description="Missing or wrong admin key."),
    503: OpenApiResponse(DetailErrorSerializer, description="ADMIN_API_KEY is not set."),
}
_BAD_DRY_RUN = OpenApiResponse(DetailErrorSerializer, description="dry_run is not a boolean.")


def _operation(path, method, operation_id, summary, responses, **schema):
    return Operation(
        path,
        method,
        {
            "operation_id": operation_id,
            "summary": summary,
            "tags": ["operators"],
            "auth": ADMIN_KEY_AUTH,
            "responses": {**responses, **_ERRORS},
            **schema,
        },
    )


OPERATIONS = [
    _operation(
        "/admin/model-sync/providers",
        "get",
        "model_sync_providers",
        "Registered providers, their keys and last syncs",
        {200: SyncProviderListSerializer},
    ),
    _operation(
        "/admin/model-sync/provider/{slug}",
        "post",
        "model_sync_provider",
        "Sync one provider now",
        {
            200: SyncOneResultSerializer,
            400: _BAD_DRY_RUN,
            404: OpenApiResponse(DetailErrorSerializer, description="Unknown provider."),
            409: OpenApiResponse(
                SyncOneResultSerializer, description="Cannot run here: no key configured."
            ),
            502: OpenApiResponse(SyncOneResultSerializer, description="The upstream failed."),
        },
        request=None,
        parameters=[
            OpenApiParameter(
                "slug", str, OpenApiParameter.PATH, description="Provider slug, e.g. groq."
            ),
            _DRY_RUN,
        ],
    ),
    _operation(
        "/admin/model-sync/all",
        "post",
        "model_sync_all",
        "Sync every provider now",
        {200: SyncAllResultSerializer, 400: _BAD_DRY_RUN},
        request=None,
        parameters=[_DRY_RUN],
    ),
    _operation(
        "/admin/model-sync/status",
        "get",
        "model_sync_status",
        "Catalog totals, last runs and overdue providers",
        {200: SyncStatusSerializer},
    ),
]
