"""The outbound address policy at connection time: a refused upstream is a failed attempt
that falls back to the next candidate, is refused before any connection is opened, and
is not held against the credential.

Every test here records, with an audit hook, each socket connection the process opens
and fails if one goes anywhere but loopback.
"""

from __future__ import annotations

import asyncio
import ipaddress
import sys
import threading
import time

import openai
import pytest

from gateway.upstreams import PolicyResolver
from modelhub.models import ApiFormat, HealthStatus, Provider, ProviderCredential
from modelhub.outbound import OutboundAddressRefused
from tests.support.gateway import metrics_rows
from tests.support.upstream import Action

pytestmark = pytest.mark.usefixtures("catalog")

MESSAGES = [{"role": "user", "content": "hi"}]
ALPHA, BETA = "llama-3.1-8b", "meta/llama-3.1-8b"


def _is_loopback(host: str) -> bool:
    return ipaddress.ip_address(host.split("%")[0]).is_loopback


class NetworkLog:
    """Connections opened by any thread of this process (uvloop's included: it connects
    through the socket object, which raises the ``socket.connect`` audit event). One to
    an address off loopback is noted and stopped before it is made."""

    def __init__(self):
        self.connected: list[tuple[str, int]] = []
        self.lock = threading.Lock()

    def __call__(self, event: str, args: tuple) -> None:
        if event == "socket.connect" and isinstance(args[1], tuple):  # not AF_UNIX paths
            host, port = str(args[1][0]), int(args[1][1])
            with self.lock:
                self.connected.append((host, port))
            if not _is_loopback(host):
                raise ConnectionRefusedError(f"the test stopped a connection to {host}")

    def connections_to(self, host: str, port: int | None = None) -> list[tuple[str, int]]:
        wanted = ipaddress.ip_address(host)
        return [
            (h, p)
            for h, p in self.connected
            if ipaddress.ip_address(h.split("%")[0]) == wanted and port in (None, p)
        ]


_active: list[NetworkLog] = []


def _audit(event: str, args: tuple) -> None:
    for log in _active:
        log(event, args)


# An audit hook cannot be removed: one for the process, that feeds the active log.
if not getattr(sys, "_outbound_policy_audit_hook", False):
    sys.addaudithook(_audit)
    sys._outbound_policy_audit_hook = True


@pytest.fixture(autouse=True)
def network():
    log = NetworkLog()
    _active.append(log)
    yield log
    _active.remove(log)
    outside = [(host, port) for host, port in log.connected if not _is_loopback(host)]
    assert outside == [], f"traffic left loopback: {outside}"


@pytest.fixture
def private_off(gateway_settings):
    gateway_settings.GATEWAY_ALLOW_PRIVATE_UPSTREAMS = False
    return gateway_settings


def _port(upstream) -> int:
    return int(upstream.url.rsplit(":", 1)[1])


def _set_base_url(slug: str, base_url: str) -> None:
    Provider.objects.filter(slug=slug).update(base_url=base_url)


def _change_base_url(settings, slug: str, base_url: str) -> None:
    """Between two requests: the gateway sees the change once its cached plans expire."""
    _set_base_url(slug, base_url)
    time.sleep(settings.GATEWAY_PLAN_CACHE_SECONDS + 0.05)


def _assert_healthy(credential: ProviderCredential) -> None:
    credential.refresh_from_db()
    assert credential.consecutive_failures == 0
    assert credential.health_status == HealthStatus.HEALTHY
    assert credential.cooldown_until is None


def test_host_name_resolving_to_loopback_is_refused_when_private_upstreams_are_off(
    client, catalog, upstream, private_off, network
):
    port = _port(upstream)
    for slug in ("alpha", "beta"):
        _set_base_url(slug, f"http://localhost:{port}/openai/v1")

    with pytest.raises(openai.APIStatusError) as error:
        client.chat.completions.create(model="alpha/llama-3.1-8b", messages=MESSAGES)
    assert error.value.status_code == 502
    message = error.value.response.json()["error"]["message"]
    assert (
        "the upstream host localhost has no address allowed by the outbound address policy"
        in message
    )
    assert "127.0.0.1" not in message  # the caller learns the host, not where it resolves

    # Refused at connection time (only the resolver words it so), before connecting.
    assert network.connections_to("127.0.0.1", port) == []
    assert upstream.requests == []
    _assert_healthy(catalog["credentials"]["alpha"])
    _assert_healthy(catalog["credentials"]["beta"])
    [row] = metrics_rows(1)
    assert row.status_code == 502 and row.attempts == 2
    assert "outbound address policy" in row.error_message

    # The operator allows private upstreams: the same providers work.
    private_off.GATEWAY_ALLOW_PRIVATE_UPSTREAMS = True
    raw = client.chat.completions.with_raw_response.create(
        model="alpha/llama-3.1-8b", messages=MESSAGES
    )
    assert raw.headers["x-gateway-model"] == "alpha/llama-3.1-8b"
    assert raw.parse().choices[0].message.content == "Hello from the fake upstream"
    assert len(upstream.requests_for(ALPHA)) == 1
    assert network.connections_to("127.0.0.1", port)


