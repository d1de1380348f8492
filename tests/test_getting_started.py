"""docs/getting-started.md, run as written: tunixrt in a team's own git repository of traces.

Every command of the tutorial's `sh` blocks runs, in order, in a fresh virtualenv holding only
the tunixrt wheel (its dependencies linked in from this environment, so nothing is downloaded)
and in a fresh git repository (cloned from a bare `origin`) that holds tunix-rt's traces under
`traces/`. A command that fails fails the test. The few substitutions are listed in SUBSTITUTE
with the reason for each; blocks the doc marks `<!-- not run by the tests: ... -->` are checked
as far as a CPU allows (a `dvc exp run -S ...` line's overrides compose and pass the manifest
stage's checks, each value of a sweep). A tiny Gemma 3 in the Hugging Face layout, with a
SentencePiece tokenizer trained on the traces (tests/real_format.py), stands in for
`hf download`, and the tutorial's CPU run is already a few steps (experiment=smoke).

This module also keeps what the plugin test proved: the wheel installs into a fresh virtualenv,
`tunixrt init` writes no copy of the code and refuses to overwrite, the pipeline runs there, and
after an upgrade exactly the stages whose code changed rerun (the tutorial's last section).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path

import pytest
import yaml
from conftest import FIXTURES, REPO, env

pytestmark = pytest.mark.e2e

DOC = REPO / "docs" / "getting-started.md"
NOT_RUN = re.compile(r"<!--\s*not run by the tests:\s*(.+?)\s*-->")
FENCE = re.compile(r"^```(\w*)\s*(.*)$")
TRACES = "dev-reasoning-v2.jsonl"
# the stand-in checkpoint's shapes (a tiny Gemma 3, tests/real_format.py), given to the preset
# through conf/config.yaml: the 1B preset's shapes are not the file's
STAND_IN_MODEL = """
# test stand-in (tests/test_getting_started.py): models/gemma-3-1b-it holds a tiny Gemma 3
model:
  preset: tiny
  config: {num_layers: 2, embed_dim: 64, hidden_dim: 128, num_heads: 4, head_dim: 16,
           num_kv_heads: 1}
  dtype: float32
"""


@dataclass
class Block:
    lang: str
    info: str
    lines: list[str]
    section: str  # the `## N.` heading above it
    not_run: str | None = None  # the reason the doc gives


def doc_blocks(text: str) -> list[Block]:
    blocks: list[Block] = []
    section, pending, current = "", None, None
    for line in text.splitlines():
        if current is not None:
            if line.startswith("```"):
                blocks.append(current)
                current = None
            else:
                current.lines.append(line)
            continue
        if m := FENCE.match(line):
            current = Block(m.group(1), m.group(2), [], section, pending)
            pending = None
        elif m := NOT_RUN.search(line):
            pending = m.group(1)
        elif line.startswith("## "):
            section, pending = line[3:], None
        elif line.strip():
            pending = None  # the marker stands right above its block
    return blocks


def commands(block: Block) -> list[str]:
    """The block's command lines, their trailing comments dropped (bash drops them too)."""
    out = []
    for line in block.lines:
        line = re.sub(r"\s+#\s.*$", "", line).strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


@dataclass
class Tutorial:
    venv: Path
    work: Path  # where the install section runs (dist/ lands here)
    repo: Path  # the team's repository
    elsewhere: Path  # a teammate's machine
    remote: Path  # the DVC remote folder standing in for the bucket
    cwd: Path = field(init=False)
    outputs: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cwd = self.work

    def sh(self, cmd: str, *, cwd: Path | None = None, check: bool = True, path_first=None):
        e = env()
        e["PATH"] = f"{path_first or self.venv / 'bin'}{os.pathsep}{e['PATH']}"
        e.pop("PYTHONPATH", None)
        e.pop("VIRTUAL_ENV", None)
        proc = subprocess.run(
            ["bash", "-c", cmd], cwd=cwd or self.cwd, env=e, capture_output=True, text=True
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"`{cmd}` (in {cwd or self.cwd}) exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
            )
        self.outputs[cmd] = proc.stdout + proc.stderr
        return proc


# --- substitutions: doc command -> what the test runs instead, and why ---------------------


def _clone_tunixrt(t: Tutorial, cmd: str) -> None:
    """Offline: this checkout stands in for the clone (a link named as the clone would be)."""
    (t.work / "tunixrt").symlink_to(REPO)


