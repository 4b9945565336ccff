from django.apps import AppConfig


class ModelhubConfig(AppConfig):
    name = "modelhub"
    verbose_name = "ModelHub"

    def ready(self) -> None:
        from modelhub.audit import register_audited_models

        register_audited_models()
