"""What a model expects at a path: walking pydantic models along an error's location.

An error's location is a path through the *data*; the same path through the *model* gives the
field there (its ``description`` says what a good value looks like), the model whose keys are
valid there (for "did you mean"), and whether the value is a secret (so it is never quoted).
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Secret, SecretBytes, SecretStr
from pydantic.fields import FieldInfo

from botkit.config._source import Loc

__all__ = ["Resolved", "is_secret", "resolve"]


@dataclass(frozen=True, slots=True)
class Resolved:
    """``loc`` as the user wrote it, the type expected there, and the field it ends at."""

    loc: Loc
    annotation: Any = None
    field: FieldInfo | None = None

    @property
    def model(self) -> type[BaseModel] | None:
        annotation = self.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return annotation
        return None


def resolve(model: type[BaseModel], loc: Loc) -> Resolved:
    """Follow ``loc`` through ``model``. Where it leaves the typed part (free-form ``settings``)
    the annotation becomes None and the rest of the path is kept as it is."""
    annotation: Any = model
    field: FieldInfo | None = None
    kept: list[str | int] = []
    for part in loc:
        current = _unwrap(annotation)
        if isinstance(part, str) and _is_union(current):
            # pydantic names the union member it tried ('int', 'Dice'); the user never wrote
            # that, so it leaves the path. The field's description was for the whole union.
            annotation, field = _member_named(current, part), None
            continue
        kept.append(part)
        annotation, field = _step(current, part)
    return Resolved(tuple(kept), _unwrap(annotation), field)


def is_secret(annotation: Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, SecretStr | SecretBytes | Secret):
        return True
    return typing.get_origin(annotation) is Secret


def _step(annotation: Any, part: str | int) -> tuple[Any, FieldInfo | None]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        for name, field in annotation.model_fields.items():
            if part in (name, field.alias):
                return field.annotation, field
        return None, None
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if isinstance(part, int) and origin in (list, tuple, set, frozenset) and args:
        return args[0], None
    if origin is dict and len(args) == 2:  # dict[key, value]
        return args[1], None
    return None, None


def _unwrap(annotation: Any) -> Any:
    """``Annotated[X, ...]`` and ``X | None`` both mean X for the purpose of finding fields."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if _is_union(annotation):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(members) == 1:
            return _unwrap(members[0])
    return annotation


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _member_named(union: Any, tag: str) -> Any:
    for member in typing.get_args(union):
        if tag in (getattr(member, "__name__", None), str(member)):
            return member
    return None
