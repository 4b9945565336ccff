"""Root URLconf: admin, management API, API docs, health probes and the apps' routes."""

from django.conf import settings
from django.contrib import admin
from django.contrib.staticfiles.urls import staticfiles_urlpatterns
from django.urls import include, path, re_path
from django.views.static import serve
from drf_spectacular.views import SpectacularAPIView
from rest_framework_simplejwt.views import TokenRefreshView, TokenVerifyView

from config import docs, health
from modelhub import pages
from modelhub.login_throttle import TokenObtainView
from sync.views import ProviderDiscoveryViewSet

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("api/auth/token/", TokenObtainView.as_view(), name="token_obtain_pair"),
    path("api/auth/token/refresh/", TokenRefreshView.as_view(), name="token_refresh"),
    path("api/auth/token/verify/", TokenVerifyView.as_view(), name="token_verify"),
    # Served by the sync app (the management API's app may not import it), ahead of
    # the management API's routes under the same prefix.
    path(
        "api/modelhub/providers/<str:pk>/discover/",
        ProviderDiscoveryViewSet.as_view({"post": "discover"}),
        name="provider-discover",
    ),
    path("api/modelhub/", include("modelhub.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", docs.swagger_ui, name="swagger-ui"),
    path("api/redoc/", docs.redoc, name="redoc"),
    path("dashboard/", pages.dashboard, name="dashboard"),
    path("admin/", include("sync.urls")),
    path("", include("catalog.urls")),
    path("", include("gateway.urls")),
    path("admin/", admin.site.urls),
]

if settings.DEBUG:
    urlpatterns += staticfiles_urlpatterns()
elif settings.SERVE_STATIC:
    urlpatterns += [
        re_path(r"^static/(?P<path>.*)$", serve, {"document_root": settings.STATIC_ROOT}),
    ]
