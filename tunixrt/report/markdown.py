"""runs/report.md: one short summary of the run, printed at the end of `make demo`; and the
report stage, which writes it and runs/report.html."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tunixrt.errors import DataError
from tunixrt.jsonio import DOC_MAX_BYTES, read_bytes, read_json
from tunixrt.paths import DATASET_MANIFEST, EVAL_METRICS, RUN_MANIFEST, TRAIN_METRICS


def _load(root: Path, path: Path) -> Any:
    if not (root / path).is_file():
        raise DataError(f"{path}: not found; run the pipeline (`dvc repro`) first")
    if path.suffix == ".yaml":
        return yaml.safe_load(read_bytes(root / path, DOC_MAX_BYTES))
    return read_json(root / path)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _lengths_line(s: Any) -> str:
    if not s:
        return "- sequence lengths: measured by the train stage (see its log)"
    return (
        f"- sequence lengths: {s['over']} of {s['examples']} training examples "
        f"({_pct(s['share'])}) longer than max_seq_length {s['max_seq_length']} "
        f"(median {s['median']}, p95 {s['p95']}, longest {s['max']} tokens)"
    )


def load_outputs(root: Path) -> tuple[Any, Any, Any, Any]:
    """The dataset manifest, run manifest, train metrics and eval metrics of a finished run."""
    return tuple(
        _load(root, p) for p in (DATASET_MANIFEST, RUN_MANIFEST, TRAIN_METRICS, EVAL_METRICS)
    )  # type: ignore[return-value]


def render_report(root: Path) -> str:
    ds, rm, tm, em = load_outputs(root)
    c = ds["counts"]
    before, after = em["before"], em["after"]
    lines = [
        "# tunixrt run report",
        "",
        f"- dataset: `{ds['dataset_key']}`: {c['total']} traces "
        f"(train {c['train']}, val {c['val']}, test {c['test']})",
        f"- format: `{rm['dataset']['format']}` ({rm['dataset']['reasoning_style']} reasoning)",
        f"- model: `{rm['model']['model_id']}` ({rm['model']['family']} {rm['model']['preset']}, "
        f"tokenizer {rm['model']['tokenizer']['kind']})",
        _lengths_line(rm.get("lengths")),
        f"- training: {tm['steps']} steps, loss {tm['loss_first']:.4f} -> {tm['loss_last']:.4f}",
        f"- exact match on {after['n']} held-out problems: before {_pct(before['exact_match'])}, "
        f"after {_pct(after['exact_match'])} (delta {100 * em['delta']:+.1f} points)"
        + (
            f", after GRPO {_pct(em['grpo']['exact_match'])} "
            f"({100 * em['delta_grpo']:+.1f} points over SFT)"
            if "grpo" in em
            else ""
        ),
        "",
        "Next:",
        "",
        "    dvc plots show                      # training curves -> dvc_plots/index.html",
        "    dvc metrics show                    # all metrics of this workspace",
        "    dvc exp run -S train.learning_rate=1e-3   # an experiment",
        "    dvc exp show                        # compare experiments side by side",
        "",
    ]
    return "\n".join(lines)
