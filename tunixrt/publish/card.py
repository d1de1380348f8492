"""The model card, `README.md` with the Hub's YAML front matter: where the model came from and
what the run measured, each figure read from the file the run wrote (nothing estimated)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tunixrt.manifest.schema import RunManifest
from tunixrt.publish.config import POLICIES
from tunixrt.train.checkpoints import CADENCE_FIELDS

# the license of a base model, by the start of its Hugging Face id (the model's own card's)
KNOWN_LICENSES = {
    "google/gemma": "gemma",
    "Qwen/Qwen3": "apache-2.0",
    "Qwen/Qwen2.5": "apache-2.0",
    "meta-llama/Llama-3.2": "llama3.2",
    "meta-llama/Llama-3.1": "llama3.1",
    "meta-llama/Meta-Llama-3": "llama3",
}
EVAL_COLUMNS = (
    ("before", "before"),
    ("after", "after SFT"),
    ("grpo", "after GRPO"),
    ("dpo", "after DPO"),
    ("orpo", "after ORPO"),
)


@dataclass(frozen=True)
class Published:
    """What the stage wrote, for the card."""

    policy: str  # sft | grpo | dpo | orpo
    weights: str  # full | merged | adapters
    dtype: str
    files: Sequence[str]
    tokenizer: bool  # False: the byte tokenizer, which no Hugging Face tokenizer reads


def base_license(base_dir: Path | None, model_id: str) -> str | None:
    """`license:` of the base download's own README front matter, else a known id's."""
    readme = base_dir / "README.md" if base_dir is not None else None
    if readme is not None and readme.is_file():
        text = readme.read_text(encoding="utf-8", errors="replace")
        if text.startswith("---"):
            front = yaml.safe_load(text.split("---", 2)[1]) or {}
            if isinstance(front, dict) and front.get("license"):
                return str(front["license"])
    return next((v for k, v in KNOWN_LICENSES.items() if model_id.startswith(k)), None)


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def eval_rows(metrics: Mapping[str, Any]) -> list[tuple[str, int, list[float]]]:
    """(label, problems, exact match per evaluated model) for all held-out problems, each
    category and each eval set, from runs/eval/metrics.json."""
    cols = [key for key, _ in EVAL_COLUMNS if key in metrics]
    first = metrics[cols[0]]
    picks: list[tuple[str, Any]] = [("**all held-out**", lambda m: m)]
    picks += [
        (f"category `{c}`", lambda m, c=c: m["by_category"][c])
        for c in first.get("by_category", {})
    ]
    picks += [(f"set `{n}`", lambda m, n=n: m["by_set"][n]) for n in first.get("by_set", {})]
    return [
        (label, get(first)["n"], [get(metrics[c])["exact_match"] for c in cols])
        for label, get in picks
    ]


def eval_table(metrics: Mapping[str, Any]) -> list[str]:
    """Exact match by category and by eval set, one column per model the run evaluated."""
    names = [name for key, name in EVAL_COLUMNS if key in metrics]
    lines = ["| | problems | " + " | ".join(names) + " |", "|---|---:|" + "---:|" * len(names)]
    for label, n, rates in eval_rows(metrics):
        lines.append(f"| {label} | {n} | " + " | ".join(_pct(r) for r in rates) + " |")
    return lines


def _front_matter(
    manifest: RunManifest, published: Published, license_: str | None, hub_id: bool
) -> str:
    tags = ["tunixrt", "tunix", "sft", *([published.policy] if published.policy != "sft" else [])]
    if published.weights != "full":
        tags.append("lora")
    front: dict[str, Any] = {}
    if hub_id:
        front["base_model"] = manifest.model.model_id
    if license_:
        front["license"] = license_
    front["library_name"] = "peft" if published.weights == "adapters" else "transformers"
    front["pipeline_tag"] = "text-generation"
    front["tags"] = tags
    return "---\n" + yaml.safe_dump(front, sort_keys=False) + "---\n"


def _lock_lines(lock: Mapping[str, Any] | None, paths: Sequence[str]) -> list[str]:
    """The md5 dvc.lock records for each of `paths` (the stage's inputs other stages wrote)."""
    if not lock:
        return ["No dvc.lock when this was written (not run through `dvc repro`)."]
    lines = ["| input | written by | md5 (dvc.lock) |", "|---|---|---|"]
    for name, stage in lock.get("stages", {}).items():
        for out in stage.get("outs", []):
            if out["path"] in paths:
                lines.append(f"| `{out['path']}` | {name} | `{out.get('md5', '')}` |")
    return lines


def model_card(
    manifest: RunManifest,
    published: Published,
    *,
    eval_metrics: Mapping[str, Any],
    train_metrics: Mapping[str, Any],
    rl_metrics: Mapping[str, Any],
    lock: Mapping[str, Any] | None,
    lineage: Sequence[str],
    license_: str | None,
    libraries: Mapping[str, str | None],
) -> str:
    m = manifest.model
    hub_id = "/" in m.model_id
    policy = POLICIES
    layout = {
        "full": "all weights, fully fine-tuned",
        "merged": "LoRA adapters merged into the base weights",
        "adapters": f"PEFT LoRA adapters; load them on `{m.model_id}`",
    }[published.weights]
    w = manifest.weights
    training = manifest.training.model_dump(mode="json", exclude=set(CADENCE_FIELDS))
    lines = [
        _front_matter(manifest, published, license_, hub_id),
        f"# {m.model_id}, fine-tuned with tunixrt",
        "",
        f"Published policy: **{published.policy}**, {policy[published.policy]}; "
        f"`publish.policy` picks another. Weights: {layout}, {published.dtype}.",
        "",
    ]
    if not published.tokenizer:
        lines += [
            "**No Hugging Face tokenizer can read this model.** It was trained with tunixrt's "
            "byte tokenizer: id 0 `<pad>`, 1 `<bos>`, 2 `<eos>`, 3 `<start_of_turn>`, "
            "4 `<end_of_turn>`, and byte b as id 5 + b. Encode prompts that way (or with "
            "`tunixrt.train.tokenizer.ByteTokenizer`) and pass the ids to the model.",
            "",
        ]
    lines += ["## Evaluation: exact match on held-out problems", "", *eval_table(eval_metrics)]
    lines += [
        "",
        f"Greedy decoding, at most {eval_metrics.get('max_new_tokens')} new tokens "
        "(runs/eval/metrics.json).",
        "",
        "## Training",
        "",
        f"- dataset `{manifest.dataset.dataset_key}`, content sha256 "
        f"`{manifest.dataset.content_sha256}`; format `{manifest.dataset.format}`, reasoning "
        f"style `{manifest.dataset.reasoning_style}`",
    ]
    for split, f in manifest.dataset.splits.items():
        lines.append(f"- export `{f.path}` ({split}, {f.records} records): sha256 `{f.sha256}`")
    lines += [
        f"- SFT: {train_metrics.get('steps')} steps, loss {train_metrics.get('loss_first')} "
        f"(first) -> {train_metrics.get('loss_last')} (last)",
    ]
    if rl_metrics.get("enabled", False):
        shown = {k: v for k, v in rl_metrics.items() if not isinstance(v, dict | list)}
        lines.append("- GRPO: " + ", ".join(f"{k} {v}" for k, v in sorted(shown.items())))
    lines += [
        f"- seed {manifest.seed}; params that decide training:",
        "",
        "```yaml",
        yaml.safe_dump({"train": training}, sort_keys=False).rstrip(),
        "```",
        "",
        "## Base model",
        "",
        f"- `{m.model_id}` ({m.family}, preset `{m.preset}`, {m.dtype}); "
        + (
            f"weights digest `{w.checkpoint_digest}` over {w.checkpoint_files} files"
            if w.checkpoint_digest
            else "random initialization (no base weights)"
        ),
        f"- tokenizer `{m.tokenizer.kind}`"
        + (f", sha256 `{w.tokenizer_sha256}`" if w.tokenizer_sha256 else ""),
        "",
        "## Libraries",
        "",
        *(f"- {k} {v}" for k, v in libraries.items()),
        "",
        "## Lineage",
        "",
        *_lock_lines(lock, lineage),
        "",
        "Files: " + ", ".join(f"`{f}`" for f in published.files) + ".",
        "",
    ]
    return "\n".join(lines)
