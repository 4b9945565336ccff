"""Limits of client keys and their organizations, enforced atomically together
(credential quotas: ``modelhub.quotas``).

A client key may have requests per minute, tokens per minute and a budget per period;
so may its organization, over all its keys together. Each is a counter of its window. A
request is admitted when every counter - the key's and the organization's - is still
below its limit, and then reserves its share in all of them at once - one request, its
estimated tokens, the most it can cost - in a single atomic step (a Lua script in Redis,
a locked transaction in the database). If any counter refuses, none is raised. When the
request ends, the reservation is corrected to the actual tokens and cost.

The budget reserves a bound, not an estimate: the prompt plus every completion token the
request may produce, at its most expensive candidate's prices. Since each counter holds
what finished requests cost plus at least what running ones can still cost, a request is
only admitted while everything admitted before it fits in the budget; spend can pass the
budget by at most the last admitted request's own cost, whatever the concurrency. That
holds for the organization's budget as for a key's, however many keys share it.

Settling also adds the actual cost to each budget's spend counter (see
``modelhub.budgets``); its value before and after tells which webhook thresholds the
request crossed, without a query.

With Redis, the requests that reserve at the same moment share one script call (a
:class:`ReserveBatcher`); the script still takes each of them whole, in arrival order.

Settles need not be written one request at a time either: a :class:`SettleCoalescer`
queues them and hands them, each counter's deltas summed, to the next script call, ahead
of its reservations; when no reservation comes within a few milliseconds, they go alone.
Under load a settle then costs no round trip of its own, and that loosens nothing: until
its settle lands, a request's counters keep its reservation (the worst case), so a late
settle only gives the difference back late.

Money is counted in integer picodollars (1e-12 USD): Redis adds integers exactly, and
the cheapest catalog prices (1e-10 USD per token) still count.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache, partial
from typing import TYPE_CHECKING, Any, NamedTuple

from django.conf import settings
from django.utils import timezone

from gateway import resp
from gateway.errors import RateLimited
from gateway.telemetry import LIMIT_SETTLE_FLUSHES, LIMIT_SETTLES_DROPPED
from modelhub.budgets import (
    CLIENT_KEY,
    ORGANIZATION,
    PICODOLLARS,
    budget_period_bounds,
    counters_redis_url,
    crossed_thresholds,
    from_picodollars,
    reservation_counter,
    spend_counter,
    to_picodollars,
)
from modelhub.services import (
    CounterIncrement,
    limit_counters_purge,
    limit_counters_reserve,
    limit_counters_settle,
)

if TYPE_CHECKING:
    from gateway.runtime import Runtime

__all__ = ["PICODOLLARS", "from_picodollars", "to_picodollars"]

logger = logging.getLogger(__name__)

# Which limit refused a request: the key's own, or its organization's.
SCOPE_KEY = "key"
SCOPE_ORGANIZATION = "organization"


# Window, _Owner and _Counter are named tuples rather than frozen dataclasses: several
# are made for every request, and a frozen dataclass sets each field through
# object.__setattr__ (and hashes in Python, for the cache of _owner_counters).


class Window(NamedTuple):
    key: str
    limit: int
    amount: int
    expires_at: datetime
    retry_after: int
    description: str
    code: str
    scope: str = SCOPE_KEY


@dataclass(frozen=True)
class Budget:
    """A budget a request counts against: its spend counter, and what a threshold event
    about it says."""

    subject: str  # modelhub.budgets.ORGANIZATION or CLIENT_KEY
    subject_id: int
    amount: Decimal
    period: str | None
    period_start: datetime | None
    spend_key: str
    expires_at: datetime
    thresholds: tuple[int, ...]


@dataclass(frozen=True)
class Crossing:
    """A budget whose spend went from ``before`` to ``after`` (picodollars) past
    ``thresholds`` (percentages) when a request settled."""

    budget: Budget
    before: int
    after: int
    thresholds: tuple[int, ...]


@dataclass
class Reservation:
    """What a request reserved; ``settle`` replaces estimates with actual usage."""

    windows: list[Window] = field(default_factory=list)
    tokens_keys: list[str] = field(default_factory=list)
    cost_keys: list[str] = field(default_factory=list)
    budgets: list[Budget] = field(default_factory=list)
    estimated_tokens: int = 0
    reserved_cost: int = 0  # picodollars: the request's worst case


class _Owner(NamedTuple):
    """Whose limits: a key or an organization, in the words and names its windows use."""

    subject: str
    subject_id: int
    scope: str
    whose: str  # "The key's" / "The organization's"
    code_prefix: str


# What a window reserves: one request, the estimated tokens, or the worst-case cost.
REQUESTS, TOKENS, COST = "requests", "tokens", "cost"


class _Counter(NamedTuple):
    """One counter of an owner's limits as it stands in a given minute: a window without
    the request's amount and the seconds left, which every request of the minute shares."""

    kind: str
    key: str
    limit: int
    expires_at: datetime
    description: str
    code: str


