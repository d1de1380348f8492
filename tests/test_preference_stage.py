"""The preference stage on a labelled dump: DPO on the SFT checkpoint through DVC, evaluate and
the report showing it beside SFT, a resume after SIGKILL that ends as an uninterrupted run, and
`preference.enabled=false` leaving the pipeline's dvc.lock exactly as it was."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest
from conftest import iter_jsonl, killed_after_checkpoint, make_pipeline, sh, tunixrt

from tunixrt.verify.model import checkpoint_digest

pytestmark = pytest.mark.e2e

DUMP = Path(__file__).parent / "data" / "labelled_attempts.jsonl"
BASE = [
    "experiment=smoke",
    "source=files",
    "source.paths=[inputs/labelled_attempts.jsonl]",
    "train.max_steps=8",
    "train.max_seq_length=288",
]
DPO = [
    "preference.enabled=true",
    "preference.batch_size=4",
    "preference.max_steps=4",
    "preference.pairs.prompts=2",  # on-policy sampling runs; this model gets none right
    "preference.pairs.samples=2",
    "preference.pairs.max_new_tokens=16",
    "preference.checkpoint_every_steps=2",
    "preference.eval_every_steps=2",
    "preference.eval_problems=2",
]
OUTS = ["runs/preference/metrics.json", "runs/preference/pairs.jsonl"]


def _outs(root: Path) -> dict[str, object]:
    out: dict[str, object] = {p: (root / p).read_bytes() for p in OUTS}
    out["live"] = sorted(
        (p.relative_to(root).as_posix(), p.read_bytes())
        for p in (root / "runs/preference/live").rglob("*")
        if p.is_file()
    )
    out["weights"] = checkpoint_digest(root / "runs/preference/checkpoints/policy")
    return out


def test_dpo_on_a_labelled_dump(tmp_path: Path) -> None:
    root = make_pipeline(tmp_path / "p", git=False)
    shutil.copy(DUMP, root / "inputs" / DUMP.name)
    sh("git", "init", "-q", "-b", "main", cwd=root)
    sh("git", "add", "-A", cwd=root)
    sh("git", "commit", "-q", "-m", "pipeline", cwd=root)
    tunixrt("compose", *BASE, cwd=root)
    sh("dvc", "repro", "evaluate", cwd=root)  # publish and report: tests/test_report_page.py
    lock_without = (root / "dvc.lock").read_bytes()
    assert orjson.loads((root / "runs/preference/metrics.json").read_bytes()) == {"enabled": False}
    assert (root / "runs/preference/pairs.jsonl").read_bytes() == b""
    assert len(list(iter_jsonl(root / "data/export/pairs.jsonl"))) > 8

    # DPO after SFT through DVC: evaluate scores it beside SFT
    tunixrt("compose", *BASE, *DPO, cwd=root)
    sh("dvc", "repro", "evaluate", cwd=root)
    m = orjson.loads((root / "runs/preference/metrics.json").read_bytes())
    assert m["enabled"] is True and m["algorithm"] == "dpo" and m["steps"] == 4
    assert m["pairs"] == m["pairs_labelled"] + m["pairs_on_policy"] >= 8
    assert m["on_policy_samples"] == 4
    assert sorted(m["heldout_exact_match"], key=int) == ["0", "2", "4"]
    assert m["loss_first"] == pytest.approx(0.693147, abs=1e-4)  # log 2: the policy is the ref
    trained = list(iter_jsonl(root / "runs/preference/pairs.jsonl"))
    assert len(trained) == m["pairs"]
    assert all(p["chosen"] != p["rejected"] for p in trained)
    evaluated = orjson.loads((root / "runs/eval/metrics.json").read_bytes())
    assert {"before", "after", "dpo", "delta_dpo"} <= set(evaluated)
    series = root / "runs/preference/live/plots/metrics/preference"
    assert {"loss.tsv", "reward_margin.tsv", "logp_chosen.tsv", "logp_rejected.tsv"} <= {
        p.name for p in series.iterdir()
    }

    # an edit to code the numbers depend on starts the run over (the one before is set aside);
    # killed after its step-2 checkpoint and run again through DVC, it resumes and ends with the
    # outs of the uninterrupted run (a comment edit: the same numbers)
    uninterrupted = _outs(root)
    batches = root / "tunixrt/preference/batches.py"
    original = batches.read_text()
    batches.write_text(original + "\n# an edit\n")
    killed = killed_after_checkpoint(
        root,
        "preference",
        "runs/preference/checkpoints/policy",
        2,
        [*OUTS, "runs/preference/live"],
        tmp_path / "killed.log",
    )
    assert not (root / "runs/preference/metrics.json").exists()
    assert "belong to another configuration" in killed and "resuming" not in killed
    resumed = sh("dvc", "repro", "preference", cwd=root)
    assert "resuming from checkpoint step 2 of 4" in resumed.stderr
    assert "pairs kept with the checkpoints" in resumed.stderr
    assert _outs(root) == uninterrupted
    batches.write_text(original)

    # off again: the lock is byte for byte what it was before DPO ever ran
    tunixrt("compose", *BASE, "preference.enabled=false", cwd=root)
    sh("dvc", "repro", "evaluate", cwd=root)
    assert (root / "dvc.lock").read_bytes() == lock_without
    assert any((root / "runs/preference/checkpoints.aside").iterdir())
