"""The routing evaluator, called directly, and its ``evaluate`` endpoint."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from modelhub.models import ModelMetric, ProviderCredential, QuotaPeriod, RoutingRule
from modelhub.routing import ProviderPreferences, Reason, RouteRequest, evaluate
from tests.support.api import API
from tests.support.builders import (
    db_state,
    make_credential,
    make_metric,
    make_model,
    make_provider,
    make_rule,
)

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)


def route(org, model, **request):
    rng = request.pop("rng", None)
    return evaluate(
        organization=org,
        request=RouteRequest(requested_model=model, **request),
        now=NOW,
        rng=rng,
    )


def plan_models(plan):
    return [c.model for c in plan.candidates]


def reasons(plan):
    return [(r.model, r.reason) for r in plan.rejected]


def weighted_rule(org, world, weights, **fields):
    """A weighted rule over gpt-4o at openai and Llama 3.1 8B at groq and at together,
    with their credentials, weighing them ``weights``."""
    return make_rule(
        org,
        [
            (world["gpt"], world["openai"], weights[0]),
            (world["groq_llama"], world["groq"], weights[1]),
            (world["together_llama"], world["together"], weights[2]),
        ],
        strategy="weighted",
        **fields,
    )


@pytest.fixture
def world(org):
    """Three global providers with credentials of ``org`` and a few models."""
    openai = make_provider(None, slug="openai", api_key_env_var="OPENAI_API_KEY")
    groq = make_provider(None, slug="groq")
    together = make_provider(None, slug="together")
    creds = {
        "openai": make_credential(org, openai, name="openai-main"),
        "groq": make_credential(org, groq, name="groq-main"),
        "together": make_credential(org, together, name="together-main"),
    }
    models = {
        "gpt": make_model(
            openai,
            "gpt-4o",
            canonical_slug="openai/gpt-4o-2024-08-06",
            pricing_prompt=Decimal("0.0000025"),
            pricing_completion=Decimal("0.00001"),
            context_length=128000,
            supports_vision=True,
            supports_tools=True,
        ),
        "mini": make_model(
            openai,
            "gpt-4o-mini",
            pricing_prompt=Decimal("0.00000015"),
            pricing_completion=Decimal("0.0000006"),
            context_length=128000,
            supports_vision=True,
        ),
        "groq_llama": make_model(
            groq,
            "llama-3.1-8b-instruct",
            pricing_prompt=Decimal("0.00000005"),
            pricing_completion=Decimal("0.00000008"),
            context_length=8192,
        ),
        "together_llama": make_model(
            together,
            "meta-llama/Llama-3.1-8B-Instruct",
            hugging_face_id="meta-llama/Llama-3.1-8B-Instruct",
            pricing_prompt=Decimal("0.00000018"),
            pricing_completion=Decimal("0.00000018"),
            context_length=131072,
        ),
    }
    return {"providers": {"openai": openai, "groq": groq, "together": together}, **creds, **models}


# --- Rule matching ---------------------------------------------------------------------------


def test_exact_rule_matches_only_its_model(org, world):
    rule = make_rule(org, [world["mini"]], match_model="gpt-4o")
    assert route(org, "gpt-4o").rule == rule
    assert plan_models(route(org, "gpt-4o")) == [world["mini"]]
    assert route(org, "gpt-4o-mini").rule is None


@pytest.mark.parametrize(
    ("pattern", "requested", "matches"),
    [
        ("gpt-*", "gpt-4o", True),
        ("gpt-*", "claude-3", False),
        ("*", "anything/at-all", True),
        ("llama-3.?-8b", "llama-3.1-8b", True),
        ("llama-3.?-8b", "llama-3.10-8b", False),
        ("GPT-*", "gpt-4o", False),
    ],
)
def test_wildcard_rules(pattern, requested, matches, org, world):
    rule = make_rule(org, [world["mini"]], match_model=pattern)
    assert (route(org, requested).rule == rule) is matches


def test_model_type_narrows_a_rule(org, world):
    rule = make_rule(org, [world["mini"]], model_type="embedding")
    assert route(org, "x", model_type="chat").rule is None
    assert route(org, "x", model_type="embedding").rule == rule


@pytest.mark.parametrize(
    ("tokens", "matches"), [(0, False), (999, False), (1000, True), (5000, True), (5001, False)]
)
def test_token_conditions(tokens, matches, org, world):
    rule = make_rule(
        org, [world["mini"]], conditions={"min_input_tokens": 1000, "max_input_tokens": 5000}
    )
    assert (route(org, "x", estimated_input_tokens=tokens).rule == rule) is matches


def plan_summary(plan):
    return (
        plan.rule,
        [(c.model, c.credential) for c in plan.candidates],
        [(r.model, r.reason, r.detail) for r in plan.rejected],
        plan.unresolved,
    )


def test_a_plan_holds_for_every_count_in_its_band(org, world):
    # The gateway keys its cached plans by band of input tokens: a plan said to fit
    # another count must be the plan evaluating that count gives, detail for detail.
    make_rule(
        org,
        [world["groq_llama"], world["mini"]],
        conditions={"min_input_tokens": 1000, "max_input_tokens": 5000},
    )
    # A rule for other models adds no band, and a condition it never reads (saved through
    # the admin as text) breaks nothing.
    make_rule(org, [world["gpt"]], match_model="other-*", conditions={"min_input_tokens": "a"})
    counts = [0, 1, 998, 999, 1000, 1001, 4999, 5000, 5001, 8191, 8192, 8193, 128000, 128001]
    counts += [131072, 131073]
    for name in ("x", "llama-3.1-8b-instruct"):
        plans = {n: route(org, name, estimated_input_tokens=n) for n in counts}
        fitting = 0
        for plan in plans.values():
            assert plan.token_bounds is not None
            for other in counts:
                if plan.fits(other):
                    fitting += 1
                    assert plan_summary(plan.for_tokens(other)) == plan_summary(plans[other])
        # Within a band the plan is shared; across a bound it is not.
        assert plans[5001].fits(8192) and plans[8193].fits(128000)
        assert not plans[999].fits(1000) and not plans[5000].fits(5001)
        assert fitting < len(counts) ** 2
    assert not plans[8192].fits(8193) and not plans[131072].fits(131073)
    assert plans[0].token_bounds == (0, 999, 5000, 8192, 131072)
    too_long = plans[8193].for_tokens(9000)
    assert (
        too_long.rejected[0].detail == "Context length 8192 is smaller than the 9000 input tokens."
    )


def test_an_auto_plan_holds_only_for_its_own_count(org, world):
    plan = route(org, "auto", estimated_input_tokens=100)
    assert plan.token_bounds is None
    assert plan.fits(100) and not plan.fits(101)


def test_tag_conditions_need_every_tag(org, world):
    rule = make_rule(org, [world["mini"]], conditions={"tags": ["prod", "eu"]})
    assert route(org, "x", tags=frozenset({"prod"})).rule is None
    assert route(org, "x", tags=frozenset({"prod", "eu", "extra"})).rule == rule


def test_rules_are_tried_by_priority_and_inactive_ones_skipped(org, world):
    make_rule(org, [world["gpt"]], name="low", priority=50, is_active=False)
    second = make_rule(org, [world["mini"]], name="second", priority=20)
    make_rule(org, [world["groq_llama"]], name="third", priority=30)
    assert route(org, "x").rule == second


def test_rules_of_another_organization_are_ignored(org, other_org, world):
    make_rule(other_org, [world["mini"]], match_model="*")
    assert route(org, "gpt-4o").rule is None


# --- Strategies --------------------------------------------------------------------------


def test_priority_keeps_target_order(org, world):
    make_rule(org, [world["gpt"], world["groq_llama"], world["mini"]], strategy="priority")
    assert plan_models(route(org, "x")) == [world["gpt"], world["groq_llama"], world["mini"]]


def test_cheapest_orders_by_prompt_plus_completion_price(org, world):
    unpriced = make_model(
        world["providers"]["groq"], "mystery", pricing_prompt=None, pricing_completion=None
    )
    make_rule(
        org,
        [world["gpt"], unpriced, world["together_llama"], world["mini"], world["groq_llama"]],
        strategy="cheapest",
    )
    # 0.00000013 < 0.00000036 < 0.00000075 < 0.0000125, and no price last.
    assert plan_models(route(org, "x")) == [
        world["groq_llama"],
        world["together_llama"],
        world["mini"],
        world["gpt"],
        unpriced,
    ]


def test_lowest_latency_uses_recent_successful_metrics(org, other_org, world):
    gpt, mini, llama = world["gpt"], world["mini"], world["groq_llama"]
    make_rule(org, [gpt, mini, llama], strategy="lowest_latency")
    recent = NOW - timedelta(hours=1)
    for latency in (300, 500):  # mean 400
        make_metric(org, model=gpt, latency_ms=latency, created_at=recent)
    make_metric(org, model=mini, latency_ms=900, created_at=recent)
    # Ignored: failures, rows older than a day, other organizations' rows.
    make_metric(org, model=mini, latency_ms=1, success=False, created_at=recent)
    make_metric(org, model=mini, latency_ms=1, created_at=NOW - timedelta(days=2))
    make_metric(other_org, model=mini, latency_ms=1, created_at=recent)

    plan = route(org, "x")

    assert plan_models(plan) == [gpt, mini, llama]  # no observation: last
    assert [c.observed_latency_ms for c in plan.candidates] == [400.0, 900.0, None]


def test_weighted_order_follows_the_weights(org, world):
    weighted_rule(org, world, (1, 3, 0))
    rules = list(
        RoutingRule.objects.prefetch_related("targets__model__provider", "targets__credential")
    )
    rng = random.Random(1234)
    firsts = Counter()
    lasts = Counter()
    for _ in range(2000):
        plan = evaluate(organization=org, request=RouteRequest("x"), now=NOW, rng=rng, rules=rules)
        firsts[plan.candidates[0].model.provider_model_id] += 1
        lasts[plan.candidates[-1].model.provider_model_id] += 1
        assert len(plan.candidates) == 3
    # Weight 3 against 1: first about 75% of the time; weight 0 never first, always last.
    assert 0.70 < firsts["llama-3.1-8b-instruct"] / 2000 < 0.80
    assert firsts["meta-llama/Llama-3.1-8B-Instruct"] == 0
    assert lasts["meta-llama/Llama-3.1-8B-Instruct"] == 2000


def test_a_weighted_plan_drawn_again_follows_the_weights(org, world):
    """A cached plan's order is drawn again for each request (``RoutingPlan.drawn``), with
    the same odds as evaluating it each time; the evaluation itself runs once."""
    weighted_rule(org, world, (1, 3, 0))
    with CaptureQueriesContext(connection) as evaluated:
        plan = route(org, "x", rng=random.Random(5))
    rng = random.Random(1234)
    firsts = Counter()
    with CaptureQueriesContext(connection) as drawn:
        for _ in range(2000):
            again = plan.drawn(rng)
            firsts[again.candidates[0].model.provider_model_id] += 1
            assert again.candidates[-1].model == world["together_llama"]
            assert sorted(c.pk for c in plan_models(again)) == sorted(
                c.pk for c in plan_models(plan)
            )
    assert evaluated.captured_queries and not drawn.captured_queries
    assert 0.70 < firsts["llama-3.1-8b-instruct"] / 2000 < 0.80
    # The cached plan itself is left as it was evaluated.
    assert plan.drawn(rng) is not plan
    assert plan_models(plan) == plan_models(route(org, "x", rng=random.Random(5)))


def test_a_drawn_plan_keeps_the_preferences_and_the_rule_without_fallbacks(org, world):
    weighted_rule(org, world, (1, 1, 1), fallback_enabled=False)
    plan = route(org, "x", rng=random.Random(3))
    rng = random.Random(11)
    firsts = Counter()
    for _ in range(300):
        again = plan.drawn(rng)
        assert len(again.candidates) == 1
        # The other two, set aside for this draw as evaluation would have.
        assert sorted(r.reason for r in again.rejected) == [Reason.FALLBACK_DISABLED] * 2
        firsts[again.candidates[0].model.pk] += 1
    assert len(firsts) == 3
    assert len(plan.rejected) == 2  # the cached plan's own rejections are untouched

    # Provider preferences apply after each draw: ``order`` puts together first, always.
    preferred = route(
        org,
        "x",
        rng=random.Random(3),
        preferences=ProviderPreferences.build(order=["together"]),
    )
    for _ in range(50):
        assert preferred.drawn(rng).candidates[0].model == world["together_llama"]


def test_only_a_weighted_plan_is_drawn_again(org, world):
    make_rule(org, [world["gpt"], world["mini"]], strategy="priority")
    plan = route(org, "x")
    assert plan.drawn(random.Random(1)) is plan


def test_weighted_is_deterministic_for_a_seed(org, world):
    make_rule(org, [world["gpt"], world["mini"], world["groq_llama"]], strategy="weighted")
    first = [plan_models(route(org, "x", rng=random.Random(7))) for _ in range(3)]
    assert first[0] == first[1] == first[2]


def test_weighted_credential_weight_zero_goes_last(org, world):
    spare = make_credential(org, world["providers"]["groq"], name="spare", weight=0)
    make_rule(org, [world["groq_llama"]], strategy="weighted")
    rng = random.Random(99)
    for _ in range(200):
        plan = route(org, "x", rng=rng)
        assert [c.credential for c in plan.candidates] == [world["groq"], spare]


# --- Rejections ----------------------------------------------------------------------------


def test_inactive_model_or_provider_is_rejected(org, world):
    world["gpt"].is_active = False
    world["gpt"].save()
    groq = world["providers"]["groq"]
    groq.is_active = False
    groq.save()
    make_rule(org, [world["gpt"], world["groq_llama"], world["mini"]])
    plan = route(org, "x")
    assert plan_models(plan) == [world["mini"]]
    assert reasons(plan) == [
        (world["gpt"], Reason.MODEL_INACTIVE),
        (world["groq_llama"], Reason.MODEL_INACTIVE),
    ]


def test_no_credential(org, world):
    lonely = make_provider(None, slug="lonely")
    model = make_model(lonely, "lonely-1")
    make_rule(org, [model, world["mini"]])
    plan = route(org, "x")
    assert plan_models(plan) == [world["mini"]]
    assert reasons(plan) == [(model, Reason.NO_CREDENTIAL)]
    assert "lonely" in plan.rejected[0].detail


def test_credential_problems(org, world):
    provider = world["providers"]["openai"]
    world["openai"].delete()
    make_credential(org, provider, name="inactive", is_active=False, priority=1)
    cooling = make_credential(org, provider, name="cooling", priority=2)
    ProviderCredential.objects.filter(pk=cooling.pk).update(
        health_status="unhealthy", cooldown_until=NOW + timedelta(seconds=30)
    )
    cooled = make_credential(org, provider, name="cooled", priority=3)
    ProviderCredential.objects.filter(pk=cooled.pk).update(
        health_status="unhealthy", cooldown_until=NOW - timedelta(seconds=1)
    )
    spent = make_credential(org, provider, name="spent", priority=4, quota_cost=Decimal("10"))
    ProviderCredential.objects.filter(pk=spent.pk).update(
        used_cost=Decimal("10"), period_started_at=NOW
    )
    # Spent last month: the counters roll over, so the quota is available again.
    renewed = make_credential(org, provider, name="renewed", priority=5, quota_requests=1)
    ProviderCredential.objects.filter(pk=renewed.pk).update(
        used_requests=1, period_started_at=NOW - timedelta(days=40)
    )
    make_rule(org, [world["mini"]])

    plan = route(org, "x")

    assert [c.credential.name for c in plan.candidates] == ["cooled", "renewed"]
    assert [(r.credential.name, r.reason) for r in plan.rejected] == [
        ("inactive", Reason.CREDENTIAL_INACTIVE),
        ("cooling", Reason.CREDENTIAL_COOLING_DOWN),
        ("spent", Reason.OVER_QUOTA),
    ]
    assert "cost" in plan.rejected[2].detail
    # Time alone changes this plan when the cooldown ends (before the month does).
    assert plan.changes_at == NOW + timedelta(seconds=30)


def test_a_plan_changes_by_itself_when_a_used_up_quota_period_ends(org, world):
    provider = world["providers"]["openai"]
    world["openai"].delete()
    spent = make_credential(
        org, provider, name="spent", quota_requests=5, quota_period=QuotaPeriod.HOUR
    )
    ProviderCredential.objects.filter(pk=spent.pk).update(used_requests=5, period_started_at=NOW)
    make_rule(org, [world["mini"]])
    assert route(org, "x").changes_at == NOW + timedelta(hours=1)
    # Nothing that time alone changes: no such moment.
    ProviderCredential.objects.filter(pk=spent.pk).update(used_requests=0)
    assert route(org, "x").changes_at is None


def test_pinned_credential_is_the_only_one_tried(org, world):
    second = make_credential(org, world["providers"]["openai"], name="second")
    make_rule(org, [(world["mini"], second, 1)])
    plan = route(org, "x")
    assert [c.credential for c in plan.candidates] == [second]


def test_context_too_small_and_capability_missing(org, world):
    make_rule(org, [world["groq_llama"], world["mini"], world["gpt"]])
    plan = route(org, "x", estimated_input_tokens=10000)
    assert plan_models(plan) == [world["mini"], world["gpt"]]
    assert reasons(plan) == [(world["groq_llama"], Reason.CONTEXT_TOO_SMALL)]

    plan = route(org, "x", required_capabilities=frozenset({"tools", "vision"}))
    assert plan_models(plan) == [world["gpt"]]
    assert reasons(plan) == [
        (world["groq_llama"], Reason.CAPABILITY_MISSING),
        (world["mini"], Reason.CAPABILITY_MISSING),
    ]
    assert plan.rejected[1].detail == "Missing capability: tools."


def test_fallback_disabled_keeps_only_the_first_candidate(org, world):
    make_rule(org, [world["mini"], world["groq_llama"], world["gpt"]], fallback_enabled=False)
    plan = route(org, "x")
    assert plan_models(plan) == [world["mini"]]
    assert reasons(plan) == [
        (world["groq_llama"], Reason.FALLBACK_DISABLED),
        (world["gpt"], Reason.FALLBACK_DISABLED),
    ]
    assert plan.fallback_enabled is False


# --- Without a rule ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["openai/gpt-4o", "gpt-4o", "openai/gpt-4o-2024-08-06"],
    ids=["catalog", "own", "canonical"],
)
def test_a_catalog_model_resolves_to_itself(name, org, world):
    plan = route(org, name)
    assert plan.rule is None and plan.strategy == "priority"
    assert plan_models(plan) == [world["gpt"]]
    assert plan.candidates[0].credential == world["openai"]
    assert plan.candidates[0].credential_source == "organization"


def test_equivalent_models_at_other_providers_cheapest_first(org, world):
    openrouter = make_provider(None, slug="openrouter")
    make_credential(org, openrouter, name="or")
    via_hf = make_model(
        openrouter,
        "meta-llama/llama-3.1-8b-instruct:free",
        hugging_face_id="META-LLAMA/Llama-3.1-8B-Instruct",
        pricing_prompt=Decimal("0.00000001"),
        pricing_completion=Decimal("0.00000001"),
    )
    unrelated = make_model(openrouter, "qwen/qwen-2.5-7b")

    plan = route(org, "together/meta-llama/Llama-3.1-8B-Instruct")

    # The requested one first, then the same weights elsewhere by price:
    # openrouter (hugging_face_id) 0.00000002 < groq (base name) 0.00000013.
    assert plan_models(plan) == [world["together_llama"], via_hf, world["groq_llama"]]
    assert unrelated not in plan_models(plan)


def test_equivalents_by_canonical_slug(org, world):
    mirror = make_model(
        world["providers"]["together"],
        "gpt4o-mirror",
        canonical_slug="openai/gpt-4o-2024-08-06",
        pricing_prompt=Decimal("0.000001"),
    )
    assert plan_models(route(org, "openai/gpt-4o")) == [world["gpt"], mirror]


def test_several_providers_listing_the_requested_name_cheapest_first(org, world):
    pricey = make_model(
        world["providers"]["together"], "llama-3.1-8b-instruct", pricing_prompt=Decimal("1")
    )
    plan = route(org, "llama-3.1-8b-instruct")
    assert plan_models(plan)[:2] == [world["groq_llama"], pricey]


def test_fallback_models_follow_the_requested_one(org, world):
    plan = route(org, "gpt-4o", fallback_models=("groq/llama-3.1-8b-instruct", "no/such-model"))
    assert plan_models(plan) == [world["gpt"], world["groq_llama"]]
    assert plan.unresolved == ["no/such-model"]


def test_an_unknown_model_is_unresolved(org, world):
    plan = route(org, "nope")
    assert plan.candidates == [] and plan.unresolved == ["nope"]


def test_other_organizations_private_models_are_not_resolved(org, other_org, world):
    theirs = make_model(make_provider(other_org, slug="theirs"), "secret-llm")
    make_credential(other_org, theirs.provider, name="k")
    plan = route(org, "secret-llm")
    assert plan.candidates == [] and plan.rejected == []
    assert plan.unresolved == ["secret-llm"]


def test_auto_picks_cheapest_usable_models(org, world):
    lonely = make_model(make_provider(None, slug="lonely"), "cheap", pricing_prompt=Decimal("0"))
    embed = make_model(
        world["providers"]["openai"],
        "text-embedding-3-small",
        modality="text->embedding",
        pricing_prompt=Decimal("0.00000001"),
    )
    plan = route(org, "auto")
    models = plan_models(plan)
    assert lonely not in models  # no credential for its provider
    assert embed not in models
    assert models == [world["groq_llama"], world["mini"], world["together_llama"], world["gpt"]]

    plan = route(org, "auto", model_type="embedding")
    assert plan_models(plan) == [embed]
    plan = route(
        org, "auto", required_capabilities=frozenset({"vision"}), estimated_input_tokens=9000
    )
    assert plan_models(plan) == [world["mini"], world["gpt"]]


def test_env_credentials_when_allowed(org, world, settings, monkeypatch):
    world["openai"].delete()
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    settings.GATEWAY_ALLOW_ENV_CREDENTIALS = True
    assert reasons(route(org, "gpt-4o")) == [(world["gpt"], Reason.NO_CREDENTIAL)]

    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    plan = route(org, "gpt-4o")
    assert plan_models(plan) == [world["gpt"]]
    assert plan.candidates[0].credential is None
    assert plan.candidates[0].credential_source == "environment"

    settings.GATEWAY_ALLOW_ENV_CREDENTIALS = False
    assert route(org, "gpt-4o").candidates == []


def test_env_credentials_serve_the_default_organization(
    org, other_org, world, settings, monkeypatch
):
    """The zero-setup organization uses the server's keys; others need their own."""
    world["openai"].delete()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    settings.GATEWAY_ALLOW_ENV_CREDENTIALS = False
    settings.DEFAULT_ORGANIZATION_SLUG = org.slug
    plan = route(org, "gpt-4o")
    assert [c.credential_source for c in plan.candidates] == ["environment"]
    assert route(other_org, "gpt-4o").candidates == []


