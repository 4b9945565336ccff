"""Reserve: the rate limits and budgets of a client key and of its organization, taken
together before any upstream is called.

The counters and their atomic backends are in :mod:`gateway.limits`; this stage computes
what one request reserves (its estimated tokens, its worst-case cost) and gives back the
difference once it is settled. A settled request that carries a budget past one of the
thresholds the organization's webhooks watch queues their events (on a database thread,
off the event loop); the comparison itself needs no query.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING

from django.utils import timezone

from gateway import limits
from gateway.errors import ServiceUnavailable
from gateway.parse import output_bound, prompt_bound, prompt_size
from modelhub.routing import Candidate
from modelhub.services import estimate_cost, webhook_budget_crossed

if TYPE_CHECKING:
    from gateway.call import GatewayCall

logger = logging.getLogger(__name__)


def worst_case_cost(call: GatewayCall, candidates: list[Candidate]) -> Decimal:
    """What the request costs at most, on the most expensive candidate it may reach.

    Budgets reserve this, not a guess: a guess lets concurrent requests spend past the
    budget by whatever they use beyond it. Settling gives back the difference.
    """
    size = prompt_size(call.body)
    return max(
        (
            estimate_cost(
                model=c.model,
                usage={
                    "input_tokens": prompt_bound(call.body, c.model, size),
                    "output_tokens": output_bound(
                        call.body, call.endpoint, call.estimated_input_tokens, c.model
                    ),
                    "requests": 1,
                },
            ).total
            for c in candidates
        ),
        default=Decimal(0),
    )


async def reserve_limits(call: GatewayCall, candidates: list[Candidate]) -> None:
    key = call.key
    if not limits.has_limits(key):
        return
    budgeted = key.budget_amount is not None or key.organization.budget_amount is not None
    reservation = limits.request_windows(
        key,
        estimated_tokens=call.estimated_input_tokens + call.estimated_output_tokens,
        worst_case_cost=worst_case_cost(call, candidates) if budgeted else Decimal(0),
        now=timezone.now(),
    )
    # A client that hangs up while the reservation is under way must not leave the
    # counters raised by a request that never ran (a budget would keep its worst case
    # for the rest of the period): the limiter gives such a reservation back.
    try:
        failed = await call.runtime.limiter.reserve(
            reservation.windows, partial(_release_abandoned, call, reservation)
        )
    except Exception as error:
        # Fail closed: serving without the check would let a budget be overspent.
        logger.exception("Could not reserve the limits of request %s", call.request_id)
        raise ServiceUnavailable(
            "The gateway cannot check this key's rate limits and budgets right now (its "
            "counter store did not answer), so the request was not sent. Retry shortly.",
            code="limits_unavailable",
            headers={"Retry-After": "1"},
        ) from error
    if failed is not None:
        raise limits.reject(failed)
    call.reservation = reservation


def _release_abandoned(call: GatewayCall, reservation: limits.Reservation) -> None:
    """The counters were raised after the client left: give the request's share back."""
    call.reservation = reservation
    call.runtime.spawn(settle_limits(call, 0, Decimal(0)))


def settle_limits_soon(call: GatewayCall, tokens: int, cost: Decimal) -> bool:
    """Queue the settle when the limiter coalesces them (Redis): the request goes on at
    once. False when it must be awaited (``settle_limits``)."""
    if call.reservation is None:
        return True
    return limits.settle_soon(
        call.runtime.limiter,
        call.reservation,
        tokens=tokens,
        cost=cost,
        announce=lambda crossing: call.runtime.spawn(_announce(call, crossing)),
    )


async def settle_limits(call: GatewayCall, tokens: int, cost: Decimal) -> None:
    if call.reservation is None:
        return
    if settle_limits_soon(call, tokens, cost):
        return
    try:
        crossings = await limits.settle(
            call.runtime.limiter, call.reservation, tokens=tokens, cost=cost
        )
    except Exception:
        logger.exception("Could not settle the limits of request %s", call.request_id)
        return
    for crossing in crossings:
        call.runtime.spawn(_announce(call, crossing))


async def _announce(call: GatewayCall, crossing: limits.Crossing) -> None:
    """Queue the webhook events of the thresholds a request's spend crossed."""
    budget = crossing.budget
    try:
        await call.runtime.db(
            webhook_budget_crossed,
            organization_id=call.key.organization.pk,
            subject=budget.subject,
            subject_id=budget.subject_id,
            amount=budget.amount,
            period=budget.period,
            period_start=budget.period_start,
            spent=limits.from_picodollars(crossing.after),
            thresholds=crossing.thresholds,
        )
    except Exception:
        logger.exception(
            "Could not queue the budget events of request %s (thresholds %s)",
            call.request_id,
            crossing.thresholds,
        )
