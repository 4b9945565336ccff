"""A loopback receiver of webhook events: records each POST (headers and raw body) and
answers with scripted statuses (200 once the script is used up)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections import deque
from dataclasses import dataclass

import pytest

from tests.support.upstream import ServerThread, read_body, serve_lifespan


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)

    def signed_with(self, secret: str) -> bool:
        expected = "sha256=" + hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(self.headers.get("x-modelhub-signature", ""), expected)


class WebhookReceiver:
    def __init__(self):
        self.received: list[Received] = []
        self.statuses: deque[int] = deque()
        self.lock = threading.Lock()
        self.url = ""

    def answer(self, *statuses: int) -> None:
        with self.lock:
            self.statuses.extend(statuses)

    def reset(self) -> None:
        with self.lock:
            self.received.clear()
            self.statuses.clear()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.02)
        raise AssertionError(f"{count} webhook events expected, {len(self.received)} arrived.")

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        body = await read_body(receive)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        with self.lock:
            self.received.append(Received(scope["path"], headers, body))
            status = self.statuses.popleft() if self.statuses else 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture(scope="session")
def _receiver_server():
    receiver = WebhookReceiver()
    server = ServerThread(receiver).start()
    receiver.url = server.url
    yield receiver
    server.stop()


@pytest.fixture
def receiver(_receiver_server):
    _receiver_server.reset()
    return _receiver_server
