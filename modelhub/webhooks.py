"""Sending one webhook event: the signature, and a POST that obeys the outbound policy.

A webhook's URL passed the outbound address policy (:mod:`modelhub.outbound`) when it
was written; it passes it again here, on every attempt, and the addresses its host
resolves to are checked and then connected to as checked. A host name that resolved to
a public address at creation and to 127.0.0.1 now (DNS rebinding) is refused, and the
connection cannot resolve it a second time to something else.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

from modelhub import outbound

SIGNATURE_HEADER = "X-ModelHub-Signature"
EVENT_HEADER = "X-ModelHub-Event"
DELIVERY_HEADER = "X-ModelHub-Delivery"


def signature(secret: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of the raw body>``: what receivers recompute to trust it."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class DeliveryRefused(Exception):
    """The URL or every address of its host is refused by the outbound policy: retrying
    cannot help until someone changes the URL (or the DNS)."""


@dataclass(frozen=True)
class Destination:
    """A checked URL and the address the request will connect to."""

    scheme: str
    host: str
    port: int
    address: str
    host_header: str
    path: str


def resolve_destination(url: str) -> Destination:
    """Check ``url`` and every address its host resolves to; raises
    :class:`DeliveryRefused` naming the reason (never the URL: it may hold a token)."""
    try:
        target, addresses = outbound.resolve_url(url)
    except outbound.OutboundURLRefused as exc:
        raise DeliveryRefused(exc.message) from None
    except OSError as exc:
        # Name resolution can fail for a moment; the caller retries this like a network
        # error.
        raise ConnectionError(f"cannot resolve the webhook's host: {exc}") from None
    parts = urlsplit(url)
    path = parts.path or "/"
    if parts.query:
        path += f"?{parts.query}"
    return Destination(
        scheme=target.scheme,
        host=target.host,
        port=target.port,
        address=addresses[0],
        host_header=parts.netloc,
        path=path,
    )


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    """POST ``body`` to ``url``, connecting to the address the policy checked; returns the
    status. Raises :class:`DeliveryRefused`, or ``OSError``/urllib3 errors when the
    network fails. Redirects are not followed (they would lead past the policy)."""
    import urllib3

    destination = resolve_destination(url)
    address = destination.address
    if isinstance(ipaddress.ip_address(address), ipaddress.IPv6Address):
        address = f"[{address}]"
    timeout = urllib3.Timeout(
        connect=settings.WEBHOOK_TIMEOUT_SECONDS, read=settings.WEBHOOK_TIMEOUT_SECONDS
    )
    pool: urllib3.HTTPConnectionPool
    if destination.scheme == "https":
        # The certificate is checked against the host name, not the address connected to.
        pool = urllib3.HTTPSConnectionPool(
            address,
            destination.port,
            timeout=timeout,
            retries=False,
            # The system's trusted certificates.
            cert_reqs="CERT_REQUIRED",
            server_hostname=destination.host,
            assert_hostname=destination.host,
        )
    else:
        pool = urllib3.HTTPConnectionPool(address, destination.port, timeout=timeout, retries=False)
    try:
        response = pool.urlopen(
            "POST",
            destination.path,
            body=body,
            headers={**headers, "Host": destination.host_header},
            redirect=False,
            preload_content=False,
        )
        # Only the status matters; read a little so the connection closes cleanly.
        response.read(1024, decode_content=False)
        response.release_conn()
        return response.status
    finally:
        pool.close()
