"""The HTTP/1.1 client of the gateway's upstream calls: pooled keep-alive connections on
asyncio protocols, answers parsed by httptools (llhttp, the parser uvicorn serves with).

It does what the gateway needs and no more: ``POST`` with a body of known length, over
TCP or TLS, to the addresses a resolver allows; an answer framed by Content-Length, by
chunks or by the end of the connection, read whole or as it arrives, gzip and deflate
decoded. No redirects, cookies or proxies (the gateway uses none of them): a
general-purpose client spends most of its time per request on what is left out here
(aiohttp's client took two to four times the CPU per call of this one, on one loop).

Time: the connection must open within ``connect_timeout``; after that each wait for the
answer (its head, then every part of its body) may last ``read_timeout``. The caller
bounds the whole with its own deadline, and cancelling it closes the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
import time
import zlib
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from functools import lru_cache
from typing import NamedTuple
from urllib.parse import urlsplit

import httptools
from django.utils.datastructures import CaseInsensitiveMapping

# Unread body bytes a connection holds before it stops reading from the socket.
HIGH_WATER = 256 * 1024

# host, port -> the addresses to connect to, in order (the resolver's policy applied).
Resolve = Callable[[str, int], Awaitable[list[str]]]


class ClientError(Exception):
    """The upstream could not be reached, or did not answer in HTTP."""


class ConnectError(ClientError):
    """No connection to the upstream could be opened (the cause is chained)."""


class ConnectTimeout(ConnectError, TimeoutError):
    """No connection was open within the connect timeout."""


class ServerDisconnected(ClientError):
    """The connection ended before the whole answer had come."""


class InvalidRequest(ClientError):
    """The request cannot be written as HTTP/1.1 (a line break in a header, say)."""


class InvalidResponse(ClientError):
    """What the upstream sent is not an HTTP/1.1 answer this client reads."""


class Target(NamedTuple):
    """Where a URL's request goes: the pool key, and the request line and Host header."""

    key: tuple[str, str, int]
    host: str
    port: int
    tls: bool
    head: bytes


@lru_cache(maxsize=1024)
def target_of(url: str) -> Target:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest(f"Not an http(s) URL with a host: {url!r}")
    tls = parts.scheme == "https"
    host = parts.hostname
    port = parts.port or (443 if tls else 80)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    literal = f"[{host}]" if ":" in host else host
    authority = literal if port == (443 if tls else 80) else f"{literal}:{port}"
    for text in (path, authority):
        if any(c in text for c in "\r\n\t ") or not text.isascii():
            raise InvalidRequest(f"The URL cannot be sent as a request target: {url!r}")
    head = f"POST {path} HTTP/1.1\r\nHost: {authority}\r\n".encode("ascii")
    return Target((parts.scheme, host, port), host, port, tls, head)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


# Headers the client writes itself, from the URL and the body.
FRAMING_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


def _header_block(defaults: Mapping[str, str], headers: Mapping[str, str]) -> bytes:
    """The header lines: ``headers``, and each default they do not set (in any case)."""
    given = {name.lower() for name in headers}
    if given & FRAMING_HEADERS:
        raise InvalidRequest(f"The headers {sorted(given & FRAMING_HEADERS)} are the client's.")
    lines = [
        f"{name}: {value}\r\n" for name, value in defaults.items() if name.lower() not in given
    ]
    for name, value in headers.items():
        if not name or any(c in name for c in "\r\n: ") or "\r" in value or "\n" in value:
            raise InvalidRequest(f"The header {name!r} cannot be sent: it contains a line break.")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines).encode("latin-1")


