"""GRPO's prompts: the grpo export read strictly, a seeded order that covers every prompt, and
rl.enabled refused before training when the exports are in another format."""

from __future__ import annotations

import itertools
from pathlib import Path

import orjson
import pytest
from conftest import make_pipeline, tunixrt

from tunixrt.errors import DataError
from tunixrt.formats import FormatSpec, render_record
from tunixrt.ingest.synthetic import SyntheticParams, generate
from tunixrt.rl.data import batches, prompt_order, read_prompts
from tunixrt.traces import TraceLimits, canonical_trace


def _export(path: Path, name: str, n: int = 12) -> Path:
    traces = [canonical_trace(r, TraceLimits())[0] for r in generate(SyntheticParams(n=n, seed=3))]
    spec = FormatSpec(name=name)
    path.write_bytes(b"".join(orjson.dumps(render_record(t, spec)) + b"\n" for t in traces))
    return path


def test_prompts_are_the_grpo_columns(tmp_path: Path) -> None:
    prompts = read_prompts(_export(tmp_path / "train.jsonl", "grpo"))
    assert len(prompts) == 12
    assert all(p.prompts.endswith("<start_of_turn>model\n") and p.answer for p in prompts)


def test_another_format_is_refused_naming_file_line_and_field(tmp_path: Path) -> None:
    path = _export(tmp_path / "train.jsonl", "tunix_sft")
    with pytest.raises(DataError, match=r"train\.jsonl:1: prompts: a grpo record needs"):
        read_prompts(path)


def test_each_epoch_is_a_permutation_and_the_order_is_a_function_of_the_seed() -> None:
    order = prompt_order(10, steps=7, batch_size=4, seed=(1, 2))
    flat = [i for b in order for i in b]
    assert len(order) == 7 and all(len(b) == 4 for b in order)
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:20]) == list(range(10))
    assert order == prompt_order(10, steps=7, batch_size=4, seed=(1, 2))
    assert order != prompt_order(10, steps=7, batch_size=4, seed=(1, 3))
    # a longer run starts with the shorter one's batches: resume and max_steps agree
    assert prompt_order(10, steps=9, batch_size=4, seed=(1, 2))[:7] == order


def test_batches_are_numpy_columns(tmp_path: Path) -> None:
    prompts = read_prompts(_export(tmp_path / "train.jsonl", "grpo"))
    [b] = list(batches(prompts, [[3, 1]]))
    assert b["prompts"].shape == (2,) and list(b["answer"]) == [
        prompts[3].answer,
        prompts[1].answer,
    ]


def test_rl_enabled_needs_the_grpo_format_and_says_so_before_training(tmp_path: Path) -> None:
    root = make_pipeline(tmp_path / "p", git=False)
    for stage in ("ingest", "dataset", "export"):
        tunixrt("run", stage, "experiment=smoke", cwd=root)
    proc = tunixrt("run", "manifest", "experiment=smoke", "rl.enabled=true", cwd=root, check=False)
    assert proc.returncode == 2
    assert "rl.enabled" in proc.stderr and "format=grpo" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_learning_rate_warms_up_then_holds_or_decays_to_zero() -> None:
    from tunixrt.rl.config import RLConfig
    from tunixrt.rl.run import lr_schedule

    cfg = RLConfig(learning_rate=1e-3, warmup_steps=4, max_steps=20)
    constant = lr_schedule(cfg)
    assert [float(constant(c)) for c in (0, 1, 3, 19)] == pytest.approx([2.5e-4, 5e-4, 1e-3, 1e-3])
    cosine = lr_schedule(cfg.model_copy(update={"lr_schedule": "cosine"}))
    after_warmup = [float(cosine(c)) for c in range(3, 21)]
    assert after_warmup[0] == pytest.approx(1e-3)
    assert float(cosine(12)) == pytest.approx(5e-4)  # half way through the decay
    assert after_warmup[-1] == pytest.approx(0.0, abs=1e-12)
    assert all(a > b for a, b in itertools.pairwise(after_warmup[1:]))
    no_warmup = lr_schedule(cfg.model_copy(update={"warmup_steps": 0, "lr_schedule": "cosine"}))
    assert float(no_warmup(0)) == pytest.approx(1e-3)


def test_the_update_reads_the_mixed_groups_padded_to_a_power_of_two() -> None:
    from tunixrt.rl.groups import mixed_groups, padded_group_count, update_rows

    # 5 groups of 4: groups 1 and 3 have differing rewards
    rewards = [1, 1, 1, 1, 1, 0, 1, 1, 0, 0, 0, 0, 0.1, 1.1, 1.1, 1.1, 1, 1, 1, 1]
    assert list(mixed_groups(rewards, 4)) == [1, 3]
    # groups of 3 equal rewards (their GRPO advantages round to ~1e-10, not 0) are not mixed
    assert list(mixed_groups([1.1] * 6 + [0.1, 1.1, 1.1] + [0.7] * 3, 3)) == [2]
    rows, live = update_rows(rewards, 4)
    assert list(rows) == [4, 5, 6, 7, 12, 13, 14, 15] and live.all()
    rows, live = update_rows([*rewards[:12], *[1] * 8], 4)  # one mixed group: no padding
    assert list(rows) == [4, 5, 6, 7] and live.all()
    rows, live = update_rows([1.0] * 20, 4)  # none: one empty group keeps the step's update
    assert list(rows) == [0, 1, 2, 3] and not live.any()
    rows, live = update_rows([*rewards[:16], 0, 1, 0, 1], 4)  # 3 mixed -> 4 groups, 1 empty
    assert list(rows[:12]) == [4, 5, 6, 7, 12, 13, 14, 15, 16, 17, 18, 19]
    assert list(rows[12:]) == [0, 1, 2, 3] and list(live) == [True] * 12 + [False] * 4
    assert [padded_group_count(k, 16) for k in (0, 1, 2, 3, 5, 9, 16)] == [1, 1, 2, 4, 8, 16, 16]
    assert [padded_group_count(k, 12, multiple=4) for k in (1, 3, 5, 9)] == [4, 4, 8, 12]
