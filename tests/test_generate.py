"""Greedy decoding with the KV cache equals a step-by-step argmax over full forward passes."""

from pathlib import Path

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from tunixrt.evaluate.generate import GreedyGenerator, greedy_generate
from tunixrt.manifest.schema import ModelSection, RuntimeSection
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
    """Greedy tokens from full forward passes over a fixed-length, right-padded row."""
    ids = [TOK.bos_id(), *TOK.encode(prompt)]
    width = len(ids) + n

    @nnx.jit
    def next_token(m, row: jax.Array, last: jax.Array) -> jax.Array:
        seg, pos = segments_and_positions(row, TOK.bos_id(), TOK.pad_id())
        logits, _ = m(row, pos, None, block_causal_mask(seg))
        return jnp.argmax(logits[0, last, : TOK.vocab_size])

    out: list[int] = []
    for _ in range(n):
        seq = ids + out
        row = jnp.asarray([seq + [TOK.pad_id()] * (width - len(seq))], jnp.int32)
        nxt = int(next_token(model, row, len(seq) - 1))
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
    # stop at the first token the free-running model produces that it had not produced before,
    # past the first two (so the expected text is not empty)
    for prompt in PROMPTS:
        free = reference(model, prompt, 16, [])
        ks = [i for i in range(2, len(free)) if free[i] not in free[:i]]
        if ks:
            break
    else:
        pytest.fail("the random model repeats itself on every prompt")
    k = ks[0]
    gen = GreedyGenerator(model, StopAt(free[k]), max_new_tokens=16, max_prompt_tokens=48)
    assert gen([prompt, prompt]) == [TOK.decode(free[:k])] * 2
    assert greedy_generate(model, TOK, [], max_new_tokens=4) == []


def test_tunix_modules_import_without_the_package_init_until_a_name_of_it_is_used() -> None:
    """load_model imports Tunix's models, sampler and checkpoints without tunix/__init__.py
    (every trainer Tunix has, TensorBoard's writer, PyTorch); a name the package defines still
    resolves, by running it then."""
    import subprocess
    import sys

    code = """
import sys
from importlib.metadata import version
from tunixrt.evaluate.generate import _tunix_without_its_init
_tunix_without_its_init()
import tunix.generate.sampler, tunix.models.gemma3.model, tunix.sft.checkpoint_manager
assert "tunix.distillation" not in sys.modules and "tensorboardX" not in sys.modules
from tunix import PeftTrainer
import tunix.sft.peft_trainer
assert PeftTrainer is tunix.sft.peft_trainer.PeftTrainer
assert "tunix.distillation" in sys.modules and tunix.__version__ == version("google-tunix")
_tunix_without_its_init()  # a no-op now
assert sys.modules["tunix"] is tunix and "__getattr__" not in vars(tunix)
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
