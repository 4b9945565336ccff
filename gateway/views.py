"""The OpenAI-compatible endpoints: ``/v1/chat/completions``, ``/v1/completions``,
``/v1/embeddings``, ``/v1/responses`` (with ``/v1/responses/{id}``), ``/v1/models`` and
``/v1/models/{id}``, plus ``/metrics``; and Anthropic's ``/v1/messages`` and
``/v1/messages/count_tokens``.

Async views; they authenticate the client key and hand over to ``gateway.proxy``.
"""

from __future__ import annotations

import json
import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from gateway import anthropic, proxy, runtime, telemetry
from gateway import responses as responses_api
from gateway.auth import authenticate
from gateway.dialect import OPENAI, Dialect
from gateway.errors import AuthenticationFailed, GatewayError, InvalidRequest, ModelNotFound
from gateway.selectors import model_list
from gateway.upstreams import CHAT, COMPLETIONS, EMBEDDINGS, Endpoint
from modelhub import selectors
from modelhub.crypto import constant_time_equals
from modelhub.selectors import stored_response_get
from modelhub.services import stored_response_delete

logger = logging.getLogger(__name__)


def _json(payload, status: int = 200) -> HttpResponse:
    return HttpResponse(json.dumps(payload), status=status, content_type="application/json")


def _method_not_allowed(allowed: str, dialect: Dialect = OPENAI) -> HttpResponse:
    error = InvalidRequest(
        f"Use {allowed} on this endpoint.", status=405, code="method_not_allowed"
    )
    response = dialect.error_response(error)
    response["Allow"] = allowed
    return response


async def _completion(
    request: HttpRequest, endpoint: Endpoint, dialect: Dialect = OPENAI
) -> HttpResponseBase:
    if request.method != "POST":
        return _method_not_allowed("POST", dialect)
    state = runtime.current()
    try:
        key = await authenticate(state, request.headers)
        return await proxy.handle(
            state,
            key,
            request.body,
            endpoint,
            request_id=getattr(request, "request_id", None),
            dialect=dialect,
        )
    except GatewayError as error:
        return dialect.error_response(error)


@csrf_exempt
async def chat_completions(request: HttpRequest) -> HttpResponseBase:
    """Create a chat completion (OpenAI's ``POST /v1/chat/completions``), streamed or not."""
    return await _completion(request, CHAT)


@csrf_exempt
async def completions(request: HttpRequest) -> HttpResponseBase:
    """Create a text completion (OpenAI's legacy ``POST /v1/completions``)."""
    return await _completion(request, COMPLETIONS)


@csrf_exempt
async def embeddings(request: HttpRequest) -> HttpResponseBase:
    """Create embeddings (OpenAI's ``POST /v1/embeddings``)."""
    return await _completion(request, EMBEDDINGS)


@csrf_exempt
async def responses(request: HttpRequest) -> HttpResponseBase:
    """Create a model response (OpenAI's Responses API, ``POST /v1/responses``), streamed
    or not; stored for ``previous_response_id`` unless ``store`` is false."""
    return await _completion(request, CHAT, responses_api.ResponsesDialect())


@csrf_exempt
async def response_detail(request: HttpRequest, response_id: str) -> HttpResponse:
    """Read (``GET``) or delete (``DELETE``) one of the organization's stored responses."""
    if request.method not in ("GET", "DELETE"):
        return _method_not_allowed("GET, DELETE")
    state = runtime.current()
    try:
        key = await authenticate(state, request.headers)
        organization = key.organization
        if not responses_api.is_response_id(response_id):
            raise responses_api.not_found(response_id)
        if request.method == "DELETE":
            if not await state.db(
                stored_response_delete, organization=organization, response_id=response_id
            ):
                raise responses_api.not_found(response_id)
            return _json(responses_api.deleted(response_id))
        if request.GET.get("stream") in ("true", "1"):
            raise InvalidRequest(
                "Streaming a stored response again is not supported: read it without 'stream'.",
                param="stream",
                code="unsupported_value",
            )
        stored = await state.db(
            stored_response_get, organization=organization, response_id=response_id
        )
        if stored is None:
            raise responses_api.not_found(response_id)
        return _json(stored.response)
    except GatewayError as error:
        return error.as_response()


