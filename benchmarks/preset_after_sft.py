"""Wall time and held-out exact match of `dvc exp run -S experiment=grpo|dpo|orpo` from a fresh
clone: SFT, then GRPO or DPO/ORPO on the same trace mix.

    .venv/bin/python benchmarks/preset_after_sft.py [--experiment grpo|dpo|orpo] [--keep DIR]
                                                    [--smoke]

Clones the committed HEAD into a scratch folder (no DVC cache: every stage runs), runs
`dvc exp run -S experiment=NAME` there with this venv first on PATH, and prints the wall time
against the 20-minute target on a 2-core CPU, the exact match of the base model, after SFT and
after each method that ran on the held-out test split (with its gain over the SFT checkpoint it
started from, target >= 5 points on >= 300 problems), per category, and each method's stage
figures and wall time (docs/rl.md, docs/preference.md). `--smoke` (the test suite's check that
this script still runs): experiment=dpo with GRPO on too, on the labelled test dump
(tests/data/labelled_attempts.jsonl, copied into the clone's inputs/), shrunk by `-S` overrides
to a few steps of each (SMOKE); the targets are not checked.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 20 * 60
TARGET_POINTS = 5.0
TARGET_PROBLEMS = 300
METHODS = {"grpo": "GRPO", "dpo": "DPO", "orpo": "ORPO"}
DUMP = "tests/data/labelled_attempts.jsonl"
# --smoke: DPO and GRPO on the labelled dump, shrunk to seconds of work per stage
SMOKE = [
    "source=files",
    "source.paths=[inputs/labelled_attempts.jsonl]",
    "~source.answer_only_fraction",  # the preset's, for its synthetic source
    "train.max_steps=4",
    "train.batch_size=8",
    "train.max_seq_length=288",
    "eval.max_problems=4",
    "eval.max_new_tokens=8",
    "rl.enabled=true",
    "rl.max_steps=2",
    "rl.batch_size=2",
    "rl.num_generations=2",
    "rl.max_new_tokens=8",
    "rl.eval_every_steps=null",
    "rl.checkpoint_every_steps=2",
    "preference.max_steps=2",
    "preference.batch_size=2",
    "preference.pairs.prompts=2",
    "preference.pairs.samples=2",
    "preference.pairs.max_new_tokens=8",
    "preference.eval_every_steps=null",
    "preference.checkpoint_every_steps=2",
]


def _read(clone: Path, rel: str) -> dict:
    path = clone / rel
    return json.loads(path.read_text()) if path.is_file() else {}


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", choices=sorted(METHODS), default="grpo")
    ap.add_argument("--keep", type=Path, help="clone into this folder and keep it")
    ap.add_argument("--smoke", action="store_true", help="a tiny run of the same path")
    args = ap.parse_args()
    experiment = "dpo" if args.smoke else args.experiment
    overrides = [f"experiment={experiment}", *(SMOKE if args.smoke else [])]
    work = args.keep or Path(tempfile.mkdtemp(prefix=f"tunixrt-{experiment}-"))
    env = dict(os.environ, DVC_NO_ANALYTICS="1")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    clone = work / "clone"
    try:
        subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
        if args.smoke:
            shutil.copy(REPO / DUMP, clone / "inputs")
        t0 = time.perf_counter()
        # --smoke: up to evaluate, whose metrics are what this script reads (no publish, report)
        targets = ["evaluate"] if args.smoke else []
        proc = subprocess.run(
            ["dvc", "exp", "run", *targets, *(arg for o in overrides for arg in ("-S", o))],
            cwd=clone,
            env=env,
            text=True,
            capture_output=True,
        )
        seconds = time.perf_counter() - t0
        if proc.returncode != 0:
            print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n", file=sys.stderr)
            return 1
        em = _read(clone, "runs/eval/metrics.json")
        ran = [m for m in METHODS if m in em]
        base, sft = em["before"], em["after"]
        print(
            f"wall time: {seconds / 60:.1f} min (target <= {TARGET_SECONDS // 60} min, "
            f"ratio {seconds / TARGET_SECONDS:.2f})"
        )
        train_perf = _read(clone, "runs/train/perf.json")
        print(
            f"held-out exact match on {sft['n']} test problems: base {_pct(base['exact_match'])}, "
            f"SFT {_pct(sft['exact_match'])} (train stage {train_perf.get('train_seconds', 0):.0f} "
            "s)"
        )
        for m in ran:
            print(
                f"  after {METHODS[m]}: {_pct(em[m]['exact_match'])}, "
                f"{100 * em[f'delta_{m}']:+.1f} points over SFT "
                f"(target >= {TARGET_POINTS:.0f} on >= {TARGET_PROBLEMS})"
            )
        for cat in sorted(sft["by_category"]):
            cells = "  ".join(
                f"{label} {100 * em[k]['by_category'].get(cat, {}).get('exact_match', 0):5.1f}%"
                for k, label in (("before", "base"), ("after", "SFT"), *METHODS.items())
                if k in em
            )
            print(f"  {cat:12s} n={sft['by_category'][cat]['n']:4d}  {cells}")
        if "grpo" in ran:
            rl, perf = _read(clone, "runs/rl/metrics.json"), _read(clone, "runs/rl/perf.json")
            print(
                f"GRPO: {rl['steps']} steps of {rl['batch_size']} prompts x "
                f"{rl['num_generations']}, sampled reward {rl['reward_first10_mean']:.3f} -> "
                f"{rl['reward_last10_mean']:.3f}, val exact match by step "
                f"{rl['heldout_exact_match']}, {perf['steady_step_seconds']:.2f} s/step, "
                f"rl stage {perf['setup_seconds'] + perf['train_seconds']:.0f} s"
            )
        pref_ran = [m for m in ran if m != "grpo"]
        if pref_ran:
            pm = _read(clone, "runs/preference/metrics.json")
            perf = _read(clone, "runs/preference/perf.json")
            stage_seconds = perf["pairs_seconds"] + perf["setup_seconds"] + perf["train_seconds"]
            print(
                f"{METHODS[pref_ran[0]]}: {pm['pairs']} pairs ({pm.get('pairs_on_policy', 0)} "
                f"on-policy from {pm.get('on_policy_samples', 0)} samples, "
                f"{_pct(pm.get('on_policy_right_fraction', 0))} right; "
                f"{pm.get('pairs_labelled', 0)} labelled), {pm['steps']} steps of "
                f"{pm['batch_size']}, reward margin {pm['margin_first10_mean']:.3f} -> "
                f"{pm['margin_last10_mean']:.3f}, val exact match by step "
                f"{pm['heldout_exact_match']}, sampling {perf['pairs_seconds']:.0f} s, "
                f"{perf['steady_step_seconds']:.2f} s/step, preference stage {stage_seconds:.0f} s"
            )
        if args.smoke:
            print("smoke run: targets not checked")
            return 0
        gain = 100 * em[args.experiment]["exact_match"] - 100 * sft["exact_match"]
        ok = seconds <= TARGET_SECONDS and gain >= TARGET_POINTS and sft["n"] >= TARGET_PROBLEMS
        print("targets met" if ok else "targets NOT met")
        return 0 if ok else 1
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
