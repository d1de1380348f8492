"""Export-shaped records from the built-in problem generator, and a run manifest around them.

For tests, benchmarks and experiments that must not depend on the data stages: the records are
what the export stage writes for the default `tunix_sft` format (prompt = the Gemma user turn
plus the opening of the model turn, completion = `Reasoning:` steps, `Answer:`, `<end_of_turn>`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tunixrt.formats import FormatSpec, render_record
from tunixrt.ingest.synthetic import SyntheticParams, generate
from tunixrt.jsonio import atomic_writer, dumps_line
from tunixrt.manifest.schema import (
    DatasetSection,
    ModelSection,
    OutputSection,
    RunManifest,
    RuntimeSection,
    SplitFile,
    TrainingSection,
)

TUNIX_SFT = FormatSpec(name="tunix_sft")


def render_tunix_sft(trace: dict[str, Any]) -> dict[str, Any]:
    """The export stage's `tunix_sft` record, with an id derived from the prompt."""
    digest = hashlib.sha256(trace["prompt"].encode()).hexdigest()[:16]
    return render_record({**trace, "id": digest}, TUNIX_SFT)


def synthetic_records(params: SyntheticParams) -> list[dict[str, Any]]:
    return [render_tunix_sft(t) for t in generate(params)]


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> str:
    h = hashlib.sha256()
    with atomic_writer(path) as fh:
        for r in records:
            line = dumps_line(r)
            h.update(line)
            fh.write(line)
    return h.hexdigest()


def write_splits(
    root: Path, splits: dict[str, list[dict[str, Any]]], folder: str = "data/export"
) -> dict[str, SplitFile]:
    out = {}
    for name, records in splits.items():
        rel = f"{folder}/{name}.jsonl"
        sha = write_jsonl(root / rel, records)
        out[name] = SplitFile(path=rel, sha256=sha, records=len(records))
    return out


def small_splits(root: Path) -> tuple[Path, dict[str, SplitFile]]:
    """240 synthetic records as 200 train, 20 val and 20 test exports under `root`."""
    recs = synthetic_records(SyntheticParams(n=240, seed=11))
    return root, write_splits(root, {"train": recs[:200], "val": recs[200:220], "test": recs[220:]})


def make_manifest(
    splits: dict[str, SplitFile],
    *,
    model: ModelSection,
    training: TrainingSection,
    runtime: RuntimeSection | None = None,
    output_dir: str = "runs/train",
) -> RunManifest:
    return RunManifest(
        tunixrt_version=None,
        seed=training.seed,
        model=model,
        dataset=DatasetSection(
            format="tunix_sft",
            reasoning_style="numbered",
            path=splits["train"].path,
            dataset_key="synthetic",
            content_sha256=hashlib.sha256(
                "".join(s.sha256 for s in splits.values()).encode()
            ).hexdigest(),
            splits=splits,
        ),
        training=training,
        runtime=runtime or RuntimeSection(),
        output=OutputSection(output_dir=output_dir),
    )


def run_data_stages(root: Path, n: int = 200) -> Path:
    """ingest (n synthetic traces), dataset and export run in `root`, as the stages would."""
    from tunixrt.dataset.config import DatasetConfig
    from tunixrt.dataset.stage import build_dataset
    from tunixrt.export.stage import export, parse_format
    from tunixrt.ingest.config import parse_source
    from tunixrt.ingest.stage import ingest

    ingest(parse_source({"kind": "synthetic", "n": n}), root)
    build_dataset(DatasetConfig(name="arith"), root)
    export(parse_format({"name": "tunix_sft"}), root)
    return root
