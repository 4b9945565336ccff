"""The outbound address policy on write: the rules themselves, the management API and the
Django admin refuse a provider base URL the gateway must not call."""

from __future__ import annotations

import ipaddress

import pytest

from modelhub.models import Provider, User
from modelhub.outbound import OutboundURLRefused, address_refusal, check_url, parse_ipv4
from tests.support.api import API
from tests.support.builders import make_provider

# (URL, allowed without GATEWAY_ALLOW_PRIVATE_UPSTREAMS, allowed with it)
URLS = [
    ("https://api.openai.com/v1", True, True),
    ("http://api.example.com:8080/v1", True, True),
    ("HTTPS://API.EXAMPLE.COM./v1", True, True),
    ("http://bücher.example/v1", True, True),
    ("http://8.8.8.8/v1", True, True),
    ("http://[2606:4700:4700::1111]/v1", True, True),
    # Host names are only checked for syntax here; the gateway checks what they resolve to.
    ("http://localhost:11434/v1", True, True),
    # Loopback, private networks, CGNAT: only with the flag.
    ("http://127.0.0.1:11434/v1", False, True),
    ("http://127.8.9.10/", False, True),
    ("http://[::1]:8000/v1", False, True),
    ("http://10.1.2.3/v1", False, True),
    ("http://172.16.0.1/v1", False, True),
    ("http://172.31.255.254/v1", False, True),
    ("http://192.168.1.20:8000/v1", False, True),
    ("http://100.64.0.1/v1", False, True),
    ("http://[fd12:3456::1]/v1", False, True),
    ("http://[::ffff:127.0.0.1]/v1", False, True),
    ("http://[::ffff:10.0.0.1]/v1", False, True),
    # Link-local and cloud metadata: never, in any spelling.
    ("http://169.254.169.254/latest/meta-data", False, False),
    ("http://169.254.0.1/", False, False),
    ("http://169.254.169.254./", False, False),
    ("http://2852039166/", False, False),
    ("http://0xa9fea9fe/", False, False),
    ("http://0251.0376.0251.0376/", False, False),
    ("http://0xa9.0xfe.0xa9.0xfe/", False, False),
    ("http://169.254.43518/", False, False),
    ("http://[fe80::1]/", False, False),
    ("http://[fe80::1%25eth0]/", False, False),
    ("http://[fd00:ec2::254]/", False, False),
    ("http://[::ffff:169.254.169.254]/", False, False),
    ("http://[::ffff:a9fe:a9fe]/", False, False),
    ("http://[0:0:0:0:0:ffff:a9fe:a9fe]/", False, False),
    ("http://[64:ff9b::169.254.169.254]/", False, False),
    ("http://[2002:a9fe:a9fe::1]/", False, False),
    ("http://[::ffff:fe80:1]/", False, False),  # mapped 254.128.0.1: reserved, not fe80::1
    # Unspecified, multicast, broadcast, reserved: no unicast destination, never.
    ("http://0.0.0.0:11434/", False, False),
    ("http://0/", False, False),
    ("http://[::]/", False, False),
    ("http://224.0.0.1/", False, False),
    ("http://[ff02::1]/", False, False),
    ("http://255.255.255.255/", False, False),
    ("http://240.0.0.1/", False, False),
    ("http://192.0.2.1/", False, False),
    # Odd spellings of loopback: decimal, hex, octal, short forms.
    ("http://2130706433/", False, False),
    ("http://0x7f.1/", False, False),
    ("http://0x7f000001/", False, False),
    ("http://0177.0.0.1/", False, False),
    ("http://127.1/", False, False),
    ("http://017700000001/", False, False),
    # Odd spellings of a public address are refused too: one spelling per address.
    ("http://134744072/", False, False),
    ("http://8.8.8.8./", False, False),
    # Syntax.
    ("ftp://example.com/", False, False),
    ("file:///etc/passwd", False, False),
    ("gopher://example.com/", False, False),
    ("example.com/v1", False, False),
    ("http:///v1", False, False),
    ("http://user:s3cr3t@example.com/v1", False, False),
    ("http://user@example.com/v1", False, False),
    ("http://example.com@169.254.169.254/", False, False),
    ("http://example.com/v1#frag", False, False),
    ("http://example.com:0/", False, False),
    ("http://example.com:65536/", False, False),
    ("http://example.com:http/", False, False),
    ("http://exa mple.com/", False, False),
    ("http://example.com\\@169.254.169.254/", False, False),
    ("http://example.com/\n", False, False),
    ("http://[::1/", False, False),
    ("http://[example.com]/", False, False),
    ("http://-bad-.example.com/", False, False),
    ("http://example.123/", False, False),
    ("http://1.2.3.4.5/", False, False),
    ("http://256.1.1.1/", False, False),
    ("", False, False),
]


