"""Every file of the model, train and runtime config groups validates with its section model."""

from pathlib import Path

import pytest
import yaml

from tunixrt.manifest.schema import ModelSection, RuntimeSection, TrainingSection

CONF = Path(__file__).resolve().parents[1] / "tunixrt" / "conf"
GROUPS = {"model": ModelSection, "train": TrainingSection, "runtime": RuntimeSection}
FILES = sorted((g, p) for g in GROUPS for p in (CONF / g).glob("*.yaml"))


def load(path: Path) -> dict:
    doc = yaml.safe_load(path.read_text())
    assert isinstance(doc, dict) and "defaults" not in doc
    return doc


@pytest.mark.parametrize(("group", "path"), FILES, ids=[f"{g}/{p.name}" for g, p in FILES])
def test_group_file_validates(group: str, path: Path) -> None:
    GROUPS[group].model_validate(load(path))


def test_the_groups_hold_the_promised_files() -> None:
    names = {g: {p.stem for gg, p in FILES if gg == g} for g in GROUPS}
    assert {"tiny_gemma3", "gemma3_270m", "gemma3_1b"} <= names["model"]
    assert "default" in names["train"]
    assert {"cpu", "tpu_v5e_8", "tpu_multihost"} <= names["runtime"]


def test_model_presets_name_tunix_configs_and_where_their_download_goes() -> None:
    from tunixrt.train.model import model_config
    from tunixrt.train.tokenizer import ByteTokenizer

    for group, path in FILES:
        if group != "model":
            continue
        section = ModelSection.model_validate(load(path))
        config = model_config(section, ByteTokenizer())
        if section.preset == "tiny":
            assert section.checkpoint_path is None
        else:  # the folder the file's download command fills (tunixrt downloads nothing)
            assert section.checkpoint_path and section.checkpoint_path.startswith("models/")
            assert f"--local-dir {section.checkpoint_path}" in path.read_text()
        assert config is not None


def test_runtime_meshes_use_tunix_axes() -> None:
    for group, path in FILES:
        if group == "runtime":
            rt = RuntimeSection.model_validate(load(path))
            assert rt.mesh_axes == ["fsdp", "tp"]
            assert rt.multi_host == (path.stem == "tpu_multihost" or rt.launcher == "ray")
