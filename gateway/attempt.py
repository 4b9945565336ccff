"""Attempt: the upstream calls of one request, with retries and fallbacks.

Candidates are tried in order: a connection error, a timeout, a 429, a 5xx or a 200 that
is no completion is retried with backoff, then the next candidate gets its turn; the
caller's own errors (400, 413, 422) go straight back. Each attempt must show its first
byte within GATEWAY_UPSTREAM_FIRST_BYTE_TIMEOUT and the whole request ends within
GATEWAY_REQUEST_DEADLINE (a 504). Every destination passes the outbound address policy
before anything is sent. Upstream error text enters the gateway in one place,
``upstream_error``, scrubbed of the call's secrets.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from django.conf import settings
from django.http import HttpResponse

from gateway import anthropic, jsoncodec
from gateway.accounting import UsageRecord, describe, finish_and_settle, note_failed_attempt
from gateway.dialect import Untranslatable
from gateway.errors import (
    AttemptFailed,
    GatewayError,
    InvalidRequest,
    RateLimited,
    ServiceUnavailable,
    UpstreamFailed,
)
from gateway.health import note_failure
from gateway.httpclient import ClientError, Response
from gateway.upstreams import (
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
from modelhub.outbound import OutboundAddressRefused
from modelhub.quotas import has_quota
from modelhub.routing import Candidate
from modelhub.services import provider_credential_reserve_request

if TYPE_CHECKING:
    from gateway.call import GatewayCall
    from gateway.runtime import Runtime

# Statuses that are the caller's fault: returned as they are, never retried elsewhere.
CLIENT_ERRORS = {400, 413, 422}
RETRYABLE_STATUSES = {408, 409, 429}


def _post(runtime: Runtime, upstream: UpstreamCall, first_byte: float):
    """The attempt's request, its first byte due within ``first_byte`` seconds (the
    caller's timeout); once the answer began, each silence is bounded by the read
    timeout. Redirects are never followed: they could lead to a host the policy never
    saw."""
    return runtime.upstreams.post(
        upstream.url,
        upstream.body,
        upstream.headers,
        connect_timeout=min(settings.GATEWAY_UPSTREAM_CONNECT_TIMEOUT, first_byte),
        read_timeout=settings.GATEWAY_UPSTREAM_READ_TIMEOUT,
    )


def _first_byte_timeout(remaining: float) -> float:
    return max(min(settings.GATEWAY_UPSTREAM_FIRST_BYTE_TIMEOUT, remaining), 0.001)


def _non_json(status: int) -> str:
    return f"The upstream answered HTTP {status} with a non-JSON body."


def upstream_error(status: int, data: bytes, upstream: UpstreamCall) -> tuple[str, str]:
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


def classify(
    status: int, headers: Mapping[str, str], data: bytes, upstream: UpstreamCall
) -> AttemptFailed:
    message, error_type = upstream_error(status, data, upstream)
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
    """A failure to connect as an attempt failure; the resolver's refusal arrives as the
    cause of the client's connection error."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OutboundAddressRefused):
            return _refused(cause.message)
        cause = cause.__cause__
    return AttemptFailed("connection", f"Could not reach the upstream: {exc.__class__.__name__}")


async def post_once(
    runtime: Runtime, upstream: UpstreamCall, remaining: float
) -> tuple[int, Mapping[str, str], bytes]:
    """One non-streaming attempt: headers within the first-byte timeout, then the body,
    each chunk within the read timeout and the whole within the request's deadline."""
    check_destination(upstream)
    first_byte = _first_byte_timeout(remaining)
    loop = asyncio.get_running_loop()
    ends = loop.time() + remaining
    response = None
    # One timeout for both waits: the first byte's bound, then the request's deadline.
    try:
        async with asyncio.timeout(first_byte) as bound:
            try:
                response = await _post(runtime, upstream, first_byte)
            except (ClientError, OSError) as exc:
                if isinstance(exc, TimeoutError):
                    raise
                raise connection_failure(exc) from exc
            bound.reschedule(max(ends, loop.time() + 0.001))
            data = await response.read()
    except TimeoutError as exc:
        if response is None:
            raise AttemptFailed(
                "timeout", f"The upstream sent no response within {first_byte:g} s."
            ) from exc
        response.close()
        raise AttemptFailed("timeout", "The upstream stopped sending its answer.") from exc
    except (ClientError, OSError) as exc:
        assert response is not None
        response.close()
        raise AttemptFailed(
            "connection", f"The upstream connection broke: {exc.__class__.__name__}"
        ) from exc
    except BaseException:
        if response is not None:
            response.close()
        raise
    response.release()
    return response.status, response.headers, data


