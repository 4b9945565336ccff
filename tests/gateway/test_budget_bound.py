"""A budget is a bound under concurrency: a hundred requests at once from one key spend at
most the budget plus one request's cost, on either limiter backend.

Each request asks for no max_tokens and the upstream reports 500 completion tokens, more
than the gateway's default guess of 256: reserving that guess let concurrent requests
spend about twice the budget. The model may produce 600 tokens at most; that is what a
request reserves now.
"""

from __future__ import annotations

import asyncio
import os
from decimal import Decimal

import httpx
import pytest

from gateway.limits import PICODOLLARS
from gateway.proxy import output_bound
from gateway.upstreams import CHAT, EMBEDDINGS
from modelhub.models import ApiFormat, LimitCounter, Model, ModelMetric, Provider
from modelhub.services import provider_credential_create
from tests.gateway.conftest import metrics_rows, wait_for
from tests.gateway.fake_upstream import Action

BUDGET = Decimal("0.05")
REQUESTS = 100
PROMPT_PRICE, COMPLETION_PRICE = Decimal("0.000001"), Decimal("0.000004")
USAGE = {"prompt_tokens": 10, "completion_tokens": 500, "total_tokens": 510}
ACTUAL_COST = 10 * PROMPT_PRICE + 500 * COMPLETION_PRICE  # 0.00201 USD


@pytest.fixture(params=["database", pytest.param("redis", marks=pytest.mark.services)])
def limit_backend(request, gateway_settings):
    """The limiter under test: Redis (its Lua script) or the database's counter rows
    (PostgreSQL with DATABASE_URL, SQLite otherwise)."""
    if request.param == "redis":
        import redis

        gateway_settings.GATEWAY_LIMIT_REDIS_URL = os.environ.get("REDIS_URL", "")
        redis.from_url(gateway_settings.GATEWAY_LIMIT_REDIS_URL).flushdb()
    gateway_settings.GATEWAY_LIMIT_BACKEND = request.param
    return request.param


@pytest.fixture
def writer_model(org, upstream):
    provider = Provider.objects.create(
        name="Gamma", slug="gamma", base_url=f"{upstream.url}/openai/v1"
    )
    provider_credential_create(
        organization=org, provider=provider, secret="sk-gamma-secret-0001", name="gamma"
    )
    return Model.objects.create(
        provider=provider,
        provider_model_id="writer",
        model_name="Writer",
        pricing_prompt=PROMPT_PRICE,
        pricing_completion=COMPLETION_PRICE,
        max_completion_tokens=600,
        context_length=8192,
    )


async def _burst(url: str, raw_key: str) -> list[int]:
    """REQUESTS chat completions at once; their status codes."""
    limits = httpx.Limits(max_connections=REQUESTS)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:

        async def one() -> int:
            response = await http.post(
                "/v1/chat/completions",
                headers={"Authorization": f"Bearer {raw_key}"},
                json={"model": "gamma/writer", "messages": [{"role": "user", "content": "hi"}]},
            )
            return response.status_code

        return await asyncio.gather(*[one() for _ in range(REQUESTS)])


def test_concurrent_requests_spend_at_most_one_request_past_the_budget(
    limit_backend, gateway, writer_model, make_key, upstream
):
    issued = make_key(budget_amount=BUDGET, budget_period="month")
    upstream.script("writer", *[Action(usage=USAGE) for _ in range(REQUESTS)])
    # Slow enough upstream that most requests are admitted before any has settled.
    upstream.delay = 0.3
    statuses = asyncio.run(_burst(gateway.url, issued.raw_key))
    admitted = statuses.count(200)
    assert admitted + statuses.count(429) == REQUESTS
    rows = metrics_rows(REQUESTS, client_key_id=issued.client_key.pk)
    spent = sum((row.cost for row in rows), Decimal(0))
    largest = max(row.cost for row in rows)
    print(
        f"\n[{limit_backend}] sent={REQUESTS} admitted={admitted} budget={BUDGET} "
        f"spent={spent} ({spent / BUDGET:.0%}) largest request={largest}"
    )
    assert largest == ACTUAL_COST
    assert admitted >= 1
    assert spent <= BUDGET + largest
    # The upstream saw exactly the admitted requests, and nothing else was billed.
    assert len(upstream.requests_for("writer")) == admitted
    assert (
        ModelMetric.objects.filter(client_key_id=issued.client_key.pk, cost__gt=0).count()
        == admitted
    )


