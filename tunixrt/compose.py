"""Compose conf/ with Hydra exactly as `dvc exp run` does (same API, same options)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tunixrt.errors import ConfigError

CONFIG_DIR = "conf"
CONFIG_NAME = "config"
PARAMS_FILE = "params.yaml"


def _hydra_errors() -> tuple[type[Exception], ...]:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    return (HydraException, OmegaConfBaseException, ValueError)


def _config_dir(root: Path) -> str:
    conf = (root / CONFIG_DIR).resolve()
    if not conf.is_dir():
        raise ConfigError(f"{conf}: no Hydra config folder here; run tunixrt from a pipeline root")
    return str(conf)


def compose(root: Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """conf/ composed with `overrides` (Hydra override grammar), resolved, as plain data."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    try:
        with initialize_config_dir(_config_dir(root), version_base=None):
            cfg = hydra_compose(config_name=CONFIG_NAME, overrides=list(overrides))
        OmegaConf.resolve(cfg)
    except _hydra_errors() as exc:
        raise ConfigError(f"conf/: cannot compose with {list(overrides)}: {exc}") from None
    return OmegaConf.to_container(cfg)  # type: ignore[return-value]


def write_params(root: Path, overrides: Sequence[str] = (), output: Path | None = None) -> Path:
    """Write params.yaml byte for byte as `dvc exp run` would (DVC's own compose_and_dump)."""
    from dvc.utils.hydra import compose_and_dump

    out = output or root / PARAMS_FILE
    try:
        compose_and_dump(out, _config_dir(root), None, CONFIG_NAME, str(root), list(overrides))
    except _hydra_errors() as exc:
        raise ConfigError(f"conf/: cannot compose with {list(overrides)}: {exc}") from None
    return out


def load_params(root: Path) -> dict[str, Any]:
    from omegaconf import OmegaConf

    path = root / PARAMS_FILE
    if not path.is_file():
        raise ConfigError(f"{path}: not found; run `tunixrt compose` to write it from conf/")
    try:
        return OmegaConf.to_container(OmegaConf.load(path), resolve=True)  # type: ignore[return-value]
    except _hydra_errors() as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
