"""dvc.yaml declares exactly the code each stage imports and the params keys it reads."""

import json
import shutil
from pathlib import Path

import yaml
from conftest import REPO, make_pipeline, sh

from tunixrt.lineage import stage_closure
from tunixrt.stages import STAGES

CODE_ROOTS = ("tunixrt", "stages")


def declared_code(root: Path, deps: list[str]) -> set[str]:
    """The .py files the code deps (files or folders under tunixrt/ and stages/) cover."""
    out = set()
    for dep in deps:
        if dep.split("/")[0] not in CODE_ROOTS:
            continue
        path = root / dep
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        out |= {f.relative_to(root).as_posix() for f in files}
    return out


def drift(root: Path) -> list[str]:
    """One line per disagreement between dvc.yaml and the code, naming stage and file/key."""
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    problems = []
    for name, spec in STAGES.items():
        if name not in stages:
            problems.append(f"{name}: not in dvc.yaml")
            continue
        entry = stages[name]
        imported = stage_closure(root, name, spec.target)
        declared = declared_code(root, entry.get("deps", []))
        problems += [
            f"{name}: imports {f}, not declared in deps" for f in sorted(imported - declared)
        ]
        problems += [f"{name}: declares {f}, never imports it" for f in sorted(declared - imported)]
        data = {d for d in entry.get("deps", []) if d.split("/")[0] not in CODE_ROOTS}
        if data - {"fixtures"} != set(spec.deps):  # this repository also reads fixtures/
            problems.append(f"{name}: dvc.yaml data deps {sorted(data)} != {sorted(spec.deps)}")
        if entry.get("outs", []) != list(spec.outs):
            problems.append(f"{name}: dvc.yaml outs differ from tunixrt.stages'")
        if "metrics" in entry:  # the top-level list orders `dvc exp show` (scaffold.METRICS)
            problems.append(f"{name}: declares metrics; list them under the top-level metrics")
        params = tuple(entry.get("params", []))
        if params != spec.params:
            problems.append(f"{name}: dvc.yaml params {list(params)} != reads {list(spec.params)}")
    problems += [f"{n}: in dvc.yaml, not in tunixrt.stages" for n in stages if n not in STAGES]
    return problems


def test_dvc_yaml_declares_exactly_what_each_stage_imports_and_reads() -> None:
    assert drift(REPO) == []


def test_an_undeclared_import_is_caught(tmp_path: Path) -> None:
    for rel in ("tunixrt", "stages", "dvc.yaml"):
        src = REPO / rel
        if src.is_dir():
            shutil.copytree(src, tmp_path / rel, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, tmp_path / rel)
    assert drift(tmp_path) == []
    stage = tmp_path / "tunixrt" / "dataset" / "stage.py"
    stage.write_text(
        stage.read_text() + "\n\ndef _late():\n    from tunixrt.report import charts\n"
    )
    assert drift(tmp_path) == [
        "dataset: imports tunixrt/report/__init__.py, not declared in deps",
        "dataset: imports tunixrt/report/charts.py, not declared in deps",
    ]

    dvc = tmp_path / "dvc.yaml"
    dvc.write_text(dvc.read_text().replace("      - tunixrt/dataset\n", "      - tunixrt\n", 1))
    assert "dataset: declares tunixrt/cli.py, never imports it" in drift(tmp_path)


def test_type_checking_imports_do_not_count(tmp_path: Path) -> None:
    pkg = tmp_path / "tunixrt"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from tunixrt import b\n"
        "else:\n    from tunixrt import c\n"
    )
    (pkg / "b.py").write_text("")
    (pkg / "c.py").write_text("")
    from tunixrt.lineage import closure

    got = {p.name for p in closure(tmp_path, ["tunixrt.a"])}
    assert got == {"__init__.py", "a.py", "c.py"}


def test_editing_an_adapter_reruns_ingest_dataset_and_the_stages_after_sft(tmp_path: Path) -> None:
    """With the committed dvc.lock, a change to tunixrt/ingest/adapters.py makes `dvc status`
    report that file as a changed dep of ingest, dataset (it reads the eval sets, to
    decontaminate), rl, preference and evaluate (they read problems through evaluate.problems,
    which renders eval items like ingest), and of no other stage."""
    root = make_pipeline(tmp_path / "p", smoke=False)
    shutil.copy2(REPO / "dvc.lock", root / "dvc.lock")

    def changed_deps() -> dict[str, set[str]]:
        status = json.loads(sh("dvc", "status", "--json", cwd=root).stdout)
        return {
            stage: {p for c in changes if isinstance(c, dict) for p in c.get("changed deps", {})}
            for stage, changes in status.items()
        }

    before = changed_deps()
    adapters = root / "tunixrt" / "ingest" / "adapters.py"
    adapters.write_text(adapters.read_text() + "\n# edited\n")
    after = changed_deps()
    touched = {s for s in after if after[s] - before.get(s, set())}
    assert touched == {"ingest", "dataset", "rl", "preference", "evaluate"}