@dataclass
class Answer:
    """A non-streaming completion: the parsed payload and the bytes as they came."""

    payload: dict
    data: bytes
    translated: bool
    # The client's own protocol end to end (``Dialect.native_request``): ``data`` is its answer.
    native: bool = False


@dataclass
class OpenStream:
    response: Response
    parser: SSEParser
    first_events: list[bytes]
    upstream: UpstreamCall


async def open_stream(runtime: Runtime, upstream: UpstreamCall, remaining: float) -> OpenStream:
    """Send the request and wait for the first event: until then we may still fall back,
    so it must come within the first-byte timeout and be an event we can relay."""
    check_destination(upstream)
    first_byte = _first_byte_timeout(remaining)
    response = None
    try:
        async with asyncio.timeout(first_byte):
            response = await _post(runtime, upstream, first_byte)
            if response.status != 200:
                data = await response.read()
                raise classify(response.status, response.headers, data, upstream)
            parser = SSEParser()
            events: list[bytes] = []
            # Comments (keep-alives) may come first; the first data event is what counts.
            while not any(event_data(event) is not None for event in events):
                chunk = await response.readany()
                if not chunk:
                    raise AttemptFailed(
                        "connection", "The upstream closed the stream before any event."
                    )
                events += parser.feed(chunk)
        first = next(data for data in map(event_data, events) if data is not None)
        try:
            payload = jsoncodec.loads(first)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            raise AttemptFailed(
                "bad_response", "The upstream's stream began with an event that is not JSON."
            )
        if payload.get("error") or payload.get("type") == "error":
            message, _ = upstream_error(500, first, upstream)
            raise AttemptFailed("stream_error", message)
        return OpenStream(response, parser, events, upstream)
    except TimeoutError as exc:
        if response is not None:
            response.close()
        raise AttemptFailed(
            "timeout", f"The upstream sent no event within {first_byte:g} s."
        ) from exc
    except (ClientError, OSError) as exc:
        if response is None:
            raise connection_failure(exc) from exc
        response.close()
        raise AttemptFailed(
            "connection", f"The upstream stream broke: {exc.__class__.__name__}"
        ) from exc
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
        payload = jsoncodec.loads(data)
    except ValueError as exc:
        raise AttemptFailed(
            "bad_response", "The upstream answered 200 with a body that is not JSON."
        ) from exc
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
    if credential is None or not has_quota(credential):
        return True
    reserved = await call.runtime.db(
        provider_credential_reserve_request,
        credential_id=credential.pk,
        period=credential.quota_period,
    )
    if not reserved:
        call.runtime.forget_plans()
    return reserved


async def attempt_candidates(
    call: GatewayCall, candidates: list[Candidate], record: UsageRecord
) -> tuple[Candidate, OpenStream | Answer]:
    """Try candidates in order; returns the candidate that answered and its answer (an
    open stream or a completion), or raises a GatewayError (``ClientErrorAnswer`` for the
    caller's own mistakes, which go back as the upstream said them)."""
    runtime = call.runtime
    assert call.plan is not None
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
            body = call.dialect.candidate_body(call.body, candidate)
            native = call.dialect.native_request(call, candidate)
            upstream = build_call(
                runtime, candidate, call.endpoint, body, stream=call.stream, native=native
            )
        except (UnsupportedEndpoint, Untranslatable, anthropic.TranslationError) as exc:
            last = last or AttemptFailed("unsupported", str(exc), retryable=False)
            if isinstance(exc, anthropic.TranslationError):
                raise InvalidRequest(str(exc)) from exc
            continue
        if not await _credential_available(call, candidate):
            last = AttemptFailed("quota", "The credential's quota is used up.", status=429)
            continue
        record.credential_request_counted = candidate.credential is not None and has_quota(
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
                    return candidate, Answer(payload, data, upstream.translated, upstream.native)
                raise classify(status, headers, data, upstream)
            except AttemptFailed as failure:
                # The request's row names what failed last, not nothing (the dashboard's
                # per-provider errors), until a later candidate answers.
                describe(record, candidate)
                note_failed_attempt(record, candidate, failure.kind, failure.status)
                if failure.response is not None:
                    record.status_code = failure.status or 400
                    record.error_type = failure.kind
                    record.error_message = failure.message
                    await finish_and_settle(call, record, tokens=0, cost=Decimal(0))
                    failure.response["X-Gateway-Attempts"] = str(call.attempts)
                    raise ClientErrorAnswer(failure.response) from failure
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


class ClientErrorAnswer(Exception):
    """The upstream refused the caller's own request: its answer goes back as it is."""

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
