"""The `tunixrt` command: run a stage with Hydra overrides, compose params.yaml, show status."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from tunixrt.errors import ConfigError, TunixrtError


def find_root(start: Path | None = None) -> Path | None:
    """The pipeline root, as git and dvc find theirs: the nearest directory, from `start` (the
    current one) up, holding dvc.yaml and conf/. The search ends at the git repository's root
    (a pipeline is never above its repository). Failing that, the current directory when it
    holds conf/ (a folder to compose and run stages in without DVC); else None."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "dvc.yaml").is_file() and (folder / "conf").is_dir():
            return folder
        if (folder / ".git").exists():
            break
    return here if (here / "conf").is_dir() else None


def pipeline_root() -> Path:
    """find_root(), or an error saying there is no pipeline here."""
    root = find_root()
    if root is None:
        raise ConfigError(
            f"{Path.cwd()}: not in a tunixrt pipeline (no dvc.yaml and conf/ here or in a parent "
            "directory); `tunixrt init` makes one in a git repository"
        )
    return root


def _cmd_run(args: argparse.Namespace) -> None:
    from tunixrt.compose import compose, composition_label
    from tunixrt.stages import run_stage
    from tunixrt.validation import config_source

    root = pipeline_root()
    with config_source(composition_label(args.overrides)):
        run_stage(args.stage, compose(root, args.overrides), root)


def _cmd_compose(args: argparse.Namespace) -> None:
    from tunixrt.compose import write_params

    out = write_params(pipeline_root(), args.overrides, Path(args.output) if args.output else None)
    print(f"wrote {out}", file=sys.stderr)


