"""`gateway mock-partner`: a scripted ISO 18626 supplier; `gateway mock-partner requester`: a scripted requester.

gateway/cli.py calls `register(subparsers)`.
"""

from __future__ import annotations

import argparse
import logging
import sys

from ..messages import Version, model
from .partner import MockConfig, all_scenarios, is_scenario

VERSIONS = {"2017": Version.V2017, "2021": Version.V2021}


def _agency(text: str) -> model.AgencyId:
    try:
        return model.AgencyId.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _peer(text: str) -> tuple[str, str]:
    agency, sep, url = text.partition("=")
    if not sep or not url:
        raise argparse.ArgumentTypeError(f"--peer wants AGENCY=URL, got {text!r}")
    return str(_agency(agency)), url


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "mock-partner",
        help="run a scripted ISO 18626 partner (supplier; 'requester' for a scripted requester)",
        description="A scripted ISO 18626 supplying agency with in-memory state. Scenario per request: "
                    "MOCK:<SYMBOL>:<SCENARIO> or MOCK:<SCENARIO> in serviceInfo/note, else "
                    "bibliographicInfo/supplierUniqueRecordId, else --scenario. Scenarios: "
                    + ", ".join(all_scenarios()) + " (RETRY:X may be followed by _<SCENARIO>).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8627)
    parser.add_argument("--agency", action="append", type=_agency, metavar="TYPE:VALUE",
                        help="an agency this process plays (repeatable; default ISIL:MOCK1)")
    parser.add_argument("--scenario", default="UNFILLED", help="scenario when nothing in the request picks one")
    parser.add_argument("--version", choices=sorted(VERSIONS),
                        help="the version it writes (default: that of the incoming message)")
    parser.add_argument("--peer", action="append", type=_peer, default=[], metavar="AGENCY=URL",
                        help="where to send supplyingAgencyMessages for a requesting agency (repeatable)")
    parser.add_argument("--reply-url", help="where to send them for requesters without a --peer")
    parser.add_argument("--delay", type=float, default=0.1, help="seconds before each message it sends (0.1)")
    parser.add_argument("--slow-delay", type=float, default=5.0, help="the same for scenario SLOW (5)")
    parser.set_defaults(func=run, mode=None)

    modes = parser.add_subparsers(dest="mode", metavar="{requester}")
    req = modes.add_parser("requester", help="play a scripted requesting agency against --target")
    req.add_argument("--target", required=True, help="the supplier's ISO 18626 endpoint URL")
    req.add_argument("--agency", dest="req_agency", type=_agency, default=_agency("ISIL:MOCKREQ"), metavar="TYPE:VALUE")
    req.add_argument("--supplier", required=True, type=_agency, metavar="TYPE:VALUE")
    req.add_argument("--script", required=True, help="steps, TOML or JSON (see gateway/mock/requester.py)")
    req.add_argument("--host", dest="req_host", default="127.0.0.1", help="listener host")
    req.add_argument("--port", dest="req_port", type=int, default=8628, help="listener port (0: any)")
    req.add_argument("--public-url", help="the listener's URL as the supplier should see it")
    req.add_argument("--version", dest="req_version", choices=sorted(VERSIONS), default="2017")
    req.add_argument("--request-id", help="requestingAgencyRequestId (default: a fresh one)")
    return parser


def run(args: argparse.Namespace) -> int:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.mode == "requester":
        from .requester import RequesterConfig
        from .requester import run as run_requester

        return run_requester(RequesterConfig(
            target=args.target, agency=args.req_agency, supplier=args.supplier,
            version=VERSIONS[args.req_version], host=args.req_host, port=args.req_port,
            public_url=args.public_url, request_id=args.request_id,
        ), args.script)

    from .server import run as run_server

    if not is_scenario(args.scenario.upper()):
        print(f"error: unknown scenario {args.scenario!r}; one of {', '.join(all_scenarios())}", file=sys.stderr)
        return 2
    config = MockConfig(
        agencies=args.agency or [model.AgencyId.parse("ISIL:MOCK1")],
        scenario=args.scenario.upper(),
        version=VERSIONS[args.version] if args.version else None,
        peers=dict(args.peer),
        reply_url=args.reply_url,
        delay=args.delay,
        slow_delay=args.slow_delay,
    )
    run_server(config, args.host, args.port)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (python -m gateway.mock.cli ...) until gateway/cli.py registers us."""
    parser = argparse.ArgumentParser(prog="gateway")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
