"""What the train stage records: DVCLive series, metrics.json (deterministic), perf.json (timing).

metrics.json is a pure function of data, config and seed (floats rounded to 6 decimals, sorted
keys), so two clean runs on one machine write the same bytes. Wall-clock figures go to perf.json
and to the DVCLive `perf/` series.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunixrt.jsonio import write_json

DIGITS = 6


def _round(x: Any) -> Any:
    return round(float(x), DIGITS) if isinstance(x, float) else x


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
        from dvclive import Live

        self._live = Live(
            str(directory),
            resume=False,
            save_dvc_exp=False,
            monitor_system=False,
            dvcyaml=None,
            report=None,
        )
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


def write_reports(out_dir: Path, metrics: dict[str, Any], perf: dict[str, Any]) -> None:
    write_json(out_dir / "metrics.json", metrics)
    write_json(out_dir / "perf.json", {k: _round(v) for k, v in sorted(perf.items())})
