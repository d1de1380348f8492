"""`tunixrt init`: make a git repository a tunixrt pipeline that runs the installed package.

It writes dvc.yaml (each stage's command is `python -m tunixrt.stages STAGE --code DIGEST`, the
digest of the stage's code as installed, so upgrading tunixrt and `tunixrt init --upgrade` rerun
exactly the stages whose code changed), conf/config.yaml (only what this pipeline changes: the
rest is composed from the package through `pkg://tunixrt.conf`), params.yaml, .gitignore entries
and, when needed, `dvc init` with DVC's Hydra composition on. It never overwrites a file without
`force` and never touches data. `upgrade` (after upgrading tunixrt) recomposes params.yaml from
conf/ and the installed package's defaults, says which values that changed, and rewrites the
commands in dvc.yaml of the stages whose code changed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tunixrt.conf import CONF_DIR, group_options
from tunixrt.errors import ConfigError
from tunixrt.lineage import code_digest
from tunixrt.paths import (
    EVAL_METRICS,
    INGEST_REPORT,
    MODELS_DIR,
    PREFERENCE_METRICS,
    RL_METRICS,
    SUMMARY,
    TRAIN_METRICS,
)
from tunixrt.stages import STAGES

USER_CONFIG = """\
# This pipeline's config, composed by Hydra into params.yaml (`dvc exp run`, `tunixrt compose`).
# `tunixrt` is the installed package's config tree (every group and its default option); below
# it goes only what this pipeline changes. Examples:
#   defaults: [..., override /source: files]   then   source: {paths: [inputs/*.jsonl]}
#   train: {learning_rate: 1.0e-3}
# One-off changes: `dvc exp run -S train.max_steps=100`. Every key with its value: params.yaml;
# what each one means: `tunixrt docs` (writes docs/config-reference.md here).
defaults:
  - tunixrt
  - _self_
  - experiment: null       # presets go last: -S experiment=smoke (tunixrt/conf/experiment/)

hydra:
  searchpath:
    - pkg://tunixrt.conf

eval:
  sets: []   # eval-item files to score besides the held-out split, e.g. [inputs/eval.jsonl]
"""
MODEL_OVERRIDE = (
    "  # the model this pipeline trains (`tunixrt init --model`; Hydra wants overrides last).\n"
    "  # These outrank an experiment preset's choice of model and train (its other settings\n"
    "  # still apply); `-S model=...` or `-S train=...` on the command line outranks them.\n"
    "  - override /model: {preset}\n"
)
PRETRAINED_TRAIN = (
    "  - override /train: tunix_rt   # for pretrained weights: tunix-rt's learning rate (2e-5), "
    "not the\n"
    "                                # demo model's from-scratch one\n"
)
MODELS_GITIGNORE = "/models/?*/"
OLD_MODELS_GITIGNORE = ("/models/*", "!/models/README.md")  # written by tunixrt 0.1.0's init
GITIGNORE = (
    "/data/",
    # every download folder (`hf download ... --local-dir models/NAME`: hundreds of MB to many
    # GB) stays out of git; models/README.md and the `models/NAME.dvc` files of `dvc add` do
    # not. Not `/models/*` with exceptions: DVC's own gitignore matcher then takes models/ as
    # ignored and never finds the .dvc files there (a `dvc exp run` removes the weights).
    MODELS_GITIGNORE,
    "/runs/train/perf.json",
    "/runs/train/checkpoints.aside/",
    "/runs/rl/perf.json",
    "/runs/rl/checkpoints.aside/",
    "/runs/preference/perf.json",
    "/runs/preference/checkpoints.aside/",
    "/runs/experiments.html",
    "/dvc_plots/",
    "/.tunixrt/",  # runtime=cpu_ray: the loopback cluster's shared folder and host workspaces
    "__pycache__/",
)
INPUTS_README = "Put trace files (JSONL, optionally .gz) here: dvc.yaml tracks this folder.\n"
MODELS_README = (
    "Download checkpoints and tokenizers here, one folder a model (tunixrt's docs/models.md\n"
    "lists the presets and their downloads), e.g.\n\n"
    "    hf download google/gemma-3-1b-it --local-dir models/gemma-3-1b-it\n\n"
    "then track it with DVC, so clones, CI and queued experiments get it from a commit:\n\n"
    "    dvc add models/gemma-3-1b-it && git add models/gemma-3-1b-it.dvc\n\n"
    "git ignores every folder here. dvc.yaml tracks the folder: replacing a file here makes\n"
    "`dvc status` show the pipeline stale, and `dvc repro` retrain.\n"
)
PLOTS: list[dict[str, Any]] = [
    {"training loss": {"x": "step", "y": {"runs/train/live/plots/metrics/train/loss.tsv": "loss"}}},
    {
        "learning rate": {
            "x": "step",
            "y": {"runs/train/live/plots/metrics/train/learning_rate.tsv": "learning_rate"},
        }
    },
    {"GRPO reward": {"x": "step", "y": {"runs/rl/live/plots/metrics/rl/reward.tsv": "reward"}}},
    {
        "GRPO held-out exact match": {
            "x": "step",
            "y": {"runs/rl/live/plots/metrics/eval/exact_match.tsv": "exact_match"},
        }
    },
    {
        "DPO/ORPO reward margin": {
            "x": "step",
            "y": {
                "runs/preference/live/plots/metrics/preference/reward_margin.tsv": "reward_margin"
            },
        }
    },
]


# The metrics `dvc exp show` and `dvc metrics show` list, in this order (no stage declares any:
# DVC would put a stage's before this list). The summary's headline figures lead; the ingest
# counters (one per source and reject reason) come last.
METRICS = (
    SUMMARY.as_posix(),
    EVAL_METRICS.as_posix(),
    TRAIN_METRICS.as_posix(),
    RL_METRICS.as_posix(),
    PREFERENCE_METRICS.as_posix(),
    "runs/train/perf.json",
    "runs/rl/perf.json",
    "runs/preference/perf.json",
    INGEST_REPORT.as_posix(),
)


class _Dumper(yaml.SafeDumper):
    """safe_dump without anchors and aliases (`&id001`/`*id001`) for shared objects: dvc.yaml
    must read as written, each stage whole."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def model_presets() -> list[str]:
    """The model presets the installed package ships (tunixrt/conf/model/*.yaml)."""
    return group_options("model")


