"""The run manifest's typed sections; `model`, `train` and `runtime` are also the schemas of
those config groups.

Keys and defaults follow tunix-rt's manifest (`version`, `runner`, `mode`, `model.model_id`,
`dataset.format`, `dataset.path`, `training.*`, `output.output_dir`) with tunix-rt's ranges;
what it lacked (dataset key and hashes, tokenizer, mesh, seed, tunixrt and library versions) is
added.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tunixrt.chat_templates import FAMILY_TEMPLATES, ChatTemplateName
from tunixrt.formats.spec import FormatName, FormatSpec, ReasoningStyleName
from tunixrt.paths import TRAIN_DIR, WorkspacePath

MANIFEST_VERSION = "1.0"
LongExamplesPolicy = Literal["keep", "drop", "truncate_reasoning"]
_GEMMA_LORA = ".*q_einsum|.*kv_einsum|.*attn_vec_einsum|.*gate_proj|.*up_proj|.*down_proj"
_LLAMA_LORA = ".*q_proj|.*k_proj|.*v_proj|.*o_proj|.*gate_proj|.*up_proj|.*down_proj"
LORA_MODULES = {  # each family's attention and MLP projections (Tunix's module names)
    "gemma3": _GEMMA_LORA,
    "gemma": _GEMMA_LORA,
    "gemma4": _GEMMA_LORA + "|.*k_einsum",  # k_einsum: the 31B's and 26B's global layers
    "llama3": _LLAMA_LORA,
    "qwen2": _LLAMA_LORA,
    "qwen3": _LLAMA_LORA,
}


# The training stack whose versions a run manifest records (distribution names, as pip knows them).
LIBRARIES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "google-tunix", "qwix")


def installed_libraries() -> dict[str, str | None]:
    """The installed version of each of LIBRARIES, None where one is not installed. Read from
    the distributions' metadata, nothing imported: the data stages never import JAX."""
    out: dict[str, str | None] = {}
    for dist in LIBRARIES:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out


def library_differences(
    recorded: Mapping[str, Any], installed: Mapping[str, str | None] | None = None
) -> list[tuple[str, str | None, str | None]]:
    """(library, recorded version, installed version) where a run manifest's `libraries` differ
    from what is installed; none for a manifest that records none (an older tunixrt's)."""
    now = installed_libraries() if installed is None else installed
    return [
        (lib, ver, now.get(lib))
        for lib, ver in sorted(recorded.items())
        if isinstance(lib, str) and ver != now.get(lib)
    ]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TokenizerSection(_Strict):
    kind: Literal["byte", "sentencepiece", "huggingface"] = Field(
        "byte",
        description="byte: UTF-8 bytes plus Gemma's special tokens (tiny models); "
        "sentencepiece: a tokenizer.model file (Gemma checkpoints); huggingface: a "
        "tokenizer.json file (Qwen, Llama, or Gemma), with the model's chat template",
    )
    path: WorkspacePath | None = Field(
        None,
        description="tokenizer.model (sentencepiece) or tokenizer.json (huggingface), relative "
        "to the pipeline root",
    )
    chat_template: ChatTemplateName | None = Field(
        None,
        description="huggingface only: the chat template the model was tuned with (gemma, "
        "qwen2.5, qwen3, llama3); null = the family's",
    )

    @model_validator(mode="after")
    def _path_and_template(self) -> TokenizerSection:
        if self.kind != "byte" and not self.path:
            raise ValueError(f"tokenizer.path is required when tokenizer.kind is {self.kind}")
        if self.chat_template is not None and self.kind != "huggingface":
            raise ValueError(
                "tokenizer.chat_template applies to kind huggingface only (byte and "
                "sentencepiece tokenizers keep Gemma's turn markers)"
            )
        return self


class ModelSection(_Strict):
    """`model` group: which Tunix model, from which weights."""

    model_id: str = Field(min_length=1, description="a name for the model, as tunix-rt had")
    family: Literal["gemma3", "gemma", "gemma4", "llama3", "qwen2", "qwen3"] = Field(
        description="the Tunix model family (tunix.models.<family>)"
    )
    preset: str = Field(
        min_length=1,
        description="a Tunix ModelConfig factory of the family (e.g. gemma3_270m), or `tiny`",
    )
    config: dict[str, Any] = Field(
        default_factory=dict, description="ModelConfig fields set on top of the preset"
    )
    checkpoint_path: WorkspacePath | None = Field(
        None,
        description="folder with the weights, relative to the pipeline root; None = random init "
        "(tiny only)",
    )
    dtype: Literal["float32", "bfloat16"] = Field(
        "float32", description="parameter and compute dtype"
    )
    tokenizer: TokenizerSection = Field(
        default_factory=TokenizerSection, description="how text becomes token ids"
    )

    @model_validator(mode="after")
    def _tokenizer_fits_family(self) -> ModelSection:
        tok = self.tokenizer
        if tok.kind == "huggingface" and tok.chat_template is None:
            self.tokenizer = tok.model_copy(update={"chat_template": FAMILY_TEMPLATES[self.family]})
        if (
            self.family in ("gemma4", "llama3", "qwen2", "qwen3")
            and self.checkpoint_path is not None
            and tok.kind != "huggingface"
        ):
            raise ValueError(
                f"tokenizer.kind: {self.family} weights were trained on their own "
                f"tokenizer.json; with a {tok.kind} tokenizer their embeddings mean nothing. "
                "Set tokenizer.kind=huggingface and tokenizer.path to the checkpoint's "
                "tokenizer.json"
            )
        return self


