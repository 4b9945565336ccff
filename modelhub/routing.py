"""The routing evaluator: from a request to an ordered plan of (model, credential) candidates.

Pure domain logic, called by the gateway on every request and by the management API's
``evaluate`` action. Its query count is constant: one query for the organization's
rules (with their targets), one to resolve requested names to catalog models when no
rule matched (and one for models equivalent to them), one for the credentials of every
provider involved, and one for observed latencies (or throughputs) when the strategy or
the request's ``sort`` preference needs them.

A request may carry OpenRouter-style provider preferences (:class:`ProviderPreferences`).
They apply on top of the organization's rules: they drop candidates (each drop is a
:class:`Rejection` that says which preference dropped it) and reorder the rest, and never
add a model or provider the rules and the catalog did not already yield.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import random
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Avg, F, Prefetch, Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from modelhub.models import (
    CAPABILITY_FIELDS,
    ApiFormat,
    Model,
    ModelMetric,
    ModelType,
    Organization,
    Provider,
    ProviderCredential,
    RoutingRule,
    RoutingStrategy,
    RoutingTarget,
)
from modelhub.quotas import exhausted_state
from modelhub.selectors import (
    OLLAMA_DEFAULT_TAG,
    callable_providers_q,
    credential_free_source,
    equivalent_models,
    resolve_model_names_q,
)

AUTO_MODEL = "auto"
CAPABILITIES = CAPABILITY_FIELDS
# A model the plan may use: (model, the credential a rule pins or None, weight, the name
# it was asked for).
Target = tuple[Model, ProviderCredential | None, int, str]
# How many models "auto" considers when no rule defines it.
AUTO_CANDIDATE_LIMIT = 10
LATENCY_WINDOW = timedelta(hours=24)


class Reason:
    """Why a model or credential was dropped from a plan."""

    MODEL_INACTIVE = "model_inactive"
    NO_CREDENTIAL = "no_credential"
    CREDENTIAL_INACTIVE = "credential_inactive"
    CREDENTIAL_COOLING_DOWN = "credential_cooling_down"
    OVER_QUOTA = "over_quota"
    CONTEXT_TOO_SMALL = "context_too_small"
    CAPABILITY_MISSING = "capability_missing"
    FALLBACK_DISABLED = "fallback_disabled"
    DUPLICATE = "duplicate"
    # Dropped by the request's provider preferences.
    PROVIDER_IGNORED = "provider_ignored"
    PROVIDER_NOT_IN_ONLY = "provider_not_in_only"
    PROVIDER_NOT_IN_ORDER = "provider_not_in_order"
    PROVIDER_FALLBACKS_DISABLED = "provider_fallbacks_disabled"
    OVER_MAX_PRICE = "over_max_price"
    DATA_COLLECTION = "data_collection"
    MISSING_PARAMETER = "missing_parameter"


PREFERENCE_REASONS = frozenset(
    {
        Reason.PROVIDER_IGNORED,
        Reason.PROVIDER_NOT_IN_ONLY,
        Reason.PROVIDER_NOT_IN_ORDER,
        Reason.PROVIDER_FALLBACKS_DISABLED,
        Reason.OVER_MAX_PRICE,
        Reason.DATA_COLLECTION,
        Reason.MISSING_PARAMETER,
    }
)

# --- Provider preferences --------------------------------------------------------------

PREFERENCE_SORTS = ("price", "latency", "throughput")
DATA_COLLECTION_CHOICES = ("allow", "deny")
# max_price keys -> (the Model column, how many units its price is quoted for). Prompt and
# completion ceilings are per million tokens, as OpenRouter quotes them; the catalog
# stores USD per token.
MAX_PRICE_COLUMNS = {
    "prompt": ("pricing_prompt", Decimal(1_000_000)),
    "completion": ("pricing_completion", Decimal(1_000_000)),
    "request": ("pricing_request", Decimal(1)),
    "image": ("pricing_image", Decimal(1)),
}
# Parameters ``require_parameters`` checks, by the names catalogs list in a model's
# ``supported_parameters`` (OpenRouter's vocabulary). Other body fields (messages, user,
# metadata...) are not generation parameters and every provider takes them.
REQUEST_PARAMETERS = frozenset(
    {
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "structured_outputs",
        "max_tokens",
        "temperature",
        "top_p",
        "top_k",
        "top_a",
        "min_p",
        "frequency_penalty",
        "presence_penalty",
        "repetition_penalty",
        "stop",
        "seed",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "reasoning",
        "reasoning_effort",
        "include_reasoning",
        "web_search_options",
        "verbosity",
        "dimensions",
    }
)
# OpenAI's other spellings of the same parameters.
PARAMETER_ALIASES = {
    "max_completion_tokens": "max_tokens",
    "functions": "tools",
    "function_call": "tool_choice",
}
# Parameters the catalog also records as a capability column, for models whose
# ``supported_parameters`` list is empty (most providers do not publish one).
PARAMETER_CAPABILITIES = {
    "tools": "supports_tools",
    "tool_choice": "supports_tools",
    "parallel_tool_calls": "supports_tools",
    "response_format": "supports_json_mode",
    "structured_outputs": "supports_json_mode",
}


@dataclass(frozen=True)
class MaxPrice:
    """Price ceilings in USD: ``prompt`` and ``completion`` per million tokens,
    ``request`` per request, ``image`` per input image (OpenRouter's units)."""

    prompt: Decimal | None = None
    completion: Decimal | None = None
    request: Decimal | None = None
    image: Decimal | None = None


@dataclass(frozen=True)
class ProviderPreferences:
    """OpenRouter's ``provider`` object of a request, validated (by ``gateway.parse`` or the
    ``evaluate`` serializer) and normalised by :meth:`build`: slugs lower case, without
    duplicates. Hashable, so it is part of the gateway's plan cache key."""

    order: tuple[str, ...] = ()
    only: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    allow_fallbacks: bool = True
    sort: str | None = None
    max_price: MaxPrice | None = None
    data_collection: str = "allow"
    require_parameters: bool = False

    @classmethod
    def build(
        cls,
        *,
        order: Iterable[str] | None = None,
        only: Iterable[str] | None = None,
        ignore: Iterable[str] | None = None,
        allow_fallbacks: bool | None = None,
        sort: str | None = None,
        max_price: Mapping[str, Decimal | None] | None = None,
        data_collection: str | None = None,
        require_parameters: bool | None = None,
    ) -> ProviderPreferences:
        """Preferences from already type-checked values; None means "not given"."""

        def slugs(values: Iterable[str] | None) -> tuple[str, ...]:
            return tuple(dict.fromkeys(value.strip().lower() for value in values or ()))

        prices = {k: v for k, v in (max_price or {}).items() if v is not None}
        return cls(
            order=slugs(order),
            only=slugs(only),
            ignore=slugs(ignore),
            allow_fallbacks=True if allow_fallbacks is None else allow_fallbacks,
            sort=sort,
            max_price=MaxPrice(**prices) if prices else None,
            data_collection=data_collection or "allow",
            require_parameters=bool(require_parameters),
        )


@dataclass(frozen=True)
class RouteRequest:
    """What the caller asks for; ``fallback_models`` is an OpenRouter-style ``models`` list."""

    requested_model: str
    model_type: str = ModelType.CHAT
    fallback_models: tuple[str, ...] = ()
    estimated_input_tokens: int = 0
    required_capabilities: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    preferences: ProviderPreferences | None = None
    # The request's generation parameters (REQUEST_PARAMETERS names), for
    # ``require_parameters``; callers leave it empty otherwise, so that it does not split
    # the gateway's plan cache.
    parameters: frozenset[str] = frozenset()


@dataclass
class Candidate:
    model: Model
    credential: ProviderCredential | None
    # "organization", "environment" (the provider's global key) or "none" (keyless endpoint)
    credential_source: str
    target_weight: int = 1
    observed_latency_ms: float | None = None
    # Output tokens per second, observed; read only for the ``throughput`` preference.
    observed_throughput: float | None = None

    @property
    def provider(self) -> Provider:
        return self.model.provider

    @property
    def unit_price(self) -> Decimal | None:
        """Prompt plus completion price per token: the ordering key for ``cheapest``."""
        prompt, completion = self.model.pricing_prompt, self.model.pricing_completion
        if prompt is None and completion is None:
            return None
        return (prompt or Decimal(0)) + (completion or Decimal(0))


@dataclass
class Rejection:
    model: Model | None
    requested: str
    reason: str
    detail: str
    credential: ProviderCredential | None = None


@dataclass
class RoutingPlan:
    request: RouteRequest
    rule: RoutingRule | None
    strategy: str
    fallback_enabled: bool
    max_attempts: int
    candidates: list[Candidate] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)
    # Every count b for which "more than b input tokens" decides something in this plan
    # (a rule's token condition, a considered model's context length), sorted: the plan
    # is the same for any count on the same side of each. None when it holds only for
    # the request's own count (the ``auto`` model's list is queried with it).
    token_bounds: tuple[int, ...] | None = None
    # A weighted plan's candidates before their order was drawn, and how many rejections
    # came before it: what :meth:`drawn` draws again from.
    draw_from: tuple[tuple[Candidate, ...], int] | None = None
    # When time passing alone changes this plan: the earliest end of a rejected
    # credential's cooldown or of the quota period it has used up. Every other change is
    # a write, which callers that cache plans hear of (modelhub.invalidation).
    changes_at: datetime | None = None

    @property
    def is_empty(self) -> bool:
        return not self.candidates

    def fits(self, tokens: int) -> bool:
        """Whether evaluating the same request with ``tokens`` input tokens gives this plan."""
        own = self.request.estimated_input_tokens
        if tokens == own:
            return True
        bounds = self.token_bounds
        return bounds is not None and bisect_left(bounds, tokens) == bisect_left(bounds, own)

    def drawn(self, rng: random.Random) -> RoutingPlan:
        """A weighted plan with its order drawn afresh, as evaluating it again would; any
        other plan as it is. Callers that reuse a plan call this for each request."""
        if self.draw_from is None:
            return self
        candidates, rejected = self.draw_from
        plan = dataclasses.replace(
            self, candidates=list(candidates), rejected=self.rejected[:rejected]
        )
        _arrange(plan, rng)
        return plan

    def for_tokens(self, tokens: int) -> RoutingPlan:
        """This plan as evaluated for ``tokens`` input tokens (a count it :meth:`fits`).

        Only the details that quote the count differ; a plan without them is returned as
        it is, its ``request`` still holding the count it was evaluated for.
        """
        if tokens == self.request.estimated_input_tokens or not any(
            r.reason == Reason.CONTEXT_TOO_SMALL for r in self.rejected
        ):
            return self
        return dataclasses.replace(
            self,
            request=dataclasses.replace(self.request, estimated_input_tokens=tokens),
            rejected=[
                dataclasses.replace(r, detail=_context_detail(r.model.context_length, tokens))
                if r.reason == Reason.CONTEXT_TOO_SMALL and r.model is not None
                else r
                for r in self.rejected
            ],
        )


