"""Traces/s and peak memory of the data stages against an orjson pass-through of the same file.

    .venv/bin/python benchmarks/data_throughput.py [--n 300000] [--keep DIR] [--smoke]

Writes `--n` tunix-rt-shaped traces (the records of fixtures/tunix-rt/dev-reasoning-v2.jsonl,
each with its own prompt; about 470 bytes a line) to inputs/traces.jsonl of a scratch pipeline
with this repository's conf/, composes `source=files` over it, then runs ingest, dataset and
export, each as a whole process (`python -m tunixrt.stages STAGE`, the command dvc.yaml runs), and
an orjson read-parse-dump-write pass over the same input (also its own process). It prints, per
stage: seconds, traces/s (input traces of the stage / wall time), the ratio to the pass-through's
traces/s, and the peak RSS of the process. Targets (docs/performance.md): ratio >= 0.33 for
each stage, peak RSS <= 300 MB at 1,000,000 traces. `--smoke` (the test suite's check that this
script still runs): 1,000 traces.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "fixtures" / "tunix-rt" / "dev-reasoning-v2.jsonl"
PASS_THROUGH = """
import sys, orjson
with open(sys.argv[1], "rb") as src, open(sys.argv[2], "wb") as dst:
    for line in src:
        dst.write(orjson.dumps(orjson.loads(line)) + b"\\n")
"""


def write_traces(path: Path, n: int) -> int:
    """`n` fixture records, each prompt made unique with its index; returns the bytes written."""
    import orjson

    base = [orjson.loads(line) for line in FIXTURE.read_bytes().splitlines() if line.strip()]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        for i in range(n):
            rec = dict(base[i % len(base)])
            rec["prompt"] = f"{rec['prompt']} (case {i})"
            rec["meta"] = {**rec["meta"], "index": i}
            fh.write(orjson.dumps(rec) + b"\n")
    return path.stat().st_size


def timed(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{err}")
    return seconds, usage.ru_maxrss / 1024  # Linux: kilobytes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300_000, help="traces to write and ingest")
    ap.add_argument("--keep", type=Path, default=None, help="keep the scratch pipeline here")
    ap.add_argument("--smoke", action="store_true", help="seconds-long run of the same code")
    args = ap.parse_args()
    if args.smoke:
        args.n = 1000

    tmp = Path(tempfile.mkdtemp(prefix="tunixrt-data-bench-"))
    root = args.keep or tmp
    try:
        shutil.copytree(REPO / "conf", root / "conf", dirs_exist_ok=True)
        size = write_traces(root / "inputs" / "traces.jsonl", args.n)
        tunixrt = str(Path(sys.executable).with_name("tunixrt"))
        overrides = ["source=files", "source.paths=[inputs/traces.jsonl]", "dataset.limit=null"]
        subprocess.run([tunixrt, "compose", *overrides], cwd=root, check=True, capture_output=True)

        py = sys.executable
        rows = []
        secs, rss = timed([py, "-c", PASS_THROUGH, "inputs/traces.jsonl", "copy.jsonl"], root)
        base_rate = args.n / secs
        rows.append(("orjson pass-through", args.n, secs, rss))
        counts = {"ingest": args.n}
        for stage in ("ingest", "dataset", "export"):
            secs, rss = timed([py, "-m", "tunixrt.stages", stage], root)
            rows.append((stage, counts.get(stage), secs, rss))
            if stage == "ingest":
                counts["dataset"] = json.loads((root / "data/traces/report.json").read_text())[
                    "accepted"
                ]
            if stage == "dataset":
                m = json.loads((root / "data/dataset/manifest.json").read_text())
                counts["export"] = m["counts"]["total"]
                rows[-1] = (stage, counts["dataset"], secs, rss)
        rows[-1] = ("export", counts["export"], rows[-1][2], rows[-1][3])
    finally:
        if args.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)

    print(f"{args.n} traces, {size / args.n:.0f} bytes each on average, {os.cpu_count()} cores")
    print(f"{'stage':<22}{'traces':>10}{'seconds':>10}{'traces/s':>12}{'ratio':>8}{'peak MB':>9}")
    for name, n, secs, rss in rows:
        rate = n / secs
        print(f"{name:<22}{n:>10}{secs:>10.1f}{rate:>12,.0f}{rate / base_rate:>8.2f}{rss:>9.0f}")


if __name__ == "__main__":
    main()
