"""The Tunix SFT run manifest (data/export/run_manifest.yaml): the train stage's single source
of truth. Its sections are also the schemas of the `model`, `train` and `runtime` config groups.

Keys and defaults follow tunix-rt's manifest (`version`, `runner`, `mode`, `model.model_id`,
`dataset.format`, `dataset.path`, `training.*`, `output.output_dir`) with tunix-rt's ranges;
what it lacked (dataset key and hashes, tokenizer, mesh, seed, tunixrt version) is added.
This module never imports JAX.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MANIFEST_VERSION = "1.0"
GEMMA_LORA_MODULES = ".*q_einsum|.*kv_einsum|.*attn_vec_einsum|.*gate_proj|.*up_proj|.*down_proj"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TokenizerSection(_Strict):
    kind: Literal["byte", "sentencepiece"] = "byte"
    path: str | None = Field(None, description="tokenizer.model, required for sentencepiece")

    @model_validator(mode="after")
    def _path_for_sentencepiece(self) -> TokenizerSection:
        if self.kind == "sentencepiece" and not self.path:
            raise ValueError("tokenizer.path is required when tokenizer.kind is sentencepiece")
        return self


class ModelSection(_Strict):
    """`model` group: which Tunix model, from which weights."""

    model_id: str = Field(min_length=1, description="a name for the model, as tunix-rt had")
    family: Literal["gemma3", "gemma", "llama3", "qwen2", "qwen3"]
    preset: str = Field(
        min_length=1,
        description="a Tunix ModelConfig factory of the family (e.g. gemma3_270m), or `tiny`",
    )
    config: dict[str, Any] = Field(
        default_factory=dict, description="ModelConfig fields set on top of the preset"
    )
    checkpoint_path: str | None = Field(
        None, description="local folder with the weights; None = random init (tiny only)"
    )
    dtype: Literal["float32", "bfloat16"] = "float32"
    tokenizer: TokenizerSection = Field(default_factory=TokenizerSection)


class LoraSection(_Strict):
    enabled: bool = False
    rank: int = Field(16, ge=1, le=4096)
    alpha: float = Field(32.0, gt=0)
    module_path: str = GEMMA_LORA_MODULES


class TrainingSection(_Strict):
    """`train` group. Defaults are tunix-rt's; conf/train/ sets values for the tiny CPU model."""

    learning_rate: float = Field(2e-5, gt=0, le=1)
    weight_decay: float = Field(0.01, ge=0)
    num_epochs: int = Field(3, ge=1, le=100)
    batch_size: int = Field(8, ge=1, le=512)
    max_seq_length: int = Field(2048, ge=128, le=32768)
    max_steps: int | None = Field(None, ge=1, description="overrides num_epochs when set")
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    end_lr_ratio: float = Field(0.0, ge=0, le=1, description="cosine decays to lr * this")
    b1: float = Field(0.9, gt=0, lt=1)
    b2: float = Field(0.999, gt=0, lt=1)
    max_grad_norm: float | None = Field(1.0, gt=0)
    gradient_accumulation_steps: int = Field(1, ge=1)
    packing: bool = False
    lora: LoraSection = Field(default_factory=LoraSection)
    checkpoint_every_steps: int = Field(100, ge=1)
    keep_checkpoints: int = Field(2, ge=1)
    eval_every_steps: int | None = Field(None, ge=1)
    seed: int = 0


class RuntimeSection(_Strict):
    """`runtime` group: the device mesh."""

    name: str = "cpu"
    platform: Literal["cpu", "tpu", "gpu"] = "cpu"
    mesh_shape: list[int] = Field(default_factory=lambda: [1, 1], min_length=2, max_length=2)
    mesh_axes: list[str] = Field(default_factory=lambda: ["fsdp", "tp"], min_length=2, max_length=2)
    multi_host: bool = Field(False, description="call jax.distributed.initialize() first")
    simulated_devices: int | None = Field(
        None, ge=1, description="CPU only: --xla_force_host_platform_device_count, for tests"
    )

    @model_validator(mode="after")
    def _positive_mesh(self) -> RuntimeSection:
        if any(n < 1 for n in self.mesh_shape):
            raise ValueError("mesh_shape entries must be >= 1")
        return self


class SplitFile(_Strict):
    path: str
    sha256: str
    records: int = Field(ge=0)


class DatasetSection(_Strict):
    format: str
    reasoning_style: str
    system_prompt: str | None = None
    path: str = Field(description="the training file, as tunix-rt named it")
    dataset_key: str
    content_sha256: str
    splits: dict[str, SplitFile]


class OutputSection(_Strict):
    output_dir: str = "runs/train"


class RunManifest(_Strict):
    version: Literal["1.0"] = MANIFEST_VERSION
    runner: Literal["tunix"] = "tunix"
    mode: Literal["sft"] = "sft"
    tunixrt_version: str
    seed: int
    model: ModelSection
    dataset: DatasetSection
    training: TrainingSection = Field(default_factory=TrainingSection)
    runtime: RuntimeSection = Field(default_factory=RuntimeSection)
    output: OutputSection = Field(default_factory=OutputSection)
