"""One request on its way through the gateway's stages, and what it has used so far.

Every stage (``gateway.parse``, ``plan``, ``reserve``, ``attempt``, ``relay``/``stream``,
``accounting``) reads and updates this one object; ``gateway.proxy.handle`` passes it on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.conf import settings

from gateway.dialect import OPENAI, Dialect
from gateway.request_ids import new_request_id

if TYPE_CHECKING:
    from gateway.auth import ClientKeyInfo
    from gateway.limits import Reservation
    from gateway.runtime import Runtime
    from gateway.upstreams import Endpoint
    from modelhub.routing import ProviderPreferences, RoutingPlan


@dataclass
class GatewayCall:
    """One request through the gateway and what it has used so far."""

    runtime: Runtime
    key: ClientKeyInfo
    endpoint: Endpoint
    body: dict
    stream: bool
    include_usage: bool
    requested_model: str
    fallback_models: tuple[str, ...]
    estimated_input_tokens: int
    estimated_output_tokens: int
    # The body's ``provider`` object, and its parameters when require_parameters is set.
    preferences: ProviderPreferences | None = None
    parameters: frozenset[str] = frozenset()
    started: float = field(default_factory=time.perf_counter)
    deadline: float = field(
        default_factory=lambda: time.monotonic() + settings.GATEWAY_REQUEST_DEADLINE
    )
    request_id: str = field(default_factory=new_request_id)
    attempts: int = 0
    candidates_tried: int = 0
    reservation: Reservation | None = None
    plan: RoutingPlan | None = None
    # The client protocol the request arrived in (``gateway.dialect``).
    dialect: Dialect = OPENAI

    def elapsed_ms(self) -> int:
        return int((time.perf_counter() - self.started) * 1000)

    def remaining(self) -> float:
        """Seconds left before the request's deadline."""
        return self.deadline - time.monotonic()
