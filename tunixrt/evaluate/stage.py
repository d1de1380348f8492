"""The evaluate stage: the model before and after training, on held-out problems.

Headline metrics (`before`, `after`, `delta`) cover the export splits in `eval.splits` (the
held-out test split by default); each eval-item file in `eval.sets` is scored under `by_set`.
With `rl.enabled`, the model after GRPO is scored too (`grpo`, and `delta_grpo` over `after`);
with `preference.enabled`, the model after DPO or ORPO (`dpo` or `orpo`, and `delta_dpo` or
`delta_orpo` over `after`): each starts from the SFT checkpoint, so all are scored side by side.
A held-out problem whose prompt is also in the training split fails the stage; an eval-set item
seen in training is left out and counted.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tunixrt.dataset.keys import prompt_key
from tunixrt.errors import DataError
from tunixrt.evaluate.config import CPU_DECODE_BATCH, DEVICE_DECODE_BATCH, EvalConfig
from tunixrt.evaluate.problems import (
    Problem,
    eval_set_problems,
    split_problems,
    train_prompt_keys,
)
from tunixrt.evaluate.scoring import exact_match
from tunixrt.formats import parse_answer
from tunixrt.jsonio import atomic_writer, dumps_line, read_json, write_json
from tunixrt.manifest.load import load_run_manifest, verify_inputs
from tunixrt.manifest.schema import RunManifest
from tunixrt.paths import EVAL_METRICS as METRICS
from tunixrt.paths import PREDICTIONS
from tunixrt.preference.config import PreferenceConfig
from tunixrt.rl.config import RLConfig
from tunixrt.validation import validate_config

# base, after SFT, after GRPO (rl.enabled), after DPO or ORPO (preference.enabled)
MODELS = ("before", "after", "grpo", "dpo", "orpo")
TUNED = ("grpo", "dpo", "orpo")  # each scored against `after` (delta_<name>)


def collect_problems(
    manifest: RunManifest, cfg: EvalConfig, root: Path
) -> tuple[list[Problem], dict[str, dict[str, int]]]:
    seen = train_prompt_keys(manifest, root)
    problems: list[Problem] = []
    info: dict[str, dict[str, int]] = {}
    for split in cfg.splits:
        items = split_problems(manifest, root, split)[: cfg.max_problems]
        if split != "train":
            leaked = [p for p in items if prompt_key(p.prompt) in seen]
            if leaked:
                raise DataError(
                    f"{len(leaked)} {split} problems share a prompt with train "
                    f"(first: {leaked[0].id}); the dataset split must keep them apart"
                )
        problems += items
        info[split] = {"n": len(items), "excluded_seen_in_train": 0}
    for path in cfg.sets:
        items = eval_set_problems(manifest, root, path)
        unseen = [p for p in items if prompt_key(p.prompt) not in seen]
        kept = unseen[: cfg.max_problems]
        problems += kept
        info[path] = {"n": len(kept), "excluded_seen_in_train": len(items) - len(unseen)}
    return problems, info


def _rate(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows)
    return {"exact_match": round(sum(r["correct"] for r in rows) / n, 6) if n else 0.0, "n": n}


def summarize(rows: Sequence[dict[str, Any]], headline_sets: Sequence[str]) -> dict[str, Any]:
    """Metrics of one model's rows: headline over `headline_sets`, plus by category and set."""
    head = [r for r in rows if r["set"] in headline_sets]
    by_cat: dict[str, list[dict[str, Any]]] = defaultdict(list)
    by_set: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in head:
        by_cat[r["category"]].append(r)
    for r in rows:
        by_set[r["set"]].append(r)
    return {
        **_rate(head),
        "by_category": {k: _rate(v) for k, v in sorted(by_cat.items())},
        "by_set": {k: _rate(v) for k, v in sorted(by_set.items())},
    }


def score_outputs(
    problems: Sequence[Problem], outputs: Sequence[str], style: str, model: str
) -> list[dict[str, Any]]:
    rows = []
    for p, text in zip(problems, outputs, strict=True):
        parsed = parse_answer(style, text)
        rows.append(
            {
                "set": p.set,
                "id": p.id,
                "model": model,
                "category": p.category,
                "prompt": p.prompt,
                "expected": p.expected,
                "generated": text,
                "parsed": parsed,
                "correct": exact_match(parsed, p.expected),
            }
        )
    return rows


def metrics_of(rows: Sequence[dict[str, Any]], headline_sets: Sequence[str]) -> dict[str, Any]:
    present = {r["model"] for r in rows}
    out: dict[str, Any] = {
        m: summarize([r for r in rows if r["model"] == m], headline_sets)
        for m in MODELS
        if m in present
    }
    out["delta"] = round(out["after"]["exact_match"] - out["before"]["exact_match"], 6)
    for name in TUNED:
        if name in out:
            out[f"delta_{name}"] = round(out[name]["exact_match"] - out["after"]["exact_match"], 6)
    return out


def decode_budget(problems: Sequence[Problem], tokenizer: Any, cfg: EvalConfig) -> int:
    if cfg.max_new_tokens is not None:
        return cfg.max_new_tokens
    from tunixrt.evaluate.generate import max_new_tokens_for

    refs = [p.reference for p in problems if p.reference]
    return max_new_tokens_for(refs, tokenizer) if refs else 128