def _rule_names(rule: RoutingRule, request: RouteRequest) -> bool:
    """Whether the rule is for the request's model and type (its conditions aside)."""
    if rule.model_type and rule.model_type != request.model_type:
        return False
    pattern = rule.match_model
    return pattern == request.requested_model or fnmatch.fnmatchcase(
        request.requested_model, pattern
    )


def rule_matches(rule: RoutingRule, request: RouteRequest) -> bool:
    if not _rule_names(rule, request):
        return False
    conditions = rule.conditions or {}
    tokens = request.estimated_input_tokens
    if "min_input_tokens" in conditions and tokens < int(conditions["min_input_tokens"]):
        return False
    if "max_input_tokens" in conditions and tokens > int(conditions["max_input_tokens"]):
        return False
    wanted_tags = set(conditions.get("tags") or [])
    return wanted_tags <= set(request.tags)


def active_rules(organization: Organization) -> list[RoutingRule]:
    targets = RoutingTarget.objects.select_related("model__provider", "credential").order_by(
        "position", "id"
    )
    return list(
        RoutingRule.objects.for_org(organization)
        .filter(is_active=True)
        .prefetch_related(Prefetch("targets", queryset=targets))
        .order_by("priority", "id")
    )


def evaluate(
    *,
    organization: Organization,
    request: RouteRequest,
    now: datetime | None = None,
    rng: random.Random | None = None,
    rules: Sequence[RoutingRule] | None = None,
) -> RoutingPlan:
    """Build the ordered plan for ``request``.

    ``rules`` may be passed by a caller that caches the organization's active rules.
    """
    now = now or timezone.now()
    rules = active_rules(organization) if rules is None else rules
    rule = next((r for r in rules if rule_matches(r, request)), None)

    if rule is not None:
        plan = RoutingPlan(request, rule, rule.strategy, rule.fallback_enabled, rule.max_attempts)
        targets = [
            (t.model, t.credential, t.weight, request.requested_model) for t in rule.targets.all()
        ]
    else:
        plan = RoutingPlan(
            request,
            None,
            RoutingStrategy.PRIORITY,
            True,
            settings.GATEWAY_DEFAULT_MAX_ATTEMPTS,
        )
        targets = _resolve_without_rule(organization, request, plan)

    # The auto model's list is queried with the count: its plan holds for that count only.
    if rule is not None or request.requested_model != AUTO_MODEL:
        plan.token_bounds = _token_bounds(request, rules, targets)
    _expand_candidates(organization, request, plan, targets, now)
    _observe(organization, plan, now)
    if plan.strategy == RoutingStrategy.WEIGHTED and len(plan.candidates) > 1:
        # A new order is drawn for each request (RoutingPlan.drawn): a cached plan would
        # otherwise send every request to its one draw's first candidate.
        plan.draw_from = (tuple(plan.candidates), len(plan.rejected))
    _arrange(plan, rng)
    return plan