@pytest.mark.parametrize(("url", "without_flag", "with_flag"), URLS)
def test_url_table(url, without_flag, with_flag):
    for allow_private, expected in ((False, without_flag), (True, with_flag)):
        try:
            check_url(url, allow_private=allow_private)
            allowed = True
        except OutboundURLRefused as exc:
            allowed = False
            assert exc.message.startswith("This URL is not allowed: ")
            assert "s3cr3t" not in exc.message  # the URL, and any secret in it, is not repeated
        assert allowed is expected, (url, allow_private)


def test_mapped_reserved_address_is_refused():
    # ::ffff:fe80:1 is the IPv4-mapped 254.128.0.1 (reserved), not link-local fe80::1.
    assert "254.128.0.1" in address_refusal("::ffff:fe80:1", allow_private=True)


# (address, allowed without the flag, allowed with it)
ADDRESSES = [
    ("93.184.215.14", True, True),
    ("2606:4700:4700::1111", True, True),
    ("127.0.0.1", False, True),
    ("127.255.255.254", False, True),
    ("::1", False, True),
    ("10.0.0.1", False, True),
    ("172.16.5.4", False, True),
    ("172.32.0.1", True, True),  # just outside 172.16/12
    ("192.168.0.1", False, True),
    ("100.64.0.1", False, True),
    ("100.127.255.254", False, True),
    ("100.128.0.1", True, True),  # just outside CGNAT
    ("fc00::1", False, True),
    ("fdff::1", False, True),
    ("::ffff:192.168.0.1", False, True),
    ("169.254.169.254", False, False),
    ("169.254.170.2", False, False),  # ECS task metadata
    ("fe80::1", False, False),
    ("fe80::1%eth0", False, False),
    ("febf::1", False, False),
    ("fd00:ec2::254", False, False),
    ("::ffff:169.254.169.254", False, False),
    ("::169.254.169.254", False, False),  # IPv4-compatible
    ("64:ff9b::a9fe:a9fe", False, False),  # NAT64
    ("2002:a9fe:a9fe::", False, False),  # 6to4
    ("0.0.0.0", False, False),
    ("::", False, False),
    ("224.0.0.251", False, False),
    ("ff02::1", False, False),
    ("255.255.255.255", False, False),
    ("240.0.0.1", False, False),
    ("198.18.0.1", False, False),
    ("not an address", False, False),
]


@pytest.mark.parametrize(("address", "without_flag", "with_flag"), ADDRESSES)
def test_address_table(address, without_flag, with_flag):
    assert (address_refusal(address, allow_private=False) is None) is without_flag
    assert (address_refusal(address, allow_private=True) is None) is with_flag


def test_metadata_reason_says_never_and_private_reason_names_the_setting():
    assert "never allowed" in address_refusal("169.254.169.254", allow_private=True)
    reason = address_refusal("10.0.0.1", allow_private=False)
    assert "private" in reason and "GATEWAY_ALLOW_PRIVATE_UPSTREAMS" in reason


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0x7F.0.0.1", "127.0.0.1"),
        ("0177.0.0.01", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("169.254.43518", "169.254.169.254"),
        ("0", "0.0.0.0"),
        ("1.2.3.4", "1.2.3.4"),
        ("api.example.com", None),
        ("localhost", None),
    ],
)
def test_ipv4_spellings(host, address):
    expected = ipaddress.IPv4Address(address) if address else None
    assert parse_ipv4(host) == expected


@pytest.mark.parametrize("host", ["1.2.3.4.5", "256.0.0.1", "4294967296", "09.1.1.1", "a.0x1"])
def test_numeric_hosts_that_are_no_address(host):
    with pytest.raises(ValueError):
        parse_ipv4(host)


def test_the_setting_is_read_when_no_flag_is_given(settings):
    settings.GATEWAY_ALLOW_PRIVATE_UPSTREAMS = True
    check_url("http://10.0.0.1/v1")
    settings.GATEWAY_ALLOW_PRIVATE_UPSTREAMS = False
    with pytest.raises(OutboundURLRefused):
        check_url("http://10.0.0.1/v1")


# --- The management API --------------------------------------------------------------------


def _create(client, base_url):
    return client.post(
        f"{API}/providers/",
        {"name": "Mine", "slug": "mine", "base_url": base_url},
        format="json",
    )


REFUSED_ON_WRITE = [
    ("http://169.254.169.254/latest", "link-local or cloud metadata"),
    ("http://[fd00:ec2::254]/", "link-local or cloud metadata"),
    ("http://[::ffff:169.254.169.254]/", "link-local or cloud metadata"),
    ("http://[fe80::1]/", "link-local or cloud metadata"),
    ("http://127.0.0.1:11434/v1", "loopback or private-network"),
    ("http://[::1]:11434/v1", "loopback or private-network"),
    ("http://10.0.0.5/v1", "loopback or private-network"),
    ("http://172.20.0.5/v1", "loopback or private-network"),
    ("http://192.168.1.5/v1", "loopback or private-network"),
    ("http://100.64.1.1/v1", "loopback or private-network"),
    ("http://[fd12::1]/v1", "loopback or private-network"),
    ("http://0.0.0.0:11434/v1", "not a public unicast address"),
    ("http://user:s3cr3t@api.example.com/v1", "user name or password"),
    ("http://token@api.example.com/v1", "user name or password"),
    ("https://api.example.com/v1#x", "fragment"),
    ("ftp://api.example.com/v1", "only http:// and https://"),
    ("http://api.example.com:0/v1", "port"),
]


