"""The request path of the gateway, from the parsed body to the upstream's answer.

parse -> authorize the model -> routing plan (cached briefly) -> reserve the key's limits
-> try candidates in order (retry with backoff on connection errors, timeouts, 429 and
5xx; fall back to the next candidate; client errors go straight back) -> respond or
stream -> settle limits, record credential health and usage off the critical path.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from dataclasses import dataclass, field
from decimal import Decimal

import aiohttp
from django.conf import settings
from django.http import HttpResponse, StreamingHttpResponse
from django.utils import timezone

from gateway import anthropic, limits
from gateway.accounting import UsageRecord
from gateway.auth import ClientKeyInfo
from gateway.errors import (
    GatewayError,
    InvalidRequest,
    ModelNotFound,
    PermissionDenied,
    RateLimited,
    ServiceUnavailable,
    UpstreamFailed,
)
from gateway.request_ids import new_request_id
from gateway.telemetry import UPSTREAM_ERRORS
from gateway.upstreams import (
    CHAT,
    COMPLETIONS,
    EMBEDDINGS,
    Endpoint,
    SSEParser,
    UnsupportedEndpoint,
    UpstreamCall,
    build_call,
    event_data,
    retry_after_seconds,
)
from modelhub.models import HealthStatus
from modelhub.routing import Candidate, Reason, RouteRequest, RoutingPlan, active_rules, evaluate
from modelhub.services import (
    estimate_cost,
    provider_credential_record_failure,
    provider_credential_record_success,
)

logger = logging.getLogger(__name__)

# Statuses that are the caller's fault: returned as they are, never retried elsewhere.
CLIENT_ERRORS = {400, 413, 422}
RETRYABLE_STATUSES = {408, 409, 429}
DONE_EVENT = b"data: [DONE]\n\n"


@dataclass
class GatewayCall:
    """One request through the gateway and what it has used so far."""

    runtime: object
    key: ClientKeyInfo
    endpoint: Endpoint
    body: dict
    stream: bool
    include_usage: bool
    requested_model: str
    fallback_models: tuple[str, ...]
    estimated_input_tokens: int
    estimated_output_tokens: int
    started: float = field(default_factory=time.perf_counter)
    request_id: str = field(default_factory=new_request_id)
    attempts: int = 0
    candidates_tried: int = 0
    reservation: limits.Reservation | None = None
    plan: RoutingPlan | None = None

    def elapsed_ms(self) -> int:
        return int((time.perf_counter() - self.started) * 1000)

    def new_record(self) -> UsageRecord:
        return UsageRecord(
            organization_id=self.key.organization.pk,
            client_key_id=self.key.id,
            endpoint=self.endpoint.name,
            model_type=self.endpoint.model_type,
            requested_model=self.requested_model,
            request_id=self.request_id,
            routing_rule_id=self.plan.rule.pk if self.plan and self.plan.rule else None,
            strategy=self.plan.strategy if self.plan else "",
            streamed=self.stream,
        )


class AttemptFailed(Exception):
    """One upstream attempt failed; the attributes say whether to retry or fall back."""

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = True,
        credential_fault: bool = True,
        retry_after: float | None = None,
        response: HttpResponse | None = None,
    ):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.retryable = retryable
        self.credential_fault = credential_fault
        self.retry_after = retry_after
        # Set for the caller's own errors (400, 413, 422): the answer to send back.
        self.response = response


# --- Parsing --------------------------------------------------------------------------------

# Deepest nesting of arrays and objects accepted in a body. Real requests (messages with
# content parts, tools with JSON schemas) stay far below it; a deeper body would make the
# recursive walks after parsing (token estimate, encoding for the upstream) hit Python's
# recursion limit.
MAX_JSON_DEPTH = 128
TOO_DEEP = "The JSON body of your request is nested too deeply."


def too_deep(value, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``value`` nests arrays and objects more than ``limit`` levels (no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        for child in children:
            if isinstance(child, (dict, list)):
                if depth >= limit:
                    return True
                stack.append((child, depth + 1))
    return False


def is_storable_text(value: str) -> bool:
    """Whether ``value`` can be stored and compared as database text: no NUL (PostgreSQL
    refuses it) and no lone surrogate (not encodable as UTF-8)."""
    if value.isascii():
        return "\x00" not in value
    if "\x00" in value:
        return False
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def parse_body(raw: bytes, endpoint: Endpoint) -> dict:
    try:
        body = json.loads(raw or b"")
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest(
            "We could not parse the JSON body of your request. The body must be a JSON object.",
            code="invalid_json",
        )
    except RecursionError:
        raise InvalidRequest(TOO_DEEP, code="invalid_json")
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    if too_deep(body):
        raise InvalidRequest(TOO_DEEP, code="invalid_json")
    models = body.get("models")
    if models is not None and (
        not isinstance(models, list) or not all(isinstance(m, str) and m for m in models)
    ):
        raise InvalidRequest("'models' must be a list of model names.", param="models")
    if models and not all(is_storable_text(m) for m in models):
        raise InvalidRequest(
            "'models' must not contain NUL characters or unpaired surrogates.",
            param="models",
            code="invalid_value",
        )
    model = body.get("model")
    if model is None and models:
        body["model"] = model = models[0]
    if not isinstance(model, str) or not model:
        raise InvalidRequest(
            "You must provide a model parameter.", param="model", code="missing_required_parameter"
        )
    if not is_storable_text(model):
        raise InvalidRequest(
            "'model' must not contain NUL characters or unpaired surrogates.",
            param="model",
            code="invalid_value",
        )
    if endpoint is CHAT:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise InvalidRequest(
                "'messages' must be a non-empty list of messages.",
                param="messages",
                code="missing_required_parameter" if messages is None else "invalid_value",
            )
        for index, message in enumerate(messages):
            if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                raise InvalidRequest(
                    f"messages[{index}] must be an object with a 'role'.",
                    param=f"messages[{index}]",
                    code="invalid_value",
                )
    elif endpoint is COMPLETIONS:
        if not isinstance(body.get("prompt"), (str, list)):
            raise InvalidRequest(
                "You must provide a prompt parameter.",
                param="prompt",
                code="missing_required_parameter",
            )
    elif endpoint is EMBEDDINGS and not isinstance(body.get("input"), (str, list)):
        raise InvalidRequest(
            "You must provide an input parameter.", param="input", code="missing_required_parameter"
        )
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequest("'stream' must be a boolean.", param="stream", code="invalid_value")
    return body


def _text_length(value) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(_text_length(item) for item in value)
    if isinstance(value, dict):
        return _text_length(value.get("text") or value.get("content") or "")
    return 0


def estimate_tokens(body: dict, endpoint: Endpoint) -> tuple[int, int]:
    """Rough ``(input, output)`` token counts: four characters a token, plus overhead."""
    if endpoint is CHAT:
        messages = body["messages"]
        input_tokens = sum(_text_length(m.get("content")) for m in messages) // 4 + 4 * len(
            messages
        )
    elif endpoint is COMPLETIONS:
        input_tokens = _text_length(body["prompt"]) // 4 + 1
    else:
        return _text_length(body["input"]) // 4 + 1, 0
    output = body.get("max_completion_tokens") or body.get("max_tokens")
    if not isinstance(output, int) or output <= 0:
        output = settings.GATEWAY_ESTIMATED_COMPLETION_TOKENS
    return input_tokens, output


# --- Planning -------------------------------------------------------------------------------


async def load_plan(call: GatewayCall) -> RoutingPlan:
    runtime = call.runtime
    organization = call.key.organization
    request = RouteRequest(
        requested_model=call.requested_model,
        model_type=call.endpoint.model_type,
        fallback_models=call.fallback_models,
        estimated_input_tokens=call.estimated_input_tokens,
    )

    async def load() -> RoutingPlan:
        rules = await runtime.rules.get_or_load(
            organization.pk, lambda: runtime.db(active_rules, organization)
        )
        return await runtime.db(evaluate, organization=organization, request=request, rules=rules)

    return await runtime.plans.get_or_load((organization.pk, request), load)


def usable_candidates(call: GatewayCall, plan: RoutingPlan) -> list[Candidate]:
    """The plan's candidates this key may use, or the error that explains why none."""
    key = call.key
    if plan.rule is not None and key.allows(call.requested_model):
        candidates = list(plan.candidates)
    else:
        candidates = [c for c in plan.candidates if key.allows_model(c.model)]
    if candidates:
        return candidates
    if plan.candidates:
        raise PermissionDenied(
            f"This API key is not allowed to use the model '{call.requested_model}'.",
            param="model",
        )
    reasons = {rejection.reason for rejection in plan.rejected}
    if not plan.rejected:
        raise ModelNotFound(
            f"The model '{call.requested_model}' does not exist or you do not have access to it.",
            param="model",
        )
    if not any(key.allows_model(r.model) for r in plan.rejected if r.model is not None):
        raise PermissionDenied(
            f"This API key is not allowed to use the model '{call.requested_model}'.",
            param="model",
        )
    if reasons <= {Reason.CREDENTIAL_COOLING_DOWN, Reason.OVER_QUOTA, Reason.DUPLICATE}:
        if Reason.CREDENTIAL_COOLING_DOWN in reasons:
            ends = [
                r.credential.cooldown_until
                for r in plan.rejected
                if r.reason == Reason.CREDENTIAL_COOLING_DOWN and r.credential is not None
            ]
            wait = (
                max(min((end - timezone.now()).total_seconds() for end in ends), 1) if ends else 1
            )
            raise ServiceUnavailable(
                "Every provider credential for this model is cooling down after failures.",
                headers={"Retry-After": str(int(wait) + 1)},
            )
        raise RateLimited(
            "Every provider credential for this model has used up its quota for the period.",
            retry_after=60,
            code="quota_exceeded",
        )
    detail = "; ".join(sorted({r.detail for r in plan.rejected}))
    raise ModelNotFound(
        f"The model '{call.requested_model}' is not available to your organization: {detail}",
        param="model",
    )


