"""Turn pydantic validation errors into one readable message naming each offending key.

Messages start with where the config came from: `params.yaml` for the DVC stages, or the
composition `tunixrt run` made (`config_source` sets it for the duration of a call).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from tunixrt.errors import ConfigError

M = TypeVar("M", bound=BaseModel)

_SOURCE: ContextVar[str] = ContextVar("config_source", default="params.yaml")


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


def describe(err: Mapping[str, Any], prefix: str = "") -> str:
    where = dotted(prefix, err.get("loc", ())) or "(top level)"
    if err.get("type") == "extra_forbidden":
        return f"{where}: unknown key"
    if err.get("type") == "missing":
        return f"{where}: required key is missing"
    if isinstance(err.get("input"), dict):  # a check across keys: the message names them
        return f"{where}: {err.get('msg', 'invalid value')}"
    return f"{where}: {err.get('msg', 'invalid value')} (got {err.get('input')!r})"


def invalid(errors: Iterable[Mapping[str, Any]], prefix: str = "", source: str | None = None):
    lines = [describe(e, prefix) for e in errors]
    return ConfigError(f"{source or config_where()}: invalid config\n  " + "\n  ".join(lines))


def validate_config(model: type[M], data: Any, prefix: str, source: str | None = None) -> M:
    """Validate a config section; raise ConfigError listing every bad key as `prefix.key`."""
    if data is None:
        raise ConfigError(f"{source or config_where()}: section '{prefix}' is missing")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid(exc.errors(include_url=False), prefix, source) from None