@lru_cache(maxsize=4096)
def _owner_counters(
    owner: _Owner,
    rpm: int | None,
    tpm: int | None,
    budget_amount: Decimal | None,
    budget_period: str | None,
    thresholds: tuple[int, ...],
    minute: datetime,
) -> tuple[tuple[_Counter, ...], Budget | None]:
    """The counters of one owner's limits in the minute starting at ``minute``, and its
    budget. Cached: all requests of a key in a minute share them, and building their keys,
    periods and messages was a tenth of a request's time on the event loop."""
    prefix = f"gw:{owner.subject}:{owner.subject_id}"
    label = minute.strftime("%Y%m%d%H%M")
    minute_end = minute + timedelta(minutes=1)
    rate_code = f"{owner.code_prefix}rate_limit_exceeded"
    counters = []
    if rpm is not None:
        counters.append(
            _Counter(
                REQUESTS,
                f"{prefix}:rpm:{label}",
                rpm,
                minute_end,
                f"{owner.whose} rate limit of {rpm} requests per minute reached.",
                rate_code,
            )
        )
    if tpm is not None:
        counters.append(
            _Counter(
                TOKENS,
                f"{prefix}:tpm:{label}",
                tpm,
                minute_end,
                f"{owner.whose} rate limit of {tpm} tokens per minute reached.",
                rate_code,
            )
        )
    if budget_amount is None:
        return tuple(counters), None
    period = budget_period or None
    start, end = budget_period_bounds(period, minute)
    per = f" per {period}" if period else ""
    counters.append(
        _Counter(
            COST,
            reservation_counter(owner.subject, owner.subject_id, period, start),
            to_picodollars(budget_amount),
            end,
            f"{owner.whose} budget of {budget_amount} USD{per} is spent.",
            f"{owner.code_prefix}budget_exceeded",
        )
    )
    budget = Budget(
        subject=owner.subject,
        subject_id=owner.subject_id,
        amount=budget_amount,
        period=period,
        period_start=start,
        spend_key=spend_counter(owner.subject, owner.subject_id, period, start),
        expires_at=end,
        thresholds=thresholds,
    )
    return tuple(counters), budget


def _add_windows(
    reservation: Reservation,
    owner: _Owner,
    limits,
    *,
    thresholds: tuple[int, ...],
    worst_case: int,
    now: datetime,
) -> None:
    """The windows of one owner's limits (``limits`` has rate_limit_rpm, rate_limit_tpm,
    budget_amount and budget_period: a ClientKeyInfo or an Organization)."""
    counters, budget = _owner_counters(
        owner,
        limits.rate_limit_rpm,
        limits.rate_limit_tpm,
        limits.budget_amount,
        limits.budget_period,
        thresholds,
        now.replace(second=0, microsecond=0),
    )
    amounts = {REQUESTS: 1, TOKENS: reservation.estimated_tokens, COST: worst_case}
    for counter in counters:
        reservation.windows.append(
            Window(
                counter.key,
                counter.limit,
                amounts[counter.kind],
                counter.expires_at,
                max(math.ceil((counter.expires_at - now).total_seconds()), 1),
                counter.description,
                counter.code,
                owner.scope,
            )
        )
        if counter.kind == TOKENS:
            reservation.tokens_keys.append(counter.key)
        elif counter.kind == COST:
            reservation.cost_keys.append(counter.key)
    if budget is not None:
        reservation.budgets.append(budget)