def decode_batch_size(cfg: EvalConfig, platform: str) -> int:
    return cfg.batch_size or (CPU_DECODE_BATCH if platform == "cpu" else DEVICE_DECODE_BATCH)


def evaluate(
    manifest: RunManifest,
    cfg: EvalConfig,
    root: Path,
    *,
    rl: RLConfig | None = None,
    preference: PreferenceConfig | None = None,
) -> dict[str, Any]:
    """Decode every problem with the model before training, then load the trained weights into
    the same model (built once) and decode again; with `rl.enabled`, once more with the weights
    GRPO left; with `preference.enabled`, with the weights DPO/ORPO left (from the SFT weights
    again)."""
    from tunixrt.evaluate.generate import (
        GreedyGenerator,
        load_model,
        restore_grpo,
        restore_preference,
        restore_trained,
    )

    verify_inputs(manifest, root)
    for out in (PREDICTIONS, METRICS):
        (root / out).unlink(missing_ok=True)
    problems, info = collect_problems(manifest, cfg, root)
    if not problems:
        raise DataError("evaluate: no problems to evaluate (eval.splits / eval.sets are empty)")
    model, tokenizer, mesh = load_model(manifest, root, trained=False)
    max_new = decode_budget(problems, tokenizer, cfg)
    prompts = [p.prompt for p in problems]
    generate = GreedyGenerator(
        model,
        tokenizer,
        max_new_tokens=max_new,
        max_prompt_tokens=max(len(tokenizer.encode(p)) + 1 for p in prompts),
        batch_size=min(decode_batch_size(cfg, manifest.runtime.platform), len(prompts)),
        mesh=mesh,
    )
    style = manifest.dataset.reasoning_style
    rows = score_outputs(problems, generate(prompts), style, "before")
    restore_trained(model, manifest, root, mesh)  # the sampler reads the model's variables
    rows += score_outputs(problems, generate(prompts), style, "after")
    tuned_runs = []
    if rl is not None and rl.enabled:
        tuned_runs.append(("grpo", lambda: restore_grpo(model, manifest, root, mesh, rl)))
    if preference is not None and preference.enabled:
        tuned_runs.append(
            (
                preference.algorithm,
                lambda: restore_preference(model, manifest, root, mesh, preference),
            )
        )
    for k, (name, restore) in enumerate(tuned_runs):
        if k:  # the previous one may have changed the SFT model in place
            restore_trained(model, manifest, root, mesh)
        tuned = restore()
        sampler = generate
        if tuned is not model:  # new adapters: a new model, a new sampler
            sampler = GreedyGenerator(
                tuned,
                tokenizer,
                max_new_tokens=max_new,
                max_prompt_tokens=generate.max_prompt_tokens,
                batch_size=generate.batch_size,
                mesh=mesh,
            )
        rows += score_outputs(problems, sampler(prompts), style, name)
    rows.sort(key=lambda r: (r["set"], r["id"], MODELS.index(r["model"])))
    metrics = metrics_of(rows, cfg.splits)
    metrics["sets"] = info
    metrics["max_new_tokens"] = max_new
    with atomic_writer(root / PREDICTIONS) as fh:
        for r in rows:
            fh.write(dumps_line(r))
    write_json(root / METRICS, metrics)
    return metrics


def run(params: Mapping[str, Any], root: Path) -> None:
    from tunixrt.train.runtime import require_training_extras

    require_training_extras()
    cfg = validate_config(EvalConfig, params.get("eval"), "eval")
    rl = validate_config(RLConfig, params.get("rl", {}), "rl")  # absent: GRPO off
    pref = _preference(params)
    manifest = load_run_manifest(root)
    if manifest.runtime.launcher == "ray":
        from tunixrt.launch.driver import run_on_ray

        run_on_ray("evaluate", params, root, manifest)
        m = read_json(root / METRICS)
    else:
        m = evaluate(manifest, cfg, root, rl=rl, preference=pref)
    b, a = m["before"], m["after"]
    grpo = "".join(
        f", after {name.upper()} {m[name]['exact_match']:.1%}" for name in TUNED if name in m
    )
    print(
        f"evaluate: exact match on {a['n']} held-out problems: before {b['exact_match']:.1%}, "
        f"after {a['exact_match']:.1%} (delta {m['delta']:+.1%}){grpo} -> {METRICS}",
        file=sys.stderr,
    )


def on_host(
    manifest: RunManifest, params: Mapping[str, Any], root: Path, **_: Any
) -> tuple[int, None]:
    """The Ray launcher's one host: the same evaluation, on that host's devices."""
    from tunixrt.train.runtime import single_host

    cfg = validate_config(EvalConfig, params.get("eval"), "eval")
    rl = validate_config(RLConfig, params.get("rl", {}), "rl")
    evaluate(single_host(manifest), cfg, root, rl=rl, preference=_preference(params))
    return 0, None


def _preference(params: Mapping[str, Any]) -> PreferenceConfig:
    """The keys evaluate reads of `preference` (dvc.yaml passes no other), the rest defaults."""
    given = params.get("preference") or {}
    keys = ("enabled", "algorithm", "lora", "seed")
    return validate_config(
        PreferenceConfig, {k: given[k] for k in keys if k in given}, "preference"
    )
