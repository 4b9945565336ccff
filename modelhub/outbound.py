"""The outbound address policy: which URLs and addresses the platform calls for a tenant.

Anything the platform requests on an organization's behalf (a provider's ``base_url``
today) passes this one policy, so an organization admin cannot turn the platform into a
proxy into its own network: the cloud metadata service, the database, an admin port on
loopback.

Two checks share the same rules:

- :func:`check_url`, when a URL is written (API, admin) and again before each call: the
  URL's syntax, and its host when the host is an IP literal (in any spelling a resolver
  would accept, ``http://2130706433/`` included);
- :func:`address_refusal`, at connection time, on every address a host name resolves to
  (the gateway's resolver applies it), which also defeats DNS rebinding: the addresses
  checked are the ones connected to.

Link-local and metadata addresses are refused always, as are addresses that are no
unicast destination at all (unspecified, multicast, broadcast, reserved). Loopback,
private networks and shared (CGNAT) space are refused unless the operator sets
``GATEWAY_ALLOW_PRIVATE_UPSTREAMS`` (self-hosted Ollama or vLLM on a private network).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Never reachable, whatever the operator allows: link-local holds the cloud metadata
# services (169.254.169.254, and AWS's IPv6 fd00:ec2::254, which lies inside fc00::/7).
NEVER_ALLOWED = tuple(
    ipaddress.ip_network(network)
    for network in ("169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128")
)
# Allowed only with GATEWAY_ALLOW_PRIVATE_UPSTREAMS: loopback, private networks, CGNAT.
PRIVATE = tuple(
    ipaddress.ip_network(network)
    for network in (
        "127.0.0.0/8",
        "::1/128",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "fc00::/7",
        "100.64.0.0/10",
    )
)
# IPv6 ranges that carry an IPv4 address in their low 32 bits and reach it: IPv4-mapped
# (::ffff:0:0/96, see ``ipv4_mapped``), the deprecated IPv4-compatible ::/96 and NAT64's
# well-known prefix. 6to4 and Teredo are unwrapped with ``sixtofour`` and ``teredo``.
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
NAT64 = ipaddress.ip_network("64:ff9b::/96")

SCHEMES = ("http", "https")
PRIVATE_HINT = "operators allow them with GATEWAY_ALLOW_PRIVATE_UPSTREAMS=1"
_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_NUMERIC_PART = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")


class OutboundURLRefused(ValueError):
    """A URL the policy refuses; the message says why, in words a person can act on, and
    never repeats the URL (it may carry a secret). ``address`` is the refused IP literal
    when the host was one."""

    def __init__(self, reason: str, *, address: IPAddress | None = None):
        self.reason = reason
        self.message = f"This URL is not allowed: {reason}."
        self.address = address
        super().__init__(self.message)


class OutboundAddressRefused(OSError):
    """Raised at connection time when a host has no address the policy allows.

    An ``OSError``, so HTTP clients treat it like any other failure to connect."""

    def __init__(self, message: str, *, host: str):
        super().__init__(message)
        self.message = message
        self.host = host

    def __str__(self) -> str:
        return self.message


def private_allowed() -> bool:
    return bool(getattr(settings, "GATEWAY_ALLOW_PRIVATE_UPSTREAMS", False))


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in NAT64 or (address in IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _refusal(address: IPAddress, allow_private: bool) -> str | None:
    if any(address in network for network in NEVER_ALLOWED):
        return "is a link-local or cloud metadata address, which is never allowed"
    if any(address in network for network in PRIVATE):
        return (
            None if allow_private else f"is a loopback or private-network address ({PRIVATE_HINT})"
        )
    if address.is_unspecified or address.is_multicast or not address.is_global:
        return "is not a public unicast address (unspecified, multicast, broadcast or reserved)"
    return None


def address_refusal(address: IPAddress | str, *, allow_private: bool | None = None) -> str | None:
    """Why the policy refuses to connect to ``address``, or None when it may be used."""
    if allow_private is None:
        allow_private = private_allowed()
    if isinstance(address, str):
        try:
            address = ipaddress.ip_address(address)
        except ValueError:
            return f"{address!r} is not an IP address"
    if isinstance(address, ipaddress.IPv6Address):
        # A zone (fe80::1%eth0) does not change which network the address is in.
        address = ipaddress.IPv6Address(address.compressed.split("%")[0])
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            reason = _refusal(embedded, allow_private)
            return f"{address} (the IPv4 address {embedded}) {reason}" if reason else None
    reason = _refusal(address, allow_private)
    return f"{address} {reason}" if reason else None


def parse_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address ``host`` means to a resolver, in any spelling ``inet_aton`` and
    browsers accept (``2130706433``, ``0x7f.1``, ``0177.0.0.1``, ``127.1``), or None
    when ``host`` is a name. Raises ValueError for a numeric host that is no address."""
    parts = host.lower().split(".")
    if parts and parts[-1] == "" and len(parts) > 1:
        parts.pop()
    # As in the WHATWG URL standard: a host whose last label is a number is an address.
    if not parts or not _NUMERIC_PART.match(parts[-1]):
        return None
    if len(parts) > 4:
        raise ValueError("too many parts")
    numbers = []
    for part in parts:
        if not _NUMERIC_PART.match(part):
            raise ValueError("not a number")
        if part.startswith("0x"):
            numbers.append(int(part[2:] or "0", 16))
        elif len(part) > 1 and part.startswith("0"):
            numbers.append(int(part, 8))
        else:
            numbers.append(int(part))
    *leading, last = numbers
    if any(n > 255 for n in leading) or last >= 256 ** (5 - len(numbers)):
        raise ValueError("out of range")
    value = last
    for index, number in enumerate(leading):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


