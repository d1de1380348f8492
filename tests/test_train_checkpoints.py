"""Which checkpoints a train run may resume from."""

from __future__ import annotations

import shutil
from pathlib import Path

import tunixrt.train
from tunixrt.train.checkpoints import training_code_digest

PACKAGE = Path(tunixrt.train.__file__).parent


def test_code_digest_changes_with_any_training_source(tmp_path: Path) -> None:
    copy = tmp_path / "train"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert training_code_digest(copy) == training_code_digest()
    (copy / "__pycache__").mkdir()
    (copy / "__pycache__" / "x.pyc").write_bytes(b"not source")
    assert training_code_digest(copy) == training_code_digest()
    with (copy / "metrics.py").open("a") as fh:
        fh.write("\n# another report line: the numbers are the same, a run resumes\n")
    assert training_code_digest(copy) == training_code_digest()
    with (copy / "model.py").open("a") as fh:
        fh.write("\n# a new init\n")
    assert training_code_digest(copy) != training_code_digest()
