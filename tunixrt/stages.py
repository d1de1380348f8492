"""The stage registry: each stage's params keys and the one library function that runs it.

`tunixrt run STAGE` and the scripts in stages/ both end in `run_stage`, so they write the same
outs. A stage sees only the keys listed in `params`, exactly dvc.yaml's `params:` list for it
(tests/test_stage_deps.py checks that the two agree).
"""

from __future__ import annotations

import importlib
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunixrt.errors import ConfigError, TunixrtError
from tunixrt.paths import (
    ATTEMPTS,
    CHECKPOINTS,
    DATASET_DIR,
    DATASET_MANIFEST,
    EVAL_METRICS,
    INGEST_REPORT,
    MODELS_DIR,
    PAIRS,
    PREDICTIONS,
    PREFERENCE_DIR,
    PREFERENCE_METRICS,
    PREFERENCE_PAIRS,
    PUBLISH_DIR,
    REJECTS,
    REMOVED,
    REPORT,
    REPORT_HTML,
    RL_DIR,
    RL_METRICS,
    RL_ROLLOUTS,
    RUN_MANIFEST,
    SPLITS,
    SUMMARY,
    TRACES,
    TRACES_DIR,
    TRAIN_DIR,
    TRAIN_METRICS,
    dataset_path,
    export_path,
)

Out = str | dict[str, dict[str, Any]]  # a dvc.yaml out: a path, or {path: options}


@dataclass(frozen=True)
class StageSpec:
    name: str
    params: tuple[str, ...]  # dotted keys of params.yaml, as dvc.yaml lists them
    target: str  # "module:function", imported lazily so data stages never import JAX
    deps: tuple[str, ...] = ()  # the data it reads (its code deps come from lineage.py)
    outs: tuple[Out, ...] = ()
    # globs of the working files the stage makes and removes itself: a killed run leaves them,
    # and the next run removes them first (as it does an out's `.<name>.*.tmp` file)
    scratch: tuple[str, ...] = ()


_NOT_CACHED = {"cache": False}
STAGES: dict[str, StageSpec] = {
    s.name: s
    for s in [
        StageSpec(
            "ingest",
            ("source",),
            "tunixrt.ingest.stage:run",
            deps=("inputs",),
            # no stage declares metrics: `dvc exp show` orders metric columns by stage, so the
            # top-level `metrics:` list (scaffold.METRICS) orders them: the summary first, the
            # ingest counters last
            outs=(
                TRACES.as_posix(),
                REJECTS.as_posix(),
                INGEST_REPORT.as_posix(),
                ATTEMPTS.as_posix(),  # what a labelled dump says is wrong: never SFT data
            ),
            scratch=(f"{TRACES_DIR}/.ingest-sort-*", f"{TRACES_DIR}/.ingest-dups-*"),
        ),
        StageSpec(
            "dataset",
            ("dataset", "eval.sets"),  # the eval sets: decontamination
            "tunixrt.dataset.stage:run",
            deps=(TRACES.as_posix(), "inputs"),  # eval sets (eval.sets) live with the traces
            outs=(
                *(dataset_path(s).as_posix() for s in SPLITS),
                DATASET_MANIFEST.as_posix(),
                REMOVED.as_posix(),
            ),
            scratch=(f"{DATASET_DIR}/.dataset-near-dups-*",),
        ),
        StageSpec(
            "export",
            ("format",),
            "tunixrt.export.stage:run",
            deps=(*(dataset_path(s).as_posix() for s in SPLITS), ATTEMPTS.as_posix()),
            outs=(*(export_path(s).as_posix() for s in SPLITS), PAIRS.as_posix()),
        ),
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
                "rl",  # validated before training; the rl stage uses it
                "preference",  # validated before training; the preference stage uses it
            ),
            "tunixrt.manifest.build:run",
            deps=(
                DATASET_MANIFEST.as_posix(),
                *(export_path(s).as_posix() for s in SPLITS),
                MODELS_DIR,  # replacing a downloaded file reruns the manifest (its digests)
            ),
            outs=(RUN_MANIFEST.as_posix(),),
        ),
        StageSpec(
            "train",
            (),  # reads the run manifest only
            "tunixrt.train.stage:run",
            deps=(
                RUN_MANIFEST.as_posix(),
                *(export_path(s).as_posix() for s in SPLITS),
                # the traces train.long_examples=truncate_reasoning renders again, shorter
                dataset_path("train").as_posix(),
                dataset_path("val").as_posix(),
            ),
            outs=(
                {f"{TRAIN_DIR}/{CHECKPOINTS}": {"persist": True}},
                f"{TRAIN_DIR}/live",
                {TRAIN_METRICS.as_posix(): _NOT_CACHED},
            ),
        ),
        StageSpec(
            "rl",
            ("rl",),
            "tunixrt.rl.stage:run",
            deps=(
                RUN_MANIFEST.as_posix(),
                *(export_path(s).as_posix() for s in SPLITS),
                f"{TRAIN_DIR}/{CHECKPOINTS}",
            ),
            outs=(
                {f"{RL_DIR}/{CHECKPOINTS}": {"persist": True}},
                f"{RL_DIR}/live",
                RL_ROLLOUTS.as_posix(),
                {RL_METRICS.as_posix(): _NOT_CACHED},
            ),
        ),
        StageSpec(
            "preference",
            ("preference",),
            "tunixrt.preference.stage:run",
            deps=(
                RUN_MANIFEST.as_posix(),
                *(export_path(s).as_posix() for s in SPLITS),
                PAIRS.as_posix(),
                f"{TRAIN_DIR}/{CHECKPOINTS}",
            ),
            outs=(
                {f"{PREFERENCE_DIR}/{CHECKPOINTS}": {"persist": True}},
                f"{PREFERENCE_DIR}/live",
                PREFERENCE_PAIRS.as_posix(),
                {PREFERENCE_METRICS.as_posix(): _NOT_CACHED},
            ),
        ),
        StageSpec(
            "evaluate",
            (
                "eval",
                "rl.enabled",
                "rl.lora",
                "preference.enabled",
                "preference.algorithm",
                "preference.lora",
                "preference.seed",  # new adapters' init (preference.lora), as training built them
            ),
            "tunixrt.evaluate.stage:run",
            deps=(
                RUN_MANIFEST.as_posix(),
                *(export_path(s).as_posix() for s in SPLITS),
                f"{TRAIN_DIR}/{CHECKPOINTS}",
                f"{RL_DIR}/{CHECKPOINTS}",  # the GRPO model, when rl.enabled
                f"{PREFERENCE_DIR}/{CHECKPOINTS}",  # the DPO/ORPO model, when preference.enabled
                "inputs",  # eval sets (eval.sets) live with the traces
            ),
            outs=(PREDICTIONS.as_posix(), {EVAL_METRICS.as_posix(): _NOT_CACHED}),
        ),
        StageSpec(
            "publish",
            (
                "publish",
                "rl.enabled",
                "rl.lora",
                "preference.enabled",
                "preference.algorithm",
                "preference.lora",
                "preference.seed",
            ),
            "tunixrt.publish.stage:run",
            deps=(
                RUN_MANIFEST.as_posix(),
                f"{TRAIN_DIR}/{CHECKPOINTS}",
                f"{RL_DIR}/{CHECKPOINTS}",  # the GRPO policy, when rl.enabled
                f"{PREFERENCE_DIR}/{CHECKPOINTS}",  # the DPO/ORPO policy, when preference.enabled
                TRAIN_METRICS.as_posix(),
                RL_METRICS.as_posix(),
                EVAL_METRICS.as_posix(),
                MODELS_DIR,  # the tokenizer files and the base model's license
            ),
            outs=(PUBLISH_DIR.as_posix(),),
        ),
        StageSpec(
            "report",
            (),
            "tunixrt.report.stage:run",
            deps=(
                DATASET_MANIFEST.as_posix(),
                RUN_MANIFEST.as_posix(),
                TRAIN_METRICS.as_posix(),
                f"{TRAIN_DIR}/live",
                EVAL_METRICS.as_posix(),
                PREDICTIONS.as_posix(),
                PUBLISH_DIR.as_posix(),  # the published model's section (its card and files)
            ),
            outs=(
                {SUMMARY.as_posix(): _NOT_CACHED},
                {REPORT.as_posix(): _NOT_CACHED},
                {REPORT_HTML.as_posix(): _NOT_CACHED},
            ),
        ),
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


