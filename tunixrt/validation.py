"""Turn pydantic validation errors into one readable message naming each offending key and what
it allows (the choices of a Literal, the bounds of a number, the keys of a section, ...).

Messages start with where the config came from: `params.yaml` for the DVC stages, or the
composition `tunixrt run` made (`config_source` sets it for the duration of a call).
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import annotated_types as at
from pydantic import BaseModel, ValidationError

from tunixrt.errors import ConfigError
from tunixrt.paths import RELATIVE, WorkspacePath

M = TypeVar("M", bound=BaseModel)

_SOURCE: ContextVar[str] = ContextVar("config_source", default="params.yaml")
_GOT_MAX = 80  # characters of a bad value shown back
_PATH_CHECKS = WorkspacePath.__metadata__


@contextmanager
def config_source(label: str) -> Iterator[None]:
    token = _SOURCE.set(label)
    try:
        yield
    finally:
        _SOURCE.reset(token)


def config_where() -> str:
    """Where the config being validated came from, e.g. `params.yaml`."""
    return _SOURCE.get()


def dotted(prefix: str, loc: Iterable[Any]) -> str:
    parts = [prefix] if prefix else []
    parts += [str(p) for p in loc]
    return ".".join(parts)


# -- what a type allows, in words ------------------------------------------------------------


def _unwrap(ann: Any) -> tuple[Any, list[Any]]:
    """`Annotated[T, m...]` -> (T, [m...])."""
    meta: list[Any] = []
    while get_origin(ann) is Annotated:
        meta += list(ann.__metadata__)
        ann = get_args(ann)[0]
    return ann, meta


def _members(ann: Any) -> list[Any]:
    """The members of a union (None included), or [ann]."""
    if get_origin(ann) in (Union, types.UnionType):
        return list(get_args(ann))
    return [ann]


def _is_model(ann: Any) -> bool:
    return inspect.isclass(ann) and issubclass(ann, BaseModel)


def _tag_field(models: Sequence[type[BaseModel]]) -> tuple[str, list[Any]] | None:
    """The field that tells a union's sections apart: a one-value Literal in each (`kind`)."""
    for name in models[0].model_fields:
        values: list[Any] = []
        for m in models:
            g = m.model_fields.get(name)
            lit = _unwrap(g.annotation)[0] if g is not None else None
            if get_origin(lit) is not Literal or len(get_args(lit)) != 1:
                break
            values += get_args(lit)
        else:
            if len(set(values)) == len(values):
                return name, values
    return None


def _choices(values: Iterable[Any]) -> str:
    shown = [repr(v) for v in values]
    return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"


def _num(v: Any) -> str:
    """A bound as pydantic's messages write it: 0.0 -> 0."""
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


def _bounds(meta: Iterable[Any]) -> str:
    parts = []
    for m in meta:
        for cls, attr, op in (
            (at.Ge, "ge", ">="),
            (at.Gt, "gt", ">"),
            (at.Le, "le", "<="),
            (at.Lt, "lt", "<"),
        ):
            if isinstance(m, cls):
                parts.append(f"{op} {_num(getattr(m, attr))}")
    return " and ".join(parts)


def _lengths(meta: Iterable[Any], unit: str) -> str:
    lo = next((m.min_length for m in meta if isinstance(m, at.MinLen)), None)
    hi = next((m.max_length for m in meta if isinstance(m, at.MaxLen)), None)
    if lo is not None and lo == hi:
        text = f"exactly {lo}"
    elif lo is not None and hi is not None:
        text = f"{lo} to {hi}"
    elif lo:
        text = f"at least {lo}"
    elif hi is not None:
        text = f"at most {hi}"
    else:
        return ""
    return f"{text} {unit}" if (hi or lo) != 1 else f"{text} {unit.removesuffix('s')}"


def allowed(ann: Any, meta: Sequence[Any] = ()) -> str:
    """What a field of type `ann` (with pydantic constraints `meta`) accepts, in words."""
    ann, inner = _unwrap(ann)
    meta = [*meta, *inner]
    members = _members(ann)
    nullable = type(None) in members
    members = [m for m in members if m is not type(None)]
    if not members:
        return "null"
    if len(members) > 1:
        models = [m for m in members if _is_model(m)]
        tag = _tag_field(models) if len(models) == len(members) else None
        if tag is not None:
            text = f"a mapping whose {tag[0]} is {_choices(tag[1])}"
        else:
            text = ", ".join(allowed(m) for m in members[:-1]) + f" or {allowed(members[-1])}"
        return f"{text} or null" if nullable else text
    base, inner = _unwrap(members[0])
    text = _allowed_one(base, [*meta, *inner])
    return f"{text}, or null" if nullable else text


