"""The resume fingerprints cover what DVC reruns a training stage for: the stage's whole import
closure (less an explicit list of modules that change no number) and the weights' digests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sample_data import make_manifest

from tunixrt.lineage import closure, package_root
from tunixrt.manifest.schema import ModelSection, SplitFile, TrainingSection, WeightsSection
from tunixrt.rl import run as rl_run
from tunixrt.train import checkpoints

REPO = package_root()


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "tunixrt", tmp_path / "tunixrt", ignore=shutil.ignore_patterns("*.pyc"))
    return tmp_path


def edit(root: Path, rel: str) -> None:
    with (root / rel).open("a") as fh:
        fh.write("\n# an edit\n")


@pytest.mark.parametrize(
    ("rel", "train_changes", "rl_changes"),
    [
        ("tunixrt/chat_templates.py", True, True),  # decides the tokens
        ("tunixrt/formats/gemma.py", True, True),
        ("tunixrt/train/model.py", True, True),
        ("tunixrt/evaluate/scoring.py", False, True),  # the GRPO reward's parser
        ("tunixrt/rl/reward.py", False, True),
        ("tunixrt/train/metrics.py", False, False),  # what is reported
        ("tunixrt/rl/history.py", False, False),
        ("tunixrt/errors.py", False, False),
        ("tunixrt/report/page.py", False, False),  # in neither closure
    ],
)
def test_code_digests_follow_the_import_closure(
    copy: Path, rel: str, train_changes: bool, rl_changes: bool
) -> None:
    train, rl = checkpoints.training_code_digest(copy), rl_run.rl_code_digest(copy)
    assert (train, rl) == (checkpoints.training_code_digest(), rl_run.rl_code_digest())
    edit(copy, rel)
    assert (checkpoints.training_code_digest(copy) != train) == train_changes
    assert (rl_run.rl_code_digest(copy) != rl) == rl_changes


@pytest.mark.parametrize(
    ("target", "listed"),
    [
        (checkpoints.TRAIN_TARGET, checkpoints.NON_NUMERIC_MODULES),
        (rl_run.RL_TARGET, rl_run.NON_NUMERIC_MODULES),
    ],
)
def test_every_module_listed_as_non_numeric_is_in_the_closure(target: str, listed) -> None:
    files = closure(REPO, [target.split(":")[0], "tunixrt.stages"])
    names = {p.relative_to(REPO).as_posix() for p in files}
    assert listed <= names, f"not imported by the stage any more: {sorted(listed - names)}"


def test_run_fingerprint_covers_weights_and_data_not_cadence() -> None:
    splits = {
        s: SplitFile(path=f"data/export/{s}.jsonl", sha256=str(i) * 64, records=1)
        for i, s in enumerate(("train", "val", "test"))
    }
    model = ModelSection(model_id="tiny", family="gemma3", preset="tiny")
    m = make_manifest(splits, model=model, training=TrainingSection())
    base = checkpoints.run_fingerprint(m)
    cadence = m.model_copy(
        update={"training": m.training.model_copy(update={"checkpoint_every_steps": 99})}
    )
    assert checkpoints.run_fingerprint(cadence) == base
    new_tok = m.model_copy(update={"weights": WeightsSection(tokenizer_sha256="0" * 64)})
    assert checkpoints.run_fingerprint(new_tok) != base
    val = m.dataset.splits["val"].model_copy(update={"sha256": "9" * 64})
    new_val = m.model_copy(
        update={
            "dataset": m.dataset.model_copy(update={"splits": {**m.dataset.splits, "val": val}})
        }
    )
    assert checkpoints.run_fingerprint(new_val) != base