@dataclass(frozen=True)
class OutboundTarget:
    """What a checked URL connects to: ``address`` is set when the host is an IP literal."""

    scheme: str
    host: str
    port: int
    address: IPAddress | None


def _valid_hostname(host: str) -> bool:
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    return len(ascii_host) <= 253 and all(_LABEL.match(label) for label in ascii_host.split("."))


def check_url(url: str, *, allow_private: bool | None = None) -> OutboundTarget:
    """Check a URL the platform is to call; raises :class:`OutboundURLRefused` naming the
    reason. Host names are checked for syntax only here: their addresses are checked when
    they are resolved, at connection time."""
    if allow_private is None:
        allow_private = private_allowed()
    if not isinstance(url, str) or not url:
        raise OutboundURLRefused("it is empty")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 or ch == "\\" for ch in url):
        raise OutboundURLRefused("it contains spaces, control characters or backslashes")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise OutboundURLRefused(
            "it is not a valid URL (check the brackets around an IPv6 address)"
        ) from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise OutboundURLRefused("only http:// and https:// URLs can be called")
    if "@" in parts.netloc:
        raise OutboundURLRefused(
            "it must not contain a user name or password (store secrets as credentials)"
        )
    if parts.fragment or url.endswith("#"):
        raise OutboundURLRefused("it must not contain a fragment (#...)")
    try:
        port = parts.port
    except ValueError:
        raise OutboundURLRefused("its port must be a number from 1 to 65535") from None
    if port == 0:
        raise OutboundURLRefused("its port must be a number from 1 to 65535")
    host = (parts.hostname or "").lower()
    if not host:
        raise OutboundURLRefused("it has no host")
    port = port or (443 if scheme == "https" else 80)
    if parts.netloc.startswith("[") or ":" in host:
        try:
            address: IPAddress | None = ipaddress.IPv6Address(host.replace("%25", "%"))
        except ValueError:
            raise OutboundURLRefused("its host is not a valid IPv6 address") from None
    else:
        name = host[:-1] if host.endswith(".") else host
        try:
            address = parse_ipv4(name)
        except ValueError:
            raise OutboundURLRefused(
                "its host is neither a host name nor an IPv4 address"
            ) from None
        if address is None and not _valid_hostname(name):
            raise OutboundURLRefused("its host is not a valid host name")
    if address is not None:
        reason = address_refusal(address, allow_private=allow_private)
        if reason:
            raise OutboundURLRefused(reason, address=address)
        if isinstance(address, ipaddress.IPv4Address) and host != str(address):
            raise OutboundURLRefused(f"write the IPv4 address as four decimal numbers ({address})")
    return OutboundTarget(scheme=scheme, host=host, port=port, address=address)


def unique_addresses(infos: Iterable[tuple[Any, ...]]) -> list[str]:
    """The addresses of ``getaddrinfo``'s answer, each once, in its order."""
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def resolve_url(url: str, *, allow_private: bool | None = None) -> tuple[OutboundTarget, list[str]]:
    """Check ``url``, then every address its host resolves to now: ``(target, addresses)``
    for a caller that connects to a checked address itself (so that a second lookup
    cannot lead elsewhere). Raises :class:`OutboundURLRefused` for the URL or for any
    refused address (a client may connect to any of them), ``OSError`` when the name
    does not resolve."""
    target = check_url(url, allow_private=allow_private)
    if target.address is not None:
        return target, [str(target.address)]
    addresses = unique_addresses(
        socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    )
    refusals = [address_refusal(address, allow_private=allow_private) for address in addresses]
    refused = next((reason for reason in refusals if reason), None)
    if not addresses or refused:
        raise OutboundURLRefused(
            f"its host resolves to an address the outbound address policy refuses "
            f"({refused or 'no address at all'})"
        )
    return target, addresses
