"""Authorize and plan: the routing plan for a request and the candidates its key may use.

Plans come from modelhub's evaluator and are cached per organization, request shape (its
provider preferences included: they are part of the ``RouteRequest`` key) and band of
prompt sizes, until a write drops them (see :mod:`gateway.invalidation`), time alone
changes them (``RoutingPlan.changes_at``) or ``GATEWAY_PLAN_CACHE_SECONDS`` pass. A
weighted plan's order is drawn for each request. When no candidate is left, the error
says why (not allowed, unknown, cooling down, over quota, dropped by the provider
preferences) so the client can act on it.
"""

from __future__ import annotations

import dataclasses
import random
from bisect import bisect_left

from django.utils import timezone

from gateway.call import GatewayCall
from gateway.errors import ModelNotFound, PermissionDenied, RateLimited, ServiceUnavailable
from modelhub.routing import (
    PREFERENCE_REASONS,
    Candidate,
    Reason,
    RouteRequest,
    RoutingPlan,
    active_rules,
    evaluate,
)

# Reasons that pass: a credential back from its cooldown or a new quota period.
TEMPORARY_REASONS = {Reason.CREDENTIAL_COOLING_DOWN, Reason.OVER_QUOTA, Reason.DUPLICATE}
# In place of the bands of a shape whose plans hold for their own count only.
EXACT = object()
# Draws the order of weighted plans.
DRAWS = random.Random()


def _bands(plan: RoutingPlan) -> tuple[int, ...] | object:
    """What the plan says of its shape's bands: its token bounds, or EXACT."""
    return EXACT if plan.token_bounds is None else plan.token_bounds


async def load_plan(call: GatewayCall) -> RoutingPlan:
    runtime = call.runtime
    plans = runtime.plans
    organization = call.key.organization
    tokens = call.estimated_input_tokens
    shape = RouteRequest(
        requested_model=call.requested_model,
        model_type=call.endpoint.model_type,
        fallback_models=call.fallback_models,
        preferences=call.preferences,
        parameters=call.parameters,
    )
    # Prompts differ in length from one request to the next, and a plan keyed by the
    # exact count would be evaluated (queries on a database thread) for nearly every
    # request. A plan holds for a band of counts (RoutingPlan.token_bounds): the bands
    # learnt for this shape of request key the plans.
    bounds_key = (organization.pk, shape)
    bounds = plans.get(bounds_key, None)

    async def load() -> RoutingPlan:
        rules = await runtime.rules.get_or_load(
            organization.pk, lambda: runtime.db(active_rules, organization)
        )
        request = dataclasses.replace(shape, estimated_input_tokens=tokens)
        plan = await runtime.db(evaluate, organization=organization, request=request, rules=rules)
        plans.set(bounds_key, _bands(plan))
        return plan

    def ttl(plan: RoutingPlan) -> float:
        # Not past the moment time alone changes it (a cooldown ends, a quota period rolls
        # over): writes are announced and drop it, that moment is not.
        if plan.changes_at is None:
            return plans.ttl
        return min(plans.ttl, max((plan.changes_at - timezone.now()).total_seconds(), 0.0))

    if bounds is None:
        # Bands not known yet (the first request of the shape, or the cache was dropped):
        # requests in flight wait for one evaluation and take its plan where it holds for
        # their count. Each evaluating its own held the event loop's interpreter for as
        # long as a burst of plans took, after every invalidation.
        plan = await plans.get_or_load((*bounds_key, None), load, ttl)
        if plan.fits(tokens):
            return plan.for_tokens(tokens).drawn(DRAWS)
        bounds = _bands(plan)
    band = ("tokens", tokens) if bounds is EXACT else bisect_left(bounds, tokens)
    plan = await plans.get_or_load((*bounds_key, band), load, ttl)
    if not plan.fits(tokens):
        # The bands changed with the catalog or the rules since they were learnt, or this
        # band's plan holds for its own count only (``auto`` outside the rules).
        plan = await plans.get_or_load((*bounds_key, "tokens", tokens), load, ttl)
    # A weighted plan's order is drawn for each request, not once per cached plan.
    return plan.for_tokens(tokens).drawn(DRAWS)


def usable_candidates(call: GatewayCall, plan: RoutingPlan) -> list[Candidate]:
    """The plan's candidates this key may use, or the error that explains why none."""
    key = call.key
    if plan.rule is not None and key.allows(call.requested_model):
        candidates = list(plan.candidates)
    else:
        candidates = [c for c in plan.candidates if key.allows_model(c.model)]
    if candidates:
        return candidates
    if plan.candidates:
        raise PermissionDenied(
            f"This API key is not allowed to use the model '{call.requested_model}'.",
            param="model",
        )
    reasons = {rejection.reason for rejection in plan.rejected}
    if not plan.rejected:
        raise ModelNotFound(
            f"The model '{call.requested_model}' does not exist or you do not have access to it.",
            param="model",
        )
    if not any(key.allows_model(r.model) for r in plan.rejected if r.model is not None):
        raise PermissionDenied(
            f"This API key is not allowed to use the model '{call.requested_model}'.",
            param="model",
        )
    # What the provider preferences left may be only cooling down or over quota: then
    # that is the answer (retry later), not the preferences.
    other_reasons = reasons - PREFERENCE_REASONS
    if other_reasons and other_reasons <= TEMPORARY_REASONS:
        if Reason.CREDENTIAL_COOLING_DOWN in reasons:
            ends = [
                r.credential.cooldown_until
                for r in plan.rejected
                if r.reason == Reason.CREDENTIAL_COOLING_DOWN
                and r.credential is not None
                and r.credential.cooldown_until is not None
            ]
            wait = (
                max(min((end - timezone.now()).total_seconds() for end in ends), 1) if ends else 1
            )
            raise ServiceUnavailable(
                "Every provider credential for this model is cooling down after failures.",
                headers={"Retry-After": str(int(wait) + 1)},
            )
        raise RateLimited(
            "Every provider credential for this model has used up its quota for the period.",
            retry_after=60,
            code="quota_exceeded",
        )
    if reasons & PREFERENCE_REASONS:
        raise ModelNotFound(
            f"No provider left for model '{call.requested_model}' after your provider "
            f"preferences: {'; '.join(dict.fromkeys(r.detail.rstrip('.') for r in plan.rejected))}.",
            param="provider",
            code="no_provider_left",
        )
    detail = "; ".join(sorted({r.detail for r in plan.rejected}))
    raise ModelNotFound(
        f"The model '{call.requested_model}' is not available to your organization: {detail}",
        param="model",
    )