def _build_wheel(t: Tutorial, cmd: str) -> None:
    """As written, with this environment's pip first on PATH: a fresh virtualenv's pip would
    download the build backend (setuptools) for its isolated build."""
    t.sh(cmd, path_first=Path(sys.executable).parent)
    assert len(list((t.work / "dist").glob("tunixrt-*.whl"))) == 1


def _install_wheel(t: Tutorial, cmd: str) -> None:
    """As written plus --no-index: the dependencies are already there (linked in from this
    environment), and nothing may be downloaded."""
    [spec] = [a for a in shlex.split(cmd) if a.endswith("[train]")]
    assert (t.work / spec.removesuffix("[train]")).is_file(), f"{spec}: not the wheel built"
    t.sh(cmd.replace("pip install", "pip install --no-index", 1))
    where = t.sh("python -c 'import tunixrt; print(tunixrt.__file__)'").stdout
    assert str(t.venv) in where  # the wheel's tunixrt, not this checkout's


def _download(t: Tutorial, cmd: str) -> None:
    """A tiny Gemma 3 in the Hugging Face layout (model.safetensors) and a SentencePiece
    tokenizer trained on the traces, in the folder the command names."""
    import sentencepiece as spm
    from real_format import TinyConfig, hf_tensors, train_sentencepiece, write_safetensors

    args = shlex.split(cmd)
    folder = t.cwd / args[args.index("--local-dir") + 1]
    params = yaml.safe_load((t.repo / "params.yaml").read_text())
    assert params["model"]["checkpoint_path"] == args[args.index("--local-dir") + 1]
    lines = []
    for rec in map(json.loads, (FIXTURES / TRACES).read_text().splitlines()):
        lines += [rec["prompt"], rec["final_answer"], *(s["content"] for s in rec["steps"])]
    tok = train_sentencepiece(folder / "tokenizer.model", lines, 400)
    eot = spm.SentencePieceProcessor(model_file=str(tok)).piece_to_id("<end_of_turn>")
    write_safetensors(folder, hf_tensors(TinyConfig("gemma3", vocab=400), eot))


def _remote(t: Tutorial, cmd: str) -> None:
    """A local folder stands in for the bucket."""
    assert "gs://YOUR-BUCKET/tunixrt" in cmd
    t.sh(cmd.replace("gs://YOUR-BUCKET/tunixrt", str(t.remote)))


def _clone_team_repo(t: Tutorial, cmd: str) -> None:
    """The bare `origin` stands in for the team's GitHub repository, cloned on a teammate's
    machine (another folder)."""
    t.sh(f"git clone -q {t.repo.parent / 'origin.git'} my-traces", cwd=t.elsewhere)
    t.cwd = t.elsewhere


SUBSTITUTE: dict[str, Callable[[Tutorial, str], None]] = {
    "git clone https://github.com/OWNER/tunixrt.git": _clone_tunixrt,
    "pip wheel --no-deps -w dist ./tunixrt": _build_wheel,
    "pip install 'dist/tunixrt-0.1.0-py3-none-any.whl[train]'": _install_wheel,
    "hf download google/gemma-3-1b-it --local-dir models/gemma-3-1b-it": _download,
    "dvc remote add -d storage gs://YOUR-BUCKET/tunixrt": _remote,
    "git clone https://github.com/YOUR-ORG/my-traces.git": _clone_team_repo,
}
# run as written, but from a subdirectory of the repository: every command finds the pipeline's
# root as git and dvc do (the doc says so in section 9)
FROM_SUBDIRECTORY = {"tunixrt report", "tunixrt verify --data-only"}
# not run at all; the fixture's virtualenv is already first on PATH
SKIP = {
    "python3 -m venv ~/.venvs/tunixrt && source ~/.venvs/tunixrt/bin/activate": "the fixture "
    "made a fresh virtualenv (its bin/ leads PATH for every command)",
}


def _values(override: str) -> list[str]:
    """`k=a,b` -> [`k=a`, `k=b`] (commas inside brackets stay: `k=[4,1]` is one value)."""
    key, _, value = override.partition("=")
    parts, depth, cur = [], 0, ""
    for ch in value:
        depth += 1 if ch in "[(" else -1 if ch in "])" else 0
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return [f"{key}={p}" for p in [*parts, cur]]


