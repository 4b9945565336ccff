from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "catalog"
    verbose_name = "Public catalog"

    def ready(self) -> None:
        # Registers the tasks that catalog.scheduling queues by name.
        from catalog import tasks  # noqa: F401
