"""The manifest stage refuses, with exit 2 and the key, the path and what to do, every value a
later stage would fail on: missing weights or tokenizer, weights outside models/ (which dvc.yaml
tracks), a missing eval set, a batch the data-parallel mesh cannot split. And the weights
digests cover every byte, read once."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import BIN, sh
from sample_data import run_data_stages

from tunixrt.errors import ConfigError
from tunixrt.manifest.build import build_run_manifest
from tunixrt.manifest.weights import STATE

TINY = {"model_id": "tiny", "family": "gemma3", "preset": "tiny"}
PRESET = {
    "model_id": "g",
    "family": "gemma3",
    "preset": "gemma3_270m",
    "checkpoint_path": "models/g",
    "tokenizer": {"kind": "sentencepiece", "path": "models/g/tokenizer.model"},
}

BYTES = {**PRESET, "tokenizer": {"kind": "byte"}}  # the checkpoint alone


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    r = run_data_stages(tmp_path_factory.mktemp("m"), n=60)
    (r / ".dvc/tmp").mkdir(parents=True)
    return r


def params(model: dict | None = None, train: dict | None = None, **sections) -> dict:
    return {
        "model": model or TINY,
        "train": train or {},
        "runtime": sections.get("runtime", {}),
        "format": {"name": "tunix_sft", "reasoning_style": "numbered"},
        "eval": sections.get("eval", {}),
    }


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({**BYTES, "checkpoint_path": None}, r"model\.checkpoint_path: the preset 'gemma3_270m' "),
        (BYTES, r"model\.checkpoint_path: models/g: no such folder; tunixrt downloads nothing"),
        (
            {**BYTES, "checkpoint_path": "weights/g"},
            r"model\.checkpoint_path: 'weights/g' is outside models/, the folder dvc\.yaml tracks",
        ),
    ],
)
def test_missing_or_untracked_weights_are_refused(root: Path, model: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_run_manifest(params(model), root)


def test_a_missing_tokenizer_is_refused(root: Path) -> None:
    (root / "models/t").mkdir(parents=True)
    model = {**PRESET, "checkpoint_path": "models/t"}
    with pytest.raises(ConfigError, match=r"model\.tokenizer\.path: models/g/tokenizer\.model: no"):
        build_run_manifest(params(model), root)


def test_a_missing_eval_set_is_refused(root: Path) -> None:
    with pytest.raises(ConfigError, match=r"eval\.sets\[0\]: inputs/eval\.jsonl: no such file"):
        build_run_manifest(params(eval={"sets": ["inputs/eval.jsonl"]}), root)


def test_a_batch_the_mesh_cannot_split_is_refused(root: Path) -> None:
    mesh = {"runtime": {"mesh_shape": [32, 1]}}
    with pytest.raises(ConfigError, match=r"train\.batch_size: 8 does not split over the 32 .*32"):
        build_run_manifest(params(train={"batch_size": 8}, **mesh), root)
    build_run_manifest(params(train={"batch_size": 64}, **mesh), root)  # a multiple: fine


def test_a_ray_run_on_several_hosts_needs_a_shared_dir_the_cluster_can_see(root: Path) -> None:
    import yaml
    from conftest import REPO

    pod = yaml.safe_load((REPO / "tunixrt/conf/runtime/tpu_pod_ray.yaml").read_text())
    pod["mesh_shape"] = [1, 1]  # the tiny model's batch of 8
    with pytest.raises(ConfigError, match=r"runtime\.shared_dir: a training run on several Ray"):
        build_run_manifest(params(runtime=pod), root)
    relative = {**pod, "shared_dir": "shared"}
    with pytest.raises(ConfigError, match=r"runtime\.shared_dir: 'shared' is relative to this"):
        build_run_manifest(params(runtime=relative), root)
    m = build_run_manifest(params(runtime={**pod, "shared_dir": "gs://bucket/tunixrt"}), root)
    assert m.runtime.ray.tpu is not None and m.runtime.launcher == "ray"


def test_the_stage_exits_2_naming_the_key(root: Path) -> None:
    (root / "params.yaml").write_text(
        "model: {model_id: g, family: gemma3, preset: gemma3_1b, checkpoint_path: models/x}\n"
        "train: {}\nruntime: {}\nformat: {name: tunix_sft}\neval: {}\n"
    )
    proc = sh(str(BIN / "python"), "-m", "tunixrt.stages", "manifest", cwd=root, check=False)
    assert proc.returncode == 2
    assert "model.checkpoint_path: models/x: no such folder" in proc.stderr


def test_weights_digests_cover_every_byte_and_are_read_once(root: Path) -> None:
    folder = root / "models/w"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"\1" * 4096)
    (folder / "tokenizer.model").write_bytes(b"sp")
    model = {
        **PRESET,
        "checkpoint_path": "models/w",
        "tokenizer": {"kind": "sentencepiece", "path": "models/w/tokenizer.model"},
    }
    first = build_run_manifest(params(model), root).weights
    assert first.checkpoint_files == 2 and (root / STATE).is_file()
    (folder / "model.safetensors").write_bytes(b"\2" * 4096)  # same size, same name
    second = build_run_manifest(params(model), root).weights
    assert second.checkpoint_digest != first.checkpoint_digest
    assert second.tokenizer_sha256 == first.tokenizer_sha256
    # unchanged files are not read again: a cached digest is trusted while size, mtime and
    # inode stay (what DVC's own state does), so a wrong cached value shows through
    state = (root / STATE).read_text()
    key = str((folder / "tokenizer.model").resolve())
    assert key in state
    (root / STATE).write_text(state.replace(second.tokenizer_sha256, "f" * 64))
    assert build_run_manifest(params(model), root).weights.tokenizer_sha256 == "f" * 64
