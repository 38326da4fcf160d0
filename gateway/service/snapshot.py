"""Frozen core state <-> JSON, generically, from the dataclasses' type hints.

The borrowing core's whole state is kept as one JSON document on the request row, so loading
a request for a step is one read; the row's other columns are copies for listing.

Both directions sit on the hot path of every inbound message, so the work of looking at a type
(its fields, its hints, which conversion applies) is done once per type and kept: `to_json`
dispatches on the value's exact type through a table, `from_json` on a converter built once per
type hint. The output is the same as a plain recursive walk would give.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections import abc
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from functools import cache
from typing import Any, Union

Convert = Callable[[Any], Any]


# --- to JSON: by the value's type ------------------------------------------------------------------


def to_json(value: Any) -> Any:
    encode = _ENCODERS.get(type(value))
    if encode is None:
        encode = _ENCODERS[type(value)] = _encoder_for(type(value))
    return encode(value)


def _identity(value: Any) -> Any:
    return value


def _isoformat(value: date) -> str:
    return value.isoformat()


def _sequence(value: Any) -> list[Any]:
    return [to_json(v) for v in value]


def _set(value: Any) -> list[Any]:
    return sorted(to_json(v) for v in value)


def _mapping(value: dict[Any, Any]) -> dict[Any, Any]:
    return {k: to_json(v) for k, v in value.items()}


def _enum_value(value: Enum) -> Any:
    return value.value


def _dataclass_encoder(cls: type) -> Convert:
    names = tuple(f.name for f in dataclasses.fields(cls))

    def encode(value: Any) -> dict[str, Any]:
        return {name: to_json(getattr(value, name)) for name in names}

    return encode


def _encoder_for(tp: type) -> Convert:
    """The conversion for values of exactly this type, chosen in the order the checks matter
    (a dataclass or enum may also be a str; a datetime is also a date)."""
    if dataclasses.is_dataclass(tp):
        return _dataclass_encoder(tp)
    if issubclass(tp, Enum):
        return _enum_value
    if issubclass(tp, date):  # datetime included
        return _isoformat
    if issubclass(tp, Decimal):
        return str
    if issubclass(tp, (tuple, list)):
        return _sequence
    if issubclass(tp, (set, frozenset)):
        return _set
    if issubclass(tp, dict):
        return _mapping
    return _identity


_ENCODERS: dict[type, Convert] = {t: _identity for t in (str, int, float, bool, type(None))}


# --- from JSON: by the declared type ---------------------------------------------------------------


def from_json(tp: Any, data: Any) -> Any:
    try:
        decode = _decoder(tp)
    except TypeError:  # an unhashable type hint: build its converter afresh
        decode = _decoder.__wrapped__(tp)
    return decode(data)


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


@cache
def _decoder(tp: Any) -> Convert:
    """A converter for JSON data of declared type `tp`; None always stays None."""
    inner = _inner_decoder(tp)
    if inner is _identity:
        return inner

    def decode(data: Any) -> Any:
        return None if data is None else inner(data)

    return decode


def _inner_decoder(tp: Any) -> Convert:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(options) == 1:
            return _decoder(options[0])
        return lambda data: _first_fit(options, data)
    if origin is typing.Literal:
        return _identity
    if origin in (tuple, list, frozenset, set):
        return _collection_decoder(origin, typing.get_args(tp))
    if origin in (dict, abc.Mapping) or tp is dict:
        return dict
    if dataclasses.is_dataclass(tp):
        return _dataclass_decoder(tp)
    if isinstance(tp, type) and issubclass(tp, Enum):
        return tp
    if tp is datetime:
        return datetime.fromisoformat
    if tp is date:
        return date.fromisoformat
    if tp is Decimal:
        return Decimal
    return _identity


def _collection_decoder(origin: type, args: tuple[Any, ...]) -> Convert:
    if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
        items = tuple(_decoder(a) for a in args)  # fixed-length tuple
        return lambda data: tuple(item(v) for item, v in zip(items, data))
    item = _decoder(args[0] if args else Any)
    if item is _identity:
        return origin
    return lambda data: origin(item(v) for v in data)


def _dataclass_decoder(cls: type) -> Convert:
    hints = _hints(cls)
    fields = tuple((f.name, _decoder(hints[f.name])) for f in dataclasses.fields(cls) if f.init)

    def decode(data: dict[str, Any]) -> Any:
        return cls(**{name: convert(data[name]) for name, convert in fields if name in data})

    return decode


def _first_fit(options: list[Any], data: Any) -> Any:
    for option in options:
        try:
            return from_json(option, data)
        except (TypeError, ValueError, KeyError):
            continue
    return data
