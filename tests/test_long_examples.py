"""`train.long_examples`: what becomes of a training (or validation) example longer than
train.max_seq_length. keep: today's rule (first max_seq_length tokens; dropped when the prompt
fills the row); drop: left out; truncate_reasoning: rendered again from its trace with the first
k reasoning steps, k the most that fit, dropped when not even the answer alone fits. Counted in
metrics.json's `long_examples`, and bounded before training per policy."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import fixtures_in
from sample_data import make_manifest, write_jsonl, write_splits
from test_manifest_lengths import DATA_STAGES, manifest_params

from tunixrt.errors import ConfigError, DataError
from tunixrt.formats import FORMAT_NAMES, FormatSpec, parse_answer, render_record
from tunixrt.jsonio import read_json
from tunixrt.manifest.build import build_run_manifest, run
from tunixrt.manifest.load import load_run_manifest
from tunixrt.manifest.schema import ModelSection, RunManifest, TrainingSection
from tunixrt.train.examples import (
    encode_example,
    encode_records,
    length_table,
    read_export,
    read_traces,
    shorten_reasoning,
)
from tunixrt.train.lengths import check_lengths, length_stats
from tunixrt.train.tokenizer import ByteTokenizer

TOK = ByteTokenizer()
MAX = 160
TRAINABLE = [f for f in FORMAT_NAMES if f != "trace"]  # `trace` records carry no completion


def trace(n: int, steps: int, *, answer: str | None = None, prompt: str | None = None) -> dict:
    """A canonical trace (as the dataset split holds it) whose steps differ in length."""
    return {
        "id": f"t{n:03d}",
        "trace_version": "1.0",
        "prompt": prompt or f"What is {n} + {n}?",
        "system": None,
        "steps": [
            {"i": j, "type": "process", "content": f"step {j}: " + "carry " * (1 + (n + j) % 4)}
            for j in range(steps)
        ],
        "final_answer": answer or str(2 * n),
        "meta": {"n": n},
    }


# 0 to 11 steps: the short ones fit in MAX tokens, the long ones do not; t100 does not fit even
# with no step (a long answer), t101's prompt alone fills the row
TRACES = [trace(n, n % 12) for n in range(36)] + [
    trace(100, 3, answer="9" * 200),
    trace(101, 2, prompt="x" * 300),
]
BY_ID = {t["id"]: t for t in TRACES}


def records(spec: FormatSpec, traces: list[dict] = TRACES) -> list[dict]:
    return [render_record(t, spec) for t in traces]


def length(rec: Mapping[str, Any]) -> int:
    return 1 + len(TOK.encode(rec["prompt"])) + len(TOK.encode(rec["completion"]))


class Source:
    """A trace source that records what it was asked for."""

    def __init__(self, traces: Mapping[str, Mapping[str, Any]]) -> None:
        self.traces, self.calls = traces, []

    def __call__(self, ids: set[str]) -> dict[str, Mapping[str, Any]]:
        self.calls.append(set(ids))
        return {i: self.traces[i] for i in ids if i in self.traces}


def tokens(ex) -> list[int]:
    return ex.tokens.tolist()


def test_keep_is_todays_encoding() -> None:
    """Same examples, same tokens, same counts as before the key existed (the default)."""
    recs = records(FormatSpec(name="tunix_sft"))
    default = encode_records(recs, TOK, MAX)
    keep = encode_records(recs, TOK, MAX, long_examples="keep", spec=FormatSpec(name="tunix_sft"))
    expected = [encode_example(r["prompt"], r["completion"], TOK, MAX) for r in recs]
    kept = [ex for ex, _ in expected if ex is not None]
    for split in (default, keep):
        assert [tokens(e) for e in split.examples] == [tokens(e) for e in kept]
        assert [e.completion_start for e in split.examples] == [e.completion_start for e in kept]
        assert split.truncated == sum(t for ex, t in expected if ex is not None)
        assert split.dropped == 1  # t101: the prompt alone fills the row
    over = sum(length(r) > MAX for r in recs)
    assert keep.long_examples() == {
        "policy": "keep",
        "over_length": over,
        "kept_truncated": over - 1,
        "truncated_reasoning": 0,
        "steps_cut": 0,
        "dropped": 1,
    }
    # spelled out: <bos> prompt completion, cut to MAX; the prompt-fills-the-row one left out
    spelled = [
        ([TOK.bos_id(), *TOK.encode(r["prompt"]), *TOK.encode(r["completion"])])[:MAX]
        for r in recs
        if 1 + len(TOK.encode(r["prompt"])) < MAX
    ]
    assert [tokens(e) for e in keep.examples] == spelled
    assert max(len(e.tokens) for e in keep.examples) == MAX


def test_drop_leaves_out_exactly_the_long_examples() -> None:
    recs = records(FormatSpec(name="tunix_sft"))
    split = encode_records(recs, TOK, MAX, long_examples="drop")
    fits = [r for r in recs if length(r) <= MAX]
    assert 0 < len(fits) < len(recs)
    want = [encode_example(r["prompt"], r["completion"], TOK, MAX)[0] for r in fits]
    assert [tokens(e) for e in split.examples] == [tokens(e) for e in want]
    assert split.long_examples() == {
        "policy": "drop",
        "over_length": len(recs) - len(fits),
        "kept_truncated": 0,
        "truncated_reasoning": 0,
        "steps_cut": 0,
        "dropped": len(recs) - len(fits),
    }
    assert split.records == len(recs) and split.truncated == 0


@pytest.mark.parametrize(
    "spec",
    [FormatSpec(name=f, reasoning_style=s) for f in TRAINABLE for s in ("numbered", "tags")]
    + [FormatSpec(name="tunix_sft", system_prompt="Think step by step.")],
    ids=lambda s: f"{s.name}-{s.reasoning_style}{'-system' if s.system_prompt else ''}",
)
def test_truncate_reasoning_cuts_whole_steps_and_keeps_prompt_and_answer(
    spec: FormatSpec,
) -> None:
    recs = records(spec)
    source = Source(BY_ID)
    split = encode_records(
        recs, TOK, MAX, long_examples="truncate_reasoning", spec=spec, traces=source
    )
    long_ids = {r["id"] for r in recs if length(r) > MAX}
    assert source.calls == [long_ids]  # one call, for the long ones only
    examples = iter(split.examples)
    cut_total = shortened = 0
    for rec in recs:
        t = BY_ID[rec["id"]]
        if rec["id"] not in long_ids:  # fits: the export's record as it is
            ex = next(examples)
            assert tokens(ex) == tokens(
                encode_example(rec["prompt"], rec["completion"], TOK, MAX)[0]
            )
            continue
        k = next((k for k in range(len(t["steps"]), -1, -1) if _fits(t, k, spec)), None)
        if k is None:  # not even the answer alone fits: dropped
            assert rec["id"] in ("t100", "t101")
            continue
        ex = next(examples)
        # exactly what the export writes for the trace with its first k steps
        short = render_record({**t, "steps": t["steps"][:k]}, spec)
        want, truncated = encode_example(short["prompt"], short["completion"], TOK, MAX)
        assert want is not None and not truncated
        assert tokens(ex) == tokens(want) and ex.completion_start == want.completion_start
        # the prompt whole, as the export record has it; the answer whole, at the end
        head = ex.tokens[: ex.completion_start].tolist()
        assert head == [TOK.bos_id(), *TOK.encode(rec["prompt"])]
        completion = TOK.decode(ex.tokens[ex.completion_start :].tolist())
        assert parse_answer(spec.reasoning_style, completion) == t["final_answer"]
        assert completion.endswith(short["completion"][-20:])
        # whole steps: the kept ones verbatim, none of the cut ones
        kept, cut = t["steps"][:k], t["steps"][k:]
        assert k < len(t["steps"]) and not _fits(t, k + 1, spec)
        assert all(s["content"] in completion for s in kept)
        assert cut[0]["content"] not in completion
        cut_total += len(cut)
        shortened += 1
    assert next(examples, None) is None
    assert shortened > 0
    assert split.long_examples() == {
        "policy": "truncate_reasoning",
        "over_length": len(long_ids),
        "kept_truncated": 0,
        "truncated_reasoning": shortened,
        "steps_cut": cut_total,
        "dropped": 2,  # t100 (answer too long), t101 (prompt too long)
    }
    assert len(split.examples) == len(recs) - 2
    assert max(len(e.tokens) for e in split.examples) <= MAX
    # the manifest stage counts from the records alone what training counts from the traces
    table = length_table(recs, TOK, MAX, long_examples="truncate_reasoning", spec=spec)
    assert (table.lengths, table.dropped, table.floor) == (split.lengths, 2, split.floor)


def _fits(t: Mapping[str, Any], k: int, spec: FormatSpec) -> bool:
    return length(render_record({**t, "steps": t["steps"][:k]}, spec)) <= MAX


def test_shorten_reasoning_with_no_step_gives_the_answer_only_body() -> None:
    spec = FormatSpec(name="tunix_sft")
    t = trace(7, 30)  # far too long with all its steps
    cut = shorten_reasoning(t, spec, TOK, 128)
    assert cut.record is not None and cut.steps + cut.cut == 30
    assert cut.record == render_record({**t, "steps": t["steps"][: cut.steps]}, spec)
    # a row just big enough for the answer alone keeps no step
    bare = render_record({**t, "steps": []}, spec)
    assert bare["completion"] == "Answer: 14<end_of_turn>"
    tight = shorten_reasoning(t, spec, TOK, length(bare))
    assert (tight.steps, tight.cut, tight.floor) == (0, 30, length(bare))
    assert tight.record == bare
    none = shorten_reasoning(t, spec, TOK, length(bare) - 1)
    assert none.record is None and none.floor == length(bare)


def test_traces_are_read_only_when_some_record_is_too_long() -> None:
    spec = FormatSpec(name="tunix_sft")
    short = records(spec, [t for t in TRACES if length(render_record(t, spec)) <= MAX])
    source = Source(BY_ID)
    split = encode_records(
        short, TOK, MAX, long_examples="truncate_reasoning", spec=spec, traces=source
    )
    assert source.calls == [] and len(split.examples) == len(short)
    # nothing to read from: fine as long as nothing is too long
    encode_records(short, TOK, MAX, long_examples="truncate_reasoning", spec=spec, traces=None)


def test_every_export_format_keeps_the_trace_id() -> None:
    for name in FORMAT_NAMES:
        for t in TRACES[:3]:
            assert render_record(t, FormatSpec(name=name))["id"] == t["id"], name


def test_read_traces_holds_only_the_ids_asked_and_names_file_and_id(tmp_path: Path) -> None:
    path = tmp_path / "data/dataset/train.jsonl"
    write_jsonl(path, TRACES)
    got = read_traces(path, {"t005", "t031"}, "data/dataset/train.jsonl")
    assert got == {"t005": BY_ID["t005"], "t031": BY_ID["t031"]}
    with pytest.raises(DataError) as exc:
        read_traces(path, {"t005", "gone"}, "data/dataset/train.jsonl")
    assert str(exc.value).startswith("data/dataset/train.jsonl: no trace with id 'gone'")
    with pytest.raises(DataError, match=r"^data/dataset/val\.jsonl: not found"):
        read_traces(tmp_path / "nope.jsonl", {"t005"}, "data/dataset/val.jsonl")


def test_a_trace_that_no_longer_renders_to_its_record_is_refused() -> None:
    spec = FormatSpec(name="tunix_sft")
    recs = records(spec)
    edited = {**BY_ID, "t011": {**BY_ID["t011"], "final_answer": "23"}}
    with pytest.raises(DataError, match=r"trace 't011' no longer renders to its export record"):
        encode_records(
            recs, TOK, MAX, long_examples="truncate_reasoning", spec=spec, traces=Source(edited)
        )


def test_the_preflight_bounds_what_each_policy_leaves_out() -> None:
    """keep: the share longer (today's check and message); drop: the share dropped (the same
    examples); truncate_reasoning: the share that does not fit even with no step, counted from
    the records by the manifest stage as training counts it from the traces."""
    spec = FormatSpec(name="tunix_sft")
    recs = records(spec)
    n, over = len(recs), sum(length(r) > MAX for r in recs)
    stats = {}
    for policy in ("keep", "drop", "truncate_reasoning"):
        table = length_table(recs, TOK, MAX, long_examples=policy, spec=spec)
        split = encode_records(
            recs, TOK, MAX, long_examples=policy, spec=spec, traces=Source(BY_ID)
        )
        assert table.dropped == split.dropped and table.lengths == split.lengths, policy
        assert table.floor == split.floor, policy
        stats[policy] = length_stats(
            table.lengths, max_len=MAX, dropped=table.dropped, tokenizer="byte"
        )
    assert [stats[p].dropped for p in ("keep", "drop", "truncate_reasoning")] == [1, over, 2]

    keep_bound = (over - 0.5) / n  # just below the share longer
    with pytest.raises(ConfigError, match=r"train on truncated examples$"):
        check_lengths(stats["keep"], keep_bound)
    with pytest.raises(ConfigError, match=r"leaves them out; above .* train without them$"):
        check_lengths(stats["drop"], keep_bound, "drop")
    line = check_lengths(stats["drop"], over / n, "drop")
    assert line is not None and "train.long_examples=drop leaves them out, within" in line
    # truncate_reasoning: the same bound passes, 2 dropped of n
    line = check_lengths(stats["truncate_reasoning"], keep_bound, "truncate_reasoning")
    assert line is not None
    assert f"2 of them ({100 * 2 / n:.1f}%) do not fit even with no reasoning step" in line
    assert f"cuts the last reasoning steps of {over - 2} of them" in line
    table = length_table(recs, TOK, MAX, long_examples="truncate_reasoning", spec=spec)
    with pytest.raises(ConfigError) as exc:
        check_lengths(stats["truncate_reasoning"], 1 / n, "truncate_reasoning", table.floor)
    # the suggestion is the least power of two that leaves at most 1 of n out of reach
    assert "-S train.max_seq_length=256)" in str(exc.value)
    assert sum(v for k, v in table.floor.items() if k > 256) <= 1
    assert sum(v for k, v in table.floor.items() if k > 128) > 1


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tunix-rt's dev traces through ingest, dataset and export (as test_manifest_lengths)."""
    root = tmp_path_factory.mktemp("dev")
    fixtures_in(root, "dev-reasoning-v2.jsonl", "eval_v1.jsonl")  # eval_v1: the demo's eval set
    subprocess.run([sys.executable, "-c", DATA_STAGES, str(root)], check=True)
    return root


