"""`tunixrt status`: what is installed, which devices JAX sees, and what is stale here."""

from __future__ import annotations

import filecmp
import tempfile
from importlib.metadata import PackageNotFoundError, version
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from tunixrt.manifest.schema import LIBRARIES, library_differences
from tunixrt.paths import RUN_MANIFEST

PACKAGES = ("tunixrt", "dvc", "hydra-core", "pydantic", *LIBRARIES)
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


def _pipeline(root: Path) -> dict[str, Any] | None:
    if not ((root / "dvc.yaml").is_file() and (root / "conf").is_dir()):
        return None
    from dvc.repo import Repo

    from tunixrt.compose import PARAMS_FILE, write_params
    from tunixrt.errors import TunixrtError

    info: dict[str, Any] = {"root": str(root)}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            composed = write_params(root, (), Path(tmp) / PARAMS_FILE)
            current = root / PARAMS_FILE
            info["params_match_conf"] = current.is_file() and filecmp.cmp(
                composed, current, shallow=False
            )
    except TunixrtError as exc:
        info["params_match_conf"] = f"error: {exc}"
    from tunixrt.scaffold import stale_stages

    info["code_changed"] = sorted(stale_stages(root / "dvc.yaml"))
    info["libraries_changed"] = library_drift(root)
    with Repo(str(root)) as repo:
        info["stages"] = [s.addressing for s in repo.index.stages]
        info["stale"] = {k: [str(c) for c in v] for k, v in sorted(repo.status().items())}
    return info


def collect(root: Path, devices: bool = True) -> dict[str, Any]:
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
        lines.append("pipeline: none here (no dvc.yaml and conf/)")
    else:
        lines.append(f"pipeline: {pipe['root']}")
        lines.append(f"  stages: {', '.join(pipe['stages'])}")
        match = pipe["params_match_conf"]
        lines.append(
            "  params.yaml: "
            + (
                "matches conf/"
                if match is True
                else "differs from conf/ composed (run `tunixrt compose` or `dvc exp run`)"
                if match is False
                else str(match)
            )
        )
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
            lines += [f"    {k}: {', '.join(v)}" for k, v in pipe["stale"].items()]
        else:
            lines.append("  stale: none, everything is up to date")
    return "\n".join(lines) + "\n"