def _token_bounds(
    request: RouteRequest, rules: Sequence[RoutingRule], targets: list[Target]
) -> tuple[int, ...]:
    """The counts b where "more than b input tokens" flips a decision of :func:`evaluate`:
    the token conditions of the rules for the request's model (a superset of the ones it
    reads), the context length of each target model, and 0 (a request of no tokens skips
    the context check)."""
    bounds = {0}
    for rule in rules:
        if not _rule_names(rule, request):
            continue
        conditions = rule.conditions or {}
        # "Fewer than min" is "not more than min - 1".
        for name, offset in (("min_input_tokens", -1), ("max_input_tokens", 0)):
            with contextlib.suppress(KeyError, TypeError, ValueError):
                bounds.add(int(conditions[name]) + offset)
    bounds.update(model.context_length for model, *_ in targets if model.context_length)
    return tuple(sorted(bounds))


def _resolve_without_rule(
    organization: Organization, request: RouteRequest, plan: RoutingPlan
) -> list[Target]:
    """A requested name resolves to the models it names and the same model elsewhere."""
    names = [request.requested_model, *request.fallback_models]
    if request.requested_model == AUTO_MODEL:
        return [(m, None, 1, AUTO_MODEL) for m in _auto_models(organization, request)]

    # The raw upstream record can be large and routing never reads it.
    visible = Model.objects.visible_to(organization).select_related("provider").defer("raw")
    direct = list(visible.filter(resolve_model_names_q(names)))
    by_name: dict[str, list[Model]] = {name: [] for name in names}
    for model in direct:
        for name in names:
            if _names_model(name, model):
                by_name[name].append(model)

    primary = by_name[request.requested_model]
    direct_ids = {m.pk for m in direct}
    equivalents = [m for m in equivalent_models(primary, visible) if m.pk not in direct_ids]

    targets: list[Target] = []
    for name in names:
        found = by_name[name]
        if not found:
            plan.unresolved.append(name)
        # Several providers may list the very name asked for: cheapest of them first.
        found.sort(key=_price_key)
        targets.extend((m, None, 1, name) for m in found)
        if name == request.requested_model:
            equivalents.sort(key=_price_key)
            targets.extend((m, None, 1, name) for m in equivalents)
    return targets


