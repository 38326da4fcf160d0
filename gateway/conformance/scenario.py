"""Conformance scenarios: load TOML files, check them strictly, expand fixture selections.

A scenario is a small declarative file (format: fixtures/conformance/README.md). Loading checks
every key and every closed-code value up front, so a typo fails with the file and step number
before anything is sent. `Scenario.plan(version)` gives the concrete steps of one run: steps
filtered by version, fixture globs and manifest selections expanded to one step per file.
"""

from __future__ import annotations

import base64
import csv
import fnmatch
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from ..messages.codes import (
    Action,
    ErrorType,
    MessageStatus,
    ReasonForMessage,
    RequestSubType,
    RequestType,
    ServiceType,
    Status,
    Version,
    YesNo,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES_DIR = REPO_ROOT / "fixtures"
SCENARIOS_DIR = FIXTURES_DIR / "conformance"
SUITES = ("protocol", "errors", "lifecycles", "robustness")

VERSION_LABELS = {"2017": Version.V2017, "2021": Version.V2021}
ANY = "any"
ROLES = ("supplier", "requester", ANY)
# Role supplier: what kind of lender a scenario needs. "mock": one that follows the MOCK:<SCENARIO>
# script of each request (the mock partner); "staff": one whose staff answer through the lending
# staff API (`staff` and `check` steps; the gateway's lending side); "any": any supplier.
LENDERS = ("mock", "staff", ANY)
# `staff = "..."` steps: the actions of POST /api/v1/lending-requests/{id}/actions/{name}, plus
# "message" (POST .../messages, a general message to the borrower) and "note" (POST .../notes).
STAFF_ACTIONS = (
    "expect-to-supply", "will-supply", "conditional", "retry-possible", "unfilled", "ship", "copy-completed",
    "answer-cancel", "answer-renew", "mark-overdue", "recall", "check-in", "complete-without-return",
    "acknowledge", "mark-messages-read", "message", "note",
)

# Message kinds a step may send as a template, and the confirmation each one gets.
CONFIRMATION_OF = {
    "request": "requestConfirmation",
    "requestingAgencyMessage": "requestingAgencyMessageConfirmation",
    "supplyingAgencyMessage": "supplyingAgencyMessageConfirmation",
}
SEND_KINDS = (*CONFIRMATION_OF, "fixture", "raw", "again")
EXPECT_KINDS = ("request", "requestingAgencyMessage", "supplyingAgencyMessage", "any", "nothing")

OPS = ("send", "expect", "check", "staff", "respond", "sleep")   # a step's kind (or trigger = "api")
COMMON_KEYS = {"name", "versions"}
TRANSPORT_KEYS = {"content_type", "method", "confirm", "within"}
SEND_KEYS: dict[str, set[str]] = {
    "request": {"title", "author", "service_type", "request_type", "request_sub_type", "note", "mock", "record_id",
                "request_id", "previous_request_id", "reply_address", "supplier", "requester"},
    "requestingAgencyMessage": {"action", "note", "request_id", "supplier_request_id", "supplier", "requester"},
    "supplyingAgencyMessage": {"status", "reason", "answer", "note", "due_date", "reason_unfilled", "reason_retry",
                               "offered_costs", "delivery", "request_id", "supplier_request_id", "supplier",
                               "requester"},
    "fixture": {"fixture", "select", "exclude", "adapt", "mock"},
    "raw": {"raw", "raw_base64"},
    "again": set(),
}
CONFIRM_KEYS = {"http_status", "message_status", "error_type", "error_value", "action", "reason", "kind",
                "identical", "echo"}
EXPECT_KEYS = {"status", "action", "reason", "answer", "request_type", "service_type", "error_type", "has",
               "within", "skip_others"}
API_KEYS = {"action", "title", "requester", "pickup_location", "request_note", "partners", "body",
            "http_status", "expect_json"}
CHECK_KEYS = {"expect_json", "within"}
STAFF_KEYS = {"body", "http_status", "expect_json", "request_id", "within"}
RESPOND_KEYS = {"error_type", "error_value", "count"}
SELECT_KEYS = {"kind", "version", "expected", "path"}
SCENARIO_KEYS = {"name", "description", "role", "lender", "versions", "mock", "continue_on_failure", "tags",
                 "steps"}

# Keys whose values come from a closed ISO 18626 list.
CODE_KEYS: dict[str, type] = {
    "status": Status,
    "action": Action,
    "reason": ReasonForMessage,
    "answer": YesNo,
    "request_type": RequestType,
    "service_type": ServiceType,
    "request_sub_type": RequestSubType,
    "error_type": ErrorType,
    "message_status": MessageStatus,
}

DEFAULT_CONFIRM_WITHIN = 10.0
DEFAULT_EXPECT_WITHIN = 5.0
DEFAULT_STAFF_WITHIN = 5.0      # how long a staff step looks for the lending request of its request id


class ScenarioError(ValueError):
    """A scenario file that cannot be run as written."""


# --- the fixture manifest ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ManifestRow:
    path: str       # relative to fixtures/
    kind: str       # message kind or "-"
    version: str    # "2017", "2021" or "-"
    expected: str   # "valid" or an errorType


@cache
def manifest(fixtures_dir: Path = FIXTURES_DIR) -> dict[str, ManifestRow]:
    path = fixtures_dir / "MANIFEST.tsv"
    if not path.is_file():
        return {}
    with path.open(encoding="utf-8", newline="") as fh:
        rows = [ManifestRow(r["path"], r["kind"], r["version"], r["expected"])
                for r in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)]
    return {row.path: row for row in rows}


