"""Preference pairs: a right attempt against a wrong one, chosen by the seed alone."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tunixrt.preference.pairs import Attempt, Pair, choose_pairs, judge, pair_attempts

ATTEMPTS = st.lists(
    st.builds(Attempt, text=st.sampled_from([f"t{i}" for i in range(8)]), correct=st.booleans()),
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(attempts=ATTEMPTS, seed=st.integers(0, 3), max_pairs=st.integers(1, 4))
def test_pairs_join_a_right_attempt_and_a_wrong_one_and_depend_on_the_seed_alone(
    attempts: list[Attempt], seed: int, max_pairs: int
) -> None:
    pairs = pair_attempts("p1", "prompt", attempts, seed=seed, max_pairs=max_pairs)
    right = {a.text for a in attempts if a.correct}
    wrong = {a.text for a in attempts if not a.correct}
    for p in pairs:  # a text judged both ways is never used
        assert p.chosen in right - wrong and p.rejected in wrong - right
    assert len({p.chosen for p in pairs}) == len({p.rejected for p in pairs}) == len(pairs)
    assert len(pairs) == min(max_pairs, len(right - wrong), len(wrong - right))
    # the same pairs whatever order the attempts come in
    again = pair_attempts("p1", "prompt", attempts[::-1], seed=seed, max_pairs=max_pairs)
    assert again == pairs


def test_the_seed_and_the_problem_choose_which_attempts_pair() -> None:
    attempts = [Attempt(text=f"r{i}", correct=True) for i in range(6)]
    attempts += [Attempt(text=f"w{i}", correct=False) for i in range(6)]
    chosen = {
        (seed, pid): pair_attempts(pid, "q", attempts, seed=seed)[0].chosen
        for seed in range(4)
        for pid in ("a", "b")
    }
    assert len(set(chosen.values())) > 1


def test_the_verifier_is_evaluate_parser_and_exact_match() -> None:
    completions = [
        "Reasoning:\n1. 15 + 27 = 42\nAnswer: 42",
        "Reasoning:\n1. 15 + 27 = 41\nAnswer: 41",
        "forty-two",
    ]
    assert judge("numbered", completions, "42") == [True, False, False]


def test_pairs_become_left_padded_prompts_and_right_padded_responses() -> None:
    from tunixrt.preference.batches import pair_arrays
    from tunixrt.preference.pairs import Pair
    from tunixrt.train.tokenizer import ByteTokenizer

    tok = ByteTokenizer()
    pairs = [
        Pair(id="a#0", problem_id="a", prompt="Q?", chosen="ok", rejected="no!", origin="x"),
        Pair(
            id="b#0",
            problem_id="b",
            prompt="a long prompt",
            chosen="x" * 9,
            rejected="y",
            origin="x",
        ),
    ]
    a = pair_arrays(pairs, tok, prompt_len=6, response_len=5)
    assert {k: v.shape for k, v in a.items()} == {
        "prompt_ids": (2, 6),
        "prompt_mask": (2, 6),
        "chosen_ids": (2, 5),
        "chosen_mask": (2, 5),
        "rejected_ids": (2, 5),
        "rejected_mask": (2, 5),
    }
    pad, bos, eos = tok.pad_id(), tok.bos_id(), tok.eos_id()
    # <bos> + prompt, left-padded; a long prompt keeps its end
    assert a["prompt_ids"][0].tolist() == [pad, pad, pad, bos, *tok.encode("Q?")]
    assert a["prompt_mask"][0].tolist() == [0, 0, 0, 1, 1, 1]
    assert a["prompt_ids"][1].tolist() == tok.encode("prompt")
    # response + <eos>, right-padded; a long response keeps its start
    assert a["chosen_ids"][0].tolist() == [*tok.encode("ok"), eos, pad, pad]
    assert a["rejected_ids"][0].tolist() == [*tok.encode("no!"), eos, pad]
    assert a["chosen_mask"][0].tolist() == [1, 1, 1, 0, 0]
    assert a["chosen_ids"][1].tolist() == tok.encode("xxxxx") and a["chosen_mask"][1].all()


@settings(max_examples=100, deadline=None)
@given(
    problems=st.lists(st.integers(0, 4), min_size=1, max_size=20),
    seed=st.integers(0, 3),
    most=st.integers(1, 3),
)
def test_choosing_pairs_keeps_at_most_n_per_problem_whatever_their_order(
    problems: list[int], seed: int, most: int
) -> None:
    pairs = [
        Pair(
            id=f"p{q}#{k}",
            problem_id=f"p{q}",
            prompt="q",
            chosen=f"c{k}",
            rejected=f"r{k}",
            origin="labelled",
        )
        for k, q in enumerate(problems)
    ]
    kept = choose_pairs(pairs, seed=seed, max_per_problem=most)
    for q in set(problems):
        n = sum(p.problem_id == f"p{q}" for p in kept)
        assert n == min(most, problems.count(q))
    again = choose_pairs(pairs[::-1], seed=seed, max_per_problem=most)
    assert sorted(p.id for p in again) == sorted(p.id for p in kept)
