"""Each DVC stage's import closure, computed from the code with `ast`, and its digest.

In this repository the closure is what dvc.yaml's code deps must be (tests/test_stage_deps.py);
in a pipeline made by `tunixrt init` (which has no copy of the code) each stage's command carries
the digest of its closure in the installed package, so an upgrade that changes it reruns it.

A module counts when any `import` of it runs at some point (also inside functions: stages import
lazily); imports under `if TYPE_CHECKING:` never run and do not count. Importing `a.b.c` runs
`a/__init__.py` and `a/b/__init__.py` too.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterator
from pathlib import Path

PACKAGES = ("tunixrt", "stages")


def module_files(root: Path, module: str) -> list[Path]:
    """The files that importing `module` runs (its packages' __init__ first), if it is ours."""
    parts = module.split(".")
    if parts[0] not in PACKAGES:
        return []
    files = []
    for i in range(1, len(parts)):
        init = root.joinpath(*parts[:i], "__init__.py")
        if init.is_file():
            files.append(init)
    leaf = root.joinpath(*parts)
    if leaf.with_suffix(".py").is_file():
        files.append(leaf.with_suffix(".py"))
    elif (leaf / "__init__.py").is_file():
        files.append(leaf / "__init__.py")
    return files


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, package: str) -> Iterator[str]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            yield from _imports(ast.Module(body=node.orelse, type_ignores=[]), package)
            continue
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            yield base
            yield from (f"{base}.{a.name}" for a in node.names)  # submodules named in `from`
        yield from _imports(node, package)


def _module_name(root: Path, path: Path) -> tuple[str, str]:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
        return ".".join(parts), ".".join(parts)
    return ".".join(parts), ".".join(parts[:-1])


def closure(root: Path, modules: list[str]) -> set[Path]:
    """Every file of ours that importing `modules` runs."""
    todo = [f for m in modules for f in module_files(root, m)]
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        _, package = _module_name(root, path)
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for name in _imports(tree, package):
            todo.extend(module_files(root, name))
    return seen


def stage_closure(root: Path, stage: str, target: str) -> set[str]:
    """stages/<stage>.py and the stage function's module, with all they import, as posix paths
    relative to `root`."""
    files = closure(root, [f"stages.{stage}", target.split(":")[0]])
    return {p.relative_to(root).as_posix() for p in files}


def package_root() -> Path:
    """The folder holding the imported `tunixrt` package (site-packages, or a checkout)."""
    import tunixrt

    return Path(tunixrt.__file__).resolve().parent.parent


def code_digest(
    stage: str, target: str, root: Path | None = None, *, exclude: frozenset[str] = frozenset()
) -> str:
    """16 hex digits of sha256 over the stage's module closure inside `tunixrt` (paths and
    bytes), as installed: what a plugin pipeline's dvc.yaml records for the stage. `exclude`:
    posix paths (relative to the package root) left out, e.g. modules that change no number."""
    return closure_digest(target, root, exclude=exclude)[:16]


def closure_digest(
    target: str, root: Path | None = None, *, exclude: frozenset[str] = frozenset()
) -> str:
    """sha256 over every file of the closure of `target`'s module and the stage registry, as
    `root / path` holds it, less `exclude`."""
    root = root or package_root()
    files = sorted(
        p
        for p in closure(root, [target.split(":")[0], "tunixrt.stages"])
        if p.relative_to(root).as_posix() not in exclude
    )
    h = hashlib.sha256()
    for p in files:
        h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()
