"""Reading one TOML table: typed values whose errors name the table and the key, and a final
check that refuses the keys nobody read (a misspelt key would otherwise be ignored silently)."""

from __future__ import annotations

from typing import Any


class ConfigError(ValueError):
    pass


_MISSING: Any = object()


def number(where: str, key: str, value: Any, kind: type, minimum: float, *, above: bool = False) -> Any:
    """A number at least (or above) `minimum`, or a ConfigError that names it; bools are no numbers."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (kind is float or isinstance(value, int))
    if ok:
        ok = value > minimum if above else value >= minimum
    if not ok:
        bound = f"above {minimum:g}" if above else f"at least {minimum:g}"
        what = "an integer" if kind is int else "a number"
        raise ConfigError(f"{where}: {key} must be {what} {bound}, got {value!r}")
    return kind(value)


class Table:
    """The keys of one table, read once each; `done()` reports any key left unread."""

    def __init__(self, where: str, data: Any):
        if not isinstance(data, dict):
            raise ConfigError(f"{where} must be a table, got {data!r}")
        self.where, self.data, self._read = where, data, set()

    def __contains__(self, key: str) -> bool:
        return key in self.data

    def value(self, key: str, default: Any = _MISSING) -> Any:
        self._read.add(key)
        if key in self.data:
            return self.data[key]
        if default is _MISSING:
            raise ConfigError(f"{self.where}: {key} is required")
        return default

    def text(self, key: str, default: Any = _MISSING) -> str:
        value = self.value(key, default)
        if not isinstance(value, str):
            raise ConfigError(f"{self.where}: {key} must be a string, got {value!r}")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.value(key, default)
        if not isinstance(value, bool):
            raise ConfigError(f"{self.where}: {key} must be true or false, got {value!r}")
        return value

    def number(self, key: str, default: Any, kind: type, minimum: float, *, above: bool = False) -> Any:
        return number(self.where, key, self.value(key, default), kind, minimum, above=above)

    def choice(self, key: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self.value(key, default)
        if value not in allowed:
            raise ConfigError(f"{self.where}: {key} must be one of {', '.join(allowed)}, got {value!r}")
        return value

    def texts(self, key: str) -> tuple[str, ...]:
        value = self.value(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{self.where}: {key} must be a list of strings, got {value!r}")
        return tuple(value)

    def table(self, key: str, known: tuple[str, ...]) -> dict[str, Any]:
        """A nested table whose own keys are all in `known` (kept as a plain dict)."""
        inner = Table(f"{self.where}: {key}", self.value(key, {}))
        for name in known:
            inner.value(name, None)
        inner.done()
        return dict(inner.data)

    def done(self) -> None:
        unknown = [key for key in self.data if key not in self._read]
        if unknown:
            raise ConfigError(f"{self.where}: unknown key {', '.join(map(repr, unknown))}")


def entries(where: str, value: Any) -> list[Any]:
    """The entries of an array of tables (`[[name]]`)."""
    if not isinstance(value, list):
        raise ConfigError(f"{where} must be an array of tables ([[...]]), got {value!r}")
    return value
