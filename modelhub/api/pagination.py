from collections.abc import Callable
from datetime import datetime
from decimal import Decimal, InvalidOperation

from django.db.models import Q
from django.utils.dateparse import parse_datetime
from rest_framework import pagination
from rest_framework.exceptions import NotFound, ValidationError


class PageNumberPagination(pagination.PageNumberPagination):
    """``page`` and ``page_size`` (at most 200) on every list."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_paginated_response_schema(self, schema):
        described = super().get_paginated_response_schema(schema)
        descriptions = {
            "count": "Objects in all pages.",
            "next": "URL of the next page; null on the last.",
            "previous": "URL of the previous page; null on the first.",
            "results": "The objects of this page.",
        }
        for name, text in descriptions.items():
            described["properties"][name]["description"] = text
        return described


ORDERING_PARAM = "ordering"


def keyset_ordering(request, view) -> tuple[str, str]:
    """The ``ordering`` of a keyset-paged list: one of the view's ``ordering_fields``,
    ``-`` for descending, with the primary key after it in the same direction as the
    tie-breaker. Anything else is a 400 naming the choices (a page cursor is only
    meaningful for the order it was made in)."""
    value = request.query_params.get(ORDERING_PARAM, "").strip() or view.ordering[0]
    field = value.removeprefix("-")
    if field not in view.ordering_fields:
        choices = ", ".join(f"{name}, -{name}" for name in view.ordering_fields)
        raise ValidationError({ORDERING_PARAM: [f"Order by one of: {choices}."]})
    direction = "-" if value.startswith("-") else ""
    return f"{direction}{field}", f"{direction}id"


class KeysetCursorPagination(pagination.CursorPagination):
    """DRF's cursor pagination on ``(ordering field, id)``.

    DRF keeps only the first ordering field in its cursor and skips rows of equal value
    with an OFFSET (capped at 1,000): fine for timestamps, wrong for costs and latencies,
    where thousands of rows share a value. Here the cursor holds the last row's value and
    id, and the next page is ``(value, id) < (last value, last id)``: one range scan of
    the ``(organization, field, id)`` index, as fast on page 10,000 as on page one.
    """

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    invalid_cursor_message = "Invalid cursor: use the next or previous link of a page as it is."
    # How a cursor's value is read back, per ordering field type.
    parsers: dict[str, Callable[[str], object]] = {
        "created_at": parse_datetime,
        "cost": Decimal,
        "latency_ms": int,
    }

    def get_ordering(self, request, queryset, view):
        return keyset_ordering(request, view)

    def decode_cursor(self, request):
        try:
            cursor = super().decode_cursor(request)
        except NotFound:
            raise ValidationError(
                {self.cursor_query_param: [self.invalid_cursor_message]}
            ) from None
        if cursor is not None and cursor.position is not None:
            self._parse_position(cursor.position)
        return cursor

    def _parse_position(self, position: str):
        field = self.ordering[0].removeprefix("-")
        value, _, pk = position.rpartition("|")
        try:
            parsed = self.parsers[field](value)
            parsed_pk = int(pk)
        except (KeyError, ValueError, InvalidOperation, TypeError):
            parsed = None
        if parsed is None or (isinstance(parsed, datetime) and parsed.tzinfo is None):
            raise ValidationError({self.cursor_query_param: [self.invalid_cursor_message]})
        return parsed, parsed_pk

    def _get_position_from_instance(self, instance, ordering):
        field = ordering[0].removeprefix("-")
        value = instance[field] if isinstance(instance, dict) else getattr(instance, field)
        pk = instance["id"] if isinstance(instance, dict) else instance.pk
        if isinstance(value, datetime):
            value = value.isoformat()
        return f"{value}|{pk}"

    def _after(self, queryset, position: str, *, lower: bool):
        """Rows past ``position`` in the direction of the page: ``(field, id)`` below it
        (``lower``) or above. The plain bound on the field gives the database its index
        range; the tuple comparison then settles ties on the id."""
        field = self.ordering[0].removeprefix("-")
        value, pk = self._parse_position(position)
        strict, loose = ("lt", "lte") if lower else ("gt", "gte")
        return queryset.filter(**{f"{field}__{loose}": value}).filter(
            Q(**{f"{field}__{strict}": value}) | Q(**{field: value, f"id__{strict}": pk})
        )

    def paginate_queryset(self, queryset, request, view=None):
        # DRF's algorithm with the keyset comparison in place of position and offset.
        self.request = request
        self.page_size = self.get_page_size(request)
        self.base_url = request.build_absolute_uri()
        self.ordering = self.get_ordering(request, queryset, view)
        self.cursor = self.decode_cursor(request)
        reverse = self.cursor is not None and self.cursor.reverse
        current_position = self.cursor.position if self.cursor is not None else None

        if reverse:
            queryset = queryset.order_by(*pagination._reverse_ordering(self.ordering))
        else:
            queryset = queryset.order_by(*self.ordering)
        if current_position is not None:
            descending = self.ordering[0].startswith("-")
            queryset = self._after(queryset, current_position, lower=reverse != descending)

        results = list(queryset[: self.page_size + 1])
        self.page = results[: self.page_size]
        has_following = len(results) > len(self.page)
        following = (
            self._get_position_from_instance(results[-1], self.ordering) if has_following else None
        )
        if reverse:
            self.page.reverse()
            self.has_next = current_position is not None
            self.has_previous = has_following
            self.next_position = current_position
            self.previous_position = following
        else:
            self.has_next = has_following
            self.has_previous = current_position is not None
            self.next_position = following
            self.previous_position = current_position
        if (self.has_previous or self.has_next) and self.template is not None:
            self.display_page_controls = True
        return self.page

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        choices = [f"{sign}{name}" for name in view.ordering_fields for sign in ("", "-")]
        parameters.append(
            {
                "name": ORDERING_PARAM,
                "required": False,
                "in": "query",
                "description": f"Order of the rows; default {view.ordering[0]}.",
                "schema": {"type": "string", "enum": choices},
            }
        )
        return parameters

    def get_paginated_response_schema(self, schema):
        described = super().get_paginated_response_schema(schema)
        described["properties"]["next"]["description"] = "URL of the next page; null on the last."
        described["properties"]["previous"]["description"] = (
            "URL of the previous page; null on the first."
        )
        described["properties"]["results"]["description"] = "The objects of this page."
        return described
