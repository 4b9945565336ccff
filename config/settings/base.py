"""Settings for the platform, read from the environment.

Every optional integration switches on when its variable is set: ``DATABASE_URL``
(PostgreSQL instead of the SQLite file), ``REDIS_URL`` (Redis cache and Celery broker
instead of local memory and eager tasks). Production secrets have no defaults.
"""

import os
import sys
import tempfile
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent


class _SetVariables(Mapping):
    """``os.environ`` without its empty values.

    ``.env.example`` lists every variable with an empty value where the default applies
    (``DJANGO_SECRET_KEY=``, ``CELERY_BROKER_URL=``); a copied file, or a compose file's
    ``${NAME:-}``, must mean "unset", not "the empty string".
    """

    def __getitem__(self, name: str) -> str:
        value = os.environ[name]
        if value == "":
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[str]:
        return (name for name, value in os.environ.items() if value != "")

    def __len__(self) -> int:
        return sum(1 for _ in self)


env = environ.Env()
env.ENVIRON = _SetVariables()
# Read wherever the process starts (manage.py, celery, uvicorn): the real environment wins.
ENV_FILE = Path(os.environ.get("DJANGO_ENV_FILE") or BASE_DIR / ".env")
if ENV_FILE.exists():
    environ.Env.read_env(str(ENV_FILE))

DEBUG = env.bool("DJANGO_DEBUG", default=False)


def _refuse_to_start(message: str) -> None:
    """Stop with one line an operator can act on instead of a settings traceback."""
    sys.stderr.write(f"ModelHub configuration error: {message}\n")
    raise SystemExit(2)


# A development key is allowed only while DEBUG is on; production must bring its own.
_DEV_SECRET_KEY = "django-insecure-development-only-key-do-not-use-in-production"
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default=_DEV_SECRET_KEY if DEBUG else "")
if not SECRET_KEY:
    _refuse_to_start(
        "DJANGO_SECRET_KEY is not set (required when DJANGO_DEBUG is off); generate one with: "
        'python -c "import secrets; print(secrets.token_urlsafe(50))" '
        "(or set DJANGO_DEBUG=1 for development)"
    )

ALLOWED_HOSTS = env.list(
    "DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"] if DEBUG else []
)
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

# Fernet key(s) used to encrypt provider credentials at rest. Several keys separated by
# commas allow rotation: the first encrypts, all of them decrypt.
_DEV_FIELD_ENCRYPTION_KEY = "dGhpcy1pcy1hLWRldmVsb3BtZW50LW9ubHkta2V5ISE="
FIELD_ENCRYPTION_KEY = env.str(
    "FIELD_ENCRYPTION_KEY", default=_DEV_FIELD_ENCRYPTION_KEY if DEBUG else ""
)
if not FIELD_ENCRYPTION_KEY:
    _refuse_to_start(
        "FIELD_ENCRYPTION_KEY is not set (required when DJANGO_DEBUG is off); generate one "
        'with: python -c "from cryptography.fernet import Fernet; '
        'print(Fernet.generate_key().decode())" (or set DJANGO_DEBUG=1 for development)'
    )

# Bearer token for the operator endpoints (catalog sync, cache admin). Unset disables them.
ADMIN_API_KEY = env.str("ADMIN_API_KEY", default="")
# Bearer token that /metrics requires (Prometheus: authorization.credentials). Unset
# leaves /metrics open, which production warns about at start (gateway.W001).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

