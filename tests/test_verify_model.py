"""`make verify`'s comparisons for the train and evaluate stages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orbax.checkpoint as ocp

from tunixrt.verify.model import _mismatches, checkpoint_digest


def save(directory: Path, step: int, params: dict) -> None:
    with ocp.CheckpointManager(directory.resolve()) as mngr:
        mngr.save(step, args=ocp.args.Composite(model_params=ocp.args.PyTreeSave(params)))
        mngr.wait_until_finished()


def test_checkpoint_digest_compares_arrays_not_orbax_file_names(tmp_path: Path) -> None:
    params = {"w": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.ones(4, np.float32)}
    save(tmp_path / "a", 7, params)
    save(tmp_path / "b", 7, params)
    a, b = checkpoint_digest(tmp_path / "a"), checkpoint_digest(tmp_path / "b")
    assert list(a) == ["7/model_params"] and a == b
    # the raw files differ: OCDBT data files get random names, commit_success.txt a path
    names = {p.relative_to(tmp_path / "a").as_posix() for p in (tmp_path / "a").rglob("*")}
    assert names != {p.relative_to(tmp_path / "b").as_posix() for p in (tmp_path / "b").rglob("*")}

    changed = {**params, "b": params["b"].copy()}
    changed["b"][2] = np.nextafter(np.float32(1), np.float32(2))  # one ulp
    save(tmp_path / "c", 7, changed)
    assert checkpoint_digest(tmp_path / "c") != a
    assert checkpoint_digest(tmp_path / "missing") == {}


def metrics(rate: float, small: float, loss: float, **extra: object) -> dict:
    after = {"exact_match": rate, "n": 300, "by_set": {"small": {"exact_match": small, "n": 20}}}
    return {"after": after, "delta": rate, "loss_last": loss, **extra}


def test_metrics_agree_within_tolerance_and_name_what_differs() -> None:
    committed = metrics(0.9, 0.5, 0.0026, steps=1414, model="tiny")
    # another CPU: 8 of 300 problems (2.7 points) and 2 of 20 (10 points) fewer right
    close = metrics(0.873333, 0.4, 0.0026026, steps=1414, model="tiny")
    assert _mismatches(close, committed, 1e-3) == []
    bad = metrics(0.85, 0.35, 0.05, model="other")
    assert _mismatches(bad, committed, 1e-3) == [
        ".steps: missing",
        ".after.exact_match: 0.85 vs committed 0.9 (tolerance 0.030)",
        ".after.by_set.small.exact_match: 0.35 vs committed 0.5 (tolerance 0.100)",
        ".delta: 0.85 vs committed 0.9 (tolerance 0.030)",
        ".loss_last: 0.05 vs committed 0.0026",
        ".model: 'other' vs committed 'tiny'",
    ]


def test_losses_are_compared_relatively_and_counts_exactly() -> None:
    """An absolute 0.01 accepted any final loss from 0 to 0.011 for a committed 0.00089."""
    committed = {"loss_first": 5.611464, "loss_last": 0.00089, "tokens": 2725826, "lora": False}
    assert _mismatches(dict(committed), committed, 1e-3) == []
    within = {**committed, "loss_first": 5.6159, "loss_last": 0.000891}  # 0.08%; 1e-6 (rounding)
    assert _mismatches(within, committed, 1e-3) == []
    assert _mismatches({**committed, "loss_last": 0.005}, committed, 1e-3) == [
        ".loss_last: 0.005 vs committed 0.00089"
    ]
    assert _mismatches({**committed, "loss_last": 0.0}, committed, 1e-3) == [
        ".loss_last: 0.0 vs committed 0.00089"
    ]
    assert _mismatches({**committed, "loss_first": 5.62}, committed, 1e-3) == [
        ".loss_first: 5.62 vs committed 5.611464"
    ]
    assert _mismatches({**committed, "tokens": 2725827, "lora": True}, committed, 1e-3) == [
        ".tokens: 2725827 vs committed 2725826",
        ".lora: True vs committed False",
    ]
    assert _mismatches({**committed, "loss_last": 0.005}, committed, 10.0) == []  # --rel-tol
