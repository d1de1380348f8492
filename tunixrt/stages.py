"""The stage registry: each stage's params sections and the one library function that runs it.

`tunixrt run STAGE` and the scripts in stages/ both end in `run_stage`, so they write the same
outs. A stage sees only its own sections of the params, as dvc.yaml declares.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunixrt.errors import ConfigError, TunixrtError


@dataclass(frozen=True)
class StageSpec:
    name: str
    sections: tuple[str, ...]
    target: str  # "module:function", imported lazily so data stages never import JAX


STAGES: dict[str, StageSpec] = {
    s.name: s
    for s in [
        StageSpec("ingest", ("source",), "tunixrt.ingest.stage:run"),
        StageSpec("dataset", ("dataset",), "tunixrt.dataset.stage:run"),
        StageSpec("export", ("format",), "tunixrt.export.stage:run"),
        StageSpec(
            "manifest", ("model", "train", "runtime", "format"), "tunixrt.export.manifest:run"
        ),  # reads only format.name, format.reasoning_style and format.system_prompt
        StageSpec("train", (), "tunixrt.train.stage:run"),  # reads the run manifest only
        StageSpec("evaluate", ("eval",), "tunixrt.evaluate.stage:run"),
        StageSpec("report", (), "tunixrt.report:run"),
    ]
}


def run_stage(name: str, params: Mapping[str, Any], root: Path) -> None:
    if name not in STAGES:
        raise ConfigError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")
    spec = STAGES[name]
    module, func = spec.target.split(":")
    fn = getattr(importlib.import_module(module), func)
    fn({k: params.get(k) for k in spec.sections}, root)


def main(name: str) -> None:
    """Entry point of stages/<name>.py: params.yaml in the current directory, errors as exit 2."""
    from tunixrt.compose import load_params

    root = Path.cwd()
    try:
        run_stage(name, load_params(root), root)
    except TunixrtError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
