"""`tunixrt status`: what is installed, which devices JAX sees, and what is stale here."""

from __future__ import annotations

import contextlib
import filecmp
import tempfile
from importlib.metadata import PackageNotFoundError, version
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from tunixrt.manifest.schema import LIBRARIES, library_differences
from tunixrt.paths import RUN_MANIFEST

PACKAGES = ("tunixrt", "dvc", "hydra-core", "pydantic", *LIBRARIES)
PARAMS_HINT = (
    "an experiment (`dvc exp run -S ...`, `dvc exp apply`) leaves params.yaml so, and "
    "`dvc repro` runs it as it is",
    "to keep these values: put them in conf/config.yaml (`tunixrt compose` then writes this "
    "same params.yaml), or keep the experiment on a branch (`dvc exp branch EXP BRANCH`)",
    "`tunixrt compose` (as any `dvc exp run`, which recomposes) goes back to conf/ and throws "
    "these values away",
)
LIBRARY_HINT = (
    "DVC does not see a library change: install the recorded versions, or record the installed "
    "ones with `dvc repro --force --single-item manifest` then `dvc repro` (train and what "
    "follows rerun) and commit dvc.lock"
)


def _version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def _devices() -> list[str] | str:
    if find_spec("jax") is None:
        return "jax not installed"
    import jax

    return [f"{d.platform}:{d.id} {d.device_kind}" for d in jax.devices()]


def library_drift(root: Path) -> list[dict[str, str | None]]:
    """Where the run manifest here records other library versions than are installed (a run
    made with another jax, flax, tunix, ...); none without a manifest or one that records none."""
    import yaml

    path = root / RUN_MANIFEST
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return []
    recorded = doc.get("libraries") if isinstance(doc, dict) else None
    if not isinstance(recorded, dict):
        return []
    return [
        {"library": lib, "recorded": old, "installed": new}
        for lib, old, new in library_differences(recorded)
    ]


def _plain(value: Any) -> Any:
    """`value` as JSON data all the way down (DVC's status holds dicts, lists and strings)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


SHOWN = 4  # paths a line of `tunixrt status` names; `--json` has them all


def _changes(node: Any) -> str:
    """`{path: status}` (params: `{file: {key: status}}`) as `path (status), ...`."""
    if isinstance(node, dict):
        items = [
            f"{k} ({v})" if not isinstance(v, dict) else f"{k}: {_changes(v)}"
            for k, v in node.items()
        ]
    elif isinstance(node, list):
        items = [_changes(v) for v in node]
    else:
        return str(node)
    more = f" and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return ", ".join(items[:SHOWN]) + more


def stale_lines(stale: dict[str, Any]) -> list[str]:
    """DVC's status of each stage, one readable line per reason, e.g.
    `train: changed deps: data/export/run_manifest.yaml (modified)`."""
    lines = []
    for stage, reasons in stale.items():
        for reason in reasons if isinstance(reasons, list) else [reasons]:
            if isinstance(reason, dict):
                lines += [f"{stage}: {what}: {_changes(v)}" for what, v in reason.items()]
            else:
                lines.append(f"{stage}: {reason}")
    return lines


def _pipeline(root: Path | None) -> dict[str, Any] | None:
    if root is None or not ((root / "dvc.yaml").is_file() and (root / "conf").is_dir()):
        return None
    from dvc.repo import Repo

    from tunixrt.compose import PARAMS_FILE, write_params
    from tunixrt.errors import TunixrtError

    info: dict[str, Any] = {"root": str(root)}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            composed = write_params(root, (), Path(tmp) / PARAMS_FILE)
            current = root / PARAMS_FILE
            if not current.is_file():
                info["params_match_conf"] = f"no {PARAMS_FILE} (`tunixrt compose` writes it)"
            elif filecmp.cmp(composed, current, shallow=False):
                info["params_match_conf"] = True
            else:
                info["params_match_conf"] = False
                info["params_differences"] = _differences(composed, current)
    except TunixrtError as exc:
        info["params_match_conf"] = f"error: {exc}"
    from tunixrt.scaffold import stale_stages

    info["code_changed"] = sorted(stale_stages(root / "dvc.yaml"))
    info["libraries_changed"] = library_drift(root)
    with contextlib.chdir(root), Repo(str(root)) as repo:  # DVC names paths from the cwd
        info["stages"] = [s.addressing for s in repo.index.stages]
        status = repo.status()  # as `dvc status --json` has it, in the order of dvc.yaml
        order = dict.fromkeys([*info["stages"], *status])  # dvc.yaml's, then any others
        info["stale"] = _plain({s: status[s] for s in order if s in status})
    return info


def _differences(composed: Path, current: Path) -> list[str]:
    """`key: conf/ composed -> params.yaml` for each value that differs."""
    import yaml

    from tunixrt.scaffold import params_changes

    def load(path: Path) -> Any:
        try:
            return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            return {}

    return params_changes(load(composed), load(current))


def collect(root: Path | None, devices: bool = True) -> dict[str, Any]:
    """What `tunixrt status` shows, for the pipeline at `root` (None: there is none)."""
    return {
        "versions": {p: _version(p) for p in PACKAGES},
        "devices": _devices() if devices else "not checked",
        "pipeline": _pipeline(root),
    }


def render(info: dict[str, Any]) -> str:
    lines = ["versions:"]
    lines += [f"  {k:<17} {v or 'not installed'}" for k, v in info["versions"].items()]
    dev = info["devices"]
    lines.append("devices:" + (f" {dev}" if isinstance(dev, str) else ""))
    if not isinstance(dev, str):
        lines += [f"  {d}" for d in dev]
    pipe = info["pipeline"]
    if pipe is None:
        lines.append("pipeline: none here (no dvc.yaml and conf/ here or in a parent directory)")
    else:
        lines.append(f"pipeline: {pipe['root']}")
        lines.append(f"  stages: {', '.join(pipe['stages'])}")
        match = pipe["params_match_conf"]
        if match is True:
            lines.append("  params.yaml: matches conf/ composed")
        elif match is False:
            diff = pipe.get("params_differences") or []
            lines.append("  params.yaml: differs from conf/ composed (conf/ -> params.yaml):")
            lines += [f"    {d}" for d in diff[:20]]
            if len(diff) > 20:
                lines.append(f"    ... and {len(diff) - 20} more")
            lines += [f"    {hint}" for hint in PARAMS_HINT]
        else:
            lines.append(f"  params.yaml: {match}")
        if pipe.get("code_changed"):
            lines.append(
                f"  code changed since dvc.yaml was written: {', '.join(pipe['code_changed'])} "
                "(tunixrt upgraded: run `tunixrt init --upgrade`, then `dvc repro`)"
            )
        if drift := pipe.get("libraries_changed"):
            lines.append(f"  libraries: {RUN_MANIFEST} records other versions than are installed")
            lines += [
                f"    warning: {d['library']}: recorded {d['recorded'] or '(not installed)'}, "
                f"installed {d['installed'] or '(not installed)'}"
                for d in drift
            ]
            lines.append(f"    ({LIBRARY_HINT})")
        if pipe["stale"]:
            lines.append("  stale:")
            lines += [f"    {line}" for line in stale_lines(pipe["stale"])]
        else:
            lines.append("  stale: none, everything is up to date")
    return "\n".join(lines) + "\n"
