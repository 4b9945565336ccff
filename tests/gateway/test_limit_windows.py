"""The counters a request must pass: the key's and its organization's, named by their
minute and budget period, with the request's own amounts and seconds left."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from gateway.auth import ClientKeyInfo
from gateway.limits import request_windows, to_picodollars
from gateway.resp import command as resp_command
from modelhub.models import Organization


def _key(**organization_limits) -> ClientKeyInfo:
    organization = Organization(pk=7, name="Acme", slug="acme", **organization_limits)
    return ClientKeyInfo(
        id=3,
        name="ci",
        organization=organization,
        allowed_models=(),
        rate_limit_rpm=10,
        rate_limit_tpm=1_000,
        budget_amount=Decimal("2.5"),
        budget_period="day",
        expires_at=None,
        revoked_at=None,
        budget_thresholds={"ck": (50, 100)},
    )


def test_windows_of_a_key_and_its_organization():
    # 45 s before the end of the minute, the day and the month.
    key = _key(budget_amount=Decimal(100), budget_period="month")
    now = datetime(2026, 3, 31, 23, 59, 15, tzinfo=UTC)
    reservation = request_windows(
        key, estimated_tokens=300, worst_case_cost=Decimal("0.01"), now=now
    )
    assert [(w.key, w.limit, w.amount, w.retry_after, w.scope) for w in reservation.windows] == [
        ("gw:ck:3:rpm:202603312359", 10, 1, 45, "key"),
        ("gw:ck:3:tpm:202603312359", 1_000, 300, 45, "key"),
        ("gw:ck:3:spend:day:2026033100", to_picodollars(Decimal("2.5")), 10**10, 45, "key"),
        (
            "gw:org:7:spend:month:2026030100",
            to_picodollars(Decimal(100)),
            10**10,
            45,
            "organization",
        ),
    ]
    assert reservation.windows[2].description == "The key's budget of 2.5 USD per day is spent."
    assert reservation.windows[3].code == "organization_budget_exceeded"
    assert reservation.tokens_keys == ["gw:ck:3:tpm:202603312359"]
    assert reservation.cost_keys == [
        "gw:ck:3:spend:day:2026033100",
        "gw:org:7:spend:month:2026030100",
    ]
    assert [(b.spend_key, b.thresholds) for b in reservation.budgets] == [
        ("gw:ck:3:spent:day:2026033100", (50, 100)),
        ("gw:org:7:spent:month:2026030100", ()),
    ]


def test_requests_of_one_minute_share_counters_and_keep_their_own_amounts():
    key = _key()
    first = request_windows(
        key,
        estimated_tokens=10,
        worst_case_cost=Decimal(1),
        now=datetime(2026, 3, 31, 23, 59, 0, 500_000, tzinfo=UTC),
    )
    second = request_windows(
        key,
        estimated_tokens=20,
        worst_case_cost=Decimal(2),
        now=datetime(2026, 3, 31, 23, 59, 50, tzinfo=UTC),
    )
    assert [w.key for w in first.windows] == [w.key for w in second.windows]
    assert [(w.amount, w.retry_after) for w in first.windows] == [
        (1, 60),
        (10, 60),
        (to_picodollars(Decimal(1)), 60),
    ]
    assert [(w.amount, w.retry_after) for w in second.windows] == [
        (1, 10),
        (20, 10),
        (to_picodollars(Decimal(2)), 10),
    ]
    # The next minute is the next day: every counter moves on.
    later = request_windows(
        key,
        estimated_tokens=10,
        worst_case_cost=Decimal(1),
        now=datetime(2026, 4, 1, 0, 0, 1, tzinfo=UTC),
    )
    assert [w.key for w in later.windows] == [
        "gw:ck:3:rpm:202604010000",
        "gw:ck:3:tpm:202604010000",
        "gw:ck:3:spend:day:2026040100",
    ]
    assert later.budgets[0].period_start == datetime(2026, 4, 1, tzinfo=UTC)


def test_changed_limits_take_effect_within_the_minute():
    now = datetime(2026, 3, 31, 12, 0, 30, tzinfo=UTC)
    before = request_windows(_key(), estimated_tokens=1, worst_case_cost=Decimal(0), now=now)
    raised = ClientKeyInfo(**{**_key().__dict__, "rate_limit_rpm": 20, "budget_amount": None})
    after = request_windows(raised, estimated_tokens=1, worst_case_cost=Decimal(0), now=now)
    assert before.windows[0].limit == 10
    assert after.windows[0].limit == 20
    assert after.windows[0].description == "The key's rate limit of 20 requests per minute reached."
    assert len(after.windows) == 2 and after.budgets == []


@pytest.mark.parametrize(
    "keys, args",
    [
        ([], []),
        (["limits:k:1:rpm:29000000"], [1, 600, 1_790_000_060]),
        (["a", "b:ü", "c" * 300], [0, -5, 2**63 - 1, 1_000_000_000_000_000]),
        ([f"limits:k:{n}:tpm" for n in range(128)], list(range(-200, 200))),
    ],
)
@pytest.mark.parametrize("command", ["EVALSHA", "EVAL"])
def test_a_script_call_is_sent_as_the_client_would_send_it(command, keys, args):
    """The limiter's own packing of a script call is byte for byte redis-py's."""
    from redis.asyncio.connection import Connection

    script = "return 1" if command == "EVAL" else "e0e1f9fabfc9d4800c877a703b823ac0578ff831"
    client = Connection()
    expected = b"".join(client.pack_command(command, script, len(keys), *keys, *args))
    assert resp_command(command, script, len(keys), *keys, *args) == expected
