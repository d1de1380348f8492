"""The train stage's library entry point: `train(manifest, root)`.

JAX is imported only after the runtime's platform flags are set (simulated CPU devices must be
requested before JAX starts), so this module imports nothing heavy at the top.
"""

from __future__ import annotations

import math
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

from tunixrt.errors import ConfigError, DataError
from tunixrt.manifest.load import split_file, verify_inputs
from tunixrt.manifest.schema import RunManifest
from tunixrt.paths import CHECKPOINTS, confined, dataset_path
from tunixrt.train import runtime
from tunixrt.train.checkpoints import (
    prune_checkpoints,
    run_fingerprint,
    set_aside_foreign_checkpoints,
)


def _log(msg: str) -> None:
    print(f"train: {msg}", file=sys.stderr, flush=True)


def _split_path(manifest: RunManifest, root: Path, split: str) -> Path:
    if split not in manifest.dataset.splits:
        raise DataError(f"run manifest: dataset.splits has no {split!r} split")
    return split_file(manifest, root, split)


def _encode_split(
    manifest: RunManifest, root: Path, split: str, tokenizer: Any, records: Any
) -> Any:
    """The examples of an export split under train.long_examples; under truncate_reasoning the
    traces of the records that are too long come from the dataset split the export was made
    from (data/dataset/<split>.jsonl), read only when there are such records."""
    from tunixrt.train.examples import encode_records, read_traces

    t = manifest.training
    shown = dataset_path(split).as_posix()
    return encode_records(
        records,
        tokenizer,
        t.max_seq_length,
        long_examples=t.long_examples,
        spec=manifest.dataset.format_spec(),
        traces=lambda ids: read_traces(root / shown, ids, shown),
    )


def _long_examples_line(split: str, counts: dict[str, Any]) -> str:
    c = counts
    return (
        f"long examples ({split}, train.long_examples={c['policy']}): {c['over_length']} longer "
        f"than train.max_seq_length: {c['kept_truncated']} kept truncated, "
        f"{c['truncated_reasoning']} with reasoning steps cut ({c['steps_cut']} steps), "
        f"{c['dropped']} dropped"
    )


