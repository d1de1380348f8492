"""The evaluate stage's pieces on real data and a real (untrained) tiny model."""

from pathlib import Path

import pytest
from conftest import make_pipeline, tunixrt

from tunixrt.evaluate.config import EvalConfig
from tunixrt.evaluate.generate import GreedyGenerator, load_model, restore_trained
from tunixrt.evaluate.stage import (
    collect_problems,
    decode_budget,
    metrics_of,
    score_outputs,
)
from tunixrt.manifest.load import load_run_manifest


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    r = make_pipeline(tmp_path_factory.mktemp("ev") / "p", git=False)
    for stage in ("ingest", "dataset", "export", "manifest", "train"):
        tunixrt("run", stage, "experiment=smoke", cwd=r)
    return r


def generator(model, tokenizer, mesh, problems, cfg) -> GreedyGenerator:
    prompts = [p.prompt for p in problems]
    return GreedyGenerator(
        model,
        tokenizer,
        max_new_tokens=decode_budget(problems, tokenizer, cfg),
        max_prompt_tokens=max(len(tokenizer.encode(p)) + 1 for p in prompts),
        batch_size=len(prompts),
        mesh=mesh,
    )


def test_untrained_after_model_gives_delta_zero(root: Path) -> None:
    manifest = load_run_manifest(root)
    cfg = EvalConfig(max_problems=6, sets=["fixtures/tunix-rt/eval_v1.jsonl"], max_new_tokens=24)
    problems, info = collect_problems(manifest, cfg, root)
    assert info["test"]["n"] == 6 and info["fixtures/tunix-rt/eval_v1.jsonl"]["n"] >= 1
    style = manifest.dataset.reasoning_style
    rows = []
    for name in ("before", "after"):  # "after" is the untrained model too
        model, tok, mesh = load_model(manifest, root, trained=False)
        outputs = generator(model, tok, mesh, problems, cfg)([p.prompt for p in problems])
        rows += score_outputs(problems, outputs, style, name)
    m = metrics_of(rows, cfg.splits)
    assert m["delta"] == 0 and m["before"] == m["after"]
    assert m["before"]["n"] == 6 and m["before"]["exact_match"] <= 0.05
    before = [r["generated"] for r in rows if r["model"] == "before"]
    assert before == [r["generated"] for r in rows if r["model"] == "after"]


def test_trained_weights_loaded_into_the_built_model_decode_as_a_fresh_load(root: Path) -> None:
    """Evaluate builds the model once: restoring the checkpoint into it, under a generator made
    before, decodes exactly as the trained model loaded from scratch."""
    manifest = load_run_manifest(root)
    cfg = EvalConfig(max_problems=6, max_new_tokens=24)
    problems, _ = collect_problems(manifest, cfg, root)
    prompts = [p.prompt for p in problems]
    model, tok, mesh = load_model(manifest, root, trained=False)
    gen = generator(model, tok, mesh, problems, cfg)
    before = gen(prompts)
    restore_trained(model, manifest, root, mesh)
    reused = gen(prompts)
    fresh_model, _, _ = load_model(manifest, root, trained=True)
    fresh = generator(fresh_model, tok, mesh, problems, cfg)(prompts)
    assert reused == fresh
    assert reused != before  # four steps at the smoke learning rate change the greedy text


def test_held_out_problem_seen_in_train_fails_the_stage(root: Path) -> None:
    from tunixrt.errors import DataError

    manifest = load_run_manifest(root)
    splits = {**manifest.dataset.splits, "test": manifest.dataset.splits["train"]}
    leaky = manifest.model_copy(
        update={"dataset": manifest.dataset.model_copy(update={"splits": splits})}
    )
    with pytest.raises(DataError, match="share a prompt with train"):
        collect_problems(leaky, EvalConfig(max_problems=3), root)


