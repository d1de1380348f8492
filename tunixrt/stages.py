"""The stage registry: each stage's params keys and the one library function that runs it.

`tunixrt run STAGE` and the scripts in stages/ both end in `run_stage`, so they write the same
outs. A stage sees only the keys listed in `params`, exactly dvc.yaml's `params:` list for it
(tests/test_stage_deps.py checks that the two agree).
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
    params: tuple[str, ...]  # dotted keys of params.yaml, as dvc.yaml lists them
    target: str  # "module:function", imported lazily so data stages never import JAX


STAGES: dict[str, StageSpec] = {
    s.name: s
    for s in [
        StageSpec("ingest", ("source",), "tunixrt.ingest.stage:run"),
        StageSpec("dataset", ("dataset",), "tunixrt.dataset.stage:run"),
        StageSpec("export", ("format",), "tunixrt.export.stage:run"),
        StageSpec(
            "manifest",
            (
                "model",
                "train",
                "runtime",
                "format.name",
                "format.reasoning_style",
                "format.system_prompt",
                "eval",  # validated before training; evaluate uses it
            ),
            "tunixrt.manifest.build:run",
        ),
        StageSpec("train", (), "tunixrt.train.stage:run"),  # reads the run manifest only
        StageSpec("evaluate", ("eval",), "tunixrt.evaluate.stage:run"),
        StageSpec("report", (), "tunixrt.report:run"),
    ]
}


def select(params: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """Only `keys` (dotted) of `params`, nested as they are there; absent keys stay absent."""
    out: dict[str, Any] = {}
    for key in keys:
        *parents, leaf = key.split(".")
        src: Any = params
        dst = out
        for p in parents:
            src = src.get(p) if isinstance(src, Mapping) else None
            dst = dst.setdefault(p, {})
        if isinstance(src, Mapping) and leaf in src:
            dst[leaf] = src[leaf]
    return out


def run_stage(name: str, params: Mapping[str, Any], root: Path) -> None:
    if name not in STAGES:
        raise ConfigError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")
    spec = STAGES[name]
    module, func = spec.target.split(":")
    fn = getattr(importlib.import_module(module), func)
    fn(select(params, spec.params), root)


def main(name: str) -> None:
    """Entry point of stages/<name>.py: params.yaml in the current directory, errors as exit 2."""
    from tunixrt.params import load_params

    root = Path.cwd()
    try:
        run_stage(name, load_params(root), root)
    except TunixrtError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
