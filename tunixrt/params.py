"""params.yaml, as the DVC stages read it (Hydra is not involved: DVC composed it already)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunixrt.errors import ConfigError

PARAMS_FILE = "params.yaml"


def config_errors() -> tuple[type[Exception], ...]:
    """What reading or composing a config raises for a bad file or override (a YAMLError for a
    syntax error or a Python tag, which OmegaConf's safe loader refuses)."""
    import yaml
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    return (HydraException, OmegaConfBaseException, ValueError, yaml.YAMLError)


def load_params(root: Path) -> dict[str, Any]:
    path = root / PARAMS_FILE
    if not path.is_file():
        raise ConfigError(f"{path}: not found; run `tunixrt compose` to write it from conf/")
    return load_params_file(path)


def load_params_file(path: Path) -> dict[str, Any]:
    from omegaconf import OmegaConf

    try:
        return OmegaConf.to_container(OmegaConf.load(path), resolve=True)  # type: ignore[return-value]
    except config_errors() as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
