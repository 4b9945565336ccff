"""The README's "First call in five minutes" runs as written against a live server.

The blocks marked ``<!-- first-call -->`` are taken from the README in order: the shell
ones run in one bash process (so each step uses what the previous one returned), the
Python one with the OpenAI SDK. Only the server's address, the password and the private
endpoint's URL are replaced: by the gateway under uvicorn and a loopback upstream.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from modelhub.models import ClientKey, Model, Provider, ProviderCredential

# The gateway under uvicorn and the loopback upstream come from the tests.support.gateway
# plugin (which also gives SQLite the file database that threads need).

README = Path(__file__).resolve().parents[1] / "README.md"
MARK = "<!-- first-call -->"
README_BASE = "http://127.0.0.1:8000"
README_UPSTREAM = "https://llm.example.com/v1"
README_PASSWORD = "PASSWORD='the password make run printed'"
PASSWORD = "readme-walkthrough-password"

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")


def marked_blocks(text: str) -> list[tuple[str, str]]:
    """(language, code) of every fenced block right after the marker."""
    pattern = re.compile(re.escape(MARK) + r"\s*```(\w+)\n(.*?)```", re.DOTALL)
    return pattern.findall(text)


def test_readme_marks_the_whole_walkthrough():
    blocks = marked_blocks(README.read_text())
    assert [language for language, _ in blocks] == ["sh"] * 6 + ["python"]
    bodies = "".join(code for _, code in blocks)
    for endpoint in (
        "/api/auth/token/",
        "/api/modelhub/client-keys/",
        "/api/modelhub/providers/",
        "/api/modelhub/models/",
        "/api/modelhub/api-keys/",
    ):
        assert endpoint in bodies


@pytest.fixture
def bootstrapped(transactional_db, monkeypatch):
    """What ``make run`` leaves: a superuser ``admin`` owning the ``demo`` organization."""
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", PASSWORD)
    call_command("bootstrap", stdout=io.StringIO())


def test_first_call_in_five_minutes(bootstrapped, gateway, upstream, tmp_path):
    blocks = marked_blocks(README.read_text())
    shell = "\n".join(code for language, code in blocks if language == "sh")
    (python,) = [code for language, code in blocks if language == "python"]
    for placeholder in (README_BASE, README_UPSTREAM, README_PASSWORD):
        assert placeholder in shell + python, placeholder

    shell = (
        shell.replace(README_BASE, gateway.url)
        .replace(README_UPSTREAM, f"{upstream.url}/openai/v1")
        .replace(README_PASSWORD, f"PASSWORD='{PASSWORD}'")
    )
    key_file = tmp_path / "key"
    script = f'set -euo pipefail\n{shell}\nprintf %s "$MODELHUB_KEY" > {key_file}\n'
    result = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr

    # The walkthrough made what it says, in the bootstrap organization.
    provider = Provider.objects.get(slug="my-llm")
    assert provider.organization.slug == "demo"
    assert provider.base_url == f"{upstream.url}/openai/v1"
    assert Model.objects.filter(provider=provider, provider_model_id="llama-3.1-8b-instruct")
    credential = ProviderCredential.objects.get(provider=provider)
    assert credential.secret_hint and "sk-your-endpoint-key" not in result.stdout
    key = ClientKey.objects.get(name="my-app")
    assert str(key.budget_amount) == "25.000000" and key.budget_period == "month"

    answer = subprocess.run(
        [sys.executable, "-c", python.replace(README_BASE, gateway.url)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "MODELHUB_KEY": key_file.read_text()},
        check=False,
    )
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.strip() == "Hello from the fake upstream"
    (call,) = upstream.requests_for("llama-3.1-8b-instruct")
    assert call["path"] == "/openai/v1/chat/completions"
    assert call["headers"]["authorization"] == "Bearer sk-your-endpoint-key"


def test_the_responses_api_snippet_runs(gateway, upstream, org):
    """The README's Responses API example, with the walkthrough's model and a key."""
    from modelhub.services import client_key_create, provider_credential_create

    [(language, python)] = re.findall(
        r"<!-- responses-api -->\s*```(\w+)\n(.*?)```", README.read_text(), re.DOTALL
    )
    assert language == "python"
    provider = Provider.objects.create(
        organization=org, name="My LLM", slug="my-llm", base_url=f"{upstream.url}/openai/v1"
    )
    Model.objects.create(
        provider=provider, provider_model_id="llama-3.1-8b-instruct", model_name="Llama"
    )
    provider_credential_create(organization=org, provider=provider, secret="sk-x", name="x")
    key = client_key_create(organization=org, name="readme")
    answer = subprocess.run(
        [sys.executable, "-c", python.replace(README_BASE, gateway.url)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "MODELHUB_KEY": key.raw_key},
        check=False,
    )
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.splitlines() == ["Hello from the fake upstream"] * 2
    first, second = upstream.requests_for("llama-3.1-8b-instruct")
    # The second turn carried the first (its question and answer), not its instructions.
    assert [m["role"] for m in first["body"]["messages"]] == ["system", "user"]
    assert second["body"]["messages"] == [
        first["body"]["messages"][1],
        {"role": "assistant", "content": "Hello from the fake upstream"},
        {"role": "user", "content": "And once more."},
    ]