def test_ollama_models_answer_to_their_untagged_name(org):
    ollama = make_provider(org, slug="ollama", requires_api_key=False, api_format="ollama")
    tagged = make_model(ollama, "llama2:latest")
    bigger = make_model(ollama, "llama2:13b")
    # The untagged name means :latest; other tags of the same weights only follow as
    # fallbacks, as equivalent models always do.
    assert plan_models(route(org, "llama2"))[0] == tagged
    assert plan_models(route(org, "ollama/llama2"))[0] == tagged
    assert plan_models(route(org, "llama2:13b"))[0] == bigger


def test_env_credentials_never_serve_private_providers(org, settings, monkeypatch):
    settings.GATEWAY_ALLOW_ENV_CREDENTIALS = True
    monkeypatch.setenv("SHARED_KEY", "sk-env")
    model = make_model(make_provider(org, slug="mine", api_key_env_var="SHARED_KEY"), "m")
    assert reasons(route(org, "mine/m")) == [(model, Reason.NO_CREDENTIAL)]


def test_keyless_providers_need_no_credential(org):
    ollama = make_provider(org, slug="ollama", requires_api_key=False)
    model = make_model(ollama, "llama3.2")
    plan = route(org, "ollama/llama3.2")
    assert plan_models(plan) == [model]
    assert plan.candidates[0].credential_source == "none"


