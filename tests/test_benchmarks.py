"""Every benchmark still runs: each `benchmarks/*.py` (except `_`-prefixed helpers) must accept
`--smoke`, a seconds-long run of its own code path with tiny sizes, exit 0 there and print its
figures on stdout. A new benchmark is picked up by the glob; one without `--smoke` fails
(argparse exits 2 on the unknown flag)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, env

BENCHMARKS = sorted(p for p in (REPO / "benchmarks").glob("*.py") if not p.name.startswith("_"))
# What a smoke run's stdout must show, per script; any other script must print some figure.
FIGURES = {
    "data_throughput.py": [r"\bingest\s+1000\s", r"\bexport\s+\d+\s", r"pass-through"],
    "decode_throughput.py": [r"KV cache\): [\d,]+ generated tokens/s", r"no cache\):\s+[\d.]+"],
    "preset_after_sft.py": [
        r"wall time: ",
        r"after GRPO: [\d.]+%",
        r"after DPO: [\d.]+%",
        r"GRPO: 2 steps of 2 prompts x 2",
        r"DPO: \d+ pairs .* 2 steps of 2",
        r"targets not checked",
    ],
    "train_throughput.py": [r'"tunixrt_tokens_per_s": \d', r'"ratio": \d', r'"steps": 6,'],
}
SLOW = {"preset_after_sft.py"}  # the whole pipeline through DVC in a clone
SMOKE_TIMEOUT_S = 600  # far above what any smoke run takes, even on a loaded 2-core machine


def test_there_are_benchmarks() -> None:
    assert {p.name for p in BENCHMARKS} >= set(FIGURES)


@pytest.mark.parametrize(
    "script",
    [
        pytest.param(p, id=p.name, marks=[pytest.mark.e2e] if p.name in SLOW else [])
        for p in BENCHMARKS
    ],
)
def test_benchmark_smoke(script: Path, tmp_path: Path) -> None:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(script), "--smoke"],
        cwd=tmp_path,  # the benchmarks find the repository from their own path
        env={**env(), "JAX_PLATFORMS": "cpu"},
        capture_output=True,
        text=True,
        timeout=SMOKE_TIMEOUT_S,
    )
    seconds = time.perf_counter() - t0
    assert proc.returncode == 0, (
        f"{script.name} --smoke exited {proc.returncode} after {seconds:.0f} s\n"
        f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
    )
    for pattern in FIGURES.get(script.name, [r"\d"]):
        assert re.search(pattern, proc.stdout), (
            f"{script.name} --smoke printed no match for {pattern!r}:\n{proc.stdout[-4000:]}"
        )
    assert not list(tmp_path.iterdir()), f"{script.name} left files in its working directory"