# The organization ``bootstrap`` creates. The client keys in API_KEYS belong to it, and the
# provider keys of the environment (OPENAI_API_KEY, ...) serve it without a credential row.
DEFAULT_ORGANIZATION_SLUG = env.str("DEFAULT_ORGANIZATION_SLUG", default="demo")
# Client keys of the gateway given by the operator (comma-separated). ``bootstrap`` stores
# their SHA-256 digests as client keys of the default organization; the values themselves
# are never written anywhere. With DEBUG on and none given, "test-key" works.
DEV_CLIENT_KEY = "test-key"
_GIVEN_API_KEYS = env.list("API_KEYS", default=[])
API_KEYS = _GIVEN_API_KEYS or ([DEV_CLIENT_KEY] if DEBUG else [])
API_KEYS_DEVELOPMENT_DEFAULT = DEBUG and not _GIVEN_API_KEYS
API_KEYS_MIN_LENGTH = 20

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework_simplejwt",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_filters",
    "axes",
    "django_celery_beat",
    # Before modelhub: its admin replaces auditlog's page for the audit log.
    "auditlog",
    "modelhub",
    "sync",
    "catalog",
    "gateway",
]

MIDDLEWARE = [
    # First: probes come from inside (load balancer, orchestrator) with whatever Host
    # header they like, so they are answered before host validation.
    "config.health.probe_middleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Who changed what from where, for the audit log (see modelhub/audit.py).
    "modelhub.audit.AuditMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last: turns a login that axes refused into the lockout response.
    "axes.middleware.AxesMiddleware",
]

# Axes first: it refuses a locked-out login before the password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "config.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = "config.wsgi.application"

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DJANGO_CONN_MAX_AGE", default=0))
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers proceed while the sync or the gateway writes.
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].setdefault(
        "init_command", "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
    )
    DATABASES["default"]["OPTIONS"].setdefault("transaction_mode", "IMMEDIATE")
    DATABASES["default"]["OPTIONS"].setdefault("timeout", 20)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "modelhub.User"

REDIS_URL = env.str("REDIS_URL", default="")

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
            "KEY_PREFIX": "modelhub",
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "modelhub",
        }
    }

# Celery: a Redis broker when REDIS_URL is set, otherwise tasks run eagerly in-process.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "memory://")
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=REDIS_URL or "cache+memory://")
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = 300
CELERY_TASK_TIME_LIMIT = 360
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# The schedule lives in the database (django-celery-beat): operators change it in the
# admin without a restart; a data migration (sync 0001) creates the default entry.
# config.scheduler.HeartbeatScheduler is that scheduler plus a heartbeat file for the
# health check of the beat process.
CELERY_BEAT_SCHEDULER = "config.scheduler.HeartbeatScheduler"
# Where Celery processes keep local state (beat's heartbeat; a file-based schedule if an
# operator switches back to one): outside the repository, in a temporary directory.
CELERY_STATE_DIR = Path(
    env.str("CELERY_STATE_DIR", default=str(Path(tempfile.gettempdir()) / "modelhub-celery"))
)

# --- Public catalog ---------------------------------------------------------------------
# Read-only OpenRouter-shaped views under /catalog/ with Hugging Face enrichment.

# Hugging Face model API (https://huggingface.co/api/models/{id}); HF_TOKEN is optional
# for public repositories and only raises the rate limit.
HUGGINGFACE_API_URL = env.str("HUGGINGFACE_API_URL", default="https://huggingface.co/api")
# HUGGINGFACE_API_TOKEN is another name for HF_TOKEN (the name some deployments use).
HUGGINGFACE_TOKEN = env.str("HF_TOKEN", default=env.str("HUGGINGFACE_API_TOKEN", default=""))
if HUGGINGFACE_TOKEN and not os.environ.get("HF_TOKEN"):
    # The sync registry and the gateway read provider keys by their variable name.
    os.environ["HF_TOKEN"] = HUGGINGFACE_TOKEN
HUGGINGFACE_TIMEOUT_SECONDS = env.float("HUGGINGFACE_TIMEOUT_SECONDS", default=2.0)
# ``expand[]`` properties asked for; the Hub then returns only these (a smaller body than
# the full model card). "*" asks for the full record, which parses just as well (an empty
# value means unset, like everywhere in these settings).
HUGGINGFACE_EXPAND = env.list(
    "HUGGINGFACE_EXPAND",
    default=[
        "author",
        "downloads",
        "likes",
        "gated",
        "private",
        "lastModified",
        "pipeline_tag",
        "safetensors",
        "inferenceProviderMapping",
    ],
)
if HUGGINGFACE_EXPAND == ["*"]:
    HUGGINGFACE_EXPAND = []
