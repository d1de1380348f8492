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
