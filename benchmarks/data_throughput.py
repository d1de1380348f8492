"""Traces/s and peak memory of the data stages against an orjson pass-through of the same input.

    .venv/bin/python benchmarks/data_throughput.py [--n 300000] [--plain] [--keep DIR] [--smoke]

Writes `--n` tunix-rt-shaped traces (the records of fixtures/tunix-rt/dev-reasoning-v2.jsonl,
each with its own prompt; about 470 bytes a line) to a scratch pipeline with this repository's
conf/, composes params.yaml there, then runs ingest, dataset and export, each as a whole process
(`python -m tunixrt.stages STAGE`, the command dvc.yaml runs), and an orjson
read-parse-dump-write pass over the same input files (also its own process). It prints, per
stage: seconds, traces/s (input traces of the stage / wall time), the ratio to the
pass-through's traces/s, and the peak RSS of the process; then what the dataset stage selected
(its manifest's counts) next to what was planted. Targets (docs/performance.md): ratio >= 0.33
for each stage, peak RSS <= 300 MB at 1,000,000 traces.

By default every selection step of the dataset stage has work to do. The input is a mixture
(`source=mixture`) of two dumps and the synthetic generator:
- `dump_a` (inputs/dump_a.jsonl, adapter reasoning_trace) and `dump_b` (inputs/dump_b.jsonl,
  adapter auto) hold 60% and 40% of the fixture-shaped records (a long prompt gets its case
  number in the middle, so the copies of one fixture prompt share no 13-word run);
- `arithmetic`, the synthetic generator, makes 3% of the `--n` traces;
- 5% of the dump records are near-duplicates of the record before them (the prompt's
  punctuation changed, the last step reworded: the same words and numbers but two) and 1% are
  second samples of an earlier prompt (the same prompt, the last step reworded), both written to
  the other dump;
- a few hundred records ask an eval item's question after a new lead-in ("Warm-up 12: What is
  15 + 27?"); the eval set is fixtures/tunix-rt/eval_v1.jsonl, copied to inputs/ (`eval.sets`);
- `dataset.mix` weighs the sources 0.55 / 0.42 / 0.03, so the `shrink` policy leaves some of
  dump_a's training records out.
The dataset config is otherwise the default: prompt duplicates, near-duplicate texts, `drop`
decontamination (13-grams) and the split.

`--plain`: the setup of the figures before these selection steps existed: one file of unique
records (inputs/traces.jsonl, `source=files`), near-duplicates and decontamination off.
`--smoke` (the test suite's check that this script still runs): 1,000 traces.
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
from typing import Any

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "fixtures" / "tunix-rt" / "dev-reasoning-v2.jsonl"
EVAL_SET = REPO / "fixtures" / "tunix-rt" / "eval_v1.jsonl"
EVAL_COPY = "inputs/eval_v1.jsonl"
PASS_THROUGH = """
import sys, orjson
with open(sys.argv[-1], "wb") as dst:
    for path in sys.argv[1:-1]:
        with open(path, "rb") as src:
            for line in src:
                dst.write(orjson.dumps(orjson.loads(line)) + b"\\n")
"""
SYNTHETIC_SHARE = 0.03  # of --n, made by the ingest stage's generator
NEAR_DUP_EVERY = 20  # one dump record in 20 is a near-duplicate of the one before
PROMPT_DUP_EVERY = 100  # one in 100 is a second sample of an earlier prompt
MIX = {"dump_a": 0.55, "dump_b": 0.42, "arithmetic": 0.03}


def fixture_records() -> list[dict[str, Any]]:
    import orjson

    return [orjson.loads(line) for line in FIXTURE.read_bytes().splitlines() if line.strip()]


def original(base: list[dict[str, Any]], i: int, tag: str = "(case {})") -> dict[str, Any]:
    """Fixture record `i % len(base)`, its prompt made unique with `i` (at its end)."""
    rec = dict(base[i % len(base)])
    rec["prompt"] = f"{rec['prompt']} {tag.format(i)}"
    rec["meta"] = {**rec["meta"], "index": i}
    return rec


def tagged(base: list[dict[str, Any]], i: int, tag: str = "(case {})") -> dict[str, Any]:
    """`original`, but a long prompt gets its tag in the middle: the fixture's records recur
    every 550 with another tag, and a tag at the end would leave the 13-word runs of a long
    prompt the same in every copy (so the training copies would match a test-split copy)."""
    from tunixrt.dataset.text import words

    rec = dict(base[i % len(base)])
    head, *rest = rec["prompt"].split(" ")
    if len(words(rec["prompt"])) < 12 or not rest:
        return original(base, i, tag)
    half = len(rest) // 2
    rec["prompt"] = " ".join([head, *rest[:half], tag.format(i), *rest[half:]])
    rec["meta"] = {**rec["meta"], "index": i}
    return rec


def write_traces(path: Path, n: int) -> int:
    """`--plain`: `n` fixture records, each prompt made unique with its index; returns the bytes
    written."""
    import orjson

    base = fixture_records()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        for i in range(n):
            fh.write(orjson.dumps(original(base, i)) + b"\n")
    return path.stat().st_size


def _reworded(rec: dict[str, Any], prompt: str, i: int) -> dict[str, Any]:
    """`rec` with `prompt` and its last step reworded (two words more, no new number)."""
    steps = [dict(s) for s in rec["steps"]]
    steps[-1]["content"] = steps[-1]["content"] + " as required"
    return {**rec, "prompt": prompt, "steps": steps, "meta": {**rec["meta"], "index": i}}


def _contaminated(item: dict[str, Any], k: int) -> dict[str, Any]:
    """A training-looking record whose prompt is an eval item's, after a new lead-in."""
    return {
        "trace_version": "1.0",
        "prompt": f"Warm-up {k}: {item['prompt']}",
        "final_answer": item["expected_answer"],
        "steps": [
            {"i": 0, "type": "setup", "content": "Read the question and work it out"},
            {"i": 1, "type": "answer", "content": f"The answer is {item['expected_answer']}"},
        ],
        "meta": {"dataset": "bench-warm-ups", "category": str(item.get("category")), "k": k},
    }