# A list request fetches at most this many never-seen models live; the rest come from the
# store or are fetched in the background, so a cold page still answers promptly.
HUGGINGFACE_LIVE_FETCHES_PER_REQUEST = env.int("HUGGINGFACE_LIVE_FETCHES_PER_REQUEST", default=3)
HUGGINGFACE_FRESH_SECONDS = env.int("HUGGINGFACE_FRESH_SECONDS", default=3600)
# Transient failures (outage, 429, 5xx) are retried after this long instead of an hour.
HUGGINGFACE_RETRY_SECONDS = env.int("HUGGINGFACE_RETRY_SECONDS", default=600)
# Stale entries are refreshed by a Celery task. With eager Celery (no worker) that task would
# run inside the request, so by default it is only queued when a real broker is configured.
HUGGINGFACE_BACKGROUND_REFRESH = env.bool(
    "HUGGINGFACE_BACKGROUND_REFRESH", default=not CELERY_TASK_ALWAYS_EAGER
)

# OpenRouter's per-model endpoint list is merged into model details only with a key.
OPENROUTER_API_URL = env.str("OPENROUTER_API_URL", default="https://openrouter.ai/api/v1")
OPENROUTER_API_KEY = env.str("OPENROUTER_API_KEY", default="")
OPENROUTER_ENDPOINTS_TIMEOUT_SECONDS = env.float(
    "OPENROUTER_ENDPOINTS_TIMEOUT_SECONDS", default=2.0
)
OPENROUTER_ENDPOINTS_CACHE_SECONDS = env.int("OPENROUTER_ENDPOINTS_CACHE_SECONDS", default=300)

CATALOG_PROVIDERS_CACHE_SECONDS = env.int("CATALOG_PROVIDERS_CACHE_SECONDS", default=3600)
CATALOG_MODELS_CACHE_SECONDS = env.int("CATALOG_MODELS_CACHE_SECONDS", default=1800)
# Auto-detection order of /catalog/model/{provider}/{model} without ``gateway``: these
# gateways first, then the provider named in the path, then every other provider by slug.
CATALOG_GATEWAY_PREFERENCE = env.list(
    "CATALOG_GATEWAY_PREFERENCE",
    default=["openrouter", "portkey", "featherless", "deepinfra", "chutes"],
)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").exists() else []
# The ASGI server serves /static/ itself (admin, API docs, dashboard assets): from the
# app directories while DEBUG is on, from STATIC_ROOT after collectstatic otherwise.
SERVE_STATIC = env.bool("DJANGO_SERVE_STATIC", default=True)

LOGIN_URL = "/admin/login/"

# --- Login throttling (django-axes) -------------------------------------------------------
# Failed logins (the admin and /api/auth/token/) are counted per account and per client
# address; once either count reaches AXES_FAILURE_LIMIT within the cool-off, logins for
# that account or from that address answer 429 with Retry-After until it ends.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=10)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username"], ["ip_address"]]
# Attempts during a lockout do not extend it, so Retry-After holds.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# A successful login forgives the failures against that account (not the address's).
AXES_RESET_ON_SUCCESS = env.bool("AXES_RESET_ON_SUCCESS", default=True)
AXES_HANDLER = "modelhub.login_throttle.LoginAttemptHandler"
AXES_LOCKOUT_CALLABLE = "modelhub.login_throttle.lockout_response"
AXES_HTTP_RESPONSE_CODE = 429
# Successful logins are not logged (a JWT login would otherwise also create a session).
AXES_DISABLE_ACCESS_LOG = env.bool("AXES_DISABLE_ACCESS_LOG", default=True)
# The client address: REMOTE_ADDR by default, which a client cannot forge. Behind a
# reverse proxy every client has the proxy's address; then name the header the proxy sets
# and how many proxies append to it (e.g. HTTP_X_FORWARDED_FOR,REMOTE_ADDR and 1). Never
# trust a forwarded header that the proxy does not overwrite: clients could pick their
# address and escape the per-address limit.
AXES_IPWARE_META_PRECEDENCE_ORDER = env.list(
    "AXES_IPWARE_META_PRECEDENCE_ORDER", default=["REMOTE_ADDR"]
)
AXES_IPWARE_PROXY_COUNT = env.int("AXES_IPWARE_PROXY_COUNT", default=None)

