"""API keys and roles: read-only may only GET, staff may write (recorded as staff:<name>), admin
has the admin endpoints; unknown or missing keys are 401; bad [[api_keys]] config is refused."""

from __future__ import annotations

import hashlib

import pytest

from gateway.api.auth import KeyRing
from gateway.config import ConfigError

from support.api_helpers import BR, KEYS, error_code, start_api


@pytest.fixture
async def api(tmp_path, aiohttp_client):
    return await start_api(aiohttp_client, f"sqlite+aiosqlite:///{tmp_path / 'auth.sqlite3'}")


async def test_missing_malformed_and_unknown_keys_are_401(api):
    for headers in ({}, {"Authorization": "Basic YTpi"}, {"Authorization": "Bearer"},
                    {"Authorization": "Bearer not-a-key"}, {"Authorization": f"Bearer {KEYS['staff']}x"}):
        response = await api.client.get(BR, headers=headers)
        body = await response.json()
        assert response.status == 401 and error_code(body) == "unauthorized", headers
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    response = await api.client.post(BR, json={"title": "x", "requester": "p", "pickup_location": "m"})
    assert response.status == 401


async def test_openapi_document_is_public_and_the_iso_endpoint_unaffected(api):
    response = await api.client.get("/api/v1/openapi.json")
    assert response.status == 200 and (await response.json())["openapi"].startswith("3.1")
    assert (await api.client.get("/healthz")).status == 200


async def test_read_only_may_only_read(api):
    rid = (await api.create())["id"]
    for path in (BR, f"{BR}/{rid}", f"{BR}/{rid}/history", f"{BR}/{rid}/notes", "/api/v1/events"):
        status, _ = await api.get(path, "read-only")
        assert status == 200, path
    for method, path, body in (("POST", BR, {"title": "x", "requester": "p", "pickup_location": "m"}),
                               ("PATCH", f"{BR}/{rid}", {"title": "y"}),
                               ("POST", f"{BR}/{rid}/notes", {"text": "n"}),
                               ("POST", f"{BR}/{rid}/actions/cancel", {}),
                               ("PUT", f"{BR}/{rid}/parameters", {"parameters": {}}),
                               ("POST", "/api/v1/patron-requests", {})):
        status, data = await api.call(method, path, "read-only", json=body)
        assert status == 403 and error_code(data) == "forbidden", (method, path)
    assert [h["event"] for h in (await api.request(rid))["history"]] == ["create", "first_partner"]


async def test_every_write_records_the_key_name(api):
    request = await api.create(role="admin")
    assert request["history"][0]["actor"] == "staff:ada"
    await api.post(f"{BR}/{request['id']}/notes", {"text": "by ann"}, "staff")
    data = await api.request(request["id"])
    assert data["history"][-1]["actor"] == "staff:ann" and data["notes"][0]["actor"] == "staff:ann"


async def test_whoami_and_admin_only_key_listing(api):
    status, me = await api.get("/api/v1/whoami", "read-only")
    assert me == {"name": "rex", "role": "read-only", "actor": "staff:rex"}
    status, data = await api.get("/api/v1/api-keys", "staff")
    assert status == 403
    status, data = await api.get("/api/v1/api-keys", "admin")
    assert status == 200 and {"name": "ada", "role": "admin"} in data["api_keys"]
    assert all(set(entry) == {"name", "role"} for entry in data["api_keys"])


async def test_no_keys_configured_refuses_everything_but_the_document(tmp_path, aiohttp_client):
    api = await start_api(aiohttp_client, f"sqlite+aiosqlite:///{tmp_path / 'nokeys.sqlite3'}", api_keys=[])
    status, data = await api.get(BR)
    assert status == 401
    assert (await api.client.get("/api/v1/openapi.json")).status == 200


def test_keyring_hashed_keys_and_config_errors():
    digest = hashlib.sha256(b"a-secret-key").hexdigest()
    ring = KeyRing([{"key_sha256": digest, "role": "admin", "name": "ops"},
                    {"key": "another-key", "role": "staff", "name": "bo"}])
    assert ring.lookup("a-secret-key").name == "ops" and ring.lookup("another-key").role == "staff"
    assert ring.lookup("a-secret-kez") is None and ring.lookup("") is None
    assert ring.lookup("\udcff") is None  # a lone surrogate from a header never crashes the lookup
    for bad in ([{"key": "k" * 10, "role": "root"}], [{"role": "staff"}], [{"key": "short", "role": "staff"}],
                [{"key": "same-key-1", "role": "staff"}, {"key": "same-key-1", "role": "admin"}],
                [{"key_sha256": "zz", "role": "staff"}], [{"key": "k" * 10, "name": "a:b"}], ["not a table"]):
        with pytest.raises(ConfigError):
            KeyRing(bad)  # type: ignore[arg-type]
