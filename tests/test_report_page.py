"""The HTML report's pieces on edge cases the pipeline can produce."""

from pathlib import Path
from types import SimpleNamespace

import pytest

from tunixrt.report.charts import histogram_chart, line_chart
from tunixrt.report.page import _dataset, _lengths


def test_an_empty_split_renders_as_a_dash() -> None:
    """dataset.split.val=0 is valid: its stats have no averages (was a TypeError)."""
    empty = {"steps": {"min": None, "avg": None, "max": None}, "chars": dict.fromkeys(
        ("min", "avg", "max"))}  # fmt: skip
    full = {"steps": {"min": 2, "avg": 2.5, "max": 3}, "chars": {"min": 9, "avg": 10.2, "max": 12},
            "by_category": {"addition": 4}}  # fmt: skip
    ds = {"dataset_key": "k-v1", "counts": {"total": 4, "train": 4, "val": 0, "test": 0},
          "stats": {"train": full, "val": empty, "test": empty}}  # fmt: skip
    html = _dataset(ds)
    assert '<td>val</td><td class="num">0</td><td>-</td><td>-</td>' in html
    assert "2 / 2.5 / 3" in html and "addition 4" in html


SELECTION = {  # as the dataset stage records a mixture run (source=mixture, weights 1 and 1)
    "read": 1476, "filtered": {"steps": 3}, "duplicate_prompts": 7, "near_duplicate_texts": 5,
    "limited": 0, "in_test_by_source": 0,
    "decontamination": {"action": "drop", "ngram": 13, "eval_items": 151, "matched": 2,
                        "by_eval_set": {"fixtures/tunix-rt/eval_v1.jsonl": 1, "test split": 1}},
    "removed_file": {"path": "data/dataset/removed.jsonl", "records": 7},
}  # fmt: skip
MIXTURE = {
    "policy": "shrink",
    "sources": {
        "dev_reasoning": {"weight": 1.0, "share": 0.5, "available": 383, "train": 383,
                          "repeated": 0, "left_out": 0, "train_sha256": "0" * 64},
        "arithmetic": {"weight": 1.0, "share": 0.5, "available": 807, "train": 383,
                       "repeated": 0, "left_out": 424, "train_sha256": "1" * 64},
    },
}  # fmt: skip


def mixture_manifest(**changes: object) -> dict:
    stats = {"steps": {"min": 1, "avg": 2.0, "max": 3}, "chars": {"min": 9, "avg": 10.0, "max": 12}}
    counts = {"total": 1017, "train": 766, "val": 125, "test": 126}
    ds = {"dataset_key": "mixture-v1", "counts": counts, "selection": SELECTION, "mixture": MIXTURE,
          "stats": dict.fromkeys(("train", "val", "test"), stats)}  # fmt: skip
    return {**ds, **changes}


def test_the_dataset_part_shows_the_selection_and_the_mixture() -> None:
    html = _dataset(mixture_manifest())
    assert (
        '<td>duplicate prompts (the first trace of a prompt kept)</td><td class="num">7</td>'
        in html
    )
    assert '<td>near-duplicate texts (one kept per cluster)</td><td class="num">5</td>' in html
    assert '<td>filtered out (<code>steps</code>)</td><td class="num">3</td>' in html
    assert "<b>2</b> training records share a run of 13 words" in html
    assert "one of 151 eval items" in html and "dropped from train" in html
    assert '<td>fixtures/tunix-rt/eval_v1.jsonl</td><td class="num">1</td>' in html
    assert '<td>test split</td><td class="num">1</td>' in html
    assert "<code>data/dataset/removed.jsonl</code> (7)" in html
    mix = html[html.index("Mixture of the training split") :]
    assert "policy <code>shrink</code>" in mix
    assert ("<tr><td>arithmetic</td><td class=\"num\">1.0</td><td>50.0%</td>"
            '<td class="num">807</td><td class="num">383</td><td class="num">0</td>'
            '<td class="num">424</td></tr>') in mix  # fmt: skip
    assert mix.index("arithmetic") < mix.index("dev_reasoning")

    reported = {**SELECTION["decontamination"], "action": "report", "matched": 1}
    html = _dataset(mixture_manifest(selection={**SELECTION, "decontamination": reported}))
    assert "<b>1</b> training record shares" in html and "reported, kept in train" in html
    off = {"action": "off", "ngram": 13, "eval_items": 0, "matched": 0, "by_eval_set": {}}
    html = _dataset(mixture_manifest(selection={**SELECTION, "decontamination": off}, mixture=None))
    assert "Decontamination: off" in html and "eval set</th>" not in html
    assert "Mixture" not in html