class _Connection(asyncio.Protocol):
    """One connection and the answer being read on it."""

    def __init__(self, client: HTTPClient, key: tuple[str, str, int]):
        self.client = client
        self.key = key
        self.loop = client.loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.lost = False
        self.idle_since = 0.0
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.headers: CaseInsensitiveMapping[str] | None = None
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.complete = False
        self.keep_alive = False
        self.framed = True  # Content-Length or chunked: the answer ends without a close
        self.error: BaseException | None = None
        self.waiter: asyncio.Future | None = None
        self.paused = False
        self.in_use = False

    # --- asyncio.Protocol

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.complete:
            self.keep_alive = False  # more than the answer: the connection is not reused
            return
        if not self.in_use:
            # Nothing was asked: an idle connection the server writes to is not reusable.
            self._fail(InvalidResponse("The upstream sent data that was not asked for."))
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(InvalidResponse("The upstream switched protocols."))
        except httptools.HttpParserError as exc:
            self._fail(InvalidResponse(f"The upstream's answer is not valid HTTP: {exc}"))

    def eof_received(self) -> bool:
        return False  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.headers is not None and not self.framed and not self.complete:
            # An answer without Content-Length or chunks ends with its connection.
            self.complete = True
            self.keep_alive = False
        elif not self.complete and self.error is None:
            self.error = ServerDisconnected("The upstream closed the connection.")
            if exc is not None:
                self.error.__cause__ = exc
        self._wake()
        self.client._forget(self)

    # --- httptools callbacks (a second answer after the first is ignored: see
    # ``on_message_begin``)

    def on_message_begin(self) -> None:
        if self.complete:
            self.keep_alive = False

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.complete:
            self.raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.complete:
            return
        status = self.parser.get_status_code()
        if status < 200:
            self.raw_headers = []  # an interim answer (100 Continue): the real one follows
            return
        joined: dict[str, str] = {}
        for raw_name, raw_value in self.raw_headers:
            name = raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            joined[name] = f"{joined[name]}, {value}" if name in joined else value
        # Looked up in any case; repeated headers joined with ", ".
        headers = CaseInsensitiveMapping(joined)
        self.status = status
        self.headers = headers
        self.framed = (
            "content-length" in headers
            or "chunked" in headers.get("transfer-encoding", "").lower()
            or status in (204, 304)
        )
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self.complete:
            return
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.headers is None or self.complete:
            return  # the end of an interim answer, or of a stray one
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()
        self._wake()

    # --- used by the client and the answer

    def _fail(self, error: BaseException) -> None:
        if self.error is None and not self.complete:
            self.error = error
        self._wake()
        self.close()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self, timeout: float | None) -> None:
        """Until something happens on the connection, at most ``timeout`` seconds."""
        if self.error is not None:
            raise self.error
        self.waiter = waiter = self.loop.create_future()
        timer = self.loop.call_later(timeout, _expire, waiter) if timeout else None
        try:
            await waiter
        finally:
            self.waiter = None
            if timer is not None:
                timer.cancel()
        if self.error is not None:
            raise self.error

    def take(self) -> bytes:
        """The body bytes read so far, and reading on again if it had stopped."""
        chunks = self.chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self.chunks = []
        self.buffered = 0
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return data

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