# --- steps and scenarios -------------------------------------------------------------------------

@dataclass(slots=True)
class Step:
    """One concrete step of a run. `op` is send | expect | api | staff | check | respond | sleep."""

    op: str
    what: str                       # message kind, "fixture", "raw", "again", "nothing", API/staff action ...
    spec: dict[str, Any]            # the step's table as written (minus op keys)
    number: str                     # "3", or "3.12" for the 12th file of an expanded fixture step
    label: str
    fixture: ManifestRow | None = None
    fixture_path: Path | None = None

    @property
    def confirm(self) -> dict[str, Any]:
        return self.spec.get("confirm") or {}

    def within(self, default: float) -> float:
        return float(self.spec.get("within", default))


@dataclass(slots=True)
class Scenario:
    path: Path
    suite: str
    name: str
    description: str
    role: str
    versions: tuple[str, ...]       # "2017", "2021", or ("any",)
    mock: str | None
    continue_on_failure: bool
    tags: tuple[str, ...]
    steps: list[dict[str, Any]] = field(default_factory=list)
    lender: str = "mock"            # role supplier: "mock", "staff" or "any" (LENDERS); other roles: "any"

    @property
    def id(self) -> str:
        return f"{self.suite}/{self.path.stem}" if self.suite else self.path.stem

    def runs_for(self, role: str, version: str | None, lender: str | None = None) -> list[str]:
        """The version labels to run this scenario in for a role, a --version and (role supplier)
        the kind of lender the target is (None: any kind)."""
        if self.role not in (role, ANY):
            return []
        if role == "supplier" and lender is not None and self.lender not in (lender, ANY):
            return []
        if self.versions == (ANY,):
            return [ANY]
        return [v for v in self.versions if version is None or v == version]

    def plan(self, version: str, fixtures_dir: Path = FIXTURES_DIR) -> list[Step]:
        """Concrete steps for one run (version "2017", "2021" or "any")."""
        planned: list[Step] = []
        for number, raw in enumerate(self.steps, 1):
            step_versions = raw.get("versions")
            if step_versions and version != ANY and version not in step_versions:
                continue
            planned.extend(_concrete(self, raw, str(number), version, fixtures_dir))
        return planned


def _op_of(raw: dict[str, Any]) -> tuple[str, str]:
    for op in OPS:
        if op in raw:
            return op, str(raw[op])
    if raw.get("trigger") == "api":
        return "api", str(raw.get("action", "create"))
    raise AssertionError("checked at load time")


