"""Peak memory of writing many samples: ``synthfin sample`` into ``.parquet`` and ``.npy``.

    python pipelines/bench_io.py [--n 100000] [--length 252]

Fits the iid Gaussian generator on the bundled S&P 500 (window 64; the generator barely matters),
then runs ``synthfin sample --n N --length L`` once per format in a child process and reads the
child's peak resident memory (``ru_maxrss`` from ``os.wait4``). ``--n 1`` is the floor: Python,
numpy, pandas, pyarrow and torch imported and the model loaded. The samples' own size is
``N x L x 8`` bytes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import synthfin as sf
from synthfin.models.baselines import GaussianGenerator

CLI = "from synthfin.cli import app; app()"


def peak_of_sample(model_dir: Path, out: Path, n: int, length: int) -> tuple[float, float]:
    """Peak RSS (MB) and wall seconds of one ``synthfin sample`` child process."""
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", CLI, "sample", "--model-dir", str(model_dir),
                              "--n", str(n), "--length", str(length), "--out", str(out)],
                             stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"synthfin sample failed with status {status}")
    return usage.ru_maxrss / 1024, time.perf_counter() - start  # ru_maxrss is in KB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="paths")
    parser.add_argument("--length", type=int, default=252, help="days per path")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        data = sf.make_windows(sf.log_returns(sf.load_prices("bundled", ["SP500"])), 64)
        GaussianGenerator().fit(data).save(folder / "model")
        print(f"samples of {args.n:,} x {args.length} days: "
              f"{args.n * args.length * 8 / 2**20:,.0f} MB as float64\n")
        print("| format | paths | peak RSS (MB) | seconds | file (MB) |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for suffix in (".parquet", ".npy"):
            for n in (1, args.n):
                out = folder / f"samples{suffix}"
                peak, seconds = peak_of_sample(folder / "model", out, n, args.length)
                print(f"| {suffix} | {n:,} | {peak:,.0f} | {seconds:.1f} | "
                      f"{out.stat().st_size / 2**20:,.1f} |", flush=True)
                out.unlink()


if __name__ == "__main__":
    main()