def check_without_running(t: Tutorial, cmd: str) -> list[dict]:
    """A `dvc exp run` line for an accelerator: each combination of its -S values composes and
    passes the manifest stage (weights, tokenizer, batch against the mesh, sequence lengths), on
    the workspace's exports. Returns the run manifests."""
    args = shlex.split(cmd)
    if args[:3] != ["dvc", "exp", "run"]:
        return []
    overrides = [args[i + 1] for i, a in enumerate(args) if a == "-S"]
    manifest = t.repo / "data/export/run_manifest.yaml"
    kept = manifest.read_bytes()
    out = []
    try:
        for combo in product(*map(_values, overrides)):
            t.sh(shlex.join(["tunixrt", "run", "manifest", *combo]), cwd=t.repo)
            out.append(yaml.safe_load(manifest.read_text()))
    finally:
        manifest.write_bytes(kept)  # the workspace's run stays as dvc.lock records it
    return out


def _installed_keys_py(t: Tutorial) -> Path:
    where = t.sh("python -c 'import tunixrt; print(tunixrt.__file__)'").stdout.strip()
    return Path(where).parent / "dataset" / "keys.py"


# --- the fixture and the test ------------------------------------------------------------


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv without tunixrt (the tutorial installs it). The dependencies come
    from this project's environment through a .pth line, so nothing is downloaded; `dvc` gets
    a launcher running the venv's python (pip does not write the scripts of dependencies it
    finds already installed)."""
    venv = tmp_path_factory.mktemp("getting-started") / "venv"
    subprocess.run([sys._base_executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(site, "tunixrt_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    launcher = venv / "bin" / "dvc"
    launcher.write_text(f'#!/bin/sh\nexec "{python}" -m dvc "$@"\n')
    launcher.chmod(0o755)
    return venv


def team_repository(base: Path) -> Path:
    """The team's repository before the tutorial: traces under traces/, cloned from origin."""
    seed = base / "seed"
    (seed / "traces").mkdir(parents=True)
    shutil.copy2(FIXTURES / TRACES, seed / "traces")
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "add", "traces"],
                ["git", "commit", "-q", "-m", "our traces"]):  # fmt: skip
        subprocess.run(cmd, cwd=seed, env=env(), check=True, capture_output=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(seed), str(base / "origin.git")],
                   env=env(), check=True, capture_output=True)  # fmt: skip
    subprocess.run(["git", "clone", "-q", str(base / "origin.git"), str(base / "my-traces")],
                   env=env(), check=True, capture_output=True)  # fmt: skip
    return base / "my-traces"


def test_getting_started_runs_as_written(venv: Path, tmp_path: Path) -> None:
    blocks = doc_blocks(DOC.read_text(encoding="utf-8"))
    (tmp_path / "work").mkdir()
    (tmp_path / "elsewhere").mkdir()
    t = Tutorial(
        venv=venv,
        work=tmp_path / "work",
        repo=team_repository(tmp_path / "team"),
        elsewhere=tmp_path / "elsewhere",
        remote=tmp_path / "dvcstore",
    )
    used: set[str] = set()
    checked: list[dict] = []
    upgraded, confs = False, 0
    for block in blocks:
        if block.lang == "yaml" and block.info == "title=conf/config.yaml":
            conf = t.repo / "conf" / "config.yaml"
            written = yaml.safe_load(conf.read_text())
            shown = yaml.safe_load("\n".join(block.lines))
            assert shown["hydra"] == written["hydra"] and shown["eval"] == written["eval"]
            if not confs:  # init's choices are all in the first one the doc shows
                assert set(map(str, written["defaults"])) <= set(map(str, shown["defaults"]))
            conf.write_text("\n".join(block.lines) + "\n" + STAND_IN_MODEL)
            confs += 1
            continue
        if block.lang != "sh":
            continue
        # the install section runs where dist/ goes, the rest in the team's repository (a
        # block's `git clone` and `cd` move on from there)
        t.cwd = t.work if block.section.startswith("1.") else t.repo
        for cmd in commands(block):
            if block.not_run is not None:
                if cmd.startswith("pip install -U 'dist/tunixrt-"):
                    # the upgrade, simulated: a change to dataset/keys.py (dataset, export, rl,
                    # preference and evaluate import it) in the installed package
                    keys = _installed_keys_py(t)
                    keys.write_text(keys.read_text() + "\n# an upgrade\n")
                    upgraded = True
                checked += check_without_running(t, cmd)
                continue
            if cmd in SKIP:
                used.add(cmd)
            elif cmd in SUBSTITUTE:
                used.add(cmd)
                SUBSTITUTE[cmd](t, cmd)
            elif cmd.startswith("cd "):
                t.cwd = t.cwd / cmd[3:]
                assert t.cwd.is_dir(), cmd
            else:
                if upgraded and cmd.startswith("tunixrt init --upgrade"):
                    # before the upgrade is recorded, a stage refuses to run on the old digest
                    refused = t.sh("dvc repro -f -s dataset", cwd=t.repo, check=False)
                    assert refused.returncode != 0
                    assert "tunixrt init --upgrade" in refused.stdout + refused.stderr
                t.sh(cmd, cwd=t.repo / "inputs" if cmd in FROM_SUBDIRECTORY else None)
                after_command(t, cmd, upgraded)
    assert confs == 2
    missing = (SUBSTITUTE.keys() | SKIP.keys() | FROM_SUBDIRECTORY) - used - set(t.outputs)
    assert not missing, f"substitutions for commands no longer in the doc: {missing}"
    assert upgraded

    # the accelerator lines passed the manifest stage: GPU (1 and 4 GPUs), TPU, a 3-value sweep
    platforms = [(m["runtime"]["platform"], m["runtime"]["mesh_shape"]) for m in checked]
    assert platforms == [("gpu", [1, 1]), ("gpu", [4, 1]), ("tpu", [8, 1])] + [("gpu", [1, 1])] * 3
    assert [m["training"]["learning_rate"] for m in checked[-3:]] == [1e-5, 2e-5, 5e-5]
    assert all(m["training"]["lora"]["enabled"] for m in checked)