def has_limits(key) -> bool:
    """Whether a request of ``key`` (a ``ClientKeyInfo``) has any counter to pass."""
    return any(
        owner.rate_limit_rpm is not None
        or owner.rate_limit_tpm is not None
        or owner.budget_amount is not None
        for owner in (key, key.organization)
    )


def request_windows(
    key, *, estimated_tokens: int, worst_case_cost: Decimal, now: datetime
) -> Reservation:
    """The counters a request of ``key`` (a ``ClientKeyInfo``) must pass: the key's own
    and its organization's."""
    reservation = Reservation(estimated_tokens=estimated_tokens)
    if key.budget_amount is not None or key.organization.budget_amount is not None:
        reservation.reserved_cost = to_picodollars(worst_case_cost)
    thresholds = key.budget_thresholds
    _add_windows(
        reservation,
        _Owner(CLIENT_KEY, key.id, SCOPE_KEY, "The key's", ""),
        key,
        thresholds=thresholds.get(CLIENT_KEY, ()),
        worst_case=reservation.reserved_cost,
        now=now,
    )
    organization = key.organization
    _add_windows(
        reservation,
        _Owner(
            ORGANIZATION, organization.pk, SCOPE_ORGANIZATION, "The organization's", "organization_"
        ),
        organization,
        thresholds=thresholds.get(ORGANIZATION, ()),
        worst_case=reservation.reserved_cost,
        now=now,
    )
    return reservation


def reject(window: Window) -> RateLimited:
    error = RateLimited(window.description, retry_after=window.retry_after, code=window.code)
    # Which limit refused: the key's own or the organization's (shared by all its keys).
    error.headers["X-RateLimit-Scope"] = window.scope
    return error


# --- Backends -----------------------------------------------------------------------------

# One call on the limit store: first the settles given to it, then a batch of
# reservations in their order, each all or nothing (a request is admitted when each of its
# counters is below its limit, and then each grows by its amount).
# ARGV[1..3] are the numbers of requests, of deltas and of spends; then each delta, each
# spend's amount and expiry, each request's number of counters, and every counter's
# amount, limit and expiry. KEYS follow the same order: the counters the deltas correct,
# the spend counters, then the requests' counters, request after request.
# A delta goes only to a counter that still exists: its window ended otherwise, and it
# would start a new one below zero that never expires.
# The result has the spend counters' new values, then one entry a request: 0 when
# admitted, else the position of the counter that refused it.
LIMITS_SCRIPT = """
local requests = tonumber(ARGV[1])
local deltas = tonumber(ARGV[2])
local spends = tonumber(ARGV[3])
local results = {}
local a = 3
for i = 1, deltas do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('INCRBY', KEYS[i], ARGV[a + i])
  end
end
a = a + deltas
local k = deltas
for i = 1, spends do
  results[i] = redis.call('INCRBY', KEYS[k + i], ARGV[a + 2 * i - 1])
  redis.call('EXPIREAT', KEYS[k + i], ARGV[a + 2 * i])
end
a = a + 2 * spends
k = k + spends
local counts = a
a = a + requests
for r = 1, requests do
  local n = tonumber(ARGV[counts + r])
  local failed = 0
  for i = 1, n do
    local current = tonumber(redis.call('GET', KEYS[k + i]) or '0')
    if current >= tonumber(ARGV[a + 3 * i - 1]) then
      failed = i
      break
    end
  end
  if failed == 0 then
    for i = 1, n do
      redis.call('INCRBY', KEYS[k + i], ARGV[a + 3 * i - 2])
      redis.call('EXPIREAT', KEYS[k + i], ARGV[a + 3 * i])
    end
  end
  results[spends + r] = failed
  k = k + n
  a = a + 3 * n
end
return results
"""


