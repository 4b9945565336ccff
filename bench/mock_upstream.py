"""A fast OpenAI-compatible mock upstream for the gateway benchmark (loopback only).

A bare asyncio HTTP/1.1 server: ``POST .../chat/completions`` answers a fixed completion,
or with ``"stream": true`` a stream of chunks. The model name steers streams:
``hold-<n>-<ms>`` sends n chunks ``ms`` milliseconds apart (to hold streams open).
``GET /stats`` answers ``{"requests": n}``, the completions requested so far, so the
benchmark can tell whether a proxy in front sent more upstream calls than it received.
"""

from __future__ import annotations

import asyncio
import json
import sys

BODY = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "bench-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello!"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11},
    }
).encode()


def chunk(content: str | None, finish: str | None = None, usage: dict | None = None) -> bytes:
    payload = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "bench-model",
        "choices": []
        if usage
        else [{"index": 0, "delta": {"content": content}, "finish_reason": finish}],
    }
    if usage:
        payload["usage"] = usage
    data = b"data: " + json.dumps(payload).encode() + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)


REQUESTS = 0


class Handler(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.buffer = b""

    def data_received(self, data):
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end]
            length = 0
            at = head.lower().find(b"\r\ncontent-length:")
            if at >= 0:
                line_end = head.find(b"\r\n", at + 2)
                length = int(head[at + 17 : line_end if line_end >= 0 else None])
            end = head_end + 4 + length
            if len(self.buffer) < end:
                return
            body, self.buffer = self.buffer[head_end + 4 : end], self.buffer[end:]
            method, path, _ = head.decode("latin-1").split(" ", 2)
            self.respond(method, path, body)

    def respond(self, method, path, body):
        global REQUESTS
        if method == "GET" and path == "/stats":
            stats = json.dumps({"requests": REQUESTS}).encode()
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (len(stats), stats)
            )
            return
        REQUESTS += 1
        # Only a request that names "stream" is parsed: the answer to any other is fixed.
        request = json.loads(body) if b'"stream"' in body else {}
        if not request.get("stream"):
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (len(BODY), BODY)
            )
            return
        asyncio.get_running_loop().create_task(self.stream(request))

    async def stream(self, request):
        model = request.get("model", "")
        count, delay = 5, 0.0
        if model.startswith("hold-"):
            _, count_text, delay_text = model.split("-")
            count, delay = int(count_text), int(delay_text) / 1000
        transport = self.transport
        transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        transport.write(chunk(""))
        for index in range(count):
            if delay:
                await asyncio.sleep(delay)
            if transport.is_closing():
                return
            transport.write(chunk(f"tok{index} "))
        transport.write(chunk(None, "stop"))
        if (request.get("stream_options") or {}).get("include_usage"):
            transport.write(
                chunk(
                    None,
                    usage={
                        "prompt_tokens": 9,
                        "completion_tokens": count,
                        "total_tokens": 9 + count,
                    },
                )
            )
        data = b"data: [DONE]\n\n"
        transport.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data))


async def main(port: int):
    server = await asyncio.get_running_loop().create_server(
        Handler, "127.0.0.1", port, backlog=4096
    )
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.run(main(int(sys.argv[1])))
    except ImportError:
        asyncio.run(main(int(sys.argv[1])))
