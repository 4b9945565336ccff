"""A local upstream that speaks OpenAI's protocol (under ``/openai/v1``) and Anthropic's
Messages API (under ``/anthropic/v1``), with scripted faults per model name. It also
lists models, as OpenAI's ``/models`` and Ollama's ``/api/tags`` do."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import struct
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field

import uvicorn

WORDS = ["Hello", " from", " the", " fake", " upstream"]
TOOL_ARGUMENTS = {"city": "Paris"}


def first_tool_name(body: dict) -> str:
    """The name of the request's first tool, in OpenAI's shape or Anthropic's."""
    tool = (body.get("tools") or [{}])[0]
    return (tool.get("function") or tool).get("name", "")


FAULTS = {"stall_headers", "stall_body", "reset", "garbage", "garbage_stream"}


async def serve_lifespan(receive, send) -> None:
    """Answer an ASGI server's lifespan events until shutdown (the test apps keep no state
    to set up)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        else:
            await send({"type": "lifespan.shutdown.complete"})
            return


async def read_body(receive) -> bytes:
    """The whole body of an ASGI HTTP request."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


@dataclass
class Action:
    """What the upstream does with the next request for a model."""

    kind: str = "ok"  # ok | status | hang | die_mid_stream | slow_stream | echo_secret*
    # | tool_call (a call of the request's first tool, with TOOL_ARGUMENTS) | length (the
    # answer cut at its token limit)
    status: int = 200
    headers: dict = field(default_factory=dict)
    message: str = "scripted failure"
    delay: float = 0.0
    # Faults of the transport and of the payload (see ``FakeUpstream._fault``):
    # stall_headers | stall_body | reset | garbage | garbage_stream. ``body`` is what a
    # garbage answer sends; ``usage`` replaces the usage a normal answer reports.
    body: bytes = b""
    usage: dict | None = None
    # A chat answer that calls these tools (``[{"id", "name", "arguments"}]``), streamed
    # with each call's arguments in two pieces; ``stop_reason`` is the stop sequence the
    # answer ended on, reported as vLLM does.
    tool_calls: list[dict] | None = None
    stop_reason: str | None = None