def _concrete(scenario: Scenario, raw: dict[str, Any], number: str, version: str, fixtures_dir: Path) -> list[Step]:
    op, what = _op_of(raw)
    spec = {k: v for k, v in raw.items() if k not in (*OPS, "trigger")}
    if op == "send" and what == "fixture":
        paths = select_fixtures(spec, version, fixtures_dir)
        if not paths:
            raise ScenarioError(f"{scenario.path}: step {number}: no fixture matches for version {version}")
        rows = manifest(fixtures_dir)
        return [
            Step(op, what, spec, f"{number}.{i}" if len(paths) > 1 else number,
                 spec.get("name") or f"send fixture {rel}", rows.get(rel), fixtures_dir / rel)
            for i, rel in enumerate(paths, 1)
        ]
    return [Step(op, what, spec, number, spec.get("name") or _label(op, what, spec))]


SHORT = {"supplyingAgencyMessage": "SAM", "requestingAgencyMessage": "RAM"}


def _label(op: str, what: str, spec: dict[str, Any]) -> str:
    what = SHORT.get(what, what)
    detail = [str(spec[k]) for k in ("status", "action", "reason", "answer", "service_type", "request_type")
              if k in spec and not (op == "api" and k == "action")]
    if op == "send":
        return " ".join(["send", what, *detail])
    if op == "expect":
        return " ".join(["expect", what, *detail])
    if op == "api":
        return f"api {what}"
    if op == "staff":
        answer = (spec.get("body") or {}).get("answer") if isinstance(spec.get("body"), dict) else None
        return f"staff {what}" + (f" {answer}" if answer else "")
    if op == "check":
        return "check api " + ", ".join(f"{k}={v}" for k, v in (spec.get("expect_json") or {}).items())
    if op == "respond":
        return f"listener answers {what}" + (f" {spec['error_type']}" if "error_type" in spec else "")
    return f"sleep {what}s"


def select_fixtures(spec: dict[str, Any], version: str, fixtures_dir: Path = FIXTURES_DIR) -> list[str]:
    """Fixture paths (relative to fixtures/) of a fixture step, in manifest order, for one run version.

    `fixture` is a path or glob; `select` filters manifest rows by kind/version/expected/path glob.
    Rows whose manifest version is another version are left out (version-independent rows, `-`, stay).
    """
    rows = manifest(fixtures_dir)
    pattern = spec.get("fixture")
    chosen: list[str]
    if pattern is not None:
        if any(ch in pattern for ch in "*?["):
            chosen = sorted(str(p.relative_to(fixtures_dir)) for p in fixtures_dir.glob(pattern) if p.is_file())
        else:
            chosen = [pattern]
    else:
        chosen = list(rows)
    select = spec.get("select") or {}
    excluded = [e for e in spec.get("exclude", [])]

    def keep(rel: str) -> bool:
        row = rows.get(rel)
        if any(fnmatch.fnmatch(rel, e) for e in excluded):
            return False
        if row is not None and version != ANY and row.version not in (version, "-"):
            return pattern is not None and not any(ch in pattern for ch in "*?[")  # named explicitly: keep
        for key in ("kind", "version", "expected"):
            wanted = select.get(key)
            if wanted is None:
                continue
            wanted = [wanted] if isinstance(wanted, str) else wanted
            if row is None or getattr(row, key) not in wanted:
                return False
        if "path" in select and not fnmatch.fnmatch(rel, select["path"]):
            return False
        return True

    return [rel for rel in chosen if keep(rel)]


# --- loading and checking -------------------------------------------------------------------------

def load_scenario(path: str | Path, suite: str | None = None) -> Scenario:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from None
    return check_scenario(data, path, suite if suite is not None else path.parent.name)


def _fail(path: Path, where: str, text: str) -> ScenarioError:
    return ScenarioError(f"{path}: {where}: {text}" if where else f"{path}: {text}")


