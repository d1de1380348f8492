"""The rl stage on the smoke preset: GRPO steps on the SFT checkpoint, rewards scored by the same
parser evaluate uses, a resume after SIGKILL that ends as an uninterrupted run, and
`rl.enabled=false` leaving the pipeline's dvc.lock exactly as it was."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import yaml
from conftest import iter_jsonl, killed_after_checkpoint, make_pipeline, sh, tunixrt

from tunixrt.evaluate.problems import Problem
from tunixrt.evaluate.stage import score_outputs
from tunixrt.manifest.load import load_run_manifest
from tunixrt.publish.check import weight_differences
from tunixrt.publish.config import PublishConfig
from tunixrt.rl.config import RLConfig
from tunixrt.verify.model import checkpoint_digest

pytestmark = pytest.mark.e2e

BASE = ["experiment=smoke", "format=grpo", "train.max_steps=80"]  # about half the answers parse
RL = [
    "rl.enabled=true",
    "rl.max_steps=4",
    "rl.batch_size=4",
    "rl.num_generations=4",
    "rl.checkpoint_every_steps=2",
    "rl.eval_every_steps=4",
    "rl.eval_problems=8",
]
RL_OUTS = ["runs/rl/metrics.json", "runs/rl/rollouts.jsonl"]


def _outs(root: Path) -> dict[str, object]:
    out: dict[str, object] = {p: (root / p).read_bytes() for p in RL_OUTS}
    out["live"] = sorted(
        (p.relative_to(root).as_posix(), p.read_bytes())
        for p in (root / "runs/rl/live").rglob("*")
        if p.is_file()
    )
    out["weights"] = checkpoint_digest(root / "runs/rl/checkpoints/actor")
    return out


def test_grpo_on_the_smoke_preset(tmp_path: Path) -> None:
    root = make_pipeline(tmp_path / "p")
    tunixrt("compose", *BASE, cwd=root)
    sh("dvc", "repro", cwd=root)
    lock_without_rl = (root / "dvc.lock").read_bytes()
    assert orjson.loads((root / "runs/rl/metrics.json").read_bytes()) == {"enabled": False}
    assert "grpo" not in orjson.loads((root / "runs/eval/metrics.json").read_bytes())

    # GRPO after SFT, through DVC: evaluate then scores three models
    tunixrt("compose", *BASE, *RL, cwd=root)
    sh("dvc", "repro", cwd=root)
    metrics = orjson.loads((root / "runs/rl/metrics.json").read_bytes())
    assert metrics["enabled"] is True and metrics["steps"] == 4
    assert sorted(metrics["heldout_exact_match"], key=int) == ["0", "4"]
    evaluated = orjson.loads((root / "runs/eval/metrics.json").read_bytes())
    assert {"before", "after", "grpo", "delta_grpo"} <= set(evaluated)
    assert "after GRPO" in (root / "runs/report.md").read_text()
    # publish's default is the last policy trained: the GRPO one, read back to its numbers
    card = (root / "runs/publish/README.md").read_text()
    assert "Published policy: **grpo**" in card and "| after GRPO |" in card
    params = yaml.safe_load((root / "params.yaml").read_text())
    publish_cfg, rl_cfg = PublishConfig(**params["publish"]), RLConfig(**params["rl"])
    assert weight_differences(load_run_manifest(root), publish_cfg, rl_cfg, root) == []

    # every reward is the one evaluate's scoring gives the completion
    rows = list(iter_jsonl(root / "runs/rl/rollouts.jsonl"))
    assert len(rows) == 4 * 4 * 4
    style = "numbered"
    for r in rows:
        problem = Problem("train", r["id"], "", r["expected"], "-", None)
        [scored] = score_outputs([problem], [r["completion"]], style, "grpo")
        assert r["correct"] == scored["correct"]
        assert r["formatted"] == (scored["parsed"] is not None)
        assert r["reward"] == pytest.approx(1.0 * r["correct"] + 0.1 * r["formatted"])
    assert any(r["formatted"] for r in rows), "no completion parsed: the check above is vacuous"
    reward_mean = sum(r["reward"] for r in rows) / len(rows)
    steps_mean = metrics["reward_first10_mean"]  # 4 steps: the mean of the 4 step means
    assert steps_mean == pytest.approx(reward_mean, abs=1e-6)

    # the reward's parser decides the numbers: after an edit to it, rl starts over (the run
    # before is set aside). That run, SIGKILLed after its step-2 checkpoint and run again through
    # DVC, resumes and ends with the outs of the uninterrupted run (a comment edit: the same
    # numbers); then a cadence change reruns rl, and it resumes
    uninterrupted = _outs(root)
    scoring = root / "tunixrt/evaluate/scoring.py"
    original = scoring.read_text()
    scoring.write_text(original + "\n# an edit\n")
    killed = killed_after_checkpoint(
        root, "rl", "runs/rl/checkpoints/actor", 2, [*RL_OUTS, "runs/rl/live"], tmp_path / "k.log"
    )
    assert not (root / "runs/rl/metrics.json").exists()
    assert "belong to another configuration" in killed and "resuming" not in killed
    resumed = sh("dvc", "repro", "rl", cwd=root)
    assert "resuming from checkpoint step 2 of 4" in resumed.stderr
    assert _outs(root) == uninterrupted
    tunixrt("compose", *BASE, *RL, "rl.checkpoint_every_steps=4", cwd=root)
    proc = sh("dvc", "repro", "rl", cwd=root)
    assert "resuming from checkpoint step 4 of 4" in proc.stderr
    scoring.write_text(original)

    # rl off again: the lock is byte for byte what it was before GRPO ever ran
    tunixrt("compose", *BASE, "rl.enabled=false", cwd=root)
    sh("dvc", "repro", cwd=root)
    assert (root / "dvc.lock").read_bytes() == lock_without_rl
    assert any((root / "runs/rl/checkpoints.aside").iterdir())  # the GRPO run is kept aside
