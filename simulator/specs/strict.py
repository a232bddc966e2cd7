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

from pydantic import BaseModel, ConfigDict, model_validator
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

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

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