def check_scenario(data: dict[str, Any], path: Path, suite: str = "") -> Scenario:
    unknown = set(data) - SCENARIO_KEYS
    if unknown:
        raise _fail(path, "", f"unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(SCENARIO_KEYS))}")
    role = data.get("role", "supplier")
    if role not in ROLES:
        raise _fail(path, "role", f"must be one of {', '.join(ROLES)}, got {role!r}")
    versions = data.get("versions", ["2017", "2021"])
    if isinstance(versions, str):
        versions = [versions]
    if versions == [ANY]:
        pass
    elif not versions or any(v not in VERSION_LABELS for v in versions):
        raise _fail(path, "versions", f'a list of "2017"/"2021", or ["any"]; got {versions!r}')
    steps = data.get("steps")
    if not isinstance(steps, list) or not steps or not all(isinstance(s, dict) for s in steps):
        raise _fail(path, "", "needs at least one [[steps]] table")
    mock = data.get("mock")
    if mock is not None and not isinstance(mock, str):
        raise _fail(path, "mock", "must be a mock scenario name (a string)")
    lender = _check_lender(path, data, role, steps)
    scenario = Scenario(
        path=path, suite=suite, name=str(data.get("name", path.stem)), description=str(data.get("description", "")),
        role=role, versions=tuple(versions), mock=mock,
        continue_on_failure=bool(data.get("continue_on_failure", False)), tags=tuple(data.get("tags", [])),
        steps=steps, lender=lender,
    )
    run_versions = set(VERSION_LABELS) if versions == [ANY] else set(versions)
    for number, step in enumerate(steps, 1):
        _check_step(path, f"step {number}", step, run_versions, role)
    return scenario


def _check_lender(path: Path, data: dict[str, Any], role: str, steps: list[dict[str, Any]]) -> str:
    """The scenario's lender kind. Role supplier: "staff" when it has staff or check steps (they
    need the lending staff API), else "mock" unless given; other roles: "any"."""
    lender = data.get("lender")
    if lender is not None and lender not in LENDERS:
        raise _fail(path, "lender", f"must be one of {', '.join(LENDERS)}, got {lender!r}")
    if role != "supplier":
        if lender not in (None, ANY):
            raise _fail(path, "lender", f'only a role "supplier" scenario names its lender; this one\'s role is {role}')
        return ANY
    driven = [n for n, s in enumerate(steps, 1) if "staff" in s or "check" in s]
    if driven:
        if lender not in (None, "staff"):
            raise _fail(path, "lender", f'step {driven[0]} drives the lending staff API: the lender must be "staff", '
                        f"got {lender!r}")
        return "staff"
    return lender or "mock"