# --- Audit log (django-auditlog) -----------------------------------------------------------
# Changes to organizations, members, the catalog, credentials, client keys and routing
# rules are recorded with their actor and client address (the address as login throttling
# resolves it, with the AXES_IPWARE_* settings above); modelhub/audit.py lists what.
AUDITLOG_LOGENTRY_MODEL = "modelhub.AuditLogEntry"
# Changes as JSON values (numbers, null, lists) rather than their text.
AUDITLOG_STORE_JSON_CHANGES = True
# Fixtures loaded with loaddata are not anybody's change.
AUDITLOG_DISABLE_ON_RAW_SAVE = True
# django-auditlog's migrations create its own log table even when the model is replaced
# (AUDITLOG_LOGENTRY_MODEL), and that unused table's key to content types makes flushing
# the database fail on PostgreSQL. Its only model being replaced, the app needs no table.
MIGRATION_MODULES = {"auditlog": None}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework_simplejwt.authentication.JWTAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": [
        "modelhub.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_FILTER_BACKENDS": [
        "modelhub.api.filters.FilterBackend",
        "modelhub.api.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "modelhub.api.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "modelhub.api.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "modelhub.api.exceptions.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]
    + (["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
}

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.int("JWT_ACCESS_MINUTES", default=30)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env.int("JWT_REFRESH_DAYS", default=7)),
    "SIGNING_KEY": SECRET_KEY,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "ModelHub API",
    "DESCRIPTION": (
        "A self-hosted, multi-tenant LLM platform. The management API (/api/modelhub/: "
        "organizations, providers, models, provider credentials, client keys, routing "
        "rules and metrics) takes a JWT from /api/auth/token/; pick the organization with "
        "the X-Organization header when you belong to several. The OpenAI-compatible "
        "gateway (/v1/) takes a client key, the operator endpoints (/admin/model-sync/ "
        "and the Hugging Face cache) the ADMIN_API_KEY; the catalog (/catalog/) and the "
        "probes are public."
    ),
    "VERSION": "1.0.0",
    # Also the order of the sections in Swagger UI and ReDoc.
    "TAGS": [
        {"name": "auth", "description": "JSON Web Tokens for the management API."},
        {"name": "modelhub", "description": "The management API of an organization."},
        {"name": "gateway", "description": "OpenAI-compatible endpoints, with a client key."},
        {"name": "catalog", "description": "The public catalog, in OpenRouter's shapes."},
        {"name": "operators", "description": "Catalog sync and caches, with ADMIN_API_KEY."},
        {"name": "probes", "description": "Health probes and Prometheus metrics."},
    ],
    "SERVE_INCLUDE_SCHEMA": False,
    # The gateway, catalog, operator and probe views are plain Django views; each app
    # declares their operations in its openapi.py and this hook adds them.
    "PREPROCESSING_HOOKS": ["config.openapi.declared_endpoints"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.openapi.describe_token_fields",
    ],
    # Tags from the first segment after /api/ (auth, modelhub); the others set their own.
    "SCHEMA_PATH_PREFIX": "/api",
    # How the non-JWT endpoints authenticate; modelhub.api.openapi names them per operation.
    "APPEND_COMPONENTS": {
        "securitySchemes": {
            "clientKey": {
                "type": "http",
                "scheme": "bearer",
                "description": (
                    "A client key of the gateway (`mh-...`), created with POST "
                    "/api/modelhub/client-keys/, sent as `Authorization: Bearer <key>`."
                ),
            },
            "clientKeyHeader": {
                "type": "apiKey",
                "in": "header",
                "name": "X-Api-Key",
                "description": "The same client key sent as `X-Api-Key: <key>` instead.",
            },
            "adminKey": {
                "type": "http",
                "scheme": "bearer",
                "description": (
                    "The operator key, the value of the ADMIN_API_KEY setting, sent as "
                    "`Authorization: Bearer <key>`. Unset, the operator endpoints answer 503."
                ),
            },
        }
    },
    # Swagger UI and ReDoc assets come from the installed sidecar package, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Nothing from the internet: no validator badge, system fonts instead of Google's
    # (templates/drf_spectacular/redoc.html drops the font links), no remote logo.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "REDOC_UI_SETTINGS": {
        "hideLoading": True,
        "theme": {
            "typography": {
                "fontFamily": "system-ui, -apple-system, 'Segoe UI', sans-serif",
                "headings": {"fontFamily": "system-ui, -apple-system, 'Segoe UI', sans-serif"},
                "code": {"fontFamily": "ui-monospace, 'DejaVu Sans Mono', monospace"},
            }
        },
    },
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "QuotaPeriodEnum": "modelhub.models.QuotaPeriod",
        "HealthStatusEnum": "modelhub.models.HealthStatus",
        "RoleEnum": "modelhub.models.Role",
        "ModelTypeEnum": "modelhub.models.ModelType",
        "SyncStatusEnum": "modelhub.models.SyncStatus",
        "WebhookEventEnum": "modelhub.models.WebhookEvent",
        "BudgetPeriodEnum": "modelhub.models.BudgetPeriod",
        "DeliveryStatusEnum": "modelhub.models.DeliveryStatus",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

