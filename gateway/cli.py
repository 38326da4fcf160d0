"""The `gateway` command: serve, validate, xsd, user (more subcommands arrive with their issues)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .messages import MessageError, Version, decode
from .messages.xsdgen import SCHEMA_FILES, generate

if TYPE_CHECKING:
    from .config import Config
    from .service.accounts import Account

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
    import os

    from .config import load_config
    from .workers import Supervisor, announce, parent_gone, refusal, worker_command

    if not logging.getLogger().handlers:
        # The gateway's own notices (timer leadership, delivery retries) on stderr, naming the
        # worker when there are several; the per-request access log stays off, as it was.
        who = f"worker {args.worker} " if args.worker else ""
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format=f"%(asctime)s {who}%(name)s %(levelname)s %(message)s")
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    config = load_config(args.config)
    problem = refusal(config, args.workers)
    if problem:
        print(f"gateway serve: {problem}", file=sys.stderr)
        return 2
    if args.workers > 1:  # the parent serves nothing itself: it only supervises
        announce(config)
        print(f"{args.workers} worker processes", flush=True)
        return Supervisor(lambda number: worker_command(args.config, number), args.workers).run()
    from .app import run

    if args.worker:  # one of several processes, started by the supervisor below
        parent = os.getppid()
        run(config, worker=True, until=lambda: parent_gone(parent))
        return 0
    run(config)
    return 0


def cmd_user(args: argparse.Namespace) -> int:
    """`gateway user add|list|disable`: staff accounts, in the configured database (migrated first)."""
    from .config import load_config
    from .service.accounts import AccountError

    config = load_config(args.config)
    password = _password_from_stdin() if args.action == "add" else ""
    try:
        return asyncio.run(_user_action(args, config, password))
    except AccountError as exc:
        print(f"gateway user {args.action}: {exc}", file=sys.stderr)
        return 2


def _password_from_stdin() -> str:
    """Standard input, less the line end a pipe or a terminal adds."""
    text = sys.stdin.read()
    for end in ("\r\n", "\n"):
        if text.endswith(end):
            return text[:-len(end)]
    return text


async def _user_action(args: argparse.Namespace, config: Config, password: str) -> int:
    from .service.accounts import AccountService, normalise_username
    from .service.writer import Writer
    from .store.db import make_engine, migrate_async

    engine = make_engine(config.database)
    writer = Writer(engine)
    try:
        await migrate_async(engine)
        service = AccountService(writer, config.accounts)
        if args.action == "add":
            account, created = await service.add(args.username, password, args.role,
                                                 args.display_name, actor="cli")
            print(f"{'created' if created else 'updated'} {account.username} ({account.role})")
        elif args.action == "list":
            _print_accounts(await service.accounts())
        elif not await service.disable(args.username, actor="cli"):
            print(f"gateway user disable: no account {args.username!r}", file=sys.stderr)
            return 1
        else:
            print(f"disabled {normalise_username(args.username)}")
        return 0
    finally:
        await writer.close()
        await engine.dispose()


def _print_accounts(accounts: list[Account]) -> None:
    rows = [("USERNAME", "DISPLAY NAME", "ROLE", "STATUS", "LAST SIGN-IN")]
    rows += [(a.username, a.display_name, a.role, "disabled" if a.disabled else "active",
              a.last_sign_in_at.isoformat(timespec="seconds") if a.last_sign_in_at else "never") for a in accounts]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join([*(value.ljust(width) for value, width in zip(row, widths)), row[-1]]))


class _RefusePassword(argparse.Action):
    """`--password` is refused without repeating its value (a command line is seen by others)."""

    def __call__(self, parser, namespace, values, option_string=None):
        parser.exit(2, "gateway user add: the password is read from standard input (--password-stdin), "
                       "never from the command line\n")


def _add_user_parser(sub: argparse._SubParsersAction) -> None:
    from .service.accounts import ROLES

    user = sub.add_parser("user", help="staff accounts for the staff pages: add, list, disable")
    actions = user.add_subparsers(dest="action", required=True)
    # No abbreviations: `--password SECRET` must not be taken for --password-stdin.
    add = actions.add_parser("add", help="create or update an account; the password is read from standard input",
                             allow_abbrev=False)
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=ROLES, help="viewer has the API's read-only permissions")
    add.add_argument("--password-stdin", action="store_true", required=True,
                     help="read the password from standard input (never from the command line)")
    add.add_argument("--password", action=_RefusePassword, help=argparse.SUPPRESS)
    add.add_argument("--display-name", help="shown on the pages (default: the username; kept on update)")
    actions.add_parser("list", help="username, display name, role, status, last sign-in")
    disable = actions.add_parser("disable", help="the account can no longer sign in")
    disable.add_argument("username")
    for parser in actions.choices.values():
        parser.add_argument("--config", help="TOML configuration file (names the database)")
    user.set_defaults(func=cmd_user)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="ISO 18626 interlibrary-loan gateway")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gateway (embedded defaults without --config)")
    serve.add_argument("--config", help="TOML configuration file")
    serve.add_argument("--workers", type=int, default=1, metavar="N",
                       help="run N gateway processes on one port, restarted if they die (PostgreSQL only)")
    serve.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)  # set by --workers for each
    serve.set_defaults(func=cmd_serve)

    validate = sub.add_parser("validate", help="validate ISO 18626 messages; '-' reads stdin")
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.add_argument("--version", choices=sorted(VERSIONS), help="force a schema version")
    validate.set_defaults(func=cmd_validate)

    xsd = sub.add_parser("xsd", help="generate the project's XSDs from the message model")
    xsd.add_argument("--write", default="xsd", metavar="DIR")
    xsd.add_argument("--check", action="store_true", help="only report schemas that are out of date")
    xsd.set_defaults(func=cmd_xsd)

    _add_user_parser(sub)

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