# --- The evaluate endpoint -------------------------------------------------------------------


def test_evaluate_endpoint_shape(org, world, member_client):
    rule = make_rule(
        org,
        [world["groq_llama"], world["mini"]],
        name="small",
        match_model="small-*",
        strategy="cheapest",
        max_attempts=2,
    )
    before = db_state()
    response = member_client.post(
        f"{API}/routing-rules/evaluate/",
        {"model": "small-chat", "estimated_input_tokens": 9000, "tags": ["a"]},
        format="json",
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["matched_rule"] == {"id": rule.pk, "name": "small"}
    assert (body["strategy"], body["fallback_enabled"], body["max_attempts"]) == (
        "cheapest",
        True,
        2,
    )
    assert body["candidates"] == [
        {
            "model": world["mini"].pk,
            "model_id": "openai/gpt-4o-mini",
            "provider_model_id": "gpt-4o-mini",
            "provider": "openai",
            "credential": world["openai"].pk,
            "credential_source": "organization",
            "pricing_prompt": "0.000000150000000000",
            "pricing_completion": "0.000000600000000000",
            "context_length": 128000,
            "observed_latency_ms": None,
            "observed_throughput": None,
        }
    ]
    assert body["rejected"] == [
        {
            "model": world["groq_llama"].pk,
            "model_id": "groq/llama-3.1-8b-instruct",
            "requested": "small-chat",
            "credential": None,
            "reason": "context_too_small",
            "detail": "Context length 8192 is smaller than the 9000 input tokens.",
        }
    ]
    assert body["unresolved"] == []
    assert db_state() == before


def test_evaluate_without_a_match(org, world, member_client):
    body = member_client.post(
        f"{API}/routing-rules/evaluate/", {"model": "nothing"}, format="json"
    ).json()
    assert body["matched_rule"] is None
    assert body["candidates"] == [] and body["unresolved"] == ["nothing"]


# --- Query counts ----------------------------------------------------------------------------


def populate(org, n):
    """``n`` providers, each with a model, a credential and an equivalent model; ``n`` rules
    with ``n`` targets each, and latency metrics for every model."""
    models = []
    for i in range(n):
        provider = make_provider(None, slug=f"qp{n}-{i}")
        make_credential(org, provider, name="a")
        make_credential(org, provider, name="b")
        models.append(make_model(provider, "shared-base-model", pricing_prompt=Decimal(i + 1)))
        make_model(provider, f"vendor/other-{i}")
        ModelMetric.objects.create(
            organization=org, model=models[-1], requested_model="x", created_at=NOW
        )
    for i in range(n):
        make_rule(
            org,
            models,
            name=f"rule-{n}-{i}",
            match_model=f"route-{n}-{i}",
            strategy="lowest_latency",
        )
    return models


def count_queries(org, model, **kwargs):
    with CaptureQueriesContext(connection) as captured:
        plan = route(org, model, **kwargs)
    return len(captured), plan


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        # rules + their targets, credentials, latencies
        (lambda n: f"route-{n}-{n - 1}", 4),
        # rules + targets, direct names, equivalents (candidate ids by name, then the
        # rows), credentials
        (lambda n: "shared-base-model", 6),
        (lambda n: "auto", 4),
    ],
    ids=["rule", "no-rule", "auto"],
)
def test_evaluator_query_count_is_constant(
    requested, expected, org, other_org, django_assert_num_queries
):
    small_models = populate(org, 2)
    small_count, small_plan = count_queries(org, requested(2))
    large_models = populate(other_org, 30)
    large_count, large_plan = count_queries(other_org, requested(30))

    assert small_count == large_count == expected
    assert len(small_plan.candidates) >= 2
    assert len(large_plan.candidates) >= min(len(large_models), 10)
    assert small_models
    with django_assert_num_queries(expected):
        route(other_org, requested(30))
