"""One-line messages for scene and overlay files: the file, the field path, what is wrong, the fix.

pydantic reports errors as ``loc`` tuples and English sentences meant for programmers; the
people who edit scene files need ``tour.stops[3].camera.look_at: … is outside the scene
area: move it inside`` instead. This module turns the one into the other.
"""

from __future__ import annotations

import types
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import ErrorDetails

from twin.errors import SceneError

LANGUAGES = {"de": "German", "en": "English"}
"""Every text of a scene and an overlay is given in these languages."""


def display_path(path: Path) -> str:
    """The path as the user knows it: relative to the working directory when inside it."""
    if not path.is_absolute():
        return str(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def field_path(loc: Sequence[int | str]) -> str:
    """``('tour', 'stops', 3, 'camera')`` -> ``tour.stops[3].camera``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def format_number(value: float) -> str:
    """A coordinate as people write it: 313900 rather than 313900.0."""
    return f"{value:.10g}"


def format_point(values: Iterable[float]) -> str:
    """``(313900, 5998000)``."""
    return "(" + ", ".join(format_number(float(v)) for v in values) + ")"


def scene_error_from_pydantic(
    exc: PydanticValidationError,
    file: str,
    model: type[BaseModel],
    prefix: Sequence[int | str] = (),
) -> SceneError:
    """The first error of a pydantic ValidationError as one SceneError line (+ how many more)."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = (*prefix, *first["loc"])
    message = _describe(first, model, first["loc"])
    if len(errors) > 1:
        more = len(errors) - 1
        message += f" (and {more} more error{'s' if more > 1 else ''} in this file)"
    return SceneError(file, field_path(loc), message)


def _describe(error: ErrorDetails, model: type[BaseModel], loc: Sequence[int | str]) -> str:
    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    last = loc[-1] if loc else ""
    if kind == "missing":
        if last in LANGUAGES:
            return f'the {LANGUAGES[str(last)]} text is missing: add {last} = "…"'
        return f"missing: add {last} (see docs/scenes.md)"
    if kind == "extra_forbidden":
        allowed = _allowed_fields(model, loc[:-1])
        hint = f" (allowed here: {', '.join(allowed)})" if allowed else ""
        return f"unknown field {last!s}: remove it or fix its spelling{hint}"
    if kind == "literal_error":
        return (
            f"{value!r} is not allowed: use {ctx.get('expected', 'one of the documented values')}"
        )
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        limit = {
            "greater_than": "gt",
            "greater_than_equal": "ge",
            "less_than": "lt",
            "less_than_equal": "le",
        }[kind]
        words = {"gt": "greater than", "ge": "at least", "lt": "less than", "le": "at most"}
        number = ctx.get(limit)
        shown = format_number(number) if isinstance(number, int | float) else str(number)
        bound = f"{words[limit]} {shown}"
        return f"{_short(value)} is out of range: it must be {bound}"
    if kind == "string_pattern_mismatch":
        return (
            f"{value!r} is not a valid id: use lower-case letters a-z, digits and '-' "
            "(it becomes part of URLs and folder names)"
        )
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "too_short":
        count = ctx.get("min_length", 1)
        return f"needs at least {count} entr{'y' if count == 1 else 'ies'}"
    if kind in ("float_parsing", "float_type", "int_parsing", "int_type", "finite_number"):
        return f"{_short(value)} is not a (finite) number"
    if kind in ("string_type",):
        return f"{_short(value)} is not a text: put it in quotes"
    if kind in ("list_type", "tuple_type"):
        return f"{_short(value)} is not a list: write [ … ]"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{_short(value)} is not a table: write {{ … }} or a [section]"
    if kind == "bool_type" or kind == "bool_parsing":
        return f"{_short(value)} is not true or false"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"])).removeprefix("Value error, ")
    return f"{error['msg']} (got {_short(value)})"


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _allowed_fields(model: type[BaseModel], loc: Sequence[int | str]) -> list[str]:
    annotation: Any = model
    for part in loc:
        annotation = _descend(annotation, part)
        if annotation is None:
            return []
    target = _unwrap(annotation)
    if isinstance(target, type) and issubclass(target, BaseModel):
        return list(target.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        options = [a for a in get_args(annotation) if a is not type(None)]
        return _unwrap(options[0]) if len(options) == 1 else annotation
    return annotation


def _descend(annotation: Any, part: int | str) -> Any:
    target = _unwrap(annotation)
    if isinstance(target, type) and issubclass(target, BaseModel):
        field = target.model_fields.get(str(part))
        return field.annotation if field is not None else None
    origin = get_origin(target)
    args = get_args(target)
    if origin in (list, tuple) and isinstance(part, int) and args:
        return args[0]
    if origin is dict and isinstance(part, str) and len(args) == 2:
        return args[1]
    return None