def estimated_cost(call: GatewayCall, candidates: list[Candidate]) -> Decimal:
    usage = {
        "input_tokens": call.estimated_input_tokens,
        "output_tokens": call.estimated_output_tokens,
        "requests": 1,
    }
    return max(
        (estimate_cost(model=c.model, usage=usage).total for c in candidates), default=Decimal(0)
    )


async def reserve_limits(call: GatewayCall, candidates: list[Candidate]) -> None:
    key = call.key
    if key.rate_limit_rpm is None and key.rate_limit_tpm is None and key.budget_amount is None:
        return
    reservation = limits.client_key_windows(
        key,
        estimated_tokens=call.estimated_input_tokens + call.estimated_output_tokens,
        estimated_cost=estimated_cost(call, candidates)
        if key.budget_amount is not None
        else Decimal(0),
        now=timezone.now(),
    )
    failed = await call.runtime.limiter.reserve(reservation.windows)
    if failed is not None:
        raise limits.reject(failed)
    call.reservation = reservation


async def settle_limits(call: GatewayCall, tokens: int, cost: Decimal) -> None:
    if call.reservation is None:
        return
    try:
        await limits.settle(call.runtime.limiter, call.reservation, tokens=tokens, cost=cost)
    except Exception:
        logger.exception("Could not settle the limits of request %s", call.request_id)


