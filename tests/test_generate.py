"""Greedy decoding with the KV cache equals a step-by-step argmax over full forward passes."""

from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from tunixrt.evaluate.generate import GreedyGenerator, greedy_generate
from tunixrt.run_manifest import ModelSection, RuntimeSection
from tunixrt.train.inputs import block_causal_mask, segments_and_positions
from tunixrt.train.model import build_model
from tunixrt.train.runtime import make_mesh
from tunixrt.train.tokenizer import ByteTokenizer

TOK = ByteTokenizer()
PROMPTS = [
    "<start_of_turn>user\nWhat is 12 + 7?<end_of_turn>\n<start_of_turn>model\n",
    "<start_of_turn>user\nWhat is 345 - 278?<end_of_turn>\n<start_of_turn>model\n",
    "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n",
]


@pytest.fixture(scope="module")
def model():
    section = ModelSection(
        model_id="t",
        family="gemma3",
        preset="tiny",
        config={"num_layers": 2, "embed_dim": 64, "hidden_dim": 128, "head_dim": 16},
    )
    return build_model(section, TOK, make_mesh(RuntimeSection()), seed=3, root=Path("."))


def reference(model, prompt: str, n: int, stop: list[int]) -> list[int]:
    ids = [TOK.bos_id(), *TOK.encode(prompt)]
    out: list[int] = []
    for _ in range(n):
        x = jnp.asarray([ids + out], jnp.int32)
        seg, pos = segments_and_positions(x, TOK.bos_id(), TOK.pad_id())
        logits, _ = model(x, pos, None, block_causal_mask(seg))
        nxt = int(np.argmax(np.asarray(logits[0, -1, : TOK.vocab_size])))
        if nxt in stop:
            break
        out.append(nxt)
    return out


def test_cached_batched_greedy_equals_full_recompute(model) -> None:
    n = 12
    got = greedy_generate(model, TOK, PROMPTS, max_new_tokens=n, batch_size=2)
    for prompt, text in zip(PROMPTS, got, strict=True):
        want = reference(model, prompt, n, TOK.stop_ids())
        assert text == TOK.decode(want)
        assert want  # the random model does not stop at once, so the comparison has content


class StopAt(ByteTokenizer):
    def __init__(self, stop: int) -> None:
        self._stop = stop

    def stop_ids(self) -> list[int]:
        return [self._stop]


def test_generation_stops_at_a_stop_token(model) -> None:
    free = reference(model, PROMPTS[1], 12, [])
    k = next(i for i in range(2, len(free)) if free[i] not in free[:i])
    tok = StopAt(free[k])
    gen = GreedyGenerator(model, tok, max_new_tokens=12, max_prompt_tokens=40, batch_size=4)
    texts = gen([PROMPTS[1], PROMPTS[1]])
    assert texts == [TOK.decode(free[:k])] * 2
    assert greedy_generate(model, TOK, [], max_new_tokens=4) == []
