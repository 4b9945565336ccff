"""One Redis connection for the limiter's script calls: each command is written at once,
and each reply is parsed as it arrives and handed to its callback, in order, within the
event loop's turn that read it.

A client library awaits each reply in a task of its own: a reservation then costs the
request two more turns of the loop (one for the task to send, one for it to hand the
reply over), which on a busy loop is most of its time. Here the request's own turn
sends, and the turn that reads the reply answers it.

The URL is read by redis-py's parser, so ``GATEWAY_LIMIT_REDIS_URL`` means what it
means to the rest of the platform: ``redis://``, ``rediss://`` (TLS, with its
``ssl_cert_reqs``, ``ssl_ca_certs``, ``ssl_certfile`` and ``ssl_keyfile`` options) and
``unix://``, a user name and password (``AUTH``) and a database number (``SELECT``).
Replies are RESP2, which Redis speaks unless asked otherwise.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Callable
from typing import Any

from redis.asyncio.connection import SSLConnection, parse_url

# A reply: str, int, bytes, None, a list of replies, or a RedisError (Redis's error
# reply) or ConnectionError (the connection ended) in place of one.
Reply = Any


class RedisError(Exception):
    """An error reply, with Redis's own message (``NOSCRIPT ...``, ``WRONGTYPE ...``)."""


class ProtocolError(ConnectionError):
    """What Redis sent is not RESP2: the connection is closed."""


_INCOMPLETE = object()


def parse(buffer: bytearray, start: int) -> tuple[Reply, int]:
    """The reply that starts at ``start`` and where it ends, or ``(_INCOMPLETE, start)``."""
    end = buffer.find(b"\r\n", start)
    if end < 0:
        return _INCOMPLETE, start
    kind = buffer[start]
    line = bytes(buffer[start + 1 : end])
    after = end + 2
    if kind == 0x3A:  # ":" integer
        return int(line), after
    if kind == 0x2A:  # "*" array
        count = int(line)
        if count < 0:
            return None, after
        items = []
        for _ in range(count):
            item, after = parse(buffer, after)
            if item is _INCOMPLETE:
                return _INCOMPLETE, start
            items.append(item)
        return items, after
    if kind == 0x24:  # "$" bulk string
        length = int(line)
        if length < 0:
            return None, after
        if len(buffer) < after + length + 2:
            return _INCOMPLETE, start
        return bytes(buffer[after : after + length]), after + length + 2
    if kind == 0x2B:  # "+" simple string
        return line.decode("utf-8", "replace"), after
    if kind == 0x2D:  # "-" error
        return RedisError(line.decode("utf-8", "replace")), after
    raise ProtocolError(f"Redis sent a reply of unknown type {chr(kind)!r}.")


def command(*words: str | bytes | int) -> bytes:
    """A command in Redis's protocol."""
    encoded = [
        word
        if isinstance(word, bytes)
        else b"%d" % word
        if isinstance(word, int)
        else word.encode("utf-8")
        for word in words
    ]
    parts = [b"*%d\r\n" % len(encoded)]
    parts += [b"$%d\r\n%s\r\n" % (len(word), word) for word in encoded]
    return b"".join(parts)


class RespConnection(asyncio.Protocol):
    """Commands go out as they are sent; replies come back to their callbacks in order.
    When the connection ends, every callback still waiting gets a ConnectionError."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.callbacks: deque[Callable[[Reply], None]] = deque()
        self.closed = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        start = 0
        while start < len(buffer):
            # Only what Redis sent is checked here: a callback's own error is not a
            # protocol error, and is not caught.
            try:
                reply, end = parse(buffer, start)
                if reply is not _INCOMPLETE and not self.callbacks:
                    raise ProtocolError("Redis sent a reply to no command.")
            except (ValueError, ProtocolError) as exc:
                del buffer[:]
                self._end(exc if isinstance(exc, ProtocolError) else ProtocolError(str(exc)))
                return
            if reply is _INCOMPLETE:
                break
            start = end
            self.callbacks.popleft()(reply)
        del buffer[:start]

    def connection_lost(self, exc: Exception | None) -> None:
        error = ConnectionError("The connection to Redis ended.")
        error.__cause__ = exc
        self._end(error)

    def _end(self, error: ConnectionError) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()
        callbacks, self.callbacks = self.callbacks, deque()
        for callback in callbacks:
            callback(error)

    def send(self, payload: bytes, callback: Callable[[Reply], None]) -> None:
        if self.closed or self.transport is None:
            raise ConnectionError("The connection to Redis is closed.")
        self.callbacks.append(callback)
        self.transport.write(payload)

    async def call(self, payload: bytes) -> Reply:
        """Send and wait for the reply (for the handshake; the limiter uses ``send``)."""
        reply: asyncio.Future = asyncio.get_running_loop().create_future()

        def answered(value: Reply) -> None:
            if not reply.done():
                reply.set_result(value)

        self.send(payload, answered)
        value = await reply
        if isinstance(value, BaseException):
            raise value
        return value

    def close(self) -> None:
        self._end(ConnectionError("The connection to Redis was closed."))


def _tls_context(options: Any) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=options.get("ssl_ca_certs"))
    if options.get("ssl_certfile"):
        context.load_cert_chain(options["ssl_certfile"], options.get("ssl_keyfile"))
    if str(options.get("ssl_cert_reqs", "required")).lower() in ("none", "cert_none"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


async def connect(url: str) -> RespConnection:
    """A connection to the Redis of ``url``, authenticated and on its database."""
    options: Any = parse_url(url)
    loop = asyncio.get_running_loop()
    connection: RespConnection
    if "path" in options:
        _, connection = await loop.create_unix_connection(RespConnection, options["path"])
    else:
        host = options.get("host", "localhost")
        tls = options.get("connection_class") is SSLConnection
        _, connection = await loop.create_connection(
            RespConnection,
            host,
            options.get("port", 6379),
            ssl=_tls_context(options) if tls else None,
            server_hostname=host if tls else None,
        )
    try:
        password = options.get("password")
        if password is not None:
            username = options.get("username")
            words = ("AUTH", username, password) if username else ("AUTH", password)
            await connection.call(command(*words))
        if options.get("db"):
            await connection.call(command("SELECT", options["db"]))
    except BaseException:
        connection.close()
        raise
    return connection
