import hashlib
import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sample_data import run_data_stages

import tunixrt
from tunixrt.errors import ConfigError
from tunixrt.export.stage import export, parse_format
from tunixrt.manifest.build import build_run_manifest, dump_manifest, run
from tunixrt.manifest.load import load_run_manifest
from tunixrt.manifest.schema import LIBRARIES
from tunixrt.paths import RUN_MANIFEST

MODEL = {"model_id": "tiny", "family": "gemma3", "preset": "tiny"}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    r = run_data_stages(tmp_path_factory.mktemp("m"), n=200)
    return r


def params(**train) -> dict:
    return {
        "model": MODEL,
        "train": train,
        "runtime": {},
        "format": {"name": "tunix_sft", "reasoning_style": "numbered"},
        "eval": {},
    }


def test_manifest_has_tunixrt_keys_and_lineage(root: Path) -> None:
    run(params(), root)
    data = yaml.safe_load((root / RUN_MANIFEST).read_text())
    assert (data["version"], data["runner"], data["mode"]) == ("1.0", "tunix", "sft")
    assert data["model"]["model_id"] == "tiny"
    assert data["dataset"]["format"] == "tunix_sft"
    assert data["dataset"]["path"] == "data/export/train.jsonl"
    assert (
        data["dataset"]["dataset_key"] == "arith-v1"
        and len(data["dataset"]["content_sha256"]) == 64
    )
    t = data["training"]  # tunix-rt's defaults
    assert (t["learning_rate"], t["weight_decay"], t["num_epochs"], t["batch_size"]) == (
        2e-5,
        0.01,
        3,
        8,
    )
    assert t["max_seq_length"] == 2048
    assert data["output"]["output_dir"] == "runs/train"
    assert data["model"]["tokenizer"]["kind"] == "byte" and data["runtime"]["mesh_shape"] == [1, 1]
    assert data["seed"] == 0 and data["tunixrt_version"] == tunixrt.__version__
    splits = data["dataset"]["splits"]
    assert set(splits) == {"train", "val", "test"} and all(
        len(s["sha256"]) == 64 for s in splits.values()
    )
    assert load_run_manifest(root).dataset.splits["train"].records == splits["train"]["records"]
    first = (root / RUN_MANIFEST).read_bytes()
    run(params(), root)
    assert (root / RUN_MANIFEST).read_bytes() == first