def test_a_synced_ollama_on_localhost_works_with_private_upstreams(client, catalog, upstream):
    # What the sync writes for OLLAMA_BASE_URL=http://localhost:<port>: a global provider
    # in Ollama's format (the gateway appends /v1).
    Provider.objects.filter(slug="alpha").update(
        api_format=ApiFormat.OLLAMA, base_url=f"http://localhost:{_port(upstream)}/openai"
    )
    raw = client.chat.completions.with_raw_response.create(
        model="alpha/llama-3.1-8b", messages=MESSAGES
    )
    assert raw.headers["x-gateway-model"] == "alpha/llama-3.1-8b"
    assert [r["path"] for r in upstream.requests_for(ALPHA)] == ["/openai/v1/chat/completions"]


def test_host_name_refused_while_opening_a_stream(client, catalog, upstream, private_off, network):
    port = _port(upstream)
    for slug in ("alpha", "beta"):
        _set_base_url(slug, f"http://localhost:{port}/openai/v1")

    with pytest.raises(openai.APIStatusError) as error:
        list(
            client.chat.completions.create(
                model="alpha/llama-3.1-8b", messages=MESSAGES, stream=True
            )
        )
    assert error.value.status_code == 502
    assert "outbound address policy" in error.value.response.json()["error"]["message"]
    assert upstream.requests == []
    assert network.connections_to("127.0.0.1", port) == []
    _assert_healthy(catalog["credentials"]["alpha"])


METADATA_HOSTS = ["169.254.169.254", "[::ffff:169.254.169.254]", "[fd00:ec2::254]"]


@pytest.mark.parametrize("host", METADATA_HOSTS)
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_metadata_address_is_refused_even_with_private_upstreams_and_falls_back(
    client, catalog, upstream, gateway_settings, network, host, stream
):
    assert gateway_settings.GATEWAY_ALLOW_PRIVATE_UPSTREAMS is True
    _set_base_url("alpha", f"http://{host}/openai/v1")

    # More requests than the failure threshold (2): the credential is not to blame.
    for _ in range(3):
        raw = client.chat.completions.with_raw_response.create(
            model="alpha/llama-3.1-8b", messages=MESSAGES, stream=stream
        )
        assert raw.headers["x-gateway-model"] == "beta/meta/llama-3.1-8b"
        assert raw.headers["x-gateway-fallbacks"] == "1"
        if stream:
            assert "Hello" in "".join(
                chunk.choices[0].delta.content or "" for chunk in raw.parse() if chunk.choices
            )
    assert upstream.requests_for(ALPHA) == []
    assert len(upstream.requests_for(BETA)) == 3
    # The log sees the gateway's connections: beta's, and none to the metadata address.
    assert network.connections_to("127.0.0.1", _port(upstream))
    assert network.connections_to(host.strip("[]")) == []
    _assert_healthy(catalog["credentials"]["alpha"])
    rows = metrics_rows(3)
    assert all(row.fallbacks_used == 1 and row.status_code == 200 for row in rows)

    # With no candidate left the caller is told why, without the credential's help.
    _change_base_url(gateway_settings, "beta", f"http://{host}/openai/v1")
    with pytest.raises(openai.APIStatusError) as error:
        client.chat.completions.create(model="alpha/llama-3.1-8b", messages=MESSAGES)
    assert error.value.status_code == 502
    expected = ipaddress.ip_address(host.strip("[]"))
    assert (
        f"the upstream address {expected} is not allowed by the outbound address policy"
        in error.value.response.json()["error"]["message"]
    )
    assert network.connections_to(host.strip("[]")) == []
    _assert_healthy(catalog["credentials"]["beta"])


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "127.1", "0177.0.0.1"])
def test_odd_spellings_of_loopback_are_refused_when_private_upstreams_are_off(
    client, catalog, upstream, private_off, network, host
):
    port = _port(upstream)
    for slug in ("alpha", "beta"):
        _set_base_url(slug, f"http://{host}:{port}/openai/v1")
    with pytest.raises(openai.APIStatusError) as error:
        client.chat.completions.create(model="alpha/llama-3.1-8b", messages=MESSAGES)
    assert error.value.status_code == 502
    assert (
        "the upstream address 127.0.0.1 is not allowed by the outbound address policy"
        in error.value.response.json()["error"]["message"]
    )
    assert upstream.requests == []
    assert network.connections_to("127.0.0.1", port) == []