def test_a_manifest_of_an_older_pipeline_still_reports() -> None:
    """Before near-duplicate texts, prompt duplicates were counted as `near_duplicates`; before
    that there was no selection at all: the part shows what there is."""
    old = {"read": 40, "filtered": {}, "near_duplicates": 4, "limited": 0, "in_test_by_source": 0}
    html = _dataset(mixture_manifest(selection=old, mixture=None))
    assert (
        '<td>duplicate prompts (the first trace of a prompt kept)</td><td class="num">4</td>'
        in html
    )
    assert "near-duplicate texts" not in html and "Decontamination" not in html
    assert "Selection" not in _dataset(mixture_manifest(selection=None, mixture=None))


def test_charts_of_no_or_flat_data_do_not_fail() -> None:
    assert "no data" in line_chart({"loss": []}, title="loss", x_label="step", log_y=True)
    flat = line_chart({"lr": [(1, 0.5), (2, 0.5)]}, title="lr", x_label="step")
    assert flat.startswith("<svg") and "<polyline" in flat
    log = line_chart({"loss": [(1, 5.0), (2, 0.0), (3, 1e-3)]}, title="l", x_label="s", log_y=True)
    assert "<polyline" in log  # a zero is left out of a log scale, not a math error


LENGTHS = {  # the manifest stage's record of tunix-rt's dev traces with the demo model
    "tokenizer": "byte", "max_seq_length": 168, "examples": 383, "over": 311, "dropped": 0,
    "share": 0.81201, "median": 186, "p95": 261, "max": 264, "bin_width": 10,
    "histogram": [0] * 6 + [1, 0, 0, 4, 21, 5, 2, 5, 9, 12, 13, 63, 93, 52, 2, 0, 0, 0, 44, 11, 46],
}  # fmt: skip


def test_the_token_length_histogram_shows_the_cut() -> None:
    rm = {"lengths": LENGTHS, "training": {"max_truncated_share": 0.9}}
    html = _lengths(rm)
    assert "311 of 383 training examples (<b>81.2%</b>) are longer than" in html
    assert "median 186, p95 261, longest 264" in html and "is 0.9" in html
    svg = html[html.index("<svg") : html.index("</svg>")]
    assert svg.count("<rect") == sum(1 for c in LENGTHS["histogram"] if c)
    assert 'class="marker"' in svg and "max_seq_length 168" in svg
    assert "<script" not in html and "href" not in html  # self-contained like the other charts
    # the cut sits at 168 on the x axis: between the bars of 160-169 and 170-179
    x = float(svg.split('class="marker"')[0].rsplit("<line x1=", 1)[1].split('"')[1])
    bars = [float(r.split('x="')[1].split('"')[0]) for r in svg.split("<rect")[1:]]
    assert bars[8] < x < bars[9]  # the bars of 160-169 and 170-179 (the 9th and 10th drawn)

    fits = {**LENGTHS, "over": 0, "share": 0.0, "max_seq_length": 512}
    html = _lengths({"lengths": fits, "training": {}})
    assert "All 383 training examples fit in" in html and "max_seq_length 512" in html
    assert "Not measured by the manifest stage" in _lengths({"lengths": None, "training": {}})
    assert "no data" in histogram_chart([0, 0], bin_width=10, title="t", x_label="x")


