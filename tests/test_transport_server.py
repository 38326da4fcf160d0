"""The ISO endpoint on a real loopback server: transport faults and ISO confirmations."""

from __future__ import annotations

import pytest

from gateway.messages import Version, decode, encode
from gateway.transport.server import make_app

from messages_helpers import sample_requesting_message


@pytest.fixture
async def client(aiohttp_client):
    return await aiohttp_client(make_app(body_limit=64 * 1024))


async def test_healthz(client):
    response = await client.get("/healthz")
    assert response.status == 200 and (await response.json())["status"] == "ok"


async def test_wrong_method_type_and_size_are_http_errors(client):
    assert (await client.get("/iso18626")).status == 405
    assert (await client.post("/iso18626", data=b"{}", headers={"Content-Type": "application/json"})).status == 415
    big = b"<x>" + b"a" * 100_000 + b"</x>"
    assert (await client.post("/iso18626", data=big, headers={"Content-Type": "text/xml"})).status == 413


async def test_not_xml_gets_http_200_with_badly_formed_confirmation(client):
    response = await client.post("/iso18626", data=b"<<<", headers={"Content-Type": "application/xml"})
    assert response.status == 200
    reply = decode(await response.read()).message
    assert reply.confirmation_header.message_status.value == "ERROR"
    assert reply.error_data[0].error_type.value == "BadlyFormedMessage"


async def test_valid_message_is_answered_with_a_confirmation_of_its_kind(client):
    data = encode(sample_requesting_message(), Version.V2021)
    response = await client.post("/iso18626", data=data, headers={"Content-Type": "text/xml; charset=utf-8"})
    assert response.status == 200
    reply = decode(await response.read())
    assert reply.kind == "requestingAgencyMessageConfirmation" and reply.version is Version.V2021
