"""The PyInstaller bundle: build time and size of each variant, what takes the space, and
how long the frozen app takes to start and to read a formula.

    python -m benchmarks.bundle [--variants default,cpu-only] [--keep DIR]

Each variant is built from build.spec into a temporary folder with the environment's
pyinstaller. "default" is the documented build; "cpu-only" sets
LABELSCOPE_BUNDLE_CPU_ONLY=1; "nothing left out" (LABELSCOPE_BUNDLE_KEEP_ALL=1) keeps every
module and file PyInstaller finds.
The baseline for size is the first variant (by default: nothing left out); the smoke test
(packaging/smoke_test.sh) is run on each build and timed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import machine

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "default": {},
    "cpu-only": {"LABELSCOPE_BUNDLE_CPU_ONLY": "1"},
    "nothing left out": {"LABELSCOPE_BUNDLE_KEEP_ALL": "1"},
}


def _size(path: Path) -> int:
    if path.is_file() or path.is_symlink():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() or p.is_symlink())


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def build(variant: str, scratch: Path) -> tuple[Path, float]:
    folder = scratch / variant.replace(" ", "-")
    dist, work = folder / "dist", folder / "build"
    env = {**os.environ, **VARIANTS[variant]}
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "PyInstaller",
            "--noconfirm",
            "--log-level",
            "WARN",
            "--distpath",
            str(dist),
            "--workpath",
            str(work),
            str(ROOT / "build.spec"),
        ],
        check=True,
        env=env,
        cwd=ROOT,
    )
    return dist / "Labelscope", time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default="nothing left out,default,cpu-only")
    parser.add_argument("--keep", help="copy nothing; build into this folder and keep it")
    options = parser.parse_args()
    scratch = Path(options.keep or tempfile.mkdtemp(prefix="labelscope-bundle-"))
    rows, parts = [], {}
    base = None
    try:
        for variant in options.variants.split(","):
            bundle, seconds = build(variant, scratch)
            total = _size(bundle)
            base = base or total
            start = time.perf_counter()
            smoke = subprocess.run(
                ["bash", str(ROOT / "packaging" / "smoke_test.sh"), str(bundle)],
                capture_output=True,
                text=True,
                cwd=ROOT,
            )
            smoke_s = time.perf_counter() - start
            status = "passed" if smoke.returncode == 0 else f"FAILED: {smoke.stderr[-200:]}"
            rows.append((variant, seconds, total, total / base, smoke_s, status))
            internal = bundle / "_internal"
            sizes = sorted(((_size(p), p.name) for p in internal.iterdir()), reverse=True)
            parts[variant] = sizes[:8]
    finally:
        if not options.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    print(f"### Bundle — {time.strftime('%Y-%m-%d')}\n\n{machine()}\n")
    print("| variant | build | size | × first row | smoke test | result |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for variant, seconds, total, ratio, smoke_s, status in rows:
        print(
            f"| {variant} | {seconds:.0f} s | {_gb(total)} | {ratio:.2f} | {smoke_s:.0f} s "
            f"| {status} |"
        )
    for variant, sizes in parts.items():
        listing = ", ".join(f"{name} {_gb(size)}" for size, name in sizes)
        print(f"\nLargest parts of {variant}: {listing}")


if __name__ == "__main__":
    main()
