"""One spelling of staff actions (SQLite and PostgreSQL): `allowed_actions` entries say how to
perform each action (name, method, href), every one of them is a real route, and a 409 speaks
the same kebab-case names in its message, `event` and `allowed`, on both sides of the gateway."""

from __future__ import annotations

import re

import pytest

from gateway.api import borrowing, lending
from gateway.api.operations import BORROWING, LENDING
from gateway.api.routes import ROUTES
from gateway.core.lending.table import STAFF_KEYS as LENDING_KEYS
from gateway.core.borrowing.table import STAFF_KEYS as BORROWING_KEYS

from test_api_lending import LR, incoming
from support.api_helpers import BR, P1, P2, error_code, start_api

SNAKE = re.compile(r"\b[a-z]+_[a-z_]+\b")  # an event key such as cancel_partner (statuses are upper case)


@pytest.fixture
async def api(db_url, aiohttp_client):
    return await start_api(aiohttp_client, db_url)


def _route(method: str, href: str) -> bool:
    """Is there a route for `method href` (with the ids of the href filled in)?"""
    for m, path, _ in ROUTES:
        pattern = re.sub(r"\{(\w+)(?::([^}]+))?\}", lambda g: f"(?P<{g.group(1)}>{g.group(2) or '[^/]+'})", path)
        found = re.fullmatch(pattern, href)
        if m == method and found:
            name = found.groupdict().get("name")
            actions = lending.ACTIONS if href.startswith(LR) else borrowing.ACTIONS
            return name is None or name in actions
    return False


def test_every_core_staff_action_has_one_way_to_perform_it():
    assert set(BORROWING) == set(BORROWING_KEYS) - {"create"}
    assert set(LENDING) == set(LENDING_KEYS)
    for table, base in ((BORROWING, BR), (LENDING, LR)):
        for key, op in table.items():
            entry = op.json(base, 7)
            assert re.fullmatch(r"[a-z]+(-[a-z]+)*", entry["name"]), key
            assert _route(entry["method"], entry["href"]), (key, entry)
            for rota_op in entry.get("ops", []):
                assert rota_op in borrowing.ROTA_OPS


async def test_allowed_actions_say_how_to_perform_each(api):
    data = await api.create(partners=[P1, P2])
    rid = data["id"]
    entries = {a["name"]: a for a in data["allowed_actions"]}
    assert entries["cancel"] == {"name": "cancel", "method": "POST", "href": f"{BR}/{rid}/actions/cancel"}
    assert entries["edit"] == {"name": "edit", "method": "PATCH", "href": f"{BR}/{rid}"}
    assert entries["add-note"] == {"name": "add-note", "method": "POST", "href": f"{BR}/{rid}/notes"}
    assert entries["move-partner"]["href"] == f"{BR}/{rid}/rota"
    assert entries["move-partner"]["ops"] == ["move-up", "move-down", "move-selected"]
    for entry in data["allowed_actions"]:
        assert _route(entry["method"], entry["href"]), entry
    # following an entry performs the action
    status, after = await api.call(entries["cancel"]["method"], entries["cancel"]["href"], json={})
    assert status == 200 and after["status"] == "WAITING_FOR_CANCEL_RESPONSE"


async def test_a_409_uses_the_api_names(api):
    rid = (await api.create(partners=[P1, P2]))["id"]
    status, data = await api.action(rid, "loan-to-patron")
    assert status == 409 and error_code(data) == "illegal_transition"
    error = data["error"]
    assert error["event"] == "loan-to-patron"
    assert error["message"].startswith("loan-to-patron is not allowed in status CREATED")
    assert "cancel-partner" in error["message"] and "add-note" in error["message"]
    assert not SNAKE.search(error["message"]), error["message"]
    allowed = [a["name"] for a in (await api.request(rid))["allowed_actions"]]
    assert error["allowed"] == allowed


async def test_a_rota_refusal_uses_the_api_names(api):
    rid = (await api.create(partners=[P1]))["id"]
    status, data = await api.post(f"{BR}/{rid}/rota", {"op": "move-up", "agency": P1})
    assert status == 409, data
    assert data["error"]["event"] == "move-partner" and not SNAKE.search(data["error"]["message"])


async def test_lending_allowed_actions_and_409_use_the_same_names(api):
    lid = await incoming(api, "REQ-NAMES")
    status, data = await api.get(f"{LR}/{lid}")
    assert status == 200
    entries = {a["name"]: a for a in data["allowed_actions"]}
    assert entries["will-supply"] == {"name": "will-supply", "method": "POST",
                                      "href": f"{LR}/{lid}/actions/will-supply"}
    assert entries["add-note"]["href"] == f"{LR}/{lid}/notes"
    for entry in data["allowed_actions"]:
        assert _route(entry["method"], entry["href"]), entry
    status, data = await api.post(f"{LR}/{lid}/actions/check-in", {})
    assert status == 409, data
    error = data["error"]
    assert error["event"] == "check-in" and error["message"].startswith("check-in is not allowed")
    assert "will-supply" in error["allowed"] and not SNAKE.search(error["message"]), error["message"]