def _redis_expiry(ends: datetime) -> int:
    """When Redis drops a counter whose window ends at ``ends`` (a Unix time): a minute
    later, so that the settles of the window's last requests still find it."""
    return int(ends.timestamp()) + 60


@dataclass
class _QueuedReserve:
    keys: list[str]
    args: list[int]
    result: asyncio.Future[int]
    # Called when the counters were raised for a caller that had stopped waiting.
    abandoned: Callable[[], object] | None


@dataclass
class _QueuedSettle:
    deltas: list[tuple[str, int]]
    spends: list[tuple[str, int, int]]  # key, amount, expiry timestamp
    result: asyncio.Future[list[int]]


class _Batch:
    """One script call in flight: the requests and settles it carries."""

    __slots__ = ("reserves", "settles", "keys", "args", "timer")

    def __init__(self, reserves, settles, keys, args):
        self.reserves: list[_QueuedReserve] = reserves
        self.settles: list[_QueuedSettle] = settles
        self.keys: list[str] = keys
        self.args: list[int] = args
        self.timer: asyncio.TimerHandle | None = None

    def futures(self) -> list[asyncio.Future]:
        return [item.result for item in self.reserves] + [item.result for item in self.settles]


class ReserveBatcher:
    """Sends the reservations and settles of concurrent requests to Redis together, one
    script call a batch, on one connection of its own (``gateway.resp``).

    A reservation or settle that finds no call in flight leaves at once, from the
    request's own turn of the event loop; those arriving meanwhile wait for the call in
    flight and leave together as soon as its reply is read, in the same turn. Replies are
    handed to the waiting requests as they are read: a lone request waits for its round
    trip and no turn more; under load, a call's cost is paid once a batch rather than
    once a request. Exactness is unchanged: the script takes each request whole, in
    arrival order, as separate calls would, after the settles of the batch (which only
    correct what earlier requests reserved).

    Before each call, ``before_send`` (when set) may add settles: the coalescer hands its
    queue over, so that what finished requests give back rides with the next
    reservations instead of costing a round trip of its own.

    A caller that stops waiting (its client hung up) cancels its future. If that happens
    before its batch leaves, its counters are left out; if after, and the script admitted
    it, its ``abandoned`` callback is called to give the reservation back.

    A call not answered within ``timeout`` fails its requests and closes the connection
    (a late reply would answer the next call); a failed connection fails what it carried
    and what was queued for it, and the next request opens another.
    """

    # The name Redis caches the script under (SHA-1 is what EVALSHA takes).
    SHA = hashlib.sha1(LIMITS_SCRIPT.encode(), usedforsecurity=False).hexdigest()

    def __init__(self, url: str, *, timeout: float, max_batch: int = 128):
        self.url = url
        self.timeout = timeout
        self.max_batch = max_batch
        self.connection: resp.RespConnection | None = None
        self.connecting: asyncio.Task | None = None
        self.in_flight: _Batch | None = None
        self.pending: list[_QueuedReserve] = []
        self.settles: list[_QueuedSettle] = []
        self.before_send: Callable[[], object] | None = None
        self.sending = False
        self.quiet: asyncio.Future | None = None

    def submit(
        self, keys: list[str], args: list[int], abandoned: Callable[[], object] | None
    ) -> asyncio.Future[int]:
        """Queue one request's counters; the future gets the script's answer for it."""
        result: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.pending.append(_QueuedReserve(keys, args, result, abandoned))
        self._next()
        return result

    def submit_settle(
        self, deltas: list[tuple[str, int]], spends: list[tuple[str, int, int]]
    ) -> asyncio.Future[list[int]]:
        """Queue deltas to add to counters and spends (key, amount, expiry timestamp) to
        add to spend counters; the future gets the spend counters' new values."""
        result: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        self.settles.append(_QueuedSettle(deltas, spends, result))
        self._next()
        return result

    def _next(self) -> None:
        """Send what is queued, unless a call is in flight (its reply sends it)."""
        if self.in_flight is not None or self.connecting is not None or self.sending:
            return
        if self.connection is None or self.connection.closed:
            if self.pending or self.settles:
                self.connecting = asyncio.get_running_loop().create_task(self._connect())
            else:
                self._quiet()
            return
        self.sending = True
        try:
            if self.before_send is not None:
                self.before_send()
        finally:
            self.sending = False
        batch = [item for item in self.pending[: self.max_batch] if not item.result.done()]
        del self.pending[: self.max_batch]
        settles, self.settles = self.settles, []
        if batch or settles:
            self._send(batch, settles)
        elif self.pending:
            self._next()  # the first max_batch had all been given up
        else:
            self._quiet()

    def _send(self, batch: list[_QueuedReserve], settles: list[_QueuedSettle]) -> None:
        deltas = [delta for settle in settles for delta in settle.deltas]
        spends = [spend for settle in settles for spend in settle.spends]
        keys = [key for key, _ in deltas] + [key for key, _, _ in spends]
        args = [len(batch), len(deltas), len(spends)]
        args += [delta for _, delta in deltas]
        for _, amount, expires in spends:
            args += [amount, expires]
        for item in batch:
            keys += item.keys
            args.append(len(item.keys))
        for item in batch:
            args += item.args
        self._call(_Batch(batch, settles, keys, args), "EVALSHA", self.SHA)

    def _call(self, batch: _Batch, name: str, script: str) -> None:
        connection = self.connection
        assert connection is not None
        self.in_flight = batch
        loop = asyncio.get_running_loop()
        batch.timer = loop.call_later(self.timeout, self._timed_out, batch)
        payload = resp.command(name, script, len(batch.keys), *batch.keys, *batch.args)
        try:
            connection.send(payload, partial(self._answered, batch))
        except ConnectionError as error:
            self._answered(batch, error)

    def _answered(self, batch: _Batch, reply: Any) -> None:
        if batch is not self.in_flight:
            return  # timed out already
        self.in_flight = None
        if batch.timer is not None:
            batch.timer.cancel()
        if isinstance(reply, resp.RedisError) and str(reply).startswith("NOSCRIPT"):
            # A Redis without the script (restarted, flushed) is sent it whole, which
            # loads it again.
            self._call(batch, "EVAL", LIMITS_SCRIPT)
            return
        if isinstance(reply, BaseException):
            self._fail(batch.futures(), reply)
        else:
            self._distribute(batch, reply)
        self._next()

    def _timed_out(self, batch: _Batch) -> None:
        if batch is not self.in_flight:
            return
        self.in_flight = None
        self._fail(batch.futures(), TimeoutError("Redis did not answer in time."))
        # Its reply may still come and would be read as the next call's.
        if self.connection is not None:
            self.connection.close()
        self._next()

    def _distribute(self, batch: _Batch, answers: list[int]) -> None:
        spends = sum(len(settle.spends) for settle in batch.settles)
        values = [int(value) for value in answers[:spends]]
        for settle in batch.settles:
            if not settle.result.done():
                settle.result.set_result(values[: len(settle.spends)])
            del values[: len(settle.spends)]
        for item, answer in zip(batch.reserves, answers[spends:], strict=True):
            if not item.result.done():
                item.result.set_result(int(answer))
            elif answer == 0 and item.abandoned is not None:
                try:
                    item.abandoned()
                except Exception:
                    logger.exception("Could not give back an abandoned reservation")

    @staticmethod
    def _fail(futures: list[asyncio.Future], error: BaseException) -> None:
        for result in futures:
            if not result.done():
                result.set_exception(error)

    async def _connect(self) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                self.connection = await resp.connect(self.url)
        except Exception as error:
            # What waited for this connection fails with it; the next request tries again.
            queued: list[asyncio.Future] = [item.result for item in self.pending]
            queued += [settle.result for settle in self.settles]
            self.pending, self.settles = [], []
            self._fail(queued, error)
        finally:
            self.connecting = None
        self._next()

    def _quiet(self) -> None:
        if self.quiet is not None and not self.quiet.done():
            self.quiet.set_result(None)

    async def close(self) -> None:
        """Let the calls already queued be answered; close the connection."""
        while self.in_flight is not None or self.connecting is not None:
            self.quiet = asyncio.get_running_loop().create_future()
            await self.quiet
        if self.connection is not None:
            self.connection.close()
            self.connection = None


