"""How to perform each staff action through the API: one kebab-case name per core event key,
with the HTTP method and path that carry it out.

`allowed_actions` of a request and the 409 `illegal_transition` error (its message, `event` and
`allowed`) both speak these names, so a client never meets the core's snake_case keys. Most
actions are `POST {request}/actions/{name}`; the others say where they go (`PATCH {request}` for
edit, `POST {request}/notes`, `POST {request}/rota` with one of `ops` as the body's `op`, ...).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..core import IllegalTransition

BORROWING_BASE = "/api/v1/borrowing-requests"
LENDING_BASE = "/api/v1/lending-requests"


@dataclass(frozen=True)
class Operation:
    name: str
    method: str = "POST"
    path: str | None = None  # after the request's URL; None: /actions/{name}
    ops: tuple[str, ...] = ()  # rota operations: the body's `op`

    def json(self, base: str, request_id: int) -> dict[str, Any]:
        path = f"/actions/{self.name}" if self.path is None else self.path
        out: dict[str, Any] = {"name": self.name, "method": self.method, "href": f"{base}/{request_id}{path}"}
        if self.ops:
            out["ops"] = list(self.ops)
        return out


def _actions(*pairs: tuple[str, str]) -> dict[str, Operation]:
    return {key: Operation(name) for key, name in pairs}


_COMMON = {
    "add_note": Operation("add-note", path="/notes"),
    "send_message": Operation("send-message", path="/messages"),
}

# core event key -> operation
BORROWING: dict[str, Operation] = {
    "edit": Operation("edit", "PATCH", path=""),
    **_COMMON,
    "move_partner": Operation("move-partner", path="/rota", ops=("move-up", "move-down", "move-selected")),
    "add_partner": Operation("add-partner", path="/rota", ops=("add",)),
    "remove_partner": Operation("remove-partner", path="/rota", ops=("remove",)),
    **_actions(
        ("acknowledge", "acknowledge"), ("status_request", "status-request"), ("cancel_partner", "cancel-partner"),
        ("locate", "locate"), ("cancel", "cancel"), ("accept_conditions", "accept-condition"),
        ("reject_conditions", "reject-condition"), ("retry", "retry"), ("skip", "skip"), ("receive", "receive"),
        ("loan_to_patron", "loan-to-patron"), ("return_by_patron", "return-by-patron"),
        ("return_to_partner", "return"), ("renew", "renew"), ("close", "close"),
        ("mark_messages_read", "mark-messages-read"), ("treat_as_cancelled", "treat-as-cancelled"),
        ("resume_request", "resume-request"),
    ),
}

LENDING: dict[str, Operation] = {
    **_COMMON,
    **_actions(
        ("acknowledge", "acknowledge"), ("expect_to_supply", "expect-to-supply"), ("will_supply", "will-supply"),
        ("conditional", "conditional"), ("retry_possible", "retry-possible"), ("unfilled", "unfilled"),
        ("ship", "ship"), ("copy_completed", "copy-completed"), ("answer_cancel:Y", "answer-cancel"),
        ("answer_cancel:N", "answer-cancel"), ("answer_renew:Y", "answer-renew"), ("answer_renew:N", "answer-renew"),
        ("mark_overdue", "mark-overdue"), ("recall", "recall"), ("check_in", "check-in"),
        ("complete_without_return", "complete-without-return"), ("mark_messages_read", "mark-messages-read"),
    ),
}


def _table(lending: bool) -> dict[str, Operation]:
    return LENDING if lending else BORROWING


def api_name(key: str, *, lending: bool = False) -> str:
    """The API's name of a core event key (a key without an operation is shown as it is)."""
    op = _table(lending).get(key)
    return op.name if op else key.replace("_", "-")


def api_names(keys: Iterable[str], *, lending: bool = False) -> list[str]:
    return list(dict.fromkeys(api_name(k, lending=lending) for k in keys))


def allowed_json(keys: Iterable[str], request_id: int, *, lending: bool = False) -> list[dict[str, Any]]:
    """`allowed_actions`: each allowed action once, with how to perform it."""
    table, base = _table(lending), LENDING_BASE if lending else BORROWING_BASE
    ops = dict.fromkeys(table[k] for k in keys if k in table)
    return [op.json(base, request_id) for op in ops]


def refusal_message(exc: IllegalTransition, *, lending: bool = False) -> str:
    """The 409 text of a refused staff action, in the API's names."""
    return exc.describe(lambda key: api_name(key, lending=lending))