def _names_model(name: str, model: Model) -> bool:
    own_ids = {model.provider_model_id}
    if model.provider.api_format == ApiFormat.OLLAMA:
        # "llama2" is Ollama's own name for "llama2:latest".
        base, _, tag = model.provider_model_id.rpartition(":")
        if base and tag == OLLAMA_DEFAULT_TAG:
            own_ids.add(base)
    if name in own_ids or name == model.canonical_slug:
        return True
    slug, _, rest = name.partition("/")
    return slug == model.provider.slug and rest in own_ids


def _auto_models(organization: Organization, request: RouteRequest) -> list[Model]:
    queryset = (
        Model.objects.visible_to(organization)
        .active()
        .filter(callable_providers_q(organization, prefix="provider__"))
    )
    if request.model_type == ModelType.EMBEDDING:
        queryset = queryset.filter(modality__icontains="embedding")
    else:
        queryset = queryset.filter(modality__endswith="->text")
    for capability in request.required_capabilities:
        if capability in CAPABILITIES:
            queryset = queryset.filter(**{CAPABILITIES[capability]: True})
    if request.estimated_input_tokens:
        queryset = queryset.filter(
            Q(context_length__isnull=True) | Q(context_length__gte=request.estimated_input_tokens)
        )
    queryset = queryset.filter(pricing_prompt__isnull=False).select_related("provider")
    return list(
        queryset.order_by("pricing_prompt", "pricing_completion", "id")[:AUTO_CANDIDATE_LIMIT]
    )


