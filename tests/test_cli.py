import json
from pathlib import Path

import orjson
from conftest import REPO, make_pipeline, sh, tunixrt

from tunixrt.compose import write_params


def test_run_ingest_with_overrides_from_the_repo_root(tmp_path: Path) -> None:
    root = make_pipeline(tmp_path / "p", git=False)
    proc = tunixrt(
        "run",
        "ingest",
        "source=files",
        "source.paths=[fixtures/tunix-rt/dev-reasoning-v2.jsonl]",
        cwd=root,
    )
    report = orjson.loads((root / "data/traces/report.json").read_bytes())
    assert report["read"] == 550 and report["rejected"] == 0
    assert "accepted 476" in proc.stderr
    tunixrt("run", "ingest", "source.n=120", cwd=root)
    assert orjson.loads((root / "data/traces/report.json").read_bytes())["accepted"] == 120


def test_bad_config_is_one_message_exit_2_no_traceback(tmp_path: Path) -> None:
    root = make_pipeline(tmp_path / "p", git=False)
    cases = [
        (["source.bogus=1"], "bogus"),
        (["+source.bogus=1"], "source.bogus: unknown key"),
        (["source.on_error=explode"], "source.on_error"),
        (["source=files", "source.paths=[nothing/here.jsonl]"], "source.paths.0: no file matches"),
        (["source=nonexistent"], "source"),
    ]
    for overrides, needle in cases:
        proc = tunixrt("run", "ingest", *overrides, cwd=root, check=False)
        assert proc.returncode == 2, (overrides, proc.stderr)
        assert needle in proc.stderr, (overrides, proc.stderr)
        assert "Traceback" not in proc.stderr


def test_stage_script_reads_params_yaml_and_reports_bad_keys(tmp_path: Path) -> None:
    root = make_pipeline(tmp_path / "p", git=False)
    params = (root / "params.yaml").read_text()
    (root / "params.yaml").write_text(params.replace("seed: 0", "seed: 0\n  colour: red"))
    proc = sh("python", "-m", "stages.ingest", cwd=root, check=False)
    assert proc.returncode == 2 and "source.colour: unknown key" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_data_with_on_error_fail_exits_2_with_location(tmp_path: Path) -> None:
    root = make_pipeline(tmp_path / "p", git=False)
    (root / "inputs" / "bad.jsonl").write_text(
        '{"prompt": "ok", "final_answer": "a"}\n{"prompt": 1}\n'
    )
    proc = tunixrt("run", "ingest", "source=files", "source.on_error=fail", cwd=root, check=False)
    assert proc.returncode == 2
    assert "inputs/bad.jsonl:2: prompt:" in proc.stderr and "Traceback" not in proc.stderr


def test_committed_params_yaml_is_conf_composed(tmp_path: Path) -> None:
    out = write_params(REPO, (), tmp_path / "params.yaml")
    assert out.read_bytes() == (REPO / "params.yaml").read_bytes()


def test_status_reports_versions_and_stale_stages(tmp_path: Path) -> None:
    root = make_pipeline(tmp_path / "p")
    info = json.loads(tunixrt("status", "--json", "--no-devices", cwd=root).stdout)
    assert info["versions"]["tunixrt"] and info["versions"]["dvc"]
    assert info["pipeline"]["params_match_conf"] is True
    assert info["pipeline"]["libraries_changed"] == []  # no run manifest yet
    assert info["versions"]["orbax-checkpoint"] and info["versions"]["qwix"]
    assert "ingest" in info["pipeline"]["stale"]
    human = tunixrt("status", "--no-devices", cwd=root).stdout
    assert "stale:" in human and "ingest" in human
    elsewhere = tunixrt("status", "--json", "--no-devices", cwd=tmp_path).stdout
    assert json.loads(elsewhere)["pipeline"] is None


