"""The docs a new user follows: generated pages in sync, the quickstart runs as written, every
page linked from the README, every command's help shows an example."""

import re
import shlex
import subprocess

import pytest
from conftest import BIN, REPO, make_pipeline, sh, tunixrt

from tunixrt.reference import write_docs


def test_generated_reference_pages_are_current() -> None:
    assert write_docs(REPO, check=True) == [], "run `tunixrt docs` and commit docs/"


def test_pipeline_page_shows_the_current_dag() -> None:
    dag = sh("dvc", "dag", "--mermaid", cwd=REPO).stdout.strip()
    page = (REPO / "docs" / "pipeline.md").read_text()
    assert f"```mermaid\n{dag}\n```" in page


def test_every_doc_is_linked_from_the_readme() -> None:
    """Every page is linked from the README's Docs section, under one of its groups, and every
    link leads to a page."""
    readme = (REPO / "README.md").read_text()
    docs = readme.split("\n## Docs\n", 1)[1]
    for group in (
        "Getting started",
        "Guides",
        "Reference",
        "Troubleshooting",
        "Design and evidence",
    ):
        assert f"**{group}**" in docs, group
    linked = set(re.findall(r"\((docs/[^)#]+\.md)", docs))
    assert {f"docs/{p.name}" for p in (REPO / "docs").glob("*.md")} <= linked
    missing = sorted(p for p in linked if not (REPO / p).is_file())
    assert not missing, missing


def test_help_of_every_command_shows_an_example() -> None:
    from tunixrt.cli import build_parser

    commands = [[]] + [[c] for c in build_parser()._subparsers._group_actions[0].choices]
    assert len(commands) >= 6
    for cmd in commands:
        out = subprocess.run([str(BIN / "tunixrt"), *cmd, "--help"], capture_output=True, text=True)
        assert out.returncode == 0 and "examples:\n  tunixrt " in out.stdout, cmd


def quickstart_commands() -> list[str]:
    text = (REPO / "docs" / "quickstart.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", text, re.DOTALL)
    assert len(blocks) == 2 and "make demo" in blocks[0]
    lines = [ln.split("  #")[0].strip() for ln in blocks[1].splitlines()]
    return [ln for ln in lines if ln]


@pytest.mark.e2e
def test_quickstart_runs_as_written(tmp_path) -> None:
    """The commands after `make demo`/`make test`, in a fresh copy with training cut short (the
    smoke preset); the project's environment is already on PATH, as `source` would put it."""
    root = make_pipeline(tmp_path / "p")
    commands = quickstart_commands()
    assert commands[0] == "source .venv/bin/activate" and len(commands) == 5
    for line in commands[1:]:
        args = shlex.split(line)
        proc = tunixrt(*args[1:], cwd=root) if args[0] == "tunixrt" else sh(*args, cwd=root)
        assert proc.returncode == 0, line
    show = sh("dvc", "exp", "show", "--md", cwd=root).stdout
    assert "0.003" in show  # the experiment's learning rate, in the run registry
