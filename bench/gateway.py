"""Benchmark of the gateway against the upstream itself, nginx and LiteLLM's proxy.

    .venv/bin/python bench/gateway.py [--workers 1] [--duration 20] [--skip-litellm]

Starts a fast mock upstream on loopback, then for each target (direct, the gateway under
uvicorn with authentication, routing, limits and metrics on, nginx as a plain reverse
proxy, LiteLLM's proxy) measures: non-streaming chat at concurrency 1 (p50, p99), at
concurrency 64 for ``--duration`` seconds (requests per second), streaming at
concurrency 32 and one at a time (time to first byte, with and without queueing), and
1,000 streams held open at once (errors and resident memory per worker). Every target gets the same number of workers. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
LITELLM_VENV = ROOT / "bench" / ".litellm-venv"
MESSAGES = [{"role": "user", "content": "Say hello in one word."}]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
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


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@dataclass
class Target:
    name: str
    base_url: str
    model: str
    headers: dict = field(default_factory=dict)
    process: subprocess.Popen | None = None
    workers: int = 1

    def worker_rss(self) -> float:
        """Largest resident set among the target's processes (MB)."""
        if self.process is None:
            return 0.0
        return max(rss_mb(pid) for pid in tree_pids(self.process.pid))


@dataclass
class Result:
    p50: float = 0.0
    p99: float = 0.0
    rps: float = 0.0
    ttfb: float = 0.0
    ttfb_sequential: float = 0.0
    stream_errors: int = 0
    streams_ok: int = 0
    rss: float = 0.0
    errors: int = 0


async def one_request(session, target: Target, stream: bool = False, model: str | None = None):
    body = {"model": model or target.model, "messages": MESSAGES}
    if stream:
        body["stream"] = True
    started = time.perf_counter()
    async with session.post(
        target.base_url + "/chat/completions", json=body, headers=target.headers
    ) as response:
        if response.status != 200:
            await response.read()
            raise RuntimeError(f"HTTP {response.status}")
        if not stream:
            await response.read()
            return time.perf_counter() - started, None
        first = None
        tail = b""
        async for data in response.content.iter_any():
            if first is None:
                first = time.perf_counter() - started
            tail = (tail + data)[-64:]
        if b"[DONE]" not in tail:
            raise RuntimeError("stream ended early")
        return time.perf_counter() - started, first


async def measure(target: Target, duration: float, sequential: int) -> Result:
    result = Result()
    connector = aiohttp.TCPConnector(limit=2000, force_close=False)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        for _ in range(200):
            await one_request(session, target)
        latencies = []
        for _ in range(sequential):
            latencies.append((await one_request(session, target))[0])
        latencies.sort()
        result.p50 = statistics.median(latencies) * 1000
        result.p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000

        done = 0
        errors = 0
        deadline = time.perf_counter() + duration

        async def worker():
            nonlocal done, errors
            while time.perf_counter() < deadline:
                try:
                    await one_request(session, target)
                    done += 1
                except Exception:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(64)])
        result.rps = done / (time.perf_counter() - started)
        result.errors = errors

        firsts = []
        per_worker = 40

        async def streamer():
            for _ in range(per_worker):
                try:
                    firsts.append((await one_request(session, target, stream=True))[1])
                except Exception:
                    result.errors += 1

        await asyncio.gather(*[streamer() for _ in range(32)])
        result.ttfb = statistics.median(firsts) * 1000 if firsts else float("nan")

        # The same streams one at a time: the time to first byte without queueing.
        sequential_firsts = [
            (await one_request(session, target, stream=True))[1] for _ in range(200)
        ]
        result.ttfb_sequential = statistics.median(sequential_firsts) * 1000

    # 1,000 streams at once, each held open for about five seconds.
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        peak = 0.0

        async def sample():
            nonlocal peak
            while True:
                peak = max(peak, target.worker_rss())
                await asyncio.sleep(0.25)

        sampler = asyncio.create_task(sample())
        outcomes = await asyncio.gather(
            *[
                one_request(
                    session,
                    target,
                    stream=True,
                    model=target.model.replace("bench-model", "hold-10-500"),
                )
                for _ in range(1000)
            ],
            return_exceptions=True,
        )
        sampler.cancel()
        result.stream_errors = sum(isinstance(o, BaseException) for o in outcomes)
        result.streams_ok = 1000 - result.stream_errors
        result.rss = peak
    return result


# --- Targets ------------------------------------------------------------------------------