def write_run(root: Path, ds: dict | None = None) -> None:
    """The outs of a finished run that the report reads (the keys it reads), runs/publish/
    left out; `ds`: the dataset manifest, when not the smallest one."""
    import orjson
    import yaml

    stats = {"steps": {"min": 1, "avg": 2.0, "max": 3}, "chars": {"min": 9, "avg": 10.0, "max": 12}}
    ds = ds or {"dataset_key": "dev-v1", "counts": {"total": 3, "train": 1, "val": 1, "test": 1},
                "stats": dict.fromkeys(("train", "val", "test"), stats)}  # fmt: skip
    split = {"sha256": "0" * 64, "records": 1}
    rm = {
        "seed": 0, "lengths": LENGTHS, "weights": {}, "output": {"output_dir": "runs/train"},
        "model": {"model_id": "tiny", "family": "gemma3", "preset": "tiny",
                  "tokenizer": {"kind": "byte"}},
        "training": {"learning_rate": 0.006, "batch_size": 16, "max_seq_length": 168,
                     "max_truncated_share": 0.9},
        "dataset": {"dataset_key": "dev-v1", "content_sha256": "1" * 64, "format": "tunix_sft",
                    "reasoning_style": "numbered", "splits": {"train": split}},
    }  # fmt: skip
    tm = {"checkpoint_step": 4, "steps": 4, "loss_first": 5.5, "loss_last": 4.0}
    result = {"n": 1, "exact_match": 0.0, "by_category": {}, "by_set": {}}
    em = {"before": result, "after": result, "delta": 0.0}
    for rel, doc in (("data/dataset/manifest.json", ds), ("runs/train/metrics.json", tm),
                     ("runs/eval/metrics.json", em)):  # fmt: skip
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(orjson.dumps(doc))
    (root / "data/export").mkdir(parents=True)
    (root / "data/export/run_manifest.yaml").write_text(yaml.safe_dump(rm))


def test_the_page_and_the_summary_carry_the_lengths(tmp_path) -> None:
    """The whole page, from the outs a run leaves (the keys the report reads)."""
    from tunixrt.report.markdown import render_report
    from tunixrt.report.page import render_page

    write_run(tmp_path)
    page = render_page(tmp_path)
    assert "<h2>Sequence lengths</h2>" in page and 'class="marker"' in page
    assert page.index("Sequence lengths") < page.index("Lineage")
    assert (
        "- sequence lengths: 311 of 383 training examples (81.2%) longer than max_seq_length 168 "
        "(median 186, p95 261, longest 264 tokens)"
    ) in render_report(tmp_path)


def test_the_summary_carries_the_selection_and_the_mixture(tmp_path) -> None:
    from tunixrt.report.markdown import render_report
    from tunixrt.report.page import render_page

    write_run(tmp_path, mixture_manifest())
    md = render_report(tmp_path)
    assert (
        "- selection: read 1476; duplicate prompts 7, near-duplicate texts 5, contaminated 2 "
        "(dropped from train; fixtures/tunix-rt/eval_v1.jsonl 1, test split 1); the records: "
        "`data/dataset/removed.jsonl`"
    ) in md
    assert (
        "- mixture (shrink), train records: arithmetic 383 (50.0%, weight 1; 424 left out), "
        "dev_reasoning 383 (50.0%, weight 1)"
    ) in md
    page = render_page(tmp_path)
    assert page.index("Selection:") < page.index("Mixture of") < page.index("Sequence lengths")

    write_run(tmp_path / "plain")  # no selection, no mixture: no line for them
    md = render_report(tmp_path / "plain")
    assert "- selection:" not in md and "- mixture" not in md


def publish_folder(root: Path, policy: str, weights: str, dtype: str, shard: str = "5GB") -> None:
    """runs/publish/ as the publish stage writes it: its own front matter and weights writer."""
    import ml_dtypes
    import numpy as np

    from tunixrt.publish.card import Published, _front_matter
    from tunixrt.publish.safetensors_files import write_weights

    folder = root / "runs/publish"
    folder.mkdir(parents=True)
    kind = np.float32 if dtype == "float32" else ml_dtypes.bfloat16
    tensors = {f"model.layers.{i}.mlp.up_proj.weight": np.ones((64, 64), kind) for i in range(2)}
    stem = "adapter_model" if weights == "adapters" else "model"
    files = write_weights(folder, tensors, shard, stem=stem)
    files.append("adapter_config.json" if weights == "adapters" else "config.json")
    (folder / files[-1]).write_text("{}")
    published = Published(policy, weights, dtype, sorted(files), tokenizer=True)
    manifest = SimpleNamespace(model=SimpleNamespace(model_id="google/gemma-3-1b-it"))
    front = _front_matter(manifest, published, "gemma", hub_id=True)  # type: ignore[arg-type]
    (folder / "README.md").write_text(front + "\n# google/gemma-3-1b-it, fine-tuned\n")


