"""Play conformance scenarios against an ISO 18626 endpoint and judge every answer.

The runner plays the other side of the target:

- role "supplier" (the target lends): the runner is a requesting agency. It sends requests (with
  the scenario's MOCK: token, and its listener as reply address) and actions, and expects
  supplyingAgencyMessages at its listener. A mock partner answers by the MOCK: script; a gateway's
  lending side answers when its staff act: `staff` steps find the lending request the runner's
  request created (GET /api/v1/lending-requests) and post the staff action for it.
- role "requester" (the target borrows): the runner is a supplying agency. A `trigger = "api"`
  step makes the target create a borrowing request through its staff API with the runner as the
  only partner; the request arrives at the listener, and the runner answers with
  supplyingAgencyMessages, driving further staff actions through the API.

Every confirmation and every follow-up is decoded, so validated against the schema of its
version; the version must be the one the run speaks. Runs of different scenarios go on
concurrently (`jobs`); each run has its own request ids and listener inbox.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from lxml import etree

from ..messages import ErrorType, Inbound, MessageError, Version, decode, model
from ..messages.confirmations import Echo
from ..messages.plan import NS
from ..strict_numbers import NumberError, parse_int
from .build import (
    BuildError,
    Context,
    Parties,
    adapt_fixture,
    build_ram,
    build_request,
    build_sam,
    encode_template,
    expand,
    raw_bytes,
    read_fixture,
)
from .listener import CONFIRMATION_KINDS, SHORT, Inbox, Listener, Received, ReplyRule
from .report import FAIL, PASS, SKIP, WARN, Report, RunResult, StepResult
from .scenario import (
    ANY,
    CONFIRMATION_OF,
    DEFAULT_CONFIRM_WITHIN,
    DEFAULT_EXPECT_WITHIN,
    DEFAULT_STAFF_WITHIN,
    VERSION_LABELS,
    Scenario,
    ScenarioError,
    Step,
)

POLL = 0.05


class RunnerError(RuntimeError):
    """The runner cannot start (no target agency, listener cannot bind...)."""


@dataclass(slots=True)
class RunnerConfig:
    target: str
    role: str = "supplier"
    version: str | None = None                  # "2017" / "2021"; None: every version a scenario lists
    agency: str = "ISIL:CONFORMANCE"
    target_agency: str | None = None            # None: asked from the target's /healthz
    listen: str = "127.0.0.1:0"
    public_url: str | None = None
    api: str | None = None
    api_key: str | None = None
    jobs: int = 4
    lender: str | None = None                   # role supplier: "mock" / "staff"; None: staff if api, else mock
    api_defaults: dict[str, Any] = field(default_factory=lambda: {
        "requester": "conformance-patron", "pickup_location": "MAIN",
    })


def _split_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    try:
        number = parse_int(port, 0, 65535)
    except NumberError:
        raise RunnerError(f"--listen wants HOST:PORT, got {text!r}") from None
    if not sep:
        raise RunnerError(f"--listen wants HOST:PORT, got {text!r}")
    return host or "127.0.0.1", number


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "", "", ""))


def api_base(url: str) -> str:
    """The API root without a trailing /api/v1 (both spellings are accepted on the command line)."""
    url = url.rstrip("/")
    return url[: -len("/api/v1")] if url.endswith("/api/v1") else url


@dataclass(slots=True)
class Sent:
    """What the last send step put on the wire, for `send = "again"` and echo checks."""

    data: bytes
    content_type: str
    method: str
    kind: str | None                  # message kind if known
    version: Version | None           # the version it is written in, if it is a valid message
    echo: Echo | None                 # what a confirmation should repeat (valid messages only)
    confirmation: Any = None          # the confirmation model received for it


class Run:
    """One scenario in one version: its ids, its inbox, its cursor through the inbox."""

    def __init__(self, runner: "Runner", scenario: Scenario, version: str):
        self.runner, self.scenario, self.label = runner, scenario, version
        self.version = VERSION_LABELS.get(version) or VERSION_LABELS.get(runner.config.version or "2017")
        self.token = "CT" + secrets.token_hex(5).upper()
        cfg = runner.config
        ours, theirs = model.AgencyId.parse(cfg.agency), model.AgencyId.parse(runner.target_agency)
        self.role = cfg.role
        own_id = f"CONF-{self.token}"
        if self.role == "supplier":
            self.parties = Parties(requester=ours, supplier=theirs, request_id=own_id, supplier_request_id=None)
        else:
            self.parties = Parties(requester=theirs, supplier=ours, request_id=own_id, supplier_request_id=own_id)
        self.inbox: Inbox = runner.listener.open(self.token)
        runner.listener.claim(self.inbox, own_id)
        self.cursor = 0                       # messages before it are all taken by expect steps
        self.consumed: set[int] = set()       # taken messages at or after the cursor
        self.last: Sent | None = None
        self.sam_count = 0
        self.api_id: Any = None
        self.lending_ids: dict[str, int] = {}   # role supplier: requestingAgencyRequestId -> lending request id
        self.result = RunResult(scenario.id, scenario.name, scenario.suite, str(scenario.path), version,
                                scenario.description)

    # --- helpers ---------------------------------------------------------------------------------

    def context(self) -> Context:
        return Context(
            request_id=self.parties.request_id, supplier_request_id=self.parties.supplier_request_id or "",
            our_agency=self.runner.config.agency, target_agency=self.runner.target_agency,
            listener_url=self.runner.listener.url or "", token=self.token, version=self.version,
            now=datetime.now(timezone.utc),
        )

    @property
    def loop_time(self) -> float:
        return asyncio.get_running_loop().time()

    # --- the run ----------------------------------------------------------------------------------

    async def execute(self) -> RunResult:
        start = self.loop_time
        try:
            steps = self.scenario.plan(self.label)
        except ScenarioError as exc:
            self.result.error = str(exc)
            return self.result
        failed = False
        try:
            for step in steps:
                if failed and not self.scenario.continue_on_failure:
                    self.result.steps.append(StepResult(step.number, step.label, "-", "not run", SKIP))
                    continue
                began = self.loop_time
                try:
                    outcome = await self.step(step)
                except BuildError as exc:
                    outcome = StepResult(step.number, step.label, "a message to send", "scenario error", FAIL, str(exc))
                except Exception as exc:  # noqa: BLE001 - a runner bug fails this run, not the whole report
                    outcome = StepResult(step.number, step.label, "-", "runner error", FAIL, f"{type(exc).__name__}: {exc}")
                outcome.seconds = self.loop_time - began
                self.result.steps.append(outcome)
                failed = failed or outcome.verdict == FAIL
            self.result.steps.extend(self.leftovers())
        finally:
            self.runner.listener.forget(self.inbox)
            self.result.seconds = self.loop_time - start
        return self.result

    async def step(self, step: Step) -> StepResult:
        if step.op == "send":
            return await self.send(step)
        if step.op == "expect":
            return await self.expect(step)
        if step.op == "api":
            return await self.api(step)
        if step.op == "staff":
            return await self.staff(step)
        if step.op == "check":
            return await self.check(step)
        if step.op == "respond":
            value = step.spec.get("error_type")
            status = step.what if step.what in ("OK", "ERROR") else int(step.what)
            self.inbox.rules.append(ReplyRule(status, ErrorType(value) if value else None,
                                              step.spec.get("error_value"), int(step.spec.get("count", 1))))
            return StepResult(step.number, step.label, "-", "set", PASS)
        await asyncio.sleep(float(step.what))
        return StepResult(step.number, step.label, "-", "slept", PASS)

    def leftovers(self) -> list[StepResult]:
        """Messages that arrived and no expect step took: invalid ones fail, others are a warning."""
        rest = [self.inbox.messages[i] for i in self._unconsumed()]
        out = []
        invalid = [r for r in rest if not r.valid]
        if invalid:
            out.append(StepResult("end", "every message received validates", "valid messages",
                                  "; ".join(r.describe() for r in invalid), FAIL))
        if len(invalid) < len(rest):
            out.append(StepResult("end", "no unexpected messages", "nothing more",
                                  "; ".join(r.describe() for r in rest if r.valid), WARN))
        return out

    # --- send -----------------------------------------------------------------------------------

    def _build(self, step: Step, spec: dict[str, Any], ctx: Context) -> Sent:
        mock = self.scenario.mock if self.role == "supplier" else None
        now = ctx.now
        content_type = spec.get("content_type", "application/xml")
        method = spec.get("method", "POST")
        what = step.what
        if what == "again":
            if self.last is None:
                raise BuildError('send = "again" needs an earlier send step')
            return Sent(self.last.data, self.last.content_type, self.last.method, self.last.kind, self.last.version,
                        self.last.echo)
        if what in CONFIRMATION_OF:
            reply_url = self.runner.listener.url
            if what == "request":
                message: Any = build_request(spec, self.parties, self.version, now, mock=mock, reply_url=reply_url)
            elif what == "requestingAgencyMessage":
                message = build_ram(spec, self.parties, self.version, now)
            else:
                message = build_sam(spec, self.parties, self.version, now, first=self.sam_count == 0,
                                    item_id=f"{self.token}-ITEM")
                self.sam_count += 1
            rid = message.header.requesting_agency_request_id
            self.runner.listener.claim(self.inbox, rid)
            return Sent(encode_template(what, message, self.version), content_type, method, what, self.version,
                        Echo.of(message))
        if what == "raw":
            data = raw_bytes(spec, ctx)
        else:  # fixture
            assert step.fixture_path is not None
            data = read_fixture(step.fixture_path)
            adapt = spec.get("adapt", step.fixture is not None and step.fixture.expected == "valid")
            if adapt:
                parties = self.parties
                if step.fixture is not None and step.fixture.kind == "request" and "." in step.number:
                    index = step.number.rsplit(".", 1)[1]
                    parties = Parties(parties.requester, parties.supplier, f"{parties.request_id}-{index}",
                                      parties.supplier_request_id)
                data = adapt_fixture(data, parties, now, mock=spec.get("mock", mock), reply_url=self.runner.listener.url)
        try:
            inbound = decode(data)
        except MessageError as exc:
            # The confirmation kind is only required where the partner can tell the kind: a
            # well-formed envelope of a known version (manifest version other than "-").
            row = step.fixture
            kind = row.kind if row is not None and row.version != "-" and row.kind != "-" else None
            if row is None and exc.root is not None and exc.version is not None:
                kind = exc.kind
            return Sent(data, content_type, method, kind, None, None)
        if inbound.kind == "request" or hasattr(inbound.message, "header"):
            rid = getattr(inbound.message.header, "requesting_agency_request_id", None)
            if rid:
                self.runner.listener.claim(self.inbox, rid)
        echo = Echo.of(inbound.message) if inbound.kind in CONFIRMATION_OF else None
        return Sent(data, content_type, method, inbound.kind, inbound.version, echo)

    def _expected_confirmation(self, step: Step, spec: dict[str, Any]) -> dict[str, Any]:
        confirm = dict(spec.get("confirm") or {})
        if step.what == "fixture" and step.fixture is not None and "message_status" not in confirm \
                and "error_type" not in confirm:
            if step.fixture.expected != "valid":
                confirm["error_type"] = step.fixture.expected
        if "message_status" not in confirm:
            confirm["message_status"] = "ERROR" if "error_type" in confirm else "OK"
        return confirm

    async def send(self, step: Step) -> StepResult:
        ctx = self.context()
        spec = expand(step.spec, ctx)
        sent = self._build(step, spec, ctx)
        confirm = self._expected_confirmation(step, spec)
        statuses = confirm.get("http_status", 200)
        statuses = statuses if isinstance(statuses, list) else [statuses]
        expected = _describe_expected(confirm, statuses, sent)
        within = step.within(DEFAULT_CONFIRM_WITHIN)
        try:
            async with self.runner.http.request(
                sent.method, self.runner.config.target, data=sent.data,
                headers={"Content-Type": sent.content_type}, timeout=aiohttp.ClientTimeout(total=within),
            ) as response:
                status, body = response.status, await response.read()
        except asyncio.TimeoutError:
            return StepResult(step.number, step.label, expected, f"no answer within {within:g}s", FAIL)
        except (aiohttp.ClientError, OSError) as exc:
            return StepResult(step.number, step.label, expected, f"no answer: {type(exc).__name__}: {exc}", FAIL)
        previous = self.last
        self.last = sent
        if status != 200:
            verdict = PASS if status in statuses else FAIL
            text = body[:120].decode("utf-8", "replace").strip()
            return StepResult(step.number, step.label, expected, f"HTTP {status}" + (f": {text}" if text else ""), verdict)
        if 200 not in statuses:
            return StepResult(step.number, step.label, expected, "HTTP 200", FAIL)
        try:
            reply = decode(body)
        except MessageError as exc:
            return StepResult(step.number, step.label, expected, "a confirmation that does not validate", FAIL,
                              f"{exc.version.label if exc.version else ''} {exc.first}".strip())
        problems = self._judge_confirmation(reply, confirm, sent, previous)
        sent.confirmation = reply.message
        got = _describe_confirmation(reply)
        if problems:
            return StepResult(step.number, step.label, expected, got, FAIL, "; ".join(problems))
        return StepResult(step.number, step.label, expected, got, PASS)

    def _judge_confirmation(self, reply: Inbound, confirm: dict[str, Any], sent: Sent, previous: Sent | None) -> list[str]:
        problems: list[str] = []
        message = reply.message
        wanted_kind = confirm.get("kind") or (CONFIRMATION_OF.get(sent.kind) if sent.kind else None)
        if reply.kind not in CONFIRMATION_KINDS:
            return [f"answered with a {reply.kind}, not a confirmation"]
        if wanted_kind and reply.kind != wanted_kind:
            problems.append(f"a {reply.kind}, expected a {wanted_kind}")
        if sent.version is not None and reply.version is not sent.version:
            problems.append(f"written in {reply.version.label}, the message was {sent.version.label}")
        header = message.confirmation_header
        status = header.message_status.value
        errors = list(message.error_data)
        if status != confirm["message_status"]:
            problems.append(f"messageStatus {status}, expected {confirm['message_status']}")
        if status == "ERROR" and not errors:
            problems.append("messageStatus ERROR without errorData")
        if "error_type" in confirm and not any(e.error_type.value == confirm["error_type"] for e in errors):
            problems.append(f"errorType {', '.join(e.error_type.value for e in errors) or 'none'}, "
                            f"expected {confirm['error_type']}")
        if "error_value" in confirm and not any(confirm["error_value"] in (e.error_value or "") for e in errors):
            problems.append(f"no errorValue contains {confirm['error_value']!r}")
        echo = sent.echo
        if confirm.get("echo", True) and echo is not None:
            rid = header.requesting_agency_request_id
            if rid is not None and rid != echo.requesting_agency_request_id:
                problems.append(f"requestingAgencyRequestId {rid!r}, the message had {echo.requesting_agency_request_id!r}")
            if reply.kind == "requestingAgencyMessageConfirmation" and echo.action is not None \
                    and echo.action.value in type(echo.action).values_for(reply.version) and "action" not in confirm:
                if message.action is not echo.action:
                    problems.append(f"action {message.action.value if message.action else 'absent'}, "
                                    f"expected the echo {echo.action.value}")
            if reply.kind == "supplyingAgencyMessageConfirmation" and echo.reason_for_message is not None \
                    and "reason" not in confirm:
                if message.reason_for_message is not echo.reason_for_message:
                    got = message.reason_for_message.value if message.reason_for_message else "absent"
                    problems.append(f"reasonForMessage {got}, expected the echo {echo.reason_for_message.value}")
        if "action" in confirm:
            got = message.action.value if getattr(message, "action", None) else "absent"
            if got != confirm["action"]:
                problems.append(f"action {got}, expected {confirm['action']}")
        if "reason" in confirm:
            value = getattr(message, "reason_for_message", None)
            got = value.value if value else "absent"
            if got != confirm["reason"]:
                problems.append(f"reasonForMessage {got}, expected {confirm['reason']}")
        if confirm.get("identical"):
            before = previous.confirmation if previous is not None else None
            if before is None:
                problems.append("no earlier confirmation to compare with")
            elif _comparable(before) != _comparable(message):
                problems.append("differs from the confirmation of the first copy")
        return problems

    # --- expect -----------------------------------------------------------------------------------

    def _unconsumed(self) -> list[int]:
        return [i for i in range(self.cursor, len(self.inbox.messages)) if i not in self.consumed]

    def _consume(self, index: int) -> None:
        self.consumed.add(index)
        while self.cursor in self.consumed:
            self.consumed.discard(self.cursor)
            self.cursor += 1

    async def expect(self, step: Step) -> StepResult:
        """Take the next message the target sent. In order by default: the first message not yet
        taken must match. With skip_others, the first matching one is taken and the others stay
        for later steps."""
        spec = expand(step.spec, self.context())
        within = step.within(DEFAULT_EXPECT_WITHIN)
        deadline = self.loop_time + within
        expected = _describe_wanted(step.what, spec, within)
        if step.what == "nothing":
            pending = self._unconsumed()
            if not pending and await self.inbox.wait(len(self.inbox.messages), deadline):
                await asyncio.sleep(0.02)  # let a burst finish, then report all of it
            pending = self._unconsumed()
            if pending:
                got = "; ".join(self.inbox.messages[i].describe() for i in pending)
                for i in pending:
                    self._consume(i)
                return StepResult(step.number, step.label, expected, got, FAIL)
            return StepResult(step.number, step.label, expected, "nothing", PASS)
        seen = self.cursor
        while True:
            for index in self._unconsumed():
                received = self.inbox.messages[index]
                problems = self._match(received, step.what, spec)
                if not problems:
                    self._consume(index)
                    self._learn(received)
                    return StepResult(step.number, step.label, expected, received.describe(), PASS)
                if spec.get("skip_others") and received.valid:
                    continue
                self._consume(index)
                if received.valid and received.kind == step.what:
                    self._learn(received)  # the ids are still right: later steps stay meaningful
                return StepResult(step.number, step.label, expected, received.describe(), FAIL, "; ".join(problems))
            seen = len(self.inbox.messages)
            if not await self.inbox.wait(seen, deadline):
                others = [self.inbox.messages[i].describe() for i in self._unconsumed()]
                got = f"nothing within {within:g}s" + (f" (only {', '.join(others)})" if others else "")
                return StepResult(step.number, step.label, expected, got, FAIL)

    def _match(self, received: Received, what: str, spec: dict[str, Any]) -> list[str]:
        problems: list[str] = []
        if what != "any" and received.kind != what:
            return [f"a {received.kind or 'message of unknown kind'}, expected {'a ' + what if what != 'nothing' else 'nothing'}"]
        if "error_type" in spec:
            if received.valid:
                return ["it validates; expected it to be refused with " + spec["error_type"]]
            if not any(f.error_type.value == spec["error_type"] for f in received.faults):
                return [f"refused with {received.faults[0].error_type.value}, expected {spec['error_type']}"]
            return []
        if not received.valid:
            return [f"does not validate against the {received.version.label if received.version else ''} schema: "
                    f"{received.faults[0] if received.faults else '?'}"]
        if self.label != ANY and received.version is not self.version:
            problems.append(f"written in {received.version.label}, this run speaks {self.version.label}")
        message = received.message
        checks: list[tuple[str, Any]] = []
        if received.kind == "supplyingAgencyMessage":
            info = message.message_info
            checks = [("status", message.status_info.status), ("reason", info.reason_for_message),
                      ("answer", info.answer_yes_no)]
        elif received.kind == "requestingAgencyMessage":
            checks = [("action", message.action)]
        elif received.kind == "request":
            service = message.service_info
            checks = [("request_type", service.request_type if service else None),
                      ("service_type", service.service_type if service else None)]
        for key, value in checks:
            if key in spec and (value.value if value is not None else None) != spec[key]:
                problems.append(f"{key} {value.value if value is not None else 'absent'}, expected {spec[key]}")
        for key in ("status", "action", "reason", "answer", "request_type", "service_type"):
            if key in spec and key not in dict(checks):
                problems.append(f"a {received.kind} has no {key}")
        for path, wanted in (spec.get("has") or {}).items():
            problem = _has(received.inbound.root, path, wanted)
            if problem:
                problems.append(problem)
        return problems

    def _learn(self, received: Received) -> None:
        """Ids the rest of the run needs: the partner's request id, a request's sender and id."""
        message = received.message
        if message is None:
            return
        header = message.header
        if received.kind == "supplyingAgencyMessage" and header.supplying_agency_request_id:
            self.parties.supplier_request_id = header.supplying_agency_request_id
        if received.kind == "request" and self.role == "requester":
            self.parties.requester = header.requesting_agency_id
            self.parties.request_id = header.requesting_agency_request_id
            self.runner.listener.claim(self.inbox, header.requesting_agency_request_id)
            self.sam_count = 0

    # --- the target's staff API -------------------------------------------------------------------

    def _api_headers(self) -> dict[str, str]:
        key = self.runner.config.api_key
        return {"Authorization": f"Bearer {key}"} if key else {}

    async def api(self, step: Step) -> StepResult:
        spec = expand(step.spec, self.context())
        base = self.runner.config.api
        action = step.what
        wanted = spec.get("http_status")
        statuses = [wanted] if isinstance(wanted, int) else wanted or ([201, 200] if action == "create" else [200, 201, 202, 204])
        expected = f"HTTP {'/'.join(map(str, statuses))}" + _json_expectation(spec.get("expect_json"))
        if not base:
            return StepResult(step.number, step.label, expected, "no --api given", FAIL)
        if action == "create":
            title = spec.get("title", "Conformance test item")
            body = {
                "title": f"{title} [{self.token}]",
                "requester": spec.get("requester", self.runner.config.api_defaults["requester"]),
                "pickup_location": spec.get("pickup_location", self.runner.config.api_defaults["pickup_location"]),
                "partners": spec.get("partners", [self.runner.config.agency]),
                "request_note": " ".join(p for p in (spec.get("request_note"), f"conformance run {self.token}") if p),
            }
            body.update(spec.get("body") or {})
            url = f"{base}/api/v1/borrowing-requests"
        else:
            if self.api_id is None:
                return StepResult(step.number, step.label, expected, "no borrowing request created yet", FAIL)
            body = dict(spec.get("body") or {})
            url = f"{base}/api/v1/borrowing-requests/{self.api_id}/actions/{action}"
        try:
            async with self.runner.http.post(url, json=body, headers=self._api_headers()) as response:
                status = response.status
                data = await response.json(content_type=None) if response.content_length != 0 else None
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
            return StepResult(step.number, step.label, expected, f"no usable answer: {type(exc).__name__}: {exc}", FAIL)
        got = f"HTTP {status}"
        if status not in statuses:
            return StepResult(step.number, step.label, expected, got, FAIL, _api_error(data))
        if action == "create":
            if not isinstance(data, dict) or "id" not in data:
                return StepResult(step.number, step.label, expected, got + " without an id", FAIL)
            self.api_id = data["id"]
            got += f" id={self.api_id}"
        problems = _json_problems(data, spec.get("expect_json") or {})
        if problems:
            return StepResult(step.number, step.label, expected, got, FAIL, "; ".join(problems))
        if isinstance(data, dict) and "status" in data:
            got += f" status={data['status']}"
        return StepResult(step.number, step.label, expected, got, PASS)

    # --- the target's lending staff API (role supplier) ----------------------------------------------

    async def _lending_id(self, request_id: str | None, within: float) -> tuple[int | None, str]:
        """The target's lending request for our request id (default the run's), looked up once:
        GET /api/v1/lending-requests?partner=<our agency>&q=<request id>, polled until it shows."""
        rid = request_id or self.parties.request_id
        if rid in self.lending_ids:
            return self.lending_ids[rid], ""
        url = f"{self.runner.config.api}/api/v1/lending-requests"
        params = {"partner": self.runner.config.agency, "q": rid, "facets": "false", "limit": "200"}
        deadline = self.loop_time + within
        while True:
            try:
                async with self.runner.http.get(url, params=params, headers=self._api_headers()) as response:
                    status = response.status
                    data = await response.json(content_type=None)
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
                return None, f"no usable answer from GET {url}: {type(exc).__name__}: {exc}"
            if status != 200:
                return None, f"GET {url}: HTTP {status} {_api_error(data)}"
            items = data.get("items") if isinstance(data, dict) else None
            found = [i for i in items or [] if isinstance(i, dict) and i.get("requesting_agency_request_id") == rid]
            if found:
                self.lending_ids[rid] = found[0]["id"]
                return found[0]["id"], ""
            if self.loop_time >= deadline:
                return None, f"no lending request for {rid} from {self.runner.config.agency} within {within:g}s"
            await asyncio.sleep(POLL)

    async def staff(self, step: Step) -> StepResult:
        """POST a staff action (or a general message, or a note) for a lending request."""
        spec = expand(step.spec, self.context())
        action = step.what
        wanted = spec.get("http_status")
        statuses = [wanted] if isinstance(wanted, int) else wanted or [200, 201, 202, 204]
        expected = f"HTTP {'/'.join(map(str, statuses))}" + _json_expectation(spec.get("expect_json"))
        base = self.runner.config.api
        if not base:
            return StepResult(step.number, step.label, expected, "no --api given", FAIL)
        lending_id, problem = await self._lending_id(spec.get("request_id"), step.within(DEFAULT_STAFF_WITHIN))
        if lending_id is None:
            # http_status = 404: the request must NOT have started a lending request
            verdict = PASS if 404 in statuses and problem.startswith("no lending request") else FAIL
            return StepResult(step.number, step.label, expected, "no lending request", verdict,
                              "" if verdict == PASS else problem)
        root = f"{base}/api/v1/lending-requests/{lending_id}"
        url = {"message": f"{root}/messages", "note": f"{root}/notes"}.get(action, f"{root}/actions/{action}")
        try:
            async with self.runner.http.post(url, json=dict(spec.get("body") or {}),
                                             headers=self._api_headers()) as response:
                status = response.status
                data = await response.json(content_type=None) if response.content_length != 0 else None
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
            return StepResult(step.number, step.label, expected, f"no usable answer: {type(exc).__name__}: {exc}", FAIL)
        got = f"HTTP {status}"
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            got += f" {data['error'].get('code')}"
        if status not in statuses:
            return StepResult(step.number, step.label, expected, got, FAIL, _api_error(data))
        problems = _json_problems(data, spec.get("expect_json") or {})
        if isinstance(data, dict) and "status" in data:
            got += f" status={data['status']}"
        if problems:
            return StepResult(step.number, step.label, expected, got, FAIL, "; ".join(problems))
        return StepResult(step.number, step.label, expected, got, PASS)

    async def check(self, step: Step) -> StepResult:
        """Role requester: the borrowing request the run created; role supplier: the lending request
        of `request_id` (default the run's). Polled until it matches or `within` is over."""
        spec = expand(step.spec, self.context())
        wanted = spec["expect_json"]
        within = step.within(DEFAULT_EXPECT_WITHIN)
        expected = "JSON" + _json_expectation(wanted)
        base = self.runner.config.api
        if not base:
            return StepResult(step.number, step.label, expected, "no --api given", FAIL)
        deadline = self.loop_time + within
        if self.role == "supplier":
            lending_id, problem = await self._lending_id(spec.get("request_id"), within)
            if lending_id is None:
                return StepResult(step.number, step.label, expected, "no lending request", FAIL, problem)
            url = f"{base}/api/v1/lending-requests/{lending_id}"
        elif self.api_id is None:
            return StepResult(step.number, step.label, expected, "no borrowing request created yet", FAIL)
        else:
            url = f"{base}/api/v1/borrowing-requests/{self.api_id}"
        problems: list[str] = ["not asked"]
        got = "-"
        while True:
            try:
                async with self.runner.http.get(url, headers=self._api_headers()) as response:
                    status = response.status
                    data = await response.json(content_type=None)
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
                return StepResult(step.number, step.label, expected, f"no usable answer: {exc}", FAIL)
            if status != 200:
                return StepResult(step.number, step.label, expected, f"HTTP {status}", FAIL, _api_error(data))
            problems = _json_problems(data, wanted)
            got = ", ".join(f"{k}={_dig(data, k)[1]}" for k in wanted)
            if not problems:
                return StepResult(step.number, step.label, expected, got, PASS)
            if self.loop_time >= deadline:
                return StepResult(step.number, step.label, expected, got, FAIL,
                                  f"not within {within:g}s: " + "; ".join(problems))
            await asyncio.sleep(POLL)


# --- describing and comparing -------------------------------------------------------------------------

def _describe_expected(confirm: dict[str, Any], statuses: list[int], sent: Sent) -> str:
    if 200 not in statuses:
        return "HTTP " + "/".join(map(str, statuses))
    alt = "HTTP " + "/".join(str(s) for s in statuses if s != 200) + " or " if len(statuses) > 1 else ""
    text = confirm["message_status"]
    if "error_type" in confirm:
        text += f" {confirm['error_type']}"
    echo = sent.echo
    if "action" in confirm:
        text += f" action={confirm['action']}"
    elif echo is not None and echo.action is not None and confirm.get("echo", True) and sent.kind == "requestingAgencyMessage":
        text += f" action={echo.action.value}"
    if "reason" in confirm:
        text += f" reason={confirm['reason']}"
    elif echo is not None and echo.reason_for_message is not None and confirm.get("echo", True):
        text += f" reason={echo.reason_for_message.value}"
    if confirm.get("identical"):
        text += " (same as before)"
    return alt + text


def _describe_confirmation(reply: Inbound) -> str:
    message = reply.message
    text = f"{message.confirmation_header.message_status.value}"
    errors = message.error_data
    if errors:
        text += f" {errors[0].error_type.value}"
    if getattr(message, "action", None) is not None:
        text += f" action={message.action.value}"
    if getattr(message, "reason_for_message", None) is not None:
        text += f" reason={message.reason_for_message.value}"
    text += f" ({reply.version.label})"
    if errors and errors[0].error_value:
        text += f": {errors[0].error_value}"
    return text


def _describe_wanted(what: str, spec: dict[str, Any], within: float) -> str:
    if what == "nothing":
        return f"no message for {within:g}s"
    parts = [SHORT.get(what, what) if what != "any" else "any message"]
    parts += [str(spec[k]) for k in ("status", "action", "request_type", "service_type") if k in spec]
    if "reason" in spec:
        parts.append(f"({spec['reason']}{' ' + spec['answer'] if 'answer' in spec else ''})")
    elif "answer" in spec:
        parts.append(f"answer {spec['answer']}")
    if "error_type" in spec:
        parts.append(f"refused: {spec['error_type']}")
    for path, value in (spec.get("has") or {}).items():
        parts.append(f"{path}" + ("" if value == "*" else " absent" if value == "!" else f"={value}"))
    return " ".join(parts) + f" ≤{within:g}s"


def _comparable(confirmation: Any) -> Any:
    """A confirmation without its own timestamp, to compare two answers to the same message."""
    header = confirmation.confirmation_header
    return (type(confirmation).__name__, header.message_status, header.requesting_agency_request_id,
            header.timestamp_received, getattr(confirmation, "action", None),
            getattr(confirmation, "reason_for_message", None),
            [(e.error_type, e.error_value) for e in confirmation.error_data])


def _has(root: etree._Element, path: str, wanted: str) -> str | None:
    body = next((c for c in root if isinstance(c.tag, str)), None)
    if body is None:
        return f"{path}: no message"
    xpath = "/".join(f"ill:{part}" for part in path.strip("/").split("/"))
    found = body.xpath(xpath, namespaces={"ill": NS})
    if wanted == "!":
        return f"{path} is present" if found else None
    if not found:
        return f"{path} is absent"
    if wanted == "*":
        return None
    texts = [(el.text or "").strip() for el in found]
    return None if wanted in texts else f"{path} is {texts[0]!r}, expected {wanted!r}"


def _dig(data: Any, path: str) -> tuple[bool, Any]:
    node = data
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False, "absent"
    return True, node


def _json_problems(data: Any, wanted: dict[str, Any]) -> list[str]:
    """A list expected where the value is not a list means "any of these"; "null" (TOML has no
    null) matches a JSON null; as in `has`, "*" means present (any value) and "!" absent."""
    problems = []
    for path, value in wanted.items():
        found, got = _dig(data, path)
        if value in ("*", "!"):
            if found != (value == "*"):
                problems.append(f"{path} is {'absent' if not found else repr(got)}, expected it "
                                f"{'present' if value == '*' else 'absent'}")
            continue
        if isinstance(value, list) and not isinstance(got, list):
            ok = found and (got in value or (got is None and "null" in value))
        else:
            ok = found and (got == value or (got is None and value == "null"))
        if not ok:
            problems.append(f"{path} is {got!r}, expected {' or '.join(map(repr, value)) if isinstance(value, list) and not isinstance(got, list) else repr(value)}")
    return problems


def _json_expectation(wanted: dict[str, Any] | None) -> str:
    return "" if not wanted else " " + ", ".join(f"{k}={v}" for k, v in wanted.items())


def _api_error(data: Any) -> str:
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        error = data["error"]
        return f"{error.get('code')}: {error.get('message')}"
    return str(data)[:200] if data is not None else ""


# --- the runner -----------------------------------------------------------------------------------------

class Runner:
    """Holds the listener and the HTTP client; runs scenarios and collects a Report."""

    def __init__(self, config: RunnerConfig, *, progress: Callable[[RunResult], None] | None = None):
        if config.role not in ("supplier", "requester"):
            raise RunnerError(f"role must be supplier or requester, got {config.role!r}")
        if config.lender not in (None, "mock", "staff"):
            raise RunnerError(f"lender must be mock or staff, got {config.lender!r}")
        self.config = config
        self.progress = progress
        host, port = _split_listen(config.listen)
        self.listener = Listener(host, port, config.public_url)
        self.http: aiohttp.ClientSession | None = None  # type: ignore[assignment]
        self.target_agency: str = config.target_agency or ""
        if config.api:
            config.api = api_base(config.api)
        self._started = False

    async def start(self) -> str:
        """Start the listener and the HTTP client; returns the listener's URL (the target may need it
        in its configuration before it starts; `config.target` may be set after this)."""
        if self._started:
            return self.listener.url or ""
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        try:
            url = await self.listener.start()
        except OSError as exc:
            await self.http.close()
            raise RunnerError(f"cannot listen on {self.config.listen}: {exc.strerror or exc}") from None
        self._started = True
        return url

    async def close(self) -> None:
        if self.http is not None:
            await self.http.close()
        await self.listener.close()
        self._started = False

    async def _discover_agency(self) -> str:
        url = _origin(self.config.target) + "/healthz"
        try:
            async with self.http.get(url, timeout=aiohttp.ClientTimeout(total=5)) as response:
                data = await response.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
            raise RunnerError(f"cannot ask {url} for the target's agency ({type(exc).__name__}); "
                              "pass --target-agency TYPE:VALUE") from None
        agency = data.get("agency") if isinstance(data, dict) else None
        if not agency and isinstance(data, dict) and data.get("agencies"):
            agency = data["agencies"][0]
        if not isinstance(agency, str) or ":" not in agency:
            raise RunnerError(f"{url} does not name an agency; pass --target-agency TYPE:VALUE")
        return agency

    @property
    def lender(self) -> str | None:
        """Role supplier: the kind of lender the target is ("mock" or "staff"); None for role requester."""
        if self.config.role != "supplier":
            return None
        return self.config.lender or ("staff" if self.config.api else "mock")

    def plan(self, scenarios: list[Scenario]) -> list[tuple[Scenario, str]]:
        return [(s, v) for s in scenarios for v in s.runs_for(self.config.role, self.config.version, self.lender)]

    async def run(self, scenarios: list[Scenario]) -> Report:
        started_here = not self._started
        if started_here:
            await self.start()
        loop = asyncio.get_running_loop()
        begin = loop.time()
        if not self.target_agency:
            try:
                self.target_agency = await self._discover_agency()
            except RunnerError:
                if started_here:
                    await self.close()
                raise
        report = Report(self.config.target, self.config.role, self.config.agency, self.target_agency)
        gate = asyncio.Semaphore(max(1, self.config.jobs))

        async def one(scenario: Scenario, version: str) -> RunResult:
            async with gate:
                result = await Run(self, scenario, version).execute()
            if self.progress:
                self.progress(result)
            return result

        try:
            report.runs = list(await asyncio.gather(*(one(s, v) for s, v in self.plan(scenarios))))
            report.unclaimed = [r.describe() for r in self.listener.unclaimed]
        finally:
            report.seconds = loop.time() - begin
            if started_here:
                await self.close()
        return report
