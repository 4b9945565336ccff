"""Settings for the test suite: the base settings with test-only secrets and fast hashing."""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-secret-key-not-for-production-use-0123456789")
os.environ.setdefault("FIELD_ENCRYPTION_KEY", "dGVzdC1vbmx5LWZpZWxkLWVuY3J5cHRpb24ta2V5ISE=")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")

from .base import *  # noqa: E402,F401,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# The suite runs with DEBUG off but is no deployment: an open /metrics is expected here.
SILENCED_SYSTEM_CHECKS = ["gateway.W001"]

# The suite's fake upstreams listen on 127.0.0.1; the outbound policy tests switch this
# off to prove what it refuses.
GATEWAY_ALLOW_PRIVATE_UPSTREAMS = True