def test_manifest_values_out_of_range_exit_2_naming_the_key(tmp_path: Path) -> None:
    root = make_pipeline(tmp_path / "p", git=False)
    for stage in ("ingest", "dataset", "export"):
        tunixrt("run", stage, "source.n=200", cwd=root)
    tunixrt("run", "manifest", cwd=root)
    cases = [
        ("train.learning_rate=0", "train.learning_rate"),
        ("train.batch_size=0", "train.batch_size"),
        ("train.max_seq_length=64", "train.max_seq_length"),
        ("+train.colour=red", "train.colour: unknown key"),
        ("+model.colour=red", "model.colour: unknown key"),
    ]
    for override, needle in cases:
        proc = tunixrt("run", "manifest", override, cwd=root, check=False)
        assert proc.returncode == 2, (override, proc.stderr)
        assert needle in proc.stderr and "Traceback" not in proc.stderr, (override, proc.stderr)


def test_run_errors_name_the_composition_not_params_yaml(tmp_path: Path) -> None:
    """`tunixrt run` composes conf/ (params.yaml is not read): its errors must say so."""
    root = make_pipeline(tmp_path / "p", git=False)
    for overrides in (["source.n=0"], ["source=files", "source.paths=[nothing/*.jsonl]"]):
        proc = tunixrt("run", "ingest", *overrides, cwd=root, check=False)
        assert proc.returncode == 2
        assert f"error: conf/ composed with {overrides}:" in proc.stderr, proc.stderr
        assert "params.yaml" not in proc.stderr


def test_bogus_reasoning_style_exits_2_naming_key_and_allowed_values(tmp_path: Path) -> None:
    root = make_pipeline(tmp_path / "p", git=False)
    proc = tunixrt("run", "manifest", "format.reasoning_style=bogus", cwd=root, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "format.reasoning_style: Input should be 'numbered' or 'tags'" in proc.stderr


def test_a_bad_eval_value_fails_at_compose_time(tmp_path: Path) -> None:
    root = make_pipeline(tmp_path / "p", git=False)
    for cmd in (["compose"], ["run", "ingest"]):
        proc = tunixrt(*cmd, "eval.batch_size=0", cwd=root, check=False)
        assert proc.returncode == 2 and "eval.batch_size: Input should be greater" in proc.stderr
    assert not (root / "data").exists()


def test_readme_commands_work_on_a_fresh_checkout(tmp_path: Path) -> None:
    """Every `tunixrt run ...` line of README.md runs as written in a fresh copy."""
    import shlex

    root = make_pipeline(tmp_path / "p", git=False, smoke=False)
    lines = [
        ln.split("#")[0].strip()
        for ln in (REPO / "README.md").read_text().splitlines()
        if ln.strip().startswith("tunixrt run ")
    ]
    assert lines
    for line in lines:
        proc = tunixrt(*shlex.split(line)[1:], cwd=root, check=False)
        assert proc.returncode == 0, (line, proc.stderr)


def test_every_group_option_composes_and_validates() -> None:
    """Each file of each conf/ group is a complete option; none is a fragment (a `base`)."""
    from tunixrt.compose import compose

    groups = [d for d in (REPO / "tunixrt" / "conf").iterdir() if d.is_dir() and d.name[0] != "_"]
    assert {d.name for d in groups} >= {"source", "format", "model", "train", "runtime", "eval"}
    for group in groups:
        for option in sorted(group.glob("*.yaml")):
            compose(REPO, [f"{group.name}={option.stem}"])
    assert not list((REPO / "tunixrt" / "conf").glob("*/base.yaml"))


def test_meta_filter_override_as_docs_show_it(tmp_path: Path) -> None:
    """docs/datasets.md shows how to add a meta filter from the command line (Hydra's `+`)."""
    import shlex

    from tunixrt.compose import compose

    docs = (REPO / "docs" / "datasets.md").read_text()
    [line] = [ln for ln in docs.splitlines() if "+dataset.filters.meta." in ln and "compose" in ln]
    overrides = shlex.split(line.split("#")[0])[2:]
    params = compose(REPO, overrides)
    assert params["dataset"]["filters"]["meta"] == {"category": "addition"}
