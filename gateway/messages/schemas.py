"""The project's compiled XSDs, one per version, loaded once.

They are read from `xsd/` beside the package (the published files); when the package runs
without that folder, the same schema is generated from the model in memory.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from lxml import etree

from .codes import Version
from .xsdgen import SCHEMA_FILES, generate

XSD_DIR = Path(__file__).resolve().parents[2] / "xsd"


def schema_bytes(version: Version) -> bytes:
    path = XSD_DIR / SCHEMA_FILES[version]
    return path.read_bytes() if path.is_file() else generate(version)


@cache
def schema_for(version: Version) -> etree.XMLSchema:
    return etree.XMLSchema(etree.fromstring(schema_bytes(version)))
