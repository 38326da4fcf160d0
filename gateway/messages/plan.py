"""Compile the model into one element plan per schema version.

A plan says, for each dataclass, which elements exist in that version, in which order, how
often, and of which value kind. The codec and the XSD generator both walk it, so the schemas
we publish and the XML we read and write cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Union

from . import model
from .codes import ClosedCode, Version
from .spec import xml_spec

NS = "http://illtransactions.org/2013/iso18626"
ROOT_TAG = "ISO18626Message"
Q = "{" + NS + "}"


@dataclass(frozen=True, slots=True)
class Node:
    """One element inside a complex type, for one version."""

    attr: str  # python field name
    tag: str  # element local name
    qtag: str  # Clark notation, as lxml reports it
    min: int
    max: int | None  # None: unbounded
    kind: str  # str | datetime | decimal | int | bool | scheme | code | complex
    py_type: type
    repeated: bool  # the model field is a list
    plain_string: bool  # a schemeValuePair the schema types as plain xs:string here
    non_negative: bool
    empty_when_missing: bool

    @property
    def plan(self) -> "ClassPlan":
        return class_plan(self.py_type, self.version_of_plan)

    version_of_plan: Version = Version.V2017


@dataclass(frozen=True, slots=True)
class ClassPlan:
    cls: type
    version: Version
    nodes: tuple[Node, ...]
    by_qtag: dict[str, Node]
    choice: bool


_SCALARS = {str: "str", datetime: "datetime", Decimal: "decimal", int: "int", bool: "bool"}


def _value_kind(tp: type) -> str:
    if tp in _SCALARS:
        return _SCALARS[tp]
    if tp is model.SchemeValue:
        return "scheme"
    if isinstance(tp, type) and issubclass(tp, ClosedCode):
        return "code"
    if dataclasses.is_dataclass(tp):
        return "complex"
    raise TypeError(f"unsupported model type {tp!r}")


def _unwrap(hint: object) -> tuple[type, bool]:
    """(element type, is a list) from `X`, `X | None` or `list[X]`."""
    if typing.get_origin(hint) is list:
        return typing.get_args(hint)[0], True
    if typing.get_origin(hint) in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0], False
    return hint, False  # type: ignore[return-value]


@cache
def class_plan(cls: type, version: Version) -> ClassPlan:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    order = getattr(cls, "XML_ORDER", {}).get(version, tuple(fields))
    nodes = []
    for name in order:
        spec = xml_spec(fields[name])
        occurs = spec.occurs_in(version)
        if occurs is None:
            continue
        tp, repeated = _unwrap(hints[name])
        tag = spec.tag_in(version, name)
        nodes.append(
            Node(
                attr=name,
                tag=tag,
                qtag=Q + tag,
                min=occurs[0],
                max=occurs[1],
                kind=_value_kind(tp),
                py_type=tp,
                repeated=repeated,
                plain_string=version in spec.plain_string_in,
                non_negative=version in spec.non_negative_in,
                empty_when_missing=spec.empty_when_missing,
                version_of_plan=version,
            )
        )
    return ClassPlan(
        cls=cls,
        version=version,
        nodes=tuple(nodes),
        by_qtag={n.qtag: n for n in nodes},
        choice=getattr(cls, "XML_CHOICE", False),
    )
