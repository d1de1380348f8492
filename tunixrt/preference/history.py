"""The DPO/ORPO run's per-step history: the scalars Tunix's trainer logs each step (loss, reward
margin and accuracy, chosen and rejected log-probs, ORPO's odds ratio, grad norm) and the
held-out exact match. It travels in every checkpoint's metadata, so a resumed run reports the
whole curve; metrics.json and the DVCLive series are built from it alone (deterministic).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

DIGITS = 6
# Tunix's name (after `train/`) -> the history's
SCALARS = {
    "loss": "loss",
    "rewards/chosen": "reward_chosen",
    "rewards/rejected": "reward_rejected",
    "rewards/margin": "reward_margin",
    "rewards/accuracy": "reward_accuracy",
    "log_probs/chosen": "logp_chosen",
    "log_probs/rejected": "logp_rejected",
    "odds_ratio": "odds_ratio",
    "grad_norm": "grad_norm",
}
REQUIRED = ("loss", "reward_margin", "reward_accuracy", "logp_chosen", "logp_rejected")


def _round(x: Any) -> Any:
    return round(float(x), DIGITS) if isinstance(x, float) else x


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


class History:
    """Step records of a preference run, and a Tunix metrics backend (MetricsLoggerOptions
    custom_backend) that collects each step's scalars."""

    def __init__(self, restored: dict[str, Any], restored_step: int) -> None:
        self.history: list[dict[str, Any]] = list(restored.get("history", []))[:restored_step]
        self.eval_history: list[dict[str, Any]] = [
            e for e in restored.get("eval_history", []) if e["step"] <= restored_step
        ]
        self._scalars: dict[int, dict[str, float]] = {}

    def log_scalar(self, event: str, value: Any, **kwargs: Any) -> None:
        step = kwargs.get("step")
        head, sep, name = event.partition("train/")
        if step is None or not sep or head.strip("/") or name not in SCALARS:
            return
        self._scalars.setdefault(int(step), {})[SCALARS[name]] = float(value)

    def close(self) -> None:
        pass

    def record(self, step: int, learning_rate: Callable[[int], float]) -> bool:
        """Build the records of the steps up to `step` not yet built, when their scalars are
        there; `learning_rate`: step -> the rate its update used."""
        done = self.history[-1]["step"] if self.history else 0
        for n in range(done + 1, step + 1):
            scalars = self._scalars.get(n)
            if scalars is None or any(k not in scalars for k in REQUIRED):
                return False
            self.history.append({"step": n, **scalars, "learning_rate": learning_rate(n)})
        return True

    def add_eval(self, step: int, exact_match: float, n: int) -> None:
        self.eval_history = [e for e in self.eval_history if e["step"] != step]
        self.eval_history.append({"step": step, "exact_match": exact_match, "n": n})
        self.eval_history.sort(key=lambda e: e["step"])

    def metadata(self) -> dict[str, Any]:
        return {"history": list(self.history), "eval_history": list(self.eval_history)}


def preference_metrics(history: History, **facts: Any) -> dict[str, Any]:
    """metrics.json: the ends of the loss, margin and accuracy curves, and the held-out series."""
    h = history.history

    def last10(name: str) -> float:
        return _mean([r[name] for r in h[-10:] if name in r])

    out: dict[str, Any] = {
        "loss_first": h[0]["loss"] if h else None,
        "loss_last": h[-1]["loss"] if h else None,
        "loss_last10_mean": last10("loss"),
        "margin_first10_mean": _mean([r["reward_margin"] for r in h[:10]]),
        "margin_last10_mean": last10("reward_margin"),
        "accuracy_first10_mean": _mean([r["reward_accuracy"] for r in h[:10]]),
        "accuracy_last10_mean": last10("reward_accuracy"),
        "logp_chosen_last10_mean": last10("logp_chosen"),
        "logp_rejected_last10_mean": last10("logp_rejected"),
        "heldout_exact_match": {str(e["step"]): e["exact_match"] for e in history.eval_history},
        "heldout_n": history.eval_history[-1]["n"] if history.eval_history else 0,
        **facts,
    }
    return {
        k: ({s: _round(x) for s, x in v.items()} if isinstance(v, dict) else _round(v))
        for k, v in sorted(out.items())
    }


def write_live(directory: Path, history: History) -> None:
    """DVCLive series `preference/<name>` per step and `eval/exact_match`, from the history."""
    from tunixrt.train.metrics import open_live

    live = open_live(directory)
    for r in history.history:
        live.step = r["step"]
        for name, value in r.items():
            if name != "step":
                live.log_metric(f"preference/{name}", _round(value))
    for e in history.eval_history:
        live.step = e["step"]
        live.log_metric("eval/exact_match", _round(e["exact_match"]))
    live.make_summary()
    live.end()
