"""The state-machine kernel both sides run on.

A machine is a `Table` of rows (from statuses, event key, target) plus its rules, and a `Step`
that carries one event through it. A target is a status, or an Outcome: a named rule whose
result depends on more than the status (the rota, the policy, a pending question). Each side's
`table.py` holds its rows, its guards and the rule of every Outcome, so one file per side says
what follows what; the handlers only add messages, rota changes and history.

An event key missing for a status is illegal there (`check` raises IllegalTransition naming the
event, the status and what is allowed); how a side records a partner's late or out-of-order
message instead is stated in its table. The README's status tables are rendered from here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Callable, ClassVar, Generic, Iterable, TypeVar

from .common import GeneralMessage, HistoryEntry, Note
from .errors import IllegalTransition, InvalidInput

Status = TypeVar("Status", bound=StrEnum)
Row = tuple[Iterable[Any], str, Any]
Guard = tuple[Callable[[Any], bool], str]  # (is the action open?, why it is refused otherwise)
Rule = Callable[[Any, str], None]  # (step, history detail): carries out one Outcome


def row_keys(rows: Iterable[Row]) -> tuple[str, ...]:
    """The event keys of some rows, in first-seen order."""
    return tuple(dict.fromkeys(key for _, key, _ in rows))


class Table(Generic[Status]):
    """status -> event key -> target, built from three groups of rows (staff, the partner's
    messages, system events); a (status, key) pair given twice is a mistake in the rows."""

    def __init__(self, statuses: type[Status], *, staff: Iterable[Row], partner: Iterable[Row],
                 system: Iterable[Row], initial: tuple[str, Any], rules: dict[Any, Rule],
                 outcome_text: dict[Any, str], guards: dict[str, Guard],
                 refusal: Callable[[Any, str], str | None] | None = None):
        self.statuses, self.initial, self.rules = statuses, initial, rules
        self.outcome_text, self.guards, self._refusal = outcome_text, guards, refusal
        staff, partner, system = tuple(staff), tuple(partner), tuple(system)
        self.rows: dict[Status, dict[str, Any]] = {s: {} for s in statuses}
        for row_statuses, key, found in (*staff, *partner, *system):
            for status in row_statuses:
                if key in self.rows[status]:
                    raise AssertionError(f"duplicate transition ({status}, {key})")
                self.rows[status][key] = found
        missing = set(outcome_text) - set(rules)
        if missing:
            raise AssertionError(f"outcomes without a rule: {sorted(missing)}")
        self.staff_keys, self.partner_keys, self.system_keys = row_keys(staff), row_keys(partner), row_keys(system)

    def target(self, status: Status, key: str) -> Any | None:
        return self.rows[status].get(key)

    def keys_in(self, status: Status, keys: Iterable[str]) -> tuple[str, ...]:
        row = self.rows[status]
        return tuple(k for k in keys if k in row)

    def refusal(self, state: Any, key: str) -> str | None:
        """Why a key the table has for the state's status is refused now (a guard), or None."""
        why = self._refusal(state, key) if self._refusal else None
        guard = self.guards.get(key)
        if why is None and guard and not guard[0](state):
            why = guard[1]
        return why

    def allowed(self, state: Any) -> tuple[str, ...]:
        """Staff actions legal now, in table order (for the staff UI and the API)."""
        return tuple(k for k in self.keys_in(state.status, self.staff_keys) if self.refusal(state, k) is None)

    def check(self, state: Any, key: str) -> Any:
        """The target of a staff action, or IllegalTransition."""
        found = self.target(state.status, key)
        why = None if found is None else self.refusal(state, key)
        if found is None or why is not None:
            raise IllegalTransition(key, state.status.value, self.allowed(state), why)
        return found

    # --- documentation ---

    def markdown(self, columns: tuple[str, str, str], *, extra: tuple[str, Callable[[Status], str]] | None = None,
                 initial_column: int, initial_note: str = "") -> list[str]:
        """The status table (one line per status, a column per group of keys), the outcomes
        and the guards, as Markdown lines."""
        heads = ["Status", "Label", *([extra[0]] if extra else []), *columns]
        cells = [""] * 3
        cells[initial_column] = f"`{self.initial[0]}`{initial_note} → {self._show(self.initial[1])}"
        new = ["(new)", "", *([""] if extra else []), *cells]
        lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads),
                 "|" + "|".join(f" {cell} " if cell else " " for cell in new) + "|"]
        for status in self.statuses:
            row = self.rows[status]
            groups = (self.staff_keys, self.partner_keys, self.system_keys)
            cells = ["<br>".join(self._cell(k, row[k]) for k in keys if k in row) for keys in groups]
            lines.append(f"| {status.value} | {status.label} | " + (f"{extra[1](status)} | " if extra else "")
                         + " | ".join(cells) + " |")
        lines += ["", "| Outcome | Meaning |", "|---|---|"]
        lines += [f"| {o.value} | {text} |" for o, text in self.outcome_text.items()]
        lines += ["", "| Action | Also refused when |", "|---|---|"]
        lines += [f"| `{key}` | {why} |" for key, (_, why) in self.guards.items()]
        return lines

    def _cell(self, key: str, found: Any) -> str:
        return f"`{key}`" if found.value == "same" else f"`{key}` → {self._show(found)}"

    def _show(self, found: Any) -> str:
        """A status as it is; an Outcome in italics."""
        return found.value if isinstance(found, self.statuses) else f"*{found.value}*"


