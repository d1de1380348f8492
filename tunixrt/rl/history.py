"""The GRPO run's per-step history: what the rewards saw, what the actor update logged, and the
held-out exact match. It travels in every checkpoint's metadata, so a resumed run reports the
whole curve; metrics.json and the DVCLive series are built from it alone (deterministic).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tunixrt.rl.groups import mixed_groups

DIGITS = 6
ACTOR_SCALARS = {
    "loss": "actor/train/loss",
    "kl": "actor/train/kl",
    "grad_norm": "actor/train/grad_norm",
}
SERIES = (
    "reward",
    "correct",
    "formatted",
    "completion_tokens",
    "mixed_groups",
    "kl",
    "loss",
    "grad_norm",
)


def _round(x: Any) -> Any:
    return round(float(x), DIGITS) if isinstance(x, float) else x


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


class Progress:
    """Step records of a GRPO run. A step's record is built once both halves are known: the
    rollout scores (`scored`, from the reward function) and the update's scalars (`log_scalar`,
    a Tunix metrics backend)."""

    def __init__(self, restored: dict[str, Any], restored_step: int) -> None:
        self.history: list[dict[str, Any]] = list(restored.get("history", []))[:restored_step]
        self.eval_history: list[dict[str, Any]] = [
            e for e in restored.get("eval_history", []) if e["step"] <= restored_step
        ]
        self._scores: dict[int, dict[str, float]] = {}
        self._scalars: dict[int, dict[str, float]] = {}
        self._next_scored = restored_step + 1

    # the reward function's hook
    def scored(
        self,
        correct: Sequence[bool],
        formatted: Sequence[bool],
        tokens: Sequence[int],
        reward: Sequence[float],
        group: int,
    ) -> int:
        """Record a step's rollouts: `group` consecutive completions per prompt."""
        step, self._next_scored = self._next_scored, self._next_scored + 1
        self._scores[step] = {
            "reward": _mean(reward),
            "correct": _mean([float(c) for c in correct]),
            "formatted": _mean([float(f) for f in formatted]),
            "completion_tokens": _mean([float(t) for t in tokens]),
            "mixed_groups": len(mixed_groups(reward, group)) / (len(reward) // group),
        }
        return step

    # a Tunix metrics backend (MetricsLoggerOptions custom_backend)
    def log_scalar(self, event: str, value: Any, **kwargs: Any) -> None:
        step = kwargs.get("step")
        for name, key in ACTOR_SCALARS.items():
            if event == key and step is not None:
                self._scalars.setdefault(int(step), {})[name] = float(value)

    def close(self) -> None:
        pass

    def record(self, step: int, learning_rate: float) -> bool:
        """Build step's record when it is not yet built and both halves are there."""
        if self.history and self.history[-1]["step"] >= step:
            return True
        scores, scalars = self._scores.get(step), self._scalars.get(step)
        if scores is None or scalars is None or len(scalars) < len(ACTOR_SCALARS):
            return False
        self.history.append({"step": step, **scores, **scalars, "learning_rate": learning_rate})
        return True

    def add_eval(self, step: int, exact_match: float, n: int) -> None:
        self.eval_history = [e for e in self.eval_history if e["step"] != step]
        self.eval_history.append({"step": step, "exact_match": exact_match, "n": n})
        self.eval_history.sort(key=lambda e: e["step"])

    def metadata(self) -> dict[str, Any]:
        return {"history": list(self.history), "eval_history": list(self.eval_history)}


def rl_metrics(progress: Progress, **facts: Any) -> dict[str, Any]:
    """metrics.json: the ends of the reward and KL curves and the held-out series."""
    h = progress.history

    def ends(name: str) -> dict[str, Any]:
        xs = [r[name] for r in h]
        return {
            f"{name}_first10_mean": _mean(xs[:10]),
            f"{name}_last10_mean": _mean(xs[-10:]),
        }

    out: dict[str, Any] = {
        **ends("reward"),
        **ends("correct"),
        **ends("formatted"),
        **ends("completion_tokens"),
        **ends("mixed_groups"),
        "kl_last10_mean": _mean([r["kl"] for r in h[-10:]]),
        "kl_max": max((r["kl"] for r in h), default=0.0),
        "heldout_exact_match": {str(e["step"]): e["exact_match"] for e in progress.eval_history},
        "heldout_n": progress.eval_history[-1]["n"] if progress.eval_history else 0,
        **facts,
    }
    return {
        k: ({s: _round(x) for s, x in v.items()} if isinstance(v, dict) else _round(v))
        for k, v in sorted(out.items())
    }


def write_live(directory: Path, progress: Progress) -> None:
    """DVCLive series `rl/<name>` per step and `eval/exact_match`, from the history."""
    from tunixrt.train.metrics import open_live

    live = open_live(directory)
    for r in progress.history:
        live.step = r["step"]
        for name in (*SERIES, "learning_rate"):
            live.log_metric(f"rl/{name}", _round(r[name]))
    for e in progress.eval_history:
        live.step = e["step"]
        live.log_metric("eval/exact_match", _round(e["exact_match"]))
    live.make_summary()
    live.end()
