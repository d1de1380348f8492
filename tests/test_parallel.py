"""A worker process that dies under the ordered map is an error, not a hang (issue 24).

The map runs in a child process with a deadline, so a regression fails the test instead of
hanging the suite. The stage tests run `python -m tunixrt.stages STAGE` on an input big enough
for the stage to choose worker processes itself, SIGKILL one of those workers from outside (as
the out-of-memory killer would), and check that the stage exits non-zero with a message naming
the stage and its input, leaves no out and no temporary file, and that a rerun writes what a
clean run wrote.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
import yaml
from conftest import REPO, env, fixtures_in

from tunixrt.dataset import stage as dataset_stage
from tunixrt.ingest import stage as ingest_stage
from tunixrt.parallel import workers_available
from tunixrt.stages import STAGES, leftovers, out_path

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")

DEADLINE_S = 30


def run_script(code: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=DEADLINE_S,
            env=env(),
        )
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the map hung ({DEADLINE_S} s)") from None


SELF_KILL = """
import os, signal, sys, time
from tunixrt.parallel import WorkerDied, ordered_map

def f(x):
    if x == 5:
        os.kill(os.getpid(), signal.SIGKILL)
    return x

start = time.monotonic()
try:
    list(ordered_map(f, range(20), workers=2, chunk_size=2, task="demo: in.jsonl"))
except WorkerDied as exc:
    print(f"{time.monotonic() - start:.2f} {exc.exit_code} {exc}")
"""


def test_a_worker_that_kills_itself_stops_the_map_with_an_error() -> None:
    proc = run_script(SELF_KILL)
    assert proc.returncode == 0, proc.stderr
    took, code, message = proc.stdout.split(" ", 2)
    assert float(took) < 5 and code == "1"
    assert message.startswith("demo: in.jsonl: a worker process was killed by SIGKILL")
    assert "out-of-memory" in message and "fewer cores" in message


# A worker killed halfway through writing its result to the pipe leaves the executor's reader
# waiting for the rest of the message forever: the map must neither wait for it nor hang at exit.
MID_SEND = """
import os, signal, sys, threading, time
from tunixrt.parallel import WorkerDied, ordered_map

def big(n):
    return b"x" * n

me = os.getpid()

def kill_a_writer():
    while True:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                ppid = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
                wchan = open(f"/proc/{pid}/wchan").read() if ppid == me else ""
            except OSError:
                continue
            if "pipe_write" in wchan:
                os.kill(int(pid), signal.SIGKILL)
                print("killed", flush=True)
                return
        time.sleep(0.001)

threading.Thread(target=kill_a_writer, daemon=True).start()
try:
    for _ in ordered_map(big, [16 << 20] * 40, workers=2, chunk_size=1):
        pass
except WorkerDied as exc:
    print(exc, flush=True)
"""


def test_a_worker_killed_while_sending_its_result_stops_the_map() -> None:
    if not Path("/proc/self/wchan").exists():
        pytest.skip("no /proc/PID/wchan to see a worker writing")
    proc = run_script(MID_SEND)
    if "killed" not in proc.stdout:
        pytest.skip("never saw a worker in the middle of writing its result")
    assert proc.returncode == 0, proc.stderr
    assert "a worker process was killed by SIGKILL" in proc.stdout


# --- the stages, run as DVC runs them, with one of their workers killed from outside ----------


def _ppid_and_cmdline(pid: str) -> tuple[int, bytes]:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1]), Path(f"/proc/{pid}/cmdline").read_bytes()


def kill_a_worker(stage: subprocess.Popen[bytes]) -> None:
    """SIGKILL the first worker the stage's process forks (a child with its command line)."""
    while stage.poll() is None:
        try:
            own = Path(f"/proc/{stage.pid}/cmdline").read_bytes()
        except OSError:
            break
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                ppid, cmdline = _ppid_and_cmdline(pid)
            except (OSError, IndexError, ValueError):
                continue
            if ppid == stage.pid and cmdline == own:
                os.kill(int(pid), signal.SIGKILL)
                return
        time.sleep(0.002)
    raise AssertionError(f"the stage forked no worker (exit {stage.returncode})")


def run_stage(name: str, root: Path, *, kill: bool = False) -> tuple[int, str]:
    """(exit code, stderr) of `python -m tunixrt.stages NAME` in `root`."""
    args = [sys.executable, "-m", "tunixrt.stages", name]
    proc = subprocess.Popen(
        args, cwd=root, env=env(), stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        if kill:
            kill_a_worker(proc)
        _, err = proc.communicate(timeout=DEADLINE_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError(f"stage {name} still running {DEADLINE_S} s on") from None
    return proc.returncode, err.decode()


def outs(name: str, root: Path) -> dict[str, bytes | None]:
    spec = STAGES[name]
    paths = [root / out_path(o) for o in spec.outs]
    return {p.name: p.read_bytes() if p.exists() else None for p in paths}


def big_input(size: int) -> bytes:
    """Distinct, well-formed traces, `size` bytes or more."""
    lines, total, i = [], 0, 0
    while total < size:
        steps = [{"i": k, "type": "t", "content": f"step {k}: {i * k}"} for k in range(3)]
        rec = {"prompt": f"Problem {i}: what is {i} * 3?", "steps": steps, "final_answer": str(i)}
        lines.append(orjson.dumps(rec))
        total += len(lines[-1]) + 1
        i += 1
    return b"\n".join(lines) + b"\n"


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace after clean ingest and dataset runs, both with worker processes."""
    if workers_available() < 2:
        pytest.skip("one core: the stages check their records in this process")
    root = tmp_path_factory.mktemp("clean")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["source"] = {"kind": "files", "paths": ["inputs/big.jsonl"]}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    (root / "inputs").mkdir()
    data = big_input(ingest_stage.PARALLEL_MIN_BYTES + (1 << 20))
    (root / "inputs" / "big.jsonl").write_bytes(data)
    assert fixtures_in(root, "eval_v1.jsonl") == params["eval"]["sets"]  # dataset decontaminates
    for name in ("ingest", "dataset"):
        rc, err = run_stage(name, root)
        assert rc == 0, err
    traces = root / out_path(STAGES["ingest"].outs[0])
    assert traces.stat().st_size >= dataset_stage.PARALLEL_MIN_BYTES  # dataset used workers
    return root


@pytest.mark.parametrize("name", ["ingest", "dataset"])
def test_a_killed_worker_fails_the_stage_and_a_rerun_writes_the_clean_outs(
    name: str, clean: Path, tmp_path: Path
) -> None:
    root = tmp_path / "ws"
    shutil.copytree(clean, root)
    want = outs(name, clean)
    assert None not in want.values()

    start = time.monotonic()
    rc, err = run_stage(name, root, kill=True)
    assert rc == 1 and time.monotonic() - start < DEADLINE_S
    where = (
        "ingest: a worker process was killed by SIGKILL (checking inputs/big.jsonl from line "
        if name == "ingest"
        else "dataset: reading data/traces/traces.jsonl: a worker process was killed by SIGKILL."
    )
    assert f"error: {where}" in err, err
    assert "Traceback" not in err
    assert set(outs(name, root).values()) == {None}  # no out, finished-looking or not
    assert leftovers(STAGES[name], root) == []  # its temporary files and scratch are gone

    rc, err = run_stage(name, root)
    assert rc == 0, err
    assert outs(name, root) == want
