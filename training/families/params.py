"""A family's own settings: one pydantic model per family, and one way to refuse a bad value.

Every family declares its `family_params` as a subclass of FamilySettings (a family without settings
keeps FamilySettings itself), set as its `settings_model`; Family.resolve() validates the run's
family_params by it and writes them back with every default filled. `validated()` turns a pydantic
ValidationError into one UserError line naming, for each bad entry, the field, the value and what is
allowed (several bad entries: joined by ' | '):

    family_params.class_loss: not one of the choices (got 'bogus'; allowed: 'ce' or 'hinge')
    family_params.num_cat: not a setting of the infogan family (got 'x'; allowed: categorical, ...)

The network models (`arch_params`) of the families that have them are checked through it too.
"""

from __future__ import annotations

import types
from collections.abc import Iterable
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.fields import FieldInfo

from gan_core.errors import UserError


class FamilySettings(BaseModel):
    """Base of every family's settings: an unknown key is refused, and so is a value of the wrong type
    (strict: "3" is not 3, 1 is not true), since a typo in a run's settings must not train another run."""

    model_config = ConfigDict(extra="forbid", strict=True)


def validated(model: type[BaseModel], values: dict[str, Any], field: str, owner: str | None = None):
    """`values` validated by `model`; refused as one UserError line (see module doc) naming `field`
    (e.g. 'family_params'). `owner` (e.g. "the acgan family") names whose settings an unknown key missed."""
    try:
        return model.model_validate(values)
    except ValidationError as e:
        raise UserError(refusal(model, e, field, owner)) from None


def refusal(model: type[BaseModel], error: ValidationError, field: str, owner: str | None = None) -> str:
    """One line for every error of `error`: 'FIELD.KEY: MESSAGE (got VALUE; allowed: ...)', joined by ' | '."""
    return " | ".join(_line(model, e, field, owner) for e in error.errors(include_url=False))


def _line(model: type[BaseModel], err: dict, field: str, owner: str | None) -> str:
    loc = err["loc"]
    where = ".".join([field, *map(str, loc)])
    if not loc:  # the whole mapping (not a dict, or a model-level check)
        return f"{where}: {err['msg']}"
    if err["type"] == "extra_forbidden":
        names = ", ".join(model.model_fields)
        whose = f" of {owner}" if owner else ""
        allowed = names or f"none, {owner or 'this model'} takes no settings"
        return f"{where}: not a setting{whose} (got {_shown(err['input'])}; allowed: {allowed})"
    info = model.model_fields.get(str(loc[0]))
    allowed = f"; allowed: {describe(info.annotation, info.metadata)}" if info is not None else ""
    msg = "not one of the choices" if err["type"] == "literal_error" else err["msg"]
    return f"{where}: {msg} (got {_shown(err['input'])}{allowed})"


def _shown(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_BOUNDS = (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="), ("min_length", "length >="),
           ("max_length", "length <="))  # fmt: skip
_NAMES = {bool: "true or false", int: "int", float: "number", str: "text"}


def describe(annotation: Any, metadata: Iterable[Any] = ()) -> str:
    """What a field accepts, in words: its type and its bounds (e.g. 'number > 0, <= 4', "'ce' or 'hinge'",
    'a list of int >= 0')."""
    kinds = _kinds(annotation, metadata)
    return kinds[0] if len(kinds) == 1 else f"{', '.join(kinds[:-1])} or {kinds[-1]}"


def _kinds(annotation: Any, metadata: Iterable[Any] = ()) -> list[str]:
    """The alternatives a field accepts (a Literal's values, a union's members), each with the bounds."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _kinds(args[0], [*args[1:], *metadata])
    if origin is Literal:
        return [repr(a) for a in args]
    if origin in (Union, types.UnionType):
        kinds = [k for a in args if a is not type(None) for k in _kinds(a, metadata)]
        return kinds + ["null"] if type(None) in args else kinds
    if origin in (list, tuple):
        text = f"a list of {describe(args[0]) if args else 'values'}"
    else:
        text = _NAMES.get(annotation, getattr(annotation, "__name__", str(annotation)))
    bounds = []
    for m in metadata:
        for inner in m.metadata if isinstance(m, FieldInfo) else [m]:
            bounds += [
                f"{op} {getattr(inner, a)}" for a, op in _BOUNDS if getattr(inner, a, None) is not None
            ]
    sep = ", " if origin in (list, tuple) else " "  # a list's bounds are on its length
    return [f"{text}{sep}{', '.join(bounds)}" if bounds else text]
