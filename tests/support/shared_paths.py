"""Where the shared reference material lives, for tests that compare against it.

The reference XSDs and the corpus of real messages are kept outside the repository, in
`../shared/` beside it, and are read at run time only (never copied into the project).
Tests that need them use the `requires_shared` marker, which skips them with a clear
reason when that folder is absent (for example on a fresh clone).
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "fixtures"
FIXTURES_MANIFEST = FIXTURES / "MANIFEST.tsv"

SHARED = REPO_ROOT.parent / "shared"
REFERENCE_DIR = SHARED / "iso18626-reference"
REFERENCE_XSD = {
    "2017": REFERENCE_DIR / "ISO-18626-v1_2.xsd",
    "2021": REFERENCE_DIR / "ISO-18626-2021-2.xsd",
}
CORPUS = SHARED / "iso18626-corpus"
CORPUS_INDEX = CORPUS / "INDEX.tsv"

VERSIONS = ("2017", "2021")

_needed = [*REFERENCE_XSD.values(), CORPUS_INDEX]
_missing = [p for p in _needed if not p.is_file()]
SHARED_AVAILABLE = not _missing
SHARED_SKIP_REASON = (
    f"shared reference material not found ({', '.join(str(p) for p in _missing)}); "
    f"these tests need ../shared/iso18626-reference and ../shared/iso18626-corpus beside the repository"
)

requires_shared = pytest.mark.skipif(not SHARED_AVAILABLE, reason=SHARED_SKIP_REASON)


def corpus_entries() -> list[dict[str, str]]:
    """Rows of the corpus INDEX.tsv (an empty list when the corpus is absent)."""
    if not CORPUS_INDEX.is_file():
        return []
    with CORPUS_INDEX.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))


def corpus_messages() -> list[Path]:
    """Paths of every message listed in the corpus INDEX.tsv, in index order."""
    return [CORPUS / row["path"] for row in corpus_entries()]