class LoraSection(_Strict):
    enabled: bool = Field(False, description="train LoRA adapters instead of all weights")
    rank: int = Field(16, ge=1, le=4096, description="adapter rank")
    alpha: float = Field(32.0, gt=0, description="adapter scale numerator (scale = alpha/rank)")
    module_path: str | None = Field(
        None,
        description="regex of the module paths that get adapters; null = the family's "
        "attention and MLP projections",
    )


class TrainingSection(_Strict):
    """`train` group. Defaults are tunix-rt's; tunixrt/conf/train/default.yaml sets values for
    the tiny CPU model."""

    learning_rate: float = Field(2e-5, gt=0, le=1, description="peak learning rate (AdamW)")
    weight_decay: float = Field(0.01, ge=0, description="AdamW decoupled weight decay")
    num_epochs: int = Field(3, ge=1, le=100, description="passes over the training split")
    batch_size: int = Field(8, ge=1, le=512, description="examples (rows) per micro-batch")
    max_seq_length: int = Field(
        2048, ge=128, le=32768, description="tokens per row; longer examples are truncated"
    )
    max_truncated_share: float = Field(
        0.05,
        ge=0,
        le=1,
        description="the largest share of training examples that may be longer than "
        "max_seq_length (and lose the end of their completion); above it the manifest stage "
        "stops, naming the numbers. 0: none may be; 1: never stop. Under long_examples drop it "
        "bounds the share left out, under truncate_reasoning the share that does not fit even "
        "with no reasoning steps",
    )
    long_examples: LongExamplesPolicy = Field(
        "keep",
        description="what becomes of a training (and validation) example longer than "
        "max_seq_length. keep: its first max_seq_length tokens are trained on (the completion "
        "loses its end); drop: it is not trained on; truncate_reasoning: its completion is "
        "rendered again with the first k reasoning steps of its trace, k the most that fit, so "
        "the prompt and the final answer stay whole (dropped when even no step fits)",
    )
    max_steps: int | None = Field(None, ge=1, description="overrides num_epochs when set")
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="fraction of steps of linear warm-up")
    end_lr_ratio: float = Field(0.0, ge=0, le=1, description="cosine decays to lr * this")
    b1: float = Field(0.9, gt=0, lt=1, description="AdamW beta1")
    b2: float = Field(0.999, gt=0, lt=1, description="AdamW beta2")
    max_grad_norm: float | None = Field(
        1.0, gt=0, description="clip the global gradient norm to this; None: no clipping"
    )
    gradient_accumulation_steps: int = Field(
        1, ge=1, description="micro-batches per optimizer step"
    )
    packing: bool = Field(False, description="pack several examples into one row")
    lora: LoraSection = Field(default_factory=LoraSection, description="LoRA adapters")
    checkpoint_every_steps: int = Field(100, ge=1, description="save a checkpoint every N steps")
    keep_checkpoints: int = Field(2, ge=1, description="how many checkpoints to keep")
    eval_every_steps: int | None = Field(
        None, ge=1, description="val-split loss every N steps; None: never"
    )
    seed: int = Field(0, description="root of every random stream: init, LoRA, data order")


class RayTpuSlice(_Strict):
    """One TPU slice, reserved whole with Ray's `ray.util.tpu.slice_placement_group`."""

    topology: str = Field(description="the slice's chip topology, e.g. '4x8' for a v5e-32")
    accelerator_version: str = Field(
        description="the TPU generation, e.g. 'v5litepod', 'v5p', 'v6e'"
    )
    chips_per_host: int = Field(
        4, ge=1, description="chips of one VM: what rl and evaluate reserve, on one VM"
    )


