"""Generated tokens/s of the evaluate stage's decoding (Tunix's Sampler with a KV cache) vs a
decode loop without a KV cache (one full forward pass over the whole sequence per new token), on
the same model (the default tiny Gemma3, random init), the same prompts and the same number of
new tokens. Both are greedy and jitted; compilation is excluded (one warm-up call each).

    .venv/bin/python benchmarks/decode_throughput.py [--prompts 64] [--new-tokens 96] [--smoke]

`--smoke` (the test suite's check that this script still runs): 2 prompts, 4 new tokens.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import yaml

from tunixrt.evaluate.generate import GreedyGenerator
from tunixrt.ingest.synthetic import SyntheticParams, generate
from tunixrt.manifest.schema import ModelSection, RuntimeSection
from tunixrt.train.inputs import block_causal_mask, segments_and_positions
from tunixrt.train.model import build_model
from tunixrt.train.runtime import make_mesh
from tunixrt.train.tokenizer import ByteTokenizer

ROOT = Path(__file__).resolve().parents[1]


class NoStop(ByteTokenizer):
    """Never stops early, so both loops generate exactly the same number of tokens."""

    def stop_ids(self) -> list[int]:
        return [self.PAD]


def no_cache_loop(model, tok, prompts: list[str], new_tokens: int) -> np.ndarray:
    ids = [[tok.bos_id(), *tok.encode(p)] for p in prompts]
    plen = max(map(len, ids))
    total = plen + new_tokens
    # left-pad so every row's next token sits at the same column
    x = np.full((len(ids), total), tok.pad_id(), np.int32)
    for i, row in enumerate(ids):
        x[i, plen - len(row) : plen] = row

    @jax.jit
    def step(x, t):
        seg, pos = segments_and_positions(x, tok.bos_id(), tok.pad_id())
        logits, _ = model(x, pos, None, block_causal_mask(seg))
        nxt = jnp.argmax(logits[:, t - 1, : tok.vocab_size], axis=-1).astype(jnp.int32)
        return x.at[:, t].set(nxt)

    xj = jnp.asarray(x)
    for t in range(plen, total):
        xj = step(xj, t)
    return np.asarray(xj[:, plen:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=96)
    ap.add_argument("--smoke", action="store_true", help="seconds-long run of the same code")
    a = ap.parse_args()
    if a.smoke:
        a.prompts, a.new_tokens = 2, 4
    cfg = yaml.safe_load((ROOT / "tunixrt/conf/model/tiny_gemma3.yaml").read_text())
    tok = NoStop()
    model = build_model(ModelSection(**cfg), tok, make_mesh(RuntimeSection()), seed=0, root=ROOT)
    prompts = [
        f"<start_of_turn>user\n{t['prompt']}<end_of_turn>\n<start_of_turn>model\n"
        for t in generate(SyntheticParams(n=a.prompts, seed=1))
    ]
    n_tokens = a.prompts * a.new_tokens

    gen = GreedyGenerator(
        model, tok, max_new_tokens=a.new_tokens, max_prompt_tokens=48, batch_size=a.prompts
    )
    gen(prompts)  # compile
    t0 = time.perf_counter()
    gen(prompts)
    cached = n_tokens / (time.perf_counter() - t0)

    no_cache_loop(model, tok, prompts, a.new_tokens)  # compile
    t0 = time.perf_counter()
    no_cache_loop(model, tok, prompts, a.new_tokens)
    uncached = n_tokens / (time.perf_counter() - t0)

    print(f"prompts: {a.prompts}, new tokens each: {a.new_tokens}")
    print(f"evaluate stage decoding (KV cache): {cached:,.0f} generated tokens/s")
    print(f"decode loop without KV cache:       {uncached:,.0f} generated tokens/s")
    print(f"ratio (KV cache / no cache):        {cached / uncached:.2f}")


if __name__ == "__main__":
    main()