class FakeUpstream:
    def __init__(self):
        self.requests: list[dict] = []
        self.scripts: dict[str, deque[Action]] = defaultdict(deque)
        self.delay = 0.0
        self.disconnects: list[str] = []
        self.lock = threading.Lock()
        self.server: uvicorn.Server | None = None
        self.url = ""
        # What the model-list routes answer: OpenAI's /models and Ollama's /api/tags.
        self.models = ["gpt-3.5-turbo", "text-embedding-ada-002"]
        self.ollama_models = [{"name": "llama2:latest", "model": "llama2:latest", "size": 1}]

    # --- control from tests ------------------------------------------------------------

    def script(self, model: str, *actions: Action) -> None:
        with self.lock:
            self.scripts[model].extend(actions)

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.scripts.clear()
            self.disconnects.clear()
            self.delay = 0.0

    def requests_for(self, model: str) -> list[dict]:
        return [r for r in self.requests if r["body"].get("model") == model]

    def _next_action(self, model: str) -> Action:
        with self.lock:
            queue = self.scripts.get(model)
            return queue.popleft() if queue else Action()

    # --- the ASGI application ------------------------------------------------------------

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        raw = await read_body(receive)
        body = json.loads(raw) if raw else {}
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        path = scope["path"]
        self.requests.append({"path": path, "headers": headers, "body": body, "raw": raw})
        if self.delay:
            await asyncio.sleep(self.delay)
        if scope["method"] == "GET" and path.endswith("/api/tags"):
            return await self._json(send, {"models": [dict(m) for m in self.ollama_models]})
        if scope["method"] == "GET" and path.endswith("/models"):
            listed = [{"id": name, "object": "model", "owned_by": "fake"} for name in self.models]
            return await self._json(send, {"object": "list", "data": listed})
        action = self._next_action(body.get("model", ""))
        anthropic = path.startswith("/anthropic/")
        if action.kind == "status":
            return await self._error(send, action, anthropic)
        if action.kind.startswith("echo_secret"):
            return await self._echo_secret(send, action, headers, anthropic)
        if action.kind == "hang":
            await asyncio.sleep(action.delay or 30)
            return await self._error(send, Action(status=500), anthropic)
        if action.kind in FAULTS:
            send = await self._fault(scope, receive, send, action)
            if send is None:
                return
        if path.endswith("/chat/completions"):
            if body.get("stream"):
                return await self._openai_stream(send, receive, body, action)
            return await self._json(send, self._chat(body, action), headers=action.headers)
        if path.endswith("/completions"):
            if body.get("stream"):
                return await self._openai_stream(send, receive, body, action, completion=True)
            return await self._json(send, self._completion(body, action))
        if path.endswith("/embeddings"):
            return await self._json(send, self._embeddings(body))
        if path.endswith("/messages"):
            if headers.get("anthropic-version") is None:
                return await self._error(send, Action(status=400, message="no version"), True)
            if body.get("stream"):
                return await self._anthropic_stream(send, receive, body, action)
            return await self._json(send, self._message(body, action))
        return await self._error(send, Action(status=404, message="no such route"), anthropic)

    # --- faults ---------------------------------------------------------------------------

    async def _wait(self, receive, seconds: float) -> bool:
        """Sleep, but stop early (returning True) when the caller hangs up."""
        disconnect = asyncio.ensure_future(receive())
        done, _ = await asyncio.wait({disconnect}, timeout=seconds)
        if not done:
            disconnect.cancel()
        return bool(done)

    async def _fault(self, scope, receive, send, action: Action):
        """Play a transport or payload fault. Returns None when the answer is complete,
        else the ``send`` to answer normally with."""
        if action.kind == "stall_headers":
            # Silent before the status line; answers normally if the caller still waits.
            return None if await self._wait(receive, action.delay or 30) else send
        if action.kind == "reset":
            self._reset(scope)
            return None
        if action.kind in ("garbage", "garbage_stream"):
            stream = action.kind == "garbage_stream"
            content_type = b"text/event-stream" if stream else b"application/json"
            start = {"type": "http.response.start", "status": 200}
            await send({**start, "headers": [(b"content-type", content_type)]})
            data = b"data: " + action.body + b"\n\n" if stream else action.body
            await send({"type": "http.response.body", "body": data})
            return None
        # stall_body: the status line and headers, then silence before the body (or,
        # for a stream, before the first event).
        stalled = False

        async def send_late(message):
            nonlocal stalled
            if message["type"] == "http.response.body" and not stalled:
                stalled = True
                if await self._wait(receive, action.delay or 30):
                    raise ConnectionAbortedError("the caller hung up")
            await send(message)

        return send_late

    def _reset(self, scope) -> None:
        """Abort the caller's connection with a TCP RST (SO_LINGER 0), not a FIN."""
        for connection in list(self.server.server_state.connections):
            if connection.client == tuple(scope["client"]):
                transport = connection.transport
                sock = transport.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                transport.abort()
                return
        raise RuntimeError("The connection to reset was not found.")

    async def _json(self, send, payload, status=200, headers=None):
        data = json.dumps(payload).encode()
        extra = [(k.lower().encode(), str(v).encode()) for k, v in (headers or {}).items()]
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), *extra],
            }
        )
        await send({"type": "http.response.body", "body": data})

    async def _error(self, send, action: Action, anthropic: bool):
        if anthropic:
            payload = {"type": "error", "error": {"type": "api_error", "message": action.message}}
        else:
            payload = {"error": {"message": action.message, "type": "server_error", "code": None}}
        await self._json(send, payload, status=action.status, headers=action.headers)

    async def _echo_secret(self, send, action: Action, headers: dict, anthropic: bool):
        """Quote the credential back, as careless upstreams do: ``echo_secret`` in a JSON
        error with ``action.status``, ``echo_secret_html`` in an HTML page,
        ``echo_secret_first_event`` in the first event of a stream and
        ``echo_secret_mid_stream`` in an error event after two chunks."""
        sent = headers.get("authorization") or headers.get("x-api-key") or ""
        secret = sent.removeprefix("Bearer ")
        text = (
            f"Invalid credentials. Authorization: {sent}; x-api-key: {secret}; "
            f"key ...{secret.rsplit('-', 1)[-1]}"
        )
        if action.kind == "echo_secret_html":
            page = f"<html><body><h1>Bad Gateway</h1><pre>{text}</pre></body></html>"
            await send(
                {
                    "type": "http.response.start",
                    "status": action.status,
                    "headers": [(b"content-type", b"text/html")],
                }
            )
            return await send({"type": "http.response.body", "body": page.encode()})
        if action.kind == "echo_secret":
            return await self._error(send, Action(status=action.status, message=text), anthropic)
        if anthropic:
            error = {"type": "error", "error": {"type": "api_error", "message": text}}
            chunks = [
                {"type": "message_start", "message": {"id": "msg_fake", "usage": {}}},
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta"}},
            ]
        else:
            error = {"error": {"message": text, "type": "server_error"}}
            delta = {"role": "assistant", "content": "Hello"}
            chunks = [{"id": "chatcmpl-fake", "choices": [{"index": 0, "delta": delta}]}] * 2
        if action.kind == "echo_secret_first_event":
            chunks = []
        await self._start_stream(send)
        for payload in [*chunks, error]:
            event = b"data: " + json.dumps(payload).encode() + b"\n\n"
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    @staticmethod
    def _usage(prompt=10, completion=5):
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    def _usage_for(self, action: Action | None) -> dict:
        return action.usage if action is not None and action.usage else self._usage()

    @staticmethod
    def _tool_calls(action: Action | None, body: dict) -> list[dict] | None:
        """The tool calls an answer makes: the scripted ones, or for ``tool_call`` one call
        of the request's first tool with TOOL_ARGUMENTS."""
        if action is None:
            return None
        if action.kind == "tool_call":
            name = first_tool_name(body)
            return [{"id": "call_fake", "name": name, "arguments": json.dumps(TOOL_ARGUMENTS)}]
        return action.tool_calls

    def _chat(self, body, action=None):
        message: dict = {"role": "assistant", "content": "".join(WORDS)}
        finish = "length" if action is not None and action.kind == "length" else "stop"
        choice = {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
        tool_calls = self._tool_calls(action, body)
        if tool_calls:
            message["content"] = None
            message["tool_calls"] = [
                {
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["name"], "arguments": call["arguments"]},
                }
                for call in tool_calls
            ]
            choice["finish_reason"] = "tool_calls"
        if action is not None and action.stop_reason:
            choice["stop_reason"] = action.stop_reason
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [choice],
            "usage": self._usage_for(action),
        }

    def _completion(self, body, action=None):
        return {
            "id": "cmpl-fake",
            "object": "text_completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {"index": 0, "text": "".join(WORDS), "finish_reason": "stop", "logprobs": None}
            ],
            "usage": self._usage_for(action),
        }

    def _embeddings(self, body):
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        vector = [0.25, -0.5, 1.0]
        data = []
        for index, _ in enumerate(inputs):
            if body.get("encoding_format") == "base64":
                embedding = base64.b64encode(struct.pack("<3f", *vector)).decode()
            else:
                embedding = vector
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        return {
            "object": "list",
            "data": data,
            "model": body["model"],
            "usage": {"prompt_tokens": 4 * len(inputs), "total_tokens": 4 * len(inputs)},
        }

    def _message(self, body, action=None):
        content = [{"type": "text", "text": "".join(WORDS)}]
        stop_reason = "end_turn"
        if action is not None and action.kind == "tool_call":
            tool = {"id": "toolu_fake", "name": first_tool_name(body), "input": TOOL_ARGUMENTS}
            content = [{"type": "tool_use", **tool}]
            stop_reason = "tool_use"
        return {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": 12, "output_tokens": 6},
        }

    async def _start_stream(self, send):
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )

    async def _events(self, send, receive, events: list[bytes], action: Action, model: str):
        """Send events; ``die_mid_stream`` breaks the connection half way, ``slow_stream``
        waits between events and notes when the gateway hangs up."""
        await self._start_stream(send)
        for index, event in enumerate(events):
            if action.kind == "die_mid_stream" and index == 2:
                raise ConnectionAbortedError("scripted death mid-stream")
            if action.kind == "slow_stream" and index:
                disconnect = asyncio.ensure_future(receive())
                done, _ = await asyncio.wait({disconnect}, timeout=action.delay or 0.2)
                if done:
                    self.disconnects.append(model)
                    return
                disconnect.cancel()
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def _openai_stream(self, send, receive, body, action, completion=False):
        def chunk(delta=None, finish=None, usage=None, choices=True):
            payload = {
                "id": "chatcmpl-fake",
                "object": "text_completion" if completion else "chat.completion.chunk",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [],
            }
            if choices:
                if completion:
                    payload["choices"] = [
                        {"index": 0, "text": delta or "", "finish_reason": finish}
                    ]
                else:
                    payload["choices"] = [
                        {"index": 0, "delta": delta or {}, "finish_reason": finish}
                    ]
            if usage:
                payload["usage"] = usage
            return b"data: " + json.dumps(payload).encode() + b"\n\n"

        if completion:
            events = [chunk(word) for word in WORDS] + [chunk("", "stop")]
        elif tool_calls := self._tool_calls(action, body):
            events = [chunk({"role": "assistant", "content": ""})]
            for index, call in enumerate(tool_calls):
                half = len(call["arguments"]) // 2
                function = {"name": call["name"], "arguments": call["arguments"][:half]}
                first = {"index": index, "id": call["id"], "type": "function"}
                events.append(chunk({"tool_calls": [{**first, "function": function}]}))
                rest = {"arguments": call["arguments"][half:]}
                events.append(chunk({"tool_calls": [{"index": index, "function": rest}]}))
            events += [chunk({}, "tool_calls")]
        else:
            events = [chunk({"role": "assistant", "content": ""})]
            events += [chunk({"content": word}) for word in WORDS]
            events += [chunk({}, "length" if action.kind == "length" else "stop")]
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append(chunk(usage=self._usage_for(action), choices=False))
        events.append(b"data: [DONE]\n\n")
        await self._events(send, receive, events, action, body["model"])

    async def _anthropic_stream(self, send, receive, body, action):
        def event(name, payload):
            return f"event: {name}\ndata: {json.dumps(payload)}\n\n".encode()

        events = [
            event(
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": "msg_fake",
                        "type": "message",
                        "role": "assistant",
                        "model": body["model"],
                        "content": [],
                        "usage": {"input_tokens": 12, "output_tokens": 1},
                    },
                },
            ),
            event(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            ),
        ]
        events += [
            event(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": w},
                },
            )
            for w in WORDS
        ]
        events.append(event("content_block_stop", {"type": "content_block_stop", "index": 0}))
        stop_reason = "end_turn"
        if action.kind == "tool_call":
            stop_reason = "tool_use"
            block = {"type": "tool_use", "id": "toolu_fake", "name": first_tool_name(body)}
            arguments = json.dumps(TOOL_ARGUMENTS)
            events += [
                event(
                    "content_block_start",
                    {"type": "content_block_start", "index": 1, "content_block": block},
                ),
                event(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 1,
                        "delta": {"type": "input_json_delta", "partial_json": arguments},
                    },
                ),
                event("content_block_stop", {"type": "content_block_stop", "index": 1}),
            ]
        events += [
            event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                    "usage": {"output_tokens": 6},
                },
            ),
            event("message_stop", {"type": "message_stop"}),
        ]
        await self._events(send, receive, events, action, body["model"])


class ServerThread:
    """An ASGI application served by uvicorn on a free loopback port, in a thread."""

    def __init__(self, app, **config):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config.setdefault("log_level", "warning")
        self.server = uvicorn.Server(uvicorn.Config(app, **config))
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("The server did not start.")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
        self.sock.close()
