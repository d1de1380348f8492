"""`tunixrt.train.run.train` end to end on a small model: outputs, determinism, resume after
SIGKILL, LoRA, a 2x2 mesh on 4 simulated CPU devices, and clear errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sample_data import make_manifest, small_splits

from tunixrt.errors import ConfigError
from tunixrt.jsonio import read_json
from tunixrt.manifest.schema import (
    LoraSection,
    ModelSection,
    RunManifest,
    RuntimeSection,
    TrainingSection,
)

REPO = Path(__file__).resolve().parents[1]
SMALL = {"num_layers": 2, "embed_dim": 64, "hidden_dim": 128, "num_heads": 4, "head_dim": 16}
MODEL = ModelSection(model_id="tiny", family="gemma3", preset="tiny", config=SMALL)
CHILD = """
import json, sys
from pathlib import Path
from tunixrt.manifest.schema import RunManifest
from tunixrt.train.run import train
manifest = RunManifest.model_validate_json(Path(sys.argv[1]).read_text())
root = Path(sys.argv[2])
train(manifest, root)
if len(sys.argv) > 3:
    import jax
    from tunixrt.evaluate.generate import load_model
    model, _, mesh = load_model(manifest, root)
    emb = model.embedder.input_embedding.value
    print("RESULT " + json.dumps({"devices": jax.device_count(), "mesh": dict(mesh.shape),
          "embedding_spec": [str(a) for a in emb.sharding.spec],
          "shards": len(emb.addressable_shards)}))
