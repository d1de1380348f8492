"""`tunixrt init --upgrade` without building a wheel: the package installed here stands for the
upgraded one, and an older params.yaml (other defaults, a key since removed) for the old one."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import sh, tunixrt

from tunixrt.compose import write_params
from tunixrt.errors import ConfigError
from tunixrt.scaffold import USER_CONFIG, pipeline_yaml, upgrade_pipeline, user_config


def user_repo(root: Path, conf: str = USER_CONFIG) -> Path:
    """A pipeline as `tunixrt init` writes it (the git repository is only looked for)."""
    (root / ".git").mkdir(parents=True)
    (root / "conf").mkdir()
    (root / "conf" / "config.yaml").write_text(USER_CONFIG)
    (root / "dvc.yaml").write_text(pipeline_yaml())
    write_params(root)
    (root / "conf" / "config.yaml").write_text(conf)
    return root


def old_params(root: Path) -> str:
    """params.yaml as an older tunixrt composed it: another default, a key it has no more, and
    no value yet for a key it did not have."""
    current = (root / "params.yaml").read_text()
    old = current.replace("  max_new_tokens:", "  retired_key: 3\n  max_new_tokens:", 1)
    old = old.replace("\n  seed: 0\n", "\n  seed: 7\n", 1)  # source.seed comes first
    old = old.replace("  max_reject_fraction: 0.5\n", "", 1)
    assert old != current
    (root / "params.yaml").write_text(old)
    return current


def test_upgrade_recomposes_params_yaml_and_prints_what_changed(tmp_path: Path) -> None:
    root = user_repo(tmp_path / "repo")
    composed = old_params(root)
    proc = tunixrt("init", "--upgrade", cwd=root)
    assert (root / "params.yaml").read_text() == composed
    assert "wrote dvc.yaml (no stage changed), params.yaml (3 values changed)" in proc.stderr
    lines = [ln.strip() for ln in proc.stderr.splitlines()]
    assert "source.seed: 7 -> 0" in lines
    assert "eval.retired_key: 3 -> (removed)" in lines
    assert "source.max_reject_fraction: (new) 0.5" in lines
    again = tunixrt("init", "--upgrade", cwd=root)
    assert "params.yaml (unchanged)" in again.stderr and "->" not in again.stderr


def test_upgrade_that_conf_no_longer_composes_with_changes_nothing(tmp_path: Path) -> None:
    """A key the installed package renamed: the error names it and says what to do, and
    neither dvc.yaml nor params.yaml is touched (the stages keep refusing their old digest)."""
    conf = USER_CONFIG + "train:\n  learning_rate_peak: 1.0e-3\n"
    root = user_repo(tmp_path / "repo", conf)
    dvc_yaml = root / "dvc.yaml"
    digest = pipeline_yaml().split("tunixrt.stages dataset --code ")[1].split()[0]
    dvc_yaml.write_text(dvc_yaml.read_text().replace(digest, "0" * len(digest)))
    before = {p: (root / p).read_bytes() for p in ("dvc.yaml", "params.yaml")}
    with pytest.raises(ConfigError) as info:
        upgrade_pipeline(root)
    msg = str(info.value)
    assert "train.learning_rate_peak: unknown key" in msg
    assert "fix conf/config.yaml" in msg and "nothing was changed" in msg
    assert {p: (root / p).read_bytes() for p in before} == before


def test_upgrade_refuses_a_dvc_yaml_it_did_not_write(tmp_path: Path) -> None:
    root = user_repo(tmp_path / "repo")
    (root / "dvc.yaml").write_text("stages:\n  mine:\n    cmd: python train.py\n")
    with pytest.raises(ConfigError, match="not written by `tunixrt init`"):
        upgrade_pipeline(root)


def test_upgrade_adds_the_data_deps_a_newer_tunixrt_declares(tmp_path: Path) -> None:
    """A dvc.yaml written before the manifest stage tracked models/: the upgrade adds the dep
    (and the folder, with its README and .gitignore lines), keeping the rest of the text."""
    root = user_repo(tmp_path / "repo")
    dvc_yaml = root / "dvc.yaml"
    old = dvc_yaml.read_text().replace("    - models\n", "", 1)
    dvc_yaml.write_text(old + "# a line of the user's own\n")
    proc = tunixrt("init", "--upgrade", cwd=root)
    assert "dvc.yaml: manifest now depends on models" in proc.stderr
    text = dvc_yaml.read_text()
    assert text == pipeline_yaml() + "# a line of the user's own\n"
    assert (root / "models/README.md").is_file()
    assert {"/models/?*/"} <= set((root / ".gitignore").read_text().split())


def test_dvc_yaml_init_writes_has_no_yaml_anchors() -> None:
    """Stages share option dicts ({cache: false}); safe_dump would write `&id001`/`*id001`."""
    import yaml

    text = pipeline_yaml()
    assert "&id" not in text and "*id" not in text
    stages = yaml.safe_load(text)["stages"]
    assert stages["train"]["outs"][-1] == {"runs/train/metrics.json": {"cache": False}}
    assert stages["report"]["outs"][0] == {"runs/summary.json": {"cache": False}}


def test_ingest_counters_come_last_in_both_dvc_yamls() -> None:
    """`dvc exp show` orders metric columns by stage, then the top-level `metrics:` list: the
    ingest report is an out of ingest, listed there last, in this repository and in init's."""
    import yaml
    from conftest import REPO

    from tunixrt.scaffold import METRICS
    from tunixrt.stages import STAGES

    assert METRICS[0] == "runs/summary.json" and METRICS[-1] == "data/traces/report.json"
    assert "data/traces/report.json" in STAGES["ingest"].outs
    for doc in (yaml.safe_load(pipeline_yaml()), yaml.safe_load((REPO / "dvc.yaml").read_text())):
        assert doc["metrics"] == list(METRICS)
        assert not any("metrics" in stage for stage in doc["stages"].values())


