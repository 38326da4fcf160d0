"""The OpenAPI 3.1 document: valid (openapi-spec-validator), listing exactly the routes the app
serves, and true of the live handlers: schemathesis generates requests from it against a real
gateway on loopback (SQLite, and PostgreSQL when reachable) and checks that no response is a
500 and that every response matches the document (status codes, content types, schemas).
Bounded: a few examples per operation, well under a minute in all."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timezone
import uuid
from typing import Any

import pytest
import schemathesis
from schemathesis import GenerationMode
from schemathesis.core.mutations import OperatorKind
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from openapi_spec_validator import validate
from sqlalchemy.engine import make_url

from gateway.api.openapi import document
from gateway.api.routes import ROUTES
from gateway.app import build_app
from gateway.runtime import Gateway
from gateway.store.db import make_engine

from conftest import POSTGRES_URL
from gateway.messages import Version, decode, encode, model
from gateway.messages.codes import ServiceType

from support.api_helpers import KEYS, OURS, P1, api_config

EXAMPLES = 12


def test_document_is_valid_openapi_3_1():
    doc = document()
    assert doc["openapi"] == "3.1.0"
    validate(doc)


def _template(path: str) -> str:
    import re
    return re.sub(r"\{(\w+)(:[^}]*)?\}", r"{\1}", path)


def test_document_lists_exactly_the_served_operations():
    from gateway.api.borrowing import ACTIONS
    from gateway.api.lending import ACTIONS as LENDING_ACTIONS

    served = set()
    for method, path, _ in ROUTES:
        if path.endswith("/actions/{name}"):
            names = LENDING_ACTIONS if "lending" in path else ACTIONS
            served |= {(method.lower(), _template(path).replace("{name}", name)) for name in names}
        else:
            served.add((method.lower(), _template(path)))
    documented = {(method, path) for path, item in document()["paths"].items() for method in item
                  if method in ("get", "post", "put", "patch", "delete")}
    assert documented == served


async def test_served_document_is_the_same(aiohttp_client, tmp_path):
    from support.api_helpers import start_api

    api = await start_api(aiohttp_client, f"sqlite+aiosqlite:///{tmp_path / 'doc.sqlite3'}")
    response = await api.client.get("/api/v1/openapi.json")
    assert response.status == 200 and await response.json() == document()


# --- property-based: schemathesis against the live app ---------------------------------------------


class LiveGateway(threading.Thread):
    """A gateway served on loopback from its own thread and event loop (schemathesis is synchronous)."""

    def __init__(self, db_url: str, **raw: Any):
        super().__init__(daemon=True)
        self.db_url, self.raw = db_url, raw
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.port = 0

    def run(self) -> None:
        self.loop = asyncio.new_event_loop()
        try:
            self.loop.run_until_complete(self._start())
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            self.error = exc
            self.ready.set()
            return
        self.ready.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        self.gateway = Gateway.create(api_config(self.db_url, **self.raw))
        self.runner = web.AppRunner(build_app(self.gateway))
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def __enter__(self) -> "LiveGateway":
        self.start()
        self.ready.wait(30)
        if self.error:
            raise self.error
        return self

    def __exit__(self, *exc: Any) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.join(10)

    def seed(self) -> None:
        """A few requests, so generated ids sometimes hit real ones."""
        from gateway.core import RequestDetails

        async def create() -> None:
            for i in range(3):
                await self.gateway.borrowing.create(RequestDetails(requester=f"p{i}", pickup_location="Main",
                                                                   title=f"Seed {i}"))
            for i in range(2):  # and lending requests, as partners' ISO requests
                data = encode(model.Request(
                    header=model.RequestHeader(
                        supplying_agency_id=model.AgencyId.parse(OURS), requesting_agency_id=model.AgencyId.parse(P1),
                        timestamp=datetime.now(timezone.utc), requesting_agency_request_id=f"SEED-{i}"),
                    bibliographic_info=model.BibliographicInfo(title=f"Lent {i}"),
                    service_info=model.ServiceInfo(service_type=ServiceType.Loan)), Version.V2017)
                await self.gateway.lending.receive(decode(data), data)

        asyncio.run_coroutine_threadsafe(create(), self.loop).result(30)


def _postgres_schema_url() -> tuple[str, str] | None:
    schema = f"gwtest_{uuid.uuid4().hex[:16]}"

    async def create() -> None:
        admin = make_engine(POSTGRES_URL, connect_args={"timeout": 5})
        try:
            async with admin.begin() as conn:
                await conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        finally:
            await admin.dispose()

    try:
        asyncio.run(create())
    except Exception:  # noqa: BLE001 - not reachable
        return None
    url = make_url(POSTGRES_URL).update_query_dict({"search_path": schema})
    return url.render_as_string(hide_password=False), schema


def _drop_postgres_schema(schema: str) -> None:
    async def drop() -> None:
        admin = make_engine(POSTGRES_URL, connect_args={"timeout": 5})
        try:
            async with admin.begin() as conn:
                await conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await admin.dispose()

    asyncio.run(drop())


def seeded_live_gateway(request, tmp_path_factory, **options):
    """A seeded LiveGateway for a module's tests, on SQLite or on a fresh PostgreSQL schema (by the
    fixture's param); use as the body of a module-scoped fixture: `yield from seeded_live_gateway(...)`."""
    if request.param == "sqlite":
        url, schema = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('live') / 'live.sqlite3'}", None
    else:
        found = _postgres_schema_url()
        if found is None:
            u = make_url(POSTGRES_URL)
            pytest.skip(f"PostgreSQL not reachable at {u.host}:{u.port or 5432}")
        url, schema = found
    try:
        with LiveGateway(url, **options) as server:
            server.seed()
            yield server
    finally:
        if schema:
            _drop_postgres_schema(schema)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live(request, tmp_path_factory):
    yield from seeded_live_gateway(request, tmp_path_factory)