def test_real_traces_that_keep_refuses_train_with_their_reasoning_cut(
    dev: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """tunix-rt's dev traces at the demo's 168 tokens: 311 of 383 are longer, which stops keep
    and drop at the default bound; under truncate_reasoning every one fits with fewer steps,
    and the manifest stage's count (from the export records) is training's (from the traces)."""
    run(manifest_params(long_examples="truncate_reasoning"), dev)
    assert (
        "manifest: train.max_seq_length: 311 of 383 training examples (81.2%) are longer than "
        "168 tokens (median 186, p95 261, longest 264); train.long_examples=truncate_reasoning "
        "cuts the last reasoning steps of 311 of them"
    ) in capfd.readouterr().err
    manifest = load_run_manifest(dev)
    assert manifest.training.long_examples == "truncate_reasoning"
    assert manifest.lengths is not None
    assert (manifest.lengths.over, manifest.lengths.dropped) == (311, 0)
    split = encode_records(
        read_export(dev / "data/export/train.jsonl"),
        TOK,
        168,
        long_examples="truncate_reasoning",
        spec=manifest.dataset.format_spec(),
        traces=lambda ids: read_traces(dev / "data/dataset/train.jsonl", ids),
    )
    assert (split.truncated_reasoning, split.dropped, len(split.examples)) == (311, 0, 383)
    assert max(len(e.tokens) for e in split.examples) <= 168
    with pytest.raises(ConfigError) as exc:
        build_run_manifest(manifest_params(long_examples="drop"), dev)
    assert str(exc.value) == (
        "train.max_seq_length: 311 of 383 training examples (81.2%) are longer than 168 tokens "
        "(median 186, p95 261, longest 264); train.long_examples=drop leaves them out; above "
        "train.max_truncated_share 0.05. Raise train.max_seq_length (e.g. -S "
        "train.max_seq_length=512), or train.max_truncated_share to train without them"
    )


# --- the train stage: counts in metrics.json, the val split under the same policy ---

# test_train_run.py's model, batch and row: the programs XLA compiled for it are reused
SMALL = {"num_layers": 2, "embed_dim": 64, "hidden_dim": 128, "num_heads": 4, "head_dim": 16}
MODEL = ModelSection(model_id="tiny", family="gemma3", preset="tiny", config=SMALL)


def _run_root(tmp_path: Path, policy: str) -> tuple[Path, RunManifest, dict[str, Any]]:
    """Dataset splits and their tunix_sft exports (as the dataset and export stages write
    them), and a run manifest with `policy`."""
    spec = FormatSpec(name="tunix_sft")
    train_traces = TRACES[:32] + TRACES[36:]
    val_traces = TRACES[32:36]
    split_traces = {"train": train_traces, "val": val_traces, "test": val_traces}
    for name, traces in split_traces.items():
        write_jsonl(tmp_path / f"data/dataset/{name}.jsonl", traces)
    splits = write_splits(tmp_path, {k: records(spec, v) for k, v in split_traces.items()})
    training = TrainingSection(
        learning_rate=1e-3,
        batch_size=8,
        max_seq_length=MAX,
        max_steps=2,
        eval_every_steps=2,
        max_truncated_share=0.1,
        long_examples=policy,
    )
    manifest = make_manifest(splits, model=MODEL, training=training)
    sources = {name: Source({t["id"]: t for t in traces}) for name, traces in split_traces.items()}
    expected = {
        name: encode_records(
            records(spec, split_traces[name]),
            TOK,
            MAX,
            long_examples=policy,
            spec=spec,
            traces=sources[name],
        ).long_examples()
        for name in ("train", "val")
    }
    return tmp_path, manifest, expected


def test_the_train_stage_counts_long_examples_in_metrics(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from tunixrt.train.run import train

    root, manifest, expected = _run_root(tmp_path, "truncate_reasoning")
    assert expected["train"]["truncated_reasoning"] > 0 and expected["val"]["over_length"] > 0
    # the traces come from the dataset split: a clear error when it is not there
    moved = root / "data/dataset/train.jsonl"
    moved.rename(root / "elsewhere.jsonl")
    with pytest.raises(DataError, match=r"^data/dataset/train\.jsonl: not found"):
        train(manifest, root)
    (root / "elsewhere.jsonl").rename(moved)

    metrics = train(manifest, root)
    assert read_json(root / "runs/train/metrics.json") == metrics
    assert metrics["long_examples"] == {**expected["train"], "val": expected["val"]}
    c = expected["train"]
    assert metrics["dropped"] == c["dropped"] == 2 and metrics["truncated"] == 0
    assert metrics["examples"] == metrics["records"] - 2
    err = capfd.readouterr().err
    assert (
        f"train: long examples (train, train.long_examples=truncate_reasoning): "
        f"{c['over_length']} longer than train.max_seq_length: 0 kept truncated, "
        f"{c['truncated_reasoning']} with reasoning steps cut ({c['steps_cut']} steps), "
        "2 dropped"
    ) in err
    assert "long examples (val, train.long_examples=truncate_reasoning)" in err
    assert np.isfinite(metrics["loss_last"])


def test_the_fingerprint_and_manifest_carry_the_policy(tmp_path: Path) -> None:
    from tunixrt.train.checkpoints import run_fingerprint

    _, manifest, _ = _run_root(tmp_path, "keep")
    assert manifest.training.long_examples == "keep"
    assert TrainingSection().long_examples == "keep"
    drop = manifest.model_copy(
        update={"training": manifest.training.model_copy(update={"long_examples": "drop"})}
    )
    assert run_fingerprint(drop) != run_fingerprint(manifest)
    with pytest.raises(ValueError, match="long_examples"):
        TrainingSection(long_examples="cut")


def test_the_record_digest_is_not_fooled_by_where_prompt_ends() -> None:
    from tunixrt.train.examples import _digest

    assert _digest("ab", "c") != _digest("a", "bc")
