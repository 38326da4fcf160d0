"""`gateway demo`: the borrowing gateway, the lending gateway and the mock partner play four
lifecycles on loopback; the demo prints every request's history and exits 0 only if all ended as
scripted."""

from __future__ import annotations

import argparse
import io
import re
import subprocess
import sys
from pathlib import Path


from gateway import demo
from gateway.core.lending import AnswerCancel
from gateway.messages.codes import YesNo

ROOT = Path(__file__).resolve().parents[1]


def _sections(text: str) -> dict[str, str]:
    """Output split per lifecycle ("== loan: ..." up to the next "== ")."""
    parts = re.split(r"^== (\w+): ", text, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def _rows(section: str) -> list[tuple[str, str, str, str]]:
    """(actor, event, from, to) of each table row whose status changed."""
    found = []
    for line in section.splitlines():
        m = re.match(r"^\d\d:\d\d:\d\d\.\d{3}\s+(\S+)\s+(\S+)\s+(\S+) → (\S+)\s*$", line)
        if m:
            found.append(m.groups())
    return found


async def test_demo_plays_every_lifecycle_and_prints_the_histories(tmp_path):
    out = io.StringIO()
    assert await demo.run_demo(out, folder=tmp_path, timeout=10) == 0, out.getvalue()
    text = out.getvalue()
    assert "4 of 4 lifecycles ended as scripted" in text
    for name in ("loan", "rota", "conditional", "cancel"):
        assert re.search(rf"^{name}\s+OK$", text, re.M), text
    assert "time" in text and "actor" in text and "event" in text and "from → to" in text
    sections = _sections(text)
    assert set(sections) == {"loan", "rota", "conditional", "cancel"}

    loan = _rows(sections["loan"])
    assert ("ISIL:XX-DEMOLEND", "Loaned", "WILL_SUPPLY", "SHIPPED_PHYSICALLY") in loan
    assert ("staff:demo", "receive", "SHIPPED_PHYSICALLY", "RECEIVED_PHYSICALLY") in loan
    assert ("ISIL:XX-DEMOLEND", "LoanCompleted", "RETURNED_TO_PARTNER", "COMPLETED") in loan
    assert ("staff:lender", "check_in", "RETURN_SHIPPED", "LOAN_COMPLETED") in loan  # the lender's table

    rota = _rows(sections["rota"])
    unfilled = [r for r in rota if r[1] == "Unfilled"]
    assert [r[0] for r in unfilled] == ["ISIL:XX-MOCKA", "ISIL:XX-MOCKB"]
    assert all(r[3] == "REJECTED_BY_PARTNER" for r in unfilled)
    assert ("ISIL:XX-DEMOLEND", "Loaned", "REQUEST_SENT", "SHIPPED_PHYSICALLY") in rota

    conditional = _rows(sections["conditional"])
    assert ("ISIL:XX-MOCKA", "Conditional", "REQUEST_SENT", "CONDITIONAL") in conditional
    assert ("staff:demo", "accept_conditions", "CONDITIONAL", "WILL_SUPPLY") in conditional
    assert ("ISIL:XX-MOCKA", "Loaned", "WILL_SUPPLY", "SHIPPED_PHYSICALLY") in conditional

    cancel = _rows(sections["cancel"])
    assert ("staff:demo", "cancel", "REQUEST_SENT", "WAITING_FOR_CANCEL_RESPONSE") in cancel
    assert ("ISIL:XX-DEMOLEND", "CancelResponse:Y", "WAITING_FOR_CANCEL_RESPONSE", "CANCELED_BY_STAFF") in cancel
    assert ("staff:lender", "answer_cancel:Y", "NEW", "CANCELLED") in cancel


async def test_demo_exits_1_and_says_which_lifecycle_went_wrong(tmp_path, monkeypatch):
    async def refusing_cancel(self, life):  # the lender refuses: the request never gets cancelled
        await self._create(life, (demo.LENDER,))
        await self._lender_is(life, "NEW")
        await self._staff(life, demo.CancelRequest, reason="changed my mind")
        await demo.wait_for(self._cancel_asked(life), "the cancel request", self.timeout)
        await self._lender_staff(life, AnswerCancel, answer=YesNo.N)
        await self._borrower_is(life, "CANCELED_BY_STAFF")

    monkeypatch.setattr(demo.Demo, "cancel", refusing_cancel)
    out = io.StringIO()
    assert await demo.run_demo(out, folder=tmp_path, timeout=2) == 1
    text = out.getvalue()
    assert re.search(r"^loan\s+OK$", text, re.M)
    assert re.search(r"^cancel\s+FAILED: timed out .* CANCELED_BY_STAFF; it is REQUEST_SENT", text, re.M), text
    assert "3 of 4 lifecycles ended as scripted" in text


def test_register_adds_the_demo_subcommand():
    parser = argparse.ArgumentParser(prog="gateway")
    demo.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["demo", "--timeout", "5"])
    assert args.func is demo.cmd_demo and args.timeout == 5


def test_demo_command_in_a_subprocess():
    """`python -m gateway.demo` (and `gateway demo` once gateway/cli.py registers it)."""
    try:
        from gateway.cli import build_parser

        build_parser().parse_args(["demo"])
        command = [sys.executable, "-m", "gateway.cli", "demo"]
    except SystemExit:  # not wired into gateway/cli.py yet
        command = [sys.executable, "-m", "gateway.demo"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 of 4 lifecycles ended as scripted" in done.stdout
    assert "CANCELED_BY_STAFF" in done.stdout and "COMPLETED" in done.stdout
