"""The manifest stage: export files + `model`/`train`/`runtime` params -> run_manifest.yaml.

The format fields go through the same `FormatSpec` the export stage parsed (so they are the
enums the formats define, and the system prompt is normalized as export normalized it). The
`eval` section is validated here too: the manifest stage runs before training, so a bad
`eval.*` value stops the pipeline before the expensive stage rather than after it.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
import yaml

from tunixrt import installed_version
from tunixrt.errors import ConfigError, DataError
from tunixrt.evaluate.config import EvalConfig
from tunixrt.formats.spec import FormatSpec
from tunixrt.jsonio import atomic_writer, read_json
from tunixrt.manifest.load import digest_and_count
from tunixrt.manifest.preflight import check_sequence_lengths, preflight
from tunixrt.manifest.schema import (
    DatasetSection,
    ModelSection,
    RunManifest,
    RuntimeSection,
    SplitFile,
    TrainingSection,
)
from tunixrt.manifest.weights import weights_section
from tunixrt.paths import DATASET_MANIFEST, RUN_MANIFEST, SPLITS, export_path
from tunixrt.preference.config import PreferenceConfig
from tunixrt.rl.config import RLConfig
from tunixrt.validation import validate_config

FROM_SCRATCH_LR = 1e-3  # above this, a learning rate is for training from random init


def training_warnings(model: ModelSection, training: TrainingSection) -> list[str]:
    """What a user who picked a real checkpoint but kept the tiny model's `train` values (the
    default group) should hear before spending accelerator time."""
    if model.preset == "tiny" or training.learning_rate <= FROM_SCRATCH_LR:
        return []
    return [
        f"warning: model {model.model_id} starts from pretrained weights, but "
        f"train.learning_rate={training.learning_rate} is a from-scratch value (the tiny CPU "
        "model's): it would wreck them. Use train=tunix_rt (2e-5, tunix-rt's values) or an "
        "experiment= preset for the model (tunixrt/conf/experiment/)"
    ]


def _first_record(path: Path) -> dict[str, Any] | None:
    with open(path, "rb") as fh:
        for line in fh:
            if line.strip():
                return orjson.loads(line)
    return None


def build_run_manifest(params: Mapping[str, Any], root: Path) -> RunManifest:
    model = validate_config(ModelSection, params.get("model"), "model")
    training = validate_config(TrainingSection, params.get("train"), "train")
    runtime = validate_config(RuntimeSection, params.get("runtime"), "runtime")
    spec = validate_config(FormatSpec, params.get("format"), "format")
    eval_cfg = validate_config(EvalConfig, params.get("eval"), "eval")
    rl = validate_config(RLConfig, params.get("rl", {}), "rl")  # absent: GRPO off
    if rl.enabled and spec.name != "grpo":
        raise ConfigError(
            f"rl.enabled: GRPO samples from the grpo rendering of the train split, and "
            f"format.name is {spec.name!r}; set format=grpo (experiment=grpo does)"
        )
    if rl.enabled and rl.lora.enabled and training.lora.enabled:
        raise ConfigError(
            "rl.lora.enabled: SFT trained LoRA adapters (train.lora.enabled), and GRPO goes on "
            "training those; new adapters apply only after a full fine-tune"
        )
    pref = validate_config(PreferenceConfig, params.get("preference", {}), "preference")
    if pref.enabled and pref.lora.enabled and training.lora.enabled:
        raise ConfigError(
            "preference.lora.enabled: SFT trained LoRA adapters (train.lora.enabled), and DPO/"
            "ORPO goes on training those; new adapters apply only after a full fine-tune"
        )
    if pref.enabled and not (pref.pairs.labelled or pref.pairs.on_policy):
        raise ConfigError(
            "preference.pairs: labelled and on_policy are both false: no pair to train on"
        )
    preflight(model, training, runtime, eval_cfg, root)
    if not (root / DATASET_MANIFEST).is_file():
        raise DataError(f"{DATASET_MANIFEST}: not found; run the dataset stage first")
    ds = read_json(root / DATASET_MANIFEST)
    splits: dict[str, SplitFile] = {}
    for s in SPLITS:
        path = root / export_path(s)
        if not path.is_file():
            raise DataError(f"{export_path(s)}: not found; run the export stage first")
        sha, n = digest_and_count(path)
        splits[s] = SplitFile(path=export_path(s).as_posix(), sha256=sha, records=n)
    first_train = _first_record(root / export_path("train"))
    if first_train is None:
        raise DataError(f"{export_path('train')}: no training records")
    if not all(isinstance(first_train.get(k), str) for k in ("prompt", "completion")):
        raise ConfigError(
            f"format.name: {spec.name!r} records carry no prompt/completion to train on; "
            "choose tunix_sft, messages, prompt_completion, tunixrt_legacy or grpo"
        )
    lengths = check_sequence_lengths(model, training, root, root / export_path("train"), spec)
    return RunManifest(
        tunixrt_version=installed_version(),
        libraries=RunManifest.installed_libraries(),
        seed=training.seed,
        model=model,
        dataset=DatasetSection(
            format=spec.name,
            reasoning_style=spec.reasoning_style,
            system_prompt=spec.system_prompt,
            path=splits["train"].path,
            dataset_key=ds["dataset_key"],
            content_sha256=ds["content_sha256"],
            splits=splits,
        ),
        training=training,
        runtime=runtime,
        weights=weights_section(model, root),
        lengths=lengths,
    )


def dump_manifest(m: RunManifest) -> bytes:
    text = yaml.safe_dump(m.model_dump(mode="json"), sort_keys=False, allow_unicode=True, width=100)
    return text.encode()


def run(params: Mapping[str, Any], root: Path) -> None:
    (root / RUN_MANIFEST).unlink(missing_ok=True)
    m = build_run_manifest(params, root)
    for line in training_warnings(m.model, m.training):
        print(line, file=sys.stderr)
    with atomic_writer(root / RUN_MANIFEST) as fh:
        fh.write(dump_manifest(m))
    t = m.training
    print(
        f"manifest: {m.model.model_id} on {m.dataset.dataset_key} ({m.dataset.format}), "
        f"lr {t.learning_rate}, batch {t.batch_size}, seq {t.max_seq_length} -> {RUN_MANIFEST}",
        file=sys.stderr,
    )
