"""Authorize and plan: the routing plan for a request and the candidates its key may use.

Plans come from modelhub's evaluator and are cached briefly per organization and
request shape; when no candidate is left, the error says why (not allowed, unknown,
cooling down, over quota) so the client can act on it.
"""

from __future__ import annotations

from django.utils import timezone

from gateway.call import GatewayCall
from gateway.errors import ModelNotFound, PermissionDenied, RateLimited, ServiceUnavailable
from modelhub.routing import Candidate, Reason, RouteRequest, RoutingPlan, active_rules, evaluate


async def load_plan(call: GatewayCall) -> RoutingPlan:
    runtime = call.runtime
    organization = call.key.organization
    request = RouteRequest(
        requested_model=call.requested_model,
        model_type=call.endpoint.model_type,
        fallback_models=call.fallback_models,
        estimated_input_tokens=call.estimated_input_tokens,
    )

    async def load() -> RoutingPlan:
        rules = await runtime.rules.get_or_load(
            organization.pk, lambda: runtime.db(active_rules, organization)
        )
        return await runtime.db(evaluate, organization=organization, request=request, rules=rules)

    return await runtime.plans.get_or_load((organization.pk, request), load)


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
    if reasons <= {Reason.CREDENTIAL_COOLING_DOWN, Reason.OVER_QUOTA, Reason.DUPLICATE}:
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
    detail = "; ".join(sorted({r.detail for r in plan.rejected}))
    raise ModelNotFound(
        f"The model '{call.requested_model}' is not available to your organization: {detail}",
        param="model",
    )
