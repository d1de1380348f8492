"""The preference stage's library entry point: `train_preference(manifest, cfg, root)`.

DPO or ORPO with Tunix (`tunix.sft.dpo.dpo_trainer.DPOTrainer`) on the train stage's last
checkpoint: the policy starts as the SFT model (its LoRA adapters, every weight, or new adapters
with `preference.lora`); DPO's reference is a frozen copy of it (Tunix would train without one,
reference-free, if none were given: tunixrt always gives it); ORPO has none. Pairs are the
labelled ones of the export stage and on-policy ones sampled from the SFT model, chosen once and
kept with the checkpoints, so a resumed run trains on the same pairs in the same order.
Checkpoints go to `runs/preference/checkpoints/policy/<step>/` with the run's fingerprint and
step history in their metadata; a run killed midway resumes from the last one and ends as an
uninterrupted run would.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from tunixrt.errors import ConfigError, DataError
from tunixrt.jsonio import atomic_writer, dumps_line, iter_lines
from tunixrt.lineage import closure_digest
from tunixrt.manifest.load import verify_inputs
from tunixrt.manifest.schema import RunManifest
from tunixrt.paths import CHECKPOINTS, PAIRS, PREFERENCE_DIR, PREFERENCE_PAIRS, confined
from tunixrt.preference.config import CADENCE_FIELDS, PreferenceConfig
from tunixrt.preference.pairs import Pair, choose_pairs
from tunixrt.train import runtime
from tunixrt.train.checkpoints import ENTRY_MODULES

CHOSEN = "pairs.jsonl"  # the pairs a run trains on, kept beside its checkpoints
# Modules of the stage's import closure that change no number of a run (entry, plumbing,
# reporting, checkpoint bookkeeping); every other one is fingerprinted.
NON_NUMERIC_MODULES = ENTRY_MODULES | {
    "tunixrt/preference/__init__.py",
    "tunixrt/preference/history.py",
    "tunixrt/preference/stage.py",
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
TARGET = "tunixrt.preference.stage:run"


def _log(msg: str) -> None:
    print(f"preference: {msg}", file=sys.stderr, flush=True)


def preference_fingerprint(
    cfg: PreferenceConfig, sft: dict[str, Any], labelled_sha256: str, root: Path | None = None
) -> str:
    """What a checkpoint must share with this run to be resumed: the SFT run and the step it
    ended at, the labelled pairs, every preference field but the cadence ones, and the code."""
    doc = {
        "sft_fingerprint": sft.get("fingerprint"),
        "sft_step": sft.get("step"),
        "labelled_pairs_sha256": labelled_sha256,
        "preference": cfg.model_dump(mode="json", exclude=set(CADENCE_FIELDS)),
        "code_sha256": closure_digest(TARGET, root, exclude=NON_NUMERIC_MODULES),
    }
    return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()


def read_pairs(path: Path) -> list[Pair]:
    out = []
    for lineno, line in iter_lines(path):
        if line:
            try:
                out.append(Pair.model_validate_json(line))
            except ValueError as exc:
                raise DataError(f"{path}:{lineno}: not a preference pair: {exc}") from None
    return out


def pair_order(n: int, steps: int, batch_size: int, seed: int) -> list[list[int]]:
    """The pairs of each step: seeded permutations of all of them, one per pass, cut into
    batches (a pass's last partial batch is dropped)."""
    import numpy as np

    per_pass = n // batch_size
    out: list[list[int]] = []
    k = 0
    while len(out) < steps:
        perm = np.random.default_rng([seed, k]).permutation(n)
        out += [perm[i * batch_size : (i + 1) * batch_size].tolist() for i in range(per_pass)]
        k += 1
    return out[:steps]


def _sample_on_policy(
    cfg: PreferenceConfig, manifest: RunManifest, root: Path, model: Any, tokenizer: Any, mesh: Any
) -> tuple[list[Pair], dict[str, Any]]:
    import numpy as np

    from tunixrt.evaluate.problems import split_problems
    from tunixrt.preference.sampling import on_policy_pairs, sample_completions

    problems = split_problems(manifest, root, "train")
    order = np.random.default_rng([cfg.seed, 0]).permutation(len(problems))
    chosen = [problems[i] for i in order[: cfg.pairs.prompts or len(problems)]]
    max_new = cfg.pairs.max_new_tokens or (
        max(len(tokenizer.encode(p.reference or "")) for p in problems) + 8
    )
    k = cfg.pairs.samples
    texts = sample_completions(
        model,
        tokenizer,
        [p.prompt for p in chosen for _ in range(k)],
        seed=cfg.seed,
        temperature=cfg.pairs.temperature,
        max_new_tokens=max_new,
        mesh=mesh,
    )
    finished = [len(tokenizer.encode(t)) < max_new for t in texts]  # else cut at the budget
    pairs, right = on_policy_pairs(
        chosen,
        texts,
        samples=k,
        style=manifest.dataset.reasoning_style,
        seed=cfg.seed,
        max_pairs=cfg.pairs.max_per_problem,
        finished=finished,
    )
    facts = {
        "on_policy_prompts": len(chosen),
        "on_policy_samples": len(texts),
        "on_policy_right_fraction": right / len(texts) if texts else 0.0,
        "on_policy_max_new_tokens": max_new,
        "on_policy_cut": finished.count(False),
    }
    return pairs, facts


def train_preference(manifest: RunManifest, cfg: PreferenceConfig, root: Path) -> dict[str, Any]:
    """Run DPO/ORPO as `cfg` says; writes runs/preference/{checkpoints/, live/, pairs.jsonl,
    metrics.json, perf.json} and returns metrics.json's content."""
    verify_inputs(manifest, root)
    runtime.configure_platform(manifest.runtime)
    t_setup = time.perf_counter()

    import jax
    import optax
    import orbax.checkpoint as ocp
    from flax import nnx
    from tunix.sft import metrics_logger
    from tunix.sft.dpo import dpo_trainer

    from tunixrt.evaluate.generate import (
        POLICY,
        PROMPT_BUCKET,
        GreedyGenerator,
        add_lora,
        load_model,
        round_up,
    )
    from tunixrt.evaluate.problems import split_problems
    from tunixrt.manifest.load import digest_and_count
    from tunixrt.preference.batches import pair_arrays
    from tunixrt.preference.history import History, preference_metrics, write_live
    from tunixrt.preference.pairs import judge
    from tunixrt.schedules import warmup_schedule
    from tunixrt.train.checkpoints import (
        latest_checkpoint,
        prune_checkpoints,
        set_aside_foreign_checkpoints,
    )
    from tunixrt.train.examples import sequence_parts
    from tunixrt.train.metrics import clear_outputs, live_staging, publish_live, write_reports
    from tunixrt.train.trainer import Checkpoints, Preemption

    if cfg.lora.enabled and manifest.training.lora.enabled:
        raise ConfigError(
            "preference.lora.enabled: SFT trained LoRA adapters (train.lora.enabled), and DPO/"
            "ORPO goes on training those; new adapters apply only after a full fine-tune"
        )
    if jax.process_count() > 1:
        raise ConfigError("preference: DPO/ORPO runs in one process (runtime.multi_host: false)")
    out_dir = root / PREFERENCE_DIR
    clear_outputs(out_dir)
    (root / PREFERENCE_PAIRS).unlink(missing_ok=True)
    style = manifest.dataset.reasoning_style

    # ---- the SFT run it starts from, and what it resumes
    sft_dir = (
        confined(manifest.output.output_dir, root, "output.output_dir") / CHECKPOINTS
    ).resolve()
    sft_step, sft_meta = latest_checkpoint(sft_dir)
    if sft_step is None:
        raise DataError(f"{sft_dir}: no checkpoint; run the train stage first")
    labelled_path = root / PAIRS
    if cfg.pairs.labelled and not labelled_path.is_file():
        raise DataError(f"{PAIRS}: not found; run the export stage")
    labelled_sha = digest_and_count(labelled_path)[0] if cfg.pairs.labelled else ""
    sft = {"fingerprint": sft_meta.get("fingerprint"), "step": sft_step}
    fingerprint = preference_fingerprint(cfg, sft, labelled_sha)
    ckpt_root = (out_dir / CHECKPOINTS).resolve()
    policy_dir = ckpt_root / POLICY
    set_aside_foreign_checkpoints(policy_dir, fingerprint, move=ckpt_root, stage="preference")
    prune_checkpoints(policy_dir, cfg.keep_checkpoints)
    restored_step, restored_meta = latest_checkpoint(policy_dir)
    restored_step = restored_step or 0

    model, tokenizer, mesh = load_model(manifest, root, trained=True)  # the SFT policy
    val = split_problems(manifest, root, "val")[: cfg.eval_problems] if cfg.eval_every_steps else []

    # ---- pairs: chosen once, kept with the checkpoints
    t_pairs = time.perf_counter()
    kept = ckpt_root / CHOSEN
    if restored_step and kept.is_file():
        pairs = read_pairs(kept)
        facts = dict(restored_meta.get("pair_facts", {}))
        _log(f"{len(pairs)} pairs kept with the checkpoints (resumed run)")
    else:
        pairs, facts = [], {}
        if cfg.pairs.labelled:
            labelled = choose_pairs(
                read_pairs(labelled_path), seed=cfg.seed, max_per_problem=cfg.pairs.max_per_problem
            )
            pairs += labelled
            facts["pairs_labelled"] = len(labelled)
        if cfg.pairs.on_policy:
            on_policy, sampled = _sample_on_policy(cfg, manifest, root, model, tokenizer, mesh)
            pairs += on_policy
            facts |= {"pairs_on_policy": len(on_policy), **sampled}
        ckpt_root.mkdir(parents=True, exist_ok=True)
        with atomic_writer(kept) as fh:
            for p in pairs:
                fh.write(dumps_line(p.model_dump()))
    pairs_seconds = time.perf_counter() - t_pairs
    if len(pairs) < cfg.batch_size:
        raise DataError(
            f"preference: {len(pairs)} pairs, fewer than preference.batch_size="
            f"{cfg.batch_size} ({facts}); sample more (preference.pairs.prompts, .samples, "
            "a higher .temperature) or bring a labelled dump (docs/preference.md)"
        )
    steps = cfg.max_steps or len(pairs) // cfg.batch_size
    _log(
        f"{len(pairs)} pairs ("
        + ", ".join(f"{k} {v}" for k, v in facts.items() if k.startswith("pairs_"))
        + f"), {steps} steps of {cfg.batch_size}"
    )

    # ---- arrays, one shape for every step
    parts = [
        [sequence_parts(p.prompt, side, tokenizer) for side in (p.chosen, p.rejected)]
        for p in pairs
    ]
    prompt_len = round_up(max(len(c[0]) for c, _ in parts), PROMPT_BUCKET)
    response_len = round_up(max(max(len(c[1]), len(r[1])) for c, r in parts), PROMPT_BUCKET)
    order = pair_order(len(pairs), steps, cfg.batch_size, cfg.seed)

    # ---- models: the policy, DPO's frozen reference
    reference = nnx.clone(model) if cfg.algorithm == "dpo" else None
    if cfg.lora.enabled:  # new adapters (B = 0: still the SFT policy) over the SFT weights
        model = add_lora(model, manifest, cfg.lora, mesh, seed=cfg.seed)

    history = History(restored_meta, restored_step)
    learning_rate = warmup_schedule(cfg.learning_rate, cfg.warmup_steps, cfg.lr_schedule, steps)

    adamw = optax.adamw(learning_rate, weight_decay=0.0)
    optimizer = (
        optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), adamw)
        if cfg.max_grad_norm
        else adamw
    )
    training = dpo_trainer.DPOTrainingConfig(
        algorithm=cfg.algorithm,
        beta=cfg.beta,
        lambda_orpo=cfg.lambda_orpo,
        label_smoothing=cfg.label_smoothing,
        eval_every_n_steps=steps + 1,
        max_steps=steps,
        checkpoint_root_directory=str(policy_dir),
        checkpointing_options=ocp.CheckpointManagerOptions(
            save_interval_steps=cfg.checkpoint_every_steps,
            max_to_keep=cfg.keep_checkpoints,
            save_on_steps=frozenset({steps}),
            cleanup_tmp_directories=True,
        ),
        pbar_description="preference",
        metrics_logging_options=metrics_logger.MetricsLoggerOptions(
            log_dir=str(out_dir / "live"),  # unused: the custom backend writes nowhere
            backend_kwargs={"custom_backend": [lambda: history]},
        ),
    )
    with runtime.use_mesh(mesh):
        trainer = dpo_trainer.DPOTrainer(model, reference, optimizer, training)
    if trainer.train_steps != restored_step:
        raise RuntimeError(
            f"internal: Tunix restored step {trainer.train_steps}, tunixrt read {restored_step}"
        )
    if restored_step:
        _log(f"resuming from checkpoint step {restored_step} of {steps} in {policy_dir}")

    def flush_and_record() -> None:
        n = trainer.train_steps
        if n > 0 and not (history.history and history.history[-1]["step"] >= n):
            trainer._write_train_metrics()  # Tunix writes a step's scalars one step late
            if not history.record(n, lambda k: float(learning_rate(k - 1))):
                raise RuntimeError(f"internal: step {n}'s scalars are missing")

    def metadata() -> dict[str, Any]:
        flush_and_record()
        return {"fingerprint": fingerprint, "pair_facts": facts, **history.metadata()}

    preemption = Preemption()
    trainer.checkpoint_manager = Checkpoints(
        trainer.checkpoint_manager,
        stage="preference",
        last_step=steps,
        metadata=metadata,
        preemption=preemption,
    )

    generate = (
        GreedyGenerator(
            trainer.model,
            tokenizer,
            max_new_tokens=facts.get("on_policy_max_new_tokens")
            or max(len(tokenizer.encode(p.reference or "")) for p in val) + 8,
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
        t0 = time.perf_counter()
        outs = generate([p.prompt for p in val])
        em = sum(judge(style, [o], p.expected)[0] for o, p in zip(outs, val, strict=True))
        history.add_eval(step, em / len(val), len(val))
        _log(f"step {step}: held-out exact match {em / len(val):.1%} on {len(val)} val problems")
        eval_seconds.append(time.perf_counter() - t0)

    step_times: list[float] = []  # when each step run ended, less the evaluations before it
    eval_seconds: list[float] = []

    def batches() -> Iterator[Any]:
        """The batches of steps 1..steps (order[k] is step k+1's). When Tunix pulls order[k], k
        steps are done: the step times and held-out measurements are taken there, and after the
        last step when the loop asks for one more. Resuming, Tunix pulls and drops the first
        `restored_step` batches: those are None."""
        for k in range(steps + 1):
            if k > restored_step:
                step_times.append(time.perf_counter() - sum(eval_seconds))
                if k % max(1, steps // 10) == 0 or k == steps:
                    _log(f"step {k}/{steps}")
                if cfg.eval_every_steps and (k % cfg.eval_every_steps == 0 or k == steps):
                    held_out(k)
            if k == steps:
                return
            if k < restored_step:
                yield None  # dropped unread
                continue
            arrays = pair_arrays(
                [pairs[i] for i in order[k]],
                tokenizer,
                prompt_len=prompt_len,
                response_len=response_len,
            )
            yield dpo_trainer.TrainingInput(**arrays)

    evaluated = {e["step"] for e in history.eval_history}
    owed = [0] if not restored_step else []
    if (
        cfg.eval_every_steps
        and restored_step
        and (restored_step % cfg.eval_every_steps == 0 or restored_step == steps)
    ):
        owed.append(restored_step)  # measured after its checkpoint was saved: maybe not kept
    with runtime.use_mesh(mesh):
        for step in owed:
            if cfg.eval_every_steps and step not in evaluated:
                held_out(step)
    setup_seconds = time.perf_counter() - t_setup - pairs_seconds
    eval_seconds.clear()

    t_train = time.perf_counter()
    if restored_step >= steps:
        _log(f"checkpoint step {restored_step} is the last step: nothing left to train")
    else:
        with runtime.use_mesh(mesh), preemption.watching(restored_step):
            trainer.train(batches())
        flush_and_record()
    train_seconds = time.perf_counter() - t_train

    if [r["step"] for r in history.history] != list(range(1, steps + 1)):
        raise RuntimeError(
            f"internal: the step history covers {len(history.history)} of {steps} steps"
        )
    staging = live_staging(out_dir)
    write_live(staging, history)
    publish_live(staging, out_dir)
    with atomic_writer(root / PREFERENCE_PAIRS) as fh:
        fh.write(kept.read_bytes())
    metrics = preference_metrics(
        history,
        enabled=True,
        algorithm=cfg.algorithm,
        steps=steps,
        batch_size=cfg.batch_size,
        pairs=len(pairs),
        lora=cfg.lora.enabled or manifest.training.lora.enabled,
        sft_step=sft_step,
        prompt_tokens=prompt_len,
        response_tokens=response_len,
        **facts,
    )
    ran = len(step_times)
    perf = {
        "pairs_seconds": pairs_seconds,
        "setup_seconds": setup_seconds,
        "train_seconds": train_seconds,
        "steps_run": ran,
        "resumed_from_step": restored_step,
        "first_step_seconds": step_times[0] - t_train if step_times else 0.0,
        "eval_seconds": sum(eval_seconds),
        "steady_step_seconds": (step_times[-1] - step_times[0]) / (ran - 1) if ran > 1 else 0.0,
        "platform": jax.devices()[0].platform,
        "devices": jax.device_count(),
    }
    write_reports(out_dir, metrics, perf)
    _log(
        f"done: {steps} steps, loss {metrics['loss_first']:.4f} -> {metrics['loss_last']:.4f}, "
        f"reward margin {metrics['margin_last10_mean']:.3f}, accuracy "
        f"{metrics['accuracy_last10_mean']:.2f} (last 10 steps)"
    )
    return metrics
