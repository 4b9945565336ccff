"""Benchmark of the gateway on its production configuration, against the upstream itself,
nginx and LiteLLM's proxy, all measured in one run on the same machine.

    .venv/bin/python bench/gateway.py                     # PostgreSQL and Redis of its own
    DATABASE_URL=postgres://... REDIS_URL=redis://.../15 .venv/bin/python bench/gateway.py
    .venv/bin/python bench/gateway.py --sqlite            # the embedded defaults, to compare

Starts a fast mock upstream on loopback and, unless ``DATABASE_URL`` and ``REDIS_URL``
name servers to use, a PostgreSQL (initdb into a temporary directory) and a Redis on free
loopback ports, stopped at the end. The gateway runs as deployed: ``DJANGO_DEBUG=0``,
PostgreSQL and Redis, Prometheus multiprocess metrics, a metric row and its daily rollups
per request, and a client key with rpm, tpm and budget limits set high enough never to
reject, so the limiter runs on every request. It is measured with one uvicorn worker and
with two (which share the Redis limits and the database).

For each target: non-streaming chat one request at a time (p50, p99), with 64
connections for ``--duration`` seconds (requests per second), 32 streams at once paced
as a model streams (time to first byte, streams per second), 32 at once that the mock
sends flat out (streams per second), and 1,000 streams held open for five seconds
(streams per second, resident memory summed over the target's processes). After each
phase it checks that the mock upstream received exactly the requests the client sent
(no hidden retries) and, for the gateway, that the database holds one metric row per
request (none lost).
Loopback only; every phase is bounded in time and count, and the run stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import json
import os
import platform
import random
import resource
import secrets
import shlex
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import httptools

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
LITELLM_VENV = ROOT / "bench" / ".litellm-venv"
MESSAGES = [{"role": "user", "content": "Say hello in one word."}]
# The chat phases send prompts of 0 to 4 KB more, a different length for each of 4,000
# requests in turn, as real traffic does: a gateway that keys anything by the prompt's
# size meets a new size on nearly every request. The held streams send the bare question,
# so that their memory is the streams' own, comparable from run to run.
CONTEXT = ("Context the application sends along with the question. " * 80)[:4000]


def chat_messages(n: int) -> list[dict]:
    """The messages of the ``n``-th chat request."""
    return [
        {"role": "user", "content": CONTEXT[: n * 37 % len(CONTEXT)] + "Say hello in one word."}
    ]


# The client protocols the gateway speaks, each streamed from the same OpenAI-compatible
# mock: (path, body for a model, what the stream's last bytes hold when it is complete).
PROTOCOLS = {
    "chat": (
        "/chat/completions",
        lambda model: {"model": model, "messages": MESSAGES, "stream": True},
        b"[DONE]",
    ),
    "responses": (
        "/responses",
        lambda model: {
            "model": model,
            "input": MESSAGES[0]["content"],
            "stream": True,
            "store": False,
        },
        b"response.completed",
    ),
    "messages": (
        "/messages",
        lambda model: {"model": model, "max_tokens": 64, "messages": MESSAGES, "stream": True},
        b"message_stop",
    ),
}
METRICS_TOKEN = "bench-metrics-token-" + secrets.token_hex(8)
HELD_STREAMS = 1000
# Models of the mock (see bench/mock_upstream.py): a short answer at once; a stream paced
# like a model's (ten chunks 20 ms apart, about 50 tokens a second); a stream held open
# for five seconds (ten chunks 500 ms apart).
FAST_MODEL = "bench-model"
PACED_CHUNKS, PACED_CHUNK_MS = 10, 20
PACED_MODEL = f"hold-{PACED_CHUNKS}-{PACED_CHUNK_MS}"
PACED_STREAM_SECONDS = PACED_CHUNKS * PACED_CHUNK_MS / 1000
HOLD_MODEL = "hold-10-500"
# Seconds to wait for the gateway's batched metric rows after a phase (it flushes every
# GATEWAY_METRICS_FLUSH_SECONDS, one second by default).
ROWS_WAIT_SECONDS = 15.0
REQUEST_TIMEOUT_SECONDS = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, timeout: float = 60, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"The process meant to listen on port {port} exited.")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"Nothing listens on port {port}.")


def tree_pids(pid: int) -> list[int]:
    pids = [pid]
    for child in Path("/proc").glob("[0-9]*"):
        try:
            stat = (child / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            pids += tree_pids(int(child.name))
    return pids


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process, all its threads (s)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu() -> tuple[int, int]:
    """Busy and total CPU time of the whole machine so far, all cores (clock ticks)."""
    try:
        fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle and waiting for I/O
    total = sum(fields[:8])  # guest time is counted in user time already
    return total - idle, total


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


# --- Services: PostgreSQL and Redis of the benchmark's own --------------------------------


class Services:
    """PostgreSQL and Redis on free loopback ports, as ``.ci/run`` starts them; stopped
    by ``stop()``. PostgreSQL keeps its durable defaults (fsync, synchronous commit), as
    deployed; Redis keeps nothing on disk."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.pg_data: Path | None = None
        self.pg_bin: str | None = None
        self.redis: subprocess.Popen | None = None

    def _as_postgres(self, command: list[str]) -> list[str]:
        # PostgreSQL refuses to run as root: run it as the user the package created.
        if os.getuid() == 0:
            return ["su", "postgres", "-s", "/bin/sh", "-c", shlex.join(command)]
        return command

    def start_postgres(self) -> str:
        candidates = sorted(
            glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2])
        )
        if not candidates:
            raise SystemExit("PostgreSQL is not installed (apt-get install -y postgresql).")
        self.pg_bin = candidates[-1]
        port = free_port()
        self.workdir.chmod(0o755)
        data = self.workdir / "pgdata"
        data.mkdir()
        if os.getuid() == 0:
            shutil.chown(data, "postgres", "postgres")
        subprocess.run(
            self._as_postgres(
                [f"{self.pg_bin}/initdb", "-D", str(data), "-U", "postgres", "-A", "trust"]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        self.pg_data = data
        options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c max_connections=200"
        subprocess.run(
            self._as_postgres(
                [
                    f"{self.pg_bin}/pg_ctl",
                    "-D",
                    str(data),
                    "-l",
                    str(data / "server.log"),
                    "-w",
                    "-o",
                    options,
                    "start",
                ]
            ),  # fmt: skip
            check=True,
            stdout=subprocess.DEVNULL,
        )
        subprocess.run(
            [f"{self.pg_bin}/psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
             "-q", "-c", "CREATE DATABASE modelhub"],
            check=True,
        )  # fmt: skip
        return f"postgres://postgres@127.0.0.1:{port}/modelhub"

    def start_redis(self) -> str:
        server = shutil.which("redis-server")
        if server is None:
            raise SystemExit("Redis is not installed (apt-get install -y redis-server).")
        port = free_port()
        self.redis = subprocess.Popen(
            [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=(self.workdir / "redis.log").open("w"),
        )  # fmt: skip
        wait_port(port, process=self.redis)
        return f"redis://127.0.0.1:{port}/0"

    def stop(self) -> None:
        if self.pg_data is not None:
            subprocess.run(
                self._as_postgres(
                    [f"{self.pg_bin}/pg_ctl", "-D", str(self.pg_data), "-m", "fast", "stop"]
                ),
                stdout=subprocess.DEVNULL,
                check=False,
            )
        if self.redis is not None:
            self.redis.terminate()
            self.redis.wait()


# --- The gateway's database, read from outside --------------------------------------------


def count_metric_rows(database_url: str, organization_id: int) -> int:
    """Metric rows the gateway wrote for the benchmark's organization."""
    sql = "SELECT count(*) FROM model_metrics WHERE organization_id = "
    if database_url.startswith("sqlite:"):
        with sqlite3.connect(urlsplit(database_url).path) as connection:
            return connection.execute(sql + "?", (organization_id,)).fetchone()[0]
    import psycopg

    with psycopg.connect(database_url.replace("postgres://", "postgresql://", 1)) as connection:
        return connection.execute(sql + "%s", (organization_id,)).fetchone()[0]


# --- Load ---------------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    base_url: str
    model: str
    hold_model: str
    headers: dict = field(default_factory=dict)
    process: subprocess.Popen | None = None
    # Set for the gateway: how to count its metric rows, and where its /metrics is.
    count_rows: Callable[[], int] | None = None
    metrics_url: str | None = None

    @property
    def paced_model(self) -> str:
        return self.hold_model.replace(HOLD_MODEL, PACED_MODEL)

    def rss(self) -> float:
        """Resident memory summed over the target's processes (MB)."""
        if self.process is None:
            return 0.0
        return sum(rss_mb(pid) for pid in tree_pids(self.process.pid))

    def cpu(self) -> float:
        """CPU time used so far by the target's processes (s); for ``direct``, the mock's."""
        if self.process is None:
            return 0.0
        return sum(cpu_seconds(pid) for pid in tree_pids(self.process.pid))


@dataclass
class Result:
    p50: float = float("nan")
    p99: float = float("nan")
    rps: float = 0.0
    client_cpu: float = 0.0
    machine_busy: float = 0.0
    # CPU per request at 64 connections (ms): the target's processes, and the rest of the
    # machine (load generator, mock, PostgreSQL, Redis, the kernel's network work).
    target_cpu_ms: float = float("nan")
    rest_cpu_ms: float = float("nan")
    ttfb: float = float("nan")
    streams_per_second: float = 0.0
    flat_out_per_second: float = 0.0
    held_per_second: float = 0.0
    held_ok: int = 0
    rss: float = 0.0
    # Per client protocol, streamed one at a time: (p50 of the whole stream, p50 TTFB) ms.
    protocols: dict = field(default_factory=dict)
    errors: int = 0
    checks_failed: list[str] = field(default_factory=list)


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection of the load generator, for answers read whole:
    the request is written as prepared bytes and the answer parsed by httptools (llhttp).
    A few tens of microseconds of CPU per request, against aiohttp's hundred and more,
    so that at 64 connections the load generator leaves the target the machine's CPU."""

    def __init__(self):
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.done: asyncio.Future | None = None
        self.deadline = 0.0
        self.body: list[bytes] = []

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._finish(exc)

    def connection_lost(self, exc):
        self.transport = None
        self._finish(exc or ConnectionError("the target closed the connection"))

    def on_body(self, body: bytes):
        self.body.append(body)

    def on_message_complete(self):
        status = self.parser.get_status_code()
        self._finish((status, b"".join(self.body), self.parser.should_keep_alive()))

    def _finish(self, outcome):
        done, self.done = self.done, None
        if done is None or done.done():
            return
        if isinstance(outcome, BaseException):
            done.set_exception(outcome)
        else:
            done.set_result(outcome)

    async def exchange(self, request: bytes) -> tuple[int, bytes, bool]:
        """Send a request; its answer's status, body, and whether the connection stays."""
        if self.transport is None:
            raise ConnectionError("the connection is closed")
        self.body = []
        loop = asyncio.get_running_loop()
        self.deadline = loop.time() + REQUEST_TIMEOUT_SECONDS
        self.done = loop.create_future()
        self.transport.write(request)
        return await self.done

    def expire(self, now: float) -> None:
        """Fail the request in flight if it is past its deadline."""
        if self.done is not None and now > self.deadline:
            self._finish(TimeoutError(f"no answer within {REQUEST_TIMEOUT_SECONDS:.0f} s"))
            self.close()

    def close(self):
        if self.transport is not None:
            self.transport.close()


class Client:
    """Counts what it sends. Answers read whole go over connections of its own
    (``Connection``), each request's bytes prepared beforehand; streams over an aiohttp
    session (on uvloop)."""

    def __init__(self, target: Target, session: aiohttp.ClientSession, upstream_url: str):
        self.target = target
        self.session = session
        self.upstream_url = upstream_url
        self.sent = 0
        self.errors = 0
        # What went wrong, by its first words (an HTTP status and the start of its body).
        self.failures: Counter[str] = Counter()
        url = urlsplit(target.base_url)
        self.address = (url.hostname, url.port)
        head = "".join(f"{name}: {value}\r\n" for name, value in target.headers.items())
        self.request_head = (
            f"POST {url.path}/chat/completions HTTP/1.1\r\nHost: {url.netloc}\r\n{head}"
            "Content-Type: application/json\r\n"
        ).encode()
        self.prepared: dict[tuple[str, int], bytes] = {}
        self.idle: list[Connection] = []
        self.connections: set[Connection] = set()
        # One timer for all requests in flight, not one per request.
        self.watchdog = asyncio.get_running_loop().create_task(self.expire_requests())

    async def expire_requests(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(1.0)
            now = loop.time()
            for connection in list(self.connections):
                connection.expire(now)

    def prepared_request(self, model: str, n: int) -> bytes:
        """The bytes of the ``n``-th non-streamed chat request, encoded once per prompt."""
        key = (model, n % len(CONTEXT))
        request = self.prepared.get(key)
        if request is None:
            body = json.dumps({"model": model, "messages": chat_messages(n)}).encode()
            request = self.request_head + b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            self.prepared[key] = request
        return request

    def prepare(self, model: str) -> None:
        """Encode every prompt's request before the timed phases."""
        for n in range(len(CONTEXT)):
            self.prepared_request(model, n)

    async def read_whole(self, request: bytes) -> None:
        """One request on an idle connection (or a new one); raises on a failed answer."""
        connection = None
        while self.idle and connection is None:
            connection = self.idle.pop()
            if connection.transport is None or connection.transport.is_closing():
                # The target closed it while it was idle (its keep-alive timeout).
                self.connections.discard(connection)
                connection = None
        if connection is None:
            _, connection = await asyncio.get_running_loop().create_connection(
                Connection, *self.address
            )
            self.connections.add(connection)
        try:
            status, body, keep = await connection.exchange(request)
        except BaseException:
            connection.close()
            self.connections.discard(connection)
            raise
        if keep:
            self.idle.append(connection)
        else:
            connection.close()
            self.connections.discard(connection)
        if status != 200:
            raise RuntimeError(f"HTTP {status}: {body.decode(errors='replace')[:160]}")

    def close(self) -> None:
        self.watchdog.cancel()
        for connection in self.connections:
            connection.close()
        self.connections.clear()
        self.idle.clear()

    async def request(
        self,
        stream: bool = False,
        model: str | None = None,
        protocol: str = "",
        varied: bool = True,
    ):
        """Time of the whole answer and, for a stream, of its first byte; None on error.
        With a ``protocol`` of PROTOCOLS, a stream in that protocol; for a chat stream,
        ``varied=False`` sends the bare question instead of a prompt of varied length
        (answers read whole always carry the varied prompt)."""
        end_marker = b"[DONE]"
        path = "/chat/completions"
        whole = None
        if protocol:
            path, make_body, end_marker = PROTOCOLS[protocol]
            body = make_body(model or self.target.model)
        elif stream:
            messages = chat_messages(self.sent) if varied else MESSAGES
            body = {"model": model or self.target.model, "messages": messages, "stream": True}
        else:
            whole = self.prepared_request(model or self.target.model, self.sent)
        self.sent += 1
        started = time.perf_counter()
        try:
            if whole is not None:
                await self.read_whole(whole)
                return time.perf_counter() - started, None
            async with self.session.post(
                self.target.base_url + path, json=body, headers=self.target.headers
            ) as response:
                if response.status != 200:
                    text = (await response.read()).decode(errors="replace")
                    raise RuntimeError(f"HTTP {response.status}: {text[:160]}")
                first = None
                tail = b""
                complete = False
                async for data in response.content.iter_any():
                    if first is None:
                        first = time.perf_counter() - started
                    # The marker is in the last event (which may be long): look at every
                    # chunk, with the end of the one before in case it is split.
                    complete = complete or end_marker in tail + data
                    tail = data[-64:]
                if not complete:
                    raise RuntimeError("stream ended early")
                return time.perf_counter() - started, first
        except Exception as exc:
            self.errors += 1
            self.failures[f"{type(exc).__name__}: {exc}"[:200]] += 1
            return None

    async def upstream_hits(self) -> int:
        async with self.session.get(self.upstream_url + "/stats") as response:
            return (await response.json())["requests"]

    async def dropped_rows(self) -> int | None:
        """The gateway's count of metric rows it could not write (Prometheus)."""
        if self.target.metrics_url is None:
            return None
        headers = {"Authorization": f"Bearer {METRICS_TOKEN}"}
        async with self.session.get(self.target.metrics_url, headers=headers) as response:
            text = await response.text()
        return int(
            sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("gateway_metric_rows_dropped_total")
            )
        )


class Phase:
    """Checks, after a phase, that upstream calls and metric rows match requests sent."""

    def __init__(self, client: Client, result: Result, name: str):
        self.client, self.result, self.name = client, result, name

    async def __aenter__(self):
        self.sent = self.client.sent
        self.errors = self.client.errors
        self.failures = Counter(self.client.failures)
        self.hits = await self.client.upstream_hits()
        counter = self.client.target.count_rows
        self.rows = await asyncio.to_thread(counter) if counter else None
        self.cpu = self.client.target.cpu()
        return self

    async def __aexit__(self, *exc_info):
        if exc_info[0] is not None:
            return
        sent = self.client.sent - self.sent
        errors = self.client.errors - self.errors
        self.result.errors += errors
        hits = await self.client.upstream_hits() - self.hits
        line = f"  {self.client.target.name:<12} {self.name:<9} sent {sent:>6}  errors {errors}"
        ok = hits == sent
        line += f"  upstream calls {hits}{'' if ok else ' MISMATCH'}"
        counter = self.client.target.count_rows
        if counter is not None:
            deadline = time.monotonic() + ROWS_WAIT_SECONDS
            while True:
                rows = await asyncio.to_thread(counter) - self.rows
                if rows >= sent or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
            dropped = await self.client.dropped_rows()
            rows_ok = rows == sent
            ok = ok and rows_ok
            line += f"  metric rows {rows}{'' if rows_ok else ' MISMATCH'}  dropped {dropped}"
        if not ok:
            self.result.checks_failed.append(self.name)
        # The target's CPU per request, its metric rows' writing included: steadier than
        # rates on a shared machine, since the time spent waiting for a core is not in it.
        cpu_ms = (self.client.target.cpu() - self.cpu) * 1000 / max(sent, 1)
        print(f"{line}  CPU {cpu_ms:.2f} ms/request", flush=True)
        for failure, count in (self.client.failures - self.failures).most_common(5):
            print(f"    {count} x {failure}", flush=True)


async def measure(target: Target, upstream_url: str, args) -> Result:
    result = Result()
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        client = Client(target, session, upstream_url)
        client.prepare(target.model)
        async with Phase(client, result, "warm-up"):
            for _ in range(200):
                await client.request()

        # One at a time: the latency a request pays for passing through the target.
        latencies = []
        async with Phase(client, result, "c1"):
            deadline = time.perf_counter() + args.duration
            while len(latencies) < args.sequential and time.perf_counter() < deadline:
                timing = await client.request()
                if timing is not None:
                    latencies.append(timing[0])
        if latencies:
            latencies.sort()
            result.p50 = statistics.median(latencies) * 1000
            result.p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000

        async def loop(
            concurrency: int,
            stream: bool,
            sink: list,
            model: str | None = None,
            stagger: float = 0.0,
        ):
            deadline = time.perf_counter() + args.duration

            async def worker():
                # Independent clients start at random moments; started together, paced
                # streams stay in step and every chunk of all of them arrives at once.
                await asyncio.sleep(random.uniform(0, stagger))
                while time.perf_counter() < deadline:
                    timing = await client.request(stream=stream, model=model)
                    if timing is not None:
                        sink.append(timing[1] if stream else timing[0])

            started = time.perf_counter()
            await asyncio.gather(*[worker() for _ in range(concurrency)])
            return time.perf_counter() - started

        done: list = []
        async with Phase(client, result, "c64"):
            cpu = resource.getrusage(resource.RUSAGE_SELF)
            busy, total = machine_cpu()
            target_cpu = target.cpu()
            elapsed = await loop(64, False, done)
            used = resource.getrusage(resource.RUSAGE_SELF)
            busy_after, total_after = machine_cpu()
            target_cpu = target.cpu() - target_cpu
            result.rps = len(done) / elapsed
            result.client_cpu = (
                (used.ru_utime - cpu.ru_utime + used.ru_stime - cpu.ru_stime) / elapsed * 100
            )
            # All cores together: near 100% means the machine, not one target, was full.
            result.machine_busy = (busy_after - busy) / max(total_after - total, 1) * 100
            if done and target.process is not None:
                machine_seconds = (busy_after - busy) / os.sysconf("SC_CLK_TCK")
                result.target_cpu_ms = target_cpu * 1000 / len(done)
                result.rest_cpu_ms = (machine_seconds - target_cpu) * 1000 / len(done)

        # 32 streams at once, paced as a model streams: what the target adds to the time
        # to first byte at that concurrency, with no part of the machine saturated.
        firsts: list = []
        async with Phase(client, result, "streams"):
            elapsed = await loop(
                32, True, firsts, model=target.paced_model, stagger=PACED_STREAM_SECONDS
            )
        result.ttfb = statistics.median(firsts) * 1000 if firsts else float("nan")
        result.streams_per_second = len(firsts) / elapsed

        # The same with streams the mock sends at once: how many streams a second the
        # target relays flat out (its CPU, and the load generator's, are the limit).
        flat_out: list = []
        async with Phase(client, result, "flat-out"):
            elapsed = await loop(32, True, flat_out)
        result.flat_out_per_second = len(flat_out) / elapsed

        # 1,000 streams at once, each held open for about five seconds.
        async with Phase(client, result, "held"):
            peak = 0.0

            async def sample():
                nonlocal peak
                while True:
                    peak = max(peak, target.rss())
                    await asyncio.sleep(0.25)

            sampler = asyncio.create_task(sample())
            started = time.perf_counter()
            outcomes = await asyncio.gather(
                *[
                    client.request(stream=True, model=target.hold_model, varied=False)
                    for _ in range(HELD_STREAMS)
                ]
            )
            result.held_per_second = HELD_STREAMS / (time.perf_counter() - started)
            sampler.cancel()
            result.held_ok = sum(outcome is not None for outcome in outcomes)
            result.rss = peak

        if target.count_rows is not None and args.protocol_requests:
            # The same stream in each protocol, in turns, so that the machine's noise falls
            # on all of them alike: what translating a protocol adds over chat.
            timings: dict[str, list] = {name: [] for name in PROTOCOLS}
            async with Phase(client, result, "protocols"):
                for _ in range(args.protocol_requests):
                    for name in PROTOCOLS:
                        timing = await client.request(protocol=name)
                        if timing is not None:
                            timings[name].append(timing)
            for name, found in timings.items():
                if found:
                    result.protocols[name] = (
                        statistics.median(t[0] for t in found) * 1000,
                        statistics.median(t[1] for t in found) * 1000,
                    )
        client.close()
    return result


# --- Targets ------------------------------------------------------------------------------


@dataclass
class GatewaySetup:
    env: dict
    key: str
    organization_id: int
    provider_slug: str


def prepare_gateway(
    upstream_port: int, database_url: str, redis_url: str | None, workdir: Path, root: Path = ROOT
):
    """Migrate the database and create an organization, a provider pointing at the mock,
    its models, a credential and a client key with limits; once for both gateway runs.
    ``root`` is the checkout whose migrations and code are used."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.base",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY="bench-secret-key-bench-secret-key-bench-secret-key",
        FIELD_ENCRYPTION_KEY="YmVuY2gtb25seS1maWVsZC1lbmNyeXB0aW9uLWtleSE=",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        DJANGO_CONN_MAX_AGE="60",
        DATABASE_URL=database_url,
        METRICS_TOKEN=METRICS_TOKEN,
        # The mock upstream listens on loopback, which production refuses by default.
        GATEWAY_ALLOW_PRIVATE_UPSTREAMS="1",
        LOG_LEVEL="WARNING",
    )
    env.pop("REDIS_URL", None)
    if redis_url:
        env["REDIS_URL"] = redis_url
    subprocess.run([PYTHON, "manage.py", "migrate", "-v", "0"], cwd=root, env=env, check=True)
    # Unique names, so that a run against a given database leaves earlier runs' rows alone;
    # the provider is the run's organization's own, so that no later run routes among
    # (and its plans load) the models of earlier ones.
    run = f"{os.getpid()}-{int(time.time())}"
    provider_slug = f"bench-mock-{run}"
    setup = f"""
import json
from decimal import Decimal
from modelhub.models import Organization, Provider, Model
from modelhub.services import client_key_create, provider_credential_create
org = Organization.objects.create(name="Bench {run}", slug="bench-{run}")
provider = Provider.objects.create(name="Mock {run}", slug="{provider_slug}", organization=org,
                                   base_url="http://127.0.0.1:{upstream_port}/v1")
for name in {[FAST_MODEL, PACED_MODEL, HOLD_MODEL]!r}:
    Model.objects.create(provider=provider, provider_model_id=name, model_name=name,
                         pricing_prompt=Decimal("0.0000001"), pricing_completion=Decimal("0.0000002"))
provider_credential_create(organization=org, provider=provider, secret="sk-bench-0000000000", name="main")
issued = client_key_create(organization=org, name="bench", rate_limit_rpm=10_000_000,
                           rate_limit_tpm=2_000_000_000, budget_amount=Decimal("1000000"))
print(json.dumps({{"key": issued.raw_key, "organization": org.pk}}))
"""
    output = subprocess.run(
        [PYTHON, "manage.py", "shell", "-c", setup],
        cwd=root,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    created = json.loads(output.strip().splitlines()[-1])
    return GatewaySetup(env, created["key"], created["organization"], provider_slug)


def start_gateway(setup: GatewaySetup, workers: int, workdir: Path, access_log: bool) -> Target:
    port = free_port()
    env = dict(setup.env)
    # Each start gets an empty multiprocess directory, as the deployed command does.
    prometheus = workdir / "prometheus"
    prometheus.mkdir()
    env["PROMETHEUS_MULTIPROC_DIR"] = str(prometheus)
    command = [
        PYTHON, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1",
        "--port", str(port), "--workers", str(workers), "--loop", "uvloop",
        "--http", "httptools", "--log-level", "warning", "--backlog", "4096",
    ]  # fmt: skip
    if not access_log:
        command.append("--no-access-log")
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=(workdir / "uvicorn.log").open("w"), stderr=None
    )
    wait_port(port, process=process)
    database_url = setup.env["DATABASE_URL"]
    return Target(
        f"gateway-{workers}w",
        f"http://127.0.0.1:{port}/v1",
        f"{setup.provider_slug}/{FAST_MODEL}",
        f"{setup.provider_slug}/{HOLD_MODEL}",
        {"Authorization": f"Bearer {setup.key}"},
        process,
        count_rows=lambda: count_metric_rows(database_url, setup.organization_id),
        metrics_url=f"http://127.0.0.1:{port}/metrics",
    )


def start_nginx(upstream_port: int, workdir: Path) -> Target | None:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        print("nginx is not installed (apt-get install -y nginx); skipping it.")
        return None
    port = free_port()
    conf = workdir / "nginx.conf"
    conf.write_text(
        f"""
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
daemon off;
worker_rlimit_nofile 20000;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {workdir}/nginx-body;
    proxy_temp_path {workdir}/nginx-proxy;
    fastcgi_temp_path {workdir}/nginx-fastcgi;
    uwsgi_temp_path {workdir}/nginx-uwsgi;
    scgi_temp_path {workdir}/nginx-scgi;
    upstream mock {{ server 127.0.0.1:{upstream_port}; keepalive 512; }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            # No second try on another attempt: one upstream call per request.
            proxy_next_upstream off;
        }}
    }}
}}
"""
    )
    process = subprocess.Popen([nginx, "-c", str(conf), "-p", str(workdir)])
    wait_port(port, process=process)
    return Target("nginx", f"http://127.0.0.1:{port}/v1", FAST_MODEL, HOLD_MODEL, {}, process)


def start_litellm(upstream_port: int, workdir: Path) -> Target | None:
    binary = LITELLM_VENV / "bin" / "litellm"
    if not binary.exists():
        print(f"LiteLLM is not installed in {LITELLM_VENV}; skipping it (see bench/README.md).")
        return None
    port = free_port()
    config = workdir / "litellm.yaml"
    entries = [
        {
            "model_name": name,
            "litellm_params": {
                "model": f"openai/{name}",
                "api_base": f"http://127.0.0.1:{upstream_port}/v1",
                "api_key": "sk-bench",
            },
        }
        for name in (FAST_MODEL, PACED_MODEL, HOLD_MODEL)
    ]
    config.write_text(json.dumps({"model_list": entries, "litellm_settings": {"telemetry": False}}))
    env = dict(os.environ)
    env.update(
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        LITELLM_LOCAL_ANTHROPIC_COSTS="True",
        LITELLM_LOCAL_POLICY_TEMPLATES="True",
        LITELLM_LOG="ERROR",
        LITELLM_TELEMETRY="False",
        DISABLE_SCHEMA_UPDATE="True",
        NO_DOCS="True",
        # Authentication on, as on the gateway: LiteLLM refuses to start without it.
        LITELLM_MASTER_KEY="sk-bench-master-key-0123456789abcdef",
    )
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    process = subprocess.Popen(
        [str(binary), "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
         "--num_workers", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "litellm.log").open("w"),
    )  # fmt: skip
    try:
        wait_port(port, timeout=180, process=process)
    except RuntimeError:
        process.kill()
        print(f"LiteLLM did not start; see {workdir / 'litellm.log'}")
        return None
    return Target(
        "litellm",
        f"http://127.0.0.1:{port}",
        FAST_MODEL,
        HOLD_MODEL,
        {"Authorization": "Bearer sk-bench-master-key-0123456789abcdef"},
        process,
    )


def stop(target: Target) -> None:
    if target.process is not None:
        target.process.send_signal(signal.SIGTERM)
        try:
            target.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            target.process.kill()
            target.process.wait()


def run_target(target: Target | None, upstream_url: str, args, results: dict) -> None:
    if target is None:
        return
    try:
        results[target.name] = asyncio.run(measure(target, upstream_url, args))
    finally:
        stop(target)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds of each timed phase (10)"
    )
    parser.add_argument(
        "--sequential", type=int, default=2000, help="most requests of the c1 phase (2000)"
    )
    parser.add_argument(
        "--protocol-requests",
        type=int,
        default=500,
        help="streams per protocol (chat, responses, messages) sent to the gateway one at a "
        "time, in turns (500; 0 skips the phase)",
    )
    parser.add_argument(
        "--sqlite",
        action="store_true",
        help="run the gateway on a SQLite file without Redis (the embedded defaults)",
    )
    parser.add_argument(
        "--access-log", action="store_true", help="keep uvicorn's access log (off by default)"
    )
    parser.add_argument(
        "--targets",
        nargs="+",
        default=["direct", "nginx", "litellm", "gateway-1w", "gateway-2w"],
        choices=["direct", "nginx", "litellm", "gateway-1w", "gateway-2w"],
    )
    args = parser.parse_args()
    if "direct" not in args.targets:
        args.targets.insert(0, "direct")

    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    workdir = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    services = Services(workdir)
    upstream_port = free_port()
    upstream_url = f"http://127.0.0.1:{upstream_port}"
    upstream = subprocess.Popen(
        [PYTHON, str(ROOT / "bench" / "mock_upstream.py"), str(upstream_port)]
    )
    results: dict[str, Result] = {}
    try:
        wait_port(upstream_port, process=upstream)
        setup = None
        if any(name.startswith("gateway") for name in args.targets):
            if args.sqlite:
                database_url = f"sqlite:///{workdir / 'gateway.sqlite3'}"
                redis_url = None
            else:
                database_url = os.environ.get("DATABASE_URL") or services.start_postgres()
                redis_url = os.environ.get("REDIS_URL") or services.start_redis()
            setup = prepare_gateway(upstream_port, database_url, redis_url, workdir)
            where = urlsplit(database_url)
            print(
                f"gateway: database {where.scheme}://{where.hostname or ''}{where.path}, "
                f"redis {redis_url or 'none (local memory, limits in the database)'}"
            )
        print("checks after each phase (requests sent, upstream calls, metric rows):")
        for name in args.targets:
            target_dir = workdir / name
            target_dir.mkdir()
            if name == "direct":
                target = Target(
                    "direct", upstream_url + "/v1", FAST_MODEL, HOLD_MODEL, process=upstream
                )
            elif name == "nginx":
                target = start_nginx(upstream_port, target_dir)
            elif name == "litellm":
                target = start_litellm(upstream_port, target_dir)
            else:
                workers = int(name.split("-")[1].rstrip("w"))
                target = start_gateway(setup, workers, target_dir, args.access_log)
            if name == "direct":
                results["direct"] = asyncio.run(measure(target, upstream_url, args))
            else:
                run_target(target, upstream_url, args, results)
    finally:
        upstream.terminate()
        upstream.wait()
        services.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print_table(results, args)


def print_table(results: dict[str, Result], args) -> None:
    direct = results["direct"]
    database = "SQLite, no Redis" if args.sqlite else "PostgreSQL and Redis"
    print(
        f"\nloopback; CPUs: {os.cpu_count()}; gateway on {database}; phases of {args.duration:g} s;"
        f" load average {os.getloadavg()[0]:.1f}"
    )
    # The interpreter's build moves every Python target's figures (see the README).
    print(f"gateway interpreter: {PYTHON} (Python {platform.python_version()})")
    print(
        f"direct: p50 c1 {direct.p50:.2f} ms, TTFB p50 c32 {direct.ttfb:.2f} ms; "
        "+ columns are added over these"
    )
    header = (
        f"{'target':<12}{'+p50 c1':>9}{'p99 c1':>8}{'req/s c64':>11}{'client CPU':>11}"
        f"{'machine':>8}"
        f"{'+TTFB c32':>10}{'streams/s':>10}{'flat-out/s':>11}{'held/s':>8}{'held ok':>11}"
        f"{'RSS MB':>8}{'errors':>8}{'checks':>8}"
    )
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        checks = "ok" if not r.checks_failed else "FAILED"
        print(
            f"{name:<12}{r.p50 - direct.p50:>9.2f}{r.p99:>8.2f}{r.rps:>11.0f}"
            f"{r.client_cpu:>10.0f}%{r.machine_busy:>7.0f}%"
            f"{r.ttfb - direct.ttfb:>10.2f}{r.streams_per_second:>10.0f}"
            f"{r.flat_out_per_second:>11.0f}{r.held_per_second:>8.0f}"
            f"{f'{r.held_ok}/{HELD_STREAMS}':>11}{r.rss:>8.0f}{r.errors:>8}{checks:>8}"
        )
    one, two = results.get("gateway-1w"), results.get("gateway-2w")
    if one and two and one.rps and one.flat_out_per_second:
        print(
            f"gateway 2 workers / 1 worker: req/s c64 x{two.rps / one.rps:.2f}, "
            f"flat-out streams/s x{two.flat_out_per_second / one.flat_out_per_second:.2f}"
        )
        # What the machine can give two workers at all: its CPUs over what a request costs
        # the whole machine at 2 workers, the workers' share and everything else's.
        per_request = two.target_cpu_ms + two.rest_cpu_ms
        if per_request > 0:
            bound = (os.cpu_count() or 1) * 1000 / per_request
            print(
                f"  CPU per request at c64, 2 workers: gateway {two.target_cpu_ms:.3f} ms, "
                f"the rest of the machine {two.rest_cpu_ms:.3f} ms (load generator, mock, "
                f"PostgreSQL, Redis, kernel): {os.cpu_count()} CPUs serve at most "
                f"{bound:,.0f} req/s, x{bound / one.rps:.2f} of 1 worker"
            )
    for name, r in results.items():
        chat = r.protocols.get("chat")
        if not chat:
            continue
        print(f"\n{name}: one stream at a time, the same answer in each protocol (ms)")
        print(
            f"{'protocol':<12}{'p50 stream':>11}{'+ vs chat':>10}{'p50 TTFB':>10}{'+ vs chat':>10}"
        )
        for protocol, (total, first) in r.protocols.items():
            print(
                f"{protocol:<12}{total:>11.2f}{total - chat[0]:>+10.2f}"
                f"{first:>10.2f}{first - chat[1]:>+10.2f}"
            )
    failed = {name: r.checks_failed for name, r in results.items() if r.checks_failed}
    if failed:
        print(f"checks FAILED (upstream calls or metric rows differ from requests): {failed}")


if __name__ == "__main__":
    main()
