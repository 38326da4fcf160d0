"""Frozen core state <-> JSON, generically, from the dataclasses' type hints.

The borrowing core's whole state is kept as one JSON document on the request row, so loading
a request for a step is one read; the row's other columns are copies for listing.
"""

from __future__ import annotations

import dataclasses
from collections import abc
import types
import typing
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from functools import cache
from typing import Any, Union


def to_json(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (tuple, list)):
        return [to_json(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(to_json(v) for v in value)
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    return value


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_json(tp: Any, data: Any) -> Any:
    if data is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        return from_json(options[0], data) if len(options) == 1 else _first_fit(options, data)
    if origin is typing.Literal:
        return data
    if origin in (tuple, list, frozenset, set):
        args = typing.get_args(tp)
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return tuple(from_json(a, v) for a, v in zip(args, data))  # fixed-length tuple
        item = args[0] if args else Any
        return origin(from_json(item, v) for v in data)
    if origin in (dict, abc.Mapping) or tp is dict:
        return dict(data)
    if dataclasses.is_dataclass(tp):
        hints = _hints(tp)
        return tp(**{f.name: from_json(hints[f.name], data[f.name])
                     for f in dataclasses.fields(tp) if f.name in data and f.init})
    if isinstance(tp, type) and issubclass(tp, Enum):
        return tp(data)
    if tp is datetime:
        return datetime.fromisoformat(data)
    if tp is date:
        return date.fromisoformat(data)
    if tp is Decimal:
        return Decimal(data)
    return data


def _first_fit(options: list[Any], data: Any) -> Any:
    for option in options:
        try:
            return from_json(option, data)
        except (TypeError, ValueError, KeyError):
            continue
    return data
