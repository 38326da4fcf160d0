"""Staff workflow gaps on a real gateway (loopback, SQLite and PostgreSQL): rota moves that
change nothing, staff cancelling the last partner, a Cancel the partner never answers, and
unread incoming general messages."""

from __future__ import annotations

import pytest

from test_api_support import BR, P1, P2, P3, Clock, error_code, start_api


@pytest.fixture
async def api(db_url, aiohttp_client):
    return await start_api(aiohttp_client, db_url)


def _moves(data) -> int:
    return [h["event"] for h in data["history"]].count("move_partner")


# --- rota moves that change nothing --------------------------------------------------------------


@pytest.mark.parametrize("body, message", [
    ({"op": "move-up", "agency": P1}, "already first"),
    ({"op": "move-down", "agency": P3}, "already last"),
    ({"op": "move-selected", "agencies": [P2], "position": 2}, "already start at position 2"),
    ({"op": "move-selected", "agencies": [P3, P3], "position": 1}, "selected twice"),
])
async def test_a_rota_move_that_changes_nothing_is_refused_and_not_logged(api, body, message):
    request = await api.create(partners=[P1, P2, P3])
    status, data = await api.post(f"{BR}/{request['id']}/rota", body)
    assert status == 422, data
    assert error_code(data) == "invalid_field" and message in data["error"]["message"]
    assert data["error"]["field"] == ("agencies" if body["op"] == "move-selected" else "agency")
    after = await api.request(request["id"])
    assert after["version"] == request["version"] and _moves(after) == 0
    assert [e["agency"] for e in after["rota"]] == [P1, P2, P3]


# --- staff cancelling the last partner -------------------------------------------------------------


@pytest.mark.parametrize("end_of_rota", ["expire", "review"])
async def test_cancelling_the_only_partner_leaves_the_request_ready_for_another(db_url, aiohttp_client, end_of_rota):
    api = await start_api(aiohttp_client, db_url, policy={"end_of_rota": end_of_rota})
    request = await api.create(partners=[P1])
    await api.confirmed(request["id"])
    status, data = await api.action(request["id"], "cancel-partner", {"note": "found it locally"})
    assert status == 200, data
    assert data["status"] == "REJECTED_BY_PARTNER" and data["needs_attention"]
    assert data["attention"] == ["rota_exhausted"] and data["active_partner"] is None
    assert {"locate", "cancel"} <= set(data["allowed_actions"])
    status, data = await api.post(f"{BR}/{request['id']}/rota", {"op": "add", "agency": P2})
    assert status == 200 and data["status"] == "REJECTED_BY_PARTNER"
    status, data = await api.action(request["id"], "locate")
    assert status == 200 and data["status"] == "READY_TO_SEND" and data["active_partner"] == P2
    assert not data["needs_attention"]
