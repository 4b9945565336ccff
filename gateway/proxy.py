"""The request path of the gateway, one stage after another.

parse (``gateway.parse``) -> authorize the model and load the routing plan, cached
briefly (``gateway.plan``) -> reserve the key's limits (``gateway.reserve``) -> try
candidates in order, retrying and falling back (``gateway.attempt``) -> relay the answer
(``gateway.relay``) or stream it (``gateway.stream``) -> settle limits, record credential
health (``gateway.health``) and usage (``gateway.accounting``) off the critical path.

Time: each attempt must show its first byte (a non-streaming answer's headers, a
stream's first event) within GATEWAY_UPSTREAM_FIRST_BYTE_TIMEOUT, and the whole request
within GATEWAY_REQUEST_DEADLINE, which caps every attempt's timeouts and backoff and
ends in a 504. Once a stream has sent its first event the deadline no longer applies:
only GATEWAY_UPSTREAM_READ_TIMEOUT, the longest silence between two chunks, can end it,
so a long generation is never cut for taking long.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING

from django.http.response import HttpResponseBase

from gateway import accounting, attempt, health, plan, relay, reserve, stream
from gateway.auth import ClientKeyInfo
from gateway.dialect import OPENAI, Dialect
from gateway.errors import GatewayError, RateLimited, ServiceUnavailable
from gateway.parse import open_call
from gateway.upstreams import CHAT, Endpoint

if TYPE_CHECKING:
    from gateway.runtime import Runtime


async def handle(
    runtime: Runtime,
    key: ClientKeyInfo,
    raw_body: bytes,
    endpoint: Endpoint,
    *,
    request_id: str | None = None,
    dialect: Dialect = OPENAI,
) -> HttpResponseBase:
    try:
        call = open_call(runtime, key, raw_body, endpoint, request_id=request_id, dialect=dialect)
    except GatewayError as error:
        # Refused before any usage row exists (bad input): still the tenant's own 4xx.
        accounting.observe_refusal(key.organization.slug, endpoint.name, error.status)
        raise
    record = accounting.new_record(call)
    try:
        await dialect.prepare(call)
        call.plan = await plan.load_plan(call)
        record.routing_rule_id = call.plan.rule.pk if call.plan.rule else None
        record.strategy = call.plan.strategy
        candidates = plan.usable_candidates(call, call.plan)
        await reserve.reserve_limits(call, candidates)
        candidate, answer = await attempt.attempt_candidates(call, candidates, record)
    except attempt.ClientErrorAnswer as refused:
        accounting.observe_refusal(
            key.organization.slug, endpoint.name, refused.response.status_code
        )
        return dialect.client_error(refused.response)
    except GatewayError as error:
        await accounting.account_error(call, record, error)
        raise
    except asyncio.CancelledError:
        accounting.account_disconnect(call, record)
        raise
    accounting.describe(record, candidate)
    health.note_success(call, candidate)
    if isinstance(answer, attempt.OpenStream):
        return stream.stream_response(call, candidate, answer, record)
    return await relay.relay_answer(call, candidate, answer, record)


async def count_tokens(
    runtime: Runtime, key: ClientKeyInfo, raw_body: bytes, *, dialect: Dialect = OPENAI
) -> int:
    """The input tokens of a chat request as the gateway estimates them (its messages and
    tool definitions), for a model the key may use; nothing goes upstream."""
    call = open_call(runtime, key, raw_body, CHAT, dialect=dialect)
    call.plan = await plan.load_plan(call)
    # Busy upstreams (cooling down, over quota) do not matter here: the model exists and
    # the key may use it.
    with contextlib.suppress(RateLimited, ServiceUnavailable):
        plan.usable_candidates(call, call.plan)
    tools = call.body.get("tools")
    return call.estimated_input_tokens + (len(json.dumps(tools)) // 4 if tools else 0)
