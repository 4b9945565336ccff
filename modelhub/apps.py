from django.apps import AppConfig


class ModelhubConfig(AppConfig):
    name = "modelhub"
    verbose_name = "ModelHub"

    def ready(self) -> None:
        from django.db.models.signals import pre_delete

        from modelhub.audit import register_audited_models
        from modelhub.models import Organization
        from modelhub.services import lock_organization_being_deleted

        register_audited_models()
        pre_delete.connect(
            lock_organization_being_deleted,
            sender=Organization,
            dispatch_uid="modelhub-lock-organization-being-deleted",
        )
