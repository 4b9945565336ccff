"""The .env file as an operator uses it: copied from .env.example, then filled in.

Each case runs the real entry points (manage.py, the Celery app) in a fresh process whose
only configuration is that file, the way a shell with nothing exported would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = (ROOT / ".env.example").read_text()
FERNET_KEY = "dGVzdC1vbmx5LWZpZWxkLWVuY3J5cHRpb24ta2V5ISE="
SHOW = (
    "from django.conf import settings as s; "
    "print(s.DEBUG, s.CELERY_BROKER_URL, s.CELERY_TASK_ALWAYS_EAGER, "
    "s.SECRET_KEY == 'x' * 50, s.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1])"
)


def filled_in(**values: str) -> str:
    """.env.example with some variables set, as an operator edits it."""
    lines = []
    for line in EXAMPLE.splitlines():
        name = line.partition("=")[0]
        lines.append(f"{name}={values.pop(name)}" if name in values and "=" in line else line)
    assert not values, f".env.example has no line for {sorted(values)}"
    return "\n".join(lines) + "\n"


def run(tmp_path: Path, env_text: str, *args: str) -> subprocess.CompletedProcess:
    env_file = tmp_path / ".env"
    env_file.write_text(env_text)
    environment = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "DJANGO_ENV_FILE": str(env_file),
        "CELERY_STATE_DIR": str(tmp_path / "celery"),
    }
    return subprocess.run(
        [sys.executable, *args],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def manage(tmp_path: Path, env_text: str, *args: str) -> subprocess.CompletedProcess:
    return run(tmp_path, env_text, str(ROOT / "manage.py"), *args)


def test_env_example_as_shipped_starts_in_development(tmp_path):
    """The empty DJANGO_SECRET_KEY= and CELERY_BROKER_URL= lines mean "use the default"."""
    check = manage(tmp_path, EXAMPLE, "check")
    assert check.returncode == 0, check.stderr
    shown = manage(tmp_path, EXAMPLE, "shell", "-v", "0", "-c", SHOW)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.split() == ["True", "memory://", "True", "False", "sqlite3"]


def test_celery_app_reads_the_env_file(tmp_path):
    """``celery -A config worker``/``beat`` in a shell with only .env: a real broker URL,
    never an empty one (which Celery turns into amqp://guest@localhost)."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "from config.celery import app; print(app.conf.broker_url, app.conf.beat_scheduler)"
    )
    shipped = run(tmp_path, EXAMPLE, "-c", code, str(ROOT))
    assert shipped.returncode == 0, shipped.stderr
    assert shipped.stdout.split() == ["memory://", "config.scheduler.HeartbeatScheduler"]
    with_redis = run(
        tmp_path, filled_in(REDIS_URL="redis://127.0.0.1:6380/7"), "-c", code, str(ROOT)
    )
    assert with_redis.stdout.split()[0] == "redis://127.0.0.1:6380/7"


def test_env_example_filled_in_for_production(tmp_path):
    env_text = filled_in(
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY="x" * 50,
        FIELD_ENCRYPTION_KEY=FERNET_KEY,
        DJANGO_ALLOWED_HOSTS="modelhub.example.com",
        REDIS_URL="redis://127.0.0.1:6380/7",
        API_KEYS="a-long-client-key-for-the-gateway-0001",
    )
    check = manage(tmp_path, env_text, "check")
    assert check.returncode == 0, check.stderr
    assert "API_KEYS" not in check.stderr
    shown = manage(tmp_path, env_text, "shell", "-v", "0", "-c", SHOW)
    assert shown.stdout.split() == [
        "False",
        "redis://127.0.0.1:6380/7",
        "False",
        "True",
        "sqlite3",
    ]


@pytest.mark.parametrize(
    ("missing", "hint"),
    [
        ("DJANGO_SECRET_KEY", "secrets.token_urlsafe"),
        ("FIELD_ENCRYPTION_KEY", "Fernet.generate_key()"),
    ],
)
def test_production_names_the_missing_secret_in_one_line(tmp_path, missing, hint):
    values = {"DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": "x" * 50}
    values["FIELD_ENCRYPTION_KEY"] = FERNET_KEY
    del values[missing]
    result = manage(tmp_path, filled_in(**values), "sync_models", "--help")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert missing in lines[0] and hint in lines[0] and "DJANGO_DEBUG" in lines[0]
    assert "Traceback" not in result.stderr


def test_production_warns_about_short_client_keys(tmp_path):
    env_text = filled_in(
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY="x" * 50,
        FIELD_ENCRYPTION_KEY=FERNET_KEY,
        API_KEYS="short-key,a-long-client-key-for-the-gateway-0001",
    )
    result = manage(tmp_path, env_text, "check")
    assert result.returncode == 0, result.stderr
    assert "1 of API_KEYS is shorter than 20 characters" in result.stderr
    assert "short-key" not in result.stderr  # never echo a key


def test_huggingface_api_token_is_another_name_for_hf_token(tmp_path):
    code = (
        "import os; from django.conf import settings as s; "
        "print(s.HUGGINGFACE_TOKEN, os.environ.get('HF_TOKEN'))"
    )
    result = manage(
        tmp_path, filled_in(HUGGINGFACE_API_TOKEN="hf_alias"), "shell", "-v", "0", "-c", code
    )
    assert result.stdout.split() == ["hf_alias", "hf_alias"], result.stderr
    both = filled_in(HUGGINGFACE_API_TOKEN="hf_alias", HF_TOKEN="hf_primary")
    result = manage(tmp_path, both, "shell", "-v", "0", "-c", code)
    assert result.stdout.split() == ["hf_primary", "hf_primary"], result.stderr


@pytest.mark.parametrize(
    "command",
    [["-m", "celery", "-A", "config", "beat"], ["-m", "uvicorn", "config.asgi:application"]],
    ids=["celery", "uvicorn"],
)
def test_other_entry_points_refuse_in_one_line_too(tmp_path, command):
    env_file = tmp_path / ".env"
    env_file.write_text(filled_in(DJANGO_DEBUG="0"))
    result = subprocess.run(
        [sys.executable, *command],
        cwd=tmp_path,
        env={
            "PATH": os.environ["PATH"],
            "HOME": str(tmp_path),
            "DJANGO_ENV_FILE": str(env_file),
            "PYTHONPATH": str(ROOT),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "DJANGO_SECRET_KEY is not set" in lines[0], result.stderr


def test_beat_health_check_finds_the_state_dir_of_the_env_file(tmp_path):
    """Beat (Django settings) and its health check (no Django) agree on CELERY_STATE_DIR."""
    state = tmp_path / "state"
    env_text = filled_in(CELERY_STATE_DIR=str(state))
    check = [sys.executable, "-m", "config.beat"]
    env_file = tmp_path / ".env"
    env_file.write_text(env_text)
    environment = {
        "PATH": os.environ["PATH"],
        "DJANGO_ENV_FILE": str(env_file),
        "PYTHONPATH": str(ROOT),
    }
    missing = subprocess.run(check, cwd=tmp_path, env=environment, capture_output=True, text=True)
    assert missing.returncode == 1 and str(state) in missing.stdout
    state.mkdir()
    (state / "beat-heartbeat").touch()
    fresh = subprocess.run(check, cwd=tmp_path, env=environment, capture_output=True, text=True)
    assert fresh.returncode == 0, fresh.stdout
