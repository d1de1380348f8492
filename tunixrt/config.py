"""The whole composed config (params.yaml) as one typed model, validated when it is composed.

`tunixrt compose` and `tunixrt run` validate every section here, so a bad value anywhere fails
before any stage runs. Under `dvc exp run` (DVC composes params.yaml itself) each stage validates
its own sections, and the manifest stage also `eval`, so a bad value still stops the pipeline
before the train stage.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tunixrt.dataset.config import DatasetConfig
from tunixrt.evaluate.config import EvalConfig
from tunixrt.export.config import FormatConfig
from tunixrt.ingest.config import FilesSource, MixtureSource, SyntheticSource
from tunixrt.manifest.schema import ModelSection, RuntimeSection, TrainingSection
from tunixrt.preference.config import PreferenceConfig
from tunixrt.publish.config import PublishConfig
from tunixrt.rl.config import RLConfig
from tunixrt.validation import invalid

_SOURCE_KINDS = ("synthetic", "files", "mixture")


class PipelineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: Annotated[
        SyntheticSource | FilesSource | MixtureSource, Field(discriminator="kind")
    ] = Field(description="where traces come from (tunixrt/conf/source/)")
    dataset: DatasetConfig = Field(
        description="selection, dedup and splits (tunixrt/conf/dataset/)"
    )
    format: FormatConfig = Field(
        description="rendering and export selection (tunixrt/conf/format/)"
    )
    model: ModelSection = Field(description="which Tunix model, from which weights")
    train: TrainingSection = Field(description="optimizer, schedule, batches, LoRA")
    runtime: RuntimeSection = Field(description="the device mesh (tunixrt/conf/runtime/)")
    eval: EvalConfig = Field(description="what evaluate scores (tunixrt/conf/eval/)")
    rl: RLConfig = Field(description="GRPO after SFT, off by default (tunixrt/conf/rl/)")
    preference: PreferenceConfig = Field(
        description="DPO or ORPO after SFT, off by default (tunixrt/conf/preference/)"
    )
    publish: PublishConfig = Field(description="the published model (tunixrt/conf/publish/)")


def _untagged(err: Mapping[str, Any]) -> dict[str, Any]:
    """`source.synthetic.n` -> `source.n`: the union's tag is not a key the user wrote."""
    loc = tuple(err.get("loc", ()))
    if len(loc) > 1 and loc[0] == "source" and loc[1] in _SOURCE_KINDS:
        loc = (loc[0], *loc[2:])
    return {**err, "loc": loc}


def validate_pipeline(params: Mapping[str, Any], source: str | None = None) -> PipelineConfig:
    """The composed config as one model; its warnings (e.g. a real checkpoint with the tiny
    model's learning rate) go to stderr."""
    from tunixrt.manifest.build import training_warnings

    try:
        cfg = PipelineConfig.model_validate(params)
    except ValidationError as exc:
        raise invalid([_untagged(e) for e in exc.errors(include_url=False)], "", source) from None
    for line in training_warnings(cfg.model, cfg.train):
        print(line, file=sys.stderr)
    return cfg
