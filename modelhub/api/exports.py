"""CSV export of the request log, streamed.

The rows are read with a server-side cursor (``QuerySet.iterator``) and written a chunk
at a time, so memory stays flat whatever the number of rows; at most
METRICS_EXPORT_MAX_ROWS are written, and a last line says so when more matched.
"""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator, Iterator

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.http import StreamingHttpResponse

from modelhub.models import ModelMetric

CHUNK_SIZE = 2000

COLUMNS = (
    "id", "created_at", "request_id", "client_key", "provider", "model", "credential",
    "routing_rule", "model_type", "requested_model", "served_model", "strategy",
    "status_code", "success", "error_source", "error_type", "error_message",
    "input_tokens", "output_tokens", "cached_tokens", "total_tokens", "cost", "latency_ms",
    "time_to_first_token_ms", "fallbacks_used", "attempts", "streamed",
)  # fmt: skip
ID_COLUMNS = {"client_key", "provider", "model", "credential", "routing_rule"}

# A spreadsheet runs a cell that starts with one of these as a formula; requested model
# names and error text come from callers and upstreams.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class _Line:
    """A file for ``csv.writer`` that hands back what was written."""

    def write(self, text: str) -> str:
        return text


def _cell(metric: ModelMetric, column: str):
    if column == "error_message":
        value = metric.visible_error_message
    elif column in ID_COLUMNS:
        value = getattr(metric, f"{column}_id")
    else:
        value = getattr(metric, column)
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def csv_lines(queryset, *, max_rows: int) -> Iterator[bytes]:
    """The header, then one line per row (chunks of CHUNK_SIZE rows), then a trailer line
    when more than ``max_rows`` rows matched."""
    writer = csv.writer(_Line())
    yield writer.writerow(COLUMNS).encode()
    lines: list[str] = []
    rows = queryset[: max_rows + 1].iterator(chunk_size=CHUNK_SIZE)
    for written, metric in enumerate(rows):
        if written == max_rows:
            if lines:
                yield "".join(lines).encode()
                lines = []
            yield writer.writerow(
                [
                    f"# truncated: more than {max_rows} rows match; narrow the filters "
                    "(since, until) or page through them with the next cursor of the list"
                ]
            ).encode()
            return
        lines.append(writer.writerow([_cell(metric, column) for column in COLUMNS]))
        if len(lines) == CHUNK_SIZE:
            yield "".join(lines).encode()
            lines = []
    if lines:
        yield "".join(lines).encode()


async def _async_lines(lines: Iterator[bytes]) -> AsyncIterator[bytes]:
    # Each chunk is read on the request's database thread: the server-side cursor stays
    # on the connection that opened it, and the event loop never waits for the database.
    def read() -> bytes | None:
        return next(lines, None)

    read_on_thread = sync_to_async(read, thread_sensitive=True)
    while (chunk := await read_on_thread()) is not None:
        yield chunk


def csv_response(request, queryset, *, filename: str) -> StreamingHttpResponse:
    max_rows = settings.METRICS_EXPORT_MAX_ROWS
    lines = csv_lines(queryset, max_rows=max_rows)
    # Under ASGI, Django would read a synchronous iterator to the end into a list before
    # sending a byte; an asynchronous one is streamed as it is produced.
    content = _async_lines(lines) if isinstance(request, ASGIRequest) else lines
    response = StreamingHttpResponse(content, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["X-Export-Max-Rows"] = str(max_rows)
    return response
