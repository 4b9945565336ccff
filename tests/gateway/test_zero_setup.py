"""The README's zero-setup example, run as written: environment, ``make run``, SDK calls.

The provider endpoints are the loopback fake upstream (OPENAI_BASE_URL and OLLAMA_BASE_URL
point at it); everything else is the document's text: its ``export`` lines, ``make run``
(the recipe itself, without reinstalling the virtualenv) and its Python block.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import time
from io import StringIO
from pathlib import Path

import httpx
import pytest
from django.core.management import call_command

from modelhub.crypto import hash_client_key
from modelhub.models import ClientKey, Organization

ROOT = Path(__file__).resolve().parents[2]


def readme_example() -> tuple[dict[str, str], list[str], str]:
    """The section's ``export`` variables, its other shell commands, and its Python block."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Zero setup", 1)[1].split("\n### ", 1)[0]
    shell, python = re.findall(r"```(?:sh|python)\n(.*?)```", section, flags=re.S)
    variables, commands = {}, []
    for line in shell.splitlines():
        words = shlex.split(line, comments=True)
        if words[:1] == ["export"]:
            name, _, value = words[1].partition("=")
            variables[name] = value
        elif words:
            commands.append(" ".join(words))
    return variables, commands, python


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def served(upstream, tmp_path, monkeypatch):
    """``make run`` with the README's environment; yields its output so far and base URL."""
    variables, commands, _ = readme_example()
    assert commands == ["make run"]
    assert set(variables) == {"OPENAI_API_KEY", "OPENAI_BASE_URL", "OLLAMA_BASE_URL", "API_KEYS"}
    variables["OPENAI_BASE_URL"] = f"{upstream.url}/openai/v1"
    variables["OLLAMA_BASE_URL"] = f"{upstream.url}/openai"
    for name, value in variables.items():
        monkeypatch.setenv(name, value)  # the shell the Python block runs in
    port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "DJANGO_ENV_FILE": str(tmp_path / "none"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        **variables,
    }
    log = tmp_path / "make-run.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            # -o: the virtualenv is installed already; the rest is the recipe as written.
            ["make", "-o", "install", "-o", ".venv/.installed", "run", f"PORT={port}"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        upstream.reset()
        yield log, url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def test_readme_zero_setup_example(served, upstream):
    log, url = served
    _, _, python = readme_example()
    assert 'base_url="http://127.0.0.1:8000/v1"' in python
    exec(compile(python.replace("http://127.0.0.1:8000", url), "README.md", "exec"), {})

    output = log.read_text()
    assert "Development client key" not in output  # API_KEYS was given
    assert "from API_KEYS: 1 active" in output
    calls = [(r["path"], r["body"].get("model")) for r in upstream.requests]
    assert calls == [
        ("/openai/v1/chat/completions", "gpt-3.5-turbo"),
        ("/openai/v1/chat/completions", "llama2:latest"),
        ("/openai/v1/embeddings", "text-embedding-ada-002"),
    ]
    # OpenAI's calls carry the key of the environment; Ollama needs none.
    openai_calls = [upstream.requests[0], upstream.requests[2]]
    assert all(r["headers"]["authorization"] == "Bearer sk-..." for r in openai_calls)
    assert "authorization" not in upstream.requests[1]["headers"]
    # A key that is not in API_KEYS is refused.
    refused = httpx.post(
        f"{url}/v1/chat/completions",
        headers={"X-Api-Key": "not-a-listed-key"},
        json={"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "Hi"}]},
    )
    assert refused.status_code == 401


# --- bootstrap and API_KEYS ---------------------------------------------------------------


def bootstrap() -> str:
    out = StringIO()
    call_command("bootstrap", stdout=out, stderr=out)
    return out.getvalue()


@pytest.mark.django_db
def test_api_keys_become_hashed_client_keys_of_the_default_organization(settings):
    settings.DEBUG = False
    settings.API_KEYS = ["first-key-of-the-operator-01", "second-key-of-the-operator-02"]
    assert "2 active (2 new)" in bootstrap()
    demo = Organization.objects.get(slug=settings.DEFAULT_ORGANIZATION_SLUG)
    keys = ClientKey.objects.for_org(demo)
    assert {k.key_hash for k in keys} == {hash_client_key(k) for k in settings.API_KEYS}
    stored = [str(v) for k in keys.values() for v in k.values()]
    assert not [v for v in stored if "key-of-the-operator" in v]  # never in clear

    # Idempotent; a key dropped from the list is revoked, one listed again comes back.
    assert "2 active (0 new), 0 no longer" in bootstrap()
    settings.API_KEYS = ["first-key-of-the-operator-01"]
    assert "1 no longer listed revoked" in bootstrap()
    dropped = keys.get(key_hash=hash_client_key("second-key-of-the-operator-02"))
    assert dropped.revoked_at is not None
    settings.API_KEYS = ["first-key-of-the-operator-01", "second-key-of-the-operator-02"]
    bootstrap()
    dropped.refresh_from_db()
    assert dropped.revoked_at is None and keys.count() == 2


@pytest.mark.django_db
def test_development_accepts_test_key_and_says_so(settings):
    # What the settings give with DJANGO_DEBUG=1 and no API_KEYS.
    settings.DEBUG, settings.API_KEYS_DEVELOPMENT_DEFAULT = True, True
    settings.API_KEYS = [settings.DEV_CLIENT_KEY]
    output = bootstrap()
    assert "Development client key" in output and "X-Api-Key: test-key" in output
    assert ClientKey.objects.filter(key_hash=hash_client_key("test-key")).exists()
    # Production with its own keys revokes the development key.
    settings.DEBUG, settings.API_KEYS_DEVELOPMENT_DEFAULT = False, False
    settings.API_KEYS = ["a-long-production-client-key-0001"]
    bootstrap()
    assert ClientKey.objects.get(key_hash=hash_client_key("test-key")).revoked_at is not None


@pytest.mark.django_db
def test_a_listed_key_of_another_organization_stays_there(settings, org):
    from modelhub.services import client_key_create

    issued = client_key_create(organization=org, name="theirs")
    settings.API_KEYS = [issued.raw_key]
    output = bootstrap()
    assert "already belong to another organization" in output
    assert ClientKey.objects.get(key_hash=hash_client_key(issued.raw_key)).organization == org


@pytest.mark.django_db
def test_openai_base_url_replaces_the_global_provider_url_at_call_time(settings, org):
    from gateway.upstreams import _base_url
    from modelhub.models import Provider

    settings.GATEWAY_PROVIDER_BASE_URLS = {"openai": "http://llm.internal:8080/v1"}
    synced_earlier = Provider(slug="openai", base_url="https://api.openai.com/v1")
    assert _base_url(synced_earlier, version_suffix=None) == "http://llm.internal:8080/v1"
    private = Provider(slug="openai", organization=org, base_url="https://mine.example/v1")
    assert _base_url(private, version_suffix=None) == "https://mine.example/v1"