def model_preset(name: str) -> dict[str, Any]:
    """A model preset's settings, as its file in the installed package has them."""
    if name not in model_presets():
        raise ConfigError(f"--model {name}: no such preset; presets: {', '.join(model_presets())}")
    text = (CONF_DIR / "model" / f"{name}.yaml").read_text(encoding="utf-8")
    doc = yaml.safe_load(text)
    return doc if isinstance(doc, dict) else {}


def user_config(model: str | None = None) -> str:
    """conf/config.yaml as `tunixrt init [--model PRESET]` writes it."""
    if model is None:
        return USER_CONFIG
    lines = MODEL_OVERRIDE.format(preset=model)
    if model_preset(model).get("checkpoint_path"):  # an unknown preset is refused here
        lines += PRETRAINED_TRAIN
    head, sep, tail = USER_CONFIG.partition("\nhydra:")
    return head.rstrip("\n") + "\n" + lines + "\n" + sep[1:] + tail


def stage_command(name: str) -> str:
    return f"python -m tunixrt.stages {name} --code {code_digest(name, STAGES[name].target)}"


def stage_entry(name: str) -> dict[str, Any]:
    spec = STAGES[name]
    entry: dict[str, Any] = {"cmd": stage_command(name)}
    if spec.deps:
        entry["deps"] = list(spec.deps)
    if spec.params:
        entry["params"] = list(spec.params)
    if spec.outs:
        entry["outs"] = list(spec.outs)
    return entry


def pipeline_yaml() -> str:
    stages = {name: stage_entry(name) for name in STAGES}
    head = (
        "# Written by `tunixrt init` for the installed tunixrt; `tunixrt init --upgrade` rewrites\n"
        "# it after an upgrade (each cmd carries its stage's code digest).\n"
    )
    body = {"stages": stages, "metrics": list(METRICS), "plots": PLOTS}
    return head + yaml.dump(body, Dumper=_Dumper, sort_keys=False, width=100)


def recorded_codes(dvc_yaml: Path) -> dict[str, str]:
    """stage -> the code digest its cmd records, for a pipeline `tunixrt init` wrote."""
    if not dvc_yaml.is_file():
        return {}
    try:
        doc = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{dvc_yaml.name}: not valid YAML: {exc}") from None
    stages = doc.get("stages", {}) if isinstance(doc, dict) else {}
    out = {}
    for name, entry in stages.items() if isinstance(stages, dict) else ():
        if not isinstance(entry, dict):
            continue
        parts = str(entry.get("cmd", "")).split()
        if "tunixrt.stages" in parts and "--code" in parts:
            out[name] = parts[parts.index("--code") + 1]
    return out


