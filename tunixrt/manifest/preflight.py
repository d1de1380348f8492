"""What the manifest stage checks so that no stage after it fails on a value it could have
checked: the weights and tokenizer on disk (inside models/, which dvc.yaml tracks), the eval
sets there, and a batch the data-parallel mesh can split."""

from __future__ import annotations

from pathlib import Path

from tunixrt.errors import ConfigError
from tunixrt.evaluate.config import EvalConfig
from tunixrt.manifest.schema import ModelSection, RuntimeSection, TrainingSection
from tunixrt.manifest.weights import checkpoint_dir, tokenizer_file
from tunixrt.paths import confined


def data_parallel_size(runtime: RuntimeSection) -> int:
    return runtime.mesh_shape[runtime.mesh_axes.index("fsdp")] if "fsdp" in runtime.mesh_axes else 1


def check_batch_fits_mesh(training: TrainingSection, runtime: RuntimeSection) -> None:
    dp = data_parallel_size(runtime)
    if training.batch_size % dp:
        raise ConfigError(
            f"train.batch_size: {training.batch_size} does not split over the {dp} data-parallel "
            f"devices of runtime.mesh_shape {runtime.mesh_shape}; set train.batch_size to a "
            f"multiple of {dp} (e.g. {-(-training.batch_size // dp) * dp}) or change "
            "runtime.mesh_shape"
        )


def check_eval_sets(cfg: EvalConfig, root: Path) -> None:
    for i, text in enumerate(cfg.sets):
        if not confined(text, root, f"eval.sets[{i}]").is_file():
            raise ConfigError(
                f"eval.sets[{i}]: {text}: no such file; add it (e.g. under inputs/) or remove "
                "it from eval.sets (eval.sets=[] scores the held-out split only)"
            )


def preflight(
    model: ModelSection,
    training: TrainingSection,
    runtime: RuntimeSection,
    eval_cfg: EvalConfig,
    root: Path,
) -> None:
    tokenizer_file(model, root)
    checkpoint_dir(model, root)
    check_batch_fits_mesh(training, runtime)
    check_eval_sets(eval_cfg, root)
