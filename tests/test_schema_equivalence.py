"""Our schemas in xsd/ give the same valid/invalid verdict as the reference XSDs.

For each version (2017 = v1.2, 2021 = 2021-2) both schemas are compiled with
lxml.etree.XMLSchema and asked about:

- every fixture file (valid and invalid, of every version: a 2017 message checked against
  the 2021 schemas is a useful near-miss too);
- every mutation (tests/support/mutations.py) of each valid fixture of that version;
- every corpus message (../shared/iso18626-corpus/INDEX.tsv), under both versions.

Documents the gateway refuses before any schema is asked are skipped with a reason: not
well-formed, carrying a DOCTYPE, or rooted elsewhere than ISO18626Message (the reference
XSDs declare every element globally, so they accept a bare <request>; ours need not).

One test per (version, source file), so a failure names the file; it lists each
disagreement with the mutation applied and both error logs.

Skips (with a reason) when ../shared is absent. FAILS when our schemas are missing or do
not compile: an absent schema is a broken build, not an untestable one.
"""

from __future__ import annotations

import functools
from collections import Counter
from pathlib import Path

import pytest
from lxml import etree

try:
    from support.mutations import mutations
    from support.shared_paths import (
        CORPUS, FIXTURES, FIXTURES_MANIFEST, REFERENCE_XSD, REPO_ROOT, SHARED_AVAILABLE, SHARED_SKIP_REASON,
        VERSIONS, corpus_entries,
    )
except ImportError:  # tests/ imported as a package
    from tests.support.mutations import mutations
    from tests.support.shared_paths import (
        CORPUS, FIXTURES, FIXTURES_MANIFEST, REFERENCE_XSD, REPO_ROOT, SHARED_AVAILABLE, SHARED_SKIP_REASON,
        VERSIONS, corpus_entries,
    )

ENVELOPE = "{http://illtransactions.org/2013/iso18626}ISO18626Message"
OUR_XSD = {
    "2017": REPO_ROOT / "xsd" / "iso18626-2017.xsd",
    "2021": REPO_ROOT / "xsd" / "iso18626-2021.xsd",
}

#: Mutations compared per valid fixture (the largest fixture yields about 3,900; an evenly
#: spread subset is taken above this). Keeps the whole file well under a minute on 2 cores.
MUTATION_LIMIT = 5000
#: Disagreements spelled out in one failure message (all are counted).
REPORT_LIMIT = 15

COMPARED: Counter[str] = Counter()


# ----------------------------------------------------------------------------- sources

def _manifest_rows() -> list[dict[str, str]]:
    if not FIXTURES_MANIFEST.is_file():
        return []
    lines = FIXTURES_MANIFEST.read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"))) for line in lines[1:] if line.strip()]


FIXTURE_CASES = [
    pytest.param(version, row, id=f"{version}:fixtures/{row['path']}")
    for version in VERSIONS
    for row in _manifest_rows()
]
CORPUS_CASES = [
    pytest.param(version, entry["path"], id=f"{version}:corpus/{entry['path']}")
    for version in VERSIONS
    for entry in corpus_entries()
]


# ----------------------------------------------------------------------------- helpers

def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def _parse(path: Path) -> etree._ElementTree | None:
    try:
        return etree.fromstring(path.read_bytes(), _parser()).getroottree()
    except etree.XMLSyntaxError:
        return None


def _not_compared(tree: etree._ElementTree | None) -> str | None:
    """Why no schema is asked about this document, or None.

    The gateway refuses these before it validates (the root is checked outside the schema;
    DTDs are refused), so a schema's verdict on them never matters. The reference XSDs
    declare every element globally and so accept a bare <request> or even a bare
    <timestamp>; our schemas need not copy that.
    """
    if tree is None:
        return "not well-formed XML: refused before schema validation"
    if tree.docinfo.internalDTD is not None or tree.docinfo.doctype:
        return "has a DOCTYPE: refused before schema validation"
    if tree.getroot().tag != ENVELOPE:
        return "root is not ISO18626Message: refused before schema validation"
    return None


def _compile(path: Path, whose: str) -> etree.XMLSchema:
    try:
        return etree.XMLSchema(etree.parse(str(path)))
    except (etree.XMLSyntaxError, etree.XMLSchemaParseError) as exc:
        pytest.fail(f"{whose} schema {path} does not compile: {exc}", pytrace=False)


@functools.cache
def _reference_schema(version: str) -> etree.XMLSchema:
    return _compile(REFERENCE_XSD[version], "reference")