class RaySection(_Strict):
    """`runtime.ray`: the cluster that `runtime.launcher: ray` runs the model stages on."""

    address: str | None = Field(
        None,
        description=(
            "the cluster to join: 'auto' (the one this machine is a node of) or 'HOST:PORT' of "
            "its head; None: start a cluster of this machine alone, on 127.0.0.1, for the "
            "stage's run (a test, or trying the path on a laptop)"
        ),
    )
    hosts: int = Field(
        1, ge=1, description="processes of a training run, one per host (ignored with `tpu`)"
    )
    placement: Literal["STRICT_SPREAD", "SPREAD", "PACK", "STRICT_PACK"] = Field(
        "STRICT_SPREAD",
        description="Ray placement-group strategy for the hosts' bundles; STRICT_SPREAD: one "
        "per node",
    )
    cpus_per_host: float = Field(1.0, ge=0, description="Ray CPUs each host's task reserves")
    gpus_per_host: float = Field(0.0, ge=0, description="Ray GPUs each host's task reserves")
    resources_per_host: dict[str, float] = Field(
        default_factory=dict, description="other Ray resources each host's task reserves"
    )
    tpu: RayTpuSlice | None = Field(
        None,
        description="reserve one TPU slice (one task per TPU VM of it) instead of `hosts` bundles",
    )
    placement_timeout_seconds: int = Field(
        600, ge=1, description="how long to wait for the cluster to have room for the hosts"
    )
    host_workdir: str = Field(
        "/tmp/tunixrt-ray",
        description=(
            "on each host, where the stage's inputs are cached (by sha256) and its workspace "
            "lives; relative: under the pipeline root (a cluster of this machine only)"
        ),
    )
    env: dict[str, str] = Field(
        default_factory=dict,
        description="environment of the hosts' processes (e.g. XLA_FLAGS, LIBTPU_INIT_ARGS)",
    )


class RuntimeSection(_Strict):
    """`runtime` group: the device mesh, and the processes of a multi-host run."""

    name: str = Field("cpu", description="a label for the runtime preset")
    platform: Literal["cpu", "tpu", "gpu"] = Field("cpu", description="the JAX platform")
    mesh_shape: list[int] = Field(
        default_factory=lambda: [1, 1],
        min_length=2,
        max_length=2,
        description="devices along each mesh axis",
    )
    mesh_axes: list[str] = Field(
        default_factory=lambda: ["fsdp", "tp"],
        min_length=2,
        max_length=2,
        description="mesh axis names: data/FSDP first, tensor parallel second",
    )
    multi_host: bool = Field(False, description="call jax.distributed.initialize() first")
    simulated_devices: int | None = Field(
        None, ge=1, description="CPU only: --xla_force_host_platform_device_count, for tests"
    )
    initialization_timeout_seconds: int = Field(
        300,
        ge=1,
        description="multi_host: how long each process waits for all of them to connect",
    )
    heartbeat_timeout_seconds: int = Field(
        60,
        ge=1,
        description=(
            "multi_host: a process that stops answering for this long (killed, crashed, host "
            "lost) is taken for dead and every other process stops, non-zero"
        ),
    )
    shutdown_timeout_seconds: int = Field(
        120,
        ge=1,
        description="multi_host: how long a process that is done waits for the others to be done",
    )

    launcher: Literal["local", "ray"] = Field(
        "local",
        description=(
            "local: the stage trains in the process `dvc repro` started (one host, or one "
            "process per host started by hand); ray: train, rl and evaluate run as tasks on a "
            "Ray cluster (runtime.ray), outputs come back to this workspace"
        ),
    )
    ray: RaySection = Field(default_factory=RaySection, description="launcher ray: the cluster")
    shared_dir: str | None = Field(
        None,
        description=(
            "launcher ray: where training checkpoints go, a folder every host sees (a mount, or "
            "a gs:// URL through orbax); the last one is copied back to "
            "runs/train/checkpoints. Relative: under the pipeline root"
        ),
    )

    @model_validator(mode="after")
    def _positive_mesh(self) -> RuntimeSection:
        if any(n < 1 for n in self.mesh_shape):
            raise ValueError("mesh_shape entries must be >= 1")
        return self

    @model_validator(mode="after")
    def _ray_hosts(self) -> RuntimeSection:
        if self.launcher != "ray":
            return self
        several = self.ray.tpu is not None or self.ray.hosts > 1
        if several and not self.multi_host:
            raise ValueError("launcher ray with several hosts needs multi_host: true")
        if self.multi_host and not several:
            raise ValueError("launcher ray with multi_host: true needs ray.hosts > 1 or ray.tpu")
        return self


class SplitFile(_Strict):
    path: WorkspacePath = Field(description="the export file, relative to the pipeline root")
    sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$", description="sha256 of the file's bytes when it was written"
    )
    records: int = Field(ge=0, description="non-blank lines (records) in the file")