def _allowed_one(ann: Any, meta: Sequence[Any]) -> str:
    origin, args = get_origin(ann), get_args(ann)
    bounds = _bounds(meta)
    if any(m in _PATH_CHECKS for m in meta):
        return RELATIVE
    if origin is Literal:
        return f"one of {_choices(args)}"
    if _is_model(ann):
        return f"a mapping with keys {', '.join(ann.model_fields)}"
    if ann is bool:
        return "a boolean (true or false)"
    if ann is int:
        return f"an integer {bounds}".rstrip()
    if ann is float:
        return f"a number {bounds}".rstrip()
    if ann is str:
        text = "a string"
        pattern = next(
            (getattr(m, "pattern", None) for m in meta if getattr(m, "pattern", None)), None
        )
        size = _lengths(meta, "characters")
        if pattern:
            text += f" matching {pattern}"
        return f"{text} of {size}" if size else text
    if origin in (list, tuple, set, frozenset):
        size = _lengths(meta, "items")
        text = f"a list of {size}" if size else "a list"
        item = allowed(args[0]) if args else "any value"
        return text if item == "any value" else f"{text}, each {item}"
    if origin is dict or ann is dict:
        value = allowed(args[1]) if args else "any value"
        return "a mapping" if value == "any value" else f"a mapping, each value {value}"
    if ann is Any:
        return "any value"
    return getattr(ann, "__name__", str(ann))


# -- where an error points -------------------------------------------------------------------


@dataclass
class Place:
    """Where a pydantic error points, as the user wrote it: union tags dropped."""

    loc: list[Any] = field(default_factory=list)
    ann: Any = None  # the type expected there; None: not known
    meta: list[Any] = field(default_factory=list)
    parent: type[BaseModel] | None = None  # the section holding the last key
    tag_last: bool = False  # the last loc part was a union member's tag


def _names_member(tag: Any, ann: Any) -> bool:
    """Whether pydantic's loc part `tag` names the union member `ann` (`int`, `list[...]`)."""
    origin = get_origin(ann)
    if origin is None:
        return inspect.isclass(ann) and tag == ann.__name__
    return str(tag).startswith(f"{getattr(origin, '__name__', '')}[")


def _member_for_tag(members: Sequence[Any], tag: Any) -> Any:
    for m in members:
        base, _ = _unwrap(m)
        if _is_model(base):
            if tag == base.__name__:
                return m
            for f in base.model_fields.values():
                lit = _unwrap(f.annotation)[0]
                if get_origin(lit) is Literal and tag in get_args(lit):
                    return m
        elif _names_member(tag, base):
            return m
    return None


def place(model: type[BaseModel], loc: Iterable[Any]) -> Place:
    """Follow `loc` (a pydantic error's) through `model`'s fields."""
    out = Place(ann=model)
    for part in loc:
        ann = _unwrap(out.ann)[0]
        members = [m for m in _members(ann) if m is not type(None)]
        out.tag_last = False
        if out.ann is not None and len(members) > 1:  # pydantic names the member it tried
            chosen = _member_for_tag(members, part)
            out.ann, out.meta, out.tag_last = chosen, [], True
            continue
        base = members[0] if members else None
        out.loc.append(part)
        if _is_model(base):
            f = base.model_fields.get(str(part))
            out.parent = base
            out.ann, out.meta = (f.annotation, list(f.metadata)) if f else (None, [])
            continue
        origin, args = get_origin(base), get_args(base)
        if origin in (list, tuple, set, frozenset) and isinstance(part, int) and args:
            out.ann, out.meta = args[0], []
        elif origin is dict and args:
            out.ann, out.meta = args[1], []
        else:
            out.ann, out.meta = None, []
    return out


def _unknown(where: str, sections: Iterable[Any]) -> str:
    names: list[str] = []
    for m in sections:
        if _is_model(m):
            names += [n for n in m.model_fields if n not in names]
    if not names:
        return f"{where}: unknown key"
    return f"{where}: unknown key; allowed keys here: {', '.join(names)}"


def unknown_key(model: type[BaseModel], key: str) -> str:
    """`key: unknown key; allowed keys here: ...` for a dotted key `model` does not have (a
    union of sections, like `source`, lists the keys of all its kinds)."""
    parents = key.split(".")[:-1]
    return _unknown(key, _members(_unwrap(place(model, parents).ann)[0]))


