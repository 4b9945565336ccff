"""The limiter's Redis connection: replies parsed whatever the chunk boundaries, in order,
to their callbacks; the URL's database and password; a Redis that says nothing or talks
nonsense fails the calls it owes and the next request connects again."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from gateway import resp
from gateway.limits import ReserveBatcher

REPLIES = (
    b"+OK\r\n"
    b"-NOSCRIPT No matching script.\r\n"
    b":-42\r\n"
    b"$5\r\nhe\r\no\r\n"
    b"$-1\r\n"
    b"*3\r\n:1\r\n*2\r\n$0\r\n\r\n:0\r\n+x\r\n"
    b"*-1\r\n"
    b"*0\r\n"
)
PARSED = ["OK", "NOSCRIPT No matching script.", -42, b"he\r\no", None, [1, [b"", 0], "x"], None, []]


def _feed(pieces: list[bytes]) -> list:
    connection = resp.RespConnection()
    replies: list = []
    for _ in PARSED:
        connection.callbacks.append(replies.append)
    for piece in pieces:
        connection.data_received(piece)
    return [str(r) if isinstance(r, resp.RedisError) else r for r in replies]


def test_replies_are_parsed_in_order_whatever_the_chunks():
    assert _feed([REPLIES]) == PARSED
    for cut in range(1, len(REPLIES)):
        assert _feed([REPLIES[:cut], REPLIES[cut:]]) == PARSED, cut
    assert _feed([bytes([byte]) for byte in REPLIES]) == PARSED


def test_an_error_reply_is_handed_over_as_an_error():
    connection = resp.RespConnection()
    replies: list = []
    connection.callbacks.append(replies.append)
    connection.data_received(b"-WRONGTYPE Operation against a key\r\n")
    [error] = replies
    assert isinstance(error, resp.RedisError) and str(error).startswith("WRONGTYPE")


@pytest.mark.parametrize("garbage", [b"?what\r\n", b":12x\r\n", b"+OK\r\n+OK\r\n"])
def test_what_is_not_a_reply_ends_the_connection_and_fails_every_call(garbage):
    connection = resp.RespConnection()
    replies: list = []
    connection.callbacks.append(replies.append)
    connection.data_received(garbage)
    assert connection.closed
    assert len(replies) == 1
    # Either the one call's reply, or the error: never a reply to no command.
    assert isinstance(replies[0], ConnectionError) or replies == ["OK"]
    with pytest.raises(ConnectionError):
        connection.send(b"PING", replies.append)


@pytest.mark.services
def test_the_url_chooses_the_database(redis_limits):
    base, _, number = django_settings.REDIS_URL.rpartition("/")
    database = int(number or 0)
    other = (database + 1) % 16  # another test worker's: only looked at, never written
    redis_limits.delete("resp:where")

    async def run():
        selected = []
        for each in (database, other):
            connection = await resp.connect(f"{base}/{each}")
            info = await connection.call(resp.command("CLIENT", "INFO"))
            selected.append(f" db={each} " in info.decode())
            if each == database:
                assert await connection.call(resp.command("SET", "resp:where", each)) == "OK"
            connection.close()
        return selected

    assert asyncio.run(run()) == [True, True]
    assert int(redis_limits.get("resp:where")) == database


@pytest.mark.services
def test_a_wrong_password_is_refused_with_redis_own_words(redis_limits):
    host = django_settings.REDIS_URL.split("//", 1)[1]

    async def run():
        await resp.connect(f"redis://:not-the-password@{host}")

    with pytest.raises(resp.RedisError, match="AUTH"):
        asyncio.run(run())


class SilentRedis:
    """Accepts connections and reads commands; answers with ``reply`` (None: never)."""

    def __init__(self, reply: bytes | None = None):
        self.reply = reply
        self.connections = 0

    async def __aenter__(self):
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.url = f"redis://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/0"
        return self

    async def __aexit__(self, *exc):
        self.server.close()

    async def handle(self, reader, writer):
        self.connections += 1
        while await reader.read(65536):
            if self.reply is not None:
                writer.write(self.reply)
        writer.close()


def _reserve(batcher: ReserveBatcher) -> asyncio.Future:
    expires = int((timezone.now() + timedelta(minutes=2)).timestamp())
    return batcher.submit(["gw:ck:1:rpm:test"], [1, 10, expires], None)


@pytest.mark.parametrize("reply", [None, b"?nonsense\r\n"])
def test_a_redis_that_does_not_answer_fails_the_call_and_is_dialled_again(reply):
    async def run():
        async with SilentRedis(reply) as server:
            batcher = ReserveBatcher(server.url, timeout=0.2)
            results = await asyncio.gather(
                _reserve(batcher), _reserve(batcher), return_exceptions=True
            )
            again = await asyncio.gather(_reserve(batcher), return_exceptions=True)
            await batcher.close()
            return results + again, server.connections

    results, connections = asyncio.run(asyncio.wait_for(run(), 5))
    expected = TimeoutError if reply is None else ConnectionError
    assert all(isinstance(result, expected) for result in results), results
    assert connections == 2
