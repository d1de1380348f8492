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


def compose(root: Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """conf/ composed with `overrides` (Hydra override grammar), resolved, validated, as plain
    data."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    from tunixrt.config import validate_pipeline

    try:
        with initialize_config_dir(_config_dir(root), version_base=None):
            cfg = hydra_compose(config_name=CONFIG_NAME, overrides=list(overrides))
        OmegaConf.resolve(cfg)
    except config_errors() as exc:
        raise ConfigError(f"conf/: cannot compose with {list(overrides)}: {exc}") from None
    params: dict[str, Any] = OmegaConf.to_container(cfg)  # type: ignore[assignment]
    validate_pipeline(params, composition_label(overrides))
    return params


def write_params(root: Path, overrides: Sequence[str] = (), output: Path | None = None) -> Path:
    """Write params.yaml byte for byte as `dvc exp run` would (DVC's own compose_and_dump), once
    the composed config is valid."""
    from dvc.utils.hydra import compose_and_dump

    from tunixrt.config import validate_pipeline

    out = output or root / PARAMS_FILE
    tmp = out.with_name(f".{out.stem}.composing{out.suffix}")  # DVC dumps by suffix
    try:
        compose_and_dump(tmp, _config_dir(root), None, CONFIG_NAME, str(root), list(overrides))
        validate_pipeline(load_params_file(tmp), composition_label(overrides))
        tmp.replace(out)
    except config_errors() as exc:
        raise ConfigError(f"conf/: cannot compose with {list(overrides)}: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return out
