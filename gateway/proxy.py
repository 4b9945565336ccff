"""The request path of the gateway, from the parsed body to the upstream's answer.

parse -> authorize the model -> routing plan (cached briefly) -> reserve the key's limits
-> try candidates in order (retry with backoff on connection errors, timeouts, 429, 5xx
and 200s that are no completion; fall back to the next candidate; client errors go
straight back) -> respond or stream -> settle limits, record credential health and usage
off the critical path.

Time: each attempt must show its first byte (a non-streaming answer's headers, a
stream's first event) within GATEWAY_UPSTREAM_FIRST_BYTE_TIMEOUT, and the whole request
within GATEWAY_REQUEST_DEADLINE, which caps every attempt's timeouts and backoff and
ends in a 504. Once a stream has sent its first event the deadline no longer applies:
only GATEWAY_UPSTREAM_READ_TIMEOUT, the longest silence between two chunks, can end it,
so a long generation is never cut for taking long.
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
from gateway.telemetry import UPSTREAM_ERRORS, series_labels
from gateway.upstreams import (
    CHAT,
    COMPLETIONS,
    EMBEDDINGS,
    Endpoint,
    SSEParser,
    UnsupportedEndpoint,
    UpstreamCall,
    build_call,
    destination_refusal,
    event_data,
    retry_after_seconds,
)
from modelhub.models import ApiFormat, HealthStatus
from modelhub.outbound import OutboundAddressRefused
from modelhub.redaction import bounded
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
    deadline: float = field(
        default_factory=lambda: time.monotonic() + settings.GATEWAY_REQUEST_DEADLINE
    )
    request_id: str = field(default_factory=new_request_id)
    attempts: int = 0
    candidates_tried: int = 0
    reservation: limits.Reservation | None = None
    plan: RoutingPlan | None = None

    def elapsed_ms(self) -> int:
        return int((time.perf_counter() - self.started) * 1000)

    def remaining(self) -> float:
        """Seconds left before the request's deadline."""
        return self.deadline - time.monotonic()

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


# What reaches a model as its prompt, for the budget's bound on prompt tokens.
PROMPT_FIELDS = ("messages", "prompt", "input", "tools", "functions")


def prompt_bound(body: dict, model) -> int:
    """The most prompt tokens a request may be billed for when ``model`` serves it.

    The four-characters-a-token estimate is a guess that falls short for code, CJK text
    and short chat turns; a token of the byte-level tokenizers models use is at least one
    byte, so the UTF-8 bytes of everything that becomes the prompt (messages with their
    roles and tool calls, tool definitions) bound the text, and the model's context
    bounds the whole. Images and audio are billed beyond this.
    """
    parts = [body[name] for name in PROMPT_FIELDS if body.get(name) is not None]
    size = len(json.dumps(parts, ensure_ascii=False).encode())
    if model.context_length:
        size = min(size, model.context_length)
    return size


def output_bound(body: dict, endpoint: Endpoint, input_tokens: int, model) -> int:
    """The most completion tokens a request may be billed for when ``model`` serves it.

    The request's own max_tokens, else the model's max output, else what its context
    leaves after the prompt, else GATEWAY_BUDGET_MAX_OUTPUT_TOKENS; times ``n`` choices.
    Anthropic always gets an explicit max_tokens from the translation: that one.
    """
    if endpoint is EMBEDDINGS:
        return 0
    requested = body.get("max_completion_tokens") or body.get("max_tokens")
    if isinstance(requested, int) and not isinstance(requested, bool) and requested > 0:
        tokens = requested
    elif model.max_completion_tokens:
        tokens = model.max_completion_tokens
    elif model.provider.api_format == ApiFormat.ANTHROPIC:
        tokens = anthropic.DEFAULT_MAX_TOKENS
    elif model.context_length:
        tokens = max(model.context_length - input_tokens, 1)
    else:
        tokens = settings.GATEWAY_BUDGET_MAX_OUTPUT_TOKENS
    choices = body.get("n")
    if isinstance(choices, int) and not isinstance(choices, bool) and choices > 1:
        tokens *= choices
    return tokens


