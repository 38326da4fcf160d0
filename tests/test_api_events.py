"""`GET /api/v1/events`: history rows in id order with a `next` cursor, and as Server-Sent Events."""

from __future__ import annotations

import asyncio
import json

import pytest

from support.api_helpers import BR, auth, error_code, start_api


@pytest.fixture
async def api(db_url, aiohttp_client):
    return await start_api(aiohttp_client, db_url)


async def test_cursor_pages_through_all_history_in_id_order(api):
    first = await api.create()
    second = await api.create()
    await api.post(f"{BR}/{first['id']}/notes", {"text": "hello"})
    status, page = await api.get("/api/v1/events?limit=2", "read-only")
    assert status == 200 and len(page["events"]) == 2
    seen = list(page["events"])
    cursor = page["next"]
    while True:
        status, page = await api.get(f"/api/v1/events?since={cursor}&limit=2")
        if not page["events"]:
            assert page["next"] == cursor  # nothing new: the cursor stays put
            break
        seen += page["events"]
        cursor = page["next"]
    assert [e["id"] for e in seen] == sorted(e["id"] for e in seen)
    assert len(seen) == len({e["id"] for e in seen}) == 5
    assert [(e["request_id"], e["event"]) for e in seen] == [
        (first["id"], "create"), (first["id"], "first_partner"),
        (second["id"], "create"), (second["id"], "first_partner"), (first["id"], "add_note")]
    note = seen[-1]
    assert note["actor"] == "staff:ann" and note["from_status"] == note["to_status"] == "CREATED"
    assert note["lending_id"] is None and "at" in note
    status, page = await api.get(f"/api/v1/events?since={seen[1]['id']}")
    assert [e["id"] for e in page["events"]] == [e["id"] for e in seen[2:]]


@pytest.mark.parametrize("query, field", [("since=-1", "since"), ("since=x", "since"), ("limit=0", "limit"),
                                          ("limit=1001", "limit"), ("until=3", "until")])
async def test_bad_cursor_parameters(api, query, field):
    status, data = await api.get(f"/api/v1/events?{query}")
    assert status == 422 and data["error"]["field"] == field, data


async def test_server_sent_events_stream_new_rows(api):
    request = await api.create()
    status, page = await api.get("/api/v1/events")
    last = page["next"]
    response = await api.client.get("/api/v1/events?poll=1", headers={
        **auth("read-only"), "Accept": "text/event-stream", "Last-Event-ID": str(last - 1)})
    assert response.status == 200 and response.content_type == "text/event-stream"

    async def next_event() -> dict:
        fields: dict[str, str] = {}
        while True:
            line = (await asyncio.wait_for(response.content.readline(), 10)).decode().rstrip("\n")
            if not line:
                if "data" in fields:
                    return fields
                continue
            if line.startswith(":"):
                continue
            key, _, value = line.partition(": ")
            fields[key] = value

    event = await next_event()
    assert event["id"] == str(last) and event["event"] == "history"
    assert json.loads(event["data"])["id"] == last
    await api.post(f"{BR}/{request['id']}/notes", {"text": "live"})
    event = await next_event()
    data = json.loads(event["data"])
    assert data["event"] == "add_note" and data["request_id"] == request["id"] and int(event["id"]) > last
    response.close()


async def test_bad_last_event_id(api):
    response = await api.client.get("/api/v1/events", headers={
        **auth(), "Accept": "text/event-stream", "Last-Event-ID": "abc"})
    assert response.status == 422 and error_code(await response.json()) == "invalid_field"
