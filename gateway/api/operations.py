"""How to perform each staff action through the API: the kebab-case name each core event knows
(`api`), with the HTTP method and path that carry it out.

`allowed_actions` of a request and the 409 `illegal_transition` error (its message, `event` and
`allowed`) both speak these names, so a client never meets the core's snake_case keys. Most
actions are `POST {request}/actions/{name}`; the others say where they go (`PATCH {request}` for
edit, `POST {request}/notes`, `POST {request}/rota` with one of `ops` as the body's `op`, ...).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..core import BORROWING_API_NAMES as BORROWING_NAMES, IllegalTransition
from ..core.lending import LENDING_API_NAMES as LENDING_NAMES

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


# How the actions that are not `POST {request}/actions/{name}` are performed, by API name.
_ELSEWHERE: dict[str, Operation] = {
    "edit": Operation("edit", "PATCH", path=""),
    "add-note": Operation("add-note", path="/notes"),
    "send-message": Operation("send-message", path="/messages"),
    "move-partner": Operation("move-partner", path="/rota", ops=("move-up", "move-down", "move-selected")),
    "add-partner": Operation("add-partner", path="/rota", ops=("add",)),
    "remove-partner": Operation("remove-partner", path="/rota", ops=("remove",)),
}


def _operations(names: dict[str, str]) -> dict[str, Operation]:
    """core event key -> operation, from the events' API names."""
    return {key: _ELSEWHERE.get(name) or Operation(name) for key, name in names.items()}


BORROWING: dict[str, Operation] = _operations(BORROWING_NAMES)
LENDING: dict[str, Operation] = _operations(LENDING_NAMES)


def _table(lending: bool) -> dict[str, Operation]:
    return LENDING if lending else BORROWING


def api_name(key: str, *, lending: bool = False) -> str:
    """The API's name of a core event key: the event's own (a borrowing action sent to a lending
    request keeps its borrowing name). Every staff key of both tables has one (a test says so)."""
    op = _table(lending).get(key) or _table(not lending).get(key)
    return op.name if op else key.replace("_", "-")


def api_names(keys: Iterable[str], *, lending: bool = False) -> list[str]:
    return list(dict.fromkeys(api_name(k, lending=lending) for k in keys))


def allowed_json(keys: Iterable[str], request_id: int, *, lending: bool = False) -> list[dict[str, Any]]:
    """`allowed_actions`: each allowed action once, with how to perform it."""
    table, base = _table(lending), LENDING_BASE if lending else BORROWING_BASE
    ops = dict.fromkeys(table[k] for k in keys)  # every staff key has an operation
    return [op.json(base, request_id) for op in ops]


def refusal_message(exc: IllegalTransition, *, lending: bool = False) -> str:
    """The 409 text of a refused staff action, in the API's names."""
    return exc.describe(lambda key: api_name(key, lending=lending))
