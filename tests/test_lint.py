import subprocess
import sys
from pathlib import Path

from conftest import REPO

RUFF = str(Path(sys.executable).parent / "ruff")


def test_ruff_lint_and_format_pass() -> None:
    for args in (["check", "."], ["format", "--check", "."]):
        proc = subprocess.run([RUFF, *args], cwd=REPO, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
