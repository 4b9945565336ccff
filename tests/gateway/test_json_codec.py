"""The gateway parses and encodes JSON with orjson but accepts and forwards what the
standard library did: values orjson refuses on its own still reach the upstream intact."""

from __future__ import annotations

import json
import tracemalloc
from decimal import Decimal

import httpx
import pytest

from gateway import jsoncodec

pytestmark = pytest.mark.usefixtures("catalog")

MODEL = "alpha/llama-3.1-8b"
BIG = 2**70  # beyond orjson's 64-bit integers


def _post(gateway, raw_key: str, content: bytes) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/v1/chat/completions",
        content=content,
        headers={"Authorization": f"Bearer {raw_key}", "Content-Type": "application/json"},
        timeout=30,
    )


@pytest.mark.parametrize(
    "limits",
    # A budget bounds the prompt by its UTF-8 size, which a lone surrogate does not have.
    [{}, {"budget_amount": Decimal("100")}],
    ids=["no-budget", "budget"],
)
def test_values_orjson_refuses_reach_the_upstream_intact(gateway, make_key, upstream, limits):
    client_key = make_key(**limits)
    content = (
        b'{"model": "' + MODEL.encode() + b'", "seed": ' + str(BIG).encode() + b", "
        b'"messages": [{"role": "user", "content": "hi \\ud800 there"}]}'
    )
    response = _post(gateway, client_key.raw_key, content)

    assert response.status_code == 200, response.text
    sent = upstream.requests[-1]["body"]
    assert sent["seed"] == BIG
    assert sent["messages"][0]["content"] == "hi \ud800 there"


def test_non_ascii_text_reaches_the_upstream_as_sent(gateway, client_key, upstream):
    content = {"model": MODEL, "messages": [{"role": "user", "content": "héllo 世界"}]}
    response = _post(gateway, client_key.raw_key, json.dumps(content, ensure_ascii=False).encode())

    assert response.status_code == 200, response.text
    assert upstream.requests[-1]["body"]["messages"][0]["content"] == "héllo 世界"


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_in_a_request_is_a_400_not_a_changed_value(gateway, client_key, upstream, constant):
    content = (
        b'{"model": "' + MODEL.encode() + b'", "temperature": ' + constant + b", "
        b'"messages": [{"role": "user", "content": "hi"}]}'
    )
    response = _post(gateway, client_key.raw_key, content)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
    assert upstream.requests == []


def test_codec_matches_the_standard_library():
    assert jsoncodec.loads(b'{"a": [1, 2.5, "x"]}') == {"a": [1, 2.5, "x"]}
    assert jsoncodec.loads(str(BIG)) == BIG
    assert jsoncodec.loads('"\\udc00"') == "\udc00"
    assert jsoncodec.loads(b'{"p": NaN}')["p"] != jsoncodec.loads(b'{"p": NaN}')["p"]
    assert (
        jsoncodec.dumps({"n": BIG, "s": "\udc00"})
        == b'{"n": 1180591620717411303424, "s": "\\udc00"}'
    )
    assert jsoncodec.dumps({"a": "é"}) == '{"a":"é"}'.encode()
    for invalid in (b"", b"{", b"\xff", b"[1,]"):
        with pytest.raises(ValueError):
            jsoncodec.loads(invalid)
    with pytest.raises(ValueError):
        jsoncodec.loads(b"[NaN]", allow_nan=False)


def test_an_encoded_body_holds_no_more_memory_than_its_length():
    # orjson hands back the buffer it grew, up to about ten times the JSON's length, and
    # an upstream body is held for the whole of its stream.
    payload = {"model": MODEL, "messages": [{"role": "user", "content": "x" * 8000}]}
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        bodies = [jsoncodec.dumps(payload) for _ in range(50)]
        held = (tracemalloc.get_traced_memory()[0] - before) / len(bodies)
    finally:
        tracemalloc.stop()
    assert json.loads(bodies[0]) == payload
    assert held < 1.2 * len(bodies[0])


@pytest.mark.parametrize(
    "value",
    [
        ["plain", {"a": [1, 2.5, None, True]}],
        ["héllo 世界 😀", {"ключ": "значение"}],
        [{"role": "user", "content": 'line\nbreak "quoted" \\ slash \u0001'}],
    ],
    ids=["ascii", "non-ascii", "escapes"],
)
def test_encoded_size_is_the_compact_utf8_json_length(value):
    compact = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    assert jsoncodec.encoded_size(value) == len(compact)


def test_encoded_size_of_what_orjson_refuses_still_bounds_the_text():
    value = [{"content": "hi \ud800 世界", "seed": BIG}]
    text_bytes = len(b"hi ") + len("世界".encode()) + 1
    assert jsoncodec.encoded_size(value) == len(json.dumps(value, separators=(",", ":")))
    assert jsoncodec.encoded_size(value) > text_bytes
