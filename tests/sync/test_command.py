"""``manage.py sync_models`` and ``build_catalog_snapshot``."""

from __future__ import annotations

import logging
from io import StringIO
from pathlib import Path

import pytest
import requests
from django.core.management import call_command
from django.core.management.base import CommandError

from modelhub.models import Model, SyncRun
from tests.support.recorded import load_response

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command("sync_models", *args, stdout=out)
    return out.getvalue()


def test_sync_selected_providers_prints_progress_and_summary(serve):
    serve("openrouter", load_response("openrouter.json"))
    serve("vercel", load_response("vercel.json"))
    output = run("--providers", "openrouter", "vercel", "openai")
    assert "Synced 38 models from openrouter" in output
    assert "Skipped openai: OPENAI_API_KEY is not set" in output
    summary = output.split("provider ", 1)[1]
    assert "openrouter" in summary and "total" in summary and "50" in summary
    assert Model.objects.count() == 50


def test_failure_exits_non_zero(serve):
    serve("openrouter", {"error": "boom"}, status=500)
    serve("vercel", load_response("vercel.json"))
    with pytest.raises(CommandError) as excinfo:
        run("--providers", "openrouter", "vercel")
    assert excinfo.value.returncode == 1
    assert "openrouter" in str(excinfo.value)
    assert Model.objects.filter(provider__slug="vercel").count() == 12


def test_dry_run_and_verbose(serve):
    body = load_response("openrouter.json")
    body["data"].append({"name": "broken"})
    serve("openrouter", body)
    output = run("--providers", "openrouter", "--dry-run", "--verbose")
    assert "Dry run: would sync 38 models" in output
    assert "skipped: #38" in output
    assert not Model.objects.exists()
    assert SyncRun.objects.get().dry_run is True


def test_unknown_provider_is_an_error():
    with pytest.raises(CommandError, match="Unknown providers: nope"):
        run("--providers", "nope")


def test_snapshot_load_without_network(http, tmp_path):
    snapshot = Path(__file__).resolve().parents[2] / "sync" / "snapshots" / "catalog.json.gz"
    output = run("--snapshot", str(snapshot))
    assert "Loading snapshot" in output and len(http.calls) == 0
    assert Model.objects.count() > 300
    assert Model.objects.filter(provider__slug="openrouter").count() == 63
    with pytest.raises(CommandError, match="No such snapshot"):
        run("--snapshot", str(tmp_path / "missing.json"))


def test_build_catalog_snapshot(tmp_path):
    out = StringIO()
    target = tmp_path / "snap.json.gz"
    call_command("build_catalog_snapshot", "--output", str(target), stdout=out)
    assert target.exists() and "Wrote" in out.getvalue()
    assert "openrouter" in out.getvalue() and "ollama" not in out.getvalue()


def test_unreachable_providers_name_the_host_and_suggest_the_snapshot(serve):
    for slug in ("openrouter", "vercel"):
        serve(slug, requests.exceptions.ConnectionError("Name or service not known"))
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError):
        call_command("sync_models", "--providers", "openrouter", "vercel", stdout=out, stderr=err)
    output = out.getvalue()
    assert "cannot connect to openrouter.ai (ConnectionError)" in output
    assert "cannot connect to ai-gateway.vercel.sh (ConnectionError)" in output
    assert "--snapshot sync/snapshots/catalog.json.gz" in err.getvalue()


def test_no_snapshot_hint_when_a_provider_answered(serve):
    serve("openrouter", requests.exceptions.ConnectionError("refused"))
    serve("vercel", {"error": "boom"}, status=500)
    err = StringIO()
    with pytest.raises(CommandError):
        call_command(
            "sync_models", "--providers", "openrouter", "vercel", stdout=StringIO(), stderr=err
        )
    assert "--snapshot" not in err.getvalue()


def test_verbose_prints_each_line_once(serve, caplog):
    body = load_response("openrouter.json")
    body["data"].append({"name": "broken"})
    serve("openrouter", body)
    caplog.set_level(logging.INFO)
    output = run("--providers", "openrouter", "--verbose")
    assert output.count("skipped: #38") == 1
    # The pipeline's own log lines would repeat what the command printed.
    assert not [r for r in caplog.records if r.name == "sync" and r.levelno < logging.ERROR]


def test_dry_run_says_so_in_header_and_summary(serve):
    serve("vercel", load_response("vercel.json"))
    output = run("--providers", "vercel", "--dry-run")
    assert output.splitlines()[0].startswith("Dry run: ")
    summary = output.split("\n\n", 1)[1]
    assert summary.startswith("Dry run: nothing was written.")
    assert "Dry run" not in run("--providers", "vercel")


class Terminal(StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal(serve):
    serve("vercel", load_response("vercel.json"))
    serve("openrouter", load_response("openrouter.json"))
    terminal = Terminal()
    call_command("sync_models", "--providers", "vercel", "openrouter", stdout=terminal)
    assert "/2 [" in terminal.getvalue() and "provider/s" in terminal.getvalue()
    assert "Synced 12 models from vercel" in terminal.getvalue()
    plain = run("--providers", "vercel", "openrouter")
    assert "\r" not in plain and "provider/s" not in plain


def test_snapshot_if_empty_loads_only_on_first_start(http):
    snapshot = Path(__file__).resolve().parents[2] / "sync" / "snapshots" / "catalog.json.gz"
    first = run("--snapshot", str(snapshot), "--if-empty", "--providers", "groq")
    assert "Synced 14 models from groq" in first
    Model.objects.filter(provider__slug="groq").update(model_name="renamed")
    again = run("--snapshot", str(snapshot), "--if-empty", "--providers", "groq", "vercel")
    assert "The catalog has models already" in again
    assert not Model.objects.filter(provider__slug="vercel").exists()
    with pytest.raises(CommandError, match="--if-empty only applies to --snapshot"):
        run("--if-empty")


def test_openai_base_url_points_the_sync_at_another_endpoint(http, monkeypatch):
    """``sync_models --providers openai`` lists what OPENAI_BASE_URL serves."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://llm.internal:8080/v1/")
    http.add(
        "GET",
        "http://llm.internal:8080/v1/models",
        json={"object": "list", "data": [{"id": "served-model", "object": "model"}]},
    )
    output = run("--providers", "openai")
    assert "Synced 1 models from openai" in output
    model = Model.objects.get(provider__slug="openai")
    assert model.provider_model_id == "served-model"
    assert model.provider.base_url == "http://llm.internal:8080/v1"
    monkeypatch.delenv("OPENAI_BASE_URL")
    from sync.registry import REGISTRY

    assert REGISTRY["openai"].resolved_list_url() == "https://api.openai.com/v1/models"
