"""`tunixrt verify` / `make verify`: the CI reproducibility check.

Everything is checked on a fresh clone of the committed HEAD (uncommitted changes are not CI's):
1. params.yaml equals conf/ composed with no overrides; in a pipeline `tunixrt init` wrote, each
   stage's recorded code is the installed code; the committed run's libraries (jax, flax, tunix,
   ... as its run manifest records them) are the installed ones.
2. `dvc repro` from nothing, then `dvc status` is clean.
3. Every data-stage out (ingest, dataset, export, manifest) has the md5 the committed dvc.lock
   records, and the lock's deps and params match what the clone computed (else it is stale).
4. The data stages, forced to run again in the clone, write the same bytes (no timestamps); the
   rl stage, when rl.enabled is false, writes the outs the lock records.
5. Train, rl and evaluate (unless --data-only): run again, their deterministic outs are
   identical; their metrics agree with the committed ones within `--rel-tol` (XLA on another
   CPU may round differently, so bytes are not compared across machines).
6. publish (unless --data-only): the published weights, read back by Tunix's loader, are the
   trained policy's, and the model card's figures are the eval metrics'.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tunixrt.compose import PARAMS_FILE, write_params
from tunixrt.manifest.schema import library_differences
from tunixrt.paths import RUN_MANIFEST

DATA_STAGES = ("ingest", "dataset", "export", "manifest")
MODEL_STAGES = ("train", "rl", "evaluate")
LOCK = "dvc.lock"


@dataclass
class Report:
    failures: list[str] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)

    def check(self, ok: bool, what: str, why: str = "") -> bool:
        (self.passed if ok else self.failures).append(what if ok else f"{what}\n    {why}")
        print(f"{'ok  ' if ok else 'FAIL'} {what}" + ("" if ok else f"\n     {why}"), flush=True)
        return ok


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    return env


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True)


def _stages_in(lock: dict[str, Any], names: tuple[str, ...]) -> list[str]:
    return [s for s in names if s in lock.get("stages", {})]


def check_params(root: Path, report: Report) -> None:
    """params.yaml equals conf/ composed, in `root` (verify passes the clone of HEAD)."""
    with tempfile.TemporaryDirectory() as tmp:
        composed = write_params(root, (), Path(tmp) / PARAMS_FILE).read_text()
    current_path = root / PARAMS_FILE
    current = current_path.read_text() if current_path.is_file() else ""
    diff = "\n     ".join(
        list(
            difflib.unified_diff(
                composed.splitlines(),
                current.splitlines(),
                "conf/ composed",
                PARAMS_FILE,
                n=0,
                lineterm="",
            )
        )[:20]
    )
    report.check(
        composed == current,
        "params.yaml equals conf/ composed with no overrides",
        f"it differs:\n     {diff}\n     fix: put the change in conf/ and run `tunixrt compose`, "
        "or undo the hand edit; then commit params.yaml",
    )


def check_code_digests(root: Path, report: Report) -> None:
    """In a pipeline `tunixrt init` wrote: each stage's recorded code is the installed code."""
    from tunixrt.scaffold import recorded_codes, stale_stages

    if not recorded_codes(root / "dvc.yaml"):
        return  # this repository's own dvc.yaml: its code deps are files
    stale = [f"{n} ({a} -> {b})" for n, (a, b) in stale_stages(root / "dvc.yaml").items()]
    report.check(
        not stale,
        "dvc.yaml records the installed tunixrt's code for every stage",
        f"changed: {', '.join(stale)}\n     fix: `tunixrt init --upgrade`, `dvc repro`, commit",
    )


def _entries(stage: dict[str, Any], kind: str) -> dict[str, str | None]:
    return {e["path"]: e.get("md5") for e in stage.get(kind, [])}


def committed_manifest(root: Path, lock: dict[str, Any]) -> dict[str, Any] | None:
    """The run manifest the committed dvc.lock records, found by its md5 in `root`'s workspace
    or DVC cache, as data; None when neither holds it (or the lock has no manifest stage)."""
    stage = lock.get("stages", {}).get("manifest") or {}
    md5 = _entries(stage, "outs").get(RUN_MANIFEST.as_posix())
    if not md5:
        return None
    cached = root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    for path in (root / RUN_MANIFEST, cached):
        if path.is_file() and hashlib.md5(data := path.read_bytes()).hexdigest() == md5:
            doc = yaml.safe_load(data)
            return doc if isinstance(doc, dict) else None
    return None