@pytest.mark.parametrize(("url", "reason"), REFUSED_ON_WRITE)
def test_api_refuses_base_url(admin_client, settings, url, reason):
    settings.GATEWAY_ALLOW_PRIVATE_UPSTREAMS = False
    response = _create(admin_client, url)
    assert response.status_code == 400, response.content
    [message] = response.json()["base_url"]
    assert reason in message
    assert "s3cr3t" not in message
    assert not Provider.objects.filter(slug="mine").exists()


def test_userinfo_is_400_not_500_with_private_upstreams_allowed(admin_client, settings):
    settings.GATEWAY_ALLOW_PRIVATE_UPSTREAMS = True
    response = _create(admin_client, "http://user:s3cr3t@127.0.0.1:11434/v1")
    assert response.status_code == 400
    assert "user name or password" in response.json()["base_url"][0]
    assert not Provider.objects.filter(slug="mine").exists()


@pytest.mark.parametrize("url", ["http://2130706433/", "http://0x7f.1/", "http://127.1/"])
def test_api_refuses_odd_ipv4_spellings(admin_client, url):
    response = _create(admin_client, url)
    assert response.status_code == 400
    assert response.json()["base_url"]
    assert not Provider.objects.filter(slug="mine").exists()


def test_private_addresses_with_the_flag_but_never_metadata(admin_client, settings):
    settings.GATEWAY_ALLOW_PRIVATE_UPSTREAMS = True
    response = _create(admin_client, "http://192.168.1.5:11434/v1")
    assert response.status_code == 201, response.content
    assert Provider.objects.get(slug="mine").base_url == "http://192.168.1.5:11434/v1"

    response = admin_client.patch(
        f"{API}/providers/{response.json()['id']}/",
        {"base_url": "http://169.254.169.254/v1"},
        format="json",
    )
    assert response.status_code == 400
    assert "never allowed" in response.json()["base_url"][0]
    assert Provider.objects.get(slug="mine").base_url == "http://192.168.1.5:11434/v1"


def test_update_refused_leaves_the_provider_unchanged(admin_client, org, settings):
    settings.GATEWAY_ALLOW_PRIVATE_UPSTREAMS = False
    provider = make_provider(org, slug="ours", base_url="https://api.example.com/v1")
    response = admin_client.patch(
        f"{API}/providers/{provider.pk}/", {"base_url": "http://10.0.0.8/v1"}, format="json"
    )
    assert response.status_code == 400
    assert "private" in response.json()["base_url"][0]
    provider.refresh_from_db()
    assert provider.base_url == "https://api.example.com/v1"


def test_public_host_names_and_an_empty_base_url_are_accepted(admin_client, settings):
    settings.GATEWAY_ALLOW_PRIVATE_UPSTREAMS = False
    assert _create(admin_client, "https://llm.example.com:8443/v1").status_code == 201
    response = admin_client.post(
        f"{API}/providers/", {"name": "Empty", "slug": "empty", "base_url": ""}, format="json"
    )
    assert response.status_code == 201


# --- The Django admin ----------------------------------------------------------------------


@pytest.fixture
def superuser_client(client, db):
    user = User.objects.create_superuser("root", "root@example.com", "pw-root-123")
    client.force_login(user)
    return client


def _admin_add(client, base_url):
    return client.post(
        "/admin/modelhub/provider/add/",
        {
            "name": "Internal",
            "slug": "internal",
            "base_url": base_url,
            "api_format": "openai",
            "requires_api_key": "on",
            "may_log_prompts": "unknown",
            "may_train_on_data": "unknown",
            "is_active": "on",
        },
    )


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254/latest", "never allowed"),
        ("http://10.0.0.5/v1", "GATEWAY_ALLOW_PRIVATE_UPSTREAMS"),
        ("http://user:s3cr3t@api.example.com/v1", "user name or password"),
    ],
)
def test_admin_form_refuses_base_url(superuser_client, settings, url, reason):
    settings.GATEWAY_ALLOW_PRIVATE_UPSTREAMS = False
    response = _admin_add(superuser_client, url)
    assert response.status_code == 200  # the form again, with its errors
    errors = response.context["adminform"].form.errors
    assert reason in errors["base_url"][0]
    assert not Provider.objects.filter(slug="internal").exists()


def test_admin_form_saves_an_allowed_base_url(superuser_client, settings):
    settings.GATEWAY_ALLOW_PRIVATE_UPSTREAMS = True
    response = _admin_add(superuser_client, "http://10.0.0.5:8000/v1")
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Provider.objects.get(slug="internal").base_url == "http://10.0.0.5:8000/v1"
