"""Query-string parsing for the catalog endpoints.

Every parser raises :class:`InvalidParameter` with a message fit for ``{"detail": ...}``;
the views turn it into a 400. The parsed values are frozen dataclasses so they can double
as cache keys.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation

from modelhub.models import CAPABILITY_FIELDS
from modelhub.validators import unusable_text_reason

DEFAULT_MODEL_LIMIT = 100
MAX_LIMIT = 1000
TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "off"})

# Capability filter names -> Model boolean columns.
CAPABILITIES = CAPABILITY_FIELDS
SORTS = ("name", "price", "-price", "context", "-context", "newest", "oldest")
# The largest price the Model columns hold (28 digits, 18 of them decimals), in USD per
# token: a bigger bound filters nothing, and a huge one overflows the database's numeric.
MAX_PRICE = Decimal(10) ** 10
# The database's integer range, for counts and offsets.
MAX_INTEGER = 2**63 - 1


class InvalidParameter(ValueError):
    """A query parameter that cannot be understood; answered with 400."""


def checked_text(name: str, value: str) -> str:
    """``value`` of the parameter (or path part) ``name``, if it can be queried."""
    reason = unusable_text_reason(value)
    if reason is not None:
        raise InvalidParameter(f"'{name}' {reason}.")
    return value


def parse_text(query, *names: str) -> str:
    """The first of ``names`` that is set, stripped; one name is an alias of the next."""
    for name in names:
        raw = query.get(name)
        if raw:
            return checked_text(name, raw).strip()
    return ""


def parse_bool(query, name: str, default: bool) -> bool:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise InvalidParameter(f"'{name}' must be true or false, not '{raw}'.")


def parse_int(query, name: str, *, default: int | None, minimum: int, maximum: int = MAX_INTEGER):
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise InvalidParameter(f"'{name}' must be an integer, not '{raw[:50]}'.") from None
    if value < minimum or value > maximum:
        raise InvalidParameter(
            f"'{name}' must be between {minimum} and {maximum}, not {str(value)[:50]}."
        )
    return value


def parse_decimal(query, name: str) -> Decimal | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = Decimal(raw.strip())
    except InvalidOperation:
        raise InvalidParameter(f"'{name}' must be a number, not '{raw[:50]}'.") from None
    if not value.is_finite() or value < 0 or value > MAX_PRICE:
        raise InvalidParameter(
            f"'{name}' must be a number from 0 to {MAX_PRICE}, not '{raw[:50]}'."
        )
    return value


def parse_list(query, name: str) -> tuple[str, ...]:
    values: list[str] = []
    for raw in query.getlist(name):
        checked_text(name, raw)
        values.extend(part.strip() for part in raw.split(",") if part.strip())
    return tuple(dict.fromkeys(values))


@dataclass(frozen=True)
class Page:
    limit: int | None
    offset: int

    @classmethod
    def from_query(cls, query, *, default_limit: int | None) -> Page:
        return cls(
            limit=parse_int(query, "limit", default=default_limit, minimum=1, maximum=MAX_LIMIT),
            offset=parse_int(query, "offset", default=0, minimum=0),
        )


@dataclass(frozen=True)
class ProviderListParams:
    moderated_only: bool
    page: Page

    @classmethod
    def from_query(cls, query) -> ProviderListParams:
        return cls(
            moderated_only=parse_bool(query, "moderated_only", False),
            page=Page.from_query(query, default_limit=None),
        )

    def cache_key_part(self) -> str:
        return repr(sorted(asdict(self).items()))


@dataclass(frozen=True)
class ModelListParams:
    """Filters of ``/catalog/models``.

    ``provider``: provider slugs (comma-separated or repeated). ``search`` (or ``q``):
    words matched in the name, id, author and Hugging Face id. ``modality``: an exact
    ``text+image->text`` or one modality name found anywhere in it; ``input_modality`` and
    ``output_modality`` look at one side of the arrow. ``min_context``: tokens.
    ``max_price``: USD per prompt token, as the prices are written (``max_completion_price``
    for output tokens); models without a price are left out when either is set.
    ``capability``: vision, tools, json, streaming (all must hold). ``sort``: name, price,
    -price, context (largest first), -context, newest, oldest.
    """

    providers: tuple[str, ...]
    search: str
    modality: str
    input_modality: str
    output_modality: str
    min_context: int | None
    max_price: Decimal | None
    max_completion_price: Decimal | None
    capabilities: tuple[str, ...]
    sort: str
    page: Page

    @classmethod
    def from_query(cls, query) -> ModelListParams:
        capabilities = tuple(sorted({c.lower() for c in parse_list(query, "capability")}))
        unknown = [c for c in capabilities if c not in CAPABILITIES]
        if unknown:
            raise InvalidParameter(
                f"Unknown capability '{unknown[0]}'. Valid: {', '.join(sorted(CAPABILITIES))}."
            )
        sort = (parse_text(query, "sort") or "name").lower()
        if sort not in SORTS:
            raise InvalidParameter(f"Unknown sort '{sort}'. Valid: {', '.join(SORTS)}.")
        return cls(
            providers=tuple(sorted(p.lower() for p in parse_list(query, "provider"))),
            search=parse_text(query, "search", "q"),
            modality=parse_text(query, "modality").lower(),
            input_modality=parse_text(query, "input_modality").lower(),
            output_modality=parse_text(query, "output_modality").lower(),
            min_context=parse_int(query, "min_context", default=None, minimum=0),
            max_price=parse_decimal(query, "max_price"),
            max_completion_price=parse_decimal(query, "max_completion_price"),
            capabilities=capabilities,
            sort=sort,
            page=Page.from_query(query, default_limit=DEFAULT_MODEL_LIMIT),
        )

    def cache_key_part(self) -> str:
        return repr(sorted(asdict(self).items()))
