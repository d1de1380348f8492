"""The rl stage's library entry point: `grpo(manifest, cfg, root)`.

GRPO with Tunix (RLCluster + GRPOLearner) on the train stage's last checkpoint: the actor starts
as the SFT model (its LoRA adapters, or every weight), the KL reference is a frozen copy of it,
rollouts sample `num_generations` completions per train prompt, and the rewards are the answer
evaluate would score (tunixrt.rl.reward). Checkpoints go to `runs/rl/checkpoints/actor/<step>/`
(Tunix's layout) with the run's fingerprint and history in their metadata; a run killed midway
resumes from the last one and ends as an uninterrupted run would.
"""

from __future__ import annotations

import functools
import hashlib
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from tunixrt.errors import ConfigError, DataError
from tunixrt.jsonio import atomic_writer, dumps_line
from tunixrt.lineage import closure_digest
from tunixrt.manifest.load import split_file, verify_inputs
from tunixrt.manifest.schema import RunManifest
from tunixrt.paths import CHECKPOINTS, RL_DIR, RL_ROLLOUTS, confined
from tunixrt.rl.config import CADENCE_FIELDS, RLConfig
from tunixrt.train import runtime
from tunixrt.train.checkpoints import ENTRY_MODULES

ACTOR = "actor"  # Tunix's folder for the actor's checkpoints under the checkpoint root
ROLLOUTS = "rollouts"  # per-step rollout rows, kept with the checkpoints they belong to
# Modules of the rl stage's import closure that change no number of a run (the entry and
# plumbing train's list names, reporting, checkpoint bookkeeping); every other one, the reward's
# parser in tunixrt/evaluate and tunixrt/formats included, is fingerprinted.
NON_NUMERIC_MODULES = ENTRY_MODULES | {
    "tunixrt/rl/__init__.py",
    "tunixrt/rl/history.py",
    "tunixrt/rl/stage.py",
    "tunixrt/train/__init__.py",
    "tunixrt/train/checkpoints.py",
    "tunixrt/train/metrics.py",
    "tunixrt/train/runtime.py",
    "tunixrt/launch/__init__.py",
    "tunixrt/launch/cluster.py",
    "tunixrt/launch/driver.py",
    "tunixrt/launch/files.py",
    "tunixrt/launch/host.py",
}
RL_TARGET = "tunixrt.rl.stage:run"


def _log(msg: str) -> None:
    print(f"rl: {msg}", file=sys.stderr, flush=True)


def rl_code_digest(root: Path | None = None) -> str:
    """sha256 of the rl stage's import closure less the modules that change no number."""
    return closure_digest(RL_TARGET, root, exclude=NON_NUMERIC_MODULES)


def rl_fingerprint(
    manifest: RunManifest, cfg: RLConfig, sft: dict[str, Any], root: Path | None = None
) -> str:
    """What a GRPO checkpoint must share with this run to be resumed: the SFT run and the step
    it ended at, every rl field but the cadence ones, and the rl code."""
    doc = {
        "sft_fingerprint": sft.get("fingerprint"),
        "sft_step": sft.get("step"),
        "rl": cfg.model_dump(mode="json", exclude=set(CADENCE_FIELDS)),
        "code_sha256": rl_code_digest(root),
    }
    return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()


def lr_schedule(cfg: RLConfig) -> Callable[[Any], Any]:
    """The learning rate of optimizer update `count` (from 0): a linear warm-up, then constant or
    a cosine decay that reaches 0 at `max_steps`."""
    from tunixrt.schedules import warmup_schedule

    return warmup_schedule(cfg.learning_rate, cfg.warmup_steps, cfg.lr_schedule, cfg.max_steps)