def worst_case_cost(call: GatewayCall, candidates: list[Candidate]) -> Decimal:
    """What the request costs at most, on the most expensive candidate it may reach.

    Budgets reserve this, not a guess: a guess lets concurrent requests spend past the
    budget by whatever they use beyond it. Settling gives back the difference.
    """
    return max(
        (
            estimate_cost(
                model=c.model,
                usage={
                    "input_tokens": prompt_bound(call.body, c.model),
                    "output_tokens": output_bound(
                        call.body, call.endpoint, call.estimated_input_tokens, c.model
                    ),
                    "requests": 1,
                },
            ).total
            for c in candidates
        ),
        default=Decimal(0),
    )


async def reserve_limits(call: GatewayCall, candidates: list[Candidate]) -> None:
    key = call.key
    if key.rate_limit_rpm is None and key.rate_limit_tpm is None and key.budget_amount is None:
        return
    reservation = limits.client_key_windows(
        key,
        estimated_tokens=call.estimated_input_tokens + call.estimated_output_tokens,
        worst_case_cost=worst_case_cost(call, candidates)
        if key.budget_amount is not None
        else Decimal(0),
        now=timezone.now(),
    )
    # The reservation runs as its own task: a client that hangs up while it is under way
    # must not leave the counters raised by a request that never ran (a budget would
    # keep its worst case for the rest of the period).
    reserving = call.runtime.spawn(call.runtime.limiter.reserve(reservation.windows))
    try:
        failed = await asyncio.shield(reserving)
    except asyncio.CancelledError:
        reserving.add_done_callback(lambda task: _release_abandoned(call, reservation, task))
        raise
    if failed is not None:
        raise limits.reject(failed)
    call.reservation = reservation


def _release_abandoned(call: GatewayCall, reservation: limits.Reservation, task) -> None:
    """The counters were raised after the client left: give the request's share back."""
    if task.cancelled() or task.exception() is not None or task.result() is not None:
        return
    call.reservation = reservation
    call.runtime.spawn(settle_limits(call, 0, Decimal(0)))


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
    """Name the candidate on the record: the one that answered, or the last that failed."""
    model = candidate.model
    record.served_model = model.catalog_id
    record.provider_slug = model.provider.slug
    record.provider_id = model.provider_id
    record.provider_is_global = model.provider.organization_id is None
    record.model_id = model.pk
    credential = candidate.credential
    record.credential_id = credential.pk if credential is not None else None
    record.credential_quota_period = credential.quota_period if credential is not None else None


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
    provider = model.provider
    UPSTREAM_ERRORS.labels(
        *series_labels(provider.slug, model.catalog_id, is_global=provider.organization_id is None),
        failure.kind,
    ).inc()
    # The message was scrubbed of the call's secrets where it came in (_upstream_error).
    logger.warning(
        "Upstream attempt of request %s at %s failed (%s): %s",
        call.request_id,
        provider.slug,
        failure.kind,
        failure.message,
    )
    if candidate.credential is None or not failure.credential_fault:
        return
    try:
        await call.runtime.db(
            provider_credential_record_failure,
            credential=candidate.credential,
            error=bounded(f"{failure.kind}: {failure.message}"),
        )
    except Exception:
        logger.exception("Could not record the failure of credential %s", candidate.credential.pk)
    call.runtime.forget_plans()


# --- Upstream attempts ----------------------------------------------------------------------


def _timeout(first_byte: float) -> aiohttp.ClientTimeout:
    # sock_read bounds each silence once the answer began; the first byte has its own,
    # shorter bound (asyncio.timeout around the wait for it).
    return aiohttp.ClientTimeout(
        total=None,
        connect=min(settings.GATEWAY_UPSTREAM_CONNECT_TIMEOUT, first_byte),
        sock_read=settings.GATEWAY_UPSTREAM_READ_TIMEOUT,
    )


def _first_byte_timeout(remaining: float) -> float:
    return max(min(settings.GATEWAY_UPSTREAM_FIRST_BYTE_TIMEOUT, remaining), 0.001)


def _non_json(status: int) -> str:
    return f"The upstream answered HTTP {status} with a non-JSON body."