def _cmd_status(args: argparse.Namespace) -> None:
    from tunixrt.status import collect, render

    info = collect(find_root(), devices=not args.no_devices)
    if args.json:
        import orjson

        sys.stdout.write(orjson.dumps(info, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        sys.stdout.write(render(info))


def _cmd_verify(args: argparse.Namespace) -> None:
    from tunixrt.verify.check import main as verify_main

    sys.exit(
        verify_main(pipeline_root(), data_only=args.data_only, rel_tol=args.rel_tol, keep=args.keep)
    )


def _cmd_docs(args: argparse.Namespace) -> None:
    from tunixrt.reference import write_docs

    stale = write_docs(pipeline_root(), check=args.check)
    for rel in stale:
        print(f"{'stale' if args.check else 'wrote'} {rel}", file=sys.stderr)
    if args.check and stale:
        sys.exit(1)


def _cmd_init(args: argparse.Namespace) -> None:
    from tunixrt.scaffold import init_pipeline, next_steps, trains, upgrade_pipeline

    if args.upgrade:
        written, changes = upgrade_pipeline(pipeline_root())
        print(f"wrote {', '.join(written)}", file=sys.stderr)
        if changes:
            print(
                "params.yaml values that changed (the installed tunixrt's defaults, or conf/ "
                "edits not composed before):",
                file=sys.stderr,
            )
            for line in changes:
                print(f"  {line}", file=sys.stderr)
        print(
            "next: `dvc repro`, then commit dvc.yaml, params.yaml and dvc.lock (params.yaml is "
            "now conf/ composed: values an experiment set with `-S` are not in it; put the ones "
            "you keep in conf/config.yaml, or pass them again to `dvc exp run -S ...`)",
            file=sys.stderr,
        )
        return
    root = Path.cwd()
    written = init_pipeline(root, force=args.force, model=args.model)
    print(f"wrote {', '.join(written)}", file=sys.stderr)
    print("\n".join([*trains(root), *next_steps(root)]), file=sys.stderr)


def _cmd_report(args: argparse.Namespace) -> None:
    from tunixrt.paths import EXPERIMENTS_HTML
    from tunixrt.report.experiments import experiments
    from tunixrt.report.markdown import MODEL_CARD
    from tunixrt.report.page import render_page

    root = pipeline_root()
    out = Path(args.output) if args.output else root / EXPERIMENTS_HTML
    exps = None if args.no_experiments else experiments(root)
    out.parent.mkdir(parents=True, exist_ok=True)
    card = root.resolve() / MODEL_CARD  # linked from wherever the page goes
    href = Path(os.path.relpath(card, out.parent.resolve())).as_posix()
    out.write_text(render_page(root, exps, card_href=href), encoding="utf-8")
    print(f"wrote {out}", file=sys.stderr)


def _parser(sub: Any, name: str, help: str, examples: str) -> argparse.ArgumentParser:
    return sub.add_parser(
        name,
        help=help,
        description=help,
        epilog="examples:\n" + examples,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def build_parser() -> argparse.ArgumentParser:
    from tunixrt import __version__

    p = argparse.ArgumentParser(
        prog="tunixrt",
        description=__doc__,
        epilog="examples:\n"
        "  tunixrt run ingest source=tunixrt_dev      # one stage on tunix-rt's traces, no DVC\n"
        "  tunixrt compose experiment=smoke           # write params.yaml, then `dvc repro`\n"
        "  tunixrt status                             # what is stale, which devices JAX sees\n"
        "  tunixrt verify --data-only                 # the reproducibility check, data stages\n"
        "the pipeline itself runs with `dvc repro` and `dvc exp run -S key=value`",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"tunixrt {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    ini = _parser(
        sub,
        "init",
        "make this git repository (at its root) a tunixrt pipeline running the installed package",
        "  tunixrt init && dvc repro                 # the demo: a tiny model, built-in problems\n"
        "  tunixrt init --model gemma3_1b            # a real model (download it into models/)\n"
        "  dvc exp run -S source=files -S 'source.paths=[inputs/*.jsonl]'\n"
        "  tunixrt init --upgrade                    # after upgrading tunixrt\n",
    )
    ini.add_argument(
        "--force",
        action="store_true",
        help="overwrite dvc.yaml, conf/config.yaml and params.yaml where they exist (nothing "
        "else is replaced: data, inputs/ and models/ stay as they are)",
    )
    from tunixrt.scaffold import model_presets

    ini.add_argument(
        "--model",
        choices=model_presets(),
        metavar="PRESET",
        help="train this model preset (tunixrt/conf/model/) instead of the demo model: "
        f"{', '.join(model_presets())}; its weights go under models/ (init prints the download)",
    )
    ini.add_argument(
        "--upgrade",
        action="store_true",
        help="after upgrading tunixrt: recompose params.yaml (printing what changed) and "
        "rewrite dvc.yaml's commands",
    )
    ini.set_defaults(func=_cmd_init)

    run = _parser(
        sub,
        "run",
        "run one stage here, composing conf/ with Hydra overrides (params.yaml is not read)",
        "  tunixrt run ingest source=tunixrt_dev   # tunix-rt's traces, in this repository\n"
        "  tunixrt run train experiment=smoke train.max_steps=2\n",
    )
    from tunixrt.stages import STAGES

    *first, last = STAGES
    run.add_argument("stage", help=f"{', '.join(first)} or {last}")
    run.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. source=files source.n=500")
    run.set_defaults(func=_cmd_run)

    comp = _parser(
        sub,
        "compose",
        "write params.yaml from conf/ as `dvc exp run` would (validated first)",
        "  tunixrt compose                                  # after editing conf/\n"
        "  tunixrt compose +dataset.filters.meta.category=addition -o /tmp/params.yaml\n",
    )
    comp.add_argument("overrides", nargs="*", help="Hydra overrides")
    comp.add_argument("-o", "--output", help="write here instead of params.yaml")
    comp.set_defaults(func=_cmd_compose)

    st = _parser(
        sub,
        "status",
        "versions, devices, and which pipeline stages are stale",
        "  tunixrt status\n  tunixrt status --json --no-devices\n",
    )
    st.add_argument("--json", action="store_true", help="machine-readable output")
    st.add_argument("--no-devices", action="store_true", help="do not import JAX")
    st.set_defaults(func=_cmd_status)

    ver = _parser(
        sub,
        "verify",
        "the CI reproducibility check, on a fresh clone of HEAD (the pipeline's root, found "
        "from here)",
        "  tunixrt verify                 # everything CI checks: runs the whole pipeline twice\n"
        "  tunixrt verify --data-only     # params, lock and the data stages only (no training)\n",
    )
    ver.add_argument(
        "--data-only", action="store_true", help="skip the train, rl and evaluate checks"
    )
    ver.add_argument(
        "--rel-tol", type=float, default=1e-3, help="tolerance for model metrics vs committed ones"
    )
    ver.add_argument("--keep", action="store_true", help="keep the temporary clone")
    ver.set_defaults(func=_cmd_verify)

    rep = _parser(
        sub,
        "report",
        "one self-contained HTML page of the run here, with `dvc exp show`'s experiments",
        "  tunixrt report                      # -> runs/experiments.html, open it in a browser\n"
        "  tunixrt report -o /tmp/run.html --no-experiments\n",
    )
    rep.add_argument("-o", "--output", help="write here instead of runs/experiments.html")
    rep.add_argument(
        "--no-experiments", action="store_true", help="leave out the experiments table"
    )
    rep.set_defaults(func=_cmd_report)

    docs = _parser(
        sub,
        "docs",
        "regenerate the reference pages from the code: docs/config-reference.md, docs/formats.md, "
        "docs/commands.md (and the config groups table of docs/configuration.md, where present)",
        "  tunixrt docs            # rewrite the stale pages\n"
        "  tunixrt docs --check    # exit 1 when a page is stale\n",
    )
    docs.add_argument("--check", action="store_true", help="only say which pages are stale")
    docs.set_defaults(func=_cmd_docs)
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except TunixrtError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
