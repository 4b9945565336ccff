"""OpenRouter-style provider preferences in the routing evaluator and its ``evaluate``
endpoint: what each preference drops (and says it dropped), how it reorders, and that it
never adds what the organization's rules leave out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from modelhub.routing import (
    MaxPrice,
    ProviderPreferences,
    Reason,
    RouteRequest,
    evaluate,
    unsupported_parameters,
)
from tests.support.api import API
from tests.support.builders import (
    make_credential,
    make_metric,
    make_model,
    make_provider,
    make_rule,
)

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)
RECENT = NOW - timedelta(hours=1)


def route(org, model="gpt-4o", *, parameters=(), **preferences):
    return evaluate(
        organization=org,
        request=RouteRequest(
            requested_model=model,
            preferences=ProviderPreferences.build(**preferences),
            parameters=frozenset(parameters),
        ),
        now=NOW,
    )


def providers(plan) -> list[str]:
    return [c.provider.slug for c in plan.candidates]


def dropped(plan) -> list[tuple[str, str, str]]:
    return [(r.model.provider.slug, r.reason, r.detail) for r in plan.rejected]


@pytest.fixture
def three(org):
    """gpt-4o at three providers with a credential each: openai (the name asked for),
    azure and together (the same weights under their own ids)."""
    openai = make_provider(None, slug="openai", may_train_on_data=False, may_log_prompts=True)
    azure = make_provider(None, slug="azure", may_train_on_data=False, may_log_prompts=False)
    together = make_provider(None, slug="together")  # no known data policy
    models = {
        "openai": make_model(
            openai,
            "gpt-4o",
            canonical_slug="openai/gpt-4o",
            pricing_prompt=Decimal("0.0000025"),
            pricing_completion=Decimal("0.00001"),
            supports_tools=True,
            supports_json_mode=True,
            supported_parameters=["tools", "tool_choice", "response_format", "temperature"],
        ),
        "azure": make_model(
            azure,
            "deployments/gpt-4o",
            canonical_slug="openai/gpt-4o",
            pricing_prompt=Decimal("0.000003"),
            pricing_completion=Decimal("0.000012"),
            pricing_request=Decimal("0.001"),
            supports_tools=True,
        ),
        "together": make_model(
            together,
            "openai/gpt-4o",
            canonical_slug="openai/gpt-4o",
            pricing_prompt=Decimal("0.0000009"),
            pricing_completion=Decimal("0.0000009"),
        ),
    }
    for provider in (openai, azure, together):
        make_credential(org, provider, name=provider.slug)
    return models


def test_without_preferences_the_name_asked_for_then_equivalents_cheapest_first(org, three):
    plan = evaluate(organization=org, request=RouteRequest("gpt-4o"), now=NOW)
    assert providers(plan) == ["openai", "together", "azure"]


def test_build_normalises_slugs_and_leaves_defaults():
    preferences = ProviderPreferences.build(
        order=["Azure", "azure", " openai "], max_price={"prompt": Decimal(1), "image": None}
    )
    assert preferences.order == ("azure", "openai")
    assert preferences.max_price == MaxPrice(prompt=Decimal(1))
    assert preferences.allow_fallbacks is True
    assert preferences.data_collection == "allow"
    assert ProviderPreferences.build() == ProviderPreferences()
    same = ProviderPreferences.build(order=["azure", "OPENAI"])
    assert same == ProviderPreferences.build(order=["Azure", "openai"])
    assert hash(same) == hash(ProviderPreferences.build(order=["Azure", "openai"]))


def test_ignore_drops_and_names_the_provider(org, three):
    plan = route(org, ignore=["openai"])
    assert providers(plan) == ["together", "azure"]
    assert dropped(plan) == [("openai", Reason.PROVIDER_IGNORED, "openai dropped by ignore")]


def test_only_keeps_the_listed_providers(org, three):
    plan = route(org, only=["azure", "together"])
    assert providers(plan) == ["together", "azure"]
    assert dropped(plan) == [("openai", Reason.PROVIDER_NOT_IN_ONLY, "openai not in only")]


def test_order_puts_its_providers_first_and_keeps_the_others_after(org, three):
    plan = route(org, order=["azure", "openai"])
    assert providers(plan) == ["azure", "openai", "together"]
    assert plan.rejected == []


def test_order_without_fallbacks_drops_the_providers_it_does_not_name(org, three):
    plan = route(org, order=["azure"], allow_fallbacks=False)
    assert providers(plan) == ["azure"]
    assert sorted(dropped(plan)) == [
        (
            "openai",
            Reason.PROVIDER_NOT_IN_ORDER,
            "openai not in order (allow_fallbacks false)",
        ),
        (
            "together",
            Reason.PROVIDER_NOT_IN_ORDER,
            "together not in order (allow_fallbacks false)",
        ),
    ]


def test_no_fallbacks_without_order_keeps_the_first_provider(org, three):
    plan = route(org, allow_fallbacks=False)
    assert providers(plan) == ["openai"]
    assert {(slug, reason) for slug, reason, _ in dropped(plan)} == {
        ("together", Reason.PROVIDER_FALLBACKS_DISABLED),
        ("azure", Reason.PROVIDER_FALLBACKS_DISABLED),
    }


def test_no_fallbacks_with_only_keeps_every_listed_provider(org, three):
    plan = route(org, only=["azure", "openai"], allow_fallbacks=False)
    assert providers(plan) == ["openai", "azure"]
    assert [reason for _, reason, _ in dropped(plan)] == [Reason.PROVIDER_NOT_IN_ONLY]


def test_sort_by_price(org, three):
    assert providers(route(org, sort="price")) == ["together", "openai", "azure"]


def test_sort_by_latency_uses_recent_successful_metrics(org, other_org, three):
    make_metric(org, model=three["azure"], latency_ms=200, created_at=RECENT)
    make_metric(org, model=three["together"], latency_ms=900, created_at=RECENT)
    # Not counted: a failure, an old row, another organization's row.
    make_metric(org, model=three["together"], latency_ms=1, success=False, created_at=RECENT)
    make_metric(org, model=three["together"], latency_ms=1, created_at=NOW - timedelta(days=3))
    make_metric(other_org, model=three["together"], latency_ms=1, created_at=RECENT)

    plan = route(org, sort="latency")

    assert providers(plan) == ["azure", "together", "openai"]  # no observation: last
    assert [c.observed_latency_ms for c in plan.candidates] == [200.0, 900.0, None]


def test_sort_by_throughput_is_output_tokens_per_second_of_generation(org, three):
    # together: 100 tokens in 2 s of a stream that began after 1 s -> 100 tokens/s.
    make_metric(
        org,
        model=three["together"],
        output_tokens=100,
        latency_ms=2000,
        time_to_first_token_ms=1000,
        created_at=RECENT,
    )
    # azure: 150 + 50 tokens in two answers of 0.5 s, not streamed -> 200 tokens/s.
    for tokens in (150, 50):
        make_metric(
            org, model=three["azure"], output_tokens=tokens, latency_ms=500, created_at=RECENT
        )
    # openai: 30 tokens in 1 s -> 30 tokens/s; an embedding-like row without output and a
    # failure are left out.
    make_metric(org, model=three["openai"], output_tokens=30, latency_ms=1000, created_at=RECENT)
    make_metric(org, model=three["openai"], output_tokens=0, latency_ms=1, created_at=RECENT)
    make_metric(
        org,
        model=three["openai"],
        output_tokens=1000,
        latency_ms=1,
        success=False,
        created_at=RECENT,
    )

    plan = route(org, sort="throughput")

    assert providers(plan) == ["azure", "together", "openai"]
    assert [c.observed_throughput for c in plan.candidates] == [200.0, 100.0, 30.0]


def test_order_wins_over_sort(org, three):
    assert providers(route(org, sort="price", order=["azure"])) == [
        "azure",
        "together",
        "openai",
    ]


@pytest.mark.parametrize(
    ("max_price", "kept", "detail"),
    [
        # USD per million tokens: openai 2.50/10, azure 3/12, together 0.90/0.90.
        ({"prompt": "2.5"}, ["openai", "together"], "azure over max_price.prompt 2.50"),
        ({"completion": "10"}, ["openai", "together"], "azure over max_price.completion 10.00"),
        ({"prompt": "1", "completion": "1"}, ["together"], None),
        # Per request: only azure charges one (the others have none in the catalog).
        ({"request": "0.0005"}, ["openai", "together"], "azure over max_price.request 0.0005"),
        ({"image": "0"}, ["openai", "together", "azure"], None),
    ],
)
def test_max_price(org, three, max_price, kept, detail):
    plan = route(org, max_price={k: Decimal(v) for k, v in max_price.items()})
    assert providers(plan) == kept
    assert {reason for _, reason, _ in dropped(plan)} <= {Reason.OVER_MAX_PRICE}
    if detail:
        assert [d for _, _, d in dropped(plan)][0].startswith(detail)


def test_max_price_detail_says_what_the_provider_charges(org, three):
    plan = route(org, max_price={"prompt": Decimal("2.5")})
    assert dropped(plan) == [
        ("azure", Reason.OVER_MAX_PRICE, "azure over max_price.prompt 2.50 (charges 3.00)")
    ]


def test_an_unknown_token_price_does_not_pass_a_max_price(org, three):
    three["together"].pricing_prompt = None
    three["together"].save()
    plan = route(org, max_price={"prompt": Decimal(100)})
    assert providers(plan) == ["openai", "azure"]
    assert dropped(plan) == [
        (
            "together",
            Reason.OVER_MAX_PRICE,
            "together has no known prompt price (max_price.prompt 100.00)",
        )
    ]


def test_data_collection_deny_keeps_providers_known_not_to_keep_prompts(org, three):
    plan = route(org, data_collection="deny")
    assert providers(plan) == ["azure"]
    assert sorted(dropped(plan)) == [
        (
            "openai",
            Reason.DATA_COLLECTION,
            "openai may retain prompts (data_collection deny)",
        ),
        (
            "together",
            Reason.DATA_COLLECTION,
            "together has no known data policy (data_collection deny)",
        ),
    ]
    assert providers(route(org, data_collection="allow")) == ["openai", "together", "azure"]


def test_data_collection_deny_drops_providers_that_train(org, three):
    three["azure"].provider.may_train_on_data = True
    three["azure"].provider.save()
    plan = route(org, data_collection="deny", only=["azure"])
    assert plan.candidates == []
    assert (
        "azure",
        Reason.DATA_COLLECTION,
        "azure may train on prompts (data_collection deny)",
    ) in (dropped(plan))


def test_require_parameters(org, three):
    # openai lists its parameters; azure lists none but has tools; together has neither.
    plan = route(org, require_parameters=True, parameters={"tools", "temperature"})
    assert providers(plan) == ["openai", "azure"]
    assert dropped(plan) == [
        (
            "together",
            Reason.MISSING_PARAMETER,
            "together does not support tools (require_parameters)",
        )
    ]
    plan = route(org, require_parameters=True, parameters={"response_format", "seed"})
    assert providers(plan) == []  # openai's list has no seed, the others no JSON mode
    assert {d for _, _, d in dropped(plan)} == {
        "openai does not support seed (require_parameters)",
        "together does not support response_format (require_parameters)",
        "azure does not support response_format (require_parameters)",
    }
    # Without require_parameters, parameters do not matter.
    plan = route(org, parameters={"tools", "seed"})
    assert providers(plan) == ["openai", "together", "azure"]


def test_unsupported_parameters_reads_the_list_then_the_capability_columns(org, three):
    assert unsupported_parameters(three["openai"], {"tools", "top_k"}) == ["top_k"]
    assert unsupported_parameters(three["azure"], {"tools", "top_k"}) == []
    assert unsupported_parameters(three["together"], {"tool_choice", "top_k"}) == ["tool_choice"]


def test_preferences_narrow_a_rule_and_never_widen_it(org, three):
    make_rule(org, [three["azure"], three["openai"]], match_model="gpt-4o")
    plan = route(org, only=["together"])
    assert plan.rule is not None and plan.candidates == []
    assert {slug for slug, *_ in dropped(plan)} == {"azure", "openai"}
    # order reorders within the rule's targets and adds no other provider.
    assert providers(route(org, order=["together", "openai"])) == ["openai", "azure"]


def test_preferences_reorder_before_a_rule_without_fallbacks_keeps_one(org, three):
    make_rule(org, [three["azure"], three["openai"]], match_model="gpt-4o", fallback_enabled=False)
    plan = route(org, order=["openai"])
    assert providers(plan) == ["openai"]
    assert [(slug, reason) for slug, reason, _ in dropped(plan)] == [
        ("azure", Reason.FALLBACK_DISABLED)
    ]


def test_the_fallback_models_of_a_request_follow_the_same_preferences(org, three):
    groq = make_provider(None, slug="groq")
    make_credential(org, groq)
    llama = make_model(groq, "llama-3.1-8b")
    plan = evaluate(
        organization=org,
        request=RouteRequest(
            "gpt-4o",
            fallback_models=("groq/llama-3.1-8b",),
            preferences=ProviderPreferences.build(ignore=["groq", "openai"]),
        ),
        now=NOW,
    )
    assert providers(plan) == ["together", "azure"]
    assert (llama.provider.slug, Reason.PROVIDER_IGNORED) in {
        (slug, reason) for slug, reason, _ in dropped(plan)
    }


def test_preferences_keep_the_query_count_constant(org, three, django_assert_num_queries):
    # As test_routing counts them without preferences; sorting by throughput reads the
    # metrics once more, and the filters read nothing.
    with django_assert_num_queries(6):
        route(org)
    with django_assert_num_queries(7):
        plan = route(
            org,
            sort="throughput",
            ignore=["x"],
            max_price={"prompt": Decimal(10)},
            data_collection="deny",
            require_parameters=True,
            parameters={"tools"},
        )
    assert providers(plan) == ["azure"]


# --- The evaluate endpoint -------------------------------------------------------------------


def test_evaluate_takes_the_provider_object(org, three, member_client):
    response = member_client.post(
        f"{API}/routing-rules/evaluate/",
        {
            "model": "gpt-4o",
            "provider": {
                "ignore": ["openai"],
                "max_price": {"prompt": 2.5},
                "require_parameters": True,
            },
            "parameters": ["tools"],
        },
        format="json",
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert [c["provider"] for c in body["candidates"]] == []
    assert [(r["model_id"], r["reason"], r["detail"]) for r in body["rejected"]] == [
        ("openai/gpt-4o", "provider_ignored", "openai dropped by ignore"),
        (
            "together/openai/gpt-4o",
            "missing_parameter",
            "together does not support tools (require_parameters)",
        ),
        (
            "azure/deployments/gpt-4o",
            "over_max_price",
            "azure over max_price.prompt 2.50 (charges 3.00)",
        ),
    ]


def test_evaluate_orders_by_the_provider_object(org, three, member_client):
    body = member_client.post(
        f"{API}/routing-rules/evaluate/",
        {"model": "gpt-4o", "provider": {"order": ["Azure"], "sort": "price"}},
        format="json",
    ).json()
    assert [c["provider"] for c in body["candidates"]] == ["azure", "together", "openai"]


@pytest.mark.parametrize(
    ("provider", "path"),
    [
        ({"zdr": True}, ["zdr"]),
        ({"only": "openai"}, ["only"]),
        ({"sort": "speed"}, ["sort"]),
        ({"allow_fallbacks": "maybe"}, ["allow_fallbacks"]),
        ({"data_collection": "never"}, ["data_collection"]),
        ({"max_price": {"prompt": -1}}, ["max_price", "prompt"]),
        ({"max_price": {"tokens": 1}}, ["max_price", "tokens"]),
        ("openai", ["non_field_errors"]),
    ],
)
def test_evaluate_refuses_bad_preferences_naming_the_key(org, three, member_client, provider, path):
    response = member_client.post(
        f"{API}/routing-rules/evaluate/",
        {"model": "gpt-4o", "provider": provider},
        format="json",
    )
    assert response.status_code == 400, response.json()
    errors = response.json()["provider"]
    for key in path:
        errors = errors[key]
    assert errors and all(isinstance(message, str) for message in errors)