def _upstream_error(status: int, data: bytes, upstream: UpstreamCall) -> tuple[str, str]:
    """``(message, type)`` of an upstream's error body: the one place where upstream text
    enters the gateway, so both come out scrubbed of the call's secrets and bounded.

    A body that is not JSON (an HTML error page of a proxy, say) is never echoed: it may
    quote the request back, and it means nothing to the client."""
    try:
        payload = json.loads(data)
    except ValueError:
        return _non_json(status), "upstream_error"
    if upstream.translated:
        message, error_type = anthropic.error_of(payload)
    else:
        error = payload.get("error") if isinstance(payload, dict) else None
        if isinstance(error, dict):
            message = str(error.get("message") or f"HTTP {status}")
            error_type = str(error.get("type") or "upstream_error")
        elif isinstance(error, str):
            message, error_type = error, "upstream_error"
        else:
            message, error_type = f"HTTP {status}", "upstream_error"
    if message.lstrip().lower().startswith(("<!doctype", "<html")):
        message = _non_json(status)
    return upstream.scrub(message), upstream.scrub(error_type)[:64]


def classify(status: int, headers, data: bytes, upstream: UpstreamCall) -> AttemptFailed:
    message, error_type = _upstream_error(status, data, upstream)
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


def _refused(message: str) -> AttemptFailed:
    # Not the credential's fault, and the same answer on a retry: on to the next candidate.
    return AttemptFailed("refused", message, retryable=False, credential_fault=False)


def check_destination(upstream: UpstreamCall) -> None:
    """Refuse, before anything is sent, a URL the outbound address policy does not allow;
    host names are checked again, address by address, by the session's resolver."""
    refusal = destination_refusal(upstream.url)
    if refusal is not None:
        raise _refused(refusal)


def connection_failure(exc: BaseException) -> AttemptFailed:
    """An ``aiohttp``/``OSError`` failure to connect as an attempt failure; the resolver's
    refusal arrives wrapped in aiohttp's connector error."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OutboundAddressRefused):
            return _refused(cause.message)
        cause = getattr(cause, "os_error", None) or cause.__cause__
    return AttemptFailed("connection", f"Could not reach the upstream: {exc.__class__.__name__}")


async def post_once(runtime, upstream: UpstreamCall, remaining: float) -> tuple[int, object, bytes]:
    """One non-streaming attempt: headers within the first-byte timeout, then the body,
    each chunk within the read timeout and the whole within the request's deadline."""
    check_destination(upstream)
    first_byte = _first_byte_timeout(remaining)
    ends = time.monotonic() + remaining
    try:
        async with asyncio.timeout(first_byte):
            response = await runtime.session.post(
                upstream.url,
                data=upstream.body,
                headers=upstream.headers,
                timeout=_timeout(first_byte),
                # Redirects are not followed: they could lead to a host the policy never saw.
                allow_redirects=False,
            )
    except TimeoutError:
        raise AttemptFailed("timeout", f"The upstream sent no response within {first_byte:g} s.")
    except (aiohttp.ClientError, OSError) as exc:
        raise connection_failure(exc)
    try:
        async with asyncio.timeout(max(ends - time.monotonic(), 0.001)):
            data = await response.read()
    except TimeoutError:
        response.close()
        raise AttemptFailed("timeout", "The upstream stopped sending its answer.")
    except (aiohttp.ClientError, OSError) as exc:
        response.close()
        raise AttemptFailed(
            "connection", f"The upstream connection broke: {exc.__class__.__name__}"
        )
    except BaseException:
        response.close()
        raise
    response.release()
    return response.status, response.headers, data


@dataclass
class OpenStream:
    response: aiohttp.ClientResponse
    parser: SSEParser
    first_events: list[bytes]
    upstream: UpstreamCall


