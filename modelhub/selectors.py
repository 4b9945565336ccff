"""Multi-step reads of the domain, shared by the API, the evaluator and the other apps."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Q

from modelhub.models import Model


def resolve_model_names_q(names: Iterable[str]) -> Q:
    """Models named by any of ``names``: ``provider_slug/provider_model_id``, a provider's
    own id (``meta-llama/llama-3.1-8b-instruct`` on OpenRouter) or a canonical slug."""
    query = Q(pk__in=[])
    for name in names:
        query |= Q(provider_model_id=name) | Q(canonical_slug=name)
        slug, sep, rest = name.partition("/")
        if sep and rest:
            query |= Q(provider__slug=slug, provider_model_id=rest)
    return query


def model_base_name(provider_model_id: str) -> str:
    """The last path segment, lower-cased: ``Meta-Llama/Llama-3.3-70B`` -> ``llama-3.3-70b``."""
    return provider_model_id.rsplit("/", 1)[-1].lower()


def equivalent_models_q(models: Iterable[Model]) -> Q:
    """Models that are the same weights as any of ``models`` at another provider: the same
    Hugging Face id, the same canonical slug, or the same base name."""
    query = Q(pk__in=[])
    for model in models:
        if model.hugging_face_id:
            query |= Q(hugging_face_id__iexact=model.hugging_face_id)
        if model.canonical_slug:
            query |= Q(canonical_slug=model.canonical_slug)
        base = model_base_name(model.provider_model_id)
        query |= Q(provider_model_id__iexact=base) | Q(provider_model_id__iendswith="/" + base)
    return query
