"""Instructions per gateway request, counted by valgrind: a figure that does not move
with the machine, for comparing two versions of the code.

Wall-clock and CPU figures of ``bench/gateway.py`` swing by a factor of two on a shared
machine, so a change worth 5% is lost in them unless runs are alternated many times.
The number of instructions a request costs barely moves from one run to the next (0.1%
here), so two runs of each version show a change of 1%.

What runs: the project's ASGI application in one process, on PostgreSQL and Redis, its
gateway runtime started by the lifespan as under uvicorn, with ``--concurrency``
requests in flight to the mock upstream (``bench/mock_upstream.py``) through the real
HTTP client. Requests are chat completions with prompts of varied size, as in
``bench/gateway.py``, from a key with rpm, tpm and budget limits. The process runs under
callgrind with instrumentation off; after a warm-up it is switched on for ``--requests``
requests, then off. The count covers the whole process (the event loop and the metric
writer's thread), not uvicorn's HTTP parsing nor the load generator, which are not in it.

    .venv/bin/python bench/instructions.py                      # this checkout
    .venv/bin/python bench/instructions.py --compare main~3     # against another commit

``--compare REF`` checks REF out in a temporary worktree, gives each version a database
of its own (migrated by its own code), and alternates the two ``--rounds`` times. Needs
valgrind (``apt-get install -y valgrind``), and PostgreSQL and Redis as for
``bench/gateway.py`` (started on loopback unless ``DATABASE_URL`` and ``REDIS_URL`` are
given; with ``DATABASE_URL``, both versions share that database and must have the same
migrations).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from loading import bench_gateway

ROOT = Path(__file__).resolve().parent.parent
WARM_UP = 300


# --- The measured process -----------------------------------------------------------------


def drive(args) -> None:
    """Runs under callgrind: the application, a warm-up, then the measured requests.

    The parent switches instrumentation on and off around the measured part; the two
    sides meet through files in ``--control``."""
    sys.path.insert(0, str(Path.cwd()))
    import django

    django.setup()
    import uvloop

    from config.asgi import application
    from gateway import runtime

    control = Path(args.control)
    key = os.environ["BENCH_CLIENT_KEY"]
    model = os.environ["BENCH_MODEL"]
    context = ("Context the application sends along with the question. " * 80)[:4000]
    bodies = [
        json.dumps(
            {
                "model": model,
                "messages": [
                    {"role": "system", "content": context[: (k * 997) % 4001]},
                    {"role": "user", "content": "Say hello in one word."},
                ],
                **({"stream": True} if args.stream else {}),
            }
        ).encode()
        for k in range(64)
    ]
    headers = [
        (b"host", b"127.0.0.1"),
        (b"content-type", b"application/json"),
        (b"authorization", f"Bearer {key}".encode()),
        (b"user-agent", b"bench-instructions"),
    ]

    async def request(body: bytes, statuses: dict) -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/chat/completions",
            "raw_path": b"/v1/chat/completions",
            "root_path": "",
            "query_string": b"",
            "server": ("127.0.0.1", 8000),
            "client": ("127.0.0.1", 50000),
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
        delivered = False
        client_gone = asyncio.Event()  # never set: the client stays until the answer

        async def receive():
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await client_gone.wait()
            return {"type": "http.disconnect"}

        async def send(message):
            if message["type"] == "http.response.start":
                statuses[message["status"]] = statuses.get(message["status"], 0) + 1

        await application(scope, receive, send)

    async def requests(count: int) -> dict:
        statuses: dict[int, int] = {}
        numbers = iter(range(count))

        async def client():
            for n in numbers:
                await request(bodies[n % len(bodies)], statuses)

        await asyncio.gather(*(client() for _ in range(args.concurrency)))
        return statuses

    async def wait_for(name: str) -> None:
        while not (control / name).exists():
            await asyncio.sleep(0.05)

    async def main() -> None:
        lifespan: asyncio.Queue = asyncio.Queue()
        answers: asyncio.Queue = asyncio.Queue()
        life = asyncio.create_task(application({"type": "lifespan"}, lifespan.get, answers.put))
        await lifespan.put({"type": "lifespan.startup"})
        started = await answers.get()
        if started["type"] != "lifespan.startup.complete":
            raise SystemExit(f"The gateway did not start: {started}")
        await requests(WARM_UP)
        # Metric rows are written when the run says, not every second: the rows of the
        # measured requests in one batch, as under load, and the count does not depend on
        # how many flushes the (slowed down) run happens to span.
        recorder = runtime.current().recorder
        await recorder.flush()
        (control / "ready").write_text(str(os.getpid()))
        await wait_for("go")
        statuses = await requests(args.requests)
        await recorder.flush()
        (control / "done").write_text(json.dumps(statuses))
        await wait_for("stop")
        await lifespan.put({"type": "lifespan.shutdown"})
        await life

    uvloop.run(main())


# --- The parent ---------------------------------------------------------------------------


def _wait_for(path: Path, process: subprocess.Popen, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise SystemExit(f"The measured process ended early:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            process.kill()
            raise SystemExit(f"No {path.name} within {timeout:.0f} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


def measure(root: Path, setup, args, workdir: Path) -> float:
    """Instructions per request of the checkout at ``root``; every answer must be a 200."""
    control = Path(tempfile.mkdtemp(dir=workdir, prefix="control-"))
    prometheus = control / "prometheus"
    prometheus.mkdir()
    env = dict(setup.env)
    env.update(
        PROMETHEUS_MULTIPROC_DIR=str(prometheus),
        BENCH_CLIENT_KEY=setup.key,
        BENCH_MODEL=args.model,
        # Flushed by the driver only (see drive()).
        GATEWAY_METRICS_FLUSH_SECONDS="3600",
        GATEWAY_METRICS_BATCH_SIZE=str(max(args.requests, 500)),
    )
    log = control / "log"
    command = [
        "valgrind", "--tool=callgrind", "--instr-atstart=no",
        f"--callgrind-out-file={control}/callgrind.out",
        sys.executable, str(Path(__file__).resolve()), "--drive", "--control", str(control),
        "--requests", str(args.requests), "--concurrency", str(args.concurrency),
        *(["--stream"] if args.stream else []),
    ]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=root, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT
    )
    try:
        _wait_for(control / "ready", process, 900, log)
        pid = (control / "ready").read_text()
        subprocess.run(["callgrind_control", "-i", "on", pid], check=True, capture_output=True)
        (control / "go").touch()
        _wait_for(control / "done", process, 1800, log)
        subprocess.run(["callgrind_control", "-i", "off", pid], check=True, capture_output=True)
        (control / "stop").touch()
        if process.wait(timeout=300) != 0:
            raise SystemExit(f"The measured process failed:\n{log.read_text()[-3000:]}")
    finally:
        if process.poll() is None:
            process.kill()
    # Callgrind's own total of the instrumented part, as it reports it on exit.
    collected = [
        line
        for line in log.read_text().splitlines()
        if line.split("== ")[-1].startswith("Collected")
    ]
    if not collected:
        raise SystemExit(f"No count in callgrind's report:\n{log.read_text()[-3000:]}")
    total = int(collected[-1].rsplit(":", 1)[1].replace(",", ""))
    statuses = {int(k): v for k, v in json.loads((control / "done").read_text()).items()}
    if statuses != {200: args.requests}:
        raise SystemExit(
            f"{_describe(root)}: answers {statuses}, not all 200:\n{log.read_text()[-3000:]}"
        )
    return total / args.requests


def _describe(root: Path) -> str:
    """The commit of ``root``, marked when its files differ from it (they are measured)."""
    result = subprocess.run(
        ["git", "log", "-1", "--format=%h %s"], cwd=root, capture_output=True, text=True
    )
    changed = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    mark = " (with changes)" if changed.stdout.strip() else ""
    return (result.stdout.strip()[:60] or str(root)) + mark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="measured requests per run")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument("--compare", metavar="REF", help="a commit to measure against")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each version")
    parser.add_argument(
        "--stream", action="store_true", help="streamed requests: ten chunks 20 ms apart"
    )
    parser.add_argument("--drive", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--control", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        drive(args)
        return
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (apt-get install -y valgrind).")
    bench = bench_gateway()
    args.model = bench.PACED_MODEL if args.stream else bench.FAST_MODEL
    workdir = Path(tempfile.mkdtemp(prefix="bench-instructions-"))
    services = bench.Services(workdir)
    worktree = None
    upstream = None
    try:
        roots = [ROOT]
        if args.compare:
            worktree = workdir / "compare"
            subprocess.run(
                ["git", "worktree", "add", "--detach", str(worktree), args.compare],
                cwd=ROOT,
                check=True,
                capture_output=True,
            )
            roots.insert(0, worktree)
        upstream_port = bench.free_port()
        upstream = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "mock_upstream.py"), str(upstream_port)]
        )
        bench.wait_port(upstream_port, process=upstream)
        given = os.environ.get("DATABASE_URL")
        server = given or services.start_postgres()
        given_redis = os.environ.get("REDIS_URL")
        redis_server = given_redis or services.start_redis()
        setups = {}
        for number, root in enumerate(roots):
            # A database and a Redis database of its own for each version: the ids of their
            # keys and providers are the same, and so would be their counters and health.
            redis_url = given_redis or f"{redis_server.rsplit('/', 1)[0]}/{number}"
            database_url = server
            if not given:
                database_url = f"{server}_{number}"
                name = database_url.rsplit("/", 1)[1]
                subprocess.run(
                    [f"{services.pg_bin}/psql", server, "-q", "-c", f"CREATE DATABASE {name}"],
                    check=True,
                )
            setups[root] = bench.prepare_gateway(
                upstream_port, database_url, redis_url, workdir, root
            )
        counts: dict[Path, list[float]] = {root: [] for root in roots}
        for round_number in range(args.rounds):
            order = roots if round_number % 2 == 0 else roots[::-1]
            for root in order:
                per_request = measure(root, setups[root], args, workdir)
                counts[root].append(per_request)
                print(
                    f"  {_describe(root)}: {per_request:,.0f} instructions per request", flush=True
                )
        print_table(roots, counts)
    finally:
        if upstream is not None:
            upstream.terminate()
        services.stop()
        if worktree is not None:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT, check=False
            )
        shutil.rmtree(workdir, ignore_errors=True)


def print_table(roots: list[Path], counts: dict[Path, list[float]]) -> None:
    base = statistics.median(counts[roots[0]])
    print()
    print("| version | instructions per request (median) | runs | ratio |")
    print("|---|---|---|---|")
    for root in roots:
        median = statistics.median(counts[root])
        runs = ", ".join(f"{value:,.0f}" for value in counts[root])
        print(f"| {_describe(root)} | {median:,.0f} | {runs} | ×{median / base:.3f} |")


if __name__ == "__main__":
    main()