SECURE_CONTENT_TYPE_NOSNIFF = True
# Behind a TLS-terminating proxy Django sees plain HTTP; name the header the proxy sets
# (e.g. X-Forwarded-Proto) and requests whose header says "https" count as secure. Only
# set it when the proxy always sets or strips that header: clients could forge it otherwise.
_PROXY_SSL_HEADER = env.str("DJANGO_SECURE_PROXY_SSL_HEADER", default="")
if _PROXY_SSL_HEADER:
    SECURE_PROXY_SSL_HEADER = (
        "HTTP_" + _PROXY_SSL_HEADER.upper().replace("-", "_").removeprefix("HTTP_"),
        "https",
    )
# Secure cookies are never sent back over plain HTTP, so they are only on when the operator
# says the site is served over HTTPS (directly or behind that proxy).
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

# --- Gateway ------------------------------------------------------------------------
# Attempts across candidates when no routing rule says otherwise.
GATEWAY_DEFAULT_MAX_ATTEMPTS = env.int("GATEWAY_DEFAULT_MAX_ATTEMPTS", default=3)
# Let global providers use the key named by their environment variable (api_key_env_var)
# when an organization has no credential of its own for them.
GATEWAY_ALLOW_ENV_CREDENTIALS = env.bool("GATEWAY_ALLOW_ENV_CREDENTIALS", default=False)
# The outbound address policy (modelhub.outbound) refuses upstreams on loopback, private
# networks and CGNAT space unless this is on: for self-hosted Ollama or vLLM on the same
# machine or a private network. Link-local and cloud metadata addresses stay refused.
# On by default in development (`make run`, DJANGO_DEBUG=1), off in production.
GATEWAY_ALLOW_PRIVATE_UPSTREAMS = env.bool("GATEWAY_ALLOW_PRIVATE_UPSTREAMS", default=DEBUG)
# Consecutive upstream failures before a credential is marked unhealthy, and the first
# cooldown (it doubles with each further failure, up to an hour).
CREDENTIAL_FAILURE_THRESHOLD = env.int("CREDENTIAL_FAILURE_THRESHOLD", default=3)
CREDENTIAL_COOLDOWN_SECONDS = env.int("CREDENTIAL_COOLDOWN_SECONDS", default=30)
# Days a response of POST /v1/responses stored for its organization (``store``, on by
# default) is kept for previous_response_id and GET /v1/responses/{id}; a daily task
# removes older ones.
RESPONSES_RETENTION_DAYS = env.int("RESPONSES_RETENTION_DAYS", default=30)