def check_libraries(root: Path, lock: dict[str, Any], report: Report) -> None:
    """The committed run's libraries (its run manifest's `libraries`) are the installed ones:
    with others, the fresh manifest's md5 differs from the lock's and the committed metrics come
    from another stack, and DVC cannot tell (no dep or param changed)."""
    manifest = committed_manifest(root, lock)
    if manifest is None:
        if "manifest" in lock.get("stages", {}):
            print(
                f"note: libraries not checked: the committed {RUN_MANIFEST} is neither in the "
                "workspace nor in the DVC cache (`dvc pull` it)",
                flush=True,
            )
        return
    recorded = manifest.get("libraries")
    if not isinstance(recorded, dict) or not recorded:
        return  # a manifest from before libraries were recorded
    differ = library_differences(recorded)
    pins = " ".join(f"'{lib}=={old}'" for lib, old, _ in differ if old)
    report.check(
        not differ,
        "the committed run's libraries (its run manifest) are the installed ones",
        "differ: "
        + ", ".join(
            f"{lib} recorded {old or '(not installed)'}, installed {new or '(not installed)'}"
            for lib, old, new in differ
        )
        + "\n     the committed outs and metrics come from those versions, and DVC does not see "
        "a library change; fix: install them"
        + (f" (pip install {pins})" if pins else "")
        + ", or record the installed ones: `dvc repro --force --single-item manifest`, "
        "`dvc repro`, commit dvc.lock",
    )


def compare_locks(
    committed: dict[str, Any], fresh: dict[str, Any], stages: list[str], report: Report
) -> None:
    for name in stages:
        old, new = committed["stages"].get(name), fresh["stages"].get(name)
        if old is None or new is None:
            report.check(False, f"{name}: in dvc.lock", "stage missing from the committed lock")
            continue
        stale = [
            f"dep {p}"
            for p, md5 in _entries(new, "deps").items()
            if _entries(old, "deps").get(p) != md5
        ]
        if old.get("params") != new.get("params"):
            stale.append("params")
        if old.get("cmd") != new.get("cmd"):
            stale.append("cmd")
        if not report.check(
            not stale,
            f"{name}: committed dvc.lock is up to date with its deps and params",
            f"changed since the lock was written: {', '.join(stale)}\n"
            "     fix: run `dvc repro` and commit dvc.lock (and params.yaml)",
        ):
            continue
        outs_old, outs_new = _entries(old, "outs"), _entries(new, "outs")
        differ = [p for p in outs_new if outs_old.get(p) != outs_new[p]]
        report.check(
            not differ,
            f"{name}: outs have the md5 the committed dvc.lock records",
            f"{', '.join(differ)} differ although deps and params are the same: the stage is not "
            "reproducible (timestamps, absolute paths, unordered output?) or dvc.lock was "
            "written by other code; fix the stage, then `dvc repro` and commit dvc.lock",
        )


def check_rl_off(committed: dict[str, Any], fresh: dict[str, Any], report: Report) -> None:
    """With rl.enabled false the rl stage writes the same few bytes on any machine: its outs
    must be the committed ones (its deps hold the SFT weights, which XLA may round otherwise)."""
    old, new = committed["stages"].get("rl"), fresh["stages"].get("rl")
    if new is None or (new.get("params") or {}).get("params.yaml", {}).get("rl", {}).get("enabled"):
        return
    differ = [
        p for p, m in _entries(new, "outs").items() if _entries(old or {}, "outs").get(p) != m
    ]
    report.check(
        not differ,
        "rl (rl.enabled false): outs have the md5 the committed dvc.lock records",
        f"{', '.join(differ)} differ: the disabled rl stage must write the same bytes everywhere",
    )


def _out_md5s(lock: dict[str, Any], stages: list[str]) -> dict[str, str | None]:
    return {p: m for s in stages for p, m in _entries(lock["stages"][s], "outs").items()}


def check_repeat(clone: Path, stages: list[str], report: Report, label: str) -> None:
    before = yaml.safe_load((clone / LOCK).read_text())
    proc = _run(["dvc", "repro", "--force", "--no-run-cache", "--single-item", *stages], clone)
    if not report.check(proc.returncode == 0, f"{label}: forced rerun", proc.stderr[-2000:]):
        return
    after = yaml.safe_load((clone / LOCK).read_text())
    a, b = _out_md5s(before, stages), _out_md5s(after, stages)
    differ = [p for p in b if a.get(p) != b[p]]
    report.check(
        not differ,
        f"{label}: a second run on this machine writes identical outs",
        f"{', '.join(differ)} changed between two runs with the same inputs: the stage writes "
        "something run-dependent (a timestamp, a random value, an unordered dict/set)",
    )


