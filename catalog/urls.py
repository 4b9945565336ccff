"""Routes of the public catalog; included at the root, so the admin paths are written in full."""

from django.urls import path, re_path

from catalog import pages, views

app_name = "catalog"

urlpatterns = [
    path("catalog/browse/", pages.browse, name="browse"),
    path(
        "catalog/browse/model/<str:provider_slug>/<path:model_id>",
        pages.browse_model,
        name="browse-model",
    ),
    re_path(r"^catalog/providers?/?$", views.provider_list, name="providers"),
    re_path(r"^catalog/models/?$", views.model_list, name="models"),
    path("catalog/model/<str:provider_name>/<path:model_name>", views.model_detail, name="model"),
    path(
        "admin/huggingface-cache-status",
        views.huggingface_cache_status,
        name="huggingface-cache-status",
    ),
    path(
        "admin/refresh-huggingface-cache",
        views.refresh_huggingface_cache,
        name="refresh-huggingface-cache",
    ),
]
