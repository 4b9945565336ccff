"""Dialects: the client protocols the gateway speaks, at the edge of the pipeline.

Every request runs through the stages as one internal request, an OpenAI chat (or
completions, embeddings) body. A dialect is what a foreign client protocol needs on top:
it turns its request into that body before parsing, and the chat answers (a completion,
a stream of chunks, an error) back into its own shape. OpenAI's own protocol is the base
class and translates nothing, so its answers and stream events pass through as the
upstream sent them, byte for byte.

A dialect's translation code lives in one module per foreign format (``gateway.anthropic``
for Anthropic's Messages, which also serves the outbound direction); the stages only call
the methods below on ``call.dialect``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from django.http import HttpResponse

if TYPE_CHECKING:
    from gateway.call import GatewayCall
    from gateway.errors import GatewayError
    from modelhub.routing import Candidate


class StreamRenderer(Protocol):
    """Turns a stream of chat chunks into a dialect's events, as they arrive."""

    def chunk(self, chunk: dict) -> list[bytes]:
        """The events for one ``chat.completion.chunk`` (server-sent events, framed)."""

    def end(self, usage: dict | None) -> list[bytes]:
        """The closing events once the upstream finished; ``usage`` as OpenAI reports it."""

    def error(self, message: str) -> list[bytes]:
        """The events that end a stream that broke after its first event."""


class Untranslatable(Exception):
    """The request uses something the internal chat body cannot carry (a PDF document, a
    server-side tool): only an upstream that speaks the client's protocol can serve it,
    so other candidates are skipped, and with none left the request is a 400."""


@dataclass(frozen=True)
class NativeRequest:
    """A client's own request, for an upstream that speaks the client's protocol: sent as
    it is (with the provider's model id), and its answer comes back as it is too."""

    body: dict
    # Protocol headers of the client's to pass on (versions, opted-in features).
    headers: dict[str, str] = field(default_factory=dict)


class Dialect:
    """OpenAI's protocol: the internal one, nothing to translate."""

    name = "openai"

    def chat_body(self, body: dict) -> dict:
        """The internal request for a client's parsed JSON body; raise ``InvalidRequest``
        (or another ``GatewayError``) for a body the dialect cannot express."""
        return body

    async def prepare(self, call: GatewayCall) -> None:
        """Load what the request refers to before it is planned (a stored conversation,
        say); may extend ``call.body``. Raise a ``GatewayError`` to refuse it."""

    def candidate_body(self, body: dict, candidate: Candidate) -> dict:
        """The internal request as ``candidate`` gets it (a field its model does not take
        left out, say); a changed body is a copy, ``body`` serves the next candidate."""
        return body

    def native_request(self, call: GatewayCall, candidate: Candidate) -> NativeRequest | None:
        """The client's own request when ``candidate``'s upstream speaks this dialect, so
        nothing is lost in translation; None sends it the internal chat body. Raises
        :class:`Untranslatable` when only such upstreams can serve the request."""
        return None

    def answer(self, call: GatewayCall, candidate: Candidate, payload: dict, data: bytes) -> bytes:
        """The client's answer for a chat completion ``payload`` (``data`` is its JSON)."""
        return data

    def stream_renderer(self, call: GatewayCall, candidate: Candidate) -> StreamRenderer | None:
        """None relays the upstream's chat chunks unchanged."""
        return None

    async def complete(self, call: GatewayCall) -> None:
        """The dialect's own work once the upstream's answer is complete, before its end
        reaches the client (storing it, say); it must not raise."""

    def error_response(self, error: GatewayError) -> HttpResponse:
        """The client's answer for a request the gateway refused or could not serve."""
        return error.as_response()

    def client_error(self, response: HttpResponse) -> HttpResponse:
        """An upstream's refusal of the caller's own request (a 4xx), as passed on."""
        return response


OPENAI = Dialect()


def sse(payload: dict, event: str | None = None) -> bytes:
    """One server-sent event carrying ``payload`` as JSON, with an event name if given."""
    data = b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"
    return b"event: " + event.encode() + b"\n" + data if event else data