def test_every_model_preset_inits_and_composes(tmp_path: Path) -> None:
    """`--model PRESET` for each file of the package's conf/model/: a real Hydra composition
    picks it (the override goes last, as Hydra wants), pretrained ones with tunix-rt's
    training values; a command-line `model=` still wins, an experiment preset's does not."""
    from conftest import REPO

    from tunixrt.compose import compose
    from tunixrt.scaffold import model_preset, model_presets

    shipped = sorted(p.stem for p in (REPO / "tunixrt/conf/model").glob("*.yaml"))
    assert model_presets() == shipped and "gemma3_1b" in shipped
    (tmp_path / "conf").mkdir()
    for preset in shipped:
        (tmp_path / "conf" / "config.yaml").write_text(user_config(preset))
        params = compose(tmp_path)
        assert params["model"]["model_id"] == model_preset(preset)["model_id"], preset
        pretrained = model_preset(preset)["checkpoint_path"] is not None
        assert (params["train"]["learning_rate"] == 2.0e-5) == pretrained, preset
    (tmp_path / "conf" / "config.yaml").write_text(user_config("gemma3_1b"))
    assert compose(tmp_path, ["model=qwen3_0p6b"])["model"]["model_id"] == "Qwen/Qwen3-0.6B"
    exp = compose(tmp_path, ["experiment=gemma3_270m_full_cpu"])
    assert exp["model"]["model_id"] == "google/gemma-3-1b-it"
    assert exp["train"]["max_seq_length"] == 512  # the preset's own values still apply
    with pytest.raises(ConfigError, match="no such preset"):
        user_config("gemma9")


def test_init_config_points_at_nothing_a_user_repository_lacks() -> None:
    """conf/config.yaml goes into the user's repository: no docs/ page of this one."""
    from tunixrt.reference import CONFIG_REFERENCE

    for config in (USER_CONFIG, user_config("gemma3_1b")):
        mentioned = {w.strip("`(),.:") for w in config.split() if "docs/" in w}
        assert mentioned <= {str(CONFIG_REFERENCE)}, mentioned  # `tunixrt docs` writes it
        assert "`tunixrt docs`" in config


def test_gitignore_keeps_dvc_files_under_models_visible_to_dvc(tmp_path: Path) -> None:
    """`/models/*` with exceptions (what 0.1.0 wrote) makes DVC's gitignore matcher take models/
    itself as ignored: a `dvc add models/NAME` .dvc file is then invisible to the index, and
    `dvc exp run` removes the weights as an unused link. init writes `/models/?*/`, and an
    upgrade replaces the old lines."""
    from dvc.repo import Repo

    from tunixrt.scaffold import ensure_workspace_files

    sh("git", "init", "-q", cwd=tmp_path)
    sh("dvc", "init", "-q", cwd=tmp_path)
    (tmp_path / ".gitignore").write_text("/models/*\n!/models/README.md\n/mine/\n")
    assert ".gitignore" in ensure_workspace_files(tmp_path)
    lines = (tmp_path / ".gitignore").read_text().splitlines()
    assert "/models/*" not in lines and "/models/?*/" in lines and "/mine/" in lines
    (tmp_path / "models" / "w").mkdir()
    (tmp_path / "models" / "w" / "model.safetensors").write_bytes(b"weights")
    sh("dvc", "add", "models/w", cwd=tmp_path)
    assert sh("git", "check-ignore", "models/w/model.safetensors", cwd=tmp_path).returncode == 0
    with Repo(str(tmp_path)) as repo:
        assert [str(o) for o in repo.index.outs] == ["models/w"]
