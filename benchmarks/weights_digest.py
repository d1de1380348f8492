"""How much of a checkpoint `dvc repro` reads when nothing in it changed.

    .venv/bin/python benchmarks/weights_digest.py [--size-gb 2] [--keep DIR] [--smoke]

Clones the committed HEAD into a scratch folder, writes a checkpoint of --size-gb into
models/bench/ (the folder dvc.yaml tracks for weights) and points the smoke preset's
model.checkpoint_path at it, then runs `dvc repro manifest` three times: the first digests the
files (DVC's md5 and the manifest's sha256), the second has nothing to do, and the third follows
a change of train.learning_rate, so the manifest stage reruns on the same files. Before each run
the file's pages are dropped from the page cache (posix_fadvise DONTNEED); after it, the pages
back in the cache (mincore) are what the run read. Target: under 1 MB for the second and the
third run. `--smoke`: a 4 MB checkpoint, same runs and the same check.
"""

from __future__ import annotations

import argparse
import ctypes
import mmap
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_BYTES = 1 << 20
BLOCK = 64 << 20
PAGE = os.sysconf("SC_PAGE_SIZE")
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_long,
]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]


def write_checkpoint(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    block = bytes(range(256)) * (min(BLOCK, size) // 256)
    with path.open("wb") as fh:
        left = size
        while left > 0:
            left -= fh.write(block[: min(left, len(block))])
        fh.flush()
        os.fsync(fh.fileno())


def drop_from_cache(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def cached_bytes(path: Path) -> int:
    """Bytes of `path` in the page cache now (mincore over a read-only mapping)."""
    size = path.stat().st_size
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = _libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), "mmap failed")
        try:
            pages = (size + PAGE - 1) // PAGE
            vec = (ctypes.c_ubyte * pages)()
            if _libc.mincore(addr, size, vec) != 0:
                raise OSError(ctypes.get_errno(), "mincore failed")
            return sum(v & 1 for v in vec) * PAGE
        finally:
            _libc.munmap(addr, size)
    finally:
        os.close(fd)


def run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(args, cwd=cwd, env=env, text=True, capture_output=True)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout + proc.stderr


def measured_repro(ckpt: Path, cwd: Path, env: dict[str, str]) -> tuple[int, float, str]:
    drop_from_cache(ckpt)
    before = cached_bytes(ckpt)
    t0 = time.perf_counter()
    out = run(["dvc", "repro", "manifest"], cwd, env)
    return max(0, cached_bytes(ckpt) - before), time.perf_counter() - t0, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-gb", type=float, default=2.0)
    ap.add_argument("--keep", type=Path, help="clone into this folder and keep it")
    ap.add_argument("--smoke", action="store_true", help="a 4 MB checkpoint, same runs")
    args = ap.parse_args()
    size = 4 << 20 if args.smoke else int(args.size_gb * (1 << 30))
    work = args.keep or Path(tempfile.mkdtemp(prefix="tunixrt-weights-"))
    env = dict(os.environ, DVC_NO_ANALYTICS="1")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    clone = work / "clone"
    try:
        run(["git", "clone", "--quiet", str(REPO), str(clone)], work, env)
        ckpt = clone / "models/bench/model.safetensors"
        t0 = time.perf_counter()
        write_checkpoint(ckpt, size)
        print(f"wrote {size / 2**20:.0f} MB to models/bench in {time.perf_counter() - t0:.1f} s")
        compose = [
            "tunixrt",
            "compose",
            "experiment=smoke",
            "source.n=300",
            "model.checkpoint_path=models/bench",
        ]
        run(compose, clone, env)
        drop_from_cache(ckpt)
        if cached_bytes(ckpt) > TARGET_BYTES:
            print("the page cache keeps the file (posix_fadvise had no effect): cannot measure")
            return 1
        first, s1, _ = measured_repro(ckpt, clone, env)
        second, s2, out2 = measured_repro(ckpt, clone, env)
        run([*compose, "train.learning_rate=0.002"], clone, env)
        third, s3, out3 = measured_repro(ckpt, clone, env)
        mb = 2**20
        print(f"first dvc repro (digests the files): read {first / mb:.1f} MB in {s1:.1f} s")
        print(f"second, nothing changed: read {second / 1024:.0f} KB in {s2:.1f} s")
        print(f"third, manifest reruns on a new param: read {third / 1024:.0f} KB in {s3:.1f} s")
        reran = "Running stage 'manifest'" in out3 and "Running stage 'manifest'" not in out2
        ok = second < TARGET_BYTES and third < TARGET_BYTES and first >= size // 2 and reran
        print(
            f"target: under {TARGET_BYTES // mb} MB re-read of {size / mb:.0f} MB "
            f"(ratio {max(second, third) / TARGET_BYTES:.3f}): {'met' if ok else 'MISSED'}"
        )
        return 0 if ok else 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