def upgrade_commands(dvc_yaml: Path) -> list[str]:
    """Rewrite the `cmd` line of each stage whose recorded code is not the installed code, and
    nothing else (stages, deps or plots the user added stay as they are)."""
    if not recorded_codes(dvc_yaml):
        raise ConfigError("dvc.yaml: not written by `tunixrt init`; nothing to upgrade")
    stale = stale_stages(dvc_yaml)
    text = dvc_yaml.read_text(encoding="utf-8")
    for name, (old, new) in stale.items():
        text = text.replace(
            f"tunixrt.stages {name} --code {old}", f"tunixrt.stages {name} --code {new}"
        )
    text, new_stages = _add_missing_stages(text)
    text, added = _add_missing_deps(text)
    dvc_yaml.write_text(text, encoding="utf-8")
    return [
        f"dvc.yaml ({', '.join(stale) or 'no stage changed'})",
        *(f"dvc.yaml: new stage {name}" for name in new_stages),
        *(f"dvc.yaml: {name} now {VERBS[key]} {item}" for name, key, item in added),
    ]


def _add_missing_stages(text: str) -> tuple[str, list[str]]:
    """The stages of the installed tunixrt that dvc.yaml lacks (e.g. publish, after an upgrade
    from a release without it), each written where the stage graph puts it: before the next
    installed stage the file has, else after the last stage."""
    doc = yaml.safe_load(text) or {}
    have = doc.get("stages") or {}
    names = list(STAGES)
    missing = [n for n in names if n not in have]
    lines = text.splitlines(keepends=True)
    for name in missing:
        block = yaml.dump({name: stage_entry(name)}, Dumper=_Dumper, sort_keys=False, width=100)
        block_lines = ["  " + line if line.strip() else line for line in block.splitlines(True)]
        later = [n for n in names[names.index(name) + 1 :] if n in have]
        at = next(
            (i for i, line in enumerate(lines) if later and line.rstrip() == f"  {later[0]}:"),
            None,
        )
        if at is None:  # after the last stage: before the next top-level key, or at the end
            start = next(i for i, line in enumerate(lines) if line.rstrip() == "stages:")
            at = next(
                (i for i in range(start + 1, len(lines)) if lines[i][:1] not in (" ", "\n", "#")),
                len(lines),
            )
        lines[at:at] = block_lines
        have = {**have, name: {}}
    return "".join(lines), missing


def _name(item: Any) -> str:
    return next(iter(item)) if isinstance(item, dict) else str(item)


VERBS = {"deps": "depends on", "params": "reads", "outs": "writes"}


def _add_missing_deps(text: str) -> tuple[str, list[tuple[str, str, str]]]:
    """The data deps, params and plain outs the installed stages declare (e.g. models/ for
    manifest, preference.enabled for evaluate) that the user's dvc.yaml lacks, added under each
    stage's `deps:`, `params:` or `outs:` (the rest of the text is kept as it is)."""
    added: list[tuple[str, str, str]] = []
    for key in VERBS:
        text, more = _add_missing(text, key)
        added += [(name, key, item) for name, item in more]
    return text, added


def _add_missing(text: str, key: str) -> tuple[str, list[tuple[str, str]]]:
    doc = yaml.safe_load(text) or {}
    lines, added = text.splitlines(keepends=True), []
    for name, spec in STAGES.items():
        stage = (doc.get("stages") or {}).get(name)
        if not isinstance(stage, dict):
            continue
        have = {_name(i) for i in stage.get(key) or []}
        wanted = [i for i in getattr(spec, key) if isinstance(i, str)]  # outs with options: not
        missing = [d for d in wanted if d not in have]
        if not missing:
            continue
        start = next((i for i, line in enumerate(lines) if line.rstrip() == f"  {name}:"), None)
        if start is None or not isinstance(stage.get(key), list):
            continue  # a layout of the user's own: left to them (status names the stale stage)
        at = next(i for i in range(start, len(lines)) if lines[i].strip().startswith(f"{key}:"))
        item = lines[at + 1] if lines[at + 1].lstrip().startswith("- ") else lines[at]
        indent = " " * (len(item) - len(item.lstrip()))
        end = at + 1
        while end < len(lines) and (
            lines[end].startswith(f"{indent}- ") or lines[end].startswith(f"{indent}  ")
        ):
            end += 1
        lines[end:end] = [f"{indent}- {d}\n" for d in missing]
        added += [(name, d) for d in missing]
    return "".join(lines), added


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    """params as dotted keys -> values (lists are values)."""
    if isinstance(node, dict) and node:
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: node} if prefix else {}