"""


def training(**kw: object) -> TrainingSection:
    base = dict(
        learning_rate=3e-3,
        batch_size=8,
        max_seq_length=160,
        max_steps=12,
        warmup_ratio=0.1,
        checkpoint_every_steps=4,
        keep_checkpoints=2,
    )
    base.update(kw)
    return TrainingSection(**base)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    return small_splits(tmp_path_factory.mktemp("data"))


def fresh_root(base: Path, data: tuple[Path, dict], name: str) -> Path:
    """A run folder holding a copy of the export files (paths in the manifest are relative)."""
    src, _ = data
    root = base / name
    (root / "data").mkdir(parents=True)
    shutil.copytree(src / "data" / "export", root / "data" / "export")  # a link out is refused
    return root


def run_child(manifest: RunManifest, root: Path, *extra: str) -> subprocess.CompletedProcess:
    path = root / f"manifest-{time.monotonic_ns()}.json"
    path.write_text(manifest.model_dump_json())
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(root), *extra],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_train_writes_metrics_live_plots_checkpoints_and_learns(data_root, tmp_path) -> None:
    from tunixrt.train.run import train

    root = fresh_root(tmp_path, data_root, "a")
    manifest = make_manifest(
        data_root[1], model=MODEL, training=training(learning_rate=1e-2, eval_every_steps=6)
    )
    metrics = train(manifest, root)
    out = root / "runs/train"
    assert read_json(out / "metrics.json") == metrics
    for key in ("loss_first", "loss_last", "steps", "tokens", "padding_fraction", "truncated",
                "dropped", "examples", "epochs"):  # fmt: skip
        assert key in metrics
    assert metrics["steps"] == 12 and metrics["examples"] == 200
    assert metrics["loss_last"] < 0.75 * metrics["loss_first"]
    assert 0 < metrics["padding_fraction"] < 1
    perf = read_json(out / "perf.json")
    assert perf["tokens_per_s"] > 0 and perf["resumed_from_step"] == 0
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["12", "8"]
    loss_tsv = (out / "live/plots/metrics/train/loss.tsv").read_text().splitlines()
    assert loss_tsv[0] == "step\tloss" and len(loss_tsv) == 13
    assert float(loss_tsv[1].split("\t")[1]) == metrics["loss_first"]
    for name in ("learning_rate", "grad_norm", "padding_fraction", "tokens"):
        assert (out / f"live/plots/metrics/train/{name}.tsv").is_file()
    assert (out / "live/plots/metrics/perf/tokens_per_s.tsv").is_file()
    eval_tsv = (out / "live/plots/metrics/eval/loss.tsv").read_text().splitlines()
    assert [r.split("\t")[0] for r in eval_tsv] == ["step", "0", "6", "12"]
    assert metrics["eval_loss_last"] < metrics["eval_loss_first"]
    assert not (out / "live/dvc.yaml").exists()

    # a rerun finds the finished run and writes the same metrics
    before = (out / "metrics.json").read_bytes()
    assert train(manifest, root) == metrics
    assert (out / "metrics.json").read_bytes() == before
    assert read_json(out / "perf.json")["resumed_from_step"] == 12
    assert (out / "live/plots/metrics/train/loss.tsv").read_text().splitlines() == loss_tsv
    assert (out / "live/plots/metrics/eval/loss.tsv").read_text().splitlines() == eval_tsv

    # checkpoints of another configuration are not resumed from
    other = make_manifest(data_root[1], model=MODEL, training=training(learning_rate=5e-3))
    assert train(other, root)["loss_first"] == metrics["loss_first"]
    assert read_json(out / "perf.json")["resumed_from_step"] == 0


def test_two_clean_runs_are_identical_and_resume_after_sigkill_matches(data_root, tmp_path):
    manifest = make_manifest(
        data_root[1], model=MODEL, training=training(max_steps=60, checkpoint_every_steps=10)
    )
    roots = [fresh_root(tmp_path, data_root, n) for n in ("one", "two", "killed")]
    for root in roots[:2]:
        proc = run_child(manifest, root)
        assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = (r / "runs/train" for r in roots[:2])
    assert (a / "metrics.json").read_bytes() == (b / "metrics.json").read_bytes()
    _assert_same_checkpoints(a / "checkpoints", b / "checkpoints")

    killed = roots[2]
    path = killed / "manifest.json"
    path.write_text(manifest.model_dump_json())
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(killed)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ckpt = killed / "runs/train/checkpoints"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        steps = [int(p.name) for p in ckpt.glob("*") if p.name.isdigit()] if ckpt.is_dir() else []
        if any(20 <= s < 60 for s in steps):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    assert proc.wait(timeout=60) == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (killed / "runs/train/metrics.json").exists()
    proc2 = run_child(manifest, killed)
    assert proc2.returncode == 0, proc2.stderr[-3000:]
    assert "resuming from checkpoint step" in proc2.stderr
    resumed_from = read_json(killed / "runs/train/perf.json")["resumed_from_step"]
    assert 20 <= resumed_from < 60
    m_resumed = read_json(killed / "runs/train/metrics.json")
    m_clean = read_json(a / "metrics.json")
    assert abs(m_resumed["loss_last"] - m_clean["loss_last"]) <= 1e-4 * m_clean["loss_last"]
    assert m_resumed == m_clean  # the whole record, loss curve ends and counts, comes out equal


def _assert_same_checkpoints(x: Path, y: Path) -> None:
    """Equal checkpoints, file by file where orbax writes deterministically, by value elsewhere.

    What differs between two identical runs: `_CHECKPOINT_METADATA` (orbax's init/commit
    timestamps, and tunixrt's wall-clock tokens/s), `commit_success.txt` (it names the absolute
    path) and the OCDBT data files (`d/<random name>`, grouped differently each time) with the
    `manifest.ocdbt` files indexing them.
    """
    import orbax.checkpoint as ocp

    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}

    fx, fy = files(x), files(y)
    ocdbt = {f for f in fx | fy if "/d/" in f or f.endswith("manifest.ocdbt")}
    steady = sorted(set(fx) - ocdbt)
    assert steady == sorted(set(fy) - ocdbt) and any(f.endswith("_sharding") for f in steady)
    for f in steady:
        if f.endswith("_CHECKPOINT_METADATA"):
            ja, jb = json.loads(fx[f]), json.loads(fy[f])
            for j in (ja, jb):
                j.pop("init_timestamp_nsecs"), j.pop("commit_timestamp_nsecs")
                j["custom_metadata"].pop("tokens_per_s")
            assert ja == jb, f
        elif f.endswith("commit_success.txt"):
            assert fx[f].replace(bytes(x), b"") == fy[f].replace(bytes(y), b""), f
        else:
            assert fx[f] == fy[f], f
    steps = sorted({f.split("/")[0] for f in steady})
    assert steps == ["50", "60"]
    ckptr = ocp.PyTreeCheckpointer()
    for step in steps:
        for item in ("model_params", "optimizer_state"):
            ta, tb = (ckptr.restore((d / step / item).resolve()) for d in (x, y))
            la, lb = jax_leaves(ta), jax_leaves(tb)
            assert len(la) == len(lb) > 0
            assert all(np.array_equal(u, v) for u, v in zip(la, lb, strict=True))


def jax_leaves(tree: object) -> list[np.ndarray]:
    import jax

    return [np.asarray(v) for v in jax.tree.leaves(tree)]


def test_lora_changes_only_the_adapters(data_root, tmp_path) -> None:
    from flax import nnx

    from tunixrt.evaluate.generate import load_model
    from tunixrt.train.run import train

    root = fresh_root(tmp_path, data_root, "lora")
    lora = LoraSection(enabled=True, rank=4, alpha=8.0)
    manifest = make_manifest(
        data_root[1], model=MODEL, training=training(max_steps=6, lora=lora, learning_rate=1e-2)
    )
    metrics = train(manifest, root)
    assert metrics["lora"] and metrics["trainable_params"] < metrics["params"] / 5
    before, _, _ = load_model(manifest, root, trained=False)
    after, _, _ = load_model(manifest, root, trained=True)

    def leaves(model, kind) -> dict[str, np.ndarray]:
        state = nnx.state(model, kind)
        return {"/".join(map(str, k)): np.asarray(v.value) for k, v in nnx.to_flat_state(state)}

    base_b, base_a = leaves(before, nnx.Param), leaves(after, nnx.Param)
    lora_b, lora_a = leaves(before, nnx.LoRAParam), leaves(after, nnx.LoRAParam)
    assert lora_b and set(lora_b) == set(lora_a)
    base_keys = set(base_b) - set(lora_b)
    assert base_keys and all(np.array_equal(base_b[k], base_a[k]) for k in base_keys)
    changed = [k for k in lora_b if not np.array_equal(lora_b[k], lora_a[k])]
    assert len(changed) == len(lora_b)
    # the checkpoint holds the adapters only
    saved = root / "runs/train/checkpoints/6/model_params"
    assert sum(p.stat().st_size for p in saved.rglob("*") if p.is_file()) < 200_000


def test_train_on_a_2x2_mesh_of_4_simulated_cpu_devices(data_root, tmp_path) -> None:
    root = fresh_root(tmp_path, data_root, "mesh")
    manifest = make_manifest(
        data_root[1],
        model=MODEL,
        training=training(max_steps=4, checkpoint_every_steps=2),
        runtime=RuntimeSection(name="cpu4", mesh_shape=[2, 2], simulated_devices=4),
    )
    proc = run_child(manifest, root, "inspect")
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    assert result["devices"] == 4 and result["mesh"] == {"fsdp": 2, "tp": 2}
    assert result["embedding_spec"] == ["tp", "fsdp"] and result["shards"] == 4
    metrics = read_json(root / "runs/train/metrics.json")
    assert metrics["steps"] == 4 and np.isfinite(metrics["loss_last"])


def test_presets_need_a_local_checkpoint(tmp_path) -> None:
    from tunixrt.train.model import build_model, model_config
    from tunixrt.train.runtime import make_mesh
    from tunixrt.train.tokenizer import ByteTokenizer

    mesh, tok = make_mesh(RuntimeSection()), ByteTokenizer()
    preset = ModelSection(model_id="g", family="gemma3", preset="gemma3_1b_it")
    with pytest.raises(ConfigError, match=r"checkpoint_path.*downloads nothing"):
        build_model(preset, tok, mesh, seed=0, root=tmp_path)
    missing = preset.model_copy(update={"checkpoint_path": "models/gemma"})
    with pytest.raises(ConfigError, match="no such folder"):
        build_model(missing, tok, mesh, seed=0, root=tmp_path)
    (tmp_path / "models/gemma").mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"orbax|safetensors|Checkpoint|checkpoint"):
        build_model(missing, tok, mesh, seed=0, root=tmp_path)
    with pytest.raises(ConfigError, match=r"not a Tunix gemma3 preset.*gemma3_270m"):
        model_config(preset.model_copy(update={"preset": "gemma3_2b"}), tok)
    with pytest.raises(ConfigError, match=r"unknown .*ModelConfig field"):
        model_config(MODEL.model_copy(update={"config": {"layers": 3}}), tok)
    assert model_config(MODEL, tok).num_embed == 264


def test_multi_host_path_with_two_cpu_processes(data_root, tmp_path) -> None:
    """Two JAX processes with 2 simulated devices each (gloo collectives) train on one 2x2 mesh,
    each feeding its half of every batch, as the hosts of a TPU slice do."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = fresh_root(tmp_path, data_root, "multihost")
    manifest = make_manifest(
        data_root[1],
        model=MODEL,
        training=training(max_steps=4, checkpoint_every_steps=2),
        runtime=RuntimeSection(name="mh", mesh_shape=[2, 2], simulated_devices=2, multi_host=True),
    )
    path = root / "manifest.json"
    path.write_text(manifest.model_dump_json())
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path), str(root)],
            cwd=REPO,
            env={
                **os.environ,
                "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
                "JAX_NUM_PROCESSES": "2",
                "JAX_PROCESS_ID": str(i),
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    metrics = read_json(root / "runs/train/metrics.json")
    assert metrics["steps"] == 4 and np.isfinite(metrics["loss_last"])
    assert read_json(root / "runs/train/perf.json")["processes"] == 2
    assert sorted(p.name for p in (root / "runs/train/checkpoints").iterdir()) == ["2", "4"]


def test_cadence_changes_resume_and_other_configs_are_set_aside(data_root, tmp_path, capfd):
    """Save/eval cadence is not part of the fingerprint; a checkpoint of another configuration is
    moved aside (with a line saying where), never deleted."""
    from tunixrt.train.run import train

    root = fresh_root(tmp_path, data_root, "cadence")
    train(make_manifest(data_root[1], model=MODEL, training=training(max_steps=8)), root)
    ckpt = root / "runs/train/checkpoints"
    assert sorted(p.name for p in ckpt.iterdir()) == ["4", "8"]
    capfd.readouterr()

    cadence = training(max_steps=8, checkpoint_every_steps=3, keep_checkpoints=3)
    train(make_manifest(data_root[1], model=MODEL, training=cadence), root)
    err = capfd.readouterr().err
    assert "resuming from checkpoint step 8 of 8" in err
    assert not (root / "runs/train/checkpoints.aside").exists()

    other = training(max_steps=8, learning_rate=1e-3)
    train(make_manifest(data_root[1], model=MODEL, training=other), root)
    err = capfd.readouterr().err
    aside = root / "runs/train/checkpoints.aside"
    [kept] = list(aside.iterdir())
    assert f"moved to {kept}" in err
    assert sorted(p.name for p in kept.iterdir() if p.name.isdigit()) == ["4", "8"]
    assert "resuming" not in err and sorted(p.name for p in ckpt.iterdir()) == ["4", "8"]

    # back and forth: a configuration set aside twice keeps both copies
    first = make_manifest(data_root[1], model=MODEL, training=training(max_steps=8))
    train(first, root)
    train(make_manifest(data_root[1], model=MODEL, training=other), root)
    names = sorted(p.name for p in aside.iterdir())
    again = [n for n in names if n.endswith("-step8-2")]
    assert len(names) == 3 and len(again) == 1 and again[0][: -len("-2")] in names, names


def test_a_tampered_export_stops_train_before_any_model(data_root, tmp_path) -> None:
    from tunixrt.errors import DataError
    from tunixrt.train.run import train

    src, splits = data_root
    root = tmp_path / "tampered"
    shutil.copytree(src / "data", root / "data")
    path = root / splits["train"].path
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[1:]))
    manifest = make_manifest(splits, model=MODEL, training=training())
    with pytest.raises(DataError) as exc:
        train(manifest, root)
    msg = str(exc.value)
    assert splits["train"].path in msg and splits["train"].sha256 in msg
    assert "199 records" in msg and "200 records" in msg
    assert not (root / "runs").exists()  # nothing was built or written


def test_stage_exits_2_on_a_tampered_export(tmp_path) -> None:
    from conftest import make_pipeline, tunixrt

    root = make_pipeline(tmp_path / "p", git=False)
    for stage in ("ingest", "dataset", "export", "manifest"):
        tunixrt("run", stage, "experiment=smoke", cwd=root)
    path = root / "data/export/train.jsonl"
    path.write_bytes(b"".join(path.read_bytes().splitlines(keepends=True)[1:]))
    for stage in ("train", "evaluate"):
        proc = tunixrt("run", stage, "experiment=smoke", cwd=root, check=False)
        assert proc.returncode == 2, proc.stderr
        assert "data/export/train.jsonl: changed since" in proc.stderr
        assert "Traceback" not in proc.stderr
    assert not (root / "runs").exists()
