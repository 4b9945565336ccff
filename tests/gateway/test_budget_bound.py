"""A budget is a bound under concurrency: a hundred requests at once from one key spend at
most the budget plus one request's cost, on either limiter backend.

Two workloads beat the old guess. Long answers: no max_tokens, and the upstream reports
500 completion tokens, more than the default guess of 256, so reserving the guess let a
0.05 USD budget be spent about twice; the model may produce 600 tokens at most, which is
what a request reserves now. CJK prompts: 300 characters guessed at 79 tokens, billed as
450; their UTF-8 bytes bound them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from decimal import Decimal

import httpx
import pytest
from django.conf import settings as django_settings
from django.db import transaction
from django.db.models import F

from gateway.limits import PICODOLLARS
from gateway.parse import output_bound, prompt_bound
from gateway.upstreams import CHAT, EMBEDDINGS
from modelhub.models import ApiFormat, LimitCounter, Model, ModelMetric, Provider
from modelhub.selectors import organization_budget_status
from modelhub.services import organization_update, provider_credential_create
from tests.support.gateway import metrics_rows, wait_for
from tests.support.upstream import Action

BUDGET = Decimal("0.05")
REQUESTS = 100
PROMPT_PRICE, COMPLETION_PRICE = Decimal("0.000001"), Decimal("0.000004")
USAGE = {"prompt_tokens": 10, "completion_tokens": 500, "total_tokens": 510}
ACTUAL_COST = 10 * PROMPT_PRICE + 500 * COMPLETION_PRICE  # 0.00201 USD
MESSAGES = [{"role": "user", "content": "hi"}]


@dataclass(frozen=True)
class Workload:
    budget: Decimal
    body: dict
    usage: dict

    @property
    def cost(self) -> Decimal:
        return (
            self.usage["prompt_tokens"] * PROMPT_PRICE
            + self.usage["completion_tokens"] * COMPLETION_PRICE
        )


WORKLOADS = {
    "long answers": Workload(BUDGET, {"messages": MESSAGES}, USAGE),
    "cjk prompts": Workload(
        Decimal("0.01"),
        {"messages": [{"role": "user", "content": "预算" * 150}], "max_tokens": 5},
        {"prompt_tokens": 450, "completion_tokens": 5, "total_tokens": 455},
    ),
}


@pytest.fixture(params=["database", pytest.param("redis", marks=pytest.mark.services)])
def limit_backend(request, gateway_settings):
    """The limiter under test: Redis (its Lua script) or the database's counter rows
    (PostgreSQL with DATABASE_URL, SQLite otherwise)."""
    if request.param == "redis":
        import redis

        # The settings' URL, not the environment's: under xdist each worker has its own.
        gateway_settings.GATEWAY_LIMIT_REDIS_URL = gateway_settings.REDIS_URL
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


async def _burst(url: str, raw_keys: str | list[str], body: dict) -> list[int]:
    """REQUESTS chat completions at once (from the keys in turn); their status codes."""
    keys = [raw_keys] if isinstance(raw_keys, str) else raw_keys
    limits = httpx.Limits(max_connections=REQUESTS)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:

        async def one(raw_key: str) -> int:
            response = await http.post(
                "/v1/chat/completions",
                headers={"Authorization": f"Bearer {raw_key}"},
                json={"model": "gamma/writer", **body},
            )
            return response.status_code

        return await asyncio.gather(*[one(keys[i % len(keys)]) for i in range(REQUESTS)])


@pytest.mark.parametrize("workload", WORKLOADS.values(), ids=WORKLOADS.keys())
def test_concurrent_requests_spend_at_most_one_request_past_the_budget(
    limit_backend, gateway, writer_model, make_key, upstream, workload
):
    budget = workload.budget
    issued = make_key(budget_amount=budget, budget_period="month")
    upstream.script("writer", *[Action(usage=workload.usage) for _ in range(REQUESTS)])
    # Slow enough upstream that most requests are admitted before any has settled.
    upstream.delay = 0.3
    statuses = asyncio.run(_burst(gateway.url, issued.raw_key, workload.body))
    admitted = statuses.count(200)
    assert admitted + statuses.count(429) == REQUESTS
    rows = metrics_rows(REQUESTS, client_key_id=issued.client_key.pk)
    spent = sum((row.cost for row in rows), Decimal(0))
    largest = max(row.cost for row in rows)
    print(
        f"\n[{limit_backend}] sent={REQUESTS} admitted={admitted} budget={budget} "
        f"spent={spent} ({spent / budget:.0%}) largest request={largest}"
    )
    assert largest == workload.cost
    assert admitted >= 1
    assert spent <= budget + largest
    # The upstream saw exactly the admitted requests, and nothing else was billed.
    assert len(upstream.requests_for("writer")) == admitted
    assert (
        ModelMetric.objects.filter(client_key_id=issued.client_key.pk, cost__gt=0).count()
        == admitted
    )


def test_an_organization_budget_holds_across_its_keys(
    limit_backend, gateway, writer_model, make_key, upstream, org
):
    # Three keys of one organization, none with a budget of its own, share the
    # organization's: a hundred requests at once spend at most it plus one request.
    organization_update(organization=org, budget_amount=BUDGET, budget_period="month")
    issued = [make_key(name=f"app-{n}") for n in range(3)]
    upstream.script("writer", *[Action(usage=USAGE) for _ in range(REQUESTS)])
    upstream.delay = 0.3
    statuses = asyncio.run(_burst(gateway.url, [i.raw_key for i in issued], {"messages": MESSAGES}))
    admitted = statuses.count(200)
    assert admitted + statuses.count(429) == REQUESTS
    rows = metrics_rows(REQUESTS, organization=org)
    spent = sum((row.cost for row in rows), Decimal(0))
    print(
        f"\n[{limit_backend}] organization budget, 3 keys: sent={REQUESTS} admitted={admitted} "
        f"budget={BUDGET} spent={spent} ({spent / BUDGET:.0%})"
    )
    assert 1 <= admitted < REQUESTS
    assert spent <= BUDGET + ACTUAL_COST
    # Each key sent its share, and the refusals name the organization's budget.
    assert {row.client_key_id for row in rows} == {i.client_key.pk for i in issued}
    assert {row.error_type for row in rows if row.status_code == 429} == {
        "organization_budget_exceeded"
    }
    assert len(upstream.requests_for("writer")) == admitted
    # Once settled, the live counter says what the rows say.
    wait_for(lambda: organization_budget_status(org).spent == spent)


def test_budget_is_spent_down_to_its_last_request(
    limit_backend, gateway, writer_model, make_key, upstream
):
    # One at a time, each settled before the next: the worst case reserved is given back,
    # so the budget admits the requests it pays for plus the one that crosses it.
    issued = make_key(budget_amount=ACTUAL_COST * 5 / 2, budget_period="day")
    upstream.script("writer", *[Action(usage=USAGE) for _ in range(3)])
    headers = {"Authorization": f"Bearer {issued.raw_key}"}
    body = {"model": "gamma/writer", "messages": MESSAGES}
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

        client = redis.from_url(django_settings.REDIS_URL)
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
    body = {"model": "gamma/writer", "messages": MESSAGES}
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


@pytest.fixture
def database_limits(gateway_settings):
    gateway_settings.GATEWAY_LIMIT_BACKEND = "database"


def test_a_reservation_made_after_the_client_left_is_given_back(
    database_limits, gateway, writer_model, make_key, upstream
):
    issued = make_key(budget_amount=Decimal("1"), budget_period="day")
    key_id = issued.client_key.pk
    body = {"model": "gamma/writer", "messages": MESSAGES}
    upstream.script("writer", Action(usage=USAGE))
    with httpx.Client(
        base_url=gateway.url, timeout=30, headers={"Authorization": f"Bearer {issued.raw_key}"}
    ) as http:
        assert http.post("/v1/chat/completions", json=body).status_code == 200
        wait_for(lambda: spend_counter("database", key_id) == ACTUAL_COST)
        # While another transaction holds the key's counters, the next reservation waits
        # for them; the client gives up meanwhile, and the reservation lands afterwards.
        with transaction.atomic():
            LimitCounter.objects.filter(key__startswith=f"gw:ck:{key_id}:").update(value=F("value"))
            with pytest.raises(httpx.ReadTimeout):
                http.post("/v1/chat/completions", json=body, timeout=0.5)
    rows = metrics_rows(2, client_key_id=key_id)
    assert rows[1].status_code == 499
    assert len(upstream.requests_for("writer")) == 1
    wait_for(lambda: spend_counter("database", key_id) == ACTUAL_COST)


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


def test_prompt_bound_counts_bytes_of_everything_that_becomes_the_prompt():
    cjk = [{"role": "user", "content": "预算" * 150}]
    # 900 bytes of text in 300 characters (the estimate says 79 tokens).
    assert 900 < prompt_bound({"messages": cjk}, _model()) < 950
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    with_tools = prompt_bound({"messages": MESSAGES, "tools": [tool] * 10}, _model())
    assert with_tools > prompt_bound({"messages": MESSAGES}, _model()) + 10 * 50
    # Never more than the model's context holds.
    assert prompt_bound({"messages": cjk}, _model(context_length=512)) == 512
    assert prompt_bound({"prompt": "abc"}, _model()) == len('["abc"]')
