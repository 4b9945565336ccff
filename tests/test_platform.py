"""The platform around the apps: probes, settings, bootstrap, deployment files, services."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from django.db import OperationalError, connection

from modelhub.models import Membership, Model, Organization, Provider, Role, User
from tests.support.environment import REQUIRE_SERVICES

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_FILE = ROOT / "config" / "settings" / "base.py"


def settings_env_vars() -> set[str]:
    """Every environment variable the settings read (env.str("NAME"), env.db("NAME"), ...)."""
    return set(re.findall(r'env(?:\.\w+)?\(\s*"([A-Z][A-Z0-9_]+)"', SETTINGS_FILE.read_text()))


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_ok(client, db):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["database"] == "ok"


def test_readyz_names_the_failing_database(client, db, monkeypatch):
    def broken_cursor(*args, **kwargs):
        raise OperationalError("could not connect to server")

    with monkeypatch.context() as patched:
        patched.setattr(connection, "cursor", broken_cursor)
        response = client.get("/readyz")
    assert response.status_code == 503
    assert "database" in response.json()["detail"]


def test_readyz_names_the_failing_redis(client, db, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["database"] == "ok"
    assert "redis" in body["detail"]


@pytest.mark.parametrize("missing", ["DJANGO_SECRET_KEY", "FIELD_ENCRYPTION_KEY"])
def test_production_refuses_to_start_without_secrets(missing, tmp_path):
    env = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "x" * 50,
        "FIELD_ENCRYPTION_KEY": "dGVzdC1vbmx5LWZpZWxkLWVuY3J5cHRpb24ta2V5ISE=",
    }
    del env[missing]
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert missing in result.stderr


def test_development_defaults_start_without_secrets():
    env = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "DJANGO_DEBUG": "1",
    }
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings; print(settings.DATABASES['default']['ENGINE'], settings.CELERY_TASK_ALWAYS_EAGER)",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["django.db.backends.sqlite3", "True"]


def test_web_workers_do_not_load_the_provider_http_client():
    # The sync and catalog modules import requests where they call a provider: a web
    # worker loads those modules but makes no such call, and requests with urllib3 would
    # add about 4.6 MiB to it. (The management API's routes still load it: Django REST
    # framework imports requests when it is installed.)
    env = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "DJANGO_DEBUG": "1",
    }
    code = (
        "import sys, config.asgi, gateway.urls; "
        "print(sorted(m for m in ('requests', 'urllib3') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[-2] == "[]"


def test_env_example_lists_every_setting():
    example = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", example, flags=re.M))
    missing = settings_env_vars() - listed
    assert not missing, f".env.example does not list {sorted(missing)}"


def test_docker_compose_matches_settings():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "web", "worker", "beat"} <= set(services)
    for name in ("postgres", "redis", "web", "worker", "beat"):
        assert "healthcheck" in services[name], f"{name} has no health check"
    # prometheus_client reads PROMETHEUS_MULTIPROC_DIR itself, not through the settings.
    known = settings_env_vars() | {"PROMETHEUS_MULTIPROC_DIR"}
    for name in ("web", "worker", "beat"):
        service = services[name]
        environment = service["environment"]
        assert set(environment) <= known, f"{name} sets variables the settings never read"
        for required in ("DATABASE_URL", "REDIS_URL", "DJANGO_SECRET_KEY", "FIELD_ENCRYPTION_KEY"):
            assert required in environment, f"{name} lacks {required}"
        assert environment["DATABASE_URL"].startswith("postgres://")
        assert "@postgres:" in environment["DATABASE_URL"]
        assert environment["REDIS_URL"].startswith("redis://redis:")
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
    web_command = " ".join(services["web"]["command"])
    assert "config.asgi:application" in web_command and "--workers" in web_command
    # The metrics directory is emptied before the workers start.
    assert "rm -rf" in web_command and "PROMETHEUS_MULTIPROC_DIR" in web_command
    assert "worker" in services["worker"]["command"]
    assert "beat" in services["beat"]["command"]


def test_docker_compose_orders_and_probes_the_services():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    # Migrations (and the first catalog) complete before anything that uses the schema.
    migrate = " ".join(services["migrate"]["command"])
    assert "migrate --noinput" in migrate and "bootstrap" in migrate
    assert "sync_models --snapshot sync/snapshots/catalog.json.gz --if-empty" in migrate
    assert services["migrate"]["restart"] == "no"
    assert "migrate" not in services["migrate"]["depends_on"]
    for name in ("web", "worker", "beat"):
        condition = services[name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully", name
    # Real probes: the web process answers, the worker answers a ping addressed to itself,
    # beat's loop has ticked recently (config.beat).
    web = " ".join(services["web"]["healthcheck"]["test"])
    assert "http://127.0.0.1:8000/healthz" in web
    worker = " ".join(services["worker"]["healthcheck"]["test"])
    assert "celery -A config inspect ping -d celery@$$HOSTNAME" in worker
    assert services["beat"]["healthcheck"]["test"] == ["CMD", "python", "-m", "config.beat"]
    assert "--schedule" not in " ".join(services["beat"]["command"])
    # Plain HTTP unless the operator says otherwise.
    environment = services["web"]["environment"]
    assert environment["DJANGO_SECURE_COOKIES"] == "${DJANGO_SECURE_COOKIES:-0}"
    assert "DJANGO_SECURE_PROXY_SSL_HEADER" in environment


def dockerignored(path: str) -> bool:
    """Whether .dockerignore keeps ``path`` out of the build context (last match wins)."""
    import fnmatch

    ignored = False
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").removeprefix("**/")
        parts = path.split("/")
        if any(
            fnmatch.fnmatch("/".join(parts[i : i + n]), pattern)
            for n in range(1, len(parts) + 1)
            for i in range(len(parts) - n + 1)
        ):
            ignored = not negated
    return ignored


def test_image_leaves_out_secrets_and_local_state_and_runs_unprivileged():
    for path in (".env", ".env.production", ".venv/bin/python", "db.sqlite3", ".git/HEAD"):
        assert dockerignored(path), f"{path} would be copied into the image"
    for path in ("manage.py", "config/settings/base.py", "sync/snapshots/catalog.json.gz"):
        assert not dockerignored(path), f"{path} is missing from the image"
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM \S+ AS (\w+)", dockerfile, flags=re.M)
    assert len(stages) == 2, "build and runtime stages"
    users = re.findall(r"^USER (\S+)", dockerfile, flags=re.M)
    assert users and users[-1] not in ("root", "0")
    runtime = dockerfile.split(f"AS {stages[1]}", 1)[1]
    assert "COPY --from=build /venv /venv" in runtime and "pip install" not in runtime


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_answer_any_host(client, db, settings, path):
    """Container health checks call 127.0.0.1 while ALLOWED_HOSTS names the public host."""
    settings.ALLOWED_HOSTS = ["modelhub.example.com"]
    response = client.get(path, HTTP_HOST="127.0.0.1:8000")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    # Everything else still validates the host.
    assert client.get("/api/schema/", HTTP_HOST="127.0.0.1:8000").status_code == 400


def test_cookie_security_follows_the_operator(tmp_path):
    """Plain HTTP by default; Secure cookies and the proxy's scheme header when told."""
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, "
        "getattr(s, 'SECURE_PROXY_SSL_HEADER', None))"
    )
    base = {
        "PATH": os.environ["PATH"],
        "DJANGO_ENV_FILE": str(tmp_path / "none"),
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "x" * 50,
        "FIELD_ENCRYPTION_KEY": "dGVzdC1vbmx5LWZpZWxkLWVuY3J5cHRpb24ta2V5ISE=",
    }

    def show(**extra):
        result = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env={**base, **extra},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    assert show() == "False False None"
    assert (
        show(DJANGO_SECURE_COOKIES="1", DJANGO_SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto")
        == "True True ('HTTP_X_FORWARDED_PROTO', 'https')"
    )


def test_bootstrap_creates_superuser_and_demo_org_once(db, monkeypatch):
    for name in (
        "DJANGO_SUPERUSER_USERNAME",
        "DJANGO_SUPERUSER_PASSWORD",
        "DJANGO_SUPERUSER_EMAIL",
    ):
        monkeypatch.delenv(name, raising=False)
    out = StringIO()
    call_command("bootstrap", stdout=out)
    password = re.search(r"password: (\S+)", out.getvalue()).group(1)
    user = User.objects.get(username="admin")
    assert user.is_superuser and user.check_password(password)
    demo = Organization.objects.get(slug="demo")
    assert Membership.objects.get(organization=demo, user=user).role == Role.OWNER

    again = StringIO()
    call_command("bootstrap", stdout=again)
    assert "password:" not in again.getvalue()
    assert User.objects.count() == 1 and Organization.objects.count() == 1


def test_bootstrap_takes_credentials_from_environment(db, monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_USERNAME", "operator")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "a-long-password-1")
    monkeypatch.setenv("DJANGO_SUPERUSER_EMAIL", "ops@example.com")
    out = StringIO()
    call_command("bootstrap", stdout=out)
    assert "a-long-password-1" not in out.getvalue()
    user = User.objects.get(username="operator")
    assert user.email == "ops@example.com" and user.check_password("a-long-password-1")


def test_api_docs_are_served_without_a_cdn(client, db):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "cdn.jsdelivr" not in html and "swagger-ui" in html
    assert client.get("/api/redoc/").status_code == 200


def _require_postgres():
    if connection.vendor != "postgresql":
        if REQUIRE_SERVICES:
            pytest.fail("REQUIRE_SERVICES is set but the tests do not run on PostgreSQL")
        pytest.skip("needs DATABASE_URL pointing at PostgreSQL")


@pytest.mark.services
def test_services_are_the_real_ones(db):
    """In CI the suite must run on PostgreSQL and Redis, never on the embedded fallbacks."""
    from django.conf import settings
    from django.core.cache import cache

    _require_postgres()
    assert settings.REDIS_URL
    assert settings.CACHES["default"]["BACKEND"] == "django_redis.cache.RedisCache"
    cache.set("ci:probe", 41)
    assert cache.incr("ci:probe") == 42


def test_architecture_sql_runs_as_written(db):
    _require_postgres()
    openrouter = Provider.objects.create(name="OpenRouter", slug="openrouter")
    Model.objects.create(
        provider=openrouter,
        provider_model_id="openai/gpt-4o",
        model_name="GPT-4o",
        pricing_prompt=Decimal("0.0000025"),
        context_length=128000,
        supports_vision=True,
    )
    Model.objects.create(
        provider=openrouter, provider_model_id="old/model", model_name="Old", is_active=False
    )
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT p.slug AS provider, m.model_name, m.provider_model_id AS api_name, m.context_length,
       ROUND(m.pricing_prompt::numeric * 1000000, 2) AS price_per_1m_input_tokens
FROM models m JOIN providers p ON m.provider_id = p.id
WHERE p.slug = 'openrouter' AND m.is_active = true ORDER BY m.model_name LIMIT 10;"""
        )
        assert cursor.fetchall() == [
            ("openrouter", "GPT-4o", "openai/gpt-4o", 128000, Decimal("2.50"))
        ]
        cursor.execute(
            "SELECT model_name, provider_model_id FROM models WHERE supports_vision = true AND is_active = true;"
        )
        assert cursor.fetchall() == [("GPT-4o", "openai/gpt-4o")]
        cursor.execute(
            """SELECT p.name, COUNT(m.id) AS total_models, COUNT(CASE WHEN m.is_active THEN 1 END) AS active_models
FROM providers p LEFT JOIN models m ON p.id = m.provider_id GROUP BY p.id, p.name;"""
        )
        assert cursor.fetchall() == [("OpenRouter", 2, 1)]
