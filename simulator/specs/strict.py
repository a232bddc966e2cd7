"""The base of every model validated from user input (scenario sections, policy
parameters, planning settings): nothing is guessed.

- unknown keys are errors (``extra="forbid"``);
- numbers are finite (``.inf`` and ``.nan`` are errors, ``allow_inf_nan=False``);
- a yes/no field takes ``true`` or ``false`` only (not 1, "yes" or "on");
- a whole-number field takes an integer only (not ``true``, 64.0 or "64");
- a number field does not take ``true``/``false``.

Pydantic's lax mode would otherwise read ``max_num_seqs: true`` as 1. The checks look at
each field's annotation (inside ``Optional``, unions, ``Annotated``, lists and mappings)
once per class and field.
"""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic_core import PydanticCustomError

_ANY = "any"
#: Per model class: field name -> shape (see ``_shape``), computed on first use.
_SHAPES: dict[type, dict[str, Any]] = {}


def _shape(annotation: Any) -> Any:
    """The annotation reduced to what the checks need: a frozenset of scalar kinds
    (bool, int, float, str, None, ``_ANY``), or ("list", item) / ("dict", value)."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _shape(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        kinds: set = set()
        for arg in typing.get_args(annotation):
            shape = _shape(arg)
            kinds |= shape if isinstance(shape, frozenset) else {_ANY}
        return frozenset(kinds)
    if origin is Literal:
        return frozenset(type(arg) for arg in typing.get_args(annotation))
    if origin in (list, tuple, set, frozenset) and typing.get_args(annotation):
        return ("list", _shape(typing.get_args(annotation)[0]))
    if origin is dict and len(typing.get_args(annotation)) == 2:
        return ("dict", _shape(typing.get_args(annotation)[1]))
    if annotation in (bool, int, float, str, type(None)):
        return frozenset({annotation})
    return frozenset({_ANY})


def _problem(value: Any, kinds: frozenset) -> str | None:
    """Why ``value`` does not fit a field admitting ``kinds`` (None when it may, or when
    pydantic's own checks will say)."""
    if value is None:
        return None
    numeric = bool(kinds & {int, float})
    if isinstance(value, bool):
        return "must be a number, not true or false" if numeric and bool not in kinds else None
    if _ANY in kinds:
        return None
    if bool in kinds and kinds <= {bool, type(None)}:
        return "must be true or false"
    if int in kinds and not kinds & {float, str} and isinstance(value, float | str):
        return "must be a whole number"
    return None


def _check(value: Any, shape: Any) -> str | None:
    if isinstance(shape, frozenset):
        return _problem(value, shape)
    kind, inner = shape
    if kind == "list" and isinstance(value, list | tuple):
        return next((p for item in value if (p := _check(item, inner))), None)
    if kind == "dict" and isinstance(value, dict):
        return next((p for item in value.values() if (p := _check(item, inner))), None)
    return None


class StrictModel(BaseModel):
    """A model validated from user input: see the module's rules. A wrong scalar is a
    ``strict_scalar`` error whose context names the field (``ctx["field"]``)."""

    # Assignments are checked too: a notebook that sets s.workload.num_requests = -1 gets
    # the field's error then, not a numpy error deep in the run.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, validate_assignment=True)

    @model_validator(mode="before")
    @classmethod
    def _exact_scalars(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        shapes = _SHAPES.get(cls)
        if shapes is None:
            shapes = {name: _shape(f.annotation) for name, f in cls.model_fields.items()}
            _SHAPES[cls] = shapes
        for name, value in data.items():
            problem = _check(value, shapes[name]) if name in shapes else None
            if problem:
                raise PydanticCustomError(
                    "strict_scalar",
                    "{field}: {problem}",
                    {"field": name, "problem": problem, "value": value},
                )
        return data


# ----------------------------------------------------------------------------- messages
def _data_path(loc: tuple, data: object) -> list[str]:
    """The error location as keys of the user's data: union tags pydantic adds
    (``poisson`` in ``arrival.poisson.rate_per_s``) are not keys and are dropped."""
    parts: list[str] = []
    node = data
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, dict):
            if part in node:
                node = node[part]
            elif not last:
                continue  # a tag of a tagged union, not a key
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        elif parts and not isinstance(node, dict | list):
            break  # a scalar has no keys: what follows names a member of a union
        parts.append(str(part))
    return parts


def _union_tag(loc: tuple, path: list[str]) -> str:
    """``'offline'`` when ``loc`` went through the member ``offline`` of a tagged union (the
    tag pydantic adds and ``_data_path`` drops): the key is unknown to that member, though
    perhaps known to another."""
    kept = iter(path)
    expected = next(kept, None)
    for part in loc[:-1]:
        if str(part) != expected:
            return repr(str(part))
        expected = next(kept, None)
    return ""


def _format_error(err: dict, data: object, prefix: tuple[str, ...] = ()) -> str:
    loc_parts = list(err["loc"])
    value = err.get("input")
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "strict_scalar":  # raised for the model; its context names the field
        loc_parts.append(err["ctx"]["field"])
        value, msg = err["ctx"]["value"], err["ctx"]["problem"]
    path = _data_path(tuple(loc_parts), data)
    loc = ".".join([*prefix, *path])
    if err["type"] == "extra_forbidden":
        tag = _union_tag(tuple(loc_parts), path)
        return f"{loc}: unknown key" + (f" for {tag}" if tag else "")
    if err["type"] == "missing":
        return f"{loc}: required key is missing"
    if err["type"] == "union_tag_not_found":  # a section of several kinds without its kind
        key = str(err.get("ctx", {}).get("discriminator", "")).strip("'")
        return f"{loc}.{key}: required key is missing (it names the kind of {loc or 'section'})"
    shown = "" if isinstance(value, dict | list) or value is None else f" (got {_short(value)})"
    return f"{loc}: {msg}{shown}" if loc else f"{msg}{shown}"


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:60] + f"… ({len(text):,} characters)"


#: pydantic's complaint of a union's mapping member about a scalar input.
_NOT_A_MAPPING = "Input should be a valid dictionary or object to extract fields from"


def validation_messages(exc: ValidationError, data: object, prefix: str = "") -> list[str]:
    """One line per error of a pydantic ``ValidationError`` raised validating ``data``:
    ``dotted.path: what is wrong (got value)``; ``prefix`` (``"engine"``) is put before
    each path."""
    parts = tuple(prefix.split(".")) if prefix else ()
    lines = list(dict.fromkeys(_format_error(e, data, parts) for e in exc.errors()))
    # a scalar given where a number or a mapping may go fails both members of the union:
    # the mapping member's complaint says nothing about the number's problem
    paths = [line.partition(": ")[0] for line in lines]
    return [
        line
        for line, path in zip(lines, paths, strict=True)
        if not (_NOT_A_MAPPING in line and paths.count(path) > 1)
    ]
