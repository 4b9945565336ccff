"""Settings for the test suite: the base settings with test-only secrets and fast hashing."""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-secret-key-not-for-production-use-0123456789")
os.environ.setdefault("FIELD_ENCRYPTION_KEY", "dGVzdC1vbmx5LWZpZWxkLWVuY3J5cHRpb24ta2V5ISE=")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")

from . import base as _base
from .base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# The suite runs with DEBUG off but is no deployment: an open /metrics is expected here.
SILENCED_SYSTEM_CHECKS = ["gateway.W001"]

# The suite's fake upstreams listen on 127.0.0.1; the outbound policy tests switch this
# off to prove what it refuses.
GATEWAY_ALLOW_PRIVATE_UPSTREAMS = True

# Under pytest-xdist every worker process gets a Redis database of its own: the suite
# empties the cache around each test (FLUSHDB), keeps rate-limit counters and a Celery
# queue in Redis, and hears tenant-change notices on a channel named after the database
# number. Worker gwN uses REDIS_URL's database + N, so a run with -n 2 on
# redis://host/14 uses databases 14 and 15. pytest-django gives each worker its own test
# database the same way (a _gwN suffix).
_XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")


def _worker_redis_url(url: str) -> str:
    """``url`` with its database number moved up by the xdist worker's number."""
    if not url or not _XDIST_WORKER:
        return url
    from redis.connection import parse_url

    worker = int(_XDIST_WORKER.removeprefix("gw"))
    base, _, path = url.partition("://")
    authority, _, _database = path.partition("/")
    database = parse_url(url).get("db", 0) + worker
    return f"{base}://{authority}/{database}"


if _XDIST_WORKER and _base.REDIS_URL:
    REDIS_URL = _worker_redis_url(_base.REDIS_URL)
    _base.CACHES["default"]["LOCATION"] = REDIS_URL  # the same dict as CACHES here
    if _base.REDIS_URL == _base.CELERY_BROKER_URL:
        CELERY_BROKER_URL = REDIS_URL
    if _base.REDIS_URL == _base.CELERY_RESULT_BACKEND:
        CELERY_RESULT_BACKEND = REDIS_URL
    GATEWAY_LIMIT_REDIS_URL = _worker_redis_url(_base.GATEWAY_LIMIT_REDIS_URL)
