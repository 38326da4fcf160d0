"""Choosing a default rota from configured templates.

A template is `{name, match: {field: value | [values]}, partners: [...]}`. Templates are tried
in order and the first whose every `match` field equals the request's field wins (strings
compare case-insensitively, a list means "any of"); a template without `match` is the default,
used when nothing else matched. Pure: the caller passes the config and the request fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence


@dataclass(frozen=True)
class RotaTemplate:
    name: str
    partners: tuple[str, ...]
    match: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, raw: Mapping[str, Any] | RotaTemplate) -> RotaTemplate:
        if isinstance(raw, RotaTemplate):
            return raw
        return cls(
            name=str(raw.get("name", "")),
            partners=tuple(raw.get("partners", ())),
            match=dict(raw.get("match") or {}),
        )

    def matches(self, fields: Mapping[str, Any]) -> bool:
        return bool(self.match) and all(_same(fields.get(k), want) for k, want in self.match.items())


def choose_rota(
    templates: Sequence[Mapping[str, Any] | RotaTemplate], fields: Mapping[str, Any] | Any
) -> RotaTemplate | None:
    """The first matching template, else the first template without `match`, else None.

    `fields` is a mapping or any object with attributes (e.g. RequestDetails)."""
    parsed = [RotaTemplate.from_config(t) for t in templates]
    values = fields if isinstance(fields, Mapping) else _AttrView(fields)
    for template in parsed:
        if template.matches(values):
            return template
    return next((t for t in parsed if not t.match), None)


def _same(have: Any, want: Any) -> bool:
    if isinstance(want, (list, tuple, set, frozenset)):
        return any(_same(have, w) for w in want)
    if isinstance(have, str) and isinstance(want, str):
        return have.casefold() == want.casefold()
    return have == want


class _AttrView(Mapping[str, Any]):
    """Read a dataclass's attributes as a mapping (only `get` is needed)."""

    def __init__(self, obj: Any):
        self._obj = obj

    def __getitem__(self, key: str) -> Any:
        try:
            return getattr(self._obj, key)
        except AttributeError:
            raise KeyError(key) from None

    def __iter__(self):
        return iter(vars(self._obj))

    def __len__(self) -> int:
        return len(vars(self._obj))