@pytest.mark.parametrize(
    ("train", "key"),
    [
        ({"learning_rate": 0}, "train.learning_rate"),
        ({"learning_rate": 1.5}, "train.learning_rate"),
        ({"batch_size": 0}, "train.batch_size"),
        ({"max_seq_length": 64}, "train.max_seq_length"),
        ({"num_epochs": 101}, "train.num_epochs"),
        ({"colour": "red"}, "train.colour: unknown key"),
    ],
)
def test_out_of_range_values_name_the_key(root: Path, train: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        build_run_manifest(params(**train), root)


def test_trace_format_is_refused_for_training(root: Path) -> None:
    export(parse_format({"name": "trace"}), root)
    try:
        with pytest.raises(ConfigError, match=r"format\.name"):
            build_run_manifest({**params(), "format": {"name": "trace"}}, root)
    finally:
        export(parse_format({"name": "tunix_sft"}), root)


def test_dump_is_yaml_with_floats_that_read_back_as_floats(root: Path) -> None:
    text = dump_manifest(build_run_manifest(params(learning_rate=3e-4), root)).decode()
    assert yaml.safe_load(text)["training"]["learning_rate"] == 3e-4


def test_format_fields_are_the_formats_enums_and_normalized(root: Path) -> None:
    for bad in ({"reasoning_style": "bogus"}, {"reasoning_style": None}, {"name": "nope"}):
        fmt = {"name": "tunix_sft", "reasoning_style": "numbered", **bad}
        with pytest.raises(ConfigError, match=r"format\.(reasoning_style|name)"):
            build_run_manifest({**params(), "format": fmt}, root)
    fmt = {"name": "tunix_sft", "reasoning_style": "tags", "system_prompt": "  Be brief.\r\n"}
    m = build_run_manifest({**params(), "format": fmt}, root)
    assert m.dataset.reasoning_style == "tags" and m.dataset.system_prompt == "Be brief."
    fmt["system_prompt"] = "   "
    assert build_run_manifest({**params(), "format": fmt}, root).dataset.system_prompt is None


def test_a_bad_eval_value_fails_the_manifest_stage(root: Path) -> None:
    with pytest.raises(ConfigError, match=r"eval\.max_problems"):
        build_run_manifest({**params(), "eval": {"max_problems": 0}}, root)


def test_no_version_enters_the_manifest_when_tunixrt_is_not_installed(root, monkeypatch) -> None:
    import importlib.metadata

    def not_installed(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    assert tunixrt.installed_version() is None
    m = build_run_manifest(params(), root)
    assert m.tunixrt_version is None
    assert m.libraries == {lib: None for lib in LIBRARIES}
    assert "0.0.0+unknown" not in dump_manifest(m).decode()


def test_weights_section_names_the_files_a_run_starts_from(root: Path) -> None:
    import struct

    from tunixrt.manifest.weights import DigestCache, checkpoint_digest

    assert build_run_manifest(params(), root).weights.checkpoint_digest is None  # random init
    ckpt = root / "models/ckpt"  # configured paths stay inside the pipeline root
    ckpt.mkdir(parents=True)
    header = b'{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
    (ckpt / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + bytes(8))
    (ckpt / "tokenizer.model").write_bytes(b"sp")
    tok = {"kind": "sentencepiece", "path": "models/ckpt/tokenizer.model"}
    model = {**MODEL, "checkpoint_path": "models/ckpt", "preset": "gemma3_270m", "tokenizer": tok}
    w = build_run_manifest({**params(), "model": model}, root).weights
    assert (
        w.checkpoint_files == 2
        and w.checkpoint_digest == checkpoint_digest(ckpt, DigestCache(root))[0]
    )
    assert w.tokenizer_sha256 == hashlib.sha256(b"sp").hexdigest()
    # a different tensor layout (the header), same sizes: another digest
    other = header.replace(b"[2]", b"[1]").replace(b"[0,8]", b"[0,4]")
    (ckpt / "model.safetensors").write_bytes(struct.pack("<Q", len(other)) + other + bytes(8))
    assert checkpoint_digest(ckpt, DigestCache(root))[0] != w.checkpoint_digest
    missing = {**model, "checkpoint_path": "models/not-yet"}  # refused, not cached as null
    with pytest.raises(ConfigError, match=r"model\.checkpoint_path: models/not-yet: no such"):
        build_run_manifest({**params(), "model": missing}, root)


def test_manifest_records_library_versions_without_importing_them(root: Path) -> None:
    """The versions come from the distributions' metadata: the manifest stage (a data stage)
    still never imports JAX."""
    code = (
        "import sys, pathlib\n"
        "from tunixrt.manifest.build import run\n"
        f"run({params()!r}, pathlib.Path({str(root)!r}))\n"
        "stack = ('jax', 'flax', 'optax', 'orbax', 'tunix', 'qwix')\n"
        "bad = [m for m in stack if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    recorded = yaml.safe_load((root / RUN_MANIFEST).read_text())["libraries"]
    assert list(recorded) == list(LIBRARIES)
    assert recorded == {lib: importlib.metadata.version(lib) for lib in LIBRARIES}
    assert load_run_manifest(root).libraries == recorded
    older = yaml.safe_load((root / RUN_MANIFEST).read_text())
    del older["libraries"]  # a manifest an older tunixrt wrote still loads: nothing recorded
    edited = Path("data/export/older.yaml")
    (root / edited).write_text(yaml.safe_dump(older, sort_keys=False))
    try:
        assert load_run_manifest(root, edited).libraries == {}
    finally:
        (root / edited).unlink()