def fetch_tracked_data(root: Path, clone: Path, report: Report) -> bool:
    """Files a `.dvc` file tracks (`dvc add inputs/traces.jsonl`) are in no git clone: the clone
    pulls them as a teammate would, from this repository's DVC cache (as a local remote), else
    from the default remote. True when there are none, or every one arrived."""
    listed = _run(["git", "ls-files", "*.dvc"], clone).stdout.split()
    if not listed:
        return True
    cache = _run(["dvc", "cache", "dir"], root).stdout.strip()
    _run(["dvc", "remote", "add", "--local", "-f", "verify-cache", cache], clone)
    proc = _run(["dvc", "pull", "-r", "verify-cache", *listed], clone)
    if proc.returncode != 0:  # not in this machine's cache: the team's remote may have it
        proc = _run(["dvc", "pull", *listed], clone)
    return report.check(
        proc.returncode == 0,
        f"data tracked by {', '.join(listed)} pulled into the clone",
        "it is neither in this repository's DVC cache nor on its default remote: `dvc push` it "
        f"(or `dvc add` it again here)\n{(proc.stdout + proc.stderr)[-1500:]}",
    )


def verify(
    root: Path, *, data_only: bool = False, rel_tol: float = 1e-3, keep: bool = False
) -> Report:
    report = Report()
    dirty = _run(["git", "status", "--porcelain", "--untracked-files=no"], root).stdout.strip()
    if dirty:
        print(
            "note: verify checks the committed HEAD; uncommitted changes are not included",
            flush=True,
        )
    tmp = Path(tempfile.mkdtemp(prefix="tunixrt-verify-"))
    top = _run(["git", "rev-parse", "--show-toplevel"], root).stdout.strip()
    repo = Path(top) if top else root
    clone_repo = tmp / "clone"
    # the pipeline may sit in a subdirectory of its git repository (`dvc init --subdir`)
    clone = clone_repo / root.resolve().relative_to(repo.resolve()) if top else clone_repo
    try:
        proc = _run(["git", "clone", "--quiet", str(repo), str(clone_repo)], tmp)
        if not report.check(proc.returncode == 0, "fresh clone of HEAD", proc.stderr):
            return report
        check_params(clone, report)
        check_code_digests(clone, report)
        committed = yaml.safe_load((clone / LOCK).read_text()) if (clone / LOCK).is_file() else None
        if not report.check(
            committed is not None, "dvc.lock is committed", "run `dvc repro`, commit dvc.lock"
        ):
            return report
        check_libraries(root, committed, report)
        if not fetch_tracked_data(root, clone, report):
            return report
        declared = yaml.safe_load((clone / "dvc.yaml").read_text()).get("stages", {})
        target = [s for s in DATA_STAGES if s in declared] if data_only else []
        print(f"running `dvc repro {' '.join(target)}` in {clone} ...", flush=True)
        proc = _run(["dvc", "repro", *target], clone)
        if not report.check(
            proc.returncode == 0,
            "dvc repro from nothing in a fresh clone",
            (proc.stdout + proc.stderr)[-3000:],
        ):
            return report
        status = _run(["dvc", "status", "--json", *target], clone)
        clean = status.returncode == 0 and status.stdout.strip() in ("{}", "")
        report.check(
            clean,
            "dvc status is clean right after dvc repro",
            f"dvc status says:\n{status.stdout[-2000:]}",
        )
        fresh = yaml.safe_load((clone / LOCK).read_text())
        data = _stages_in(fresh, DATA_STAGES)
        compare_locks(committed, fresh, data, report)
        check_repeat(clone, data, report, "data stages")
        check_rl_off(committed, fresh, report)
        model = [] if data_only else _stages_in(fresh, MODEL_STAGES)
        if model:
            from tunixrt.verify.model import check_model_stages

            check_model_stages(root, clone, model, committed, report, rel_tol, _run)
        if not data_only and "publish" in fresh.get("stages", {}):
            from tunixrt.verify.model import check_published

            check_published(clone, report)
    finally:
        if keep:
            print(f"kept the clone at {clone_repo}", flush=True)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return report


def main(root: Path, *, data_only: bool, rel_tol: float, keep: bool) -> int:
    report = verify(root, data_only=data_only, rel_tol=rel_tol, keep=keep)
    n_ok, n_bad = len(report.passed), len(report.failures)
    print(f"\nverify: {n_ok} checks passed, {n_bad} failed", flush=True)
    return 1 if n_bad else 0