@pytest.mark.parametrize(
    ("policy", "weights", "dtype", "shard"),
    [
        ("sft", "full", "float32", "5GB"),
        ("grpo", "merged", "bfloat16", "10KB"),  # in shards: model-0000N-of-0000M + index
        ("sft", "adapters", "float32", "5GB"),
        ("dpo", "full", "float32", "5GB"),
    ],
)
def test_the_report_says_what_publish_wrote(tmp_path, policy, weights, dtype, shard) -> None:
    """The published model's part of both reports, read back from runs/publish/ (the card's
    front matter as the publish stage writes it, the weights' own header, the files)."""
    from tunixrt.report.markdown import load_published, render_report
    from tunixrt.report.page import render_page

    write_run(tmp_path)
    publish_folder(tmp_path, policy, weights, dtype, shard)
    pub = load_published(tmp_path)
    assert pub is not None
    assert (pub["policy"], pub["weights"], pub["dtype"]) == (policy, weights, dtype)
    assert pub["license"] == "gemma" and pub["base_model"] == "google/gemma-3-1b-it"
    names = [name for name, _ in pub["files"]]
    assert names == sorted(p.name for p in (tmp_path / "runs/publish").iterdir())
    if shard == "10KB":
        assert "model-00001-of-00002.safetensors" in names
        assert "model.safetensors.index.json" in names

    md = render_report(tmp_path)
    assert (
        f"- published: the {policy} policy, {weights} weights ({dtype}) in `runs/publish/` ("
    ) in md
    assert "model card [runs/publish/README.md](publish/README.md)" in md
    page = render_page(tmp_path)
    part = page[page.index("<h2>Published model</h2>") :]
    assert f"The <b>{policy}</b> policy" in part and f"<b>{weights}</b> weights" in part
    assert '<a href="publish/README.md">runs/publish/README.md</a>' in part
    assert all(f"<code>{name}</code>" in part for name in names)
    if weights == "adapters":
        assert "to load on the base model <code>google/gemma-3-1b-it</code>" in part


def test_the_report_says_when_nothing_was_published(tmp_path) -> None:
    """A pipeline from before the publish stage (no runs/publish/) still gets its report."""
    from tunixrt.report.markdown import load_published, render_report
    from tunixrt.report.page import render_page

    write_run(tmp_path)
    assert load_published(tmp_path) is None
    assert "- published: nothing; `runs/publish/` is absent" in render_report(tmp_path)
    assert "<p>Nothing published: <code>runs/publish/</code> is absent" in render_page(tmp_path)


def test_a_report_written_elsewhere_links_the_model_card_from_there(tmp_path, monkeypatch) -> None:
    """`tunixrt report -o` writes the page anywhere: the card's link is taken from there."""
    from tunixrt.cli import main

    write_run(tmp_path)
    publish_folder(tmp_path, "sft", "full", "float32")
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "conf").mkdir()
    monkeypatch.chdir(tmp_path)
    main(["report", "--no-experiments", "-o", "share/pages/run.html"])
    page = (tmp_path / "share/pages/run.html").read_text()
    assert '<a href="../../runs/publish/README.md">runs/publish/README.md</a>' in page
    main(["report", "--no-experiments"])  # runs/experiments.html: beside publish/
    assert '<a href="publish/README.md">' in (tmp_path / "runs/experiments.html").read_text()


def test_every_method_after_sft_is_reported_beside_sft() -> None:
    from tunixrt.report.markdown import tuned_text
    from tunixrt.report.summary import summary

    em = {
        "before": {"exact_match": 0.0, "n": 10},
        "after": {"exact_match": 0.1, "n": 10},
        "delta": 0.1,
        "grpo": {"exact_match": 0.5, "n": 10},
        "delta_grpo": 0.4,
        "dpo": {"exact_match": 0.6, "n": 10},
        "delta_dpo": 0.5,
    }
    s = summary({"loss_first": 1.0, "loss_last": 0.5, "steps": 3}, em)
    assert (s["exact_match_after_grpo"], s["grpo_gain"]) == (0.5, 0.4)
    assert (s["exact_match_after_dpo"], s["dpo_gain"]) == (0.6, 0.5)
    assert "orpo_gain" not in s
    assert list(s)[3:7] == [
        "exact_match_after_grpo",
        "grpo_gain",
        "exact_match_after_dpo",
        "dpo_gain",
    ]
    text = tuned_text(em, lambda x: f"{100 * x:.1f}%")
    assert text == (
        ", after GRPO 50.0% (+40.0 points over SFT), after DPO 60.0% (+50.0 points over SFT)"
    )