def _check_keys(path: Path, where: str, table: Any, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise _fail(path, where, f"must be a table, got {table!r}")
    unknown = set(table) - allowed
    if unknown:
        raise _fail(path, where, f"unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(allowed))}")
    return table


def _check_codes(path: Path, where: str, table: dict[str, Any], versions: set[str]) -> None:
    for key, enum in CODE_KEYS.items():
        if key not in table:
            continue
        values = table[key] if isinstance(table[key], list) else [table[key]]
        for value in values:
            if not isinstance(value, str) or value not in enum._value2member_map_:  # type: ignore[attr-defined]
                raise _fail(path, f"{where}: {key}", f"{value!r} is not a {enum.__name__} value "
                            f"({', '.join(m.value for m in enum)})")
            only = enum.only_2021() if hasattr(enum, "only_2021") else frozenset()  # type: ignore[attr-defined]
            if value in only and "2017" in versions:
                raise _fail(path, f"{where}: {key}", f"{value} exists only in ISO 18626:2021; "
                            'give the step versions = ["2021"]')


def _number(path: Path, where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise _fail(path, where, f"must be a non-negative number of seconds, got {value!r}")
    return float(value)


def _check_step(path: Path, where: str, step: dict[str, Any], scenario_versions: set[str], role: str) -> None:
    ops = [k for k in (*OPS, "trigger") if k in step]
    if len(ops) != 1:
        raise _fail(path, where, "needs exactly one of send, expect, trigger, staff, check, respond, sleep; "
                    f"got {', '.join(ops) or 'none'}")
    op = ops[0]
    versions = scenario_versions
    if "versions" in step:
        sv = step["versions"]
        if not isinstance(sv, list) or any(v not in VERSION_LABELS for v in sv):
            raise _fail(path, f"{where}: versions", f'a list of "2017"/"2021", got {sv!r}')
        versions = set(sv) & scenario_versions if scenario_versions else set(sv)
    if "within" in step:
        _number(path, f"{where}: within", step["within"])
    if op == "send":
        kind = step["send"]
        if kind not in SEND_KINDS:
            raise _fail(path, f"{where}: send", f"one of {', '.join(SEND_KINDS)}; got {kind!r}")
        _check_keys(path, where, step, COMMON_KEYS | TRANSPORT_KEYS | SEND_KEYS[kind] | {"send"})
        _check_codes(path, where, step, versions)
        if kind == "requestingAgencyMessage" and "action" not in step:
            raise _fail(path, where, "a requestingAgencyMessage needs an action")
        if kind == "supplyingAgencyMessage" and "status" not in step:
            raise _fail(path, where, "a supplyingAgencyMessage needs a status")
        if kind == "fixture":
            if "fixture" not in step and "select" not in step:
                raise _fail(path, where, "a fixture step needs fixture (a path or glob under fixtures/) or select")
            _check_keys(path, f"{where}: select", step.get("select", {}), SELECT_KEYS)
            if "fixture" in step and not any(ch in step["fixture"] for ch in "*?[") \
                    and not (FIXTURES_DIR / step["fixture"]).is_file():
                raise _fail(path, f"{where}: fixture", f"no file fixtures/{step['fixture']}")
        if kind == "raw":
            if ("raw" in step) == ("raw_base64" in step):
                raise _fail(path, where, "a raw step needs exactly one of raw, raw_base64")
            if "raw_base64" in step:
                try:
                    base64.b64decode(step["raw_base64"], validate=True)
                except ValueError:
                    raise _fail(path, f"{where}: raw_base64", "is not base64") from None
        if "method" in step and step["method"] not in ("POST", "GET", "PUT", "DELETE", "PATCH"):
            raise _fail(path, f"{where}: method", f"an HTTP method, got {step['method']!r}")
        if "confirm" in step:
            confirm = _check_keys(path, f"{where}: confirm", step["confirm"], CONFIRM_KEYS)
            _check_codes(path, f"{where}: confirm", confirm, versions)
            statuses = confirm.get("http_status", 200)
            statuses = statuses if isinstance(statuses, list) else [statuses]
            if not statuses or any(not isinstance(s, int) or not 100 <= s <= 599 for s in statuses):
                raise _fail(path, f"{where}: confirm: http_status", f"an HTTP status or a list of them, got {statuses!r}")
            if "kind" in confirm and confirm["kind"] not in CONFIRMATION_OF.values():
                raise _fail(path, f"{where}: confirm: kind", f"one of {', '.join(CONFIRMATION_OF.values())}")
    elif op == "expect":
        kind = step["expect"]
        if kind not in EXPECT_KINDS:
            raise _fail(path, f"{where}: expect", f"one of {', '.join(EXPECT_KINDS)}; got {kind!r}")
        _check_keys(path, where, step, COMMON_KEYS | EXPECT_KEYS | {"expect"})
        _check_codes(path, where, step, versions)
        if "has" in step:
            has = _check_keys(path, f"{where}: has", step["has"], set(step["has"]) if isinstance(step["has"], dict) else set())
            for key, value in has.items():
                if not isinstance(value, str):
                    raise _fail(path, f"{where}: has: {key}", 'a string: the text, "*" (present) or "!" (absent)')
    elif op == "trigger":
        if step["trigger"] != "api":
            raise _fail(path, f"{where}: trigger", f'only "api" is known, got {step["trigger"]!r}')
        if role == "supplier":
            raise _fail(path, where, "trigger = \"api\" drives a requester's staff API; this scenario's role is supplier")
        _check_keys(path, where, step, COMMON_KEYS | API_KEYS | {"trigger"})
        for key in ("body", "expect_json"):
            if key in step and not isinstance(step[key], dict):
                raise _fail(path, f"{where}: {key}", "must be a table")
    elif op == "staff":
        action = step["staff"]
        if role != "supplier":
            raise _fail(path, where, f"staff = ... drives a lender's staff API; this scenario's role is {role}")
        if action not in STAFF_ACTIONS:
            raise _fail(path, f"{where}: staff", f"one of {', '.join(STAFF_ACTIONS)}; got {action!r}")
        _check_keys(path, where, step, COMMON_KEYS | STAFF_KEYS | {"staff"})
        for key in ("body", "expect_json"):
            if key in step and not isinstance(step[key], dict):
                raise _fail(path, f"{where}: {key}", "must be a table")
        if action in ("message", "note") and not isinstance((step.get("body") or {}).get("text"), str):
            raise _fail(path, f"{where}: body", f'staff = "{action}" needs body = {{ text = "..." }}')
        if action in ("answer-cancel", "answer-renew") and (step.get("body") or {}).get("answer") not in ("Y", "N"):
            raise _fail(path, f"{where}: body", f'staff = "{action}" needs body.answer "Y" or "N"')
        if "http_status" in step:
            statuses = step["http_status"] if isinstance(step["http_status"], list) else [step["http_status"]]
            if not statuses or any(isinstance(s, bool) or not isinstance(s, int) or not 100 <= s <= 599
                                   for s in statuses):
                raise _fail(path, f"{where}: http_status",
                            f"an HTTP status or a list of them, got {step['http_status']!r}")
    elif op == "check":
        if step["check"] != "api":
            raise _fail(path, f"{where}: check", f'only "api" is known, got {step["check"]!r}')
        # role supplier: the lending request of request_id (default the run's); else the borrowing request
        lending = {"request_id"} if role == "supplier" else set()
        _check_keys(path, where, step, COMMON_KEYS | CHECK_KEYS | lending | {"check"})
        if not isinstance(step.get("expect_json"), dict) or not step["expect_json"]:
            raise _fail(path, f"{where}: expect_json", "a table of dotted JSON paths and expected values")
    elif op == "respond":
        value = step["respond"]
        if value not in ("OK", "ERROR") and not (isinstance(value, int) and 100 <= value <= 599):
            raise _fail(path, f"{where}: respond", f'"OK", "ERROR" or an HTTP status; got {value!r}')
        _check_keys(path, where, step, COMMON_KEYS | RESPOND_KEYS | {"respond"})
        _check_codes(path, where, step, versions)
        if value == "ERROR" and "error_type" not in step:
            raise _fail(path, where, 'respond = "ERROR" needs an error_type')
        if "count" in step and (not isinstance(step["count"], int) or step["count"] < 0):
            raise _fail(path, f"{where}: count", "a number of messages (0: until the next respond step)")
    else:
        _number(path, f"{where}: sleep", step["sleep"])
        _check_keys(path, where, step, COMMON_KEYS | {"sleep"})


def find_scenarios(paths: list[str | Path] | None = None) -> list[Path]:
    """Scenario files under the given files/folders (default: every suite of fixtures/conformance).

    A relative folder that does not exist is looked up under fixtures/conformance (`--suite lifecycles`).
    """
    found: list[Path] = []
    for entry in paths or [SCENARIOS_DIR]:
        p = Path(entry)
        if not p.exists() and not p.is_absolute() and (SCENARIOS_DIR / p).exists():
            p = SCENARIOS_DIR / p
        if p.is_file():
            found.append(p)
        elif p.is_dir():
            found.extend(sorted(p.rglob("*.toml")))
        else:
            raise ScenarioError(f"{entry}: no such scenario file or folder")
    return found


def load_scenarios(paths: list[str | Path] | None = None) -> list[Scenario]:
    """Every scenario under `paths`; the suite is the folder right under fixtures/conformance."""
    scenarios = []
    for path in find_scenarios(paths):
        try:
            rel = path.resolve().relative_to(SCENARIOS_DIR.resolve())
            suite = rel.parts[0] if len(rel.parts) > 1 else ""
        except ValueError:
            suite = path.parent.name
        scenarios.append(load_scenario(path, suite))
    return scenarios
