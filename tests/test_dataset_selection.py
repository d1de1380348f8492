"""Dataset selection as trace dumps need it: weighted mixtures of sources, decontamination of the
training split against the eval sets, near-duplicate texts."""

import csv
import io
import random
import re
from pathlib import Path

import orjson
import pytest
import yaml
from conftest import fixtures_in, iter_jsonl, make_pipeline, sh, tunixrt

from tunixrt.dataset.config import DatasetConfig
from tunixrt.dataset.stage import MANIFEST, SPLITS, build_dataset, split_path
from tunixrt.ingest.config import parse_source
from tunixrt.ingest.stage import ingest
from tunixrt.paths import REMOVED, TRACES
from tunixrt.validation import validate_config

NAMES = ["Ava", "Ben", "Chloe", "Dev", "Elif", "Femi", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lena"]
THINGS = ["apples", "marbles", "stickers", "pencils", "cookies", "stamps", "shells", "coins"]
PLACES = ["market", "school fair", "library sale", "garden show", "harbour stall", "bakery"]


def cfg(**kw) -> DatasetConfig:
    return validate_config(DatasetConfig, {"name": "t", **kw}, "dataset")


def word_problem(rng: random.Random) -> tuple[str, list[str], str]:
    """A GSM8K-style problem of about 45 words, with a 3-digit number every few words, so two
    problems share no run of 13 words, its worked steps and its answer."""
    name, friend = rng.sample(NAMES, 2)
    thing = rng.choice(THINGS)
    a, b, c, d, e, k, g, t, u, v = (rng.randint(100, 999) for _ in range(10))
    prompt = (
        f"{name} had {a} {thing} on day {d} and bought {b} bags of {c} {thing} each at {t} "
        f"o'clock. {name} gave {e} {thing} to {friend} at {u} o'clock and kept {k} spare bags "
        f"for {g} days. How many {thing} did {name} have at {v} o'clock?"
    )
    total = a + b * c
    steps = [f"{b} * {c} = {b * c} {thing} in the bags", f"{a} + {b * c} = {total} after buying"]
    steps.append(f"{total} - {e} = {total - e}")
    return prompt, steps, str(total - e)


def gsm8k_line(prompt: str, steps: list[str], answer: str, rid: str) -> bytes:
    body = "\n".join(steps) + f"\n#### {answer}"
    return orjson.dumps({"id": rid, "question": prompt, "answer": body}) + b"\n"


def write_gsm8k(path: Path, n: int, seed: int) -> None:
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(gsm8k_line(*word_problem(rng), f"gsm-{seed}-{i}") for i in range(n)))


def mixture_source(root: Path, synthetic_n: int = 300) -> dict:
    dev = fixtures_in(root, "dev-reasoning-v2.jsonl")
    write_gsm8k(root / "inputs" / "gsm8k.jsonl", 450, seed=1)
    return {
        "kind": "mixture",
        "sources": {  # the names of conf/source/mixture.yaml, and one more
            "dev_reasoning": {"kind": "files", "paths": dev, "adapter": "reasoning_trace"},
            "gsm8k": {"kind": "files", "paths": ["inputs/gsm8k.jsonl"], "adapter": "gsm8k"},
            "arithmetic": {"kind": "synthetic", "n": synthetic_n},
        },
    }


MIX = {"dev_reasoning": {"weight": 0.5}, "gsm8k": {"weight": 0.3}, "arithmetic": {"weight": 0.2}}


def train_shares(root: Path) -> dict[str, float]:
    rows = list(iter_jsonl(root / split_path("train")))
    return {m: sum(r["mix"] == m for r in rows) / len(rows) for m in MIX}


