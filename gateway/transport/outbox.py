"""The outbox worker: delivers queued messages to partners, never losing one (docs/architecture.md, delivery;
docs/outbox-partners.md).

A service step that decides to send a message writes an `outbox` row in the same transaction as
its state change. This worker takes it from there:

1. Claim: one writer step fetches the due rows (`fetch_due_outbox`, which holds back a row while
   an earlier one of the same request or lending request and partner is pending or sending) and
   marks them `sending` (`claim_outbox`) under a lease: the row is this worker's until the
   partner's timeout plus `lease_margin` have passed. Only rows this step moved from `pending`
   are sent, so two workers on one database never send the same row, and per-partner order holds
   whichever worker holds the earlier row. On PostgreSQL the fetch locks its rows with
   `FOR UPDATE SKIP LOCKED`, so workers claiming at the same moment take different rows.
2. Send: the rows go out concurrently, at most `concurrency` at once in all and at most
   `partner_max_in_flight` (or the partner's `max_in_flight`) to any one partner, so a partner
   that hangs holds a few slots, not all of them. A partner whose sends keep failing at the
   transport level is backed off as a whole by its circuit breaker (`breaker.py`): while it is
   open, its due rows fail at once without a request to it (a transport error, so they are
   retried on their own backoff and give up after `max_attempts` exactly as if they had been
   sent), and after the cooldown one row goes as a probe. See docs/outbox-partners.md.
3. Record: one writer step per row stores the outcome together with what it causes:
   - confirmation OK: the row is `delivered`, the message and the partner's confirmation are kept
     verbatim in `raw_messages` (direction "out", linked from the row and the request's history);
   - confirmation ERROR: the row is `failed` at once (the partner understood and refused: sending
     again would not help), the exchange is kept likewise;
   - transport error: the row is `pending` again after an exponential backoff with full jitter;
     after `max_attempts` it is `failed`.
   A final verdict also gets a history row (service/delivery.py), and the side's outcome hook,
   `on_borrowing_outcome` or `on_lending_outcome` `(conn, row, verdict, outcome, now)`, applies
   what it means for the request inside the same step (service/borrowing_delivery.py,
   service/lending_delivery.py). The step only marks the row if it is still at the attempt this
   worker claimed.

Unknown outcomes: if the outcome is never recorded (the database was unwritable when the answer
came, or the process died mid-send), the row stays `sending` until its lease ends; then any
worker's sweep (`release_outbox_leases`, every `poll_interval`) puts it back to `pending`, counts
it in `unknown_outcomes` and writes `message_outcome_unknown` to the request's history. The row
goes again without a restart; the partner may receive it twice (the same bytes, so one that
recognises repeats drops it), and the history marks that send as a retry after an unknown outcome
(docs/outbox-partners.md). At `start()` a worker that is alone on its database (`reset_on_start`,
the default) releases every `sending` row at once, since they can only be a dead predecessor's;
with several workers on one database (PostgreSQL) pass `reset_on_start=False` and the leases
alone decide (runtime.py does so unless `[gateway] outbox_shared` says otherwise; see
config.OutboxSettings).

The worker sleeps until `wakeup` is set (services set it after committing a step that queued
rows), a delivery finishes, a retry falls due, or `poll_interval` passes. Its dependencies are
passed in (the writer, the clock, the wake-up event, the partners, the breakers and one outcome
hook per side); runtime.py assembles them for the running gateway.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, update
from sqlalchemy.exc import DBAPIError

from ..config import Partner
from ..messages import MessageError, decode
from ..messages.codec import format_datetime
from ..messages.identity import content_sha256
from ..service.delivery import (
    DELIVERED, FAILED, REFUSED, RETRIED, STALE, Row, outcome_history, outcome_unknown_history,
)
from ..service.writer import Conflict, Writer
from ..store import queries
from ..store.models import outbox_t
from .breaker import PartnerBreakers
from .client import Confirmed, PartnerClient, Refused, SendOutcome, TransportError

__all__ = ["OutboxCounts", "OutboxWorker", "OutcomeHook", "backoff_delay"]

log = logging.getLogger(__name__)

# (conn, outbox row, verdict "delivered" | "refused" | "failed", outcome, now) -> None; runs inside
# the recording step, so whatever it writes commits together with the row's new state.
OutcomeHook = Callable[[Connection, Row, str, SendOutcome, datetime], None]

MIN_DELAY = 0.05  # seconds: a retry is never due sooner
_RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})  # serialization failure, deadlock (PostgreSQL)


@dataclass
class OutboxCounts:
    """What a run did. `stale`: the row had been changed under us (reset or taken by another
    worker) before we could record the outcome; nothing was recorded for it."""

    claimed: int = 0
    delivered: int = 0
    refused: int = 0
    retried: int = 0
    failed: int = 0
    stale: int = 0

    def count(self, verdict: str) -> None:
        setattr(self, verdict, getattr(self, verdict) + 1)

    def __iadd__(self, other: OutboxCounts) -> OutboxCounts:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self


def backoff_delay(attempts: int, *, base_delay: float, max_delay: float, rng: random.Random) -> float:
    """Seconds before the next try after `attempts` failed ones: exponential, capped, full jitter
    (uniform in [0, cap)), and never under 50 ms."""
    cap = min(max_delay, base_delay * 2 ** max(0, attempts - 1))
    return max(MIN_DELAY, cap * rng.random())


@dataclass(frozen=True, slots=True)
class _Sent:
    """The parts of a stored outgoing message the recording step needs."""

    requesting_agency: str | None = None
    request_ref: str | None = None
    timestamp: str | None = None
    action: Any = None  # messages.Action of a requestingAgencyMessage
    content_sha256: str | None = None  # of the canonical form (the duplicate key's content part)

    @classmethod
    def of(cls, body: bytes) -> _Sent:
        try:
            inbound = decode(body)
        except MessageError:
            log.warning("an outbox message does not decode; it is kept without its header fields")
            return cls()
        message = inbound.message
        header = message.header
        return cls(
            requesting_agency=str(header.requesting_agency_id) if header.requesting_agency_id else None,
            request_ref=header.requesting_agency_request_id,
            timestamp=format_datetime(header.timestamp) if header.timestamp else None,
            action=getattr(message, "action", None),
            content_sha256=content_sha256(inbound.root),
        )


class _Stale(Exception):
    """The row was no longer ours to mark: roll the recording step back."""


def _retryable(exc: DBAPIError) -> bool:
    orig = exc.orig
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return code in _RETRYABLE_SQLSTATES


class OutboxWorker:
    """Delivers outbox rows; see the module docstring. `start()`/`close()` for the app's background
    list; `run_once()` processes everything due now (for tests and tools)."""

    def __init__(
        self,
        writer: Writer,
        *,
        clock: Callable[[], datetime],
        wakeup: asyncio.Event,
        partners: Mapping[str, Partner],
        breakers: PartnerBreakers,
        on_borrowing_outcome: OutcomeHook,
        on_lending_outcome: OutcomeHook,
        max_attempts: int = 8,
        base_delay: float = 1.0,
        max_delay: float = 600.0,
        concurrency: int = 16,
        partner_max_in_flight: int = 4,
        poll_interval: float = 1.0,
        rng: random.Random | None = None,
        client: PartnerClient | None = None,
        lease_margin: float = 30.0,
        reset_on_start: bool = True,
        shutdown_grace: float = 5.0,
    ):
        if max_attempts < 1 or concurrency < 1 or partner_max_in_flight < 1:
            raise ValueError("max_attempts, concurrency and partner_max_in_flight must be at least 1")
        if lease_margin <= 0:
            raise ValueError("lease_margin must be above 0 s")
        self.writer, self.clock, self.wakeup, self.partners = writer, clock, wakeup, partners
        # Shared with whoever shows them (the staff API), so staff see what this worker sees.
        self.breakers = breakers
        self.on_borrowing_outcome, self.on_lending_outcome = on_borrowing_outcome, on_lending_outcome
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.concurrency = concurrency
        self.partner_max_in_flight = partner_max_in_flight
        self.poll_interval = poll_interval
        self.rng = rng if rng is not None else random.Random()
        self.lease_margin = lease_margin
        self.reset_on_start = reset_on_start
        self.shutdown_grace = shutdown_grace
        self._own_client = client is None
        self.client = client or PartnerClient(max_connections=max(concurrency, 1) * 2)
        self.totals = OutboxCounts()  # everything this worker did, for metrics and tests
        self._task: asyncio.Task | None = None
        self._inflight: set[asyncio.Task] = set()
        self._partner_in_flight: dict[str, int] = {}  # agency -> sends under way
        self._retry_times: list[float] = []  # loop times when retries we scheduled fall due

    # --- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is not None:
            return
        await self.recover()
        await self.client.start()
        self._task = asyncio.create_task(self._run(), name="gateway-outbox")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self._inflight:
            # Let deliveries under way finish; what is still sending after the grace stays
            # `sending` in the database and goes again when its lease ends or at the next start.
            _, pending = await asyncio.wait(set(self._inflight), timeout=self.shutdown_grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._own_client:
            await self.client.close()

    async def recover(self) -> int:
        """Put rows left `sending` by a dead worker back to `pending`; return how many.

        With `reset_on_start` (one worker per database): every `sending` row. Without: the rows
        whose lease has ended."""
        count = await self.release_leases(expired_only=not self.reset_on_start)
        if count:
            log.warning("outbox: %d message(s) left sending by an earlier run will be sent again", count)
        return count

    async def release_leases(self, *, expired_only: bool = True) -> int:
        """One sweep: `sending` rows whose lease ended go back to `pending`, each with a
        `message_outcome_unknown` history row; return how many."""
        now = self.clock()

        def step(conn: Connection) -> int:
            released = queries.release_outbox_leases(conn, now=now, expired_only=expired_only)
            for row in released:
                outcome_unknown_history(conn, row, now)
            return len(released)

        count = await self.writer.run(step)
        if count:
            self.wakeup.set()
        return count

    # --- one pass (tests, tools) ----------------------------------------------------------------

    async def run_once(self) -> OutboxCounts:
        """Claim and deliver everything due now, including rows that become due during the run
        (a later message of a request after its predecessor was delivered, the request to the next
        partner after a refusal); return the counts. Retries scheduled for later are left."""
        counts = OutboxCounts()
        while True:
            rows, _ = await self._claim(self.concurrency)
            if not rows:
                return counts
            counts.claimed += len(rows)
            for verdict in await asyncio.gather(*(self._deliver(row) for row in rows)):
                counts.count(verdict)
                self.totals.count(verdict)
            self.totals.claimed += len(rows)

    # --- the background loop ----------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        wakeup = self.wakeup
        last_sweep = loop.time()
        while True:
            wakeup.clear()  # before claiming: a signal that arrives during the claim is kept
            if loop.time() - last_sweep >= self.poll_interval:
                last_sweep = loop.time()
                try:
                    await self.release_leases()
                except Exception:  # noqa: BLE001 - the loop must survive a database hiccup
                    log.exception("outbox: releasing expired leases failed")
            free = self.concurrency - len(self._inflight)
            claimed: list[Row] = []
            more = False
            if free > 0:
                try:
                    claimed, more = await self._claim(free)
                except Exception:  # noqa: BLE001
                    log.exception("outbox: claiming due rows failed; trying again in %s s", self.poll_interval)
                for row in claimed:
                    self._spawn(row)
                self.totals.claimed += len(claimed)
                if claimed and more:
                    continue  # maybe more due (other partners' rows): claim again
            await self._wait(wakeup, loop)

    async def _wait(self, wakeup: asyncio.Event, loop: asyncio.AbstractEventLoop) -> None:
        """Until woken (a service queued rows, a delivery finished), a retry we scheduled falls
        due, or `poll_interval` passes (rows scheduled by other workers)."""
        timeout = self.poll_interval
        now = loop.time()
        while self._retry_times and self._retry_times[0] <= now:
            heapq.heappop(self._retry_times)
        if self._retry_times:
            timeout = min(timeout, self._retry_times[0] - now)
        try:
            async with asyncio.timeout(max(0.0, timeout)):
                await wakeup.wait()
        except TimeoutError:
            pass

    def _spawn(self, row: Row) -> None:
        task = asyncio.create_task(self._deliver_logged(row), name=f"gateway-outbox-{row['id']}")
        self._inflight.add(task)

        def done(t: asyncio.Task) -> None:
            self._inflight.discard(t)
            self.wakeup.set()  # a slot is free; successors may be due

        task.add_done_callback(done)

    async def _deliver_logged(self, row: Row) -> None:
        try:
            self.totals.count(await self._deliver(row))
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the row stays `sending` until its lease ends
            log.exception("outbox: delivering row %s failed unexpectedly; it goes again when its lease ends",
                          row["id"])

    # --- claim ---------------------------------------------------------------------------------

    def _max_in_flight(self, agency: str) -> int:
        partner = self.partners.get(agency)
        configured = (partner.max_in_flight if partner is not None else None) or self.partner_max_in_flight
        return self.breakers.get(agency).max_in_flight(configured)

    def _lease(self, row: Row, now: datetime) -> datetime:
        return now + timedelta(seconds=self._partner(row).timeout_seconds + self.lease_margin)

    async def _claim(self, limit: int) -> tuple[list[Row], bool]:
        """Claim up to `limit` due rows, within each partner's room; return them and whether more
        may be due (the fetch was full). Rows of a partner whose breaker is open are claimed
        with `held` set to the reason: they fail at once, without a request to the partner."""
        now = self.clock()
        held = {agency: self._held_reason(agency) for agency in self.breakers.blocked(now)}
        # (blocked() also turns breakers whose cooldown is over half-open: room for one probe)
        room = {agency: self._max_in_flight(agency) - n for agency, n in self._partner_in_flight.items()}
        skip = {agency for agency, free in room.items() if free <= 0 and agency not in held}

        def step(conn: Connection) -> tuple[list[Row], bool]:
            try:
                due = queries.fetch_due_outbox(conn, now=now, limit=limit, skip_partners=skip)
                left = dict(room)
                chosen = []
                for row in due:
                    agency = row["partner_agency"]
                    if agency in held:
                        chosen.append({**row, "held": held[agency]})
                        continue
                    free = left.get(agency)
                    if free is None:
                        free = self._max_in_flight(agency)
                    if free > 0:
                        chosen.append(row)
                    left[agency] = free - 1
                if not chosen:
                    return [], False
                by_lease: dict[datetime, list[int]] = {}  # the lease depends on the partner's timeout
                for row in chosen:
                    by_lease.setdefault(self._lease(row, now), []).append(row["id"])
                ids = {claimed_id for until, group in by_lease.items()
                       for claimed_id in queries.claim_outbox(conn, group, lease_until=until)}
                claimed = [{**row, "attempts": row["attempts"] + 1} for row in chosen if row["id"] in ids]
            except DBAPIError as exc:
                if _retryable(exc):  # two workers' claims deadlocked: the writer runs this again
                    raise Conflict(str(exc)) from exc
                raise
            return claimed, len(due) == limit

        claimed, more = await self.writer.run(step)
        for row in claimed:
            if "held" not in row:
                agency = row["partner_agency"]
                self._partner_in_flight[agency] = self._partner_in_flight.get(agency, 0) + 1
        return claimed, more

    def _held_reason(self, agency: str) -> str:
        breaker = self.breakers.get(agency)
        retry_at = breaker.retry_at.isoformat() if breaker.retry_at is not None else "later"
        return (f"not sent: {agency} is held by its circuit breaker after {breaker.failures} transport "
                f"failures in a row (last: {breaker.last_error}); next probe at {retry_at}")

    # --- send and record --------------------------------------------------------------------------

    def _partner(self, row: Row) -> Partner:
        partner = self.partners.get(row["partner_agency"])
        if partner is None:  # no longer configured: send with defaults to where it was queued for
            partner = Partner(agency=row["partner_agency"], name=row["partner_agency"], url=row["partner_url"])
        return partner

    async def _deliver(self, row: Row) -> str:
        agency = row["partner_agency"]
        if "held" in row:  # the partner's breaker is open: fail fast, on the row's usual schedule
            return await self._record(row, TransportError(row["held"]), self.clock())
        try:
            outcome = await self.client.send(self._partner(row), row["kind"], row["body"], url=row["partner_url"])
        finally:
            left = self._partner_in_flight.get(agency, 1) - 1
            if left > 0:
                self._partner_in_flight[agency] = left
            else:
                self._partner_in_flight.pop(agency, None)
        now = self.clock()
        self._count_for_breaker(agency, outcome, now)
        return await self._record(row, outcome, now)

    def _count_for_breaker(self, agency: str, outcome: SendOutcome, now: datetime) -> None:
        breaker = self.breakers.get(agency)
        if not isinstance(outcome, TransportError):
            breaker.succeeded(now)  # an ERROR confirmation too: the partner is up and answering
        elif breaker.failed(outcome.reason, now):
            log.warning("outbox: %d failures in a row to %s; holding its messages for %g s (%s)",
                        breaker.failures, agency, breaker.settings.cooldown, outcome.reason)
            heapq.heappush(self._retry_times, asyncio.get_running_loop().time() + breaker.settings.cooldown)

    async def _record(self, row: Row, outcome: SendOutcome, now: datetime) -> str:
        delay = None
        if isinstance(outcome, TransportError) and row["attempts"] < self.max_attempts:
            delay = backoff_delay(row["attempts"], base_delay=self.base_delay, max_delay=self.max_delay,
                                  rng=self.rng)
        sent = _Sent() if delay is not None else _Sent.of(row["body"])
        try:
            verdict = await self.writer.run(self._record_step(row, outcome, sent, now, delay))
        except _Stale:
            log.warning("outbox: row %s changed while it was being sent; outcome not recorded", row["id"])
            return STALE
        except Exception:  # noqa: BLE001 - record the delivery at least, without its effects
            log.exception("outbox: recording the outcome of row %s failed; marking it without effects",
                          row["id"])
            try:
                verdict = await self.writer.run(
                    self._record_step(row, outcome, sent, now, delay, effects=False)
                )
            except _Stale:
                return STALE
        if verdict == RETRIED:
            assert delay is not None
            heapq.heappush(self._retry_times, asyncio.get_running_loop().time() + delay)
            log.info("outbox: row %s to %s: %s; attempt %d of %d, next in %.2f s", row["id"],
                     row["partner_agency"], outcome.reason, row["attempts"], self.max_attempts, delay)
        elif verdict == DELIVERED:
            log.debug("outbox: row %s delivered to %s", row["id"], row["partner_agency"])
        else:
            log.warning("outbox: row %s to %s %s: %s", row["id"], row["partner_agency"], verdict,
                        getattr(outcome, "reason", ""))
        if verdict != RETRIED:
            self.wakeup.set()  # successors are unblocked; effects may have queued rows
        return verdict

    def _record_step(self, row: Row, outcome: SendOutcome, sent: _Sent, now: datetime,
                     delay: float | None, *, effects: bool = True) -> Callable[[Connection], str]:
        outbox_id, attempt = row["id"], row["attempts"]

        def step(conn: Connection) -> str:
            raw_id = None
            if effects and isinstance(outcome, (Confirmed, Refused)):
                raw_id = self._store_raw(conn, row, sent, outcome.raw, now)
            if isinstance(outcome, Confirmed):
                verdict, error = DELIVERED, None
                ok = queries.mark_outbox_delivered(conn, outbox_id, now=now, raw_message_id=raw_id,
                                                   attempt=attempt)
            elif isinstance(outcome, Refused):
                verdict, error = REFUSED, outcome.reason
                ok = queries.mark_outbox_retry(conn, outbox_id, error=error, next_attempt_at=None, attempt=attempt)
                if ok and raw_id is not None:
                    conn.execute(update(outbox_t).where(outbox_t.c.id == outbox_id).values(raw_message_id=raw_id))
            elif delay is not None:
                verdict, error = RETRIED, outcome.reason
                ok = queries.mark_outbox_retry(conn, outbox_id, error=error, attempt=attempt,
                                               next_attempt_at=now + timedelta(seconds=delay))
            else:
                verdict = FAILED
                error = f"{outcome.reason} (gave up after {row['attempts']} attempts)"
                ok = queries.mark_outbox_retry(conn, outbox_id, error=error, next_attempt_at=None, attempt=attempt)
            if not ok:
                raise _Stale(outbox_id)
            if effects and verdict != RETRIED:
                self._effects(conn, row, verdict, outcome, sent, error, raw_id, now)
            return verdict

        return step

    @staticmethod
    def _store_raw(conn: Connection, row: Row, sent: _Sent, confirmation: bytes, now: datetime) -> int:
        key = queries.MessageKey(
            direction="out", partner_agency=row["partner_agency"], kind=row["kind"],
            requesting_agency=sent.requesting_agency, requesting_agency_request_id=sent.request_ref,
            message_timestamp=sent.timestamp,
            content_sha256=sent.content_sha256 or queries.body_sha256(row["body"]),
        )
        raw_id = queries.insert_raw_message_if_new(conn, key, row["body"], received_at=now,
                                                   confirmation=confirmation)
        if raw_id is None:  # the very same message was stored before (queued twice): keep the first
            existing = queries.find_raw_message(conn, key)
            assert existing is not None
            raw_id = existing["id"]
            queries.set_raw_confirmation(conn, raw_id, confirmation)
        return raw_id

    def _effects(self, conn: Connection, row: Row, verdict: str, outcome: SendOutcome, sent: _Sent,
                 error: str | None, raw_id: int | None, now: datetime) -> None:
        """The history row, then what the side's service makes of the outcome."""
        outcome_history(conn, row, verdict, action=sent.action, error=error, raw_id=raw_id, now=now)
        hook = self.on_borrowing_outcome if row["request_id"] is not None else self.on_lending_outcome
        hook(conn, row, verdict, outcome, now)
