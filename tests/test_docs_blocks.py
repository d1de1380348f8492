"""The docs' code blocks work as written: every `conf/` YAML block composes with the real Hydra,
and every `tunixrt`/`dvc` command line of an `sh` block runs in a pipeline and exits 0, or, where
it cannot run on a CPU in seconds, is checked as far as it can be (its overrides composed, its
arguments parsed by DVC's own parser). NOT_RUN says which lines are not run, and why: a new
command line in a doc is run unless a rule there says why not.

docs/quickstart.md and docs/getting-started.md are left out: their own tests run them in full.
One pipeline serves the whole module; stages and compositions run in this process."""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import re
import shlex
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FIXTURES, REPO, make_pipeline, sh

SKIPPED_PAGES = {
    "quickstart.md": "run in full by tests/test_docs.py",
    "getting-started.md": "run in full by its own test",
}
PAGES = [
    REPO / "README.md",
    *sorted(p for p in (REPO / "docs").glob("*.md") if p.name not in SKIPPED_PAGES),
]

# Lines not run, by pattern, and why. Each is still checked as far as a CPU allows in seconds:
# `dvc exp run` and a training `tunixrt run` compose their overrides (and check the batch
# against the mesh, as the manifest stage would); every other dvc line is parsed by DVC's parser.
NOT_RUN = {
    r"^dvc exp run\b": "trains (minutes): its -S overrides are composed, sweeps expanded",
    r"^dvc repro\b": "runs the whole pipeline, training included (minutes)",
    r"^dvc (queue|exp (show|diff|apply|branch|push|pull))\b": "needs experiments that ran",
    r"^dvc (metrics|plots)\b": "needs the metrics and curves of a trained run",
    r"^dvc (push|pull|remote)\b": "needs a remote (tests/test_experiments.py makes a local one)",
    r"^dvc get\b": "downloads from a git repository's URL and its remote",
    r"^tunixrt verify\b": "clones and reruns the pipeline (--data-only: under a minute; all: about "
    "13 minutes); tests/test_verify.py runs it",
    r"^tunixrt run (train|rl|evaluate|publish)\b": "trains, decodes with or publishes a trained "
    "model: composed",
    r"^tunixrt report\b": "renders runs/ of a trained pipeline; tests/test_report*.py run it",
}
# Files the docs' examples name as the user's own, made here from the tunix-rt fixtures.
USER_FILES = {
    "inputs/a.jsonl": "dev-reasoning-v2.jsonl",
    "inputs/b.jsonl": "dev-reasoning-v2.jsonl",
    "inputs/my_eval.jsonl": "eval_v1.jsonl",
}
CONF_FILE = re.compile(r"(?:^|[`\s(])(conf/[\w/]+\.yaml)")


