"""Stream: an upstream's server-sent events relayed to the client as they arrive.

The stream is already open and its first event checked (``gateway.attempt``); from here
on the request cannot fall back, so a failure mid-stream ends it with an error event.
Its usage is accounted when it ends, however it ends (done, broken, client gone).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from django.http import StreamingHttpResponse

from gateway import anthropic, jsoncodec
from gateway.accounting import UsageRecord, charge, finish, usage_numbers
from gateway.attempt import OpenStream, upstream_error
from gateway.errors import AttemptFailed
from gateway.health import note_failure
from gateway.httpclient import ClientError
from gateway.relay import gateway_headers
from gateway.upstreams import event_data
from modelhub.routing import Candidate

if TYPE_CHECKING:
    from gateway.call import GatewayCall

DONE_EVENT = b"data: [DONE]\n\n"


def stream_response(
    call: GatewayCall, candidate: Candidate, stream: OpenStream, record: UsageRecord
) -> StreamingHttpResponse:
    response = StreamingHttpResponse(
        relay_stream(call, candidate, stream, record), content_type="text/event-stream"
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    gateway_headers(response, call, candidate)
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


async def relay_stream(
    call: GatewayCall, candidate: Candidate, stream: OpenStream, record: UsageRecord
) -> AsyncIterator[bytes]:
    """Pass the upstream's events on as they arrive; account for the stream at its end."""
    response, parser = stream.response, stream.parser
    translator = None
    if stream.upstream.translated:
        translator = anthropic.StreamTranslator(
            model=candidate.model.provider_model_id, include_usage=call.include_usage
        )
    # A foreign dialect gets the chat chunks decoded, to render as its own events.
    renderer = call.dialect.stream_renderer(call, candidate)
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
                        translated = translator.feed(json.loads(data))
                        if stream.upstream.native:
                            # The client speaks the upstream's protocol: its events as
                            # they came; the translator only reads the usage and the end.
                            out.append(event + b"\n\n")
                        elif renderer is not None:
                            for chunk in translated:
                                out.extend(renderer.chunk(chunk))
                        else:
                            out.extend(
                                b"data: " + json.dumps(chunk).encode() + b"\n\n"
                                for chunk in translated
                            )
                        if translator.finished:
                            usage = anthropic.usage_of(translator.usage)
                            if not stream.upstream.native:
                                out.extend(renderer.end(usage) if renderer else (DONE_EVENT,))
                            done = True
                            break
                        continue
                    if data == b"[DONE]":
                        out.extend(renderer.end(usage) if renderer else (DONE_EVENT,))
                        done = True
                        break
                    if renderer is not None or b'"usage"' in data or b'"error"' in data:
                        payload = jsoncodec.loads(data)
                        if payload.get("error"):
                            message, _ = upstream_error(500, data, stream.upstream)
                            raise anthropic.UpstreamStreamError(message)
                        if payload.get("usage"):
                            usage = payload["usage"]
                            if not payload.get("choices") and not call.include_usage:
                                continue
                        if renderer is not None:
                            out.extend(renderer.chunk(payload))
                            continue
                    out.append(event + b"\n\n")
                if done:
                    # Before the last events go out, so a client that reads them can
                    # already refer to what the dialect keeps (a stored response).
                    await call.dialect.complete(call)
                if out:
                    if record.time_to_first_token_ms is None:
                        record.time_to_first_token_ms = call.elapsed_ms()
                    chunks += len(out)
                    yield b"".join(out)
                if done:
                    break
                data = await response.readany()
                if not data:
                    error = "The upstream closed the stream before it was complete."
                    break
                events = parser.feed(data)
        except anthropic.UpstreamStreamError as exc:
            # Anthropic's error events come through the translator: scrub them here.
            error = f"The upstream reported an error mid-stream: {stream.upstream.scrub(str(exc))}"
        except TimeoutError:
            error = "The upstream stopped sending in the middle of the stream."
        except (ClientError, OSError, ValueError) as exc:
            error = f"The upstream stream broke: {exc.__class__.__name__}"
        if error is not None:
            yield b"".join(renderer.error(error)) if renderer else _error_event(error)
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
