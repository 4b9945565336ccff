from django.apps import AppConfig
from django.core import checks


class GatewayConfig(AppConfig):
    name = "gateway"
    verbose_name = "Gateway"

    def ready(self):
        from gateway.checks import check_metrics_token

        checks.register(check_metrics_token, checks.Tags.security)