def train(
    manifest: RunManifest,
    root: Path,
    *,
    peers: runtime.Peers | None = None,
    checkpoints: Any = None,
) -> dict[str, Any]:
    """Train as the manifest says, resuming from the last checkpoint a same-config run left.

    Writes under `root / manifest.output.output_dir`: `checkpoints/`, `metrics.json`,
    `perf.json` and the DVCLive folder `live/` (written as `.live.<pid>.tmp/` while the run
    lasts, moved into place at its end, then metrics.json). Returns the content of metrics.json.
    The Ray launcher passes each host its `peers` and the `checkpoints` folder in
    runtime.shared_dir (a path or an etils epath, which may be a gs:// URL).
    """
    verify_inputs(manifest, root)
    runtime.configure_platform(manifest.runtime)
    t_setup = time.perf_counter()

    import jax
    import orbax.checkpoint as ocp
    from tqdm import tqdm
    from tunix.sft import peft_trainer

    from tunixrt.train import rng
    from tunixrt.train.batches import BatchStream, plan_batches
    from tunixrt.train.examples import read_export
    from tunixrt.train.inputs import make_model_input_fn
    from tunixrt.train.lengths import check_lengths, length_stats
    from tunixrt.train.metrics import (
        LIVE,
        LiveSeries,
        clear_outputs,
        live_staging,
        publish_live,
        training_metrics,
        write_reports,
    )
    from tunixrt.train.model import apply_lora, build_model, checkpoint_dir
    from tunixrt.train.optimizer import ScheduleValues, make_optimizer, make_schedule
    from tunixrt.train.prefetch import Prefetcher
    from tunixrt.train.tokenizer import make_tokenizer
    from tunixrt.train.trainer import HistoryTrainer, LatestScalars, StepLogger

    t = manifest.training
    runtime.initialize_distributed(manifest.runtime, peers)
    mesh = runtime.make_mesh(manifest.runtime)
    data_axis_size = mesh.shape["fsdp"]
    if t.batch_size % data_axis_size or t.batch_size % jax.process_count():
        raise ConfigError(
            f"train.batch_size: {t.batch_size} must be a multiple of the mesh's fsdp size "
            f"({data_axis_size}) and of the number of processes ({jax.process_count()})"
        )
    checkpoint_dir(manifest.model, root)  # a missing checkpoint is the first thing to report
    tokenizer = make_tokenizer(manifest.model.tokenizer, root)
    out_dir = confined(manifest.output.output_dir, root, "output.output_dir")
    is_main = jax.process_index() == 0
    if is_main:
        clear_outputs(out_dir)

    t_tokenize = time.perf_counter()
    records = tqdm(
        read_export(_split_path(manifest, root, "train")),
        desc="tokenize",
        unit="rec",
        disable=None,
    )
    split = _encode_split(manifest, root, "train", tokenizer, records)
    tokenize_seconds = time.perf_counter() - t_tokenize
    # the manifest stage's check, again (its only run when the manifest stage could not load
    # the tokenizer; under truncate_reasoning exact, from the traces): before the model is built
    lengths = length_stats(
        split.lengths,
        max_len=t.max_seq_length,
        dropped=split.dropped,
        tokenizer=manifest.model.tokenizer.kind,
    )
    line = check_lengths(lengths, t.max_truncated_share, t.long_examples, split.floor)
    if line is not None:
        _log(line)
    long_examples = split.long_examples()
    if split.over_length:
        _log(_long_examples_line("train", long_examples))
    if not split.examples:
        raise DataError(f"no training example fits train.max_seq_length={t.max_seq_length}")
    accum = t.gradient_accumulation_steps
    plan = plan_batches(
        [len(e.tokens) for e in split.examples],
        batch_size=t.batch_size,
        max_len=t.max_seq_length,
        seed=rng.numpy_seed(rng.stream(manifest.seed, "data")),
        packing=t.packing,
        num_epochs=t.num_epochs,
        micro_batches=t.max_steps * accum if t.max_steps else None,
    )
    total_steps = len(plan.batches) // accum
    if total_steps == 0:
        raise ConfigError(
            f"train: {len(plan.batches)} micro-batches make no optimizer step with "
            f"gradient_accumulation_steps={accum}"
        )
    del plan.batches[total_steps * accum :]
    stream = BatchStream(
        plan,
        split.examples,
        max_len=t.max_seq_length,
        pad_id=tokenizer.pad_id(),
        process_index=jax.process_index(),
        process_count=jax.process_count(),
    )
    eval_stream = None
    if t.eval_every_steps:
        eval_stream, val_long = _eval_stream(manifest, root, tokenizer, stream)
        long_examples["val"] = val_long
        if val_long["over_length"]:
            _log(_long_examples_line("val", val_long))

    fingerprint = run_fingerprint(manifest)
    ckpt_dir = (out_dir / CHECKPOINTS).resolve() if checkpoints is None else checkpoints
    if is_main:
        set_aside_foreign_checkpoints(ckpt_dir, fingerprint)
        prune_checkpoints(ckpt_dir, t.keep_checkpoints)
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("tunixrt checkpoints checked")

    t_build = time.perf_counter()
    model = build_model(manifest.model, tokenizer, mesh, seed=manifest.seed, root=root)
    if t.lora.enabled:
        model = apply_lora(model, t.lora, mesh, seed=manifest.seed)
    scalars = LatestScalars()  # Tunix's grad norm and eval loss reach the hooks through this
    config = peft_trainer.TrainingConfig(
        eval_every_n_steps=t.eval_every_steps or total_steps + 1,
        max_steps=total_steps,
        gradient_accumulation_steps=accum if accum > 1 else None,
        checkpoint_root_directory=str(ckpt_dir),
        checkpointing_options=ocp.CheckpointManagerOptions(
            save_interval_steps=t.checkpoint_every_steps,
            max_to_keep=t.keep_checkpoints,
            cleanup_tmp_directories=True,  # what a killed save left
        ),
        data_sharding_axis=("fsdp",),
        pbar_description="train",
        metrics_logging_options=peft_trainer.MetricsLoggerOptions(
            log_dir=str(out_dir / LIVE),  # unused: the custom backend writes nowhere
            backend_kwargs={"custom_backend": [lambda: scalars]},
        ),
    )
    with runtime.use_mesh(mesh):
        trainer = HistoryTrainer(
            model,
            make_optimizer(t, total_steps),
            config,
            fingerprint=fingerprint,
        )
    trainer.with_gen_model_input_fn(
        make_model_input_fn(tokenizer.bos_id(), tokenizer.pad_id(), packed=t.packing)
    )
    build_seconds = time.perf_counter() - t_build
    start_step = trainer.train_steps
    if start_step:
        _log(f"resuming from checkpoint step {start_step} of {total_steps} in {ckpt_dir}")

    def step_counts(step: int) -> tuple[int, int, int]:
        tokens = loss_tokens = slots = 0
        for m in range((step - 1) * accum, step * accum):
            a, b = stream.counts(m)
            tokens, loss_tokens, slots = (
                tokens + a,
                loss_tokens + b,
                slots + stream.slots(m),
            )
        return tokens, loss_tokens, slots

    staging = live_staging(out_dir) if is_main else None
    live = LiveSeries(staging) if staging else None
    if live is not None:
        rates = trainer.tokens_per_s + [0.0] * (len(trainer.history) - len(trainer.tokens_per_s))
        events = sorted(
            [(r["step"], 1, r, rate) for r, rate in zip(trainer.history, rates, strict=True)]
            + [(r["step"], 0, r, 0.0) for r in trainer.eval_history],
            key=lambda e: (e[0], e[1]),
        )
        for _, kind, r, rate in events:
            if kind:
                live.log_step(r, rate)
            else:
                live.log_eval(r)
    learning_rates = ScheduleValues(make_schedule(t, total_steps), total_steps)
    logger = StepLogger(
        trainer_prefix=config.metrics_prefix,
        scalars=scalars,
        learning_rate=learning_rates,
        step_counts=step_counts,
        sink=live.log_step if live else lambda r, rate: None,
        eval_sink=live.log_eval if live else lambda r: None,
        flush=live.flush if live else lambda: None,
        total_steps=total_steps,
        report_every=max(1, total_steps // 10),
    )
    trainer.with_training_hooks(logger)
    setup_seconds = time.perf_counter() - t_setup

    if start_step >= total_steps:
        _log(f"checkpoint step {start_step} is the last step: nothing left to train")
    t_train = time.perf_counter()
    batches = Prefetcher(
        stream.iter_from(start_step * accum), mesh, skip=start_step * accum, depth=2
    )
    with runtime.use_mesh(mesh), closing(learning_rates):
        # also when nothing is left: Tunix then only runs the evaluation it owes the last step
        trainer.train(batches, eval_stream)
    t_end = time.perf_counter()
    train_seconds = t_end - t_train
    if live is not None and staging is not None:
        live.end()
        publish_live(staging, out_dir)  # complete, before metrics.json says the run is

    history = trainer.history
    if len(history) != total_steps or [r["step"] for r in history] != list(
        range(1, total_steps + 1)
    ):
        raise RuntimeError(
            f"internal: the step history covers {len(history)} of {total_steps} steps"
        )
    n_params, n_trainable = _param_counts(trainer.model)
    metrics = training_metrics(
        history,
        trainer.eval_history,
        steps=total_steps,
        micro_batches=total_steps * accum,
        batch_size=t.batch_size,
        gradient_accumulation_steps=accum,
        max_seq_length=t.max_seq_length,
        packing=t.packing,
        lora=t.lora.enabled,
        records=split.records,
        examples=len(split.examples),
        truncated=split.truncated,
        dropped=split.dropped,
        long_examples=long_examples,
        epochs=sum(len(row) for b in plan.batches for row in b) / len(split.examples),
        params=n_params,
        trainable_params=n_trainable,
        checkpoint_step=total_steps,
    )
    run_tokens = sum(r["tokens"] for r in history[start_step:])
    steady = history[start_step + 1 :]
    first, last = logger.first_step_done_at, logger.last_step_done_at
    steady_seconds = last - first if first and last else 0.0
    perf = {
        "setup_seconds": setup_seconds,
        "tokenize_seconds": tokenize_seconds,
        "build_seconds": build_seconds,
        "first_step_seconds": first - t_train if first else 0.0,
        "train_seconds": train_seconds,
        "steps_run": total_steps - start_step,
        "resumed_from_step": start_step,
        "tokens_per_s": run_tokens / train_seconds if train_seconds > 0 else 0.0,
        "steady_tokens_per_s": (
            sum(r["tokens"] for r in steady) / steady_seconds if steady_seconds > 0 else 0.0
        ),
        "devices": jax.device_count(),
        "platform": jax.devices()[0].platform,
        "processes": jax.process_count(),
    }
    if is_main:
        write_reports(out_dir, metrics, perf)
    _log(
        f"done: {total_steps} steps, loss {metrics['loss_first']} -> {metrics['loss_last']}, "
        f"{train_seconds:.0f} s, {perf['tokens_per_s']:.0f} tokens/s"
    )
    return metrics


def _param_counts(model: Any) -> tuple[int, int]:
    from flax import nnx

    total = trainable = 0
    lora = any(isinstance(v, nnx.LoRAParam) for _, v in nnx.iter_graph(model))
    for _, v in nnx.iter_graph(model):
        if isinstance(v, nnx.Param):
            size = int(math.prod(v.shape))
            total += size
            if not lora or isinstance(v, nnx.LoRAParam):
                trainable += size
    return total, trainable


def _eval_stream(
    manifest: RunManifest, root: Path, tokenizer: Any, train: Any
) -> tuple[list[Any], dict[str, Any]]:
    """The val split in file order, in batches of train.batch_size (the last one padded with
    empty rows, which carry no loss), under train.long_examples as the train split; and what
    that did to its long examples."""
    from tunixrt.train.batches import BatchPlan, BatchStream
    from tunixrt.train.examples import read_export

    t = manifest.training
    records = read_export(_split_path(manifest, root, "val"))
    val = _encode_split(manifest, root, "val", tokenizer, records)
    if not val.examples:
        raise DataError("train.eval_every_steps is set but the val split has no usable example")
    rows = [[i] for i in range(len(val.examples))]
    rows += [[] for _ in range(-len(rows) % t.batch_size)]
    batches = [rows[i : i + t.batch_size] for i in range(0, len(rows), t.batch_size)]
    plan = BatchPlan(batches=batches, epochs=1, micro_batches_per_epoch=[len(batches)])
    stream = list(
        BatchStream(
            plan,
            val.examples,
            max_len=t.max_seq_length,
            pad_id=tokenizer.pad_id(),
            process_index=train.process_index,
            process_count=train.process_count,
        )
    )
    return stream, val.long_examples()