class DatasetSection(_Strict):
    format: FormatName = Field(description="the export format (format.name)")
    reasoning_style: ReasoningStyleName = Field(description="format.reasoning_style")
    system_prompt: str | None = Field(None, description="format.system_prompt, normalized")
    path: WorkspacePath = Field(description="the training file, as tunix-rt named it")
    dataset_key: str = Field(description="the dataset's name-version")
    content_sha256: str = Field(description="the dataset's content hash (all splits)")
    splits: dict[str, SplitFile] = Field(description="every export file, by split")

    def format_spec(self) -> FormatSpec:
        """The format the exports were rendered in (evaluation renders eval items with it)."""
        return FormatSpec(
            name=self.format,
            reasoning_style=self.reasoning_style,
            system_prompt=self.system_prompt,
        )


class WeightsSection(_Strict):
    """Which files a run started from, so a manifest (and the report) names the exact weights."""

    tokenizer_sha256: str | None = Field(
        None, description="sha256 of model.tokenizer.path; null: none, or not there yet"
    )
    checkpoint_digest: str | None = Field(
        None,
        description="sha256 over the checkpoint folder's file names and sizes and each "
        "safetensors header (cheap on many GB); null: random init, or not there yet",
    )
    checkpoint_files: int = Field(0, ge=0, description="files in model.checkpoint_path")


class LengthsSection(_Strict):
    """The token lengths of the training examples, counted as training encodes them (`<bos>`,
    turn markers and `<eos>` included) before truncation, measured by the manifest stage."""

    tokenizer: Literal["byte", "sentencepiece", "huggingface"] = Field(
        description="the tokenizer kind that counted them (model.tokenizer.kind)"
    )
    max_seq_length: int = Field(ge=1, description="train.max_seq_length when measured")
    examples: int = Field(ge=0, description="training examples (records of the train split)")
    over: int = Field(
        ge=0,
        description="examples longer than max_seq_length: truncated, shortened or dropped as "
        "train.long_examples says",
    )
    dropped: int = Field(
        0,
        ge=0,
        description="of those, examples not trained on under train.long_examples: keep: the "
        "prompt alone fills max_seq_length; drop: all of them; truncate_reasoning: not even the "
        "prompt and the final answer with no reasoning step fit",
    )
    share: float = Field(ge=0, le=1, description="over / examples")
    median: int = Field(ge=0, description="median length, tokens")
    p95: int = Field(ge=0, description="95th percentile length, tokens (nearest rank)")
    max: int = Field(ge=0, description="the longest example, tokens")
    bin_width: int = Field(ge=1, description="histogram bin width, tokens")
    histogram: list[int] = Field(
        description="examples per bin: bin i holds lengths in [i*bin_width, (i+1)*bin_width)"
    )


class OutputSection(_Strict):
    output_dir: WorkspacePath = Field(
        TRAIN_DIR.as_posix(),
        description="where checkpoints, metrics and curves go, relative to the pipeline root",
    )


class RunManifest(_Strict):
    version: Literal["1.0"] = Field(MANIFEST_VERSION, description="manifest schema version")
    runner: Literal["tunix"] = Field("tunix", description="the trainer (tunix-rt's key)")
    mode: Literal["sft"] = Field("sft", description="the training mode (tunix-rt's key)")
    tunixrt_version: str | None = Field(
        description="the installed tunixrt; None from a source tree that is not installed"
    )
    libraries: dict[str, str | None] = Field(
        default_factory=dict,
        description="the installed version of each library of the training stack (jax, jaxlib, "
        "flax, optax, orbax-checkpoint, google-tunix, qwix; null: not installed) when the "
        "manifest was written; `tunixrt status` and `tunixrt verify` flag a run whose libraries "
        "differ from the installed ones. {}: not recorded (an older manifest)",
    )
    seed: int = Field(description="train.seed")
    model: ModelSection = Field(description="the `model` group")
    dataset: DatasetSection = Field(description="the exports and how they were rendered")
    training: TrainingSection = Field(
        default_factory=TrainingSection, description="the `train` group"
    )
    runtime: RuntimeSection = Field(
        default_factory=RuntimeSection, description="the `runtime` group"
    )
    weights: WeightsSection = Field(
        default_factory=WeightsSection, description="digests of the tokenizer and checkpoint"
    )
    lengths: LengthsSection | None = Field(
        None,
        description="the training examples' token lengths against train.max_seq_length; null: "
        "not measured here (the tokenizer's library is not installed, or its file does not "
        "load): the train stage measures them before building the model",
    )
    output: OutputSection = Field(default_factory=OutputSection, description="where outs go")

    @staticmethod
    def installed_libraries() -> dict[str, str | None]:
        """What the manifest stage records in `libraries` (see `installed_libraries`)."""
        return installed_libraries()

    @model_validator(mode="after")
    def _family_lora_modules(self) -> RunManifest:
        lora = self.training.lora
        if lora.module_path is None:  # recorded as used, so the manifest says what trained
            lora = lora.model_copy(update={"module_path": LORA_MODULES[self.model.family]})
            self.training = self.training.model_copy(update={"lora": lora})
        return self
