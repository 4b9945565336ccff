# Two stages: wheels are built with the compilers of the full image, the runtime image gets
# only the installed packages and the application, and runs as an unprivileged user.

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /venv
COPY requirements.txt /tmp/requirements.txt
RUN /venv/bin/pip install -r /tmp/requirements.txt

FROM python:3.11-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH="/venv/bin:$PATH" \
    CELERY_STATE_DIR=/tmp/modelhub-celery
RUN groupadd --system --gid 10001 modelhub \
    && useradd --system --uid 10001 --gid modelhub --home-dir /app --shell /usr/sbin/nologin modelhub
COPY --from=build /venv /venv
WORKDIR /app
# .dockerignore keeps .env, .venv, db.sqlite3, tests and the git history out of this copy.
COPY --chown=root:root . .
# Static files are collected at build time with throwaway secrets that never reach a
# running container (DEBUG is off there and the real ones come from the environment).
RUN DJANGO_SECRET_KEY=collectstatic-only FIELD_ENCRYPTION_KEY=Y29sbGVjdHN0YXRpYy1vbmx5LWtleS0wMTIzNDU2Nzg= \
    python manage.py collectstatic --noinput --verbosity 0
# The code is owned by root and read-only for the service user.
USER modelhub
EXPOSE 8000
CMD ["uvicorn", "config.asgi:application", "--host", "0.0.0.0", "--port", "8000", "--workers", "4", "--proxy-headers"]
