"""One error shape for the management API: ``{"detail": ...}`` plus field errors."""

from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions
from rest_framework.views import exception_handler as drf_exception_handler

from modelhub.models import TenancyError


def exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(_django_errors(exc))
    if isinstance(exc, TenancyError):
        exc = exceptions.ValidationError({"detail": str(exc)})
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, list):
        response.data = {"detail": response.data}
    return response


def _django_errors(exc: DjangoValidationError) -> dict:
    """Field errors stay lists; errors about the whole request become one ``detail`` string,
    the shape every other error of the API has."""
    errors: dict[str, list[str] | str] = (
        dict(exc.message_dict) if hasattr(exc, "error_dict") else {"detail": exc.messages}
    )
    general = [*errors.pop("detail", []), *errors.pop(NON_FIELD_ERRORS, [])]
    if general:
        errors["detail"] = " ".join(general)
    return errors