def fenced(text: str, lang: str) -> Iterator[tuple[int, str, str]]:
    """(line number, the two lines before, body) of each ```lang block."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() == f"```{lang}":
            j = i + 1
            while not lines[j].startswith("```"):
                j += 1
            yield i + 1, "\n".join(lines[max(0, i - 2) : i]), "\n".join(lines[i + 1 : j])
            i = j
        i += 1


def command_lines(body: str) -> Iterator[str]:
    """The `tunixrt`/`dvc` commands of a sh block: continuations joined, comments dropped,
    `a && b` split."""
    for line in body.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        for part in " ".join(shlex.quote(w) for w in words).split(" '&&' "):
            if part.split(" ", 1)[0] in ("tunixrt", "dvc"):
                yield part


def doc_commands() -> list[tuple[str, str]]:
    out = []
    for page in PAGES:
        for lineno, _, body in fenced(page.read_text(encoding="utf-8"), "sh"):
            out += [(f"{page.relative_to(REPO)}:{lineno}", c) for c in command_lines(body)]
    return out


def conf_blocks() -> list[tuple[str, str, str]]:
    """(where, conf path, body) of each YAML block that is a `conf/` file: it names one in its
    first line or the two lines before it, or it starts a defaults list or a `@package`."""
    out = []
    for page in PAGES:
        for lineno, before, body in fenced(page.read_text(encoding="utf-8"), "yaml"):
            first = body.splitlines()[0] if body else ""
            named = CONF_FILE.findall(first) or CONF_FILE.findall(before)
            if named or body.startswith(("defaults:", "# @package")) or "\ndefaults:" in body:
                out.append(
                    (
                        f"{page.relative_to(REPO)}:{lineno}",
                        (named or ["conf/config.yaml"])[-1],
                        body,
                    )
                )
    return out


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A pipeline (this repository's, smoke-sized) with the data stages run and the user files
    the docs name; the tests run in it."""
    from tunixrt.stages import run_stage

    path = make_pipeline(tmp_path_factory.mktemp("docs") / "p")
    for rel, fixture in USER_FILES.items():
        shutil.copyfile(FIXTURES / fixture, path / rel)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(path)
        from tunixrt.compose import compose

        params = compose(path)
        with contextlib.redirect_stderr(io.StringIO()):
            for stage in ("ingest", "dataset", "export"):
                run_stage(stage, params, path)
        yield path


def sweep(overrides: list[str]) -> list[list[str]]:
    """Every combination of a `dvc exp run -S 'a=1,2'` sweep, as Hydra's parser expands it."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    choices = []
    for o in parsed:
        if o.is_sweep_override():
            key = o.get_key_element()
            choices.append([f"{key}={v}" for v in o.sweep_string_iterator()])
        else:
            choices.append([o.input_line])
    return [list(c) for c in itertools.product(*choices)]


def compose_checked(root: Path, override_sets: list[list[str]]) -> None:
    """Compose each set as `dvc exp run -S` would (sweeps expanded), validate it as tunixrt
    compose does, and check the batch against the mesh (and a Ray run's shared folder) as the
    manifest stage does before training; one Hydra session for them all (a fresh one per set
    costs three times as much)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from tunixrt.compose import _validate
    from tunixrt.manifest.preflight import check_batch_fits_mesh, check_launcher
    from tunixrt.manifest.schema import RuntimeSection, TrainingSection
    from tunixrt.validation import validate_config

    combos = {tuple(c) for overrides in override_sets for c in sweep(overrides)}
    with initialize_config_dir(str(root / "conf"), version_base=None):
        for combo in sorted(combos):
            try:
                cfg = compose(config_name="config", overrides=list(combo))
                OmegaConf.resolve(cfg)
                params = OmegaConf.to_container(cfg)
                _validate(params, combo)  # type: ignore[arg-type]
                runtime = validate_config(RuntimeSection, params["runtime"], "runtime")  # type: ignore[index]
                check_batch_fits_mesh(
                    validate_config(TrainingSection, params["train"], "train"),  # type: ignore[index]
                    runtime,
                )
                check_launcher(runtime)
            except Exception as exc:
                raise AssertionError(f"{list(combo)}: {exc}") from None


def set_params(args: list[str]) -> list[str]:
    """The `-S`/`--set-param` values of a `dvc exp run` line."""
    return [args[i + 1] for i, a in enumerate(args) if a in ("-S", "--set-param")]


def run_tunixrt(args: list[str], cwd: Path) -> int:
    """`tunixrt ARGS` in this process, in `cwd`; its exit status."""
    from tunixrt.cli import main

    old = Path.cwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        os.chdir(old)
    return 0


def test_every_doc_command_line_runs_or_says_why_not(root: Path, tmp_path: Path) -> None:
    import dvc.cli

    commands = doc_commands()
    assert len(commands) > 40, "the docs' sh blocks were not found"
    ran: list[str] = []
    to_compose: list[list[str]] = []
    fresh: Path | None = None
    first: dict[str, str] = {}  # each distinct line once, in order, named by its first place
    for where, line in commands:
        first.setdefault(line, where)
    for line, where in first.items():
        args = shlex.split(line)
        reason = next((why for pat, why in NOT_RUN.items() if re.match(pat, line)), None)
        if args[0] == "dvc":
            dvc.cli.parse_args(args[1:])  # DVC's own parser: a bad flag fails here
            if args[1:3] == ["exp", "run"]:
                to_compose.append(set_params(args))
            assert reason, f"{where}: `{line}`: run it here, or add a NOT_RUN rule with a reason"
            continue
        if reason:
            if args[1] == "run":
                to_compose.append(args[3:])
            continue
        cwd = root
        if args[1] == "init":  # a pipeline of its own: a fresh git repository, but to upgrade
            if "--upgrade" not in args or fresh is None:
                fresh = tmp_path / f"own{len(ran)}"
                fresh.mkdir()
                sh("git", "init", "-q", cwd=fresh)
            cwd = fresh
        for i, a in enumerate(args[:-1]):  # `-o /tmp/x` writes into this test's folder instead
            if a in ("-o", "--output") and Path(args[i + 1]).is_absolute():
                args[i + 1] = str(tmp_path / Path(args[i + 1]).name)
        assert run_tunixrt(args[1:], cwd) == 0, f"{where}: `{line}` failed"
        ran.append(line)
    assert ran and to_compose
    compose_checked(root, to_compose)


def test_conf_blocks_compose_with_hydra(root: Path) -> None:
    """Each `conf/` YAML block, written into the pipeline, composes; an option file of a group
    is composed selected (`model=my_gemma`)."""
    from tunixrt.compose import compose

    blocks = conf_blocks()
    assert blocks, "no conf/ block found in the docs"
    for where, rel, body in blocks:
        path = root / rel
        saved = path.read_bytes() if path.exists() else None
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body + "\n", encoding="utf-8")
        try:
            parts = Path(rel).parts
            overrides = [f"{parts[1]}={Path(rel).stem}"] if len(parts) == 3 else []
            try:
                compose(root, overrides)
            except Exception as exc:
                raise AssertionError(f"{where}: {rel} does not compose: {exc}") from None
        finally:
            path.write_bytes(saved) if saved is not None else path.unlink()


