"""Compose conf/ with Hydra exactly as `dvc exp run` does (same API, same options), and validate
the result as a whole (`tunixrt.config`) before anything uses it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tunixrt.errors import ConfigError
from tunixrt.params import PARAMS_FILE, config_errors, load_params_file

CONFIG_DIR = "conf"
CONFIG_NAME = "config"


def _config_dir(root: Path) -> str:
    conf = (root / CONFIG_DIR).resolve()
    if not conf.is_dir():
        raise ConfigError(f"{conf}: no Hydra config folder here; run tunixrt from a pipeline root")
    return str(conf)


def composition_label(overrides: Sequence[str]) -> str:
    """How errors name a composed config, e.g. `conf/ composed with ['source.n=5']`."""
    return f"conf/ composed with {list(overrides)}" if overrides else "conf/ composed"


def _compose_error(exc: Exception, overrides: Sequence[str]) -> ConfigError:
    """Hydra's error, or for an override of a key no section has, the keys that section has."""
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    from tunixrt.config import PipelineConfig
    from tunixrt.validation import unknown_key

    cause = exc.__cause__
    key = getattr(cause, "full_key", None)
    overriding = str(exc).startswith("Could not override")
    why = str(exc)
    if overriding and isinstance(cause, (ConfigAttributeError, ConfigKeyError)) and key:
        known = unknown_key(PipelineConfig, str(key))
        if "allowed keys" in known:  # a section's key; in a free mapping, Hydra's `+` hint stays
            why = known
    return ConfigError(f"conf/: cannot compose with {list(overrides)}: {why}")


def _source_path_errors(params: dict[str, Any]) -> list[str]:
    """`source.paths` holds globs, which ingest matches on the disk (and refuses there what
    leaves the root); what needs no disk (a URL such as gs://, an absolute path, `..`) is
    refused here already, as the path keys of the other sections are when validated."""
    from tunixrt.paths import RELATIVE, leaves_root

    source = params.get("source")
    paths = source.get("paths") if isinstance(source, dict) else None
    if not isinstance(paths, list):
        return []
    return [
        f"source.paths.{k}: {p!r} {why}; expected {RELATIVE}"
        for k, p in enumerate(paths)
        if isinstance(p, str) and (why := leaves_root(p))
    ]


def _validate(params: dict[str, Any], overrides: Sequence[str]) -> None:
    """Every section, each bad key named with what it allows; then the whole (warnings)."""
    from tunixrt.config import PipelineConfig, validate_pipeline
    from tunixrt.validation import validate_config

    label = composition_label(overrides)
    validate_config(PipelineConfig, params, "", source=label)
    if bad := _source_path_errors(params):
        raise ConfigError(f"{label}: invalid config\n  " + "\n  ".join(bad))
    validate_pipeline(params, label)


def compose(root: Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """conf/ composed with `overrides` (Hydra override grammar), resolved, validated, as plain
    data."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    try:
        with initialize_config_dir(_config_dir(root), version_base=None):
            cfg = hydra_compose(config_name=CONFIG_NAME, overrides=list(overrides))
        OmegaConf.resolve(cfg)
    except config_errors() as exc:
        raise _compose_error(exc, overrides) from None
    params: dict[str, Any] = OmegaConf.to_container(cfg)  # type: ignore[assignment]
    _validate(params, overrides)
    return params


def write_params(root: Path, overrides: Sequence[str] = (), output: Path | None = None) -> Path:
    """Write params.yaml byte for byte as `dvc exp run` would (DVC's own compose_and_dump), once
    the composed config is valid."""
    from dvc.utils.hydra import compose_and_dump

    out = output or root / PARAMS_FILE
    tmp = out.with_name(f".{out.stem}.composing{out.suffix}")  # DVC dumps by suffix
    try:
        compose_and_dump(tmp, _config_dir(root), None, CONFIG_NAME, str(root), list(overrides))
        _validate(load_params_file(tmp), overrides)
        tmp.replace(out)
    except config_errors() as exc:
        raise _compose_error(exc, overrides) from None
    finally:
        tmp.unlink(missing_ok=True)
    return out
