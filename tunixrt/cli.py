"""The `tunixrt` command: run a stage with Hydra overrides, compose params.yaml, show status."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tunixrt.errors import TunixrtError


def _cmd_run(args: argparse.Namespace) -> None:
    from tunixrt.compose import compose, composition_label
    from tunixrt.stages import run_stage
    from tunixrt.validation import config_source

    root = Path.cwd()
    with config_source(composition_label(args.overrides)):
        run_stage(args.stage, compose(root, args.overrides), root)


def _cmd_compose(args: argparse.Namespace) -> None:
    from tunixrt.compose import write_params

    out = write_params(Path.cwd(), args.overrides, Path(args.output) if args.output else None)
    print(f"wrote {out}", file=sys.stderr)


def _cmd_status(args: argparse.Namespace) -> None:
    from tunixrt.status import collect, render

    info = collect(Path.cwd(), devices=not args.no_devices)
    if args.json:
        import orjson

        sys.stdout.write(orjson.dumps(info, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        sys.stdout.write(render(info))


def _cmd_verify(args: argparse.Namespace) -> None:
    from tunixrt.verify.check import main as verify_main

    sys.exit(
        verify_main(Path.cwd(), data_only=args.data_only, rel_tol=args.rel_tol, keep=args.keep)
    )


def build_parser() -> argparse.ArgumentParser:
    from tunixrt import __version__

    p = argparse.ArgumentParser(prog="tunixrt", description=__doc__)
    p.add_argument("--version", action="version", version=f"tunixrt {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser(
        "run",
        help="run one stage here, composing conf/ with Hydra overrides (params.yaml is not read)",
    )
    run.add_argument("stage")
    run.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. source=files source.n=500")
    run.set_defaults(func=_cmd_run)

    comp = sub.add_parser("compose", help="write params.yaml from conf/ as `dvc exp run` would")
    comp.add_argument("overrides", nargs="*")
    comp.add_argument("-o", "--output", help="write here instead of params.yaml")
    comp.set_defaults(func=_cmd_compose)

    st = sub.add_parser("status", help="versions, devices, and which pipeline stages are stale")
    st.add_argument("--json", action="store_true")
    st.add_argument("--no-devices", action="store_true", help="do not import JAX")
    st.set_defaults(func=_cmd_status)

    ver = sub.add_parser("verify", help="the CI reproducibility check (a fresh clone of HEAD)")
    ver.add_argument("--data-only", action="store_true", help="skip the train/evaluate checks")
    ver.add_argument(
        "--rel-tol", type=float, default=1e-3, help="tolerance for model metrics vs committed ones"
    )
    ver.add_argument("--keep", action="store_true", help="keep the temporary clone")
    ver.set_defaults(func=_cmd_verify)
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