def after_command(t: Tutorial, cmd: str, upgraded: bool) -> None:
    """What each command should have left behind (beyond exiting 0)."""
    out = t.outputs[cmd]
    if cmd.startswith("tunixrt status") and not upgraded:
        assert "google-tunix" in out and "jax" in out
    elif cmd.startswith("tunixrt init --model"):
        assert "google/gemma-3-1b-it" in out and "hf download" in out
        assert not (t.repo / "stages").exists() and not (t.repo / "conf" / "source").exists()
        again = t.sh(cmd, check=False)
        assert again.returncode == 2 and "--force" in again.stderr
        assert (t.repo / "traces" / TRACES).read_bytes() == (FIXTURES / TRACES).read_bytes()
    elif cmd.startswith("dvc exp run -S experiment=smoke") and not upgraded:
        report = json.loads((t.repo / "data/traces/report.json").read_text())
        assert report["accepted"] == 476, report
        metrics = json.loads((t.repo / "runs/train/metrics.json").read_text())
        assert metrics["steps"] == 4
        assert (t.repo / "runs/eval/metrics.json").is_file()
        assert (t.repo / "runs/report.html").is_file()
    elif cmd == "tunixrt report":
        assert (t.repo / "runs/experiments.html").is_file()
        status = t.sh("tunixrt status --json --no-devices", cwd=t.repo / "inputs").stdout
        subprocess.run([sys.executable, "-m", "json.tool"], input=status, text=True, check=True)
        assert json.loads(status)["pipeline"]["root"] == str(t.repo)
    elif cmd == "dvc add models/gemma-3-1b-it":
        assert (t.repo / "models/gemma-3-1b-it.dvc").is_file()
        status = t.sh("git status --porcelain").stdout  # the .dvc file, not the weights
        assert "models/gemma-3-1b-it.dvc" in status and "gemma-3-1b-it/" not in status
    elif cmd == "dvc repro" and not upgraded:  # conf/ now says what the experiment did
        assert "Running stage" not in out, out
    elif cmd == "tunixrt verify --data-only":
        assert "ok   data tracked by models/gemma-3-1b-it.dvc pulled into the clone" in out
        assert " 0 failed" in out, out
    elif cmd == "dvc exp run --run-all":
        rows = list(csv.DictReader(io.StringIO(t.sh("dvc exp show --csv", cwd=t.repo).stdout)))
        states = [r["State"] for r in rows]
        assert states.count("Success") == 2, states
    elif cmd == "dvc pull":  # metrics from git, the rest (the weights too) from the remote
        for rel in (
            "runs/eval/metrics.json",
            "runs/eval/predictions.jsonl",
            "data/export/train.jsonl",
            "models/gemma-3-1b-it/model.safetensors",
        ):
            assert (t.cwd / rel).read_bytes() == (t.repo / rel).read_bytes(), rel
    elif cmd.startswith("tunixrt status") and upgraded:
        assert (
            "code changed since dvc.yaml was written: dataset, evaluate, export, preference, rl"
            in out
        )
    elif cmd == "tunixrt init --upgrade":
        assert "dvc.yaml (dataset, export, rl, preference, evaluate)" in out
    elif cmd == "dvc repro" and upgraded:
        ran = {ln.split("'")[1] for ln in out.splitlines() if ln.startswith("Running stage")}
        assert ran == {"dataset", "export", "rl", "preference", "evaluate"}, out
