"""`gateway conformance`: play the scenario suites against an ISO 18626 endpoint.

gateway/cli.py calls `register(subparsers)`. Exit codes: 0 every scenario run passed, 1 something
failed, 2 the run could not start (bad scenario file, bad arguments, target agency unknown).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from .report import PASS, Report, RunResult
from .runner import Runner, RunnerConfig, RunnerError
from .scenario import SCENARIOS_DIR, SUITES, ScenarioError, load_scenarios

FORMATS = ("junit", "json")


def _agency(text: str) -> str:
    kind, sep, value = text.partition(":")
    if not sep or not kind or not value:
        raise argparse.ArgumentTypeError(f"agency must look like TYPE:VALUE, got {text!r}")
    return text


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "conformance",
        help="play conformance scenarios against an ISO 18626 endpoint",
        description="Play declarative scenarios (fixtures/conformance/<suite>/*.toml; format in "
                    "fixtures/conformance/README.md) against --target and judge every confirmation and "
                    "follow-up message, each checked against the schema of its version. Role supplier: the "
                    "target lends and the runner requests; a mock partner answers by the MOCK: script of each "
                    "request, a gateway's lending side when the runner acts for its staff (--api, --lender "
                    "staff). Role requester: the target borrows; the runner supplies, creating borrowing "
                    "requests through the target's staff API (--api).",
    )
    parser.add_argument("--target", required=True, help="the target's ISO 18626 endpoint URL")
    parser.add_argument("--role", required=True, choices=("supplier", "requester"), help="the target's role")
    parser.add_argument("--version", choices=("2017", "2021"),
                        help="run only this version (default: every version a scenario lists)")
    parser.add_argument("--suite", action="append", metavar="DIR",
                        help="a scenario folder or file (repeatable); a bare suite name is looked up under "
                             f"fixtures/conformance ({', '.join(SUITES)}); default: all of them")
    parser.add_argument("-k", dest="pattern", metavar="TEXT",
                        help="only scenarios whose id (suite/file) or name contains TEXT")
    parser.add_argument("--report", metavar="FILE", help="write a machine-readable report here")
    parser.add_argument("--format", choices=FORMATS,
                        help="report format (default: json for *.json, else junit)")
    parser.add_argument("--agency", type=_agency, default="ISIL:CONFORMANCE",
                        help="the agency the runner plays (default ISIL:CONFORMANCE)")
    parser.add_argument("--target-agency", type=_agency,
                        help="the target's agency (default: asked from the target's /healthz)")
    parser.add_argument("--listen", default="127.0.0.1:0", metavar="HOST:PORT",
                        help="where the runner's own ISO 18626 listener binds (default 127.0.0.1:0)")
    parser.add_argument("--public-url", metavar="URL",
                        help="the listener's URL as the target should see it (default http://HOST:PORT/iso18626)")
    parser.add_argument("--api", metavar="URL",
                        help="the target's staff API root (role requester; role supplier with --lender staff)")
    parser.add_argument("--lender", choices=("mock", "staff"),
                        help="role supplier: the target is a mock partner that follows the MOCK: scripts, or a "
                             "lender whose staff act through --api (the runner does it: staff steps); runs the "
                             "scenarios for that kind of lender and those for any (default: staff when --api "
                             "is given, else mock)")
    parser.add_argument("--api-key", metavar="KEY", help="staff API key, sent as Authorization: Bearer KEY")
    parser.add_argument("--jobs", type=int, default=4, help="scenario runs at once (default 4)")
    parser.add_argument("--failures-only", action="store_true", help="print only failing rows in the table")
    parser.add_argument("--list", action="store_true", help="list the scenario runs and exit")
    parser.set_defaults(func=run)
    return parser


def _select(args: argparse.Namespace):
    scenarios = load_scenarios(args.suite or [SCENARIOS_DIR])
    if args.pattern:
        needle = args.pattern.casefold()
        scenarios = [s for s in scenarios if needle in s.id.casefold() or needle in s.name.casefold()]
    return scenarios


def _progress(result: RunResult) -> None:
    failed = [s for s in result.steps if s.verdict not in (PASS, "SKIP", "WARN")]
    mark = "PASS" if result.verdict == PASS else "FAIL"
    print(f"{mark} {result.title}  {len(result.steps)} steps, {result.seconds:.2f}s"
          + (f"  <- step {failed[0].number}" if failed else ""), file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    try:
        scenarios = _select(args)
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    config = RunnerConfig(
        target=args.target, role=args.role, version=args.version, agency=args.agency,
        target_agency=args.target_agency, listen=args.listen, public_url=args.public_url,
        api=args.api, api_key=args.api_key, jobs=args.jobs, lender=args.lender,
    )
    if args.role == "supplier" and args.lender == "staff" and not args.api and not args.list:
        print("error: --lender staff acts for the target's staff: give --api (and --api-key)", file=sys.stderr)
        return 2
    try:
        runner = Runner(config, progress=None if args.list else _progress)
    except RunnerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    planned = runner.plan(scenarios)
    if args.list:
        for scenario, version in planned:
            print(f"{scenario.id} [{version}]  {scenario.name}")
        return 0
    if not planned:
        print(f"error: no scenario runs for role {args.role}"
              + (f" and version {args.version}" if args.version else ""), file=sys.stderr)
        return 2
    async def go() -> Report:
        url = await runner.start()
        print(f"conformance runner {args.agency} listening on {url} (target role: {args.role})",
              file=sys.stderr, flush=True)
        try:
            return await runner.run(scenarios)
        finally:
            await runner.close()

    try:
        report = asyncio.run(go())
    except RunnerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.table(failures_only=args.failures_only))
    if args.report:
        write_report(report, args.report, args.format)
    return 0 if report.ok else 1


def write_report(report: Report, path: str, fmt: str | None = None) -> Path:
    target = Path(path)
    fmt = fmt or ("json" if target.suffix.lower() == ".json" else "junit")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(report.render(fmt))
    return target


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (python -m gateway.conformance.cli ...) until gateway/cli.py registers us."""
    parser = argparse.ArgumentParser(prog="gateway")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