# --- Usage ----------------------------------------------------------------------------------


def usage_numbers(usage: dict | None) -> tuple[int, int, int]:
    """``(input, output, cached)`` tokens from an OpenAI usage object."""
    if not isinstance(usage, dict):
        return 0, 0, 0
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    details = usage.get("prompt_tokens_details") or {}
    cached = int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0
    return prompt, completion, cached


def cost_of(model, input_tokens: int, output_tokens: int, cached: int) -> Decimal:
    usage = {
        "input_tokens": input_tokens - cached,
        "cached_input_tokens": cached,
        "output_tokens": output_tokens,
        "requests": 1,
    }
    return estimate_cost(model=model, usage=usage).total


def charge(
    record: UsageRecord, candidate: Candidate, input_used: int, output_used: int, cached: int
) -> tuple[int, Decimal]:
    """Put the usage and its cost on the record; returns ``(tokens, cost)``."""
    cost = cost_of(candidate.model, input_used, output_used, cached)
    record.input_tokens, record.output_tokens, record.cached_tokens = (
        input_used,
        output_used,
        cached,
    )
    record.cost = cost
    return input_used + output_used, cost


def describe(record: UsageRecord, candidate: Candidate) -> None:
    model = candidate.model
    record.served_model = model.catalog_id
    record.provider_slug = model.provider.slug
    record.provider_id = model.provider_id
    record.model_id = model.pk
    credential = candidate.credential
    if credential is not None:
        record.credential_id = credential.pk
        record.credential_quota_period = credential.quota_period


