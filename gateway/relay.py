"""Relay: a non-streaming upstream answer sent back to the client, with its account.

Anthropic answers are translated back into OpenAI's shape (a client of Anthropic's own
protocol served natively gets the answer as it came); the usage the upstream
reports is what the request costs, and the key's limits are settled before the answer
goes out so the next request already counts it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from django.http import HttpResponse, StreamingHttpResponse

from gateway import anthropic
from gateway.accounting import UsageRecord, charge, finish_and_settle, usage_numbers
from modelhub.routing import Candidate

if TYPE_CHECKING:
    from gateway.attempt import Answer
    from gateway.call import GatewayCall


def gateway_headers(
    response: HttpResponse | StreamingHttpResponse, call: GatewayCall, candidate: Candidate
) -> None:
    response["X-Request-Id"] = call.request_id
    response["X-Gateway-Provider"] = candidate.model.provider.slug
    response["X-Gateway-Model"] = candidate.model.catalog_id
    response["X-Gateway-Attempts"] = str(call.attempts)
    response["X-Gateway-Fallbacks"] = str(max(call.candidates_tried - 1, 0))


async def relay_answer(
    call: GatewayCall, candidate: Candidate, answer: Answer, record: UsageRecord
) -> HttpResponse:
    payload, data = answer.payload, answer.data
    if answer.translated:
        payload = anthropic.chat_response(payload, model=candidate.model.provider_model_id)
        if not answer.native:
            data = json.dumps(payload).encode()
    tokens, cost = charge(record, candidate, *usage_numbers(payload.get("usage")))
    if not answer.native:
        data = call.dialect.answer(call, candidate, payload, data)
    response = HttpResponse(data, content_type="application/json")
    gateway_headers(response, call, candidate)
    response["X-Gateway-Cost"] = format(cost, "f")
    await finish_and_settle(call, record, tokens=tokens, cost=cost)
    await call.dialect.complete(call)
    return response