def test_mixture_shares_follow_the_weights_and_a_rerun_is_byte_identical(tmp_path: Path) -> None:
    report = ingest(parse_source(mixture_source(tmp_path)), tmp_path)
    assert set(report["by_mixture_source"]) == set(MIX)
    assert {t["mix"] for t in iter_jsonl(tmp_path / TRACES)} == set(MIX)
    m = build_dataset(cfg(mix=MIX), tmp_path)
    shares = train_shares(tmp_path)
    assert all(abs(shares[k] - MIX[k]["weight"]) <= 0.01 for k in MIX), shares
    mixture = m["mixture"]["sources"]
    assert {k: v["train"] for k, v in mixture.items()} == {
        k: round(shares[k] * m["counts"]["train"]) for k in MIX
    }
    # shrink: the scarcest source gives all it has, the others are cut, nothing is repeated
    assert sum(v["left_out"] == 0 for v in mixture.values()) >= 1
    assert all(v["repeated"] == 0 and len(v["train_sha256"]) == 64 for v in mixture.values())
    # val and test keep every source's records; no prompt is in two splits
    first = {s: (tmp_path / split_path(s)).read_bytes() for s in SPLITS}
    prompts = {s: {r["prompt"] for r in iter_jsonl(tmp_path / split_path(s))} for s in SPLITS}
    assert not (prompts["train"] & prompts["test"]) and not (prompts["train"] & prompts["val"])
    again = build_dataset(cfg(mix=MIX), tmp_path)
    assert again == m
    assert first == {s: (tmp_path / split_path(s)).read_bytes() for s in SPLITS}


def test_repeat_keeps_the_size_and_counts_the_repeats(tmp_path: Path) -> None:
    ingest(parse_source(mixture_source(tmp_path, synthetic_n=60)), tmp_path)
    plain = build_dataset(cfg(), tmp_path)
    weights = {"dev_reasoning": {"weight": 0.4}, "gsm8k": {"weight": 0.3}}
    weights["arithmetic"] = {"weight": 0.3}
    m = build_dataset(cfg(mix=weights, mix_policy="repeat"), tmp_path)
    src = m["mixture"]["sources"]
    assert m["counts"]["train"] == sum(v["train"] for v in src.values())
    assert abs(m["counts"]["train"] - plain["counts"]["train"]) <= len(weights)
    assert (
        src["arithmetic"]["repeated"]
        == src["arithmetic"]["train"] - src["arithmetic"]["available"]
        > 0
    )
    ids = [r["id"] for r in iter_jsonl(tmp_path / split_path("train")) if r["mix"] == "arithmetic"]
    assert (
        len(ids) == src["arithmetic"]["train"] and len(set(ids)) == src["arithmetic"]["available"]
    )
    with pytest.raises(Exception, match=r"dataset.mix: no weight for source\(s\) gsm8k"):
        build_dataset(
            cfg(mix={"dev_reasoning": {"weight": 1}, "arithmetic": {"weight": 1}}), tmp_path
        )


def rewrite(prompt: str, rng: random.Random) -> str:
    """A copy with a new lead-in, other case and punctuation, and one clause reworded."""
    text = re.sub(r"and bought (\d+) bags of", r"and then purchased \1 sacks holding", prompt)
    text = text.replace(". ", "; ").replace(", ", " - ").replace("?", ".")
    text = text.upper() if rng.random() < 0.5 else text.lower()
    return "Here is a puzzle for you to work through carefully: " + text


def test_decontamination_drops_rewritten_eval_problems_and_keeps_phrase_sharers(
    tmp_path: Path,
) -> None:
    rng = random.Random(7)
    problems = [word_problem(rng) for _ in range(20)]
    eval_set = tmp_path / "inputs" / "word_problems_eval.jsonl"
    eval_set.parent.mkdir(parents=True)
    eval_set.write_bytes(
        b"".join(
            orjson.dumps({"id": f"wp-{i}", "prompt": p, "expected_answer": a}) + b"\n"
            for i, (p, _, a) in enumerate(problems)
        )
    )
    dump = tmp_path / "inputs" / "dump.jsonl"
    lines = [gsm8k_line(rewrite(p, rng), s, a, f"leak-{i}") for i, (p, s, a) in enumerate(problems)]
    for i, (p, s, a) in enumerate(problems):  # a short phrase of a problem, nothing more
        phrase = re.search(r"How many \w+ did \w+ have", p).group(0)
        lines.append(gsm8k_line(f"{phrase} if a box holds {i + 3} of them?", s, a, f"near-{i}"))
    for i in range(400):
        lines.append(gsm8k_line(*word_problem(rng), f"clean-{i}"))
    dump.write_bytes(b"".join(lines))
    ingest(
        parse_source({"kind": "files", "paths": ["inputs/dump.jsonl"], "adapter": "gsm8k"}),
        tmp_path,
    )
    sets = ["inputs/word_problems_eval.jsonl"]
    all_train = cfg(split={"val": 0.0, "test": 0.0})
    m = build_dataset(all_train, tmp_path, sets)
    d = m["selection"]["decontamination"]
    assert d["matched"] == 20 and d["by_eval_set"] == {sets[0]: 20}, d
    train_ids = {r["id"] for r in iter_jsonl(tmp_path / split_path("train"))}
    assert not any(i.startswith("leak-") for i in train_ids)
    assert {f"near-{i}" for i in range(20)} <= train_ids
    removed = list(iter_jsonl(tmp_path / REMOVED))
    assert sorted(r["trace"]["id"] for r in removed) == sorted(f"leak-{i}" for i in range(20))
    for row in removed:
        (match,) = row["matches"]
        assert match["eval_set"] == sets[0] and row["trace"]["id"][5:] == match["eval_id"][3:]
        assert len(match["shared_words"].split()) == 13 and row["action"] == "dropped"
    # report: counted and listed, nothing dropped; off: not even looked at
    m = build_dataset(cfg(split={"val": 0.0, "test": 0.0}, decontaminate="report"), tmp_path, sets)
    assert m["selection"]["decontamination"]["matched"] == 20 and m["counts"]["train"] == 440
    assert {r["action"] for r in iter_jsonl(tmp_path / REMOVED)} == {"reported"}
    m = build_dataset(cfg(split={"val": 0.0, "test": 0.0}, decontaminate="off"), tmp_path, sets)
    assert m["selection"]["decontamination"]["matched"] == 0 and m["counts"]["train"] == 440