def _queue_record(call: GatewayCall, record: UsageRecord) -> None:
    record.attempts = call.attempts
    record.fallbacks_used = max(call.candidates_tried - 1, 0)
    record.latency_ms = call.elapsed_ms()
    call.runtime.recorder.record(record)


def finish(call: GatewayCall, record: UsageRecord, *, tokens: int, cost: Decimal) -> None:
    """Queue the usage record and settle the key's limits in the background (for streams
    that ended and requests that were cancelled: nothing is left to answer)."""
    _queue_record(call, record)
    if call.reservation is not None:
        call.runtime.spawn(settle_limits(call, tokens, cost))


async def finish_and_settle(
    call: GatewayCall, record: UsageRecord, *, tokens: int, cost: Decimal
) -> None:
    """Queue the usage record and settle the key's limits before the answer goes out, so
    the client's next request already counts what this one really used (one counter
    update; the metric row itself is still written in the background)."""
    _queue_record(call, record)
    await settle_limits(call, tokens, cost)


def note_success(call: GatewayCall, candidate: Candidate) -> None:
    credential = candidate.credential
    if credential is None:
        return
    if credential.consecutive_failures or credential.health_status != HealthStatus.HEALTHY:
        runtime = call.runtime

        async def recover():
            await runtime.db(provider_credential_record_success, credential=credential)
            runtime.forget_plans()

        runtime.spawn(recover())


async def note_failure(call: GatewayCall, candidate: Candidate, failure: AttemptFailed) -> None:
    model = candidate.model
    UPSTREAM_ERRORS.labels(model.provider.slug, model.catalog_id, failure.kind).inc()
    if candidate.credential is None or not failure.credential_fault:
        return
    try:
        await call.runtime.db(
            provider_credential_record_failure,
            credential=candidate.credential,
            error=f"{failure.kind}: {failure.message}",
        )
    except Exception:
        logger.exception("Could not record the failure of credential %s", candidate.credential.pk)
    call.runtime.forget_plans()


# --- Upstream attempts ----------------------------------------------------------------------


def _timeout() -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(
        total=None,
        connect=settings.GATEWAY_UPSTREAM_CONNECT_TIMEOUT,
        sock_read=settings.GATEWAY_UPSTREAM_READ_TIMEOUT,
    )


def _upstream_error(status: int, data: bytes, translated: bool) -> tuple[str, str]:
    try:
        payload = json.loads(data)
    except ValueError:
        return data[:500].decode(errors="replace") or f"HTTP {status}", "upstream_error"
    if translated:
        return anthropic.error_of(payload)
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or f"HTTP {status}"), str(
            error.get("type") or "upstream_error"
        )
    if isinstance(error, str):
        return error, "upstream_error"
    return f"HTTP {status}", "upstream_error"


def classify(status: int, headers, data: bytes, translated: bool) -> AttemptFailed:
    message, error_type = _upstream_error(status, data, translated)
    if status in CLIENT_ERRORS:
        error = GatewayError(message, status=status, type=error_type or "invalid_request_error")
        return AttemptFailed(
            "client_error",
            message,
            status=status,
            retryable=False,
            credential_fault=False,
            response=error.as_response(),
        )
    if status == 429 or status in RETRYABLE_STATUSES or status >= 500:
        return AttemptFailed(
            f"http_{status}", message, status=status, retry_after=retry_after_seconds(headers)
        )
    # 401/403: our credential is wrong; 404: the provider lost the model. Try elsewhere.
    return AttemptFailed(
        f"http_{status}",
        message,
        status=status,
        retryable=False,
        credential_fault=status in (401, 402, 403),
    )


