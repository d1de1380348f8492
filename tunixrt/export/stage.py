"""The export stage: data/dataset/{split}.jsonl -> data/export/{split}.jsonl, rendered; and the
labelled preference pairs of the train split -> data/export/pairs.jsonl (empty without a
labelled dump: tunixrt.preference.labelled)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import orjson

from tunixrt.errors import ConfigError, DataError
from tunixrt.export.config import FormatConfig
from tunixrt.formats import render_record
from tunixrt.jsonio import atomic_writer, dumps_line, iter_lines
from tunixrt.paths import ATTEMPTS, EXPORT_DIR, PAIRS, SPLITS, dataset_path, export_path
from tunixrt.preference.labelled import attempt_keys, labelled_pairs, trace_key
from tunixrt.validation import config_where, validate_config


def parse_format(data: Any) -> FormatConfig:
    return validate_config(FormatConfig, data, "format")


def export(cfg: FormatConfig, root: Path) -> dict[str, int]:
    spec, sel = cfg.spec(), cfg
    for s in SPLITS:
        (root / export_path(s)).unlink(missing_ok=True)
    (root / PAIRS).unlink(missing_ok=True)
    if not (root / ATTEMPTS).is_file():
        raise DataError(f"{ATTEMPTS}: not found; run the ingest stage")
    keys = attempt_keys(root / ATTEMPTS)
    paired: list[dict] = []  # the train traces exported whose problem has wrong attempts
    wanted = set(sel.trace_ids or ())
    found: set[str] = set()
    counts = dict.fromkeys(SPLITS, 0)
    with ExitStack() as stack:
        files = {s: stack.enter_context(atomic_writer(root / export_path(s))) for s in SPLITS}
        for s in SPLITS:
            if sel.splits is not None and s not in sel.splits:
                continue
            src = root / dataset_path(s)
            if not src.is_file():
                raise DataError(f"{dataset_path(s)}: not found; run the dataset stage")
            for _, line in iter_lines(src):
                if not line:
                    continue
                t = orjson.loads(line)
                if sel.trace_ids is not None:
                    if t["id"] not in wanted:
                        continue
                    found.add(t["id"])
                files[s].write(dumps_line(render_record(t, spec)))
                counts[s] += 1
                if s == "train" and keys and trace_key(t) in keys:
                    paired.append(t)
        missing = sorted(wanted - found)
        if missing:
            more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
            shown = ", ".join(missing[:10])
            raise ConfigError(
                f"{config_where()}: format.trace_ids: not in the dataset: {shown}{more}"
            )
    counts["pairs"] = 0
    with atomic_writer(root / PAIRS) as fh:
        for pair in labelled_pairs(paired, root / ATTEMPTS, spec, keys):
            fh.write(dumps_line(pair.model_dump()))
            counts["pairs"] += 1
    return counts


def run(params: Mapping[str, Any], root: Path) -> None:
    cfg = parse_format(params.get("format"))
    spec = cfg.spec()
    counts = export(cfg, root)
    print(
        f"export {spec.name}/{spec.reasoning_style}: "
        + ", ".join(f"{s} {n}" for s, n in counts.items())
        + f" -> {EXPORT_DIR}/",
        file=sys.stderr,
    )