@dataclass
class _CoalescedSettle:
    deltas: list[tuple[str, int]]
    spends: list[CounterIncrement]
    # Called with the spend counters' values after this settle (as ``settle`` returns).
    done: Callable[[list[int]], None] | None
    retried: bool = False


class SettleCoalescer:
    """Writes the settles of one process's requests together: with the next reservations
    the batcher sends, or after an interval when none comes first.

    The deltas of a counter are summed into one, and so is each spend counter's cost. A
    spend counter's new value, less the batch's sum, is its value before the batch; each
    settle's share is then laid out after it in the order settles were queued, so every
    settle learns the values before and after its own cost as if it had been written
    alone, and a threshold is crossed by exactly one of them.

    A write that fails (Redis unreachable) is logged, counted and tried once more with
    the next one; the settles of a second failure, and any beyond ``max_pending``, are
    given up. Either way their requests' counters keep the worst case reserved: budgets
    stay bounded, only the refund is lost until the counter's window ends.

    A request refused while settles wait has them written first and asks again (see
    ``RedisLimiter.reserve``): a client's next request counts what its previous ones
    really used, as with inline settles. Settles of other processes may still be
    queued, for at most an interval.
    """

    def __init__(self, batcher: ReserveBatcher, *, interval: float, max_pending: int):
        self.batcher = batcher
        batcher.before_send = self.hand_over
        self.interval = interval
        self.max_pending = max_pending
        self.pending: list[_CoalescedSettle] = []
        self.writing: set[asyncio.Future] = set()
        self.wake = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.closed = False

    def queue(
        self,
        deltas: list[tuple[str, int]],
        spends: list[CounterIncrement],
        done: Callable[[list[int]], None] | None = None,
    ) -> None:
        """Queue a settle (nonzero deltas only); returns at once."""
        if not deltas and not spends:
            return
        if self.closed or len(self.pending) >= self.max_pending:
            LIMIT_SETTLES_DROPPED.labels("queue_full").inc()
            logger.warning("Limit settle queue full: a request keeps its reservation.")
            return
        self.pending.append(_CoalescedSettle(deltas, spends, done))
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._run())
        self.wake.set()

    async def _run(self) -> None:
        while True:
            await self.wake.wait()
            await asyncio.sleep(self.interval)
            self.wake.clear()
            await self.flush()

    def hand_over(self) -> asyncio.Future | None:
        """Give what is queued to the batcher's next call; the future is done when it is
        written (or failed, and queued again)."""
        batch, self.pending = self.pending, []
        if not batch:
            return None
        counters: dict[str, int] = {}
        spent: dict[str, int] = {}
        expiry: dict[str, int] = {}
        for item in batch:
            for key, delta in item.deltas:
                counters[key] = counters.get(key, 0) + delta
            for spend in item.spends:
                spent[spend.key] = spent.get(spend.key, 0) + spend.amount
                expires = _redis_expiry(spend.expires_at)
                expiry[spend.key] = max(expiry.get(spend.key, 0), expires)
        writing = self.batcher.submit_settle(
            [(key, delta) for key, delta in counters.items() if delta],
            [(key, amount, expiry[key]) for key, amount in spent.items()],
        )
        self.writing.add(writing)
        writing.add_done_callback(partial(self._written, batch, spent))
        return writing

    def _written(
        self, batch: list[_CoalescedSettle], spent: dict[str, int], writing: asyncio.Future
    ) -> None:
        self.writing.discard(writing)
        error = None if writing.cancelled() else writing.exception()
        if writing.cancelled() or error is not None:
            LIMIT_SETTLE_FLUSHES.labels("error").inc()
            retry = [item for item in batch if not item.retried]
            given_up = len(batch) - len(retry)
            logger.error(
                "Could not write %d limit settles (%d retried with the next write): %s",
                len(batch),
                len(retry),
                "cancelled" if error is None else f"{type(error).__name__}: {error}",
            )
            if given_up:
                LIMIT_SETTLES_DROPPED.labels("redis_error").inc(given_up)
            for item in retry:
                item.retried = True
            # Ahead of later settles: spend is laid out in the order it was queued.
            self.pending[:0] = retry
            if retry and not self.closed:
                self.wake.set()
            return
        LIMIT_SETTLE_FLUSHES.labels("ok").inc()
        afters = writing.result()
        running = {key: after - spent[key] for key, after in zip(spent, afters, strict=True)}
        for item in batch:
            totals = []
            for spend in item.spends:
                running[spend.key] += spend.amount
                totals.append(running[spend.key])
            if item.done is not None:
                try:
                    item.done(totals)
                except Exception:
                    logger.exception("Could not handle a settled request's spend")

    async def flush(self) -> None:
        """Write what is queued now and wait for it (a failure is queued again)."""
        writing = self.hand_over()
        if writing is not None:
            await asyncio.wait({writing})

    async def write_now(self) -> bool:
        """Write what is queued or being written before going on; whether there was any."""
        if not self.pending and not self.writing:
            return False
        if self.writing:
            await asyncio.wait(set(self.writing))
        await self.flush()
        return True

    async def close(self) -> None:
        """Write what is still queued (trying a failed write once more)."""
        self.closed = True
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        if self.writing:
            await asyncio.wait(set(self.writing))
        await self.flush()
        await self.flush()


