"""runs/summary.json: the figures people compare across runs, in the order `dvc exp show` shows
them (it lists this file's columns first: dvc.yaml's top-level `metrics:` puts it there).

Every value is copied from runs/eval/metrics.json or runs/train/metrics.json, which keep the
breakdowns (by category, by eval set) and the training counters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson


def summary(train: Mapping[str, Any], evaluation: Mapping[str, Any]) -> dict[str, Any]:
    before, after = evaluation["before"], evaluation["after"]
    out: dict[str, Any] = {
        "exact_match_before": before["exact_match"],
        "exact_match_after": after["exact_match"],
        "exact_match_gain": evaluation["delta"],
    }
    for name in ("grpo", "dpo", "orpo"):  # each from the SFT checkpoint
        if tuned := evaluation.get(name):
            out[f"exact_match_after_{name}"] = tuned["exact_match"]
            out[f"{name}_gain"] = round(tuned["exact_match"] - after["exact_match"], 6)
    out |= {
        "train_loss_first": train.get("loss_first"),
        "train_loss_last": train.get("loss_last"),
        "train_steps": train.get("steps"),
        "held_out_problems": after["n"],
    }
    return out


def dumps_summary(doc: Mapping[str, Any]) -> bytes:
    """Keys in the order above (not sorted, unlike the other metrics files)."""
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n"