def test_no_command_hides_outside_a_sh_block() -> None:
    """An indented code block escapes the check above: commands go in ```sh blocks."""
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        outside = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
        for line in outside.splitlines():
            assert not re.match(r"^ {4}(tunixrt|dvc) ", line), f"{page.name}: {line.strip()}"


def test_no_dead_install_or_download_commands() -> None:
    """`huggingface-cli` prints that it no longer works and downloads nothing; tunixrt is not on
    PyPI, so `pip install tunixrt...` finds nothing. Checked in the docs' sh blocks and the
    comments of the package's config files (a quoted error message may still show them)."""
    texts = [
        (f"{page.name}:{lineno}", body)
        for page in PAGES
        for lineno, _, body in fenced(page.read_text(encoding="utf-8"), "sh")
    ]
    texts += [
        (str(p), p.read_text(encoding="utf-8"))
        for p in (REPO / "tunixrt" / "conf").glob("*/*.yaml")
    ]
    for where, text in texts:
        assert "huggingface-cli" not in text, f"{where}: use `hf download`, `hf auth login`"
        assert not re.search(r"pip install '?tunixrt\b", text), f"{where}: tunixrt is not on PyPI"


def test_evaluation_page_quotes_the_committed_metrics() -> None:
    import json

    metrics = json.loads((REPO / "runs" / "eval" / "metrics.json").read_text())
    page = (REPO / "docs" / "evaluation.md").read_text()
    assert f'"after":  {{"exact_match": {metrics["after"]["exact_match"]}, "n": 366' in page
    assert f'"max_new_tokens": {metrics["max_new_tokens"]}' in page
