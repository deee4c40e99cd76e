"""Agent hyperparameters as command-line flags and TOML keys, for the CLI and Tune.

:func:`hyperparameters` turns every field of an agent's config
(:mod:`velora.agents.config`) into a :class:`Hyperparameter`: its type from the field's
annotation, its default, and its help text from the field's docstring.
"""

from __future__ import annotations

import argparse
import types
import typing
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

from velora._checks import MissingDependencyError
from velora.agents.config import field_docs


class CLIError(ValueError):
    """A problem with what the user asked for."""


class Hyperparameter:
    """One keyword argument of an agent's ``__init__``, as a flag and a config key."""

    def __init__(self, name: str, default: Any, annotation: Any, doc: str = "") -> None:
        self.name, self.default, self.doc = name, default, doc
        self.kind, self.choices, self.literals = self._classify(default, annotation)

    @staticmethod
    def _classify(default: Any, annotation: Any) -> tuple[type, list[Any] | None, list[str]]:
        """``(base type, choices, literal strings also accepted)`` from the type hint,
        falling back to the default's type."""
        members: list[Any] = []

        def walk(hint: Any) -> None:
            origin = typing.get_origin(hint)
            if origin is typing.Union or origin is types.UnionType:
                for arg in typing.get_args(hint):
                    walk(arg)
            elif origin is typing.Literal:
                members.extend(("literal", v) for v in typing.get_args(hint))
            elif hint is not type(None):
                members.append(("type", hint))

        if annotation is not None:
            walk(annotation)
        literals = [v for k, v in members if k == "literal"]
        plain = [t for k, t in members if k == "type"]
        for candidate in (bool, int, float, str):
            if candidate in plain:
                if literals and candidate is str:
                    return str, None, []
                return candidate, None, [str(v) for v in literals]
        if literals:
            return type(literals[0]), list(literals), []
        if isinstance(default, (bool, int, float, str)):
            return type(default), None, []
        return str, None, []

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def parse(self, text: str) -> Any:
        """Convert a command-line string (argparse ``type=``)."""
        if text in self.literals:
            return text
        try:
            if self.kind is int:
                return _parse_int(text)
            if self.kind is float:
                return float(text)
        except ValueError:
            extra = f" or one of {self.literals}" if self.literals else ""
            raise argparse.ArgumentTypeError(
                f"expected {'an integer' if self.kind is int else 'a number'}{extra}, "
                f"got {text!r}") from None
        return text

    def coerce(self, value: Any, source: str) -> Any:
        """Check and convert a value read from a TOML file."""
        ok = True
        if isinstance(value, str) and value in self.literals:
            return value
        if self.kind is bool:
            ok = isinstance(value, bool)
        elif self.kind is int:
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif self.kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            value = float(value) if ok else value
        elif self.kind is str:
            ok = isinstance(value, str)
        if ok and self.choices is not None and value not in self.choices:
            ok = False
        if not ok:
            raise CLIError(f"{source}: {self.name} must be {self.describe()}, got {value!r}")
        return value

    def describe(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
        text = names[self.kind]
        return text + "".join(f" or {v!r}" for v in self.literals)

    def add_to(self, parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
        shown = "none" if self.default is None else self.default
        help_text = f"{self.doc.rstrip('.')} (default: {shown})" if self.doc \
            else f"(default: {shown})"
        help_text = help_text.replace("%", "%%")
        if self.kind is bool:
            parser.add_argument(self.flag, dest=self.name, action=argparse.BooleanOptionalAction,
                                default=None, help=help_text)
            return
        metavar = None
        if self.literals:
            metavar = "|".join([*self.literals, self.kind.__name__.upper()])
        elif self.choices is None:
            metavar = self.kind.__name__.upper()
        parser.add_argument(self.flag, dest=self.name, type=self.parse, choices=self.choices,
                            default=None, metavar=metavar, help=help_text)


def _parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        value = float(text)  # accept 1e6
        if not value.is_integer():
            raise
        return int(value)


def hyperparameters(cls: type, reserved: typing.Collection[str] = ()) -> dict[str, Hyperparameter]:
    """The agent's hyperparameters (the fields of ``cls.config_class``), by name.
    ``RuntimeError`` if one is named like an option in ``reserved``."""
    config_class = cls.config_class
    try:
        hints = typing.get_type_hints(config_class)
    except Exception:  # unresolvable annotations: fall back to the defaults' types
        hints = {}
    docs = field_docs(config_class)
    params = {}
    for f in fields(config_class):
        if f.name in reserved:
            raise RuntimeError(f"{cls.__name__} argument {f.name!r} clashes with a CLI option")
        default = None if f.default is MISSING else f.default
        doc = docs.get(f.name, "").replace("``", "")
        params[f.name] = Hyperparameter(f.name, default, hints.get(f.name), doc)
    return params


# --------------------------------------------------------------------------- config files
def read_toml(path: str | Path) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError as err:
            raise MissingDependencyError(
                "reading TOML on Python 3.10 needs tomli: pip install tomli") from err
    path = Path(path)
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise CLIError(f"config file {str(path)!r} does not exist") from None
    except tomllib.TOMLDecodeError as err:
        raise CLIError(f"config file {str(path)!r} is not valid TOML: {err}") from None
