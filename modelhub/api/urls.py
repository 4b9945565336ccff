"""Routes of the management API, mounted at ``/api/modelhub/``."""

from rest_framework.routers import SimpleRouter

from modelhub.api import views

router = SimpleRouter()
router.register("organizations", views.OrganizationViewSet, basename="organization")
router.register(
    r"organizations/(?P<organization_slug>[-a-zA-Z0-9_]+)/members",
    views.MemberViewSet,
    basename="member",
)
router.register("providers", views.ProviderViewSet, basename="provider")
router.register("models", views.ModelViewSet, basename="model")
router.register("api-keys", views.ProviderCredentialViewSet, basename="api-key")
router.register("client-keys", views.ClientKeyViewSet, basename="client-key")
router.register("routing-rules", views.RoutingRuleViewSet, basename="routing-rule")
router.register("metrics", views.ModelMetricViewSet, basename="metric")
router.register("audit-log", views.AuditLogViewSet, basename="audit-log")
router.register("webhooks", views.WebhookViewSet, basename="webhook")
router.register(
    r"webhooks/(?P<webhook_pk>[^/]+)/deliveries",
    views.WebhookDeliveryViewSet,
    basename="webhook-delivery",
)

urlpatterns = router.urls