async def open_stream(runtime, upstream: UpstreamCall, remaining: float) -> OpenStream:
    """Send the request and wait for the first event: until then we may still fall back,
    so it must come within the first-byte timeout and be an event we can relay."""
    check_destination(upstream)
    first_byte = _first_byte_timeout(remaining)
    response = None
    try:
        async with asyncio.timeout(first_byte):
            response = await runtime.session.post(
                upstream.url,
                data=upstream.body,
                headers=upstream.headers,
                timeout=_timeout(first_byte),
                allow_redirects=False,
            )
            if response.status != 200:
                data = await response.read()
                raise classify(response.status, response.headers, data, upstream)
            parser = SSEParser()
            events: list[bytes] = []
            # Comments (keep-alives) may come first; the first data event is what counts.
            while not any(event_data(event) is not None for event in events):
                chunk = await response.content.readany()
                if not chunk:
                    raise AttemptFailed(
                        "connection", "The upstream closed the stream before any event."
                    )
                events += parser.feed(chunk)
        first = next(data for data in map(event_data, events) if data is not None)
        try:
            payload = json.loads(first)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            raise AttemptFailed(
                "bad_response", "The upstream's stream began with an event that is not JSON."
            )
        if payload.get("error") or payload.get("type") == "error":
            message, _ = _upstream_error(500, first, upstream)
            raise AttemptFailed("stream_error", message)
        return OpenStream(response, parser, events, upstream)
    except TimeoutError:
        if response is not None:
            response.close()
        raise AttemptFailed("timeout", f"The upstream sent no event within {first_byte:g} s.")
    except (aiohttp.ClientError, OSError) as exc:
        if response is None:
            raise connection_failure(exc)
        response.close()
        raise AttemptFailed("connection", f"The upstream stream broke: {exc.__class__.__name__}")
    except BaseException:
        if response is not None:
            response.close()
        raise


def completion_payload(data: bytes, endpoint: Endpoint, translated: bool) -> dict:
    """The upstream's 200 answer, if it is a completion; otherwise the attempt failed.

    A 200 whose body is ``{}``, a list, HTML or a stray error must not pass for a success
    at no cost: it is retried and falls back like a 502.
    """
    try:
        payload = json.loads(data)
    except ValueError:
        raise AttemptFailed(
            "bad_response", "The upstream answered 200 with a body that is not JSON."
        )
    expected = "content" if translated else "data" if endpoint is EMBEDDINGS else "choices"
    if not isinstance(payload, dict) or not isinstance(payload.get(expected), list):
        raise AttemptFailed(
            "bad_response", f"The upstream answered 200 without a completion (no '{expected}')."
        )
    return payload


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
    out_of_time = False
    for candidate in candidates:
        if call.attempts >= max_attempts:
            break
        if call.remaining() <= 0:
            out_of_time = True
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
            remaining = call.remaining()
            if remaining <= 0:
                out_of_time = True
                break
            call.attempts += 1
            try:
                if call.stream:
                    return candidate, await open_stream(runtime, upstream, remaining)
                status, headers, data = await post_once(runtime, upstream, remaining)
                if status == 200:
                    payload = completion_payload(data, call.endpoint, upstream.translated)
                    return candidate, (payload, data, upstream.translated)
                raise classify(status, headers, data, upstream)
            except AttemptFailed as failure:
                # The request's row names what failed last, not nothing (the dashboard's
                # per-provider errors), until a later candidate answers.
                describe(record, candidate)
                if failure.response is not None:
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
                if delay is None or delay >= call.remaining():
                    # No time to wait: what is left of the deadline goes to the next one.
                    break
                retry += 1
                await asyncio.sleep(delay)
    raise _final_error(last, call, out_of_time=out_of_time or call.remaining() <= 0)


class _ClientErrorResponse(Exception):
    def __init__(self, response: HttpResponse):
        self.response = response


def _final_error(
    last: AttemptFailed | None, call: GatewayCall, *, out_of_time: bool
) -> GatewayError:
    if out_of_time:
        detail = f"; last error: {last.message}" if last is not None else ""
        return UpstreamFailed(
            f"No upstream answered within the gateway's deadline of "
            f"{settings.GATEWAY_REQUEST_DEADLINE:g} s for a request{detail}",
            status=504,
            code="deadline_exceeded",
        )
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
                            message, _ = _upstream_error(500, data, stream.upstream)
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
            # Anthropic's error events come through the translator: scrub them here.
            error = f"The upstream reported an error mid-stream: {stream.upstream.scrub(str(exc))}"
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
