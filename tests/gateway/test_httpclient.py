"""The upstream HTTP client against servers on loopback that write their answers byte by
byte: framing (length, chunks, the connection's end), keep-alive and its limits, timeouts,
broken and hostile answers, compression, TLS."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import gzip
import ssl
import threading
import zlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway import httpclient
from gateway.httpclient import (
    ConnectError,
    HTTPClient,
    InvalidRequest,
    InvalidResponse,
    ServerDisconnected,
)

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"


class Server:
    """A loopback server whose handler writes raw bytes; it notes each request's head
    and body, and how many connections were opened and have ended."""

    def __init__(self, answer, ssl_context=None):
        self.answer = answer
        self.ssl_context = ssl_context
        self.requests: list[tuple[bytes, bytes]] = []
        self.connections = 0
        self.ended = 0
        self.ended_event = asyncio.Event()

    async def __aenter__(self):
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc):
        self.server.close()
        await self.server.wait_closed()

    def url(self, path="/v1/chat/completions", scheme="http", host="127.0.0.1"):
        return f"{scheme}://{host}:{self.port}{path}"

    async def read_request(self, reader) -> bool:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return False
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        body = await reader.readexactly(length)
        self.requests.append((head, body))
        return True

    async def handle(self, reader, writer):
        self.connections += 1
        try:
            with contextlib.suppress(ConnectionError):  # the client went away
                while await self.read_request(reader):
                    keep_open = await self.answer(reader, writer, len(self.requests))
                    await writer.drain()
                    if not keep_open:
                        break
        finally:
            writer.close()
            self.ended += 1
            self.ended_event.set()


def fixed(*parts: bytes, keep_open=True, pause=0.0):
    async def answer(reader, writer, n):
        for part in parts:
            writer.write(part)
            await writer.drain()
            if pause:
                await asyncio.sleep(pause)
        return keep_open

    return answer


async def _loopback(host, port):
    return ["127.0.0.1"]


def client(**options) -> HTTPClient:
    options.setdefault("resolve", _loopback)
    options.setdefault("limit", 10)
    options.setdefault("keepalive", 30.0)
    return HTTPClient(**options)


async def post(http: HTTPClient, url: str, body=b"{}", headers=None, read_timeout=5.0):
    return await http.post(
        url,
        body,
        headers or {"Content-Type": "application/json"},
        connect_timeout=2.0,
        read_timeout=read_timeout,
    )


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 10))


def exchange(*parts: bytes, keep_open=True, pause=0.0, read_timeout=5.0, wait_before_reading=0.0):
    """One request to a server that writes ``parts``: the answer and its whole body, or
    the error of sending or reading."""

    async def scenario():
        async with Server(fixed(*parts, keep_open=keep_open, pause=pause)) as server:
            http = client()
            try:
                response = await post(http, server.url(), read_timeout=read_timeout)
                await asyncio.sleep(wait_before_reading)
                try:
                    return response, await response.read()
                finally:
                    response.close()
            finally:
                await http.close()

    return run(scenario())


# --- Requests and framing ------------------------------------------------------------------


def test_the_request_is_framed_with_its_host_length_and_headers():
    async def scenario():
        async with Server(fixed(OK)) as server:
            http = client()
            response = await post(
                http,
                server.url("/openai/v1/chat/completions?api-version=1"),
                b'{"model": "m"}',
                {"Authorization": "Bearer sk-x", "anthropic-beta": "a,b"},
            )
            assert (response.status, await response.read()) == (200, b"hello")
            response.release()
            await http.close()
            return server.requests

    [(head, body)] = run(scenario())
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /openai/v1/chat/completions?api-version=1 HTTP/1.1"
    assert lines[1].startswith("Host: 127.0.0.1:")
    assert "Authorization: Bearer sk-x" in lines
    assert "anthropic-beta: a,b" in lines
    assert "Content-Length: 14" in lines
    assert "Accept-Encoding: gzip, deflate" in lines
    assert not any(line.lower().startswith(("user-agent", "cookie")) for line in lines)
    assert body == b'{"model": "m"}'


def test_default_ports_are_left_out_of_the_host_header():
    assert httpclient.target_of("https://api.example.com/v1/x").head.endswith(
        b"Host: api.example.com\r\n"
    )
    assert httpclient.target_of("http://[::1]:8080/x").head.endswith(b"Host: [::1]:8080\r\n")
    assert httpclient.target_of("http://h/").key == ("http", "h", 80)
    with pytest.raises(InvalidRequest):
        httpclient.target_of("ftp://h/x")


def test_a_header_with_a_line_break_is_refused_before_anything_is_sent():
    async def scenario():
        async with Server(fixed(OK)) as server:
            http = client()
            with pytest.raises(InvalidRequest, match="line break"):
                await post(http, server.url(), headers={"x-api-key": "sk-1\r\nHost: evil"})
            await http.close()
            return server.connections

    assert run(scenario()) == 0


def test_chunked_answers_arrive_as_they_are_sent():
    async def answer(reader, writer, n):
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.write(b"6\r\nsecond\r\n0\r\n\r\n")
        return True

    async def scenario():
        async with Server(answer) as server:
            http = client()
            response = await post(http, server.url())
            first = await response.readany()
            rest = await response.read()
            response.release()
            await http.close()
            return first, rest

    assert run(scenario()) == (b"first", b"second")


def test_an_answer_without_length_ends_with_its_connection_and_is_not_reused():
    async def scenario():
        async with Server(
            fixed(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end", keep_open=False)
        ) as server:
            http = client()
            bodies = []
            for _ in range(2):
                response = await post(http, server.url())
                bodies.append(await response.read())
                response.release()
            await http.close()
            return bodies, server.connections

    assert run(scenario()) == ([b"until the end"] * 2, 2)


def test_an_interim_answer_is_skipped():
    response, body = exchange(b"HTTP/1.1 100 Continue\r\n\r\n" + OK)
    assert (response.status, body) == (200, b"hello")


def test_headers_are_read_in_any_case_and_repeated_ones_joined():
    response, _ = exchange(
        b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\nX-Tag: a\r\nx-tag: b\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    assert response.status == 429
    assert response.headers.get("retry-after") == response.headers["Retry-After"] == "3"
    assert response.headers.get("X-TAG") == "a, b"
    assert "RETRY-AFTER" in response.headers and "missing" not in response.headers


def test_a_large_body_is_read_whole_through_the_flow_control():
    body = bytes(range(256)) * 8192  # 2 MiB, eight times the high-water mark
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
    # The body piles up unread before the first read.
    assert exchange(head + body, wait_before_reading=0.1)[1] == body


@pytest.mark.parametrize(
    "encoding, compress",
    [("gzip", gzip.compress), ("deflate", zlib.compress)],
)
def test_compressed_answers_are_decoded(encoding, compress):
    data = b'{"choices": []}' * 100
    packed = compress(data)
    head = f"HTTP/1.1 200 OK\r\nContent-Encoding: {encoding}\r\n".encode()
    assert exchange(head + b"Content-Length: %d\r\n\r\n" % len(packed) + packed)[1] == data


def test_a_corrupt_or_unknown_encoding_is_an_invalid_answer():
    with pytest.raises(InvalidResponse, match="corrupt"):
        exchange(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 3\r\n\r\nnot")
    with pytest.raises(InvalidResponse, match="'br'"):
        exchange(b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 1\r\n\r\nx")


# --- Broken and hostile answers -----------------------------------------------------------


def test_a_connection_that_ends_mid_body_is_a_disconnect():
    with pytest.raises(ServerDisconnected):
        exchange(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial", keep_open=False)


def test_a_connection_closed_before_any_answer_is_a_disconnect():
    with pytest.raises(ServerDisconnected):
        exchange(keep_open=False)


def test_what_is_not_http_is_an_invalid_answer():
    with pytest.raises(InvalidResponse, match="not valid HTTP"):
        exchange(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")


def test_a_silence_longer_than_the_read_timeout_raises_a_timeout():
    with pytest.raises(TimeoutError):
        exchange(
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", b"abc", pause=2, read_timeout=0.2
        )


def test_a_closed_port_is_a_connection_error():
    async def scenario():
        async with Server(fixed(OK)) as server:
            url = server.url()
        http = client()
        try:
            await post(http, url)
        finally:
            await http.close()

    with pytest.raises(ConnectError) as error:
        run(scenario())
    assert isinstance(error.value.__cause__, ConnectionRefusedError)


# --- The pool ------------------------------------------------------------------------------


def test_connections_are_kept_open_and_reused():
    async def scenario():
        async with Server(fixed(OK)) as server:
            http = client()
            for _ in range(5):
                response = await post(http, server.url())
                await response.read()
                response.release()
            await http.close()
            return server.connections, len(server.requests)

    assert run(scenario()) == (1, 5)


def test_an_answer_not_read_to_its_end_closes_its_connection():
    async def scenario():
        async with Server(
            fixed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        ) as server:
            http = client()
            response = await post(http, server.url())
            assert await response.readany() == b"first"
            response.release()
            await asyncio.wait_for(server.ended_event.wait(), 2)  # the upstream sees it end
            assert http.open == 0
            await http.close()

    run(scenario())


def test_closing_a_stream_tells_the_upstream():
    async def scenario():
        async with Server(
            fixed(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                *[b"5\r\nchunk\r\n"] * 50,
                pause=0.05,
            )
        ) as server:
            http = client()
            response = await post(http, server.url())
            await response.readany()
            response.close()
            await asyncio.wait_for(server.ended_event.wait(), 2)
            await http.close()
            return len(server.requests)

    assert run(scenario()) == 1


def test_the_limit_makes_requests_wait_and_a_cancelled_wait_passes_its_turn():
    async def answer(reader, writer, n):
        await asyncio.sleep(0.1)
        writer.write(OK)
        return True

    async def scenario():
        async with Server(answer) as server:
            http = client(limit=1)

            async def one():
                response = await post(http, server.url())
                data = await response.read()
                response.release()
                return data

            # One waiter gives up; the others still get the connection in turn.
            quitter = asyncio.ensure_future(asyncio.wait_for(one(), 0.05))
            results = await asyncio.gather(one(), one(), one())
            with pytest.raises(TimeoutError):
                await quitter
            await http.close()
            return results, server.connections

    results, connections = run(scenario())
    assert results == [b"hello"] * 3
    assert connections <= 2  # the one the quitter may have opened, then the one reused


def test_another_hosts_idle_connection_makes_room_under_the_limit():
    async def scenario():
        async with Server(fixed(OK)) as first, Server(fixed(OK)) as second:
            http = client(limit=1)
            for server in (first, second, first):
                response = await post(http, server.url())
                await response.read()
                response.release()
            await asyncio.wait_for(first.ended_event.wait(), 2)
            await http.close()
            return first.connections, second.connections

    assert run(scenario()) == (2, 1)


def test_idle_connections_are_closed_after_the_keepalive():
    async def scenario():
        async with Server(fixed(OK)) as server:
            http = client(keepalive=0.1)
            response = await post(http, server.url())
            await response.read()
            response.release()
            await asyncio.wait_for(server.ended_event.wait(), 2)  # closed by the sweep
            assert http.open == 0
            response = await post(http, server.url())
            await response.read()
            response.release()
            await http.close()
            return server.connections

    assert run(scenario()) == 2


def test_an_idle_connection_the_server_writes_to_is_dropped():
    async def answer(reader, writer, n):
        writer.write(OK + b"HTTP/1.1 200 OK\r\n")  # a stray second answer
        return True

    async def scenario():
        async with Server(answer) as server:
            http = client()
            response = await post(http, server.url())
            await response.read()
            response.release()
            await asyncio.wait_for(server.ended_event.wait(), 2)
            response = await post(http, server.url())
            assert await response.readany() == b"hello"
            response.close()
            await http.close()
            return server.connections

    assert run(scenario()) == 2


# --- Names and TLS ---------------------------------------------------------------------------


def test_host_names_are_resolved_once_and_refusals_pass_through():
    asked = []

    async def resolve(host, port):
        asked.append((host, port))
        if host == "refused.example":
            raise OSError("no address allowed")
        return ["127.0.0.1"]

    async def scenario():
        async with Server(fixed(OK)) as server:
            http = client(resolve=resolve)
            for _ in range(2):
                response = await post(http, server.url(host="upstream.example"))
                await response.read()
                response.release()
            with pytest.raises(OSError, match="no address allowed"):
                await post(http, server.url(host="refused.example"))
            await http.close()
            return server.requests[0][0]

    head = run(scenario())
    assert asked == [("upstream.example", asked[0][1]), ("refused.example", asked[0][1])]
    assert b"Host: upstream.example:" in head


def _certificate(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "upstream.test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("upstream.test")]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def test_tls_upstreams_are_verified(tmp_path):
    cert_file, key_file = _certificate(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert_file, key_file)

    async def scenario(trusted: bool):
        async with Server(fixed(OK), ssl_context=server_context) as server:
            context = ssl.create_default_context(cafile=cert_file) if trusted else None
            http = client(ssl_context=context)
            try:
                response = await post(http, server.url(scheme="https", host="upstream.test"))
                data = await response.read()
                response.release()
                return data
            finally:
                await http.close()

    assert run(scenario(trusted=True)) == b"hello"
    # The system's authorities do not know the certificate: no request is sent.
    with pytest.raises(ConnectError) as error:
        run(scenario(trusted=False))
    assert isinstance(error.value.__cause__, ssl.SSLCertVerificationError)


@pytest.mark.parametrize("where", ["on the loop", "on another thread"])
def test_an_answer_dropped_without_an_end_gives_its_connection_back(where, monkeypatch):
    closed_on = []
    drop = httpclient._drop

    def noted_drop(connection):
        closed_on.append(threading.current_thread())
        drop(connection)

    monkeypatch.setattr(httpclient, "_drop", noted_drop)

    async def scenario():
        async with Server(
            fixed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        ) as server:
            http = client(limit=1)
            held = [await post(http, server.url())]
            if where == "on the loop":
                held.clear()
            else:  # as when the collector runs on the metric writer's thread
                dropper = threading.Thread(target=held.clear)
                dropper.start()
                dropper.join()
            await asyncio.wait_for(server.ended_event.wait(), 2)
            assert http.open == 0
            await http.close()

    run(scenario())
    # The connection is closed by the loop's own thread, whoever dropped the answer.
    assert closed_on == [threading.main_thread()]


def test_given_headers_replace_the_defaults_in_any_case_and_framing_stays_the_clients():
    async def scenario():
        async with Server(fixed(OK)) as server:
            http = client()
            response = await post(http, server.url(), headers={"accept": "text/event-stream"})
            await response.read()
            response.release()
            for name in ("Host", "content-length", "Transfer-Encoding", "Connection"):
                with pytest.raises(InvalidRequest, match="client's"):
                    await post(http, server.url(), headers={name: "x"})
            await http.close()
            return server.requests

    [(head, _)] = run(scenario())
    lines = head.decode().lower().split("\r\n")
    assert [line for line in lines if line.startswith("accept:")] == ["accept: text/event-stream"]
    assert [line for line in lines if line.startswith("content-length")] == ["content-length: 2"]