def test_the_test_split_is_checked_against_train_too(tmp_path: Path) -> None:
    rng = random.Random(3)
    problems = [word_problem(rng) for _ in range(300)]
    lines = [gsm8k_line(p, s, a, f"p{i}") for i, (p, s, a) in enumerate(problems)]
    (tmp_path / "inputs").mkdir()
    (tmp_path / "inputs" / "a.jsonl").write_bytes(b"".join(lines))
    source = {"kind": "files", "paths": ["inputs/a.jsonl"], "adapter": "gsm8k"}
    ingest(parse_source(source), tmp_path)
    clean = build_dataset(cfg(), tmp_path)
    test = list(iter_jsonl(tmp_path / split_path("test")))
    assert clean["selection"]["decontamination"]["matched"] == 0 and test
    # the same problems again, reworded: they hash to other splits, and the test copies leak
    lines += [gsm8k_line(rewrite(p, rng), s, a, f"r{i}") for i, (p, s, a) in enumerate(problems)]
    (tmp_path / "inputs" / "a.jsonl").write_bytes(b"".join(lines))
    ingest(parse_source(source), tmp_path)
    # (near-duplicate removal would take many of the copies first: this is decontamination's)
    m = build_dataset(cfg(near_duplicates={"enabled": False}), tmp_path)
    d = m["selection"]["decontamination"]
    assert d["by_eval_set"] == {"test split": d["matched"]} and d["matched"] >= len(test)
    test_prompts = {r["prompt"] for r in iter_jsonl(tmp_path / split_path("test"))}
    for row in iter_jsonl(tmp_path / REMOVED):
        assert row["matches"][0]["eval_prompt"][:100] in {p[:100] for p in test_prompts}


def reworded(steps: list[str]) -> list[str]:
    """One step said another way (the same numbers)."""
    return [steps[0], steps[1].replace("after buying", "once the bags were bought"), steps[2]]


