"""Admin sync API, mounted under ``/admin/`` before Django admin's own URLs."""

from django.urls import path

from sync import views

app_name = "sync"

urlpatterns = [
    path("model-sync/providers", views.providers, name="providers"),
    path("model-sync/provider/<slug:slug>", views.sync_one, name="sync-provider"),
    path("model-sync/all", views.sync_all, name="sync-all"),
    path("model-sync/status", views.status, name="status"),
]