def start_gateway(upstream_port: int, workers: int, workdir: Path) -> Target:
    port = free_port()
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.base",
        DJANGO_SECRET_KEY="bench-secret-key-bench-secret-key-bench-secret-key",
        FIELD_ENCRYPTION_KEY="YmVuY2gtb25seS1maWVsZC1lbmNyeXB0aW9uLWtleSE=",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        DATABASE_URL=env.get("BENCH_DATABASE_URL", f"sqlite:///{workdir / 'gateway.sqlite3'}"),
        PROMETHEUS_MULTIPROC_DIR=str(workdir / "prometheus"),
        LOG_LEVEL="WARNING",
    )
    (workdir / "prometheus").mkdir()
    subprocess.run([PYTHON, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    setup = f"""
from decimal import Decimal
from modelhub.models import Organization, Provider, Model
from modelhub.services import client_key_create, provider_credential_create
org = Organization.objects.create(name="Bench", slug="bench")
provider = Provider.objects.create(name="Mock", slug="mock", base_url="http://127.0.0.1:{upstream_port}/v1")
for name in ("bench-model", "hold-10-500"):
    Model.objects.create(provider=provider, provider_model_id=name, model_name=name,
                         pricing_prompt=Decimal("0.0000001"), pricing_completion=Decimal("0.0000002"))
provider_credential_create(organization=org, provider=provider, secret="sk-bench-0000000000", name="main")
issued = client_key_create(organization=org, name="bench", rate_limit_rpm=10_000_000,
                           rate_limit_tpm=2_000_000_000, budget_amount=Decimal("1000000"))
print(issued.raw_key)
"""
    key = (
        subprocess.run(
            [PYTHON, "manage.py", "shell", "-c", setup],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    command = [
        PYTHON,
        "-m",
        "uvicorn",
        "config.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
        "--backlog",
        "4096",
    ]
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    wait_port(port)
    return Target(
        "gateway",
        f"http://127.0.0.1:{port}/v1",
        "mock/bench-model",
        {"Authorization": f"Bearer {key}"},
        process,
        workers,
    )


def start_nginx(upstream_port: int, workers: int, workdir: Path) -> Target | None:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        print("nginx is not installed (apt-get install -y nginx); skipping it.")
        return None
    port = free_port()
    conf = workdir / "nginx.conf"
    conf.write_text(
        f"""
worker_processes {workers};
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
        }}
    }}
}}
"""
    )
    process = subprocess.Popen([nginx, "-c", str(conf), "-p", str(workdir)])
    wait_port(port)
    return Target("nginx", f"http://127.0.0.1:{port}/v1", "bench-model", {}, process, workers)


def start_litellm(upstream_port: int, workers: int, workdir: Path) -> Target | None:
    binary = LITELLM_VENV / "bin" / "litellm"
    if not binary.exists():
        print(f"LiteLLM is not installed in {LITELLM_VENV}; skipping it.")
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
        for name in ("bench-model", "hold-10-500")
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
    process = subprocess.Popen(
        [
            str(binary),
            "--config",
            str(config),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--num_workers",
            str(workers),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "litellm.log").open("w"),
    )
    try:
        wait_port(port, timeout=180)
    except RuntimeError:
        process.kill()
        print(f"LiteLLM did not start; see {workdir / 'litellm.log'}")
        return None
    return Target(
        "litellm",
        f"http://127.0.0.1:{port}",
        "bench-model",
        {"Authorization": "Bearer sk-bench-master-key-0123456789abcdef"},
        process,
        workers,
    )


def stop(target: Target) -> None:
    if target.process is not None:
        target.process.send_signal(signal.SIGTERM)
        try:
            target.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            target.process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--sequential", type=int, default=2000)
    parser.add_argument("--skip-litellm", action="store_true")
    parser.add_argument("--skip-nginx", action="store_true")
    args = parser.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    workdir = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    upstream_port = free_port()
    upstream = subprocess.Popen(
        [PYTHON, str(ROOT / "bench" / "mock_upstream.py"), str(upstream_port)]
    )
    wait_port(upstream_port)
    starters = [("gateway", start_gateway)]
    if not args.skip_nginx:
        starters.append(("nginx", start_nginx))
    if not args.skip_litellm:
        starters.append(("litellm", start_litellm))
    results: dict[str, Result] = {}
    try:
        direct = Target(
            "direct", f"http://127.0.0.1:{upstream_port}/v1", "bench-model", process=upstream
        )
        results["direct"] = asyncio.run(measure(direct, args.duration, args.sequential))
        for name, start in starters:
            target_dir = workdir / name
            target_dir.mkdir()
            target = start(upstream_port, args.workers, target_dir)
            if target is None:
                continue
            try:
                results[name] = asyncio.run(measure(target, args.duration, args.sequential))
            finally:
                stop(target)
    finally:
        upstream.terminate()
        upstream.wait()
    print_table(results, args.workers)


def print_table(results: dict[str, Result], workers: int) -> None:
    direct = results["direct"]
    litellm = results.get("litellm")
    print(f"\nworkers per target: {workers}; loopback; CPUs: {os.cpu_count()}")
    header = (
        f"{'target':<9}{'p50 ms':>8}{'p99 ms':>8}{'+p50 ms':>9}{'req/s c64':>11}{'x LiteLLM':>10}"
        f"{'TTFB c32':>9}{'+TTFB':>7}{'TTFB c1':>8}{'+TTFB':>7}"
        f"{'1000 streams':>14}{'RSS MB':>8}{'errors':>8}"
    )
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        ratio = f"{r.rps / litellm.rps:.1f}" if litellm and litellm.rps else "-"
        print(
            f"{name:<9}{r.p50:>8.2f}{r.p99:>8.2f}{r.p50 - direct.p50:>9.2f}{r.rps:>11.0f}{ratio:>10}"
            f"{r.ttfb:>9.2f}{r.ttfb - direct.ttfb:>7.2f}"
            f"{r.ttfb_sequential:>8.2f}{r.ttfb_sequential - direct.ttfb_sequential:>7.2f}"
            f"{f'{r.streams_ok} ok':>14}"
            f"{r.rss:>8.0f}{r.errors + r.stream_errors:>8}"
        )


if __name__ == "__main__":
    main()
