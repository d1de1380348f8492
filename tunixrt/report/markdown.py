"""runs/report.md: one short summary of the run, printed at the end of `make demo`; and the
report stage, which writes it and runs/report.html."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tunixrt.errors import DataError
from tunixrt.jsonio import DOC_MAX_BYTES, read_bytes, read_json
from tunixrt.paths import (
    DATASET_MANIFEST,
    EVAL_METRICS,
    PUBLISH_DIR,
    RUN_MANIFEST,
    TRAIN_METRICS,
)

MODEL_CARD = PUBLISH_DIR / "README.md"
CARD_LINK = "publish/README.md"  # from runs/, where the report pages are written
WEIGHTS = {
    "full": "all weights, fully fine-tuned",
    "merged": "LoRA adapters merged into the base weights",
    "adapters": "PEFT LoRA adapters only, to load on the base model",
}
_SAFETENSORS_DTYPES = {"F32": "float32", "BF16": "bfloat16", "F16": "float16", "F64": "float64"}
_FRONT_MATTER = re.compile(r"---\n(.*?)\n---\n", re.DOTALL)


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


CONTAMINATION_ACTIONS = {
    "drop": "dropped from train",
    "report": "reported, kept in train",
    "off": "not checked",
}


def duplicate_prompts(sel: Any) -> int:
    """Traces dropped for a prompt seen before (`near_duplicates` in manifests of older
    pipelines, which had no near-duplicate texts)."""
    return int(sel.get("duplicate_prompts", sel.get("near_duplicates", 0)))


def _selection_line(ds: Any) -> str | None:
    sel = ds.get("selection")
    if not sel:
        return None
    parts = [f"duplicate prompts {duplicate_prompts(sel)}"]
    if "near_duplicate_texts" in sel:
        parts.append(f"near-duplicate texts {sel['near_duplicate_texts']}")
    d = sel.get("decontamination")
    if d:
        sets = ", ".join(f"{k} {v}" for k, v in sorted(d["by_eval_set"].items()))
        parts.append(
            f"contaminated {d['matched']} ({CONTAMINATION_ACTIONS.get(d['action'], d['action'])}"
            + (f"; {sets}" if sets else "")
            + ")"
        )
    removed = sel.get("removed_file")
    where = f"; the records: `{removed['path']}`" if removed and removed.get("records") else ""
    return f"- selection: read {sel['read']}; {', '.join(parts)}{where}"


def _mixture_line(ds: Any) -> str | None:
    mix = ds.get("mixture")
    if not mix:
        return None
    parts = []
    for name, m in sorted(mix["sources"].items()):
        extra = "".join(
            f"; {m[k]} {label}"
            for k, label in (("repeated", "repeated"), ("left_out", "left out"))
            if m.get(k)
        )
        parts.append(f"{name} {m['train']} ({_pct(m['share'])}, weight {m['weight']:g}{extra})")
    return f"- mixture ({mix['policy']}), train records: {', '.join(parts)}"


def load_outputs(root: Path) -> tuple[Any, Any, Any, Any]:
    """The dataset manifest, run manifest, train metrics and eval metrics of a finished run."""
    return tuple(
        _load(root, p) for p in (DATASET_MANIFEST, RUN_MANIFEST, TRAIN_METRICS, EVAL_METRICS)
    )  # type: ignore[return-value]


def _weights_dtype(path: Path) -> str:
    """The dtype(s) of a safetensors file's tensors, from its header (8 bytes of length, then
    JSON), without reading the weights."""
    with open(path, "rb") as fh:
        size = int.from_bytes(fh.read(8), "little")
        if size > DOC_MAX_BYTES:
            raise DataError(f"{path}: a safetensors header of {size} bytes; not a weights file?")
        header = json.loads(fh.read(size))
    names = sorted({v["dtype"] for k, v in header.items() if k != "__metadata__"})
    return "/".join(_SAFETENSORS_DTYPES.get(n, n) for n in names) or "-"


def load_published(root: Path) -> dict[str, Any] | None:
    """What the publish stage wrote to runs/publish/, read back from the folder: the model
    card's front matter (policy, weights kind, license, base model), the weights' dtype and the
    files; None when there is no model card (a pipeline from before the publish stage)."""
    card = root / MODEL_CARD
    if not card.is_file():
        return None
    text = read_bytes(card, DOC_MAX_BYTES).decode("utf-8", errors="replace")
    match = _FRONT_MATTER.match(text)
    front = yaml.safe_load(match.group(1)) if match else None
    front = front if isinstance(front, dict) else {}
    tags = front.get("tags") or []
    if front.get("library_name") == "peft":
        weights = "adapters"
    else:
        weights = "merged" if "lora" in tags else "full"
    folder = root / PUBLISH_DIR
    files = sorted(p for p in folder.iterdir() if p.is_file())
    tensors = [p for p in files if p.suffix == ".safetensors"]
    return {
        "folder": f"{PUBLISH_DIR.as_posix()}/",
        "card": MODEL_CARD.as_posix(),
        "policy": next((p for p in ("grpo", "dpo", "orpo") if p in tags), "sft"),
        "weights": weights,
        "dtype": _weights_dtype(tensors[0]) if tensors else "-",
        "license": front.get("license"),
        "base_model": front.get("base_model"),
        "files": [(p.name, p.stat().st_size) for p in files],
    }


TUNED_LABELS = {"grpo": "GRPO", "dpo": "DPO", "orpo": "ORPO"}  # evaluate's models after SFT


def tuned_text(em: Mapping[str, Any], pct: Any) -> str:
    """`, after GRPO 59.0% (+57.0 points over SFT), after DPO ...` for the models evaluate
    scored after SFT, each from the SFT checkpoint."""
    return "".join(
        f", after {label} {pct(em[name]['exact_match'])} "
        f"({100 * em[f'delta_{name}']:+.1f} points over SFT)"
        for name, label in TUNED_LABELS.items()
        if name in em
    )


NOT_PUBLISHED = "a pipeline from before the publish stage, or the stage has not run"


def _published_line(pub: dict[str, Any] | None) -> str:
    if pub is None:
        return f"- published: nothing; `{PUBLISH_DIR.as_posix()}/` is absent ({NOT_PUBLISHED})"
    return (
        f"- published: the {pub['policy']} policy, {pub['weights']} weights ({pub['dtype']}) in "
        f"`{pub['folder']}` ({', '.join(name for name, _ in pub['files'])}); model card "
        f"[{pub['card']}]({CARD_LINK})"
    )


def render_report(root: Path) -> str:
    ds, rm, tm, em = load_outputs(root)
    c = ds["counts"]
    before, after = em["before"], em["after"]
    lines = [
        "# tunixrt run report",
        "",
        f"- dataset: `{ds['dataset_key']}`: {c['total']} traces "
        f"(train {c['train']}, val {c['val']}, test {c['test']})",
        *(line for line in (_selection_line(ds), _mixture_line(ds)) if line),
        f"- format: `{rm['dataset']['format']}` ({rm['dataset']['reasoning_style']} reasoning)",
        f"- model: `{rm['model']['model_id']}` ({rm['model']['family']} {rm['model']['preset']}, "
        f"tokenizer {rm['model']['tokenizer']['kind']})",
        _lengths_line(rm.get("lengths")),
        f"- training: {tm['steps']} steps, loss {tm['loss_first']:.4f} -> {tm['loss_last']:.4f}",
        f"- exact match on {after['n']} held-out problems: before {_pct(before['exact_match'])}, "
        f"after {_pct(after['exact_match'])} (delta {100 * em['delta']:+.1f} points)"
        + tuned_text(em, _pct),
        _published_line(load_published(root)),
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