def _expire(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class Response:
    """An upstream's answer: status and headers have come, the body is read on demand.

    End it with ``release()`` once the body is read (the connection serves the next
    request) or ``close()`` (the connection is closed, which tells a streaming upstream
    to stop)."""

    __slots__ = ("_connection", "_decoder", "_read_timeout", "headers", "status")

    def __init__(self, connection: _Connection, read_timeout: float | None):
        assert connection.headers is not None
        self._connection: _Connection | None = connection
        self._read_timeout = read_timeout
        self.status = connection.status
        self.headers = connection.headers
        encoding = self.headers.get("content-encoding", "").strip().lower()
        self._decoder = None
        if encoding in ("gzip", "x-gzip"):
            self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._decoder = zlib.decompressobj(zlib.MAX_WBITS)
        elif encoding not in ("", "identity"):
            connection.close()
            raise InvalidResponse(f"The upstream's answer is encoded as {encoding!r}.")

    async def readany(self) -> bytes:
        """The body bytes that have come since the last call, waiting for some; ``b""``
        once the body has ended."""
        connection = self._connection
        if connection is None:
            return b""
        while not connection.chunks:
            if connection.complete:
                return self._decode(b"", final=True)
            await connection.wait(self._read_timeout)
        data = self._decode(connection.take(), final=False)
        # Decoding may hold bytes back: never answer b"" before the end.
        return data or await self.readany()

    async def read(self) -> bytes:
        """The whole body."""
        parts = []
        while data := await self.readany():
            parts.append(data)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _decode(self, data: bytes, *, final: bool) -> bytes:
        decoder = self._decoder
        if decoder is None:
            return data
        try:
            decoded = decoder.decompress(data)
            if final:
                decoded += decoder.flush()
        except zlib.error as exc:
            self.close()
            raise InvalidResponse("The upstream's compressed answer is corrupt.") from exc
        return decoded

    def release(self) -> None:
        """Done with the answer: its connection serves the next request if the answer was
        read to its end and the upstream keeps the connection open; else it is closed."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.client._release(connection)

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()
            connection.client._forget(connection)

    def __del__(self) -> None:
        # An answer dropped unended (a stream whose relay never started) must not hold
        # its connection, and its place under the limit, for the life of the process.
        # The collector may run this on any thread: the loop closes the connection.
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to do
                connection.loop.call_soon_threadsafe(_drop, connection)


def _drop(connection: _Connection) -> None:
    connection.close()
    connection.client._forget(connection)


class HTTPClient:
    """Connections to upstreams, kept open between requests.

    At most ``limit`` connections are open (or opening) at once, over all hosts; a request
    beyond that waits for one, closing another host's idle connection if it can. Idle
    connections are closed after ``keepalive`` seconds. Host names are resolved by
    ``resolve`` (which applies the outbound address policy), cached ``dns_ttl`` seconds;
    IP literals are connected to as they are.
    """

    def __init__(
        self,
        *,
        resolve: Resolve,
        limit: int,
        keepalive: float,
        dns_ttl: float = 300.0,
        ssl_context: ssl.SSLContext | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ):
        self.loop = loop or asyncio.get_running_loop()
        self.resolve = resolve
        self.limit = max(limit, 1)
        self.keepalive = keepalive
        self.dns_ttl = dns_ttl
        self.ssl_context = ssl_context
        self.open = 0  # connections open or opening
        self.idle: dict[tuple[str, str, int], deque[_Connection]] = {}
        self.connections: set[_Connection] = set()
        self.waiting: deque[asyncio.Future] = deque()
        self.addresses: dict[tuple[str, int], tuple[float, list[str]]] = {}
        self.sweeper: asyncio.TimerHandle | None = None
        self.closed = False
        self.default_headers = {"Accept": "*/*", "Accept-Encoding": "gzip, deflate"}

    async def post(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        connect_timeout: float | None,
        read_timeout: float | None,
    ) -> Response:
        """Send the request and wait for the answer's head."""
        if self.closed:
            raise ClientError("The client is closed.")
        target = target_of(url)
        request = (
            target.head
            + _header_block(self.default_headers, headers)
            + b"Content-Length: %d\r\n\r\n" % len(body)
            + body
        )
        connection = await self._acquire(target, connect_timeout)
        try:
            connection.in_use = True
            assert connection.transport is not None
            connection.transport.write(request)
            while connection.headers is None:
                await connection.wait(read_timeout)
            return Response(connection, read_timeout)
        except BaseException:
            connection.close()
            self._forget(connection)
            raise

    # --- the pool

    async def _acquire(self, target: Target, connect_timeout: float | None) -> _Connection:
        while True:
            connection = self._idle_connection(target.key)
            if connection is not None:
                return connection
            if self.open < self.limit or self._close_an_idle_connection():
                break
            waiter = self.loop.create_future()
            self.waiting.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # woken, but leaving: the turn passes on
                else:
                    with contextlib.suppress(ValueError):
                        self.waiting.remove(waiter)
                raise
        self.open += 1
        try:
            return await self._connect(target, connect_timeout)
        except BaseException:
            self.open -= 1
            self._wake_one()
            raise

    def _idle_connection(self, key) -> _Connection | None:
        idle = self.idle.get(key)
        if not idle:
            return None
        oldest_usable = self.loop.time() - self.keepalive
        while idle:
            connection = idle.pop()  # the most recently used first
            transport = connection.transport
            if (
                connection.lost
                or transport is None
                or transport.is_closing()
                or connection.idle_since < oldest_usable
            ):
                connection.close()
                self._forget(connection)
                continue
            return connection
        return None

    def _close_an_idle_connection(self) -> bool:
        for idle in self.idle.values():
            if idle:
                connection = idle.popleft()
                connection.close()
                self._forget(connection)
                return True
        return False

    def _release(self, connection: _Connection) -> None:
        if (
            self.closed
            or connection.lost
            or not connection.complete
            or not connection.keep_alive
            or connection.chunks
        ):
            connection.close()
            self._forget(connection)
            return
        connection._reset()
        connection.idle_since = self.loop.time()
        self.idle.setdefault(connection.key, deque()).append(connection)
        if self.sweeper is None:
            self.sweeper = self.loop.call_later(self.keepalive, self._sweep)
        self._wake_one()

    def _forget(self, connection: _Connection) -> None:
        """The connection is closed or closing: it no longer counts against the limit."""
        if connection in self.connections:
            self.connections.discard(connection)
            self.open -= 1
            idle = self.idle.get(connection.key)
            if idle and connection in idle:
                idle.remove(connection)
            self._wake_one()

    def _sweep(self) -> None:
        self.sweeper = None
        oldest_usable = self.loop.time() - self.keepalive
        for idle in self.idle.values():
            while idle and idle[0].idle_since <= oldest_usable:
                connection = idle.popleft()
                connection.close()
                self._forget(connection)
        if any(self.idle.values()):
            self.sweeper = self.loop.call_later(self.keepalive, self._sweep)

    def _wake_one(self) -> None:
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    # --- connecting

    async def _addresses(self, host: str, port: int) -> list[str]:
        if _is_ip(host):
            return [host]
        now = time.monotonic()
        cached = self.addresses.get((host, port))
        if cached is not None and cached[0] > now:
            return cached[1]
        addresses = await self.resolve(host, port)
        self.addresses[(host, port)] = (now + self.dns_ttl, addresses)
        return addresses

    async def _connect(self, target: Target, timeout: float | None) -> _Connection:
        try:
            async with asyncio.timeout(timeout):
                addresses = await self._addresses(target.host, target.port)
                last: OSError | None = None
                for address in addresses:
                    try:
                        return await self._open(target, address)
                    except OSError as exc:
                        last = exc
        except TimeoutError as exc:
            raise ConnectTimeout(f"Connecting to {target.host} timed out.") from exc
        raise ConnectError(f"Could not connect to {target.host}.") from last

    async def _open(self, target: Target, address: str) -> _Connection:
        """A connection to one of the target's addresses. The socket connects from Python,
        where the interpreter's audit hooks see each address connected to."""
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await self.loop.sock_connect(sock, (address, target.port))
            connection = _Connection(self, target.key)
            await self.loop.create_connection(
                lambda: connection,
                sock=sock,
                ssl=self._ssl() if target.tls else None,
                server_hostname=target.host if target.tls else None,
            )
        except BaseException:
            sock.close()
            raise
        self.connections.add(connection)
        return connection

    def _ssl(self) -> ssl.SSLContext:
        if self.ssl_context is None:
            self.ssl_context = ssl.create_default_context()
        return self.ssl_context

    async def close(self) -> None:
        self.closed = True
        if self.sweeper is not None:
            self.sweeper.cancel()
            self.sweeper = None
        for connection in list(self.connections):
            connection.close()
        self.idle.clear()
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_exception(ClientError("The client is closed."))