def _price_key(model: Model) -> tuple[int, Decimal, int]:
    prompt, completion = model.pricing_prompt, model.pricing_completion
    if prompt is None and completion is None:
        return (1, Decimal(0), model.pk)
    return (0, (prompt or Decimal(0)) + (completion or Decimal(0)), model.pk)


def _expand_candidates(
    organization: Organization,
    request: RouteRequest,
    plan: RoutingPlan,
    targets: list[Target],
    now: datetime,
) -> None:
    provider_ids = {model.provider_id for model, *_ in targets}
    credentials_by_provider: dict[int, list[ProviderCredential]] = {}
    if provider_ids:
        for credential in ProviderCredential.objects.for_org(organization).filter(
            provider_id__in=provider_ids
        ):
            credentials_by_provider.setdefault(credential.provider_id, []).append(credential)
    for group in credentials_by_provider.values():
        group.sort(key=lambda c: (c.priority, c.id))

    seen: set[tuple[int, int | None]] = set()
    for model, pinned, weight, requested in targets:
        problem = _model_problem(model, request) or _preference_problem(model, request)
        if problem:
            plan.rejected.append(Rejection(model, requested, *problem))
            continue
        if pinned is not None:
            credentials = [pinned]
        else:
            credentials = credentials_by_provider.get(model.provider_id, [])
        usable = 0
        for credential in credentials:
            refusal = _credential_problem(credential, now)
            if refusal:
                reason, detail, ends_at = refusal
                plan.rejected.append(Rejection(model, requested, reason, detail, credential))
                _note_change(plan, ends_at)
                continue
            key = (model.pk, credential.pk)
            if key in seen:
                continue
            seen.add(key)
            plan.candidates.append(Candidate(model, credential, "organization", weight))
            usable += 1
        if usable or credentials:
            continue
        source = credential_free_source(model.provider, organization)
        if source and (model.pk, None) not in seen:
            seen.add((model.pk, None))
            plan.candidates.append(Candidate(model, None, source, weight))
        elif not source:
            plan.rejected.append(
                Rejection(
                    model,
                    requested,
                    Reason.NO_CREDENTIAL,
                    f"The organization has no credential for provider '{model.provider.slug}'.",
                )
            )


