"""Set-based writes of model rows: one statement per kind of change, whatever the count.

``bulk_create``/``bulk_update`` split their work into batches bounded by the database's
parameter limit, so their statement count grows with the catalog, and ``bulk_update``
builds a ``CASE`` per column and row. Here every batch of rows travels as ONE JSON
parameter that the database unpacks itself (``jsonb_to_recordset`` on PostgreSQL,
``json_each`` on SQLite), so a provider costs the same number of statements at 100 models
as at 50,000. Other backends fall back to the ORM's bulk methods.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Field

from modelhub.models import Model

# Filled by the database: the primary key.
_SKIP = {"id"}


class RawJSON(str):
    """A JSON document already serialised (the raw record, encoded once for its digest)."""


def _fields(names: Iterable[str]) -> list[Field]:
    return [Model._meta.get_field(name) for name in names]


def insert_fields() -> list[str]:
    return [f.attname for f in Model._meta.concrete_fields if f.attname not in _SKIP]


def _json_value(value: Any, vendor: str) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        if vendor == "sqlite":
            # Stored as Django's SQLite adapter would store it (naive UTC text).
            return connection.ops.adapt_datetimefield_value(value)
        return value.isoformat()
    return value


def _payload(rows: Sequence[dict[str, Any]], fields: Sequence[Field], vendor: str) -> str:
    """One JSON array of row objects; pre-serialised values are spliced in, not re-encoded."""
    # Columns the sync does not fill (added to the model later) get their model default.
    defaults = {f.attname: f.get_default() for f in fields}
    parts = []
    for row in rows:
        values, spliced = {}, []
        for name, default in defaults.items():
            value = row.get(name, default)
            if isinstance(value, RawJSON):
                spliced.append(f"{json.dumps(name)}:{value}")
            else:
                values[name] = _json_value(value, vendor)
        text = json.dumps(values, separators=(",", ":"), ensure_ascii=False)
        if spliced:
            text = f"{text[:-1]},{','.join(spliced)}}}" if values else f"{{{','.join(spliced)}}}"
        parts.append(text)
    return f"[{','.join(parts)}]"


def _orm_row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: json.loads(v) if isinstance(v, RawJSON) else v for k, v in row.items()}


def _quote(name: str) -> str:
    return connection.ops.quote_name(name)


def _recordset(fields: Sequence[Field]) -> str:
    """PostgreSQL column definitions for ``jsonb_to_recordset``, from the model's own types."""
    return ", ".join(
        f"{_quote(f.column)} {f.rel_db_type(connection) if f.is_relation else f.db_type(connection)}"
        for f in fields
    )


def insert_rows(rows: Sequence[dict[str, Any]]) -> int:
    if not rows:
        return 0
    names = insert_fields()
    fields = _fields(names)
    table = _quote(Model._meta.db_table)
    columns = ", ".join(_quote(f.column) for f in fields)
    vendor = connection.vendor
    with connection.cursor() as cursor:
        if vendor == "postgresql":
            cursor.execute(
                f"INSERT INTO {table} ({columns}) SELECT {columns} "  # noqa: S608
                f"FROM jsonb_to_recordset(%s::jsonb) AS r({_recordset(fields)})",
                [_payload(rows, fields, vendor)],
            )
        elif vendor == "sqlite":
            values = ", ".join(f"json_extract(r.value, '$.{name}')" for name in names)
            cursor.execute(
                f"INSERT INTO {table} ({columns}) SELECT {values} FROM json_each(%s) AS r",  # noqa: S608
                [_payload(rows, fields, vendor)],
            )
        else:
            Model.objects.bulk_create([Model(**_orm_row(row)) for row in rows])
    return len(rows)


def update_rows(rows: Sequence[dict[str, Any]], names: Sequence[str]) -> int:
    """Set ``names`` on the rows whose ``id`` each dict carries."""
    if not rows:
        return 0
    fields = _fields(names)
    table = _quote(Model._meta.db_table)
    vendor = connection.vendor
    with connection.cursor() as cursor:
        if vendor == "postgresql":
            assignments = ", ".join(f"{_quote(f.column)} = r.{_quote(f.column)}" for f in fields)
            cursor.execute(
                f"UPDATE {table} AS m SET {assignments} "  # noqa: S608
                f"FROM jsonb_to_recordset(%s::jsonb) AS r(id bigint, {_recordset(fields)}) "
                "WHERE m.id = r.id",
                [_payload(rows, [Model._meta.pk, *fields], vendor)],
            )
        elif vendor == "sqlite":
            assignments = ", ".join(
                f"{_quote(f.column)} = json_extract(r.value, '$.{f.attname}')" for f in fields
            )
            cursor.execute(
                f"UPDATE {table} SET {assignments} FROM json_each(%s) AS r "  # noqa: S608
                f"WHERE {table}.id = json_extract(r.value, '$.id')",
                [_payload(rows, [Model._meta.pk, *fields], vendor)],
            )
        else:
            objects = [Model(**_orm_row(row)) for row in rows]
            Model.objects.bulk_update(objects, list(names))
    return len(rows)


def deactivate_rows(ids: Sequence[int], *, now: dt.datetime) -> int:
    if not ids:
        return 0
    table = _quote(Model._meta.db_table)
    vendor = connection.vendor
    with connection.cursor() as cursor:
        if vendor == "postgresql":
            cursor.execute(
                f"UPDATE {table} SET is_active = false, updated_at = %s "  # noqa: S608
                "WHERE id = ANY(%s)",
                [now, list(ids)],
            )
        elif vendor == "sqlite":
            cursor.execute(
                f"UPDATE {table} SET is_active = 0, updated_at = %s "  # noqa: S608
                "WHERE id IN (SELECT value FROM json_each(%s))",
                [connection.ops.adapt_datetimefield_value(now), json.dumps(list(ids))],
            )
        else:
            Model.objects.filter(id__in=ids).update(is_active=False, updated_at=now)
    return len(ids)