async def post_once(runtime, upstream: UpstreamCall) -> tuple[int, object, bytes]:
    try:
        async with runtime.session.post(
            upstream.url, data=upstream.body, headers=upstream.headers, timeout=_timeout()
        ) as response:
            return response.status, response.headers, await response.read()
    except TimeoutError:
        raise AttemptFailed("timeout", "The upstream did not answer in time.")
    except (aiohttp.ClientError, OSError) as exc:
        raise AttemptFailed("connection", f"Could not reach the upstream: {exc.__class__.__name__}")


@dataclass
class OpenStream:
    response: aiohttp.ClientResponse
    parser: SSEParser
    first_events: list[bytes]


async def open_stream(runtime, upstream: UpstreamCall) -> OpenStream:
    """Send the request and wait for the first event: until then we may still fall back."""
    try:
        response = await runtime.session.post(
            upstream.url, data=upstream.body, headers=upstream.headers, timeout=_timeout()
        )
    except TimeoutError:
        raise AttemptFailed("timeout", "The upstream did not answer in time.")
    except (aiohttp.ClientError, OSError) as exc:
        raise AttemptFailed("connection", f"Could not reach the upstream: {exc.__class__.__name__}")
    try:
        if response.status != 200:
            data = await response.read()
            raise classify(response.status, response.headers, data, upstream.translated)
        parser = SSEParser()
        events: list[bytes] = []
        while not events:
            chunk = await response.content.readany()
            if not chunk:
                raise AttemptFailed(
                    "connection", "The upstream closed the stream before any event."
                )
            events = parser.feed(chunk)
        first = event_data(events[0])
        if first and first.startswith(b"{") and b'"error"' in first:
            payload = json.loads(first)
            if payload.get("error") or payload.get("type") == "error":
                message, _ = _upstream_error(500, first, upstream.translated)
                raise AttemptFailed("stream_error", message)
        return OpenStream(response, parser, events)
    except TimeoutError:
        response.close()
        raise AttemptFailed("timeout", "The upstream did not start the stream in time.")
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        response.close()
        raise AttemptFailed("connection", f"The upstream stream broke: {exc.__class__.__name__}")
    except BaseException:
        response.close()
        raise


def backoff_delay(retry: int, failure: AttemptFailed) -> float | None:
    """Seconds to wait before retrying the same candidate, or None to move on."""
    if failure.retry_after is not None:
        if failure.retry_after > settings.GATEWAY_RETRY_MAX_WAIT:
            return None
        return failure.retry_after
    base = settings.GATEWAY_RETRY_BACKOFF * (2**retry)
    return min(base * (0.5 + random.random()), settings.GATEWAY_RETRY_MAX_WAIT)


async def _credential_available(call: GatewayCall, candidate: Candidate) -> bool:
    credential = candidate.credential
    if credential is None or not limits.has_quota(credential):
        return True
    reserved = await call.runtime.db(
        limits.credential_reserve_request, credential.pk, credential.quota_period
    )
    if not reserved:
        call.runtime.forget_plans()
    return reserved


