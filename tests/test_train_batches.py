import numpy as np
import pytest
from sample_data import synthetic_records

from tunixrt.errors import ConfigError
from tunixrt.ingest.synthetic import SyntheticParams
from tunixrt.train.batches import BatchStream, assemble, epoch_order, pack_rows, plan_batches
from tunixrt.train.examples import encode_example, encode_records
from tunixrt.train.tokenizer import ByteTokenizer

TOK = ByteTokenizer()
RECORDS = synthetic_records(SyntheticParams(n=60, seed=3))


def loss_mask(ex) -> np.ndarray:
    """1 on the completion's tokens: what the batch builder puts in `input_mask`."""
    return (np.arange(len(ex.tokens)) >= ex.completion_start).astype(np.int32)


def test_loss_mask_covers_exactly_the_completion() -> None:
    for rec in RECORDS:
        ex, truncated = encode_example(rec["prompt"], rec["completion"], TOK, 512)
        assert ex is not None and not truncated
        mask = np.arange(len(ex.tokens)) >= ex.completion_start
        assert ex.tokens[0] == TOK.bos_id() and not mask[0]
        assert TOK.decode(ex.tokens[mask].tolist()) == rec["completion"]
        assert TOK.decode(ex.tokens[~mask].tolist()) == rec["prompt"]
        # a tunix_sft completion ends with <end_of_turn>: no EOS is appended
        assert ex.tokens[-1] == TOK.end_of_turn_id() and TOK.eos_id() not in ex.tokens


def test_plain_completion_gets_eos_under_the_mask() -> None:
    ex, _ = encode_example("Q: 2+2?\n", "4", TOK, 128)
    assert ex is not None
    masked = ex.tokens[loss_mask(ex).astype(bool)].tolist()
    assert masked == [*TOK.encode("4"), TOK.eos_id()]


def test_truncation_keeps_the_prompt_and_drops_what_cannot_keep_a_completion_token() -> None:
    rec = RECORDS[0]
    n_prompt = 1 + len(TOK.encode(rec["prompt"]))
    n_total = n_prompt + len(TOK.encode(rec["completion"]))
    ex, truncated = encode_example(rec["prompt"], rec["completion"], TOK, n_prompt + 1)
    assert truncated and ex is not None
    assert len(ex.tokens) == n_prompt + 1 and int(loss_mask(ex).sum()) == 1
    ex, truncated = encode_example(rec["prompt"], rec["completion"], TOK, n_total)
    assert ex is not None and not truncated
    assert encode_example(rec["prompt"], rec["completion"], TOK, n_prompt) == (None, False)
    split = encode_records([*RECORDS[:3], {"prompt": "x" * 200, "completion": "y"}], TOK, 128)
    assert (split.records, split.dropped, len(split.examples)) == (4, 1, 3)
    assert split.truncated == 0


def test_order_is_a_pure_function_of_seed_and_epoch() -> None:
    a = epoch_order(100, 7, 0)
    assert np.array_equal(a, epoch_order(100, 7, 0))
    assert not np.array_equal(a, epoch_order(100, 7, 1))
    assert not np.array_equal(a, epoch_order(100, 8, 0))
    assert sorted(a.tolist()) == list(range(100))


def test_plan_epochs_max_steps_and_remainders() -> None:
    lengths = [10] * 10
    plan = plan_batches(lengths, batch_size=4, max_len=64, seed=0, packing=False, num_epochs=2)
    assert len(plan.batches) == 4 and plan.micro_batches_per_epoch == [2, 2]
    assert all(len(b) == 4 and all(len(r) == 1 for r in b) for b in plan.batches)
    first_epoch = [r[0] for b in plan.batches[:2] for r in b]
    assert len(set(first_epoch)) == 8  # no repeats within an epoch, remainder dropped
    again = plan_batches(lengths, batch_size=4, max_len=64, seed=0, packing=False, num_epochs=2)
    assert again == plan
    cyc = plan_batches(
        lengths, batch_size=4, max_len=64, seed=0, packing=False, num_epochs=1, micro_batches=5
    )
    assert len(cyc.batches) == 5 and cyc.epochs == 3 and cyc.batches[:4] == plan.batches
    with pytest.raises(ConfigError, match="batch_size"):
        plan_batches(lengths, batch_size=11, max_len=64, seed=0, packing=False, num_epochs=1)


def test_packing_fills_rows_in_order_without_overflow() -> None:
    lengths = [5, 7, 3, 9, 2, 8]
    rows = pack_rows(lengths, [0, 1, 2, 3, 4, 5], 16)
    assert rows == [[0, 1, 2], [3, 4], [5]]
    assert all(sum(lengths[i] for i in r) <= 16 for r in rows)


def test_assembled_rows_are_right_padded_with_per_example_masks() -> None:
    split = encode_records(RECORDS[:4], TOK, 256)
    ex = split.examples
    tokens, mask = assemble([[0, 1], [2]], ex, 256, TOK.pad_id())
    n0, n1, n2 = (len(e.tokens) for e in ex[:3])
    assert np.array_equal(tokens[0, :n0], ex[0].tokens)
    assert np.array_equal(tokens[0, n0 : n0 + n1], ex[1].tokens)
    assert (tokens[0, n0 + n1 :] == TOK.pad_id()).all() and (tokens[1, n2:] == 0).all()
    assert np.array_equal(mask[0, :n0], loss_mask(ex[0]))
    assert np.array_equal(mask[0, n0 : n0 + n1], loss_mask(ex[1]))
    assert mask[0, n0 + n1 :].sum() == 0


def test_stream_is_reiterable_and_splits_batches_across_processes() -> None:
    split = encode_records(RECORDS, TOK, 256)
    plan = plan_batches(
        [len(e.tokens) for e in split.examples],
        batch_size=8,
        max_len=256,
        seed=1,
        packing=True,
        num_epochs=1,
    )
    whole = BatchStream(plan, split.examples, max_len=256, pad_id=0)
    first = [b.input_tokens for b in whole]
    assert all(np.array_equal(a, b.input_tokens) for a, b in zip(first, whole, strict=True))
    halves = [
        list(BatchStream(plan, split.examples, max_len=256, pad_id=0, process_index=p,
                         process_count=2))
        for p in (0, 1)
    ]  # fmt: skip
    for k, full in enumerate(first):
        joined = np.concatenate([halves[0][k].input_tokens, halves[1][k].input_tokens])
        assert np.array_equal(joined, full)
    tokens, loss = whole.counts(0)
    assert tokens == int((first[0] != 0).sum())
    assert loss == int(next(iter(whole)).input_mask.sum())
