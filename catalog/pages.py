"""The catalog browser: a server-rendered, filterable table over the public catalog and a
page per model with its price across providers. Public like the JSON catalog, and read
through the same selectors and response builders."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.http import Http404, QueryDict
from django.shortcuts import render

from catalog import responses, selectors
from catalog.parameters import CAPABILITIES, SORTS, InvalidParameter, ModelListParams

PAGE_SIZE = 50
PER_MILLION = Decimal(1_000_000)
MODALITIES = ["text->text", "text+image->text", "text->image", "text->embeddings", "text->audio"]
SORT_LABELS = {
    "name": "Name",
    "price": "Price: low to high",
    "-price": "Price: high to low",
    "context": "Context: largest first",
    "newest": "Newest",
}


def per_million(value) -> Decimal | None:
    """USD per token (Decimal or OpenRouter's string) as USD per million tokens."""
    if value is None:
        return None
    try:
        price = Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        return None
    if not price.is_finite() or price < 0:  # "-1": variable pricing
        return None
    return (price * PER_MILLION).normalize()


def _query_for_selectors(get: QueryDict, page: int) -> QueryDict:
    """The browser's form speaks per-million prices and pages; the selectors speak USD per
    token and offsets."""
    query = get.copy()
    for form_name, name in (("max_price_per_m", "max_price"),):
        raw = (query.pop(form_name, [""]) or [""])[-1].strip()
        if raw:
            try:
                query[name] = str(Decimal(raw) / PER_MILLION)
            except InvalidOperation:
                raise InvalidParameter(
                    f"'Max input price' must be a number, not '{raw}'."
                ) from None
    query["limit"] = str(PAGE_SIZE)
    query["offset"] = str((page - 1) * PAGE_SIZE)
    query.pop("page", None)
    return query


def browse(request):
    """The catalog as a table: search, filter by provider, modality, context, price and
    capability, sort by price, context or name; 50 models a page."""
    error = None
    try:
        page = max(int(request.GET.get("page") or 1), 1)
    except ValueError:
        page = 1
    try:
        params = ModelListParams.from_query(_query_for_selectors(request.GET, page))
        total, models = selectors.model_page(params)
    except InvalidParameter as exc:
        error, total, models = str(exc), 0, []
        params = ModelListParams.from_query(QueryDict(f"limit={PAGE_SIZE}"))
    rows = [
        {
            "model": model,
            "input_per_m": per_million(model.pricing_prompt),
            "output_per_m": per_million(model.pricing_completion),
            "capabilities": [
                name
                for name in ("vision", "tools", "json", "streaming")
                if getattr(model, CAPABILITIES[name])
            ],
        }
        for model in models
    ]
    pages = max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1)
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "rows": rows,
        "total": total,
        "page": page,
        "pages": pages,
        "query": query.urlencode(),
        "error": error,
        "params": params,
        "providers": sorted(selectors.provider_index().values(), key=lambda p: p.name.lower()),
        "selected_providers": set(params.providers),
        "modalities": MODALITIES,
        "capabilities": ["vision", "tools", "json", "streaming"],
        "selected_capabilities": set(params.capabilities),
        "sorts": [
            (value, SORT_LABELS.get(value, value)) for value in SORTS if value in SORT_LABELS
        ],
        "form": request.GET,
        "catalog_empty": total == 0 and not request.GET,
    }
    return render(request, "catalog/browse.html", context, status=400 if error else 200)


def browse_model(request, provider_slug: str, model_id: str):
    """One model: its details, its price at every provider that offers it (cheapest
    first) and its Hugging Face metrics."""
    author, sep, name = model_id.partition("/")
    provider_name, model_name = (author, name) if sep else (provider_slug, model_id)
    try:
        body = responses.model_detail_body(
            provider_name, model_name, gateway=provider_slug, include_huggingface=True
        )
    except (responses.ModelNotFound, responses.UnknownGateway):
        raise Http404("No such model in the catalog.") from None
    data = body["data"]
    endpoints = [
        {
            **endpoint,
            "input_per_m": per_million((endpoint.get("pricing") or {}).get("prompt")),
            "output_per_m": per_million((endpoint.get("pricing") or {}).get("completion")),
        }
        for endpoint in data["endpoints"]
    ]
    context = {
        "data": data,
        "endpoints": endpoints,
        "input_per_m": per_million(data["pricing"].get("prompt")),
        "output_per_m": per_million(data["pricing"].get("completion")),
        "metrics": data.get("huggingface_metrics"),
    }
    return render(request, "catalog/model.html", context)