def params_changes(old: Any, new: Any) -> list[str]:
    """One line per dotted key whose value differs between two params.yaml documents."""
    a, b = _flat(old), _flat(new)
    lines = []
    for key in sorted(a.keys() | b.keys()):
        if key not in b:
            lines.append(f"{key}: {a[key]!r} -> (removed)")
        elif key not in a:
            lines.append(f"{key}: (new) {b[key]!r}")
        elif a[key] != b[key]:
            lines.append(f"{key}: {a[key]!r} -> {b[key]!r}")
    return lines


def upgrade_pipeline(root: Path) -> tuple[list[str], list[str]]:
    """After upgrading tunixrt: params.yaml recomposed from conf/ and the installed package's
    config (its defaults may have changed, a key may be renamed), then dvc.yaml's commands.
    Returns (what was written, the params.yaml values that changed). When conf/ no longer
    composes (it sets a key the package renamed), nothing is written and the error names it."""
    import tempfile

    from tunixrt.compose import write_params
    from tunixrt.params import PARAMS_FILE

    _require_git(root)
    dvc_yaml = root / "dvc.yaml"
    if not recorded_codes(dvc_yaml):
        raise ConfigError("dvc.yaml: not written by `tunixrt init`; nothing to upgrade")
    params = root / PARAMS_FILE
    before = params.read_bytes() if params.is_file() else b""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            after = write_params(root, (), Path(tmp) / PARAMS_FILE).read_bytes()
        except ConfigError as exc:
            raise ConfigError(
                f"{exc}\nthe installed tunixrt's config does not take conf/ as it is (a key "
                "renamed or removed?): fix conf/config.yaml (docs/config-reference.md lists every "
                "key), then run `tunixrt init --upgrade` again; nothing was changed"
            ) from None
    try:
        old = yaml.safe_load(before) or {}
    except yaml.YAMLError:  # a broken params.yaml: every value is new
        old = {}
    changes = params_changes(old, yaml.safe_load(after) or {})
    written = upgrade_commands(dvc_yaml)
    if after != before:
        tmp_params = params.with_name(f".{params.name}.upgrade")
        tmp_params.write_bytes(after)
        tmp_params.replace(params)
    written.append(
        f"params.yaml ({len(changes)} values changed)" if changes else "params.yaml (unchanged)"
    )
    return written + ensure_workspace_files(root), changes


def stale_stages(dvc_yaml: Path) -> dict[str, tuple[str, str]]:
    """stage -> (recorded, installed) code digest, where they differ (an upgraded tunixrt)."""
    out = {}
    for name, old in recorded_codes(dvc_yaml).items():
        if name in STAGES and (new := code_digest(name, STAGES[name].target)) != old:
            out[name] = (old, new)
    return out


def _require_git(root: Path) -> None:
    """`root` is a git repository's root (a pipeline's dvc.yaml, conf/ and .dvc/ go there)."""
    if (root / ".git").exists():
        return
    proc = subprocess.run(
        ["git", "rev-parse", "--show-toplevel"], cwd=root, capture_output=True, text=True
    )
    top = proc.stdout.strip() if proc.returncode == 0 else ""
    if not top:
        raise ConfigError(f"{root}: not a git repository (run `git init` first)")
    raise ConfigError(
        f"{root}: a subdirectory of the git repository {top}; a tunixrt pipeline (dvc.yaml, "
        f"conf/, params.yaml, .dvc/) goes at the repository's root: run `tunixrt init` in {top}"
    )