async def attempt_candidates(call: GatewayCall, candidates: list[Candidate], record: UsageRecord):
    """Try candidates in order; returns ``(candidate, result)`` or raises a GatewayError."""
    runtime = call.runtime
    max_attempts = max(call.plan.max_attempts, 1)
    last: AttemptFailed | None = None
    for candidate in candidates:
        if call.attempts >= max_attempts:
            break
        try:
            upstream = build_call(runtime, candidate, call.endpoint, call.body, stream=call.stream)
        except (UnsupportedEndpoint, anthropic.TranslationError) as exc:
            last = last or AttemptFailed("unsupported", str(exc), retryable=False)
            if isinstance(exc, anthropic.TranslationError):
                raise InvalidRequest(str(exc))
            continue
        if not await _credential_available(call, candidate):
            last = AttemptFailed("quota", "The credential's quota is used up.", status=429)
            continue
        record.credential_request_counted = candidate.credential is not None and limits.has_quota(
            candidate.credential
        )
        call.candidates_tried += 1
        retry = 0
        while call.attempts < max_attempts:
            call.attempts += 1
            try:
                if call.stream:
                    return candidate, await open_stream(runtime, upstream)
                status, headers, data = await post_once(runtime, upstream)
                if status == 200:
                    try:
                        payload = json.loads(data)
                    except ValueError:
                        raise AttemptFailed(
                            "bad_response", "The upstream answered with invalid JSON."
                        )
                    return candidate, (payload, data, upstream.translated)
                raise classify(status, headers, data, upstream.translated)
            except AttemptFailed as failure:
                if failure.response is not None:
                    describe(record, candidate)
                    record.status_code = failure.status or 400
                    record.error_type = failure.kind
                    record.error_message = failure.message
                    await finish_and_settle(call, record, tokens=0, cost=Decimal(0))
                    failure.response["X-Gateway-Attempts"] = str(call.attempts)
                    raise _ClientErrorResponse(failure.response)
                last = failure
                await note_failure(call, candidate, failure)
                if not failure.retryable or retry >= settings.GATEWAY_RETRIES_PER_CANDIDATE:
                    break
                delay = backoff_delay(retry, failure)
                if delay is None:
                    break
                retry += 1
                await asyncio.sleep(delay)
    raise _final_error(last, call)


class _ClientErrorResponse(Exception):
    def __init__(self, response: HttpResponse):
        self.response = response


def _final_error(last: AttemptFailed | None, call: GatewayCall) -> GatewayError:
    if last is None:
        return ServiceUnavailable("No upstream could be tried for this request.")
    if last.kind == "quota":
        return RateLimited(
            "Every provider credential for this model has used up its quota for the period.",
            retry_after=60,
            code="quota_exceeded",
        )
    if last.status == 429:
        return RateLimited(
            f"The upstream is rate limiting requests: {last.message}",
            retry_after=int(last.retry_after or 1),
            code="upstream_rate_limited",
        )
    if last.kind == "timeout":
        return UpstreamFailed(last.message, status=504, code="upstream_timeout")
    if last.kind == "unsupported":
        return InvalidRequest(last.message, param="model", code="unsupported_endpoint")
    return UpstreamFailed(
        f"Every upstream failed after {call.attempts} attempt(s); last error: {last.message}"
    )


def gateway_headers(response: HttpResponse, call: GatewayCall, candidate: Candidate) -> None:
    response["X-Request-Id"] = call.request_id
    response["X-Gateway-Provider"] = candidate.model.provider.slug
    response["X-Gateway-Model"] = candidate.model.catalog_id
    response["X-Gateway-Attempts"] = str(call.attempts)
    response["X-Gateway-Fallbacks"] = str(max(call.candidates_tried - 1, 0))


# --- The request ----------------------------------------------------------------------------


async def handle(
    runtime,
    key: ClientKeyInfo,
    raw_body: bytes,
    endpoint: Endpoint,
    *,
    request_id: str | None = None,
) -> HttpResponse:
    body = parse_body(raw_body, endpoint)
    stream = bool(body.get("stream")) and endpoint is not EMBEDDINGS
    options = body.get("stream_options")
    include_usage = bool(isinstance(options, dict) and options.get("include_usage"))
    models = tuple(m for m in (body.get("models") or ()) if m != body["model"])
    input_tokens, output_tokens = estimate_tokens(body, endpoint)
    call = GatewayCall(
        runtime=runtime,
        key=key,
        endpoint=endpoint,
        body=body,
        stream=stream,
        include_usage=include_usage,
        requested_model=body["model"],
        fallback_models=models,
        estimated_input_tokens=input_tokens,
        estimated_output_tokens=output_tokens,
    )
    if request_id is not None:
        call.request_id = request_id
    record = call.new_record()
    try:
        call.plan = await load_plan(call)
        record.routing_rule_id = call.plan.rule.pk if call.plan.rule else None
        record.strategy = call.plan.strategy
        candidates = usable_candidates(call, call.plan)
        await reserve_limits(call, candidates)
        candidate, result = await attempt_candidates(call, candidates, record)
    except _ClientErrorResponse as answer:
        return answer.response
    except GatewayError as error:
        record.status_code = error.status
        record.error_type = error.code or error.type
        record.error_message = error.message
        await finish_and_settle(call, record, tokens=0, cost=Decimal(0))
        raise
    except asyncio.CancelledError:
        record.status_code = 499
        record.error_type = "client_disconnected"
        finish(call, record, tokens=0, cost=Decimal(0))
        raise
    describe(record, candidate)
    note_success(call, candidate)
    if call.stream:
        response = StreamingHttpResponse(
            relay_stream(call, candidate, result, record), content_type="text/event-stream"
        )
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
        gateway_headers(response, call, candidate)
        return response
    payload, data, translated = result
    if translated:
        payload = anthropic.chat_response(payload, model=candidate.model.provider_model_id)
        data = json.dumps(payload).encode()
    tokens, cost = charge(record, candidate, *usage_numbers(payload.get("usage")))
    response = HttpResponse(data, content_type="application/json")
    gateway_headers(response, call, candidate)
    response["X-Gateway-Cost"] = format(cost, "f")
    await finish_and_settle(call, record, tokens=tokens, cost=cost)
    return response


