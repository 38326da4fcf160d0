"""The README's generated sections match the code they are derived from."""

from pathlib import Path

from gateway.docs import render_readme

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_status_tables_are_current():
    text = README.read_text(encoding="utf-8")
    assert "<!-- borrowing-status-table:start -->" in text
    assert render_readme(text) == text, "run `make docs`"
