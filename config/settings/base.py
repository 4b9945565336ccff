"""Settings for the platform, read from the environment.

Every optional integration switches on when its variable is set: ``DATABASE_URL``
(PostgreSQL instead of the SQLite file), ``REDIS_URL`` (Redis cache and Celery broker
instead of local memory and eager tasks). Production secrets have no defaults.
"""

from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
env_file = BASE_DIR / ".env"
if env_file.exists():
    environ.Env.read_env(str(env_file))

DEBUG = env.bool("DJANGO_DEBUG", default=False)

# A development key is allowed only while DEBUG is on; production must bring its own.
_DEV_SECRET_KEY = "django-insecure-development-only-key-do-not-use-in-production"
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default=_DEV_SECRET_KEY if DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off.")

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
    raise ImproperlyConfigured(
        "FIELD_ENCRYPTION_KEY must be set when DJANGO_DEBUG is off "
        '(generate one with: python -c "from cryptography.fernet import Fernet; '
        'print(Fernet.generate_key().decode())").'
    )

# Bearer token for the operator endpoints (catalog sync, cache admin). Unset disables them.
ADMIN_API_KEY = env.str("ADMIN_API_KEY", default="")

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
    "modelhub",
    "sync",
    "catalog",
    "gateway",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
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
CELERY_BEAT_SCHEDULE: dict = {}

# --- Public catalog ---------------------------------------------------------------------
# Read-only OpenRouter-shaped views under /catalog/ with Hugging Face enrichment.

# Hugging Face model API (https://huggingface.co/api/models/{id}); HF_TOKEN is optional
# for public repositories and only raises the rate limit.
HUGGINGFACE_API_URL = env.str("HUGGINGFACE_API_URL", default="https://huggingface.co/api")
HUGGINGFACE_TOKEN = env.str("HF_TOKEN", default="")
HUGGINGFACE_TIMEOUT_SECONDS = env.float("HUGGINGFACE_TIMEOUT_SECONDS", default=2.0)
# ``expand[]`` properties asked for; the Hub then returns only these (a smaller body than
# the full model card). Empty asks for the full record, which parses just as well.
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
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
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
        "Management API of a self-hosted, multi-tenant LLM platform: organizations, "
        "providers, models, provider credentials, client keys, routing rules and metrics. "
        "Authenticate with a JWT from /api/auth/token/ and pick the organization with the "
        "X-Organization header when you belong to several."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and ReDoc assets come from the installed sidecar package, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "QuotaPeriodEnum": "modelhub.models.QuotaPeriod",
        "HealthStatusEnum": "modelhub.models.HealthStatus",
        "RoleEnum": "modelhub.models.Role",
        "ModelTypeEnum": "modelhub.models.ModelType",
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

if not DEBUG:
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)
    CSRF_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)

# --- Gateway ------------------------------------------------------------------------
# Attempts across candidates when no routing rule says otherwise.
GATEWAY_DEFAULT_MAX_ATTEMPTS = env.int("GATEWAY_DEFAULT_MAX_ATTEMPTS", default=3)
# Let global providers use the key named by their environment variable (api_key_env_var)
# when an organization has no credential of its own for them.
GATEWAY_ALLOW_ENV_CREDENTIALS = env.bool("GATEWAY_ALLOW_ENV_CREDENTIALS", default=False)
# Consecutive upstream failures before a credential is marked unhealthy, and the first
# cooldown (it doubles with each further failure, up to an hour).
CREDENTIAL_FAILURE_THRESHOLD = env.int("CREDENTIAL_FAILURE_THRESHOLD", default=3)
CREDENTIAL_COOLDOWN_SECONDS = env.int("CREDENTIAL_COOLDOWN_SECONDS", default=30)

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
CELERY_BEAT_SCHEDULE["sync-all-providers"] = {
    "task": "sync.sync_all",
    "schedule": timedelta(hours=SYNC_INTERVAL_HOURS),
    "kwargs": {"trigger": "beat"},
}
# Client key lookups and routing plans are cached per process for this long: a revoked
# key stops working, and a changed rule applies, within these bounds.
GATEWAY_KEY_CACHE_SECONDS = env.float("GATEWAY_KEY_CACHE_SECONDS", default=5.0)
GATEWAY_PLAN_CACHE_SECONDS = env.float("GATEWAY_PLAN_CACHE_SECONDS", default=2.0)
GATEWAY_MODEL_LIST_CACHE_SECONDS = env.float("GATEWAY_MODEL_LIST_CACHE_SECONDS", default=10.0)
# Upstream calls: connect timeout, and the longest silence while reading (seconds).
GATEWAY_UPSTREAM_CONNECT_TIMEOUT = env.float("GATEWAY_UPSTREAM_CONNECT_TIMEOUT", default=5.0)
GATEWAY_UPSTREAM_READ_TIMEOUT = env.float("GATEWAY_UPSTREAM_READ_TIMEOUT", default=120.0)
GATEWAY_UPSTREAM_MAX_CONNECTIONS = env.int("GATEWAY_UPSTREAM_MAX_CONNECTIONS", default=1000)
GATEWAY_UPSTREAM_KEEPALIVE_SECONDS = env.float("GATEWAY_UPSTREAM_KEEPALIVE_SECONDS", default=30.0)
# Retries of one candidate on connection errors, timeouts, 429 and 5xx before falling
# back: exponential backoff from GATEWAY_RETRY_BACKOFF seconds; a Retry-After longer
# than GATEWAY_RETRY_MAX_WAIT moves on to the next candidate at once.
GATEWAY_RETRIES_PER_CANDIDATE = env.int("GATEWAY_RETRIES_PER_CANDIDATE", default=1)
GATEWAY_RETRY_BACKOFF = env.float("GATEWAY_RETRY_BACKOFF", default=0.2)
GATEWAY_RETRY_MAX_WAIT = env.float("GATEWAY_RETRY_MAX_WAIT", default=2.0)
# Completion tokens assumed for limits and budget reservations when a request sets no
# max_tokens; the reservation is corrected to actual usage when the request ends.
GATEWAY_ESTIMATED_COMPLETION_TOKENS = env.int("GATEWAY_ESTIMATED_COMPLETION_TOKENS", default=256)
# Where rate-limit and budget counters live: "auto" (Redis when REDIS_URL is set, the
# database otherwise), "redis" or "database". GATEWAY_LIMIT_REDIS_URL overrides REDIS_URL.
GATEWAY_LIMIT_BACKEND = env.str("GATEWAY_LIMIT_BACKEND", default="auto")
GATEWAY_LIMIT_REDIS_URL = env.str("GATEWAY_LIMIT_REDIS_URL", default="")
# Connections per process to that Redis, and how long a request waits for a free one.
GATEWAY_LIMIT_REDIS_CONNECTIONS = env.int("GATEWAY_LIMIT_REDIS_CONNECTIONS", default=64)
GATEWAY_LIMIT_REDIS_WAIT_SECONDS = env.float("GATEWAY_LIMIT_REDIS_WAIT_SECONDS", default=5.0)
# Threads (each with its own database connection) that run the gateway's ORM calls.
GATEWAY_DB_THREADS = env.int("GATEWAY_DB_THREADS", default=4)
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