def _error_event(message: str) -> bytes:
    payload = {
        "error": {
            "message": message,
            "type": "upstream_error",
            "param": None,
            "code": "upstream_stream_error",
        }
    }
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


async def relay_stream(call: GatewayCall, candidate: Candidate, stream: OpenStream, record):
    """Pass the upstream's events on as they arrive; account for the stream at its end."""
    response, parser = stream.response, stream.parser
    translator = None
    if response.url.path.endswith("/messages"):
        translator = anthropic.StreamTranslator(
            model=candidate.model.provider_model_id, include_usage=call.include_usage
        )
    usage: dict | None = None
    chunks = 0
    done = False
    error: str | None = None
    disconnected = False
    events = stream.first_events
    try:
        try:
            while True:
                out = []
                for event in events:
                    data = event_data(event)
                    if data is None:
                        out.append(event + b"\n\n")
                        continue
                    if translator is not None:
                        for chunk in translator.feed(json.loads(data)):
                            out.append(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                        if translator.finished:
                            out.append(DONE_EVENT)
                            usage = anthropic.usage_of(translator.usage)
                            done = True
                            break
                        continue
                    if data == b"[DONE]":
                        out.append(DONE_EVENT)
                        done = True
                        break
                    if b'"usage"' in data or b'"error"' in data:
                        payload = json.loads(data)
                        if payload.get("error"):
                            message, _ = _upstream_error(500, data, False)
                            raise anthropic.UpstreamStreamError(message)
                        if payload.get("usage"):
                            usage = payload["usage"]
                            if not payload.get("choices") and not call.include_usage:
                                continue
                    out.append(event + b"\n\n")
                if out:
                    if record.time_to_first_token_ms is None:
                        record.time_to_first_token_ms = call.elapsed_ms()
                    chunks += len(out)
                    yield b"".join(out)
                if done:
                    break
                data = await response.content.readany()
                if not data:
                    error = "The upstream closed the stream before it was complete."
                    break
                events = parser.feed(data)
        except anthropic.UpstreamStreamError as exc:
            error = f"The upstream reported an error mid-stream: {exc}"
        except TimeoutError:
            error = "The upstream stopped sending in the middle of the stream."
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            error = f"The upstream stream broke: {exc.__class__.__name__}"
        if error is not None:
            yield _error_event(error)
    except (asyncio.CancelledError, GeneratorExit):
        disconnected = True
        raise
    finally:
        if done:
            response.release()
        else:
            # Closing the connection is what tells the upstream to stop generating.
            response.close()
        input_used, output_used, cached = usage_numbers(usage)
        if usage is None:
            input_used = call.estimated_input_tokens
            output_used = chunks
        tokens, cost = charge(record, candidate, input_used, output_used, cached)
        if disconnected and not done:
            record.status_code = 499
            record.error_type = "client_disconnected"
        elif error is not None:
            record.status_code = 502
            record.error_type = "upstream_stream_error"
            record.error_message = error
            failure = AttemptFailed("stream_broken", error)
            call.runtime.spawn(note_failure(call, candidate, failure))
        finish(call, record, tokens=tokens, cost=cost)