class RedisLimiter:
    def __init__(self, url: str):
        self.reserves = ReserveBatcher(url, timeout=settings.GATEWAY_LIMIT_REDIS_WAIT_SECONDS)
        interval = settings.GATEWAY_LIMIT_SETTLE_INTERVAL_MS / 1000
        self.coalescer = (
            SettleCoalescer(
                self.reserves,
                interval=interval,
                max_pending=settings.GATEWAY_LIMIT_SETTLE_MAX_PENDING,
            )
            if interval > 0
            else None
        )

    async def reserve(
        self, windows: list[Window], abandoned: Callable[[], object] | None = None
    ) -> Window | None:
        """The window that refuses the request, or None when every counter took it.
        Cancelled after its counters were raised, it calls ``abandoned`` once it knows."""
        if not windows:
            return None
        args: list[int] = []
        for window in windows:
            args += [window.amount, window.limit, _redis_expiry(window.expires_at)]
        keys = [w.key for w in windows]
        failed = await self.reserves.submit(keys, args, abandoned)
        # Refused while this process still holds settles back: they may give back what
        # the client's previous requests reserved beyond their cost (its next request
        # must count what they really used), so write them and ask again.
        if failed and self.coalescer is not None and await self.coalescer.write_now():
            failed = await self.reserves.submit(keys, args, abandoned)
        return windows[failed - 1] if failed else None

    async def settle(
        self, deltas: list[tuple[str, int]], spends: list[CounterIncrement]
    ) -> list[int]:
        """Add each delta to its counter and each spend to its spend counter, with the
        next batch of reservations; returns the spend counters' new values."""
        deltas = [(key, delta) for key, delta in deltas if delta]
        if not deltas and not spends:
            return []
        return await self.reserves.submit_settle(
            deltas, [(s.key, s.amount, _redis_expiry(s.expires_at)) for s in spends]
        )

    async def purge_expired(self) -> None:
        """Redis expires the counters itself."""

    async def close(self) -> None:
        # The coalescer's last settles go through the batcher: it closes last.
        if self.coalescer is not None:
            await self.coalescer.close()
        await self.reserves.close()