def test_max_problems_does_not_count_as_seen_in_train(root: Path) -> None:
    """`excluded_seen_in_train` counts eval items whose prompt is in train, whatever the cap."""
    import orjson

    train = [
        orjson.loads(ln)
        for ln in (root / "data/dataset/train.jsonl").read_bytes().split(b"\n")
        if ln
    ]
    items = [{"prompt": t["prompt"], "expected_answer": t["final_answer"]} for t in train[:3]]
    items += [
        {"prompt": f"What is {k} + 1000?", "expected_answer": str(k + 1000)} for k in range(4)
    ]
    path = "inputs/eval_mixed.jsonl"  # eval sets live inside the pipeline root
    (root / path).parent.mkdir(exist_ok=True)
    (root / path).write_bytes(b"".join(orjson.dumps(i) + b"\n" for i in items))
    manifest = load_run_manifest(root)
    for cap, n in ((None, 4), (2, 2)):
        _, info = collect_problems(manifest, EvalConfig(sets=[path], max_problems=cap), root)
        assert info[path] == {"n": n, "excluded_seen_in_train": 3}


def test_trained_full_fine_tune_restores_into_an_abstract_model_as_over_the_random_init(
    root: Path,
) -> None:
    """A full fine-tune's checkpoint holds every weight: load_model restores it into the
    model's shapes alone, and gets the model restoring it over the random init gives, leaf by
    leaf (values, dtypes, shardings), with the same graph."""
    import jax
    import numpy as np
    from flax import nnx

    manifest = load_run_manifest(root)
    assert not manifest.training.lora.enabled and manifest.model.checkpoint_path is None
    before, _, mesh = load_model(manifest, root, trained=False)
    restore_trained(before, manifest, root, mesh)  # today's: the random init, then the restore
    after, _, _ = load_model(manifest, root, trained=True)
    want, got = nnx.split(before), nnx.split(after)
    assert got[0] == want[0]
    leaves = jax.tree_util.tree_leaves_with_path(want[1])
    assert jax.tree.structure(got[1]) == jax.tree.structure(want[1]) and len(leaves) > 10
    for (path, w), g in zip(leaves, jax.tree.leaves(got[1]), strict=True):
        where = jax.tree_util.keystr(path)
        assert isinstance(g, jax.Array), where
        assert (g.shape, g.dtype, g.sharding) == (w.shape, w.dtype, w.sharding), where
        np.testing.assert_array_equal(np.asarray(g), np.asarray(w), err_msg=where, strict=True)


def test_on_policy_samples_are_seeded_and_differ_between_draws(root: Path) -> None:
    """The preference stage's sampler (tunixrt.preference.sampling), on this module's trained
    smoke model: a seed gives the same completions again, another seed others, and the draws of
    one prompt are not all alike (Tunix decodes greedily unless top_p or top_k is set)."""
    from tunixrt.preference.sampling import on_policy_pairs, sample_completions

    manifest = load_run_manifest(root)
    problems, _ = collect_problems(manifest, EvalConfig(max_problems=4), root)
    model, tok, mesh = load_model(manifest, root, trained=True)
    prompts = [p.prompt for p in problems for _ in range(4)]

    def draw(seed: int) -> list[str]:
        return sample_completions(
            model, tok, prompts, seed=seed, temperature=1.0, max_new_tokens=12, mesh=mesh
        )

    first = draw(0)
    assert draw(0) == first and draw(1) != first
    assert all(len(set(first[i : i + 4])) > 1 for i in range(0, len(first), 4))
    # the smoke model is all but never right: give problem 0 one right draw
    style = manifest.dataset.reasoning_style
    right = f"Reasoning:\n1. worked out\nAnswer: {problems[0].expected}"
    drawn = [right, *first[1:]]
    pairs, n_right = on_policy_pairs(problems, drawn, samples=4, style=style, seed=0)
    end = "<end_of_turn>"  # the turn's end, which the sampler leaves out (SFT's completions end so)
    assert n_right == 1 and [(p.problem_id, p.chosen) for p in pairs] == [
        (problems[0].id, right + end)
    ]
    assert pairs[0].rejected in [t + end for t in first[1:4]]
    assert pairs[0].prompt == problems[0].prompt
    # a completion cut at the length budget is never chosen nor rejected
    cut = [True] * len(drawn)
    cut[0] = False
    assert on_policy_pairs(problems, drawn, samples=4, style=style, seed=0, finished=cut)[0] == []
    with pytest.raises(ValueError, match="completions for"):
        on_policy_pairs(problems, drawn[:-1], samples=4, style=style, seed=0)
