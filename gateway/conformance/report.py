"""Results of a conformance run and their three renderings: a table, JUnit XML, JSON.

One `RunResult` per scenario and version (a JUnit test case); one `StepResult` per step (a row of
the table). Verdicts: PASS, FAIL, SKIP (not run after an earlier failure), WARN (worth a look,
does not fail the run).
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from lxml import etree

PASS, FAIL, SKIP, WARN = "PASS", "FAIL", "SKIP", "WARN"


@dataclass(slots=True)
class StepResult:
    number: str
    label: str
    expected: str
    got: str
    verdict: str
    detail: str = ""
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.number, "label": self.label, "expected": self.expected, "got": self.got,
                "verdict": self.verdict, "detail": self.detail, "seconds": round(self.seconds, 4)}


@dataclass(slots=True)
class RunResult:
    scenario_id: str        # suite/file-stem
    name: str
    suite: str
    path: str
    version: str            # "2017", "2021" or "any"
    description: str = ""
    steps: list[StepResult] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None  # the run could not be carried out at all (scenario error, no listener...)

    @property
    def verdict(self) -> str:
        if self.error or any(s.verdict == FAIL for s in self.steps):
            return FAIL
        return PASS

    @property
    def title(self) -> str:
        return f"{self.scenario_id} [{self.version}]"

    def failures(self) -> list[StepResult]:
        return [s for s in self.steps if s.verdict == FAIL]

    def as_dict(self) -> dict[str, Any]:
        return {"scenario": self.scenario_id, "name": self.name, "suite": self.suite, "path": self.path,
                "version": self.version, "description": self.description, "verdict": self.verdict,
                "error": self.error, "seconds": round(self.seconds, 4), "steps": [s.as_dict() for s in self.steps]}


@dataclass(slots=True)
class Report:
    target: str
    role: str
    agency: str
    target_agency: str
    runs: list[RunResult] = field(default_factory=list)
    started: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    seconds: float = 0.0
    unclaimed: list[str] = field(default_factory=list)   # messages the listener could not place

    @property
    def failed(self) -> list[RunResult]:
        return [r for r in self.runs if r.verdict == FAIL]

    @property
    def ok(self) -> bool:
        return bool(self.runs) and not self.failed

    def counts(self) -> dict[str, int]:
        steps = [s for r in self.runs for s in r.steps]
        return {
            "runs": len(self.runs), "runs_passed": len(self.runs) - len(self.failed), "runs_failed": len(self.failed),
            "steps": len(steps), **{v.lower(): sum(s.verdict == v for s in steps) for v in (PASS, FAIL, SKIP, WARN)},
        }

    def summary(self) -> str:
        c = self.counts()
        suites: dict[str, list[int]] = {}
        for run in self.runs:
            tally = suites.setdefault(run.suite or "-", [0, 0])
            tally[0 if run.verdict == PASS else 1] += 1
        per_suite = ", ".join(f"{s} {p}/{p + f}" for s, (p, f) in suites.items())
        verdict = "PASSED" if self.ok else "FAILED"
        return (f"{verdict}: {c['runs_passed']}/{c['runs']} scenario runs passed ({per_suite}); steps: "
                f"{c['pass']} pass, {c['fail']} fail, {c['skip']} skipped, {c['warn']} warnings; {self.seconds:.1f}s")

    # --- table ------------------------------------------------------------------------------

    def table(self, *, failures_only: bool = False) -> str:
        """Scenario, step, expected, got, verdict; a failing row is followed by its full story."""
        rows: list[tuple[tuple[str, str, str, str, str], str]] = []
        for run in self.runs:
            if failures_only and run.verdict == PASS:
                continue
            if run.error:
                rows.append(((run.title, "-", "the scenario runs", "scenario error", FAIL), run.error))
            for step in run.steps:
                if failures_only and step.verdict in (PASS, SKIP):
                    continue
                more = ""
                if step.verdict in (FAIL, WARN):
                    more = f"got {step.got}" + (f"; {step.detail}" if step.detail else "")
                rows.append(((run.title, f"{step.number} {step.label}", step.expected, step.got, step.verdict), more))
        if not rows:
            return ("no failures\n\n" if failures_only and self.runs else "") + self.summary()
        head = ("scenario", "step", "expected", "got", "verdict")
        caps = (46, 40, 46, 56, 7)
        widths = [min(cap, max([len(h)] + [len(r[0][i]) for r in rows])) for i, (h, cap) in enumerate(zip(head, caps))]

        def cell(text: str, n: int) -> str:
            text = " ".join(text.split())
            return (text if len(text) <= n else text[: n - 1] + "…").ljust(n)

        lines = ["  ".join(cell(h, n) for h, n in zip(head, widths)).rstrip(), "  ".join("-" * n for n in widths)]
        previous = None
        for row, more in rows:
            shown = (row[0] if row[0] != previous else "",) + row[1:]
            previous = row[0]
            lines.append("  ".join(cell(t, n) for t, n in zip(shown, widths)).rstrip())
            if more:
                lines.append(textwrap.indent(textwrap.fill(" ".join(more.split()), 150), " " * (widths[0] + 4)))
        if self.unclaimed:
            lines.append("")
            lines.append(f"{len(self.unclaimed)} message(s) reached the listener outside any scenario run:")
            lines.extend("  " + u for u in self.unclaimed[:10])
        lines.append("")
        lines.append(self.summary())
        return "\n".join(lines)

    # --- JUnit XML ---------------------------------------------------------------------------

    def junit(self) -> bytes:
        c = self.counts()
        root = etree.Element("testsuites", name="gateway conformance", tests=str(c["runs"]),
                             failures=str(c["runs_failed"]), errors="0", time=f"{self.seconds:.3f}")
        suites: dict[str, list[RunResult]] = {}
        for run in self.runs:
            suites.setdefault(run.suite or "scenarios", []).append(run)
        for suite, runs in suites.items():
            failed = sum(r.verdict == FAIL for r in runs)
            el = etree.SubElement(root, "testsuite", name=f"conformance.{self.role}.{suite}", tests=str(len(runs)),
                                  failures=str(failed), errors="0", skipped="0",
                                  time=f"{sum(r.seconds for r in runs):.3f}",
                                  timestamp=self.started.strftime("%Y-%m-%dT%H:%M:%S"))
            props = etree.SubElement(el, "properties")
            for key, value in (("target", self.target), ("role", self.role), ("agency", self.agency),
                               ("target_agency", self.target_agency)):
                etree.SubElement(props, "property", name=key, value=value)
            for run in runs:
                case = etree.SubElement(el, "testcase", classname=f"conformance.{suite}",
                                        name=f"{run.scenario_id.split('/')[-1]} [{run.version}]",
                                        file=run.path, time=f"{run.seconds:.3f}")
                if run.verdict == FAIL:
                    first = run.failures()[0] if run.failures() else None
                    message = run.error or (f"step {first.number} {first.label}: expected {first.expected}, got {first.got}"
                                            if first else "failed")
                    failure = etree.SubElement(case, "failure", message=message, type="ConformanceFailure")
                    failure.text = "\n".join(
                        f"step {s.number} {s.label}: expected {s.expected}; got {s.got}" + (f" ({s.detail})" if s.detail else "")
                        for s in run.failures()) or message
                out = etree.SubElement(case, "system-out")
                out.text = "\n".join(f"{s.verdict} {s.number} {s.label}: {s.got}" for s in run.steps)
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)

    # --- JSON ---------------------------------------------------------------------------------

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target, "role": self.role, "agency": self.agency, "target_agency": self.target_agency,
            "started": self.started.isoformat(), "seconds": round(self.seconds, 3), "ok": self.ok,
            "counts": self.counts(), "runs": [r.as_dict() for r in self.runs], "unclaimed": self.unclaimed,
        }

    def json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, ensure_ascii=False)

    def render(self, fmt: str) -> bytes:
        if fmt == "junit":
            return self.junit()
        if fmt == "json":
            return (self.json() + "\n").encode("utf-8")
        raise ValueError(f"unknown report format {fmt!r}")
