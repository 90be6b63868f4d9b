"""YAML loading and validation shared by the hardware and workload descriptions.

Every configuration file is read through :class:`Section`, which hands out typed values and
raises :class:`ConfigError` with a one-line message naming the file, the key path and the
allowed values. Unknown keys are errors too, so a misspelt key never falls back silently to a
default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import yaml

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


class ConfigError(ValueError):
    """A configuration file is missing, malformed or holds a value out of range.

    The message is one line: ``<file>: <key path>: <problem> (allowed: <values>)``.
    """


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (YAML says keys are
    unique; PyYAML would silently keep the last one)."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict:
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            dup = key in seen
        except TypeError:  # unhashable key: the normal constructor reports it
            break
        if dup:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def load_yaml(path: Path | str) -> Any:
    """Parse one YAML file, turning I/O, encoding and syntax errors and duplicate keys into
    :class:`ConfigError` (one line naming the file)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read file ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}) (allowed: a UTF-8 YAML "
                          "file)") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        problem = getattr(exc, "problem", None)
        what = f": {problem}" if problem and problem.startswith("duplicate key") else ""
        raise ConfigError(f"{path}: invalid YAML{line}{what}") from None


@dataclass(frozen=True)
class Section:
    """A mapping read from a config file, with its file name and key path for messages.

    Parameters
    ----------
    data : dict
        The mapping as parsed from YAML.
    file : str
        File name used in error messages.
    path : str
        Dotted key path of this mapping inside the file (empty for the top level).
    """

    data: dict
    file: str
    path: str = ""

    @classmethod
    def from_file(cls, path: Path | str) -> "Section":
        """Load a file whose top level must be a mapping."""
        data = load_yaml(path)
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: top level must be a mapping (allowed: key: value pairs)")
        return cls(data, str(path))

    def _key(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def fail(self, key: str, problem: str, allowed: str) -> ConfigError:
        """Build the error for ``key`` of this section."""
        return ConfigError(f"{self.file}: {self._key(key)}: {problem} (allowed: {allowed})")

    def keys(self) -> list[str]:
        """Keys in file order."""
        return list(self.data.keys())

    def check_keys(self, required: Iterable[str], optional: Iterable[str] = ()) -> None:
        """Reject missing required keys and unknown keys."""
        required = list(required)
        known = required + list(optional)
        for key in required:
            if key not in self.data:
                raise self.fail(key, "missing key", ", ".join(known))
        for key in self.data:
            if key not in known:
                raise self.fail(str(key), "unknown key", ", ".join(known))

    def has(self, key: str) -> bool:
        """Whether ``key`` is present."""
        return key in self.data

    def raw(self, key: str) -> Any:
        """The value of ``key`` without any conversion."""
        if key not in self.data:
            raise self.fail(key, "missing key", key)
        return self.data[key]

    def section(self, key: str) -> "Section":
        """A nested mapping."""
        value = self.raw(key)
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a mapping, got {type(value).__name__}",
                            "key: value pairs")
        return Section(value, self.file, self._key(key))

    def string(self, key: str, choices: Iterable[str] | None = None) -> str:
        """A string, optionally one of ``choices``."""
        value = self.raw(key)
        allowed = ", ".join(choices) if choices is not None else "a string"
        if not isinstance(value, str):
            raise self.fail(key, f"expected a string, got {value!r}", allowed)
        if choices is not None and value not in list(choices):
            raise self.fail(key, f"unknown value {value!r}", allowed)
        return value

    def integer(self, key: str, minimum: int | None = None, maximum: int | None = None) -> int:
        """An integer within ``[minimum, maximum]``."""
        value = self.raw(key)
        allowed = _range_text("an integer", minimum, maximum)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"expected an integer, got {value!r}", allowed)
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise self.fail(key, f"value {value} out of range", allowed)
        return value

    def number(self, key: str, minimum: float | None = None, maximum: float | None = None,
               positive: bool = False) -> float:
        """A real number within ``[minimum, maximum]`` (``positive``: strictly above 0)."""
        value = self.raw(key)
        allowed = "a number > 0" if positive else _range_text("a number", minimum, maximum)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(key, f"expected a number, got {value!r}", allowed)
        value = float(value)
        bad = (positive and not value > 0.0) or (minimum is not None and value < minimum) or (
            maximum is not None and value > maximum)
        if bad or not math.isfinite(value):  # .inf and .nan are never a parameter
            raise self.fail(key, f"value {value} out of range", allowed + ", finite")
        return value

    def fraction(self, key: str) -> float:
        """A fraction in ``(0, 1]`` (an attained share of a peak rate)."""
        value = self.raw(key)
        allowed = "a number in (0, 1]"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(key, f"expected a number, got {value!r}", allowed)
        value = float(value)
        if not math.isfinite(value) or not 0.0 < value <= 1.0:
            raise self.fail(key, f"value {value} out of range", allowed)
        return value

    def int_list(self, key: str, minimum: int = 1) -> tuple[int, ...]:
        """A non-empty list of integers, each at least ``minimum``."""
        value = self.raw(key)
        allowed = f"a non-empty list of integers >= {minimum}"
        if not isinstance(value, list) or not value:
            raise self.fail(key, f"expected a list, got {value!r}", allowed)
        for item in value:
            if isinstance(item, bool) or not isinstance(item, int) or item < minimum:
                raise self.fail(key, f"bad list item {item!r}", allowed)
        return tuple(value)

    def str_list(self, key: str, choices: Iterable[str] | None = None) -> tuple[str, ...]:
        """A non-empty list of strings, optionally each one of ``choices``."""
        value = self.raw(key)
        if isinstance(value, str):
            value = [value]
        choices = list(choices) if choices is not None else None
        allowed = ", ".join(choices) if choices is not None else "a list of strings"
        if not isinstance(value, list) or not value:
            raise self.fail(key, f"expected a list, got {value!r}", allowed)
        for item in value:
            if not isinstance(item, str) or (choices is not None and item not in choices):
                raise self.fail(key, f"unknown value {item!r}", allowed)
        return tuple(value)


def _range_text(kind: str, minimum: Any, maximum: Any) -> str:
    if minimum is not None and maximum is not None:
        return f"{kind} in [{minimum}, {maximum}]"
    if minimum is not None:
        return f"{kind} >= {minimum}"
    if maximum is not None:
        return f"{kind} <= {maximum}"
    return kind
