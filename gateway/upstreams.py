"""How one upstream is called: URL, headers and body per API format, and SSE parsing.

OpenAI-compatible upstreams get the caller's body with ``model`` rewritten to the
provider's id; Anthropic gets a Messages API request (``gateway.anthropic``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
from dataclasses import dataclass, field

from django.conf import settings

from gateway import anthropic, jsoncodec
from gateway.dialect import NativeRequest
from modelhub import outbound
from modelhub.crypto import decrypt_secret
from modelhub.models import ApiFormat, ModelType
from modelhub.redaction import scrub, secret_pattern

logger = logging.getLogger(__name__)

# Fields of the request that steer the gateway and mean nothing upstream.
GATEWAY_FIELDS = ("models", "route", "provider", "transforms")


class UnsupportedEndpoint(Exception):
    """The candidate's API cannot serve this endpoint (embeddings on Anthropic, say)."""


@dataclass(frozen=True)
class Endpoint:
    name: str
    path: str
    model_type: str


CHAT = Endpoint("chat.completions", "/chat/completions", ModelType.CHAT)
COMPLETIONS = Endpoint("completions", "/completions", ModelType.COMPLETION)
EMBEDDINGS = Endpoint("embeddings", "/embeddings", ModelType.EMBEDDING)


# Request headers that carry the credential: their values are scrubbed from upstream text.
SECRET_HEADERS = ("authorization", "x-api-key", "api-key")


@dataclass(frozen=True)
class UpstreamCall:
    url: str
    headers: dict[str, str] = field(repr=False)
    body: bytes = field(repr=False)
    translated: bool  # Anthropic: responses must be translated back
    # The call's secrets: the credential and the header values that carry it.
    secrets: tuple[str, ...] = field(default=(), repr=False)
    # The client's own request (``Dialect.native_request``): its answer goes back as it is.
    native: bool = False

    def scrub(self, text: str) -> str:
        """Upstream ``text`` without any of this call's secrets, bounded in length: the
        only way upstream text may reach a client, a log line or a stored row."""
        return scrub(text, pattern=secret_pattern(self.secrets))


def _secrets_of(secret: str | None, headers: dict[str, str]) -> tuple[str, ...]:
    sent = [value for name, value in headers.items() if name.lower() in SECRET_HEADERS]
    return tuple(value for value in (secret, *sent) if value)


def credential_secret(runtime, candidate) -> str | None:
    """The candidate's secret, decrypted in memory only (and kept there, per process)."""
    if candidate.credential_source == "organization" and candidate.credential is not None:
        credential = candidate.credential
        cache_key = (credential.pk, credential.encrypted_secret)
        secret = runtime.secrets.get(cache_key)
        if secret is None:
            secret = decrypt_secret(credential.encrypted_secret)
            runtime.secrets[cache_key] = secret
        return secret
    if candidate.credential_source == "environment":
        return os.environ.get(candidate.model.provider.api_key_env_var) or None
    return None


def _base_url(provider, *, version_suffix: str | None) -> str:
    # OPENAI_BASE_URL and the like replace a global provider's URL without a re-sync.
    override = (
        settings.GATEWAY_PROVIDER_BASE_URLS.get(provider.slug)
        if provider.organization_id is None
        else None
    )
    base = (override or provider.base_url).rstrip("/")
    if not base:
        raise UnsupportedEndpoint(f"Provider '{provider.slug}' has no base URL.")
    if version_suffix and not base.endswith(version_suffix):
        base += version_suffix
    return base