def _reserve_in_database(windows: list[Window]) -> Window | None:
    increments = [CounterIncrement(w.key, w.limit, w.amount, w.expires_at) for w in windows]
    failed = limit_counters_reserve(increments=increments)
    return None if failed is None else windows[failed]


class DatabaseLimiter:
    # Each settle is its own transaction (see ``limit_counters_settle``).
    coalescer = None

    def __init__(self, runtime: Runtime):
        self.runtime = runtime

    async def reserve(
        self, windows: list[Window], abandoned: Callable[[], object] | None = None
    ) -> Window | None:
        """As ``RedisLimiter.reserve``. A database thread cannot be stopped: the
        transaction runs as a task of its own, which a cancelled caller leaves to finish."""
        if not windows:
            return None
        reserving = self.runtime.spawn(self.runtime.db(_reserve_in_database, windows))
        try:
            return await asyncio.shield(reserving)
        except asyncio.CancelledError:
            if abandoned is not None:
                reserving.add_done_callback(partial(_admitted_late, abandoned))
            raise

    async def settle(
        self, deltas: list[tuple[str, int]], spends: list[CounterIncrement]
    ) -> list[int]:
        deltas = [(key, delta) for key, delta in deltas if delta]
        if not deltas and not spends:
            return []
        return await self.runtime.db(limit_counters_settle, deltas=deltas, spends=spends)

    async def purge_expired(self) -> None:
        await self.runtime.db(
            limit_counters_purge, expired_before=timezone.now() - timedelta(minutes=5)
        )

    async def close(self) -> None:
        """Nothing to release: the database threads belong to the runtime."""