def _run(args: list[str], root: Path) -> None:
    proc = subprocess.run(args, cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ConfigError(f"{' '.join(args)} failed: {proc.stderr.strip()[-500:]}")


def ensure_workspace_files(root: Path) -> list[str]:
    """The folders dvc.yaml tracks (inputs/, models/), each with its README, and the .gitignore
    entries; what was written."""
    written = []
    for folder, readme in (("inputs", INPUTS_README), (MODELS_DIR, MODELS_README)):
        if not (root / folder).exists():
            (root / folder).mkdir()
            (root / folder / "README.md").write_text(readme, encoding="utf-8")
            written.append(f"{folder}/README.md")
    gitignore = root / ".gitignore"
    lines = gitignore.read_text(encoding="utf-8").splitlines() if gitignore.exists() else []
    old = [g for g in OLD_MODELS_GITIGNORE if g in lines]
    lines = [g for g in lines if g not in old]
    missing = [g for g in GITIGNORE if g not in lines]
    if missing or old:
        gitignore.write_text("\n".join([*lines, *missing]) + "\n", encoding="utf-8")
        written.append(".gitignore")
    return written


def init_pipeline(
    root: Path, *, force: bool = False, upgrade: bool = False, model: str | None = None
) -> list[str]:
    """Make `root` (a git repository's root) a tunixrt pipeline, training the model preset
    `model` (None: the package's default, the demo model); the files written, for the log."""
    from tunixrt.compose import write_params

    _require_git(root)
    written = []
    if upgrade:
        return upgrade_pipeline(root)[0]
    targets = {"dvc.yaml": pipeline_yaml(), "conf/config.yaml": user_config(model)}
    existing = [rel for rel in (*targets, "params.yaml") if (root / rel).exists()]
    if existing and not force:
        raise ConfigError(
            f"{', '.join(existing)} already exist here; `tunixrt init --force` overwrites them "
            "(`tunixrt init --upgrade` updates dvc.yaml and params.yaml for an upgraded tunixrt)"
        )
    if not (root / ".dvc").is_dir():
        _run([sys.executable, "-m", "dvc", "init", "-q"], root)
        written.append(".dvc/")
    _run([sys.executable, "-m", "dvc", "config", "hydra.enabled", "true"], root)
    for rel, text in targets.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
        written.append(rel)
    written += ensure_workspace_files(root)
    write_params(root)
    written.append("params.yaml")
    return written


COMMIT_PATHS = (".dvc", ".dvcignore", ".gitignore", "dvc.yaml", "params.yaml", "conf", "inputs")


def _section(root: Path, key: str) -> dict[str, Any]:
    """A section of the params.yaml at `root`."""
    doc = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
    section = doc.get(key) if isinstance(doc, dict) else None
    return section if isinstance(section, dict) else {}


def trains(root: Path) -> list[str]:
    """Which model the pipeline at `root` trains (its params.yaml), and what it still needs."""
    model = _section(root, "model")
    model_id, path = model.get("model_id", "?"), model.get("checkpoint_path")
    if model.get("preset") == "tiny" or path is None:
        others = [p for p in model_presets() if model_preset(p).get("checkpoint_path")]
        return [
            f"this repository trains {model_id}, the demo model (random init, byte tokenizer): "
            f"for a real one, `tunixrt init --force --model PRESET` ({', '.join(others)})"
        ]
    lines = [f"this repository trains {model_id} from {path}/"]
    if not (root / path).is_dir():
        lines[0] += ", which is not there yet: download it with"
        lines.append(f"    hf download {model_id} --local-dir {path}")
        lines.append(
            "  (params.yaml composes without it, but `dvc repro` stops at the manifest stage "
            "until it is there)"
        )
    runtime = _section(root, "runtime").get("name", "?")
    others = [name for name in group_options("runtime") if name != runtime]
    lines.append(
        f"  runtime: {runtime}; for another device, `dvc exp run -S runtime=NAME` "
        f"({', '.join(others)}) or `- override /runtime: NAME` in conf/config.yaml"
    )
    return lines


def next_steps(root: Path) -> list[str]:
    """What to do after `tunixrt init` in `root`, exactly (commands to copy)."""
    add = [p for p in COMMIT_PATHS if (root / p).exists()]
    if (root / MODELS_DIR / "README.md").is_file():
        add.append(f"{MODELS_DIR}/README.md")
    path = _section(root, "model").get("checkpoint_path")
    steps = [
        "commit what init wrote (DVC's experiments start from a commit):\n"
        f"       git add {' '.join(add)}\n"
        '       git commit -m "tunixrt pipeline"'
    ]
    if path and not (root / path).is_dir():
        steps.append(f"download the weights into {path}/ (the command above)")
    steps.append(
        "dvc repro      # the whole pipeline on the built-in arithmetic problems (source: "
        "synthetic)"
    )
    steps.append(
        "your own traces: put the JSONL files under inputs/, `git add inputs/` and commit (a "
        "queued run, `dvc exp run --queue`, sees only committed files), then\n"
        "       dvc exp run -S source=files -S 'source.paths=[inputs/*.jsonl]'\n"
        "     (to keep that setting, put it in conf/config.yaml as its comments show)"
    )
    return ["next:", *(f"  {i}. {step}" for i, step in enumerate(steps, 1))]