def _model_problem(model: Model, request: RouteRequest) -> tuple[str, str] | None:
    if not model.is_active or not model.provider.is_active:
        return Reason.MODEL_INACTIVE, "The model or its provider is inactive."
    tokens = request.estimated_input_tokens
    if tokens and model.context_length and tokens > model.context_length:
        return Reason.CONTEXT_TOO_SMALL, _context_detail(model.context_length, tokens)
    missing = [
        capability
        for capability in sorted(request.required_capabilities)
        if capability in CAPABILITIES and not getattr(model, CAPABILITIES[capability])
    ]
    if missing:
        return Reason.CAPABILITY_MISSING, "Missing capability: " + ", ".join(missing) + "."
    return None


def _context_detail(context_length: int | None, tokens: int) -> str:
    return f"Context length {context_length} is smaller than the {tokens} input tokens."


def _preference_problem(model: Model, request: RouteRequest) -> tuple[str, str] | None:
    """Why the request's provider preferences exclude ``model``; each detail starts with
    the provider's slug, so the gateway's error can list them as they are."""
    preferences = request.preferences
    if preferences is None:
        return None
    slug = model.provider.slug.lower()
    if slug in preferences.ignore:
        return Reason.PROVIDER_IGNORED, f"{slug} dropped by ignore"
    if preferences.only and slug not in preferences.only:
        return Reason.PROVIDER_NOT_IN_ONLY, f"{slug} not in only"
    if preferences.data_collection == "deny":
        problem = _data_collection_problem(model.provider)
        if problem:
            return Reason.DATA_COLLECTION, f"{slug} {problem} (data_collection deny)"
    if preferences.max_price is not None:
        problem = _price_problem(model, preferences.max_price)
        if problem:
            return Reason.OVER_MAX_PRICE, f"{slug} {problem}"
    if preferences.require_parameters:
        missing = unsupported_parameters(model, request.parameters)
        if missing:
            return (
                Reason.MISSING_PARAMETER,
                f"{slug} does not support {', '.join(missing)} (require_parameters)",
            )
    return None


def _data_collection_problem(provider: Provider) -> str | None:
    """Why a provider fails ``data_collection: deny``: the catalog must say that it neither
    trains on nor keeps prompts; a policy it does not know fails."""
    if provider.may_train_on_data:
        return "may train on prompts"
    if provider.may_log_prompts:
        return "may retain prompts"
    if provider.may_train_on_data is None or provider.may_log_prompts is None:
        return "has no known data policy"
    return None


def _price_problem(model: Model, ceiling: MaxPrice) -> str | None:
    for key, (column, units) in MAX_PRICE_COLUMNS.items():
        limit = getattr(ceiling, key)
        if limit is None:
            continue
        price = getattr(model, column)
        if price is None:
            if key in ("request", "image"):
                # Catalogs leave these out for models without such a charge.
                continue
            return f"has no known {key} price (max_price.{key} {_money(limit)})"
        if price * units > limit:
            return f"over max_price.{key} {_money(limit)} (charges {_money(price * units)})"
    return None


def _money(value: Decimal) -> str:
    """A price as people write it: at least two decimals, no trailing zeros beyond."""
    text = format(value.normalize(), "f")
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.rstrip('0').ljust(2, '0')}"