def test_near_duplicate_clusters_keep_one_record_each_the_same_every_run(tmp_path: Path) -> None:
    rng = random.Random(11)
    traces, clusters = [], []
    for c in range(12):
        prompt, steps, answer = word_problem(rng)
        members = []
        for v in range(4):  # the same worked solution, one step reworded or the prompt retouched
            p = prompt if v < 2 else prompt.replace("o'clock. ", "o'clock; ", 1)
            p = p if v != 3 else p.replace(" gave ", " handed ")
            s = reworded(steps) if v in (1, 2) else steps
            members.append(f"c{c:02d}-{rng.randrange(10**6):06d}")
            traces.append(gsm8k_line(p, s, answer, members[-1]))
        clusters.append(members)
    singles = []
    for i in range(150):  # distinct problems, and some that differ from a cluster in a number
        prompt, steps, answer = word_problem(rng)
        singles.append(f"s{i:03d}")
        traces.append(gsm8k_line(prompt, steps, answer, singles[-1]))
    prompt, steps, answer = word_problem(random.Random(11))  # cluster 0's problem
    other = re.sub(r"on day (\d+)", lambda m: f"on day {int(m.group(1)) + 1}", prompt)
    traces.append(gsm8k_line(other, steps, answer, "numbers-differ"))
    rng.shuffle(traces)
    (tmp_path / "inputs").mkdir()
    (tmp_path / "inputs" / "d.jsonl").write_bytes(b"".join(traces))
    ingest(
        parse_source({"kind": "files", "paths": ["inputs/d.jsonl"], "adapter": "gsm8k"}), tmp_path
    )
    kept_runs = []
    for _ in range(2):
        m = build_dataset(cfg(), tmp_path)
        assert m["selection"]["near_duplicate_texts"] == 12 * 2
        assert m["selection"]["duplicate_prompts"] == 12  # v0 and v1 share a prompt
        ids = {r["id"] for s in SPLITS for r in iter_jsonl(tmp_path / split_path(s))}
        kept = [sorted(set(c) & ids) for c in clusters]
        assert all(len(k) == 1 for k in kept), kept
        assert [k[0] for k in kept] == [min(c) for c in clusters]  # the first by id
        assert set(singles) | {"numbers-differ"} <= ids
        kept_runs.append((kept, (tmp_path / MANIFEST).read_bytes()))
        rows = list(iter_jsonl(tmp_path / REMOVED))
        assert {r["reason"] for r in rows} == {"near_duplicate"} and len(rows) == 24
        assert all(r["kept"] in ids and r["similarity"] >= 0.7 for r in rows)
    assert kept_runs[0] == kept_runs[1]
    off = build_dataset(cfg(near_duplicates={"enabled": False}, decontaminate="off"), tmp_path)
    assert off["selection"]["near_duplicate_texts"] == 0 and off["counts"]["total"] == 12 * 3 + 151


def test_synthetic_outs_are_byte_identical_with_near_duplicates_on_or_off(tmp_path: Path) -> None:
    """The default data: problems that differ only in their numbers never collapse."""
    defaults = yaml.safe_load((Path(__file__).parents[1] / "params.yaml").read_text())
    ingest(parse_source(defaults["source"]), tmp_path)
    outs = []
    for enabled in (True, False):
        conf = {**defaults["dataset"], "near_duplicates": {"enabled": enabled}}
        m = build_dataset(validate_config(DatasetConfig, conf, "dataset"), tmp_path)
        assert m["selection"]["near_duplicate_texts"] == 0
        outs.append([(tmp_path / split_path(s)).read_bytes() for s in SPLITS])
    assert outs[0] == outs[1]


@pytest.mark.e2e
def test_a_queued_sweep_of_one_weight_reruns_dataset_not_ingest(tmp_path: Path) -> None:
    root = make_pipeline(tmp_path / "pipe", git=False)
    conf = root / "conf" / "config.yaml"
    lines = conf.read_text().splitlines(keepends=True)
    at = next(i for i, ln in enumerate(lines) if ln.startswith("  - experiment:")) + 1
    text = "".join([*lines[:at], "  - override /source: mixture\n", *lines[at:]])
    extra = {"source": {"sources": mixture_source(root)["sources"]}, "dataset": {"mix": MIX}}
    conf.write_text(text + yaml.safe_dump(extra))
    tunixrt("compose", cwd=root)
    sh("git", "init", "-q", "-b", "main", cwd=root)
    sh("dvc", "repro", "dataset", cwd=root)
    sh("git", "add", "-A", cwd=root)
    sh("git", "commit", "-q", "-m", "mixture", cwd=root)
    sh(
        "dvc",
        "exp",
        "run",
        "dataset",
        "--queue",
        "-n",
        "w",
        "-S",
        "dataset.mix.gsm8k.weight=0.1,0.6",
        cwd=root,
    )
    ran = sh("dvc", "exp", "run", "--run-all", cwd=root)
    out = ran.stdout + ran.stderr
    assert out.count("Running stage 'dataset'") == 2 and "Running stage 'ingest'" not in out, out
    rows = list(csv.DictReader(io.StringIO(sh("dvc", "exp", "show", "--csv", cwd=root).stdout)))
    done = [r for r in rows if r["State"] == "Success"]
    assert sorted(float(r["dataset.mix.gsm8k.weight"]) for r in done) == [0.1, 0.6], rows