async def response_input_items(request: HttpRequest, response_id: str) -> HttpResponse:
    """The input items of one of the organization's stored responses, in pages."""
    if request.method != "GET":
        return _method_not_allowed("GET")
    state = runtime.current()
    try:
        key = await authenticate(state, request.headers)
        order = request.GET.get("order", "desc")
        if order not in ("asc", "desc"):
            raise InvalidRequest("'order' must be 'asc' or 'desc'.", param="order")
        try:
            limit = int(request.GET.get("limit", "20"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 100:
            raise InvalidRequest("'limit' must be a whole number from 1 to 100.", param="limit")
        stored = None
        if responses_api.is_response_id(response_id):
            stored = await state.db(
                stored_response_get, organization=key.organization, response_id=response_id
            )
        if stored is None:
            raise responses_api.not_found(response_id)
        page = responses_api.input_item_list(
            stored.input_items, order=order, limit=limit, after=request.GET.get("after")
        )
        return _json(page)
    except GatewayError as error:
        return error.as_response()


@csrf_exempt
async def messages(request: HttpRequest) -> HttpResponseBase:
    """Create a message (Anthropic's ``POST /v1/messages``), streamed or not, with any
    model of the gateway; Anthropic's SDKs and Claude Code use it."""
    return await _completion(request, CHAT, anthropic.MessagesDialect(request.headers))


@csrf_exempt
async def count_message_tokens(request: HttpRequest) -> HttpResponse:
    """Count a message's input tokens (Anthropic's ``POST /v1/messages/count_tokens``),
    as the gateway estimates them."""
    dialect = anthropic.MessagesDialect(request.headers, counting=True)
    if request.method != "POST":
        return _method_not_allowed("POST", dialect)
    state = runtime.current()
    try:
        key = await authenticate(state, request.headers)
        tokens = await proxy.count_tokens(state, key, request.body, dialect=dialect)
    except GatewayError as error:
        return dialect.error_response(error)
    return _json({"input_tokens": tokens})


async def _models_for(state, key) -> list[dict]:
    return await state.model_lists.get_or_load(
        (key.organization.pk, key.id), lambda: state.db(model_list, key.organization, key)
    )


async def models(request: HttpRequest) -> HttpResponse:
    """List the models this key may use, in OpenAI's list shape."""
    if request.method != "GET":
        return _method_not_allowed("GET")
    state = runtime.current()
    try:
        key = await authenticate(state, request.headers)
        return _json({"object": "list", "data": await _models_for(state, key)})
    except GatewayError as error:
        return error.as_response()


async def model_detail(request: HttpRequest, model_id: str) -> HttpResponse:
    """One model of the list by its id (``provider/model`` ids keep their slash)."""
    if request.method != "GET":
        return _method_not_allowed("GET")
    state = runtime.current()
    try:
        key = await authenticate(state, request.headers)
        for entry in await _models_for(state, key):
            if entry["id"] == model_id:
                return _json(entry)
        raise ModelNotFound(
            f"The model '{model_id}' does not exist or you do not have access to it."
        )
    except GatewayError as error:
        return error.as_response()


async def _refresh_gauges() -> None:
    """Re-read the database gauges on a database thread when they are old; a failed read
    keeps the previous values (the counters are still served)."""
    if not telemetry.GAUGES.is_stale(settings.METRICS_GAUGE_REFRESH_SECONDS):
        return
    try:
        snapshot = await runtime.current().db(selectors.telemetry_snapshot)
    except Exception:
        logger.exception("Could not read the gauges of /metrics from the database.")
        return
    telemetry.GAUGES.update(snapshot)


async def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus metrics in the text exposition format; with ``METRICS_TOKEN`` set, only
    for ``Authorization: Bearer <METRICS_TOKEN>`` (the series name providers and spend)."""
    token = settings.METRICS_TOKEN
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not constant_time_equals(given.strip(), token):
            response = AuthenticationFailed(
                "Invalid or missing metrics token: send Authorization: Bearer <METRICS_TOKEN>.",
                code="invalid_metrics_token",
            ).as_response()
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    await _refresh_gauges()
    # This process's counters as of now (other workers add theirs as they flush).
    runtime.current().recorder.counters.apply()
    payload, content_type = telemetry.exposition()
    response = HttpResponse(payload, content_type=content_type)
    response["Cache-Control"] = "no-store"
    return response


async def unknown_endpoint(request: HttpRequest, path: str) -> HttpResponse:
    """Any other path under ``/v1/``: OpenAI's JSON 404, not an HTML page."""
    return InvalidRequest(
        f"Invalid URL ({request.method} /v1/{path})", status=404, code="unknown_url"
    ).as_response()