def unsupported_parameters(model: Model, parameters: Iterable[str]) -> list[str]:
    """The request parameters ``model`` is not known to support.

    A model whose catalog entry lists its ``supported_parameters`` is judged by that list.
    Most providers publish none: such a model is judged by the capability columns behind
    some parameters (tools, JSON mode), and its other parameters are unknown, not refused.
    """
    listed = set(model.supported_parameters or ())
    if listed:
        return sorted(set(parameters) - listed)
    return sorted(
        parameter
        for parameter in parameters
        if parameter in PARAMETER_CAPABILITIES
        and not getattr(model, PARAMETER_CAPABILITIES[parameter])
    )


def _credential_problem(
    credential: ProviderCredential, now: datetime
) -> tuple[str, str, datetime | None] | None:
    """Why the credential cannot serve: reason, detail, and when the problem goes away by
    itself (a cooldown's end, the end of the quota period it used up; None when only a
    write can change it)."""
    if not credential.is_active:
        return Reason.CREDENTIAL_INACTIVE, "The credential is disabled.", None
    if credential.cooldown_until and credential.cooldown_until > now:
        return (
            Reason.CREDENTIAL_COOLING_DOWN,
            f"The credential is {credential.health_status} and cooling down until "
            f"{credential.cooldown_until.isoformat()}.",
            credential.cooldown_until,
        )
    quota = exhausted_state(credential, now)
    if quota is not None:
        return (
            Reason.OVER_QUOTA,
            f"The credential's {quota.name} quota for this period is used up.",
            quota.resets_at,
        )
    return None


def _note_change(plan: RoutingPlan, at: datetime | None) -> None:
    if at is not None and (plan.changes_at is None or at < plan.changes_at):
        plan.changes_at = at


def _observe(organization: Organization, plan: RoutingPlan, now: datetime) -> None:
    """Put on the candidates the observed figures their ordering reads: latencies for the
    ``lowest_latency`` strategy or a ``latency`` sort, throughputs for a ``throughput``
    sort."""
    candidates = plan.candidates
    preferences = plan.request.preferences
    sort = preferences.sort if preferences is not None else None
    if plan.strategy == RoutingStrategy.LOWEST_LATENCY or sort == "latency":
        latencies = observed_latencies(organization, {c.model.pk for c in candidates}, now)
        for candidate in candidates:
            candidate.observed_latency_ms = latencies.get(candidate.model.pk)
    if sort == "throughput":
        throughputs = observed_throughputs(organization, {c.model.pk for c in candidates}, now)
        for candidate in candidates:
            candidate.observed_throughput = throughputs.get(candidate.model.pk)


def _by_price(candidate: Candidate) -> tuple[int, Decimal]:
    """Prompt plus completion price, lowest first; candidates without a price last."""
    return _price_key(candidate.model)[:2]


def _by_latency(candidate: Candidate) -> tuple[bool, float]:
    """Observed latency first, lowest first; candidates without an observation last."""
    return candidate.observed_latency_ms is None, candidate.observed_latency_ms or 0.0


def _arrange(plan: RoutingPlan, rng: random.Random | None) -> None:
    """Order the candidates (the strategy, then the provider preferences) and set aside
    those the preferences or a rule without fallbacks leave out. Reads no database: what
    it needs is on the candidates (:func:`_observe`)."""
    candidates = plan.candidates
    if plan.strategy == RoutingStrategy.CHEAPEST:
        candidates.sort(key=_by_price)
    elif plan.strategy == RoutingStrategy.LOWEST_LATENCY:
        candidates.sort(key=_by_latency)
    elif plan.strategy == RoutingStrategy.WEIGHTED:
        plan.candidates = weighted_order(candidates, rng or random.Random())
    if plan.request.preferences is not None:
        _apply_preferences(plan, plan.request.preferences)
    if not plan.fallback_enabled and len(plan.candidates) > 1:
        for dropped in plan.candidates[1:]:
            plan.rejected.append(
                Rejection(
                    dropped.model,
                    plan.request.requested_model,
                    Reason.FALLBACK_DISABLED,
                    "The matched rule does not allow fallbacks.",
                    dropped.credential,
                )
            )
        del plan.candidates[1:]


