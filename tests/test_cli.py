import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
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


@pytest.fixture(scope="module")
def inited(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A git repository after `tunixrt init` and the commit its output prints, run as printed;
    and that output. Tests that change the workspace work on a copy."""
    root = tmp_path_factory.mktemp("user") / "repo"
    root.mkdir()
    sh("git", "init", "-q", "-b", "main", cwd=root)
    out = tunixrt("init", cwd=root).stderr
    for line in out.splitlines():
        if line.strip().startswith("git "):
            sh(*shlex.split(line.strip()), cwd=root)
    return root, out


def test_init_says_what_it_trains_and_next_steps_that_work(inited: tuple[Path, str]) -> None:
    root, out = inited
    assert "this repository trains tiny-gemma3, the demo model" in out
    assert "`tunixrt init --force --model PRESET` (gemma2_2b, gemma3_1b," in out
    assert "`git add inputs/`" in out and "`dvc exp run --queue`" in out
    assert "dvc exp run -S source=files -S 'source.paths=[inputs/*.jsonl]'" in out
    assert sh("git", "status", "--porcelain", cwd=root).stdout == ""  # all of it committed
    assert "&id" not in (root / "dvc.yaml").read_text()
    assert "- override /model" not in (root / "conf/config.yaml").read_text()
    assert {"/models/?*/"} <= set((root / ".gitignore").read_text().split())


def test_init_with_a_model_preset(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    sh("git", "init", "-q", "-b", "main", cwd=root)
    out = tunixrt("init", "--model", "gemma3_1b", cwd=root).stderr
    assert "warning" not in out  # tunix-rt's learning rate, not the demo model's
    assert "this repository trains google/gemma-3-1b-it from models/gemma-3-1b-it/" in out
    assert "hf download google/gemma-3-1b-it --local-dir models/gemma-3-1b-it" in out
    assert "`dvc repro` stops at the manifest stage until it is there" in out
    conf = (root / "conf/config.yaml").read_text()
    assert conf.index("- experiment: null") < conf.index("- override /model: gemma3_1b")
    params = (root / "params.yaml").read_text()
    assert "model_id: google/gemma-3-1b-it" in params and "learning_rate: 2.0e-05" in params
    bad = tunixrt("init", "--force", "--model", "gemma9", cwd=root, check=False)
    assert bad.returncode == 2 and "invalid choice: 'gemma9'" in bad.stderr


def test_init_in_a_subdirectory_or_outside_git_says_where_it_belongs(
    inited: tuple[Path, str], tmp_path: Path
) -> None:
    root, _ = inited
    sub = tunixrt("init", cwd=root / "inputs", check=False)
    assert sub.returncode == 2 and "Traceback" not in sub.stderr
    assert f"a subdirectory of the git repository {root}" in sub.stderr
    assert f"run `tunixrt init` in {root}" in sub.stderr
    (tmp_path / "nogit").mkdir()
    outside = tunixrt("init", cwd=tmp_path / "nogit", check=False)
    assert outside.returncode == 2 and "not a git repository" in outside.stderr


def test_every_command_finds_the_pipeline_from_a_subdirectory(
    inited: tuple[Path, str], tmp_path: Path
) -> None:
    root, _ = inited
    sub = root / "inputs"
    info = json.loads(tunixrt("status", "--json", "--no-devices", cwd=sub).stdout)
    assert info["pipeline"]["root"] == str(root) and "ingest" in info["pipeline"]["stale"]
    params = (root / "params.yaml").read_bytes()
    assert f"wrote {root / 'params.yaml'}" in tunixrt("compose", cwd=sub).stderr
    assert (root / "params.yaml").read_bytes() == params
    verify = tunixrt("verify", "--data-only", cwd=sub, check=False)  # stops at the missing lock
    assert "ok   fresh clone of HEAD" in verify.stdout and "fatal" not in verify.stdout
    assert "ok   params.yaml equals conf/ composed" in verify.stdout
    assert "FAIL dvc.lock is committed" in verify.stdout
    docs = tunixrt("docs", "--check", cwd=sub, check=False)
    assert docs.returncode == 1 and "stale docs/config-reference.md" in docs.stderr
    assert not (sub / "docs").exists() and not (root / "docs").exists()
    report = tunixrt("report", "--no-experiments", cwd=sub, check=False)
    assert report.returncode == 2 and "data/dataset/manifest.json: not found" in report.stderr
    work = shutil.copytree(root, tmp_path / "work", symlinks=True)
    tunixrt("run", "ingest", "source.n=20", cwd=work / "conf")
    assert orjson.loads((work / "data/traces/report.json").read_bytes())["accepted"] == 20
    (tmp_path / "elsewhere").mkdir()
    for cmd in (["run", "ingest"], ["compose"], ["verify"], ["report"], ["docs"]):
        proc = tunixrt(*cmd, cwd=tmp_path / "elsewhere", check=False)
        assert proc.returncode == 2, (cmd, proc.stderr)
        assert "not in a tunixrt pipeline (no dvc.yaml and conf/" in proc.stderr, cmd


def _reprs(node: Any) -> list[str]:
    """Strings inside a JSON document that are Python reprs of dicts or lists."""
    if isinstance(node, dict):
        return [r for v in node.values() for r in _reprs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _reprs(v)]
    return [node] if isinstance(node, str) and node[:1] in "{[" else []


def test_status_is_readable_and_json_all_the_way_down(inited: tuple[Path, str]) -> None:
    root, _ = inited
    proc = tunixrt("status", "--json", "--no-devices", cwd=root)
    subprocess.run([sys.executable, "-m", "json.tool"], input=proc.stdout, text=True, check=True)
    info = json.loads(proc.stdout)
    assert _reprs(info) == []
    stale = info["pipeline"]["stale"]
    assert list(stale)[:3] == ["ingest", "dataset", "export"]  # dvc.yaml's order
    outs = next(r["changed outs"] for r in stale["ingest"] if "changed outs" in r)
    assert outs["data/traces/report.json"] == "deleted"
    human = tunixrt("status", "--no-devices", cwd=root).stdout
    assert "    ingest: changed outs: data/traces/traces.jsonl (deleted), " in human
    assert "{'" not in human and "../" not in human


def test_status_after_an_experiment_and_exp_show_order(
    inited: tuple[Path, str], tmp_path: Path
) -> None:
    """`dvc exp run -S` leaves params.yaml other than conf/ composed: status names the values
    and says how to keep them, not only `tunixrt compose` (which throws them away). Then
    `dvc exp show` leads with the summary's headline figures, the ingest counters last."""
    work = shutil.copytree(inited[0], tmp_path / "work", symlinks=True)
    sh("dvc", "exp", "run", "ingest", "-S", "source.n=30", cwd=work)
    info = json.loads(tunixrt("status", "--json", "--no-devices", cwd=work).stdout)["pipeline"]
    assert info["params_match_conf"] is False
    assert info["params_differences"] == ["source.n: 4000 -> 30"]
    human = tunixrt("status", "--no-devices", cwd=work).stdout
    assert "    source.n: 4000 -> 30\n" in human
    assert "put them in conf/config.yaml" in human and "dvc exp branch" in human
    assert "throws these values away" in human
    for rel, doc in (
        ("runs/train/metrics.json", {"loss_last": 1.5}),
        ("runs/eval/metrics.json", {"after": {"exact_match": 0.5}, "before": {"n": 8}}),
        ("runs/summary.json", {"exact_match_before": 0.0, "exact_match_after": 0.5}),
    ):
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_text(json.dumps(doc))
    header = sh("dvc", "exp", "show", "--csv", cwd=work).stdout.splitlines()[0].split(",")
    at = {name: i for i, name in enumerate(header)}
    assert at["exact_match_before"] < at["exact_match_after"] < at["after.exact_match"], header
    assert at["after.exact_match"] < at["loss_last"] < at["accepted"] < at["read"], header


def test_help_lists_every_stage_and_makes_no_timing_claim(capsys: pytest.CaptureFixture) -> None:
    from tunixrt.cli import build_parser
    from tunixrt.stages import STAGES

    def help_of(*argv: str) -> str:
        with pytest.raises(SystemExit):
            build_parser().parse_args([*argv, "--help"])
        return " ".join(capsys.readouterr().out.split())

    run = help_of("run")
    assert (
        all(name in run for name in STAGES) and "rl, preference, evaluate, publish or report" in run
    )
    init = help_of("init")
    assert "--force overwrite dvc.yaml, conf/config.yaml and params.yaml where they exist" in init
    assert "--model PRESET" in init and "gemma3_1b" in init
    verify = help_of("verify")
    assert "minute" not in verify and "train, rl and evaluate" in verify
