"""A checkpoint's JSON files, read so that a broken or hostile one is a one-line CheckpointError.

Every config a component is built from passes here first: it must be a JSON object, it must not
ask for code from the checkpoint (``auto_map``: transformers would offer to run the ``.py`` file
it names), its values must have the types the class declares, and the sizes nova can check
without building anything must be within reason. So a bad file names itself and its problem
instead of surfacing as a traceback from deep inside diffusers or transformers.
"""

from __future__ import annotations

import inspect
import json
import math
import types
import typing
from dataclasses import dataclass
from pathlib import Path

from .errors import CheckpointError

CODE_KEYS = ("auto_map", "custom_pipelines")


def one_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message, shortened: library errors can span pages."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_json(path: Path, what: str = "a JSON object") -> dict:
    """``path`` as a dict, or a CheckpointError that names the file and what is wrong with it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable ({one_line(exc)})") from None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise CheckpointError(f"{path}: not valid JSON ({one_line(exc)})") from None
    if not isinstance(value, dict):
        raise CheckpointError(f"{path}: expected {what}, found a JSON {_json_kind(value)}")
    return value


def _json_kind(value) -> str:
    return {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")


def refuse_code(path: Path, config: dict, component: str) -> None:
    """A config that asks for code from the checkpoint folder is refused, never followed."""
    for key in CODE_KEYS:
        if key in config:
            raise CheckpointError(f"{path}: the {component} asks to run code from the checkpoint ({key}: "
                                  f"{_short(config[key])}); nova never runs checkpoint code, refused")


def read_config(path: Path, component: str) -> dict:
    config = read_json(path)
    refuse_code(path, config, component)
    return config


def check_class(path: Path, config: dict, expected: str) -> None:
    """``_class_name``, when given, must be the class nova builds (it never imports another)."""
    name = config.get("_class_name", expected)
    if name != expected:
        raise CheckpointError(f"{path}: names the class {_short(name)}, but model_index.json says {expected}")


def check_types(path: Path, config: dict, cls) -> None:
    """Each value whose constructor parameter is annotated must have that type (JSON lists stand
    for tuples); values of types nova cannot express in JSON are left to the class."""
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # an annotation that does not resolve: the class's own checks remain
        hints = {}
    defaults = {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items()}
    for key, value in config.items():
        hint = hints.get(key)
        if value is None and key in defaults and defaults[key] is None:
            continue  # `x: float = None`: libraries annotate optional values loosely
        if hint is not None and _matches(value, hint) is False:
            raise CheckpointError(f"{path}: {key} must be {_describe(hint)}, got {_short(value)}")


def _matches(value, hint) -> bool | None:
    """True/False, or None where the annotation is not something JSON can hold."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if hint is str:
        return isinstance(value, str)
    if origin is typing.Literal:
        return value in args
    if origin in (typing.Union, types.UnionType):
        results = [_matches(value, a) for a in args]
        return True if True in results else (None if None in results else False)
    if origin in (tuple, list) or hint in (tuple, list):
        if not isinstance(value, list):
            return False
        inner = [a for a in args if a is not Ellipsis][:1]
        results = [_matches(v, inner[0]) for v in value] if inner else []
        return False if False in results else True
    return None


def _describe(hint) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return "one of " + ", ".join(map(repr, args))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin in (tuple, list):
        inner = [a for a in args if a is not Ellipsis][:1]
        return f"a list of {_describe(inner[0])}" if inner else "a list"
    names = {int: "an integer", float: "a finite number", bool: "true or false", str: "a string",
             type(None): "null"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))


@dataclass(frozen=True)
class Bound:
    """A number (or each number of a list) in [low, high]; ``above``: strictly above ``low``."""

    low: float
    high: float
    integer: bool = True
    above: bool = False

    def problem(self, value) -> str | None:
        values = value if isinstance(value, list) else [value]
        for v in values:
            if v is None:
                continue
            kind_ok = isinstance(v, int) if self.integer else isinstance(v, (int, float))
            if isinstance(v, bool) or not kind_ok or not math.isfinite(v):
                return f"must be {'an integer' if self.integer else 'a finite number'}"
            if v < self.low or v > self.high or (self.above and v == self.low):
                low = f"> {self.low}" if self.above else f">= {self.low}"
                return f"must be {low} and <= {self.high}"
        return None


def check_bounds(path: Path, config: dict, bounds: dict[str, Bound], required=()) -> None:
    for key in required:
        if config.get(key) is None:
            raise CheckpointError(f"{path}: lacks {key}")
    for key, bound in bounds.items():
        if key in config:
            problem = bound.problem(config[key])
            if problem:
                raise CheckpointError(f"{path}: {key} {problem}, got {_short(config[key])}")


def _short(value, limit: int = 80) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