def grpo(manifest: RunManifest, cfg: RLConfig, root: Path) -> dict[str, Any]:
    """Run GRPO as `cfg` says; writes runs/rl/{checkpoints/, live/, rollouts.jsonl,
    metrics.json, perf.json} and returns metrics.json's content."""
    verify_inputs(manifest, root)
    if manifest.dataset.format != "grpo":
        raise ConfigError(
            f"rl.enabled: GRPO reads the grpo rendering of the train split, and the exports are "
            f"in format {manifest.dataset.format!r}; set format=grpo (experiment=grpo does)"
        )
    runtime.configure_platform(manifest.runtime)
    t_setup = time.perf_counter()

    import jax
    import optax
    import orbax.checkpoint as ocp
    from flax import nnx
    from tunix.rl import rl_cluster as rlc
    from tunix.rl.grpo import grpo_learner
    from tunix.rl.rollout import base_rollout
    from tunix.sft import hooks, metrics_logger

    from tunixrt.evaluate.generate import (
        PROMPT_BUCKET,
        GreedyGenerator,
        add_rl_lora,
        load_model,
        round_up,
    )
    from tunixrt.evaluate.problems import split_problems
    from tunixrt.evaluate.scoring import exact_match
    from tunixrt.formats import parse_answer
    from tunixrt.rl.data import batches, prompt_order, read_prompts
    from tunixrt.rl.history import Progress, rl_metrics, write_live
    from tunixrt.rl.learner import MixedGroupsLearner
    from tunixrt.rl.reward import reward_functions
    from tunixrt.rl.rollout import SeededRollout
    from tunixrt.train import rng
    from tunixrt.train.checkpoints import (
        latest_checkpoint,
        prune_checkpoints,
        set_aside_foreign_checkpoints,
    )
    from tunixrt.train.metrics import clear_outputs, live_staging, publish_live, write_reports
    from tunixrt.train.trainer import Checkpoints, Preemption

    if cfg.lora.enabled and manifest.training.lora.enabled:
        raise ConfigError(
            "rl.lora.enabled: SFT trained LoRA adapters (train.lora.enabled), and GRPO goes on "
            "training those; new adapters apply only after a full fine-tune"
        )
    if jax.process_count() > 1:
        raise ConfigError("rl: GRPO runs in one process (runtime.multi_host must be false)")
    out_dir = root / RL_DIR
    clear_outputs(out_dir)
    (root / RL_ROLLOUTS).unlink(missing_ok=True)
    style = manifest.dataset.reasoning_style

    # ---- the SFT run it starts from
    sft_dir = (
        confined(manifest.output.output_dir, root, "output.output_dir") / CHECKPOINTS
    ).resolve()
    sft_step, sft_meta = latest_checkpoint(sft_dir)
    if sft_step is None:
        raise DataError(f"{sft_dir}: no checkpoint; run the train stage first")
    sft = {"fingerprint": sft_meta.get("fingerprint"), "step": sft_step}
    fingerprint = rl_fingerprint(manifest, cfg, sft)
    ckpt_root = (out_dir / CHECKPOINTS).resolve()
    actor_dir = ckpt_root / ACTOR
    set_aside_foreign_checkpoints(actor_dir, fingerprint, move=ckpt_root, stage="rl")
    prune_checkpoints(actor_dir, cfg.keep_checkpoints)
    restored_step, restored_meta = latest_checkpoint(actor_dir)
    restored_step = restored_step or 0

    # ---- data
    train_path = split_file(manifest, root, "train")
    prompts = read_prompts(train_path)
    seed = rng.numpy_seed(jax.random.fold_in(jax.random.key(cfg.seed), 0))
    order = prompt_order(len(prompts), cfg.max_steps, cfg.batch_size, seed)
    rollout_key = jax.random.fold_in(jax.random.key(cfg.seed), 1)
    val = split_problems(manifest, root, "val")[: cfg.eval_problems] if cfg.eval_every_steps else []

    model, tokenizer, mesh = load_model(manifest, root, trained=True)  # the SFT policy
    if cfg.lora.enabled:  # new adapters (B = 0: still the SFT policy) over the SFT weights
        model = add_rl_lora(model, manifest, cfg, mesh)
    prompt_tokens = max(len(tokenizer.encode(p.prompts)) + 1 for p in prompts)
    max_prompt = round_up(prompt_tokens, PROMPT_BUCKET)
    max_new = cfg.max_new_tokens or max(len(tokenizer.encode(p.completion)) for p in prompts) + 8
    if cfg.batch_size % mesh.shape["fsdp"]:
        raise ConfigError(
            f"rl.batch_size: {cfg.batch_size} must be a multiple of the mesh's fsdp size "
            f"({mesh.shape['fsdp']})"
        )
    reference = nnx.clone(model, arrays=True) if cfg.beta > 0 else None

    # ---- rewards, and what they saw, step by step
    progress = Progress(restored_meta, restored_step)
    rollout_dir = ckpt_root / ROLLOUTS
    rollout_dir.mkdir(parents=True, exist_ok=True)
    w = cfg.reward

    def on_scored(
        texts: Any, answers: list[str], correct: list[bool], formatted: list[bool]
    ) -> None:
        tokens = [len(tokenizer.encode(t)) for t in texts]
        reward = [w.correct * c + w.formatted * f for c, f in zip(correct, formatted, strict=True)]
        step = progress.scored(correct, formatted, tokens, reward, cfg.num_generations)
        rows = order[step - 1]
        with atomic_writer(rollout_dir / f"{step}.jsonl") as fh:
            for k, text in enumerate(texts):
                p = prompts[rows[k // cfg.num_generations]]
                fh.write(
                    dumps_line(
                        {
                            "step": step,
                            "id": p.id,
                            "sample": k % cfg.num_generations,
                            "completion": str(text),
                            "expected": answers[k],
                            "correct": correct[k],
                            "formatted": formatted[k],
                            "reward": reward[k],
                        }
                    )
                )

    # ---- Tunix: cluster, learner
    learning_rate = lr_schedule(cfg)
    adamw = optax.adamw(learning_rate, weight_decay=0.0)
    optimizer = (
        optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), adamw)
        if cfg.max_grad_norm
        else adamw
    )
    training = rlc.RLTrainingConfig(
        actor_optimizer=optimizer,
        eval_every_n_steps=cfg.max_steps + 1,
        max_steps=cfg.max_steps,
        checkpoint_root_directory=str(ckpt_root),
        checkpointing_options=ocp.CheckpointManagerOptions(
            save_interval_steps=cfg.checkpoint_every_steps,
            max_to_keep=cfg.keep_checkpoints,
            save_on_steps=frozenset({cfg.max_steps}),
            cleanup_tmp_directories=True,
        ),
        pbar_description="rl",
        metrics_logging_options=metrics_logger.MetricsLoggerOptions(
            log_dir=str(out_dir / "live"),  # unused: the custom backend writes nowhere
            backend_kwargs={"custom_backend": [lambda: progress]},
        ),
    )
    rollout_config = base_rollout.RolloutConfig(
        max_tokens_to_generate=max_new,
        max_prompt_length=max_prompt,
        kv_cache_size=max_prompt + max_new,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        top_k=cfg.top_k,
        eos_tokens=tokenizer.stop_ids(),
    )
    t_build = time.perf_counter()
    with runtime.use_mesh(mesh):
        cluster = rlc.RLCluster(
            actor=model,
            reference=reference,
            tokenizer=tokenizer,
            cluster_config=rlc.ClusterConfig(
                role_to_mesh={
                    rlc.Role.ACTOR: mesh,
                    rlc.Role.REFERENCE: mesh,
                    rlc.Role.ROLLOUT: mesh,
                },
                rollout_engine=functools.partial(
                    SeededRollout, key=rollout_key, cache_size=max_prompt + max_new
                ),
                offload_to_cpu=False,
                training_config=training,
                rollout_config=rollout_config,
            ),
        )
        learner_class, mixed = (
            (MixedGroupsLearner, {"row_multiple": mesh.shape["fsdp"]})
            if cfg.update_mixed_groups_only
            else (grpo_learner.GRPOLearner, {})
        )
        learner = learner_class(
            rl_cluster=cluster,
            algo_config=grpo_learner.GRPOConfig(
                num_generations=cfg.num_generations,
                num_iterations=1,
                beta=cfg.beta,
                epsilon=cfg.epsilon,
                kl_loss_mode=cfg.kl_mode,
            ),
            reward_fns=reward_functions(style, cfg.reward, on_scored),
            **mixed,
        )
    trainer = cluster.actor_trainer
    if trainer.train_steps != restored_step:
        raise RuntimeError(
            f"internal: Tunix restored step {trainer.train_steps}, tunixrt read {restored_step}"
        )
    cluster.rollout.step = cluster.global_steps  # the next step's sampling key
    build_seconds = time.perf_counter() - t_build
    if restored_step:
        _log(f"resuming from checkpoint step {restored_step} of {cfg.max_steps} in {actor_dir}")

    base_metadata = trainer.custom_checkpoint_metadata_fn

    def flush_and_record() -> None:
        n = trainer.train_steps
        if n > 0 and not (progress.history and progress.history[-1]["step"] >= n):
            trainer._write_train_metrics()  # Tunix writes a step's scalars one step late
            if not progress.record(n, float(learning_rate(n - 1))):
                raise RuntimeError(f"internal: step {n}'s rewards or update scalars are missing")

    def metadata() -> dict[str, Any]:
        flush_and_record()
        return {**base_metadata(), "fingerprint": fingerprint, **progress.metadata()}

    trainer.custom_checkpoint_metadata_fn = metadata
    # every save carries `metadata()` (Tunix's final save passes none); SIGTERM saves the current
    # step and ends the stage (exit 75), and a rerun resumes from it
    preemption = Preemption()
    trainer.checkpoint_manager = Checkpoints(
        trainer.checkpoint_manager,
        stage="rl",
        last_step=cfg.max_steps,
        metadata=metadata,
        preemption=preemption,
    )

    generate = (
        GreedyGenerator(
            trainer.model,
            tokenizer,
            max_new_tokens=max_new,
            max_prompt_tokens=max(len(tokenizer.encode(p.prompt)) + 1 for p in val),
            batch_size=min(64, len(val)),
            mesh=mesh,
        )
        if val
        else None
    )

    def held_out(step: int) -> None:
        if generate is None:
            return
        outs = generate([p.prompt for p in val])
        em = sum(
            exact_match(parse_answer(style, o), p.expected) for o, p in zip(outs, val, strict=True)
        )
        progress.add_eval(step, em / len(val), len(val))
        _log(f"step {step}: held-out exact match {em / len(val):.1%} on {len(val)} val problems")

    step_times: list[float] = []

    class StepHook(hooks.TrainingHooks):
        def on_train_start(self, ctx: Any) -> None:
            pass

        def on_train_end(self, ctx: Any) -> None:  # once per GRPO step
            step_times.append(time.perf_counter())
            flush_and_record()
            n = ctx.train_steps
            r = progress.history[-1]
            if n % max(1, cfg.max_steps // 20) == 0 or n == cfg.max_steps:
                _log(
                    f"step {n}/{cfg.max_steps} reward {r['reward']:.3f} correct "
                    f"{r['correct']:.3f} kl {r['kl']:.5f}"
                )
            if cfg.eval_every_steps and (n % cfg.eval_every_steps == 0 or n == cfg.max_steps):
                held_out(n)

        def on_train_step_start(self, ctx: Any) -> None:
            pass

        def on_train_step_end(self, ctx: Any, step: int, loss: Any) -> None:
            pass

        def on_eval_step_start(self, ctx: Any) -> None:
            pass

        def on_eval_step_end(self, ctx: Any, loss: Any) -> None:
            pass

    trainer.with_training_hooks(StepHook())
    evaluated = {e["step"] for e in progress.eval_history}
    owed = [0] if not restored_step else []
    if (
        cfg.eval_every_steps
        and restored_step
        and (restored_step % cfg.eval_every_steps == 0 or restored_step == cfg.max_steps)
    ):
        owed.append(restored_step)  # measured after its checkpoint was saved: maybe not kept
    with runtime.use_mesh(mesh):
        for step in owed:
            if step not in evaluated:
                held_out(step)
    setup_seconds = time.perf_counter() - t_setup

    t_train = time.perf_counter()
    if restored_step >= cfg.max_steps:
        _log(f"checkpoint step {restored_step} is the last step: nothing left to train")
    else:
        with runtime.use_mesh(mesh), preemption.watching(restored_step):
            learner.train(batches(prompts, order))
    train_seconds = time.perf_counter() - t_train

    if [r["step"] for r in progress.history] != list(range(1, cfg.max_steps + 1)):
        raise RuntimeError(
            f"internal: the step history covers {len(progress.history)} of {cfg.max_steps} steps"
        )
    staging = live_staging(out_dir)
    write_live(staging, progress)
    publish_live(staging, out_dir)
    with atomic_writer(root / RL_ROLLOUTS) as fh:
        for step in range(1, cfg.max_steps + 1):
            fh.write((rollout_dir / f"{step}.jsonl").read_bytes())
    metrics = rl_metrics(
        progress,
        enabled=True,
        steps=cfg.max_steps,
        batch_size=cfg.batch_size,
        num_generations=cfg.num_generations,
        lora=cfg.lora.enabled or manifest.training.lora.enabled,
        prompts=len(prompts),
        sft_step=sft_step,
        checkpoint_step=cfg.max_steps,
        max_new_tokens=max_new,
    )
    ran = len(step_times)
    perf = {
        "setup_seconds": setup_seconds,
        "build_seconds": build_seconds,
        "train_seconds": train_seconds,
        "steps_run": ran,
        "resumed_from_step": restored_step,
        "first_step_seconds": step_times[0] - t_train if step_times else 0.0,
        "steady_step_seconds": (step_times[-1] - step_times[0]) / (ran - 1) if ran > 1 else 0.0,
        "platform": jax.devices()[0].platform,
        "devices": jax.device_count(),
    }
    write_reports(out_dir, metrics, perf)
    em = metrics["heldout_exact_match"]
    _log(
        f"done: {cfg.max_steps} steps, reward {metrics['reward_first10_mean']:.3f} -> "
        f"{metrics['reward_last10_mean']:.3f}, held-out exact match "
        + " -> ".join(f"{v:.1%}" for v in em.values())
    )
    return metrics