def _schemas(version: str) -> tuple[etree.XMLSchema, etree.XMLSchema]:
    """(reference, ours) for a version; skips without ../shared, fails without ours."""
    if not SHARED_AVAILABLE:
        pytest.skip(SHARED_SKIP_REASON)
    ours = OUR_XSD[version]
    if not ours.is_file():
        pytest.fail(f"our {version} schema {ours} is missing (write it, e.g. with `make xsd`)", pytrace=False)
    return _reference_schema(version), _our_schema(version)


@functools.cache
def _our_schema(version: str) -> etree.XMLSchema:
    return _compile(OUR_XSD[version], "our")


def _verdict(schema: etree.XMLSchema, tree: etree._ElementTree) -> tuple[str, str]:
    """('valid' | 'invalid' | 'error', error log)."""
    try:
        ok = schema.validate(tree)
    except etree.XMLSchemaValidateError as exc:  # e.g. unexpanded entity references
        return "error", f"validation raised {exc}"
    return ("valid" if ok else "invalid"), str(schema.error_log)


class _Comparison:
    """Asks both schemas about documents from one source file and collects disagreements."""

    def __init__(self, version: str, source: str):
        self.reference, self.ours = _schemas(version)
        self.version = version
        self.source = source
        self.counts: Counter[str] = Counter()
        self.disagreements: list[str] = []

    def check(self, tree: etree._ElementTree, what: str, bucket: str) -> None:
        self.counts[bucket] += 1
        ref, ref_log = _verdict(self.reference, tree)
        our, our_log = _verdict(self.ours, tree)
        if ref != our:
            self.disagreements.append(
                f"--- {self.source} [{what}]\n"
                f"    reference {self.version}: {ref}\n{_indent(ref_log)}\n"
                f"    ours      {self.version}: {our}\n{_indent(our_log)}"
            )

    def finish(self) -> None:
        for bucket, n in self.counts.items():
            COMPARED[f"{self.version} {bucket}"] += n
        if self.disagreements:
            total = sum(self.counts.values())
            shown = self.disagreements[:REPORT_LIMIT]
            more = len(self.disagreements) - len(shown)
            pytest.fail(
                f"{len(self.disagreements)} of {total} documents get a different verdict from our "
                f"{self.version} schema ({OUR_XSD[self.version].name}) and from the reference:\n"
                + "\n".join(shown)
                + (f"\n... and {more} more" if more > 0 else ""),
                pytrace=False,
            )


def _indent(log: str) -> str:
    lines = [ln for ln in log.splitlines() if ln.strip()] or ["(no errors)"]
    return "\n".join("        " + ln for ln in lines[:8])


@pytest.fixture(scope="module", autouse=True)
def _report_compared(request):
    yield
    if not COMPARED:
        return
    parts = ", ".join(f"{key} {COMPARED[key]}" for key in sorted(COMPARED))
    line = f"schema equivalence: {sum(COMPARED.values())} documents compared ({parts})"
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if reporter is None or capture is None:  # pragma: no cover - unusual pytest set-ups
        print(line)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        reporter.write_line(line)


# ----------------------------------------------------------------------------- tests

@pytest.mark.parametrize("version", VERSIONS)
def test_our_schema_exists_and_compiles(version):
    if not SHARED_AVAILABLE:
        pytest.skip(SHARED_SKIP_REASON)
    path = OUR_XSD[version]
    assert path.is_file(), f"our {version} schema {path} is missing"
    _our_schema(version)


@pytest.mark.parametrize(("version", "row"), FIXTURE_CASES)
def test_fixture_and_its_mutations_get_the_same_verdict(version, row):
    comparison = _Comparison(version, f"fixtures/{row['path']}")
    tree = _parse(FIXTURES / row["path"])
    if reason := _not_compared(tree):
        pytest.skip(reason)
    comparison.check(tree, "as is", "fixtures")
    if row["expected"] == "valid" and row["version"] == version:
        for mutation in mutations(tree, limit=MUTATION_LIMIT):
            comparison.check(mutation.tree, mutation.description, "mutations")
    comparison.finish()


@pytest.mark.parametrize(("version", "path"), CORPUS_CASES)
def test_corpus_message_gets_the_same_verdict(version, path):
    comparison = _Comparison(version, f"corpus/{path}")
    tree = _parse(CORPUS / path)
    if reason := _not_compared(tree):
        pytest.skip(reason)
    comparison.check(tree, "as is", "corpus")
    comparison.finish()
