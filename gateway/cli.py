"""The `gateway` command: serve, validate, xsd (more subcommands arrive with their issues)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .messages import MessageError, Version, decode
from .messages.xsdgen import SCHEMA_FILES, generate

VERSIONS = {"2017": Version.V2017, "2021": Version.V2021}


def _read(name: str) -> bytes:
    return sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()


def cmd_validate(args: argparse.Namespace) -> int:
    forced = VERSIONS[args.version] if args.version else None
    all_valid = True
    for name in args.files:
        try:
            inbound = decode(_read(name), version=forced)
        except OSError as exc:
            print(f"{name}: ERROR BadlyFormedMessage: cannot read file: {exc.strerror}")
            all_valid = False
        except MessageError as exc:
            print(f"{name}: ERROR {exc.first.error_type.value}: {exc.first.error_value}")
            all_valid = False
        else:
            print(f"{name}: OK {inbound.kind} {inbound.version.label}")
    return 0 if all_valid else 1


def cmd_xsd(args: argparse.Namespace) -> int:
    """Write (or, with --check, compare) the schemas generated from the message model."""
    folder = Path(args.write)
    stale = []
    for version, filename in SCHEMA_FILES.items():
        path, data = folder / filename, generate(version)
        if args.check:
            if not path.is_file() or path.read_bytes() != data:
                stale.append(str(path))
        else:
            folder.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            print(f"wrote {path}")
    for path in stale:
        print(f"{path}: out of date; run `make xsd`")
    return 1 if stale else 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .app import run
    from .config import load_config

    run(load_config(args.config))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="ISO 18626 interlibrary-loan gateway")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gateway (embedded defaults without --config)")
    serve.add_argument("--config", help="TOML configuration file")
    serve.set_defaults(func=cmd_serve)

    validate = sub.add_parser("validate", help="validate ISO 18626 messages; '-' reads stdin")
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.add_argument("--version", choices=sorted(VERSIONS), help="force a schema version")
    validate.set_defaults(func=cmd_validate)

    xsd = sub.add_parser("xsd", help="generate the project's XSDs from the message model")
    xsd.add_argument("--write", default="xsd", metavar="DIR")
    xsd.add_argument("--check", action="store_true", help="only report schemas that are out of date")
    xsd.set_defaults(func=cmd_xsd)

    from .mock.cli import register as register_mock_partner

    register_mock_partner(sub)

    from .demo import register as register_demo

    register_demo(sub)

    from .conformance.cli import register as register_conformance

    register_conformance(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
