"""What the train stage records: DVCLive series, metrics.json (deterministic), perf.json (timing).

metrics.json is a pure function of data, config and seed (floats rounded to 6 decimals, sorted
keys), so two clean runs on one machine write the same bytes. Wall-clock figures go to perf.json
and to the DVCLive `perf/` series.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from tunixrt.jsonio import write_json

DIGITS = 6
LIVE = "live"
REPORTS = ("metrics.json", "perf.json")


def _round(x: Any) -> Any:
    return round(float(x), DIGITS) if isinstance(x, float) else x


def open_live(directory: Path) -> Any:
    """A DVCLive `Live` that never creates DVC experiments, nor writes dvc.yaml or a report."""
    from dvclive import Live

    return Live(
        str(directory),
        resume=False,
        save_dvc_exp=False,
        monitor_system=False,
        dvcyaml=None,
        report=None,
    )


class LiveSeries:
    """DVCLive, configured never to create DVC experiments, nor write dvc.yaml or timestamps.

    `train/loss`, `train/learning_rate`, `train/grad_norm`, `train/padding_fraction`,
    `train/tokens` (cumulative), `perf/tokens_per_s`, `eval/loss`; step = optimizer update.
    Points are kept until `flush`, which appends each series' rows in one write, in DVCLive's
    format, then logs the last point through DVCLive (its summary). DVCLive's own per-point
    writes, and its `next_step`, which re-reads every series on each call, would cost a run of
    many short steps more than its training.
    """

    def __init__(self, directory: Path) -> None:
        self._live = open_live(directory)
        self._tokens = 0
        self._rows: dict[str, list[tuple[int, Any]]] = {}

    def _add(self, name: str, step: int, value: Any) -> None:
        self._rows.setdefault(name, []).append((step, value))

    def log_step(self, r: dict[str, Any], tokens_per_s: float) -> None:
        self._tokens += r["tokens"]
        for name in ("loss", "learning_rate", "grad_norm", "padding_fraction"):
            self._add(f"train/{name}", r["step"], _round(r[name]))
        self._add("train/tokens", r["step"], self._tokens)
        self._add("perf/tokens_per_s", r["step"], round(tokens_per_s, 1))

    def log_eval(self, r: dict[str, Any]) -> None:
        self._add("eval/loss", r["step"], _round(r["loss"]))

    def flush(self) -> None:
        import csv
        import os

        rows, self._rows = self._rows, {}
        if not rows:
            return
        for name, points in rows.items():
            *head, (last_step, last_value) = points
            if head:
                path = Path(self._live.plots_dir) / "metrics" / f"{name}.tsv"
                path.parent.mkdir(parents=True, exist_ok=True)
                new = not path.exists()
                with open(path, "a", encoding="utf-8", newline="") as fh:
                    writer = csv.writer(fh, delimiter="\t", lineterminator=os.linesep)
                    if new:
                        writer.writerow(["step", os.path.basename(name)])
                    writer.writerows(head)
            self._live.step = last_step
            self._live.log_metric(name, last_value)
        self._live.step = max(points[-1][0] for points in rows.values())
        self._live.make_summary()

    def end(self) -> None:
        self.flush()
        self._live.end()


def training_metrics(
    history: list[dict[str, Any]],
    eval_history: list[dict[str, Any]],
    **facts: Any,
) -> dict[str, Any]:
    """metrics.json: the loss curve's ends plus counts of what was trained on."""
    losses = [r["loss"] for r in history]
    tail = losses[-10:]
    out: dict[str, Any] = {
        "loss_first": losses[0] if losses else None,
        "loss_last": losses[-1] if losses else None,
        "loss_last10_mean": sum(tail) / len(tail) if tail else None,
        "tokens": sum(r["tokens"] for r in history),
        "loss_tokens": sum(r["loss_tokens"] for r in history),
    }
    slots = sum(r["slots"] for r in history)
    out["padding_fraction"] = 1.0 - out["tokens"] / slots if slots else 0.0
    if eval_history:
        out["eval_loss_first"] = eval_history[0]["loss"]
        out["eval_loss_last"] = eval_history[-1]["loss"]
    out.update(facts)
    return {k: _round(v) for k, v in sorted(out.items())}


def clear_outputs(out_dir: Path) -> None:
    """Remove a previous run's metrics.json, perf.json and live/, and what a killed run left of
    its live/ (DVC removes the outs itself; `tunixrt run` relies on this), so that a run killed
    before its end leaves no report that looks finished."""
    for name in REPORTS:
        (out_dir / name).unlink(missing_ok=True)
    for path in [out_dir / LIVE, *out_dir.glob(f".{LIVE}.*.tmp")]:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def live_staging(out_dir: Path) -> Path:
    """A folder beside live/ for DVCLive to write into while the run lasts (`publish_live` moves
    it into place at the end): a killed run leaves no live/ with half the curve."""
    staging = out_dir / f".{LIVE}.{os.getpid()}.tmp"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    return staging


def publish_live(staging: Path, out_dir: Path) -> None:
    final = out_dir / LIVE
    if final.exists():
        shutil.rmtree(final)
    os.replace(staging, final)


def write_reports(out_dir: Path, metrics: dict[str, Any], perf: dict[str, Any]) -> None:
    write_json(out_dir / "metrics.json", metrics)
    write_json(out_dir / "perf.json", {k: _round(v) for k, v in sorted(perf.items())})
