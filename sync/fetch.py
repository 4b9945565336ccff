"""HTTP for the sync: fetch a provider's whole model list, page by page, or fail loudly.

A partial list would deactivate every model on the missing pages, so anything short of a
complete, well-formed list raises :class:`FetchError` and the pipeline leaves the
provider's rows alone. Error messages are built here from status codes and shapes, never
from request headers, and any echo of the key in a body or URL is redacted.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from django.conf import settings

from sync.transforms import lookup

# requests (with urllib3) is imported inside the functions that call a provider, here and
# in the rest of the sync and catalog apps. Every web worker loads these modules (the
# admin and the registry import them) but only Celery tasks, commands and a few admin
# and catalog actions make a request; a worker that serves the gateway's routes would
# otherwise carry 4.6 MiB of it (a test in tests/test_platform.py keeps it out).
if TYPE_CHECKING:
    import requests

    from sync.spec import ProviderSpec

USER_AGENT = "modelhub-catalog-sync/1.0"


class FetchError(Exception):
    """The provider's list could not be fetched completely; ``transient`` ones are retried.

    ``unreachable``: no HTTP answer at all (DNS, refused connection, TLS, timeout).
    """

    def __init__(self, message: str, *, transient: bool = False, unreachable: bool = False):
        super().__init__(message)
        self.transient = transient
        self.unreachable = unreachable


def error_classes(exc: BaseException) -> str:
    """``ConnectionError: NameResolutionError``: the exception's class and its cause's.

    requests wraps urllib3's errors; the innermost class is the one that says what failed.
    """
    names = [type(exc).__name__]
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", None) or exc.__cause__ or exc.__context__
    seen = 0
    while reason is not None and seen < 4:
        name = type(reason).__name__
        if name not in names and name not in ("MaxRetryError", "str"):
            names.append(name)
        reason = getattr(reason, "reason", None) or reason.__cause__
        seen += 1
    return ": ".join(names)


def redact(text: str, secret: str) -> str:
    return text.replace(secret, "[redacted]") if secret and len(secret) >= 4 else text


def request_headers(spec: ProviderSpec, api_key: str) -> dict[str, str]:
    headers = {"Accept": "application/json", "User-Agent": USER_AGENT, **spec.extra_headers}
    if api_key:
        headers[spec.auth_header] = f"{spec.auth_scheme} {api_key}".strip()
    return headers


def extract_items(spec: ProviderSpec, payload: Any) -> list[Any]:
    """The list of raw model records in a page, wherever the provider puts it.

    ``items_path`` may name alternatives (``"models|data"``). A single object where a list
    is expected (OpenRouter's per-model endpoints call) is one record.
    """
    for path in spec.items_path.split("|"):
        if path == "":
            if isinstance(payload, list):
                return payload
            continue
        items = lookup(payload, path) if isinstance(payload, Mapping) else None
        if isinstance(items, list):
            return items
        if isinstance(items, Mapping) and items:
            return [items]
    if isinstance(payload, Mapping):
        keys = ", ".join(sorted(str(k) for k in payload)[:8])
        raise FetchError(f"no model list at '{spec.items_path}' (top-level keys: {keys})")
    raise FetchError(f"expected a model list, got a JSON {type(payload).__name__}")


def _with_params(url: str, params: Mapping[str, str]) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.update(params)
    return urlunsplit(parts._replace(query=urlencode(query)))


def next_page_url(spec: ProviderSpec, url: str, payload: Any, items: list[Any]) -> str | None:
    """The URL of the next page, or ``None`` when ``payload`` was the last one."""
    paging = spec.pagination
    if paging is None or not isinstance(payload, Mapping):
        return None
    if paging.more_key and payload.get(paging.more_key) is not True:
        return None
    if paging.style == "next_link":
        link = lookup(payload, paging.response_key)
        return urljoin(url, link) if isinstance(link, str) and link else None
    if paging.style == "token":
        token = lookup(payload, paging.response_key)
        if not isinstance(token, str) or not token or not items:
            return None
        return _with_params(url, {paging.param: token})
    if paging.style == "after_id":
        last = lookup(payload, paging.response_key)
        return _with_params(url, {paging.param: last}) if isinstance(last, str) and last else None
    if paging.style == "offset":
        total, limit, offset = payload.get("total"), payload.get("limit"), payload.get("offset")
        if not all(isinstance(n, int) for n in (total, limit, offset)) or not items:
            return None
        following = offset + len(items)
        return _with_params(url, {paging.param: str(following)}) if following < total else None
    raise ValueError(f"unknown pagination style {paging.style!r}")


def fetch_page(
    session: requests.Session, url: str, *, headers: Mapping[str, str], secret: str
) -> Any:
    import requests

    timeout = settings.SYNC_HTTP_TIMEOUT
    host = urlsplit(url).netloc.rpartition("@")[2]
    try:
        response = session.get(url, headers=dict(headers), timeout=timeout)
    except requests.Timeout as exc:
        raise FetchError(
            f"{host} did not answer within {timeout}s ({error_classes(exc)})",
            transient=True,
            unreachable=True,
        ) from None
    except requests.RequestException as exc:
        # Class names only: the exception text can hold the URL (the URL never holds the
        # key, but be sure), and the classes say what failed (DNS, refused, TLS).
        raise FetchError(
            redact(f"cannot connect to {host} ({error_classes(exc)})", secret),
            transient=True,
            unreachable=True,
        ) from None
    status = response.status_code
    if status in (401, 403):
        raise FetchError(f"HTTP {status}: the provider rejected the credentials")
    if status == 429 or status >= 500:
        raise FetchError(f"HTTP {status} from the provider", transient=True)
    if status >= 400:
        raise FetchError(f"HTTP {status} from the provider")
    content_type = response.headers.get("Content-Type", "")
    try:
        return json.loads(response.content)
    except ValueError:
        kind = (
            "an HTML page"
            if "html" in content_type or response.content.lstrip()[:1] == b"<"
            else "invalid or truncated JSON"
        )
        raise FetchError(f"the provider returned {kind} instead of a model list") from None


def too_many_records(count: int, *, partial: bool = False) -> str:
    counted = f"at least {count}" if partial else str(count)
    return (
        f"the list has {counted} records, more than SYNC_MAX_RECORDS "
        f"({settings.SYNC_MAX_RECORDS}); nothing changed (raise SYNC_MAX_RECORDS if the "
        "provider really lists that many)"
    )


def fetch_records(spec: ProviderSpec, *, session: requests.Session | None = None) -> list[Any]:
    """Every raw record of the provider's list, following pagination up to the page bound."""
    api_key = spec.api_key()
    headers = request_headers(spec, api_key)
    import requests

    own_session = session is None
    session = session or requests.Session()
    url: str | None = spec.resolved_list_url()
    seen: set[str] = set()
    records: list[Any] = []
    try:
        for _ in range(settings.SYNC_MAX_PAGES):
            if url is None:
                break
            seen.add(url)
            payload = fetch_page(session, url, headers=headers, secret=api_key)
            items = extract_items(spec, payload)
            records.extend(items)
            if len(records) > settings.SYNC_MAX_RECORDS:
                # Stop reading: a runaway list is refused whole, whatever its remaining pages.
                raise FetchError(too_many_records(len(records), partial=url is not None))
            url = next_page_url(spec, url, payload, items)
            if url in seen:
                raise FetchError("pagination loops back to a page already read")
        if url is not None:
            raise FetchError(f"more than {settings.SYNC_MAX_PAGES} pages (SYNC_MAX_PAGES)")
        if spec.enrich is not None:
            records = spec.enrich(records, session=session, headers=headers, secret=api_key)
        return records
    finally:
        if own_session:
            session.close()