def flag_guards(not_acknowledged: frozenset, unread: Any) -> dict[str, Guard]:
    """The guards of `acknowledge` (a flag staff can clear is set; the others follow the status
    or an action of their own) and `mark_messages_read` (a general message is unread)."""
    return {
        "acknowledge": (lambda state: bool(state.flags - not_acknowledged), "no flag to acknowledge"),
        "mark_messages_read": (lambda state: unread in state.flags, "no unread general message"),
    }


@dataclass(frozen=True)
class Decision:
    """What one event decided: the new state, and what to send and record."""

    state: Any
    previous: Any | None  # None: the event started the request
    outgoing: tuple[Any, ...] = ()
    history: tuple[HistoryEntry, ...] = ()
    messages: tuple[GeneralMessage, ...] = ()
    notes: tuple[Note, ...] = ()

    @property
    def status(self) -> Any:
        return self.state.status

    @property
    def flags_set(self) -> frozenset:
        before = self.previous.flags if self.previous else frozenset()
        return self.state.flags - before

    @property
    def flags_cleared(self) -> frozenset:
        before = self.previous.flags if self.previous else frozenset()
        return before - self.state.flags


class Step:
    """The new state, outgoing messages and history of one `decide` call; local to that call,
    so the core stays pure. Each side names its table, its flags and how they settle."""

    table: ClassVar[Table]
    not_acknowledged: ClassVar[frozenset]  # flags `acknowledge` may not clear
    unread: ClassVar[Any]  # the flag of an unread general message

    def __init__(self, state: Any, *, actor: str, at: datetime, key: str, is_new: bool = False):
        self.previous = None if is_new else state
        self.state = state
        self.actor, self.at, self.key = actor, at, key
        self.outgoing: list[Any] = []
        self.history: list[HistoryEntry] = []
        self.messages: list[GeneralMessage] = []
        self.notes: list[Note] = []

    def set(self, **changes: Any) -> None:
        self.state = replace(self.state, **changes)

    def log(self, detail: str = "", *, event: str | None = None) -> None:
        """History entry without a status change."""
        status = self.state.status
        self.history.append(HistoryEntry(self.at, self.actor, event or self.key, status, status, detail))

    def go(self, status: Any, detail: str = "") -> None:
        self.history.append(HistoryEntry(self.at, self.actor, self.key, self.state.status, status, detail))
        self.set(status=status)

    def flag(self, flag: Any, on: bool = True) -> None:
        self.set(flags=self.state.flags | {flag} if on else self.state.flags - {flag})

    def transition(self, found: Any, detail: str = "") -> None:
        """Carry out a table target: go to a status, or apply the Outcome's rule."""
        if isinstance(found, self.table.statuses):
            self.go(found, detail)
        else:
            self.table.rules[found](self, detail)

    def settle_flags(self, state: Any) -> frozenset:
        """The state's flags once the step is done (status-bound flags follow the state)."""
        return state.flags

    def decision(self, state: Any) -> Decision:
        raise NotImplementedError

    def finish(self) -> Any:
        state = self.state
        flags = self.settle_flags(state)
        if flags != state.flags:
            state = replace(state, flags=flags)
        return self.decision(state)


# --- staff actions that are the same on both sides -------------------------------------------


def add_note(step: Step, ev: Any, found: Any) -> None:
    step.notes.append(Note(step.at, ev.by, ev.text))
    step.transition(found, f"note: {ev.text}")


def acknowledge(step: Step, ev: Any, found: Any) -> None:
    if ev.flag in step.not_acknowledged or ev.flag not in step.state.flags:
        raise InvalidInput("flag", f"{ev.flag.value} is not a flag staff can clear now")
    step.flag(ev.flag, False)
    step.transition(found, f"acknowledged {ev.flag.value}")


def mark_messages_read(step: Step, ev: Any, found: Any) -> None:
    step.flag(step.unread, False)
    step.transition(found, "general messages marked read")
