"""Wall time and held-out exact match of `dvc exp run -S experiment=grpo` from a fresh clone.

    .venv/bin/python benchmarks/grpo_preset.py [--keep DIR] [--smoke]

Clones the committed HEAD into a scratch folder (no DVC cache: every stage runs), runs
`dvc exp run -S experiment=grpo` there with this venv first on PATH, and prints the wall time
against the 20-minute target on a 2-core CPU, the exact match of the base model, after SFT and
after GRPO on the held-out test split (with the gain of GRPO over the SFT checkpoint it started
from, target >= 5 points on >= 300 problems), per category, and the GRPO stage's reward and
held-out series (docs/rl.md). `--smoke` (the test suite's check that this script still runs):
the same clone and `dvc exp run -S experiment=grpo`, with `-S` overrides that shrink it to a
few SFT and GRPO steps on 300 problems (SMOKE); the targets are not checked.
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
# --smoke: the preset, shrunk to seconds of work per stage
SMOKE = [
    "source.n=300",
    "train.max_steps=4",
    "train.batch_size=8",
    "eval.max_problems=4",
    "eval.max_new_tokens=8",
    "rl.max_steps=2",
    "rl.batch_size=2",
    "rl.num_generations=2",
    "rl.max_new_tokens=8",
    "rl.eval_every_steps=2",
    "rl.eval_problems=2",
    "rl.checkpoint_every_steps=2",
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", type=Path, help="clone into this folder and keep it")
    ap.add_argument("--smoke", action="store_true", help="a tiny run of the same path")
    args = ap.parse_args()
    overrides = ["experiment=grpo", *(SMOKE if args.smoke else [])]
    work = args.keep or Path(tempfile.mkdtemp(prefix="tunixrt-grpo-"))
    env = dict(os.environ, DVC_NO_ANALYTICS="1")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    clone = work / "clone"
    try:
        subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
        t0 = time.perf_counter()
        proc = subprocess.run(
            ["dvc", "exp", "run", *(arg for o in overrides for arg in ("-S", o))],
            cwd=clone,
            env=env,
            text=True,
            capture_output=True,
        )
        seconds = time.perf_counter() - t0
        if proc.returncode != 0:
            print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n", file=sys.stderr)
            return 1
        em = json.loads((clone / "runs/eval/metrics.json").read_text())
        rl = json.loads((clone / "runs/rl/metrics.json").read_text())
        perf = json.loads((clone / "runs/rl/perf.json").read_text())
        base, sft, grpo = em["before"], em["after"], em["grpo"]
        gain = 100 * em["delta_grpo"]
        print(
            f"wall time: {seconds / 60:.1f} min (target <= {TARGET_SECONDS // 60} min, "
            f"ratio {seconds / TARGET_SECONDS:.2f})"
        )
        print(
            f"held-out exact match on {grpo['n']} test problems: base "
            f"{100 * base['exact_match']:.1f}%, SFT {100 * sft['exact_match']:.1f}%, GRPO "
            f"{100 * grpo['exact_match']:.1f}%: GRPO {gain:+.1f} points over SFT "
            f"(target >= {TARGET_POINTS:.0f} on >= {TARGET_PROBLEMS})"
        )
        for cat in sorted(grpo["by_category"]):
            b, s, g = (m["by_category"].get(cat, {}) for m in (base, sft, grpo))
            print(
                f"  {cat:12s} n={g.get('n', 0):4d}  base {100 * b.get('exact_match', 0):5.1f}%"
                f"  SFT {100 * s.get('exact_match', 0):5.1f}%  GRPO "
                f"{100 * g.get('exact_match', 0):5.1f}%"
            )
        print(
            f"GRPO: {rl['steps']} steps of {rl['batch_size']} prompts x "
            f"{rl['num_generations']}, sampled reward {rl['reward_first10_mean']:.3f} -> "
            f"{rl['reward_last10_mean']:.3f}, val exact match by step "
            f"{rl['heldout_exact_match']}, {perf['steady_step_seconds']:.2f} s/step, "
            f"{perf['train_seconds']:.0f} s in all"
        )
        if args.smoke:
            print("smoke run: targets not checked")
            return 0
        ok = seconds <= TARGET_SECONDS and gain >= TARGET_POINTS and grpo["n"] >= TARGET_PROBLEMS
        print("targets met" if ok else "targets NOT met")
        return 0 if ok else 1
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
