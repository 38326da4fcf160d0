"""Generated parts of the README (the status tables come from the transition tables)."""

from __future__ import annotations

import re
from pathlib import Path

from .core import render_markdown
from .core.lending import render_lending_markdown

SECTIONS = {"borrowing-status-table": render_markdown, "lending-status-table": render_lending_markdown}


def render_readme(text: str) -> str:
    for name, render in SECTIONS.items():
        pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.S)
        text = pattern.sub(lambda m: m.group(1) + render().rstrip() + "\n" + m.group(2), text)
    return text


def update_readme(path: Path) -> bool:
    """Rewrite the generated sections; True if anything changed."""
    old = path.read_text(encoding="utf-8")
    new = render_readme(old)
    if new != old:
        path.write_text(new, encoding="utf-8")
    return new != old
