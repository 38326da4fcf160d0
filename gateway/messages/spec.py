"""How a model field maps to an XML element, per schema version.

The message model (`model.py`) is the single description of ISO 18626 from which the codec
and the project's XSDs are derived. Each dataclass field carries an `XmlField` in its metadata:
its element name, how often it may occur, and what changes between the 2017 and 2021 schemas.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .codes import Version

UNBOUNDED = None
ABSENT = "absent"  # the element does not exist in that version

Occurs = tuple[int, int | None]


@dataclass(frozen=True, slots=True)
class XmlField:
    tag: str | dict[Version, str] | None  # None: derived from the field name (snake -> camel)
    occurs: Occurs
    per_version: dict[Version, Occurs | str]  # version -> occurs or ABSENT
    plain_string_in: frozenset[Version]  # schemeValuePair fields that are plain xs:string there
    non_negative_in: frozenset[Version]  # integer fields restricted to >= 0 there
    empty_when_missing: bool  # required string we emit empty rather than omit

    def occurs_in(self, version: Version) -> Occurs | None:
        rule = self.per_version.get(version, self.occurs)
        return None if rule == ABSENT else rule  # type: ignore[return-value]

    def tag_in(self, version: Version, field_name: str) -> str:
        if isinstance(self.tag, dict):
            return self.tag[version]
        return self.tag or camel(field_name)


def camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def el(
    min: int = 0,
    max: int | None = 1,
    *,
    tag: str | dict[Version, str] | None = None,
    v2017: Occurs | str | None = None,
    v2021: Occurs | str | None = None,
    plain_string_in: tuple[Version, ...] = (),
    non_negative_in: tuple[Version, ...] = (),
    empty_when_missing: bool = False,
) -> Any:
    """A dataclass field for one element. Lists default to empty, the rest to None."""
    per_version: dict[Version, Occurs | str] = {}
    if v2017 is not None:
        per_version[Version.V2017] = v2017
    if v2021 is not None:
        per_version[Version.V2021] = v2021
    spec = XmlField(
        tag=tag,
        occurs=(min, max),
        per_version=per_version,
        plain_string_in=frozenset(plain_string_in),
        non_negative_in=frozenset(non_negative_in),
        empty_when_missing=empty_when_missing,
    )
    repeats = any(o not in (ABSENT, None) and o[1] != 1 for o in [(min, max), v2017, v2021])
    if repeats:
        return dataclasses.field(default_factory=list, metadata={"xml": spec})
    return dataclasses.field(default=None, metadata={"xml": spec})


def one(**kw: Any) -> Any:
    return el(1, 1, **kw)


def opt(**kw: Any) -> Any:
    return el(0, 1, **kw)


def many(max: int | None = UNBOUNDED, **kw: Any) -> Any:
    return el(0, max, **kw)


def xml_spec(field: dataclasses.Field) -> XmlField:
    return field.metadata["xml"]