def build_call(
    runtime,
    candidate,
    endpoint: Endpoint,
    body: dict,
    *,
    stream: bool,
    native: NativeRequest | None = None,
) -> UpstreamCall:
    """The call to ``candidate``'s upstream for the internal chat ``body``, or for the
    client's ``native`` request when the upstream speaks the client's protocol."""
    model = candidate.model
    provider = model.provider
    secret = credential_secret(runtime, candidate)
    if provider.api_format == ApiFormat.ANTHROPIC:
        if endpoint is not CHAT:
            raise UnsupportedEndpoint(f"Anthropic models do not serve /v1{endpoint.path}.")
        if native is not None:
            # The client's Messages request, only steered to the provider's model.
            payload = {k: v for k, v in native.body.items() if k not in GATEWAY_FIELDS}
            payload["model"] = model.provider_model_id
        else:
            payload = anthropic.chat_request(
                body, model=model.provider_model_id, default_max_tokens=model.max_completion_tokens
            )
        headers = {
            "Content-Type": "application/json",
            "anthropic-version": anthropic.ANTHROPIC_VERSION,
        }
        if native is not None:
            headers.update(native.headers)
        if secret:
            headers["x-api-key"] = secret
        if stream:
            headers["Accept"] = "text/event-stream"
        url = _base_url(provider, version_suffix="/v1") + "/messages"
        return UpstreamCall(
            url,
            headers,
            jsoncodec.dumps(payload),
            True,
            _secrets_of(secret, headers),
            native=native is not None,
        )

    payload = {k: v for k, v in body.items() if k not in GATEWAY_FIELDS}
    payload["model"] = model.provider_model_id
    if stream:
        options = dict(payload.get("stream_options") or {})
        options["include_usage"] = True
        payload["stream_options"] = options
    headers = {"Content-Type": "application/json"}
    if secret:
        headers["Authorization"] = f"Bearer {secret}"
    if stream:
        headers["Accept"] = "text/event-stream"
    suffix = "/v1" if provider.api_format == ApiFormat.OLLAMA else None
    url = _base_url(provider, version_suffix=suffix) + endpoint.path
    return UpstreamCall(url, headers, jsoncodec.dumps(payload), False, _secrets_of(secret, headers))


# --- The outbound address policy ------------------------------------------------------------


class SystemResolver:
    """The system's name service (``getaddrinfo``, on the loop's thread pool)."""

    async def resolve(self, host: str, port: int) -> list[str]:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return outbound.unique_addresses(infos)

    async def close(self) -> None:
        """Nothing to release: ``getaddrinfo`` keeps no connection."""


class PolicyResolver:
    """Resolves upstream host names and keeps only the addresses the outbound address
    policy allows; with none left the lookup fails, before any connection is opened.

    The client connects to exactly the addresses returned here, so a name that
    resolves to a private address, or is rebound to one after the base URL was saved,
    is caught. IP literals never reach a resolver: :func:`destination_refusal` checks
    them before the request.
    """

    def __init__(self, resolver=None):
        self.resolver = resolver or SystemResolver()

    async def resolve(self, host: str, port: int = 0) -> list[str]:
        addresses = await self.resolver.resolve(host, port)
        allow_private = outbound.private_allowed()
        allowed, refused = [], []
        for address in addresses:
            reason = outbound.address_refusal(address, allow_private=allow_private)
            if reason is None:
                allowed.append(address)
            else:
                refused.append(reason)
        if not allowed:
            # Operators see the addresses; callers of the gateway only learn the host.
            logger.warning("Upstream host %s refused: %s", host, "; ".join(refused))
            raise outbound.OutboundAddressRefused(
                f"the upstream host {host} has no address allowed by the outbound address policy",
                host=host,
            )
        return allowed

    async def close(self) -> None:
        await self.resolver.close()


@functools.lru_cache(maxsize=1024)
def _destination_refusal(url: str, allow_private: bool) -> str | None:
    try:
        outbound.check_url(url, allow_private=allow_private)
    except outbound.OutboundURLRefused as exc:
        if exc.address is not None:
            return (
                f"the upstream address {exc.address} is not allowed by the outbound address policy"
            )
        return f"the upstream URL is not allowed by the outbound address policy: {exc.reason}"
    return None


def destination_refusal(url: str) -> str | None:
    """Why the policy refuses to call ``url`` (its syntax, or its host when that is an IP
    literal), or None. Provider URLs saved before the policy, or written by the sync,
    are checked here too."""
    return _destination_refusal(url, outbound.private_allowed())


def retry_after_seconds(headers) -> float | None:
    """Seconds from ``Retry-After`` (or ``retry-after-ms``); dates are not worth parsing."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            return max(float(milliseconds) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("Retry-After")
    if value:
        try:
            return max(float(value), 0.0)
        except ValueError:
            return None
    return None


class SSEParser:
    """Splits a byte stream into server-sent events, whatever the chunk boundaries."""

    def __init__(self):
        self.buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        self.buffer += data
        if b"\r" in self.buffer:
            # A lone trailing CR may be the first half of a CRLF: wait for the next chunk.
            keep = self.buffer.endswith(b"\r")
            head = self.buffer[:-1] if keep else self.buffer
            self.buffer = head.replace(b"\r\n", b"\n") + (b"\r" if keep else b"")
        if b"\n\n" not in self.buffer:
            return []
        *events, self.buffer = self.buffer.split(b"\n\n")
        return [event for event in events if event.strip()]


def event_data(event: bytes) -> bytes | None:
    """The ``data`` of one event, its lines joined; None for comments and blank events."""
    lines = [line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:")]
    if not lines:
        return None
    return b"\n".join(lines)