def write_mixture(inputs: Path, n: int) -> dict[str, Any]:
    """The two dumps (`n` less the synthetic share) and the eval set's copy; returns what was
    written and planted."""
    import orjson

    base = fixture_records()
    evals = [orjson.loads(line) for line in EVAL_SET.read_bytes().splitlines() if line.strip()]
    synthetic = max(20, round(SYNTHETIC_SHARE * n))
    dumps = n - synthetic
    contaminated = min(500, max(10, n // 1000))
    stride = max(1, dumps // contaminated)
    inputs.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(EVAL_SET, inputs / Path(EVAL_COPY).name)
    planted = {"near_duplicates": 0, "prompt_duplicates": 0, "contaminated": 0}
    lines = {"dump_a": 0, "dump_b": 0}
    with open(inputs / "dump_a.jsonl", "wb") as a, open(inputs / "dump_b.jsonl", "wb") as b:
        files = {"dump_a": a, "dump_b": b}
        last, last_i, last_in = None, 0, "dump_a"
        for i in range(dumps):
            other = "dump_b" if last_in == "dump_a" else "dump_a"
            if i % stride == stride // 2 and planted["contaminated"] < contaminated:
                k = planted["contaminated"]
                rec, dest = _contaminated(evals[k % len(evals)], k), other
                planted["contaminated"] += 1
            elif last is not None and i % NEAR_DUP_EVERY == NEAR_DUP_EVERY // 2:
                # prompt_key differs ("[case" for "(case"), words() and numbers() do not
                prompt = tagged(base, last_i, "[case {}]")["prompt"]
                rec, dest = _reworded(last, prompt, i), other
                planted["near_duplicates"] += 1
            elif last is not None and i % PROMPT_DUP_EVERY == PROMPT_DUP_EVERY // 2 + 5:
                rec, dest = _reworded(last, last["prompt"], i), other
                planted["prompt_duplicates"] += 1
            else:
                rec = last = tagged(base, i)
                last_i = i
                dest = last_in = "dump_a" if i % 5 < 3 else "dump_b"
            files[dest].write(orjson.dumps(rec) + b"\n")
            lines[dest] += 1
    return {
        "files": ["inputs/dump_a.jsonl", "inputs/dump_b.jsonl"],
        "lines": lines,
        "synthetic": synthetic,
        "planted": planted,
    }


def mixture_overrides(synthetic: int) -> list[str]:
    # a whole new mapping under a composed one: delete and re-add (`~`, `+`), or force (`++`)
    sources = (
        "{dump_a: {kind: files, paths: [inputs/dump_a.jsonl], adapter: reasoning_trace}, "
        "dump_b: {kind: files, paths: [inputs/dump_b.jsonl], adapter: auto}, "
        f"arithmetic: {{kind: synthetic, n: {synthetic}}}}}"
    )
    mix = ", ".join(f"{name}: {{weight: {w}}}" for name, w in MIX.items())
    return [
        "source=mixture",
        "~source.sources",
        f"+source.sources={sources}",
        f"++dataset.mix={{{mix}}}",
        f"eval.sets=[{EVAL_COPY}]",
        "dataset.limit=null",
    ]


PLAIN_OVERRIDES = [
    "source=files",
    "source.paths=[inputs/traces.jsonl]",
    "dataset.limit=null",
    f"eval.sets=[{EVAL_COPY}]",
    "dataset.near_duplicates.enabled=false",
    "dataset.decontaminate=off",
]


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


def selection_lines(report: dict[str, Any], manifest: dict[str, Any]) -> list[str]:
    """What ingest and the dataset stage did, from their report and manifest."""
    s = manifest["selection"]
    d = s["decontamination"]
    c = manifest["counts"]
    out = [
        f"ingest: read {report['read']:,}, accepted {report['accepted']:,}, "
        f"rejected {report['rejected']:,}, duplicates {report['duplicates']:,}",
        f"dataset: read {s['read']:,}, filtered {sum(s['filtered'].values()):,}, "
        f"duplicate_prompts {s['duplicate_prompts']:,}, "
        f"near_duplicate_texts {s['near_duplicate_texts']:,}, "
        f"in_test_by_source {s['in_test_by_source']:,}",
        f"decontamination ({d['action']}, {d['ngram']}-grams, {d['eval_items']:,} eval items "
        f"incl. the test split): matched {d['matched']:,}, by_eval_set "
        + ", ".join(f"{k} {v:,}" for k, v in d["by_eval_set"].items()),
        f"splits: train {c['train']:,}, val {c['val']:,}, test {c['test']:,}; "
        f"removed.jsonl {s['removed_file']['records']:,} records",
    ]
    if mixture := manifest.get("mixture"):
        parts = [
            f"{name} weight {m['weight']} share {m['share']:.3f} "
            f"({m['train']:,} of {m['available']:,}, left out {m['left_out']:,}, "
            f"repeated {m['repeated']:,})"
            for name, m in mixture["sources"].items()
        ]
        out.append(f"mixture ({mixture['policy']}): " + "; ".join(parts))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300_000, help="traces to write and ingest")
    ap.add_argument("--plain", action="store_true", help="one file, no near-dups/decontamination")
    ap.add_argument("--keep", type=Path, default=None, help="keep the scratch pipeline here")
    ap.add_argument("--smoke", action="store_true", help="seconds-long run of the same code")
    args = ap.parse_args()
    if args.smoke:
        args.n = 1000

    root = args.keep or Path(tempfile.mkdtemp(prefix="tunixrt-data-bench-"))
    try:
        shutil.copytree(REPO / "conf", root / "conf", dirs_exist_ok=True)
        if args.plain:
            files = ["inputs/traces.jsonl"]
            size = write_traces(root / files[0], args.n)
            shutil.copyfile(EVAL_SET, root / EVAL_COPY)
            overrides, plan = PLAIN_OVERRIDES, None
            passed = args.n
        else:
            plan = write_mixture(root / "inputs", args.n)
            files = plan["files"]
            size = sum((root / f).stat().st_size for f in files)
            overrides = mixture_overrides(plan["synthetic"])
            passed = sum(plan["lines"].values())
        tunixrt = str(Path(sys.executable).with_name("tunixrt"))
        proc = subprocess.run([tunixrt, "compose", *overrides], cwd=root, capture_output=True)
        if proc.returncode:
            sys.exit(f"tunixrt compose {overrides} failed:\n{proc.stderr.decode()}")

        py = sys.executable
        rows = []
        secs, rss = timed([py, "-c", PASS_THROUGH, *files, "copy.jsonl"], root)
        base_rate = passed / secs
        rows.append(("orjson pass-through", passed, secs, rss))
        (root / "copy.jsonl").unlink()
        counts = {"ingest": args.n}
        for stage in ("ingest", "dataset", "export"):
            secs, rss = timed([py, "-m", "tunixrt.stages", stage], root)
            rows.append((stage, counts.get(stage), secs, rss))
            if stage == "ingest":
                report = json.loads((root / "data/traces/report.json").read_text())
                counts["dataset"] = report["accepted"]
            if stage == "dataset":
                manifest = json.loads((root / "data/dataset/manifest.json").read_text())
                counts["export"] = manifest["counts"]["total"]
                rows[-1] = (stage, counts["dataset"], secs, rss)
        rows[-1] = ("export", counts["export"], rows[-1][2], rows[-1][3])
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)

    setup = (
        "plain: one file, near-duplicates and decontamination off"
        if args.plain
        else (
            "mixture: "
            + ", ".join(f"{k} {v:,}" for k, v in plan["lines"].items())  # type: ignore[index]
            + f", arithmetic (synthetic) {plan['synthetic']:,}"  # type: ignore[index]
        )
    )
    print(f"{args.n} traces ({setup}), {size / passed:.0f} bytes a line on average, "
          f"{os.cpu_count()} cores")  # fmt: skip
    if plan is not None:
        p = plan["planted"]
        print(
            f"planted: {p['near_duplicates']:,} near-duplicates, {p['prompt_duplicates']:,} "
            f"second samples of a prompt, {p['contaminated']:,} eval prompts with a lead-in"
        )
    print(f"{'stage':<22}{'traces':>10}{'seconds':>10}{'traces/s':>12}{'ratio':>8}{'peak MB':>9}")
    for name, n, secs, rss in rows:
        rate = n / secs
        print(f"{name:<22}{n:>10}{secs:>10.1f}{rate:>12,.0f}{rate / base_rate:>8.2f}{rss:>9.0f}")
    for line in selection_lines(report, manifest):
        print(line)


if __name__ == "__main__":
    main()
