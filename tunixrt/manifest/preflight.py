"""What the manifest stage checks so that no stage after it fails on a value it could have
checked: the weights and tokenizer on disk (inside models/, which dvc.yaml tracks), the eval
sets there, a batch the data-parallel mesh can split, and how many training examples are
longer than train.max_seq_length (counted with the run's tokenizer, as training encodes them).
"""

from __future__ import annotations

import sys
from pathlib import Path

from tunixrt.errors import ConfigError
from tunixrt.evaluate.config import EvalConfig
from tunixrt.formats.spec import FormatSpec
from tunixrt.manifest.schema import LengthsSection, ModelSection, RuntimeSection, TrainingSection
from tunixrt.manifest.weights import checkpoint_dir, tokenizer_file
from tunixrt.paths import confined
from tunixrt.train.examples import length_table, read_export
from tunixrt.train.lengths import check_lengths, length_stats
from tunixrt.train.tokenizer import Tokenizer, make_tokenizer

# the libraries of the tokenizer kinds ([train] extra); `byte` needs none
TOKENIZER_LIBRARIES = {"sentencepiece": "sentencepiece", "huggingface": "tokenizers"}


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


def check_launcher(runtime: RuntimeSection) -> None:
    """runtime.launcher ray: what the hosts need to find before a run can start."""
    if runtime.launcher != "ray":
        return
    ray = runtime.ray
    if (ray.tpu is not None or ray.hosts > 1) and not runtime.shared_dir:
        raise ConfigError(
            "runtime.shared_dir: a training run on several Ray hosts writes its checkpoints to "
            "one folder every host sees; set it to a mount they share or a bucket, e.g. "
            "-S runtime.shared_dir=gs://BUCKET/tunixrt (docs/multihost.md)"
        )
    if ray.address is not None:  # another machine's hosts: no path relative to this root
        for key, value in (
            ("shared_dir", runtime.shared_dir),
            ("ray.host_workdir", ray.host_workdir),
        ):
            if value and "://" not in value and not value.startswith("/"):
                raise ConfigError(
                    f"runtime.{key}: {value!r} is relative to this machine (its pipeline root "
                    "or home), which the hosts of a cluster do not see; give an absolute path "
                    "(or a gs:// URL)"
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
    check_launcher(runtime)
    check_eval_sets(eval_cfg, root)


def _load_tokenizer(model: ModelSection, root: Path) -> tuple[Tokenizer | None, str]:
    """The run's tokenizer, or None and why it cannot be loaded here (its library is not
    installed, or its file does not load); a ConfigError (a wrong file for the template) stops."""
    kind = model.tokenizer.kind
    try:
        return make_tokenizer(model.tokenizer, root), ""
    except ModuleNotFoundError as exc:
        if exc.name != TOKENIZER_LIBRARIES.get(kind):
            raise
        return None, f"{exc.name} is not installed (tunixrt's `train` extra)"
    except (OSError, RuntimeError, ValueError) as exc:  # sentencepiece: RuntimeError
        return None, f"model.tokenizer.path {model.tokenizer.path} does not load: {exc}"


def check_sequence_lengths(
    model: ModelSection,
    training: TrainingSection,
    root: Path,
    train_split: Path,
    spec: FormatSpec | None = None,
) -> LengthsSection | None:
    """The training examples' token lengths against train.max_seq_length; a ConfigError when
    more than train.max_truncated_share are longer (train.long_examples keep) or would be
    dropped (drop, truncate_reasoning; `spec`, the export's format, is needed for the latter).
    None, said on stderr, when the tokenizer cannot be loaded here: the train stage then checks
    before it builds the model."""
    tokenizer, why = _load_tokenizer(model, root)
    if tokenizer is None:
        print(
            f"manifest: the token-length check (train.max_seq_length, "
            f"train.max_truncated_share) is left to the start of train: {why}",
            file=sys.stderr,
        )
        return None
    max_len, policy = training.max_seq_length, training.long_examples
    table = length_table(
        read_export(train_split), tokenizer, max_len, long_examples=policy, spec=spec
    )
    stats = length_stats(
        table.lengths, max_len=max_len, dropped=table.dropped, tokenizer=model.tokenizer.kind
    )
    line = check_lengths(stats, training.max_truncated_share, policy, table.floor)
    if line is not None:
        print(f"manifest: {line}", file=sys.stderr)
    return stats