def test_literal_loopback_is_refused_before_connecting_when_private_upstreams_are_off(
    client, catalog, upstream, private_off, network
):
    port = _port(upstream)  # the catalog's providers point at http://127.0.0.1:<port>
    with pytest.raises(openai.APIStatusError) as error:
        client.chat.completions.create(model="alpha/llama-3.1-8b", messages=MESSAGES)
    assert (
        "the upstream address 127.0.0.1 is not allowed by the outbound address policy"
        in error.value.response.json()["error"]["message"]
    )
    assert upstream.requests == []
    assert network.connections_to("127.0.0.1", port) == []
    _assert_healthy(catalog["credentials"]["alpha"])


def test_user_info_in_a_stored_base_url_is_refused_not_a_500(
    client, catalog, upstream, gateway_settings
):
    port = _port(upstream)
    _set_base_url("alpha", f"http://user:s3cr3t@127.0.0.1:{port}/openai/v1")
    raw = client.chat.completions.with_raw_response.create(
        model="alpha/llama-3.1-8b", messages=MESSAGES
    )
    assert raw.headers["x-gateway-model"] == "beta/meta/llama-3.1-8b"
    assert upstream.requests_for(ALPHA) == []
    _assert_healthy(catalog["credentials"]["alpha"])

    _change_base_url(gateway_settings, "beta", f"http://user:s3cr3t@127.0.0.1:{port}/openai/v1")
    with pytest.raises(openai.APIStatusError) as error:
        client.chat.completions.create(model="alpha/llama-3.1-8b", messages=MESSAGES)
    assert error.value.status_code == 502
    message = error.value.response.json()["error"]["message"]
    assert "must not contain a user name or password" in message
    assert "s3cr3t" not in message


def test_redirects_are_not_followed(client, upstream):
    upstream.script(
        ALPHA,
        Action(
            "status",
            status=307,
            headers={"Location": f"{upstream.url}/openai/v1/redirected/chat/completions"},
        ),
    )
    raw = client.chat.completions.with_raw_response.create(
        model="alpha/llama-3.1-8b", messages=MESSAGES
    )
    assert raw.headers["x-gateway-model"] == "beta/meta/llama-3.1-8b"
    assert [r["path"] for r in upstream.requests if "redirected" in r["path"]] == []
    assert len(upstream.requests_for(ALPHA)) == 1


def test_cookies_an_upstream_sets_are_never_sent_back(client, catalog, upstream):
    # Providers behind a CDN set cookies; a shared jar would send one tenant's to the
    # next request of any tenant. (A host name: cookies of an IP address are never kept.)
    Provider.objects.filter(slug="alpha").update(
        base_url=f"http://localhost:{_port(upstream)}/openai/v1"
    )
    upstream.script(ALPHA, Action(headers={"Set-Cookie": "session=first-caller; Path=/"}))
    for _ in range(2):
        raw = client.chat.completions.with_raw_response.create(
            model="alpha/llama-3.1-8b", messages=MESSAGES
        )
        assert raw.headers["x-gateway-model"] == "alpha/llama-3.1-8b"
    assert [r["headers"].get("cookie") for r in upstream.requests_for(ALPHA)] == [None, None]


# --- The resolver ----------------------------------------------------------------------------


class StubDNS:
    """The name service, the boundary the resolver wraps: a fixed answer per host."""

    def __init__(self, answers: dict[str, list[str]]):
        self.answers = answers
        self.closed = False

    async def resolve(self, host, port=0):
        return list(self.answers[host])

    async def close(self):
        self.closed = True


def _resolve(resolver: PolicyResolver, host: str) -> list[str]:
    async def run():
        return await resolver.resolve(host, 443)

    return asyncio.run(run())


def test_resolver_keeps_only_the_addresses_the_policy_allows(settings):
    dns = StubDNS(
        {
            "mixed.example": ["169.254.169.254", "10.0.0.7", "93.184.215.14", "::1"],
            "rebound.example": ["169.254.169.254", "fd00:ec2::254"],
            "private.example": ["10.0.0.7", "::ffff:127.0.0.1"],
        }
    )
    resolver = PolicyResolver(dns)

    settings.GATEWAY_ALLOW_PRIVATE_UPSTREAMS = False
    assert _resolve(resolver, "mixed.example") == ["93.184.215.14"]
    with pytest.raises(OutboundAddressRefused) as refused:
        _resolve(resolver, "private.example")
    assert isinstance(refused.value, OSError)
    assert "10.0.0.7" not in str(refused.value)

    settings.GATEWAY_ALLOW_PRIVATE_UPSTREAMS = True
    assert _resolve(resolver, "mixed.example") == ["10.0.0.7", "93.184.215.14", "::1"]
    assert _resolve(resolver, "private.example") == ["10.0.0.7", "::ffff:127.0.0.1"]
    with pytest.raises(OutboundAddressRefused) as refused:
        _resolve(resolver, "rebound.example")
    assert str(refused.value) == (
        "the upstream host rebound.example has no address allowed by the outbound address policy"
    )

    asyncio.run(resolver.close())
    assert dns.closed
