"""The audit trail: which rows django-auditlog records, and who and where from.

Every save and delete of an audited row, through the management API, the admin or the
operator endpoints, writes an :class:`~modelhub.models.AuditLogEntry` with the fields
that changed (before and after), the acting user and the client's address.

What is not recorded, on purpose:

- secrets and key digests (``encrypted_secret``, ``key_hash``): not even encrypted;
- what the gateway and the catalog sync write on their own: a credential's usage
  counters and last errors, ``last_used_at``, ``last_synced_at``, the upstream record of
  a model. The gateway writes these with ``QuerySet.update()`` (no model signals) or,
  for a failure, inside :func:`auditlog.context.disable_auditlog`; the sync upserts
  models with ``bulk_create``/``bulk_update``, which send no signals either, so a sync
  of thousands of models writes no entry per row. The fields are excluded as well, so
  that a later save by a person does not report them as that person's change;
- ``created_at``/``updated_at``: the entry has its own timestamp.

A credential's health (``health_status``, ``consecutive_failures``, ``cooldown_until``)
is recorded: staff change it in the admin, and the gateway's own writes of it bypass
auditing as said above.
"""

from __future__ import annotations

from auditlog.middleware import AuditlogMiddleware
from auditlog.models import AbstractLogEntry
from auditlog.registry import auditlog
from axes.helpers import get_client_ip_address
from django.apps import apps
from django.utils.functional import SimpleLazyObject

TIMESTAMPS = ["created_at", "updated_at"]

# The actions recorded, by their names in the API (django-auditlog stores numbers).
ACTIONS = {
    "create": AbstractLogEntry.Action.CREATE,
    "update": AbstractLogEntry.Action.UPDATE,
    "delete": AbstractLogEntry.Action.DELETE,
}

# (name in the API's ``object_type``, model, fields never recorded). One line per model:
# a new audited table is added here.
AUDITED_MODELS: list[tuple[str, str, list[str]]] = [
    ("organization", "modelhub.Organization", TIMESTAMPS),
    ("member", "modelhub.Membership", TIMESTAMPS),
    ("provider", "modelhub.Provider", [*TIMESTAMPS, "last_synced_at"]),
    ("model", "modelhub.Model", [*TIMESTAMPS, "last_synced_at", "raw", "sync_hash"]),
    (
        "api_key",
        "modelhub.ProviderCredential",
        [
            *TIMESTAMPS,
            "encrypted_secret",
            "period_started_at",
            "used_requests",
            "used_tokens",
            "used_cost",
            "last_error",
            "last_success_at",
            "last_failure_at",
            "last_used_at",
        ],
    ),
    ("client_key", "modelhub.ClientKey", [*TIMESTAMPS, "key_hash", "last_used_at"]),
    ("routing_rule", "modelhub.RoutingRule", TIMESTAMPS),
    ("routing_target", "modelhub.RoutingTarget", []),
    ("webhook", "modelhub.Webhook", [*TIMESTAMPS, "encrypted_secret"]),
]


def object_types() -> dict[str, tuple[str, str]]:
    """The API's object type names -> (app label, model name) of their content type."""
    types = {}
    for name, label, _ in AUDITED_MODELS:
        app_label, model_name = label.split(".")
        types[name] = (app_label, model_name.lower())
    return types


def _reverse_relations(model) -> list[str]:
    # A new row's entry lists every field of the model, and django-auditlog counts the
    # other side of foreign keys among them ("memberships": "Membership.None").
    return [f.name for f in model._meta.get_fields() if f.auto_created and not f.concrete]


def register_audited_models() -> None:
    """Connect django-auditlog to every model of :data:`AUDITED_MODELS` (at app ready)."""
    for _, label, excluded in AUDITED_MODELS:
        model = apps.get_model(label)
        if not auditlog.contains(model):
            auditlog.register(model, exclude_fields=[*excluded, *_reverse_relations(model)])


def _authenticated_user(request):
    user = getattr(request, "user", None)
    return user if user is not None and user.is_authenticated else None


class AuditMiddleware(AuditlogMiddleware):
    """django-auditlog's middleware, with the actor and address this platform trusts.

    - The actor is read when an entry is written, not when the request comes in. The
      management API authenticates with JWTs inside the view (DRF), after every
      middleware has run; DRF then sets the user on Django's request as well, which is
      where this reads it. The stock middleware reads ``request.user`` on the way in,
      when a JWT caller is still anonymous, and would record no actor for the API.
      Doing it here covers every DRF view (the organization views are not on the
      organization base viewset) as well as the admin.
    - The address is the one login throttling uses (django-axes with django-ipware and
      the ``AXES_IPWARE_*`` settings): ``REMOTE_ADDR`` unless a proxy is configured. The
      stock middleware takes the first ``X-Forwarded-For`` entry, which any client can
      write.
    - No port: the stock one comes from ``X-Forwarded-Port``, also the client's to write.
    """

    @staticmethod
    def _get_actor(request):
        return SimpleLazyObject(lambda: _authenticated_user(request))

    @staticmethod
    def _get_remote_addr(request):
        return get_client_ip_address(request)

    @staticmethod
    def _get_remote_port(request):
        return None