def out_path(out: Out) -> str:
    return out if isinstance(out, str) else next(iter(out))


def leftovers(spec: StageSpec, root: Path) -> list[Path]:
    """What a killed run of the stage left: its outs' temporary files (`.<name>.*.tmp`, as
    jsonio.atomic_writer names them) and its scratch."""
    found: list[Path] = []
    for out in spec.outs:
        path = root / out_path(out)
        found += path.parent.glob(f".{path.name}.*.tmp")
    for pattern in spec.scratch:
        found += root.glob(pattern)
    return sorted(found)


def remove_leftovers(spec: StageSpec, root: Path) -> None:
    for path in leftovers(spec, root):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def run_stage(name: str, params: Mapping[str, Any], root: Path) -> None:
    if name not in STAGES:
        raise ConfigError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")
    spec = STAGES[name]
    module, func = spec.target.split(":")
    fn = getattr(importlib.import_module(module), func)
    remove_leftovers(spec, root)
    fn(select(params, spec.params), root)


def check_code(name: str, recorded: str) -> None:
    """A plugin pipeline's dvc.yaml records each stage's code digest; refuse to run other code."""
    from tunixrt.lineage import code_digest

    if name not in STAGES:
        raise ConfigError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")
    installed = code_digest(name, STAGES[name].target)
    if installed != recorded:
        raise ConfigError(
            f"dvc.yaml: stage {name}: written for tunixrt code {recorded}, the installed tunixrt "
            f"has {installed} (upgraded?); run `tunixrt init --upgrade` to rewrite dvc.yaml, then "
            "`dvc repro` reruns exactly the stages whose code changed"
        )


def main(name: str, code: str | None = None) -> None:
    """Entry point of a stage under DVC: params.yaml in the current directory, errors as exit 2.
    `code` is the digest a plugin pipeline's dvc.yaml recorded (`python -m tunixrt.stages`)."""
    from tunixrt.params import load_params

    root = Path.cwd()
    # No stage uses PyTorch, and where it is installed, Tunix's metrics logger imports it (through
    # metrax and tensorboardX, which only want to accept torch tensors): 2 s of every train and
    # rl process. A stage process is tunixrt's own, so `import torch` fails in it instead.
    sys.modules.setdefault("torch", None)  # type: ignore[arg-type]
    try:
        if code is not None:
            check_code(name, code)
        run_stage(name, load_params(root), root)
    except TunixrtError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)


if __name__ == "__main__":  # python -m tunixrt.stages STAGE [--code DIGEST]
    import argparse

    cli = argparse.ArgumentParser(prog="python -m tunixrt.stages")
    cli.add_argument("stage", choices=list(STAGES))
    cli.add_argument("--code", help="the code digest dvc.yaml recorded for the stage")
    args = cli.parse_args()
    main(args.stage, args.code)