@pytest.fixture(scope="module")
def live_schema(live):
    return schemathesis.openapi.from_url(f"http://127.0.0.1:{live.port}/api/v1/openapi.json")


# Operations whose valid input depends on the configuration or the request's state, beyond what
# the document can express (a configured partner, an agency that is in the rota, a multipart
# part's file name, a due date after now): there a schema-valid request may rightly get a 422.
CONTEXTUAL = {
    ("POST", "/api/v1/lending-requests/{id}/actions/ship"),
    ("POST", "/api/v1/lending-requests/{id}/actions/answer-renew"),
    ("POST", "/api/v1/lending-requests/{id}/actions/recall"),
    ("POST", "/api/v1/lending-requests/{id}/actions/retry-possible"),
    ("POST", "/api/v1/borrowing-requests"),
    ("POST", "/api/v1/borrowing-requests/{id}/rota"),
    ("POST", "/api/v1/borrowing-requests/{id}/attachments"),
    ("POST", "/api/v1/patron-requests"),  # needed_by not in the past: it depends on the day
}

# aiohttp refuses a longer request line with a plain 400 before any handler runs (its default
# max_line_size); generated queries with many long values can exceed it.
MAX_REQUEST_LINE = 8190

OPERATIONS = [(method.upper(), path) for path, item in document()["paths"].items() for method in item
              if method in ("get", "post", "put", "patch", "delete")]


def _negation_lost_on_the_way(case, definition: dict[str, Any]) -> bool:
    """Whether every negation of a generated case is undone before the server sees it: a
    missing or broken Authorization header (every call here sends the admin key), or a free-text
    query value whose type became a number (the same text on the wire). Schemathesis forgives the
    second only when no other part of the case is negated, and the first is such a part."""
    mutations = getattr(case.meta.phase.data, "mutations", None) if case.meta is not None else None
    if not mutations:
        return False
    text = {p["name"] for p in definition.get("parameters", []) if p.get("in") == "query" and _free_text(p["schema"])}
    for m in mutations:
        names = {str(m.parameter or "").lower(), str(m.original_value or "").lower()}
        if m.parameter_location is ParameterLocation.HEADER and "authorization" in names:
            continue
        if (m.parameter_location is ParameterLocation.QUERY and m.operator is OperatorKind.CHANGE_TYPE
                and m.parameter in text and m.new_value in ("integer", "number")):
            continue
        return False
    return True


def _free_text(schema: dict[str, Any]) -> bool:
    """A string (or array of strings) any number's text satisfies: no enum, format, nor a pattern
    other than "no commas, spaces or NULs"."""
    item = schema.get("items", {}) if schema.get("type") == "array" else schema
    return (item.get("type") == "string" and "enum" not in item and "format" not in item
            and item.get("pattern") in (None, r"^[^,\s\x00][^,\x00]*$"))


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
@pytest.mark.parametrize("method, path", OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_api_conforms_and_never_fails(live_schema, method, path, mode):
    """Generated requests (valid ones, and ones that break the document's rules) for one
    operation: never a 500, and every answer as the document says."""
    operation = live_schema[path][method]
    headers = {"Authorization": f"Bearer {KEYS['admin']}"}

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case):
        if method == "GET" and path == "/api/v1/events":
            case.headers = {**(case.headers or {}), "Accept": "application/json"}  # not the endless stream
        excluded = [positive_data_acceptance] if mode is GenerationMode.POSITIVE and (method, path) in CONTEXTUAL else []
        if mode is GenerationMode.NEGATIVE and _negation_lost_on_the_way(case, operation.definition.raw):
            excluded.append(negative_data_rejection)
        response = case.call(headers=headers, timeout=30)
        if response.status_code == 400 and len(response.request.url) > MAX_REQUEST_LINE:
            return  # aiohttp's HTTP parser refused the request line: a transport limit, before the API
        case.validate_response(response, headers=headers, excluded_checks=excluded)

    try:
        run()
    except Unsatisfiable:
        assert mode is GenerationMode.NEGATIVE  # nothing in this operation can be made invalid