def _admitted_late(abandoned: Callable[[], object], task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is None and task.result() is None:
        abandoned()


def build_limiter(runtime: Runtime) -> RedisLimiter | DatabaseLimiter:
    url = counters_redis_url()
    return RedisLimiter(url) if url else DatabaseLimiter(runtime)


def _settlement(reservation: Reservation, tokens: int, cost: Decimal):
    """The deltas that replace a reservation by actual usage, and the spend to add."""
    deltas = [(key, tokens - reservation.estimated_tokens) for key in reservation.tokens_keys]
    actual = to_picodollars(cost)
    deltas += [(key, actual - reservation.reserved_cost) for key in reservation.cost_keys]
    budgets = reservation.budgets if actual > 0 else []
    spends = [CounterIncrement(b.spend_key, 0, actual, b.expires_at) for b in budgets]
    return deltas, spends, budgets, actual


def _crossings(budgets: list[Budget], actual: int, totals: list[int]) -> list[Crossing]:
    crossings = []
    for budget, after in zip(budgets, totals, strict=True):
        crossed = crossed_thresholds(
            budget.thresholds, budget=budget.amount, before=after - actual, after=after
        )
        if crossed:
            crossings.append(Crossing(budget, after - actual, after, tuple(crossed)))
    return crossings


async def settle(
    limiter: RedisLimiter | DatabaseLimiter, reservation: Reservation, *, tokens: int, cost: Decimal
) -> list[Crossing]:
    """Replace the reserved amounts by what the request actually used (giving back the
    difference between a budget's worst case and the actual cost), add the cost to each
    budget's spend, and return the budgets whose thresholds that spend crossed."""
    deltas, spends, budgets, actual = _settlement(reservation, tokens, cost)
    totals = await limiter.settle(deltas, spends)
    return _crossings(budgets, actual, totals)


def settle_soon(
    limiter: RedisLimiter | DatabaseLimiter,
    reservation: Reservation,
    *,
    tokens: int,
    cost: Decimal,
    announce: Callable[[Crossing], object],
) -> bool:
    """Queue what ``settle`` does on the limiter's coalescer, without waiting for it;
    ``announce`` gets each crossing once the settle is written. False when it must be
    awaited (call ``settle`` instead): when the limiter settles inline (the database, or
    an interval of 0), and when the request used more than it reserved (more tokens than
    estimated): held back, that excess would be missing from the counters that admit the
    client's next request. A settle that only gives back can wait."""
    coalescer = limiter.coalescer
    if coalescer is None:
        return False
    deltas, spends, budgets, actual = _settlement(reservation, tokens, cost)
    if any(delta > 0 for _, delta in deltas):
        return False
    done = None
    if budgets:

        def done(totals: list[int]) -> None:
            for crossing in _crossings(budgets, actual, totals):
                announce(crossing)

    coalescer.queue([(key, delta) for key, delta in deltas if delta], spends, done)
    return True