def _apply_preferences(plan: RoutingPlan, preferences: ProviderPreferences) -> None:
    """Reorder the candidates by ``sort`` then ``order``; without fallbacks, drop the
    providers the preferences do not name (the first provider's when they name none)."""
    candidates = plan.candidates
    if preferences.sort == "price":
        candidates.sort(key=_by_price)
    elif preferences.sort == "latency":
        candidates.sort(key=_by_latency)
    elif preferences.sort == "throughput":
        candidates.sort(
            key=lambda c: (c.observed_throughput is None, -(c.observed_throughput or 0.0))
        )

    rank = {slug: position for position, slug in enumerate(preferences.order)}
    if rank:
        candidates.sort(key=lambda c: rank.get(c.provider.slug.lower(), len(rank)))
    if preferences.allow_fallbacks:
        return
    if rank:
        keep = set(rank)
        reason, why = Reason.PROVIDER_NOT_IN_ORDER, "not in order (allow_fallbacks false)"
    elif preferences.only:
        # ``only`` already kept every other provider out.
        return
    elif candidates:
        keep = {candidates[0].provider.slug.lower()}
        reason = Reason.PROVIDER_FALLBACKS_DISABLED
        why = "is a fallback provider (allow_fallbacks false)"
    else:
        return
    kept = []
    for candidate in candidates:
        slug = candidate.provider.slug.lower()
        if slug in keep:
            kept.append(candidate)
            continue
        plan.rejected.append(
            Rejection(
                candidate.model,
                plan.request.requested_model,
                reason,
                f"{slug} {why}",
                candidate.credential,
            )
        )
    plan.candidates = kept


def weighted_order(candidates: list[Candidate], rng: random.Random) -> list[Candidate]:
    """A random order where each draw picks a candidate with probability ∝ its weight."""
    remaining = list(candidates)
    ordered = []
    while remaining:
        # A weight of 0 (on the target or on the credential) means "only when the others
        # are used up": such candidates are never drawn and end up last.
        weights = [
            max(c.target_weight, 0) * (max(c.credential.weight, 0) if c.credential else 1)
            for c in remaining
        ]
        if not any(weights):
            ordered.extend(remaining)
            break
        choice = rng.choices(range(len(remaining)), weights=weights)[0]
        ordered.append(remaining.pop(choice))
    return ordered


def observed_latencies(
    organization: Organization, model_ids: Iterable[int], now: datetime
) -> dict[int, float]:
    """Mean latency of successful requests per model over the last day."""
    model_ids = list(model_ids)
    if not model_ids:
        return {}
    rows = (
        ModelMetric.objects.for_org(organization)
        .filter(model_id__in=model_ids, success=True, created_at__gte=now - LATENCY_WINDOW)
        .values("model_id")
        .annotate(latency=Avg("latency_ms"))
    )
    return {row["model_id"]: float(row["latency"]) for row in rows}


def observed_throughputs(
    organization: Organization, model_ids: Iterable[int], now: datetime
) -> dict[int, float]:
    """Output tokens per second of successful requests per model over the last day.

    The time is the generation's: from the first token to the end for a stream (latency
    less time to first token), the whole latency for an answer that was not streamed.
    """
    model_ids = list(model_ids)
    if not model_ids:
        return {}
    generation_ms = F("latency_ms") - Coalesce(F("time_to_first_token_ms"), 0)
    rows = (
        ModelMetric.objects.for_org(organization)
        .filter(
            model_id__in=model_ids,
            success=True,
            created_at__gte=now - LATENCY_WINDOW,
            output_tokens__gt=0,
            latency_ms__gt=0,
        )
        .values("model_id")
        .annotate(tokens=Sum("output_tokens"), milliseconds=Sum(generation_ms))
    )
    return {
        row["model_id"]: row["tokens"] * 1000 / row["milliseconds"]
        for row in rows
        if row["milliseconds"] and row["milliseconds"] > 0
    }