# -- messages --------------------------------------------------------------------------------


def _got(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _GOT_MAX else f"{text[: _GOT_MAX - 3]}..."


# pydantic's message names only the type (or, for a section, "a dictionary or instance of X")
_TYPE_ERRORS = ("_type", "_parsing", "int_from_float")


def describe(err: Mapping[str, Any], prefix: str = "", model: type[BaseModel] | None = None) -> str:
    """One line for one pydantic error: the dotted key, what is wrong, what is allowed."""
    where_at = place(model, err.get("loc", ())) if model is not None else None
    loc = where_at.loc if where_at is not None else list(err.get("loc", ()))
    where = dotted(prefix, loc) or "(top level)"
    kind, msg = err.get("type", ""), str(err.get("msg", "invalid value"))
    msg = msg.removeprefix("Value error, ")
    expected = allowed(where_at.ann, where_at.meta) if where_at and where_at.ann else None
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        return _unknown(where, [where_at.parent] if where_at is not None else [])
    if kind == "missing":
        return f"{where}: required key is missing" + (f"; expected {expected}" if expected else "")
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tag = str(ctx.get("discriminator", "kind")).strip("'")
        if kind == "union_tag_invalid":
            tags = ctx.get("expected_tags")
            return f"{where}.{tag}: must be one of {tags} (got {_got(ctx.get('tag'))})"
        union = _members(_unwrap(where_at.ann)[0]) if where_at else []
        found = _tag_field(union) if union and all(_is_model(m) for m in union) else None
        tags = f"one of {_choices(found[1])}" if found else f"a {tag}"
        return f"{where}.{tag}: required key is missing; expected {tags}"
    if isinstance(err.get("input"), dict) and kind in ("value_error", "assertion_error"):
        return f"{where}: {msg}"  # a check across keys: the message names them
    got = _got(err.get("input"))
    if expected and any(kind.endswith(t) for t in _TYPE_ERRORS):
        return f"{where}: expected {expected} (got {got})"
    if kind == "value_error" and got in msg:  # our own checks quote the value
        return f"{where}: {msg}"
    return f"{where}: {msg} (got {got})"


def _merge_union_errors(
    errors: Sequence[Mapping[str, Any]], model: type[BaseModel] | None
) -> list[tuple[Mapping[str, Any], list[Mapping[str, Any]]]]:
    """Errors of one value tried against each member of a union, as one group."""
    groups: list[tuple[Mapping[str, Any], list[Mapping[str, Any]]]] = []
    index: dict[tuple[Any, ...], int] = {}
    for e in errors:
        at_ = place(model, e.get("loc", ())) if model is not None else None
        if at_ is None or not at_.tag_last:
            groups.append((e, []))
            continue
        key = tuple(at_.loc)
        if key in index:
            groups[index[key]][1].append(e)
        else:
            index[key] = len(groups)
            groups.append((e, [e]))
    return groups


def _describe_union(
    members: Sequence[Mapping[str, Any]], prefix: str, model: type[BaseModel]
) -> str:
    first = members[0]
    loc = list(first.get("loc", ()))[:-1]  # the union itself
    at_ = place(model, loc)
    where = dotted(prefix, at_.loc) or "(top level)"
    if at_.ann is not None:
        return f"{where}: expected {allowed(at_.ann, at_.meta)} (got {_got(first.get('input'))})"
    msgs = [str(e.get("msg", "")).removeprefix("Input should be ") for e in members]
    return f"{where}: should be {' or '.join(dict.fromkeys(msgs))} (got {_got(first.get('input'))})"


def invalid(
    errors: Iterable[Mapping[str, Any]],
    prefix: str = "",
    source: str | None = None,
    model: type[BaseModel] | None = None,
) -> ConfigError:
    """A ConfigError listing every error; with the `model` validated, each line also says what
    the key allows and union members' errors become one line."""
    lines = []
    for e, members in _merge_union_errors(list(errors), model):
        if model is not None and len(members) > 1:
            lines.append(_describe_union(members, prefix, model))
        else:
            lines.append(describe(e, prefix, model))
    return ConfigError(f"{source or config_where()}: invalid config\n  " + "\n  ".join(lines))


def validate_config(model: type[M], data: Any, prefix: str, source: str | None = None) -> M:
    """Validate a config section; raise ConfigError listing every bad key as `prefix.key`."""
    if data is None:
        raise ConfigError(f"{source or config_where()}: section '{prefix}' is missing")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid(exc.errors(include_url=False), prefix, source, model) from None
