"""Generated XSDs are in sync; code lists match the reference schemas; `gateway validate`."""

from __future__ import annotations

import io
import sys

import pytest
from lxml import etree

from gateway.cli import main
from gateway.messages import Version, encode
from gateway.messages.codes import CLOSED_CODE_LISTS
from gateway.messages.xsdgen import SCHEMA_FILES, generate

from support.messages_helpers import REFERENCE, ROOT, needs_shared, sample_requesting_message

XS = "{http://www.w3.org/2001/XMLSchema}"


@pytest.mark.parametrize("version", list(Version))
def test_xsd_files_are_what_the_model_generates(version):
    assert (ROOT / "xsd" / SCHEMA_FILES[version]).read_bytes() == generate(version), "run `make xsd`"


def test_xsd_check_command_reports_stale_files(tmp_path, capsys):
    assert main(["xsd", "--write", str(tmp_path)]) == 0
    assert main(["xsd", "--write", str(tmp_path), "--check"]) == 0
    (tmp_path / SCHEMA_FILES[Version.V2021]).write_text("stale")
    assert main(["xsd", "--write", str(tmp_path), "--check"]) == 1
    assert "out of date" in capsys.readouterr().out


def _reference_enumerations(version: Version) -> dict[str, set[str]]:
    """Every enumeration of the reference XSD, keyed by the set of values (names differ)."""
    tree = etree.parse(str(REFERENCE[version]))
    found = {}
    for simple in tree.iter(XS + "simpleType"):
        values = {e.get("value") for e in simple.iter(XS + "enumeration")}
        if values:
            found[simple.get("name")] = values
    return found


@needs_shared
@pytest.mark.parametrize("version", list(Version))
def test_closed_code_lists_equal_the_reference_enumerations(version):
    reference = sorted(sorted(v) for v in _reference_enumerations(version).values())
    ours = sorted(
        sorted(code.values_for(version))
        for code in CLOSED_CODE_LISTS.values()
        if code.values_for(version) and not (version is Version.V2017 and code.__name__ == "PreferredEdition")
    )
    assert ours == reference


def test_cli_validate_reports_each_file_and_exit_code(tmp_path, capsys):
    good = tmp_path / "good.xml"
    good.write_bytes(encode(sample_requesting_message(), Version.V2021))
    bad = tmp_path / "bad.xml"
    bad.write_bytes(b"<nope/>")
    assert main(["validate", str(good)]) == 0
    assert capsys.readouterr().out == f"{good}: OK requestingAgencyMessage 2021\n"
    assert main(["validate", str(good), str(bad)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith(f"{bad}: ERROR BadlyFormedMessage: ")


def test_cli_validate_reads_stdin_and_forces_a_version(monkeypatch, capsys):
    data = encode(sample_requesting_message(), Version.V2017)
    monkeypatch.setattr(sys, "stdin", type("S", (), {"buffer": io.BytesIO(data)})())
    assert main(["validate", "-", "--version", "2021"]) == 1
    assert capsys.readouterr().out.startswith("-: ERROR UnrecognisedDataElement: ")
    monkeypatch.setattr(sys, "stdin", type("S", (), {"buffer": io.BytesIO(data)})())
    assert main(["validate", "--version", "2017", "-"]) == 0
    assert capsys.readouterr().out == "-: OK requestingAgencyMessage 2017\n"
