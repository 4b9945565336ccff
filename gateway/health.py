"""Credential health: every upstream outcome that speaks for or against a credential.

The one place that records a credential's failures (which put it in cooldown) and its
recovery; either way the cached plans are dropped so the next request routes on the
new state.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from gateway.errors import AttemptFailed
from gateway.telemetry import UPSTREAM_ERRORS, series_labels
from modelhub.models import HealthStatus
from modelhub.redaction import bounded
from modelhub.routing import Candidate
from modelhub.services import provider_credential_record_failure, provider_credential_record_success

if TYPE_CHECKING:
    from gateway.call import GatewayCall

logger = logging.getLogger(__name__)


def note_success(call: GatewayCall, candidate: Candidate) -> None:
    credential = candidate.credential
    if credential is None:
        return
    if credential.consecutive_failures or credential.health_status != HealthStatus.HEALTHY:
        runtime = call.runtime

        async def recover() -> None:
            await runtime.db(provider_credential_record_success, credential=credential)
            runtime.forget_plans()

        runtime.spawn(recover())


async def note_failure(call: GatewayCall, candidate: Candidate, failure: AttemptFailed) -> None:
    model = candidate.model
    provider = model.provider
    UPSTREAM_ERRORS.labels(
        *series_labels(provider.slug, model.catalog_id, is_global=provider.organization_id is None),
        failure.kind,
    ).inc()
    # The message was scrubbed of the call's secrets where it came in (upstream_error).
    logger.warning(
        "Upstream attempt of request %s at %s failed (%s): %s",
        call.request_id,
        provider.slug,
        failure.kind,
        failure.message,
    )
    if candidate.credential is None or not failure.credential_fault:
        return
    try:
        await call.runtime.db(
            provider_credential_record_failure,
            credential=candidate.credential,
            error=bounded(f"{failure.kind}: {failure.message}"),
        )
    except Exception:
        logger.exception("Could not record the failure of credential %s", candidate.credential.pk)
    call.runtime.forget_plans()