# Webhooks (budget thresholds, credential health): seconds to wait for the receiver's
# connection and for its answer; attempts per event; the first retry's delay in seconds
# (it doubles with each further retry). Network errors and 5xx answers are retried. Their
# URLs pass the same outbound address policy as providers' base URLs
# (GATEWAY_ALLOW_PRIVATE_UPSTREAMS decides about loopback and private networks).
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", default=10.0)
WEBHOOK_MAX_ATTEMPTS = env.int("WEBHOOK_MAX_ATTEMPTS", default=6)
WEBHOOK_RETRY_BACKOFF_SECONDS = env.float("WEBHOOK_RETRY_BACKOFF_SECONDS", default=30.0)

# --- Catalog sync ---------------------------------------------------------------------
# Hours between two scheduled syncs of every provider (fractions allowed: 0.5 = 30 min).
SYNC_INTERVAL_HOURS = env.float("SYNC_INTERVAL_HOURS", default=6.0)
# Seconds to wait for one page of a provider's model list.
SYNC_HTTP_TIMEOUT = env.float("SYNC_HTTP_TIMEOUT", default=30.0)
# Upper bound on pages read from one provider; a longer list fails instead of looping.
SYNC_MAX_PAGES = env.int("SYNC_MAX_PAGES", default=100)
# A provider whose list shrinks below this fraction of its active models is not applied
# (an upstream glitch must not deactivate the catalog); only checked from this many models.
SYNC_SHRINK_GUARD_RATIO = env.float("SYNC_SHRINK_GUARD_RATIO", default=0.5)
SYNC_SHRINK_GUARD_MIN_MODELS = env.int("SYNC_SHRINK_GUARD_MIN_MODELS", default=20)
# A provider list longer than this is refused (a failed SyncRun, rows untouched), also
# with --force: an upstream bug or a hostile endpoint must not flood the catalog.
SYNC_MAX_RECORDS = env.int("SYNC_MAX_RECORDS", default=50_000)
# Hard and soft time limits of one provider's sync task, in seconds.
SYNC_TASK_TIME_LIMIT = env.int("SYNC_TASK_TIME_LIMIT", default=900)
# Longest a ``sync.sync_all`` run holds the lock that keeps two runs from overlapping.
SYNC_LOCK_SECONDS = env.int("SYNC_LOCK_SECONDS", default=SYNC_TASK_TIME_LIMIT)
# OPENAI_BASE_URL replaces the OpenAI provider's base URL for the catalog sync (the
# registry reads it) and for the gateway's calls (this mapping, by global provider slug).
OPENAI_BASE_URL = env.str("OPENAI_BASE_URL", default="").rstrip("/")
GATEWAY_PROVIDER_BASE_URLS = {"openai": OPENAI_BASE_URL} if OPENAI_BASE_URL else {}
# Client key lookups, routing plans and model lists are cached per process. Writes to
# keys, rules, credentials, providers and organizations drop the affected entries on every
# worker at once (through Redis pub/sub when REDIS_URL is set, in-process otherwise). A
# plan also ends when time alone changes it (a credential's cooldown ending, a used-up
# quota period rolling over). So these TTLs only bound what no write announces: the
# observed latencies that order some plans and, without Redis, other worker processes.
GATEWAY_KEY_CACHE_SECONDS = env.float("GATEWAY_KEY_CACHE_SECONDS", default=60.0)
GATEWAY_PLAN_CACHE_SECONDS = env.float("GATEWAY_PLAN_CACHE_SECONDS", default=30.0)
GATEWAY_MODEL_LIST_CACHE_SECONDS = env.float("GATEWAY_MODEL_LIST_CACHE_SECONDS", default=10.0)
# While a gateway process is not subscribed to those notices (Redis unreachable, or at
# start-up), its cache entries live at most this long, so staleness stays bounded.
GATEWAY_CACHE_DISCONNECTED_SECONDS = env.float("GATEWAY_CACHE_DISCONNECTED_SECONDS", default=2.0)
# How long a write waits for Redis to take a change notice before it logs and moves on.
TENANT_CHANGES_PUBLISH_TIMEOUT = env.float("TENANT_CHANGES_PUBLISH_TIMEOUT", default=0.5)
# Upstream calls (seconds): the connect timeout; the first-byte timeout of one attempt
# (a non-streaming answer's headers, a stream's first event: a silent upstream fails over
# after this long); and the longest silence between two chunks of a response that began.
GATEWAY_UPSTREAM_CONNECT_TIMEOUT = env.float("GATEWAY_UPSTREAM_CONNECT_TIMEOUT", default=5.0)
GATEWAY_UPSTREAM_FIRST_BYTE_TIMEOUT = env.float("GATEWAY_UPSTREAM_FIRST_BYTE_TIMEOUT", default=20.0)
GATEWAY_UPSTREAM_READ_TIMEOUT = env.float("GATEWAY_UPSTREAM_READ_TIMEOUT", default=120.0)
# The time one request may take across all its attempts, retries and backoff before the
# gateway answers 504: it caps each attempt's timeouts. It ends when a stream sends its
# first event (a long generation is not cut; only the read timeout applies then), so a
# non-streaming call must finish within it: stream long generations.
GATEWAY_REQUEST_DEADLINE = env.float("GATEWAY_REQUEST_DEADLINE", default=45.0)
GATEWAY_UPSTREAM_MAX_CONNECTIONS = env.int("GATEWAY_UPSTREAM_MAX_CONNECTIONS", default=1000)
GATEWAY_UPSTREAM_KEEPALIVE_SECONDS = env.float("GATEWAY_UPSTREAM_KEEPALIVE_SECONDS", default=30.0)
# Retries of one candidate on connection errors, timeouts, 429 and 5xx before falling
# back: exponential backoff from GATEWAY_RETRY_BACKOFF seconds; a Retry-After longer
# than GATEWAY_RETRY_MAX_WAIT moves on to the next candidate at once.
GATEWAY_RETRIES_PER_CANDIDATE = env.int("GATEWAY_RETRIES_PER_CANDIDATE", default=1)
GATEWAY_RETRY_BACKOFF = env.float("GATEWAY_RETRY_BACKOFF", default=0.2)
GATEWAY_RETRY_MAX_WAIT = env.float("GATEWAY_RETRY_MAX_WAIT", default=2.0)
# Completion tokens assumed for the tokens-per-minute reservation when a request sets no
# max_tokens; the reservation is corrected to actual usage when the request ends.
GATEWAY_ESTIMATED_COMPLETION_TOKENS = env.int("GATEWAY_ESTIMATED_COMPLETION_TOKENS", default=256)
# Budgets reserve a request's worst case: its max_tokens, else the model's max output,
# else its context length minus the prompt, else this many completion tokens.
GATEWAY_BUDGET_MAX_OUTPUT_TOKENS = env.int("GATEWAY_BUDGET_MAX_OUTPUT_TOKENS", default=4096)
# Where rate-limit and budget counters live: "auto" (Redis when REDIS_URL is set, the
# database otherwise), "redis" or "database". GATEWAY_LIMIT_REDIS_URL overrides REDIS_URL.
GATEWAY_LIMIT_BACKEND = env.str("GATEWAY_LIMIT_BACKEND", default="auto")
GATEWAY_LIMIT_REDIS_URL = env.str("GATEWAY_LIMIT_REDIS_URL", default="")
# How long a call to that Redis (a batch of reservations and settles, on the one
# connection each process keeps) may take, and its connection to open, before the
# requests waiting for it give up.
GATEWAY_LIMIT_REDIS_WAIT_SECONDS = env.float("GATEWAY_LIMIT_REDIS_WAIT_SECONDS", default=5.0)
# Redis settles (a finished request's correction of what it reserved) are queued and
# written with the next reservations the process sends, or after
# GATEWAY_LIMIT_SETTLE_INTERVAL_MS milliseconds when none comes first, instead of one
# round trip per request; 0 settles each request as it ends. At most
# GATEWAY_LIMIT_SETTLE_MAX_PENDING settles wait (while Redis is unreachable): beyond, a
# request keeps its reservation (its worst case) until the counter's window ends.
GATEWAY_LIMIT_SETTLE_INTERVAL_MS = env.float("GATEWAY_LIMIT_SETTLE_INTERVAL_MS", default=5.0)
GATEWAY_LIMIT_SETTLE_MAX_PENDING = env.int("GATEWAY_LIMIT_SETTLE_MAX_PENDING", default=100_000)
# Threads (each with its own database connection) that run the gateway's ORM calls.
GATEWAY_DB_THREADS = env.int("GATEWAY_DB_THREADS", default=4)
# The longest a thread holds the interpreter before the event loop gets a turn (Python's
# switch interval, 5 ms by default): the database threads' work, metric writes above all,
# then delays the requests in flight by at most a few of these.
GATEWAY_SWITCH_INTERVAL_MS = env.float("GATEWAY_SWITCH_INTERVAL_MS", default=1.0)
# Metric rows are written in batches: every GATEWAY_METRICS_FLUSH_SECONDS or when
# GATEWAY_METRICS_BATCH_SIZE rows wait; at most GATEWAY_METRICS_MAX_PENDING are kept
# while the database is unreachable.
GATEWAY_METRICS_FLUSH_SECONDS = env.float("GATEWAY_METRICS_FLUSH_SECONDS", default=1.0)
GATEWAY_METRICS_BATCH_SIZE = env.int("GATEWAY_METRICS_BATCH_SIZE", default=500)
GATEWAY_METRICS_MAX_PENDING = env.int("GATEWAY_METRICS_MAX_PENDING", default=100_000)
# Largest request body the gateway reads, in bytes (prompts with long documents or images
# are large; the rest of the site keeps Django's DATA_UPLOAD_MAX_MEMORY_SIZE). Beyond it
# the gateway answers OpenAI's JSON 413 without reading further.
GATEWAY_MAX_BODY_BYTES = env.int("GATEWAY_MAX_BODY_BYTES", default=32 * 1024 * 1024)
# Seconds a shutdown waits for background work (limit settlement, health updates).
GATEWAY_SHUTDOWN_TIMEOUT = env.float("GATEWAY_SHUTDOWN_TIMEOUT", default=10.0)
# How old (seconds) the database gauges of /metrics (budget remaining, credential health,
# last sync) may get: a scrape re-reads them off the event loop once they are older.
METRICS_GAUGE_REFRESH_SECONDS = env.float("METRICS_GAUGE_REFRESH_SECONDS", default=15.0)
# Raw metric rows (the request log) older than this many days are deleted by a nightly
# Celery beat task, METRIC_RETENTION_BATCH_SIZE rows per statement and transaction, so
# neither the table nor a lock grows with the backlog. The daily rollups are kept.
METRIC_RETENTION_DAYS = env.int("METRIC_RETENTION_DAYS", default=90)
METRIC_RETENTION_BATCH_SIZE = env.int("METRIC_RETENTION_BATCH_SIZE", default=10_000)
# Most rows one CSV export of the request log writes; a last line says when more matched.
METRICS_EXPORT_MAX_ROWS = env.int("METRICS_EXPORT_MAX_ROWS", default=1_000_000)

if not DEBUG:
    _short = [key for key in API_KEYS if len(key) < API_KEYS_MIN_LENGTH]
    if _short:
        sys.stderr.write(
            f"ModelHub warning: {len(_short)} of API_KEYS is shorter than "
            f"{API_KEYS_MIN_LENGTH} characters; use long random keys "
            '(python -c "import secrets; print(secrets.token_urlsafe(32))").\n'
        )