def test_budget_is_spent_down_to_its_last_request(
    limit_backend, gateway, writer_model, make_key, upstream
):
    # One at a time, each settled before the next: the worst case reserved is given back,
    # so the budget admits the requests it pays for plus the one that crosses it.
    issued = make_key(budget_amount=ACTUAL_COST * 5 / 2, budget_period="day")
    upstream.script("writer", *[Action(usage=USAGE) for _ in range(3)])
    headers = {"Authorization": f"Bearer {issued.raw_key}"}
    body = {"model": "gamma/writer", "messages": [{"role": "user", "content": "hi"}]}
    statuses = []
    with httpx.Client(base_url=gateway.url, timeout=30) as http:
        for _ in range(5):
            statuses.append(http.post("/v1/chat/completions", headers=headers, json=body))
    assert [r.status_code for r in statuses] == [200, 200, 200, 429, 429]
    assert statuses[3].json()["error"]["code"] == "budget_exceeded"
    rows = metrics_rows(5, client_key_id=issued.client_key.pk)
    assert sum((row.cost for row in rows), Decimal(0)) == ACTUAL_COST * 3


def spend_counter(limit_backend: str, key_id: int) -> Decimal:
    """What the limiter holds as the key's spend (reserved and settled), in USD."""
    prefix = f"gw:ck:{key_id}:spend:"
    if limit_backend == "redis":
        import redis

        client = redis.from_url(os.environ["REDIS_URL"])
        values = [int(client.get(key)) for key in client.scan_iter(prefix + "*")]
    else:
        values = LimitCounter.objects.filter(key__startswith=prefix).values_list("value", flat=True)
    return Decimal(sum(values)) / PICODOLLARS


def test_streams_and_abandoned_requests_keep_only_what_they_cost(
    limit_backend, gateway, writer_model, make_key, upstream
):
    # Each of these reserved 0.0024 USD; once settled, the counter holds what the metric
    # rows say they cost: a full stream, a stream the client left, a request the client
    # gave up on while the upstream was still silent.
    issued = make_key(budget_amount=Decimal("1"), budget_period="day")
    headers = {"Authorization": f"Bearer {issued.raw_key}"}
    body = {"model": "gamma/writer", "messages": [{"role": "user", "content": "hi"}]}
    upstream.script(
        "writer",
        Action(usage=USAGE),
        Action("slow_stream", delay=0.3),
        Action("stall_headers", delay=3),
    )
    with httpx.Client(base_url=gateway.url, timeout=30, headers=headers) as http:
        streamed = http.post("/v1/chat/completions", json={**body, "stream": True})
        assert streamed.status_code == 200 and streamed.text.endswith("data: [DONE]\n\n")
        with http.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as left:
            next(left.iter_raw())
        with pytest.raises(httpx.ReadTimeout):
            http.post("/v1/chat/completions", json=body, timeout=0.5)
    rows = metrics_rows(3, client_key_id=issued.client_key.pk)
    assert sorted(row.status_code for row in rows) == [200, 499, 499]
    assert rows[0].cost == ACTUAL_COST
    spent = sum((row.cost for row in rows), Decimal(0))
    wait_for(lambda: spend_counter(limit_backend, issued.client_key.pk) == spent)


# --- The bound itself ---------------------------------------------------------------------


def _model(**fields) -> Model:
    provider = Provider(slug="p", api_format=fields.pop("api_format", ApiFormat.OPENAI))
    return Model(provider=provider, **fields)


@pytest.mark.parametrize(
    ("body", "fields", "expected"),
    [
        ({"max_tokens": 50}, {"max_completion_tokens": 600}, 50),
        ({"max_completion_tokens": 70, "max_tokens": 50}, {}, 70),
        ({}, {"max_completion_tokens": 600, "context_length": 8192}, 600),
        ({}, {"context_length": 8192}, 8192 - 100),
        ({}, {}, 4096),
        ({"n": 3, "max_tokens": 50}, {}, 150),
        ({}, {"api_format": ApiFormat.ANTHROPIC, "context_length": 200_000}, 4096),
        ({"max_tokens": True}, {"max_completion_tokens": 600}, 600),
    ],
)
def test_output_bound(settings, body, fields, expected):
    settings.GATEWAY_BUDGET_MAX_OUTPUT_TOKENS = 4096
    assert output_bound(body, CHAT, 100, _model(**fields)) == expected


def test_embeddings_produce_no_output_tokens():
    assert output_bound({"max_tokens": 50}, EMBEDDINGS, 100, _model()) == 0
