"""Turn pydantic validation errors into one readable message naming each offending key."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from tunixrt.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def dotted(prefix: str, loc: Iterable[Any]) -> str:
    parts = [prefix] if prefix else []
    parts += [str(p) for p in loc]
    return ".".join(parts)


def describe(err: Mapping[str, Any], prefix: str = "") -> str:
    where = dotted(prefix, err.get("loc", ()))
    if err.get("type") == "extra_forbidden":
        return f"{where}: unknown key"
    if err.get("type") == "missing":
        return f"{where}: required key is missing"
    return f"{where}: {err.get('msg', 'invalid value')} (got {err.get('input')!r})"


def validate_config(model: type[M], data: Any, prefix: str, source: str = "params.yaml") -> M:
    """Validate a config section; raise ConfigError listing every bad key as `prefix.key`."""
    if data is None:
        raise ConfigError(f"{source}: section '{prefix}' is missing")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        lines = [describe(e, prefix) for e in exc.errors(include_url=False)]
        raise ConfigError(f"{source}: invalid config\n  " + "\n  ".join(lines)) from None
