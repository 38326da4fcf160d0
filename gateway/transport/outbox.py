"""The outbox worker: delivers queued messages to partners, never losing one (DESIGN §2, §6).

A service step that decides to send a message writes an `outbox` row in the same transaction as
its state change. This worker takes it from there:

1. Claim: one writer step fetches the due rows (`fetch_due_outbox`, which holds back a row while
   an earlier one of the same request or lending request and partner is pending or sending) and
   marks them `sending` (`claim_outbox`). Only rows this step moved from `pending` are sent, so
   two workers on one database never send the same row, and per-partner order holds.
2. Send: the rows go out concurrently (at most `concurrency` at once) through `PartnerClient`.
3. Record: one writer step per row stores the outcome together with what it causes:
   - confirmation OK: the row is `delivered`, the message and the partner's confirmation are kept
     verbatim in `raw_messages` (direction "out", linked from the row and the request's history),
     and for a borrowing `request` the core's `RequestConfirmed` is applied in the same step;
   - confirmation ERROR: the row is `failed` at once (the partner understood and refused: sending
     again would not help), the exchange is kept likewise, and the core gets `DeliveryFailed`
     (the rota moves on for a request; other messages flag the request for staff);
   - transport error: the row is `pending` again after an exponential backoff with full jitter;
     after `max_attempts` it is `failed` and the core gets `DeliveryFailed`.
   Rows of lending requests are only marked; `on_lending_outcome(conn, row, verdict, outcome, now)`
   runs inside the same step for the lending service to hook into (no-op by default).

Crash safety: if the process dies between claim and record, the row stays `sending`;
`start()` puts such rows back to `pending` (`reset_sending_outbox`) and they go again (the partner
may see a message twice; ISO 18626 idempotency on its side absorbs that). That reset assumes one
worker per database. With several worker processes on one database (PostgreSQL), pass
`stale_after` (seconds, well above the longest partner timeout): then only rows claimed longer ago
than that are reset, at start and on every poll, so a live worker's rows are left alone and a dead
worker's rows are picked up without a restart. The claim time is kept in `next_attempt_at` while a
row is `sending`.

The worker sleeps until `gateway.outbox_wakeup` is set (services set it after committing a step that
queued rows), a delivery finishes, a retry falls due, or `poll_interval` passes.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select, update
from sqlalchemy.exc import DBAPIError

from ..config import Partner
from ..core import DeliveryFailed, RequestConfirmed
from ..messages import MessageError, decode
from ..messages.codec import format_datetime
from ..messages.identity import content_sha256
from ..service.borrowing import event_step
from ..service.writer import Conflict
from ..store import queries
from ..store.models import borrowing_requests_t, lending_requests_t, outbox_t
from .client import Confirmed, PartnerClient, Refused, SendOutcome, TransportError

if TYPE_CHECKING:
    from ..app import Gateway

__all__ = ["LendingHook", "OutboxCounts", "OutboxWorker", "backoff_delay"]

log = logging.getLogger(__name__)

Row = dict[str, Any]
# (conn, outbox row, verdict "delivered" | "refused" | "failed", outcome, now) -> None; runs inside
# the recording step, so whatever it writes commits together with the row's new state.
LendingHook = Callable[[Connection, Row, str, SendOutcome, datetime], None]

MIN_DELAY = 0.05  # seconds: a retry is never due sooner
SYSTEM = "system"
_RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})  # serialization failure, deadlock (PostgreSQL)

DELIVERED, REFUSED, RETRIED, FAILED, STALE = "delivered", "refused", "retried", "failed", "stale"


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


def _no_lending_hook(conn: Connection, row: Row, verdict: str, outcome: SendOutcome, now: datetime) -> None:
    return None


def _retryable(exc: DBAPIError) -> bool:
    orig = exc.orig
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return code in _RETRYABLE_SQLSTATES


class OutboxWorker:
    """Delivers outbox rows; see the module docstring. `start()`/`close()` for the app's background
    list; `run_once()` processes everything due now (for tests and tools)."""

    def __init__(
        self,
        gateway: Gateway,
        *,
        max_attempts: int = 8,
        base_delay: float = 1.0,
        max_delay: float = 600.0,
        concurrency: int = 16,
        poll_interval: float = 1.0,
        rng: random.Random | None = None,
        client: PartnerClient | None = None,
        stale_after: float | None = None,
        shutdown_grace: float = 5.0,
        on_lending_outcome: LendingHook | None = None,
    ):
        if max_attempts < 1 or concurrency < 1:
            raise ValueError("max_attempts and concurrency must be at least 1")
        self.gateway = gateway
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.concurrency = concurrency
        self.poll_interval = poll_interval
        self.rng = rng if rng is not None else random.Random()
        self.stale_after = stale_after
        self.shutdown_grace = shutdown_grace
        self.on_lending_outcome: LendingHook = on_lending_outcome or _no_lending_hook
        self._own_client = client is None
        self.client = client or PartnerClient(max_connections=max(concurrency, 1) * 2)
        self.totals = OutboxCounts()  # everything this worker did, for metrics and tests
        self._task: asyncio.Task | None = None
        self._inflight: set[asyncio.Task] = set()
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
            # `sending` in the database and goes again after the next start.
            _, pending = await asyncio.wait(set(self._inflight), timeout=self.shutdown_grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._own_client:
            await self.client.close()

    async def recover(self) -> int:
        """Put rows left `sending` by a crash back to `pending`; return how many.

        Without `stale_after`: every `sending` row (one worker per database). With it: rows
        claimed more than `stale_after` seconds ago."""
        if self.stale_after is None:
            count = await self.gateway.writer.run(queries.reset_sending_outbox)
        else:
            count = await self._reset_stale()
        if count:
            log.warning("outbox: %d message(s) left sending by an earlier run will be sent again", count)
        return count

    async def _reset_stale(self) -> int:
        assert self.stale_after is not None
        cutoff = self.gateway.clock() - timedelta(seconds=self.stale_after)

        def step(conn: Connection) -> int:
            result = conn.execute(
                update(outbox_t)
                .where(outbox_t.c.state == "sending", outbox_t.c.next_attempt_at <= cutoff)
                .values(state="pending")
            )
            return result.rowcount

        return await self.gateway.writer.run(step)

    # --- one pass (tests, tools) ----------------------------------------------------------------

    async def run_once(self) -> OutboxCounts:
        """Claim and deliver everything due now, including rows that become due during the run
        (a later message of a request after its predecessor was delivered, the request to the next
        partner after a refusal); return the counts. Retries scheduled for later are left."""
        counts = OutboxCounts()
        while True:
            rows = await self._claim(self.concurrency)
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
        wakeup = self.gateway.outbox_wakeup
        last_sweep = loop.time()
        while True:
            wakeup.clear()  # before claiming: a signal that arrives during the claim is kept
            if self.stale_after is not None and loop.time() - last_sweep >= self.poll_interval:
                last_sweep = loop.time()
                try:
                    await self._reset_stale()
                except Exception:  # noqa: BLE001 - the loop must survive a database hiccup
                    log.exception("outbox: resetting stale rows failed")
            free = self.concurrency - len(self._inflight)
            claimed: list[Row] = []
            if free > 0:
                try:
                    claimed = await self._claim(free)
                except Exception:  # noqa: BLE001
                    log.exception("outbox: claiming due rows failed; trying again in %s s", self.poll_interval)
                for row in claimed:
                    self._spawn(row)
                self.totals.claimed += len(claimed)
                if claimed and len(claimed) == free:
                    continue  # maybe more due: claim again when a slot frees (the loop waits below)
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
            await asyncio.wait_for(wakeup.wait(), timeout=max(0.0, timeout))
        except asyncio.TimeoutError:
            pass

    def _spawn(self, row: Row) -> None:
        task = asyncio.create_task(self._deliver_logged(row), name=f"gateway-outbox-{row['id']}")
        self._inflight.add(task)

        def done(t: asyncio.Task) -> None:
            self._inflight.discard(t)
            self.gateway.outbox_wakeup.set()  # a slot is free; successors may be due

        task.add_done_callback(done)

    async def _deliver_logged(self, row: Row) -> None:
        try:
            self.totals.count(await self._deliver(row))
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the row stays `sending` until the next start
            log.exception("outbox: delivering row %s failed unexpectedly", row["id"])

    # --- claim ---------------------------------------------------------------------------------

    async def _claim(self, limit: int) -> list[Row]:
        now = self.gateway.clock()

        def step(conn: Connection) -> list[Row]:
            try:
                due = queries.fetch_due_outbox(conn, now=now, limit=limit)
                if not due:
                    return []
                ids = set(queries.claim_outbox(conn, [row["id"] for row in due]))
                if ids:  # the claim time, for `stale_after`
                    conn.execute(update(outbox_t).where(outbox_t.c.id.in_(ids)).values(next_attempt_at=now))
            except DBAPIError as exc:
                if _retryable(exc):  # two workers' claims deadlocked: the writer runs this again
                    raise Conflict(str(exc)) from exc
                raise
            return [{**row, "attempts": row["attempts"] + 1} for row in due if row["id"] in ids]

        return await self.gateway.writer.run(step)

    # --- send and record --------------------------------------------------------------------------

    def _partner(self, row: Row) -> Partner:
        partner = self.gateway.ctx.partners.get(row["partner_agency"])
        if partner is None:  # no longer configured: send with defaults to where it was queued for
            partner = Partner(agency=row["partner_agency"], name=row["partner_agency"], url=row["partner_url"])
        return partner

    async def _deliver(self, row: Row) -> str:
        outcome = await self.client.send(self._partner(row), row["kind"], row["body"], url=row["partner_url"])
        now = self.gateway.clock()
        delay = None
        if isinstance(outcome, TransportError) and row["attempts"] < self.max_attempts:
            delay = backoff_delay(row["attempts"], base_delay=self.base_delay, max_delay=self.max_delay,
                                  rng=self.rng)
        sent = _Sent() if delay is not None else _Sent.of(row["body"])
        try:
            verdict = await self.gateway.writer.run(self._record_step(row, outcome, sent, now, delay))
        except _Stale:
            log.warning("outbox: row %s changed while it was being sent; outcome not recorded", row["id"])
            return STALE
        except Exception:  # noqa: BLE001 - record the delivery at least, without its effects
            log.exception("outbox: recording the outcome of row %s failed; marking it without effects",
                          row["id"])
            try:
                verdict = await self.gateway.writer.run(
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
            self.gateway.outbox_wakeup.set()  # successors are unblocked; effects may have queued rows
        return verdict

    def _record_step(self, row: Row, outcome: SendOutcome, sent: _Sent, now: datetime,
                     delay: float | None, *, effects: bool = True) -> Callable[[Connection], str]:
        outbox_id = row["id"]

        def step(conn: Connection) -> str:
            raw_id = None
            if effects and isinstance(outcome, (Confirmed, Refused)):
                raw_id = self._store_raw(conn, row, sent, outcome.raw, now)
            if isinstance(outcome, Confirmed):
                verdict, error = DELIVERED, None
                ok = queries.mark_outbox_delivered(conn, outbox_id, now=now, raw_message_id=raw_id)
            elif isinstance(outcome, Refused):
                verdict, error = REFUSED, outcome.reason
                ok = queries.mark_outbox_retry(conn, outbox_id, error=error, next_attempt_at=None)
                if ok and raw_id is not None:
                    conn.execute(update(outbox_t).where(outbox_t.c.id == outbox_id).values(raw_message_id=raw_id))
            elif delay is not None:
                verdict, error = RETRIED, outcome.reason
                ok = queries.mark_outbox_retry(conn, outbox_id, error=error,
                                               next_attempt_at=now + timedelta(seconds=delay))
            else:
                verdict = FAILED
                error = f"{outcome.reason} (gave up after {row['attempts']} attempts)"
                ok = queries.mark_outbox_retry(conn, outbox_id, error=error, next_attempt_at=None)
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
        """History, then what the core (or the lending hook) makes of the outcome."""
        partner, kind = row["partner_agency"], row["kind"]
        what = kind if sent.action is None else f"{kind} {sent.action.value}"
        text = {
            DELIVERED: f"{what} delivered to {partner}",
            REFUSED: f"{what} refused by {partner}: {error}",
            FAILED: f"{what} could not be delivered to {partner}: {error}",
        }[verdict]
        event = {DELIVERED: "message_sent", REFUSED: "message_sent_refused",
                 FAILED: "message_not_delivered"}[verdict]
        detail = {"text": text, "outbox_id": row["id"], "kind": kind, "partner": partner,
                  "attempts": row["attempts"]}
        if sent.action is not None:
            detail["action"] = sent.action.value
        if row["request_id"] is not None:
            owner, table = {"request_id": row["request_id"]}, borrowing_requests_t
        else:
            owner, table = {"lending_id": row["lending_id"]}, lending_requests_t
        status = conn.execute(select(table.c.status).where(table.c.id == next(iter(owner.values())))).scalar()
        queries.insert_history(conn, {
            **owner, "at": now, "actor": SYSTEM, "event": event, "from_status": status,
            "to_status": status, "detail": detail, "raw_message_id": raw_id,
        })
        if row["request_id"] is None:
            self.on_lending_outcome(conn, row, verdict, outcome, now)
            return
        request_id = row["request_id"]
        if verdict == DELIVERED:
            if kind == "request":
                event_step(self.gateway.ctx, request_id, RequestConfirmed(partner=partner, now=now), now)(conn)
        elif kind in ("request", "requestingAgencyMessage"):
            failed = DeliveryFailed(partner=partner, kind=kind, at=now, action=sent.action)
            event_step(self.gateway.ctx, request_id, failed, now)(conn)
