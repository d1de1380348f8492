"""Whatever makes DVC rerun train for a reason that changes numbers makes it start over, through
plain `dvc repro` on a pipeline that trains a checkpoint in the real layout: an edit to the chat
templates, a replaced tokenizer file, a checkpoint file replaced by one with the same header and
other values. A cadence or reporting change still resumes."""

from __future__ import annotations

import struct
from pathlib import Path

import orjson
import pytest
import yaml
from conftest import iter_jsonl, make_pipeline, sh, tunixrt
from real_format import hf_tensors, tokenizer_lines, train_sentencepiece, write_safetensors
from test_real_checkpoints import VOCAB, Case, write_model_folder

pytestmark = pytest.mark.e2e

ASIDE = "runs/train/checkpoints.aside"


def perf(root: Path) -> dict:
    return orjson.loads((root / "runs/train/perf.json").read_bytes())


def aside(root: Path) -> int:
    return len(list((root / ASIDE).iterdir())) if (root / ASIDE).is_dir() else 0


def header(path: Path) -> bytes:
    with path.open("rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        return fh.read(n)


def started_over(root: Path, proc, before: int) -> None:
    assert "belong to another configuration" in proc.stderr, proc.stderr[-2000:]
    assert perf(root)["resumed_from_step"] == 0
    assert aside(root) == before + 1


def stale(root: Path, *targets: str) -> dict:
    return orjson.loads(sh("dvc", "status", "--json", *targets, cwd=root).stdout)


def test_numeric_changes_retrain_from_step_0_and_cadence_resumes(tmp_path) -> None:
    root = make_pipeline(tmp_path / "p")
    sh("dvc", "repro", "export", cwd=root)
    case = Case("gemma3", "safetensors", lora=False)
    cfg, ckpt, tok = write_model_folder(case, root)
    model = {
        "model_id": "tiny-real",
        "family": "gemma3",
        "preset": "tiny",
        "config": cfg.model_overrides(),
        "checkpoint_path": ckpt.relative_to(root).as_posix(),
        "dtype": "float32",
        "tokenizer": {"kind": "sentencepiece", "path": tok.relative_to(root).as_posix()},
    }
    (root / "conf/model").mkdir(exist_ok=True)
    (root / "conf/model/checkpoint.yaml").write_text(yaml.safe_dump(model))
    overrides = ["model=checkpoint", "eval.sets=[]", "eval.max_new_tokens=8"]
    tunixrt("compose", *overrides, cwd=root)
    sh("dvc", "repro", "train", cwd=root)  # what follows train reads its outs: no number here
    assert perf(root)["resumed_from_step"] == 0 and aside(root) == 0
    assert stale(root, "train") == {}

    # (1) the chat templates decide the tokens: DVC reruns train, and train starts over
    with (root / "tunixrt/chat_templates.py").open("a") as fh:
        fh.write("\n# an edit\n")
    started_over(root, sh("dvc", "repro", "train", cwd=root), 0)

    # (2) a new tokenizer file, same size of vocabulary: `dvc status` sees it with no -f
    lines = tokenizer_lines(iter_jsonl(root / "data/export/train.jsonl"))
    train_sentencepiece(tok, list(reversed(lines))[: len(lines) // 2], VOCAB)
    assert "manifest" in stale(root)
    started_over(root, sh("dvc", "repro", "train", cwd=root), 1)

    # (3) the checkpoint replaced by one with the same header and other values
    old = header(ckpt / "model.safetensors")
    write_safetensors(ckpt, hf_tensors(cfg, eot=1, seed=7))
    assert header(ckpt / "model.safetensors") == old
    assert "manifest" in stale(root)
    started_over(root, sh("dvc", "repro", "train", cwd=root), 2)

    # (4) a cadence and a reporting change: DVC reruns train, which resumes at its last step
    with (root / "tunixrt/train/metrics.py").open("a") as fh:
        fh.write("\n# another report line\n")
    tunixrt("compose", *overrides, "train.checkpoint_every_steps=4", cwd=root)
    proc = sh("dvc", "repro", "train", cwd=root)
    assert "resuming from checkpoint step 4 of 4" in proc.stderr, proc.stderr[-2000:]
    assert perf(root)["resumed_from_step"] == 4 and aside(root) == 3
