"""The model-input function: segments, positions, block-diagonal mask, and packing's loss."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from sample_data import synthetic_records
from tunix.sft import peft_trainer, utils

from tunixrt.ingest.synthetic import SyntheticParams
from tunixrt.manifest.schema import ModelSection, RuntimeSection
from tunixrt.train.batches import assemble, pack_rows
from tunixrt.train.examples import encode_records
from tunixrt.train.inputs import block_causal_mask, model_inputs, segments_and_positions
from tunixrt.train.model import build_model
from tunixrt.train.runtime import make_mesh, use_mesh
from tunixrt.train.tokenizer import ByteTokenizer

TOK = ByteTokenizer()
BOS, PAD = TOK.bos_id(), TOK.pad_id()


def token_nll(model, x: peft_trainer.TrainingInput, bos_id: int, pad_id: int):
    """Per-token negative log-likelihood [B, L-1] of token t+1 given the row up to t, masked
    by the loss mask as Tunix's default loss does (it divides their sum by the mask's sum)."""
    inputs = model_inputs(x, bos_id, pad_id)
    logits, _ = model(inputs["input_tokens"], inputs["positions"], None, inputs["attention_mask"])
    logp = jax.nn.log_softmax(logits[:, :-1].astype(jnp.float32), axis=-1)
    target = inputs["input_tokens"][:, 1:]
    nll = -jnp.take_along_axis(logp, target[..., None], axis=-1)[..., 0]
    return nll * x.input_mask[:, 1:]


def test_segments_positions_and_mask_of_a_packed_row() -> None:
    row = np.array([[BOS, 7, 8, BOS, 9, 10, 11, PAD, PAD]], np.int32)
    seg, pos = segments_and_positions(jnp.asarray(row), BOS, PAD)
    assert seg.tolist() == [[1, 1, 1, 2, 2, 2, 2, 0, 0]]
    assert pos.tolist() == [[0, 1, 2, 0, 1, 2, 3, 0, 0]]
    mask = np.asarray(block_causal_mask(seg))[0]
    assert mask[2, :3].all() and not mask[2, 3:].any()  # segment 1 sees only itself
    assert not mask[4, :3].any() and mask[4, 3:5].all() and not mask[4, 5:].any()
    assert not mask[7].any() and not mask[:, 7].any()  # padding takes no part


def test_unpacked_rows_match_tunix_positions_and_causal_mask() -> None:
    split = encode_records(synthetic_records(SyntheticParams(n=4)), TOK, 192)
    tokens, loss_mask = assemble([[i] for i in range(4)], split.examples, 192, PAD)
    x = peft_trainer.TrainingInput(input_tokens=jnp.asarray(tokens), input_mask=loss_mask)
    ours = model_inputs(x, BOS, PAD)
    valid = jnp.asarray(tokens) != PAD
    real = np.asarray(valid)
    theirs_pos = np.asarray(utils.build_positions_from_mask(valid))
    assert np.array_equal(np.asarray(ours["positions"])[real], theirs_pos[real])
    theirs = np.asarray(utils.make_causal_attn_mask(valid))
    # equal wherever a real token attends (padding carries no loss; Tunix lets it attend)
    rows = real[:, :, None]
    assert np.array_equal(np.asarray(ours["attention_mask"]) & rows, theirs & rows)


@pytest.fixture(scope="module")
def tiny_model():
    mesh = make_mesh(RuntimeSection())
    section = ModelSection(
        model_id="t",
        family="gemma3",
        preset="tiny",
        config={"num_layers": 2, "embed_dim": 64, "hidden_dim": 128, "head_dim": 16},
    )
    return build_model(section, TOK, mesh, seed=0, root=Path(".")), mesh


def test_packing_changes_no_examples_loss(tiny_model) -> None:
    model, mesh = tiny_model
    max_len = 256
    split = encode_records(synthetic_records(SyntheticParams(n=12, seed=5)), TOK, max_len)
    ex = split.examples
    n = len(ex)
    rows = pack_rows([len(e.tokens) for e in ex], range(n), max_len)
    assert any(len(r) > 1 for r in rows)

    @nnx.jit
    def evaluate(m, x: peft_trainer.TrainingInput):
        nll = token_nll(m, x, BOS, PAD)
        # Tunix's own loss and its gradient, as a training step takes them
        loss, grads = nnx.value_and_grad(peft_trainer._default_loss_fn)(
            m, **model_inputs(x, BOS, PAD)
        )
        return nll, loss, grads

    def per_example(rows_: list[list[int]]) -> tuple[np.ndarray, float, list[np.ndarray]]:
        tokens, mask = assemble(rows_, ex, max_len, PAD)
        x = peft_trainer.TrainingInput(input_tokens=jnp.asarray(tokens), input_mask=mask)
        with use_mesh(mesh):
            nll, loss, grads = evaluate(model, x)
        sums = np.zeros(n)
        for r, row in enumerate(rows_):
            at = 0
            for i in row:
                # nll[r, t] scores token t+1: example i's own targets are at+1 .. at+len-1
                sums[i] = np.asarray(nll)[r, at : at + len(ex[i].tokens) - 1].sum()
                at += len(ex[i].tokens)
        return sums, float(loss), [np.asarray(g) for g in jax.tree.leaves(grads)]

    unpacked, loss_unpacked, grads_unpacked = per_example([[i] for i in range(n)])
    packed, loss_packed, grads_packed = per_example(rows)
    assert unpacked.min() > 0
    np.testing.assert_allclose(packed, unpacked, rtol=2e-5)
    # Tunix's own loss (a token mean over the batch) is the same number either way
    assert loss_packed == pytest.approx(loss_unpacked, rel=2e-5)
    assert len(grads_packed) == len(grads_unpacked) > 0
    for gp, gu in zip(grads_packed, grads_unpacked, strict=True):
        np.testing.assert_allclose(gp, gu, rtol=1e-3, atol=1e-6)
