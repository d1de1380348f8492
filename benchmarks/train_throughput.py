"""Tokens/s of tunixrt's train loop vs a bare PeftTrainer loop, same model, same batches.

    .venv/bin/python benchmarks/train_throughput.py [--model micro|tiny|100m]
        [--platform cpu|gpu|tpu] [--steps 200] [--repeats 3] [--batch-size B] [--seq L] [--smoke]

Models: `micro` (1 layer, width 16: the device step costs almost nothing, so the loop's host
overhead shows on a CPU as it would on an accelerator), `tiny` (the default model,
tunixrt/conf/model/tiny_gemma3.yaml), `100m` (Gemma3-270M's shape: 18 layers, width 640, MLP
2048, 4 heads of 256, 1 kv head; bfloat16, batch 64 x 512 packed: for accelerators).

Both loops train the model from the same random init on identical pre-built batches (the default
synthetic problems, tokenized and batched once by tunixrt). "bare" is PeftTrainer with Tunix's own
positions/causal-mask input function, no checkpoints, no hooks; "tunixrt" is the whole
`tunixrt.train.run.train` (hooks, history, DVCLive, orbax checkpoints as
tunixrt/conf/train/default.yaml sets them). Tokens are non-padding tokens; the first step
(compilation) is left out of both rates. The two loops run as `--repeats` pairs, the one that
goes first alternating from pair to pair; the rates printed are each side's median and the ratio
is the median of the pairs' ratios, so that other load on the machine distorts it less. Target:
ratio >= 0.9. The setup split (tokenize, build the model, first step) is from tunixrt's median run.
`--smoke` (the test suite's check that this script still runs): the micro model, 6 steps, one
pair, a checkpoint every 3 steps; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "tunixrt" / "conf"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # sample_data: export records without the data stages

MODELS: dict[str, dict[str, Any]] = {
    "micro": {
        "config": {
            "num_layers": 1,
            "embed_dim": 16,
            "hidden_dim": 32,
            "num_heads": 1,
            "head_dim": 16,
            "num_kv_heads": 1,
        },
        "train": {},
    },
    "tiny": {"config": None, "train": {}},  # tiny_gemma3.yaml as it is
    "100m": {
        "config": {
            "num_layers": 18,
            "embed_dim": 640,
            "hidden_dim": 2048,
            "num_heads": 4,
            "head_dim": 256,
            "num_kv_heads": 1,
            "sliding_window_size": 512,
        },
        "dtype": "bfloat16",
        "train": {"batch_size": 64, "max_seq_length": 512, "packing": True},
    },
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=sorted(MODELS), default="tiny")
    ap.add_argument("--platform", choices=["cpu", "gpu", "tpu"], default="cpu")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=None, help="default: the model's")
    ap.add_argument("--seq", type=int, default=None, help="default: the model's")
    ap.add_argument("--checkpoint-every", type=int, default=None, help="default: conf")
    ap.add_argument("--repeats", type=int, default=3, help="alternating pairs; medians count")
    ap.add_argument("--n", type=int, default=2000, help="synthetic problems to draw batches from")
    ap.add_argument("--smoke", action="store_true", help="seconds-long run of the same code")
    args = ap.parse_args()
    if args.smoke:
        args.model, args.steps, args.repeats, args.n = "micro", 6, 1, 100
        args.checkpoint_every = args.checkpoint_every or 3

    import yaml
    from sample_data import make_manifest, synthetic_records, write_splits

    from tunixrt.ingest.synthetic import SyntheticParams
    from tunixrt.manifest.schema import ModelSection, RuntimeSection, TrainingSection

    spec = MODELS[args.model]
    model_cfg = yaml.safe_load((CONF / "model/tiny_gemma3.yaml").read_text())
    if spec["config"] is not None:
        model_cfg.update(model_id=f"{args.model}-gemma3", config=spec["config"])
    model_cfg["dtype"] = spec.get("dtype", model_cfg["dtype"])
    model_sec = ModelSection(**model_cfg)
    train_cfg = yaml.safe_load((CONF / "train/default.yaml").read_text())
    train_cfg.update(spec["train"], max_steps=args.steps)
    if args.checkpoint_every:
        train_cfg["checkpoint_every_steps"] = args.checkpoint_every
    if args.batch_size:
        train_cfg["batch_size"] = args.batch_size
    if args.seq:
        train_cfg["max_seq_length"] = args.seq
    training = TrainingSection(**train_cfg)
    runtime = RuntimeSection(name=args.platform, platform=args.platform)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        records = synthetic_records(SyntheticParams(n=args.n))
        splits = write_splits(root, {"train": records})
        manifest = make_manifest(splits, model=model_sec, training=training, runtime=runtime)
        ours_runs: list[dict[str, float]] = []
        bare_runs: list[float] = []
        for i in range(args.repeats):  # alternate, so that background load hits both alike
            if i % 2:  # and swap which goes first, so that a load that rises or falls does too
                ours_runs.append(_ours(manifest, root / f"ours{i}"))
                bare_runs.append(_bare(manifest, root))
            else:
                bare_runs.append(_bare(manifest, root))
                ours_runs.append(_ours(manifest, root / f"ours{i}"))
    rates = [r["steady_tokens_per_s"] for r in ours_runs]
    ours, bare = statistics.median(rates), statistics.median(bare_runs)
    pairs = [o / b if b else float("nan") for o, b in zip(rates, bare_runs, strict=True)]
    ratio = statistics.median(pairs)
    mid = ours_runs[sorted(range(len(rates)), key=rates.__getitem__)[(len(rates) - 1) // 2]]
    print(
        json.dumps(
            {
                "model": args.model,
                "platform": args.platform,
                "steps": args.steps,
                "batch_size": training.batch_size,
                "max_seq_length": training.max_seq_length,
                "tunixrt_tokens_per_s": round(ours, 1),
                "bare_peft_trainer_tokens_per_s": round(bare, 1),
                "ratio": round(ratio, 3),
                "setup_seconds": {
                    k: round(mid[k], 2)
                    for k in ("tokenize_seconds", "build_seconds", "first_step_seconds")
                },
                "runs": {
                    "tunixrt": [round(r["steady_tokens_per_s"], 1) for r in ours_runs],
                    "bare": [round(b, 1) for b in bare_runs],
                    "ratio": [round(p, 3) for p in pairs],
                },
            },
            indent=2,
        )
    )


def _ours(manifest, root: Path) -> dict[str, float]:
    import shutil

    from tunixrt.jsonio import read_json
    from tunixrt.train.run import train

    shutil.copytree(root.parent / "data", root / "data")
    train(manifest, root)
    return read_json(root / manifest.output.output_dir / "perf.json")


def _bare(manifest, root: Path) -> float:
    """The same batches through a PeftTrainer with nothing of tunixrt around it."""
    import jax.numpy as jnp
    from tunix.sft import peft_trainer

    from tunixrt.train import rng
    from tunixrt.train.batches import BatchStream, plan_batches
    from tunixrt.train.examples import encode_records, read_export
    from tunixrt.train.inputs import unpacked_model_inputs
    from tunixrt.train.model import build_model
    from tunixrt.train.optimizer import make_optimizer
    from tunixrt.train.runtime import configure_platform, make_mesh, use_mesh
    from tunixrt.train.tokenizer import make_tokenizer

    configure_platform(manifest.runtime)
    t = manifest.training
    tok = make_tokenizer(manifest.model.tokenizer, root)
    split = encode_records(
        read_export(root / manifest.dataset.splits["train"].path), tok, t.max_seq_length
    )
    plan = plan_batches(
        [len(e.tokens) for e in split.examples],
        batch_size=t.batch_size,
        max_len=t.max_seq_length,
        seed=rng.numpy_seed(rng.stream(manifest.seed, "data")),  # tunixrt's order
        packing=t.packing,
        num_epochs=t.num_epochs,
        micro_batches=t.max_steps,
    )
    batches = list(BatchStream(plan, split.examples, max_len=t.max_seq_length, pad_id=tok.pad_id()))
    tokens = [int((b.input_tokens != tok.pad_id()).sum()) for b in batches]
    mesh = make_mesh(manifest.runtime)
    model = build_model(manifest.model, tok, mesh, seed=manifest.seed, root=root)

    # Tunix's own positions and causal mask (what tunixrt also uses for unpacked rows)
    gen_model_input_fn = partial(unpacked_model_inputs, pad_id=tok.pad_id())

    times: list[float] = []

    class Clock:
        def __iter__(self):
            for b in batches:
                times.append(time.perf_counter())
                yield b

    opt = make_optimizer(t, t.max_steps)  # the same update: only the loop around it differs
    config = peft_trainer.TrainingConfig(eval_every_n_steps=10**9, max_steps=t.max_steps)
    with use_mesh(mesh):
        trainer = peft_trainer.PeftTrainer(model, opt, config)
        trainer.with_gen_model_input_fn(gen_model_input_fn)
        trainer.train(Clock())
        jnp.zeros(()).block_until_ready()
    end = time.perf_counter()
    # times[k] is when batch k was requested, i.e. after step k-1 was dispatched; steps 2..n
    # are measured from the request of batch 2 (compilation is over by then) to the end.
    return sum(tokens[1:]) / (end - times[1])


if __name__ == "__main__":
    main()
