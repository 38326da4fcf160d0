"""The project's compiled XSDs, one per version and per thread.

They are read from `xsd/` beside the package (the published files); when the package runs
without that folder, the same schema is generated from the model in memory.

An lxml `XMLSchema` keeps its error log on the object, so two threads validating with one
object at once would read each other's errors: each thread compiles its own (about 1 ms).
"""

from __future__ import annotations

import threading
from functools import cache
from pathlib import Path

from lxml import etree

from .codes import Version
from .xsdgen import SCHEMA_FILES, generate

XSD_DIR = Path(__file__).resolve().parents[2] / "xsd"
_local = threading.local()


@cache
def schema_bytes(version: Version) -> bytes:
    path = XSD_DIR / SCHEMA_FILES[version]
    return path.read_bytes() if path.is_file() else generate(version)


def schema_for(version: Version) -> etree.XMLSchema:
    schemas = getattr(_local, "schemas", None)
    if schemas is None:
        schemas = _local.schemas = {}
    schema = schemas.get(version)
    if schema is None:
        schema = schemas[version] = etree.XMLSchema(etree.fromstring(schema_bytes(version)))
    return schema
