"""Scaling of issue 18: data-parallel training, sharded sampling, streaming evaluation.

    python pipelines/bench_scale.py [--nproc 1,2] [--epochs 3] [--sample-paths 20000]
                                    [--eval-paths 1000000] [--shard-sizes 1000,10000,100000]

On the bundled S&P 500 (window 64, stride 1), prints one table:

- training samples/s of the ``ar`` model (hidden 32, batch 128, ``--epochs`` epochs) in 1 and
  N processes (torchrun, gloo on CPU; NCCL on CUDA). Each rank times its ``fit`` after joining
  the process group, so torchrun's start-up is not counted; samples are global-batch windows;
- sampling paths/s of ``synthfin sample --shard-size`` (the ``ar`` model, 64-day paths, shards
  of 5,000) in 1 and N processes, timed inside rank 0 from the first shard to the manifest;
- peak resident memory of a child process writing two shards of S paths, for several shard
  sizes S (the Gaussian generator, 64-day paths, chunks of 10,000 paths), next to its memory
  before writing (Python, torch, pyarrow and the model loaded; the peak is reset there);
- seconds to compute the pooled window facts of ``--eval-paths`` 64-day paths streaming from
  the data set (:func:`synthfin.jobs.shards.dataset_facts`), with that process's peak memory.

Run it alone: it keeps the machine busy. Timings of several processes on one machine share its
cores; on a machine with fewer cores than processes, N processes are not faster.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from synthfin import distributed
from synthfin.data.returns import log_returns
from synthfin.data.sources import load_prices
from synthfin.data.windows import WindowData, make_windows
from synthfin.jobs.shards import ShardPlan, dataset_facts, write_dataset
from synthfin.models import Generator, get_generator

AR = {"hidden": 32, "layers": 1, "components": 2, "batch_size": 128, "patience": 1000,
      "progress": False}


def train_worker(data_dir: Path, epochs: int, report: Path) -> None:
    """One rank (or the only process): time ``fit``; rank 0 writes samples/s."""
    torch.set_num_threads(1)
    distributed.setup(torch.device("cpu"))
    data = WindowData.load(data_dir)
    model = get_generator("ar")(epochs=epochs, **AR)
    start = time.perf_counter()
    model.fit(data)
    seconds = time.perf_counter() - start
    steps = len(model.history_) * max(1, len(data.train.windows) // AR["batch_size"])
    if distributed.is_main():
        report.write_text(json.dumps({"per_s": steps * AR["batch_size"] / seconds,
                                      "seconds": seconds}))
    distributed.shutdown()


def sample_worker(model_dir: Path, out: Path, n: int, report: Path) -> None:
    """One rank: time writing the shards of ``n`` paths; rank 0 writes paths/s."""
    torch.set_num_threads(1)
    distributed.setup(torch.device("cpu"))
    model = Generator.load(model_dir)
    distributed.barrier("start")
    start = time.perf_counter()
    write_dataset(model, out, ShardPlan(n, 5_000, 64, seed=0))
    seconds = time.perf_counter() - start
    if distributed.is_main():
        report.write_text(json.dumps({"per_s": n / seconds, "seconds": seconds}))
    distributed.shutdown()


def _run(nproc: int, args: list[str]) -> dict[str, float]:
    """Run this script's worker alone or under torchrun; its report."""
    report = Path(tempfile.mkstemp(suffix=".json")[1])
    command = [__file__, *args, str(report)]
    if nproc == 1:
        subprocess.run([sys.executable, *command], check=True)
    else:
        distributed.torchrun(nproc, command, "the benchmark")
    result = json.loads(report.read_text())
    report.unlink()
    return result


def _memory_mb(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process, in MB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise SystemExit(f"no {field} in /proc/self/status")


def memory_worker(model_dir: Path, out: Path, shard_size: int, report: Path) -> None:
    """Resident memory before and the peak while writing two shards of ``shard_size`` paths,
    with the model loaded and everything imported (the peak is reset through clear_refs)."""
    model = Generator.load(model_dir)
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = _memory_mb("VmRSS")
    write_dataset(model, out, ShardPlan(2 * shard_size, shard_size, 64, seed=0))
    report.write_text(json.dumps({"before": before, "peak": _memory_mb("VmHWM")}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nproc", default="1,2")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--sample-paths", type=int, default=20_000)
    parser.add_argument("--eval-paths", type=int, default=1_000_000)
    parser.add_argument("--shard-sizes", default="1000,10000,100000")
    args = parser.parse_args()
    counts = [int(n) for n in args.nproc.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as scratch:
        root = Path(scratch)
        data = make_windows(log_returns(load_prices("bundled", ["SP500"])), 64)
        data.save(root / "data")
        for nproc in counts:
            result = _run(nproc, ["--train-worker", str(root / "data"), str(args.epochs)])
            rows.append(("training (ar)", "samples/s", nproc, result["per_s"]))
            print(rows[-1], flush=True)
        get_generator("ar")(epochs=1, **AR).fit(data).save(root / "ar")
        for nproc in counts:
            result = _run(nproc, ["--sample-worker", str(root / "ar"),
                                  str(root / f"paths-{nproc}"), str(args.sample_paths)])
            rows.append(("sampling (ar, 64 days)", "paths/s", nproc, result["per_s"]))
            print(rows[-1], flush=True)
        gaussian = get_generator("gaussian")().fit(data)
        gaussian.save(root / "gaussian")
        for size in [int(s) for s in args.shard_sizes.split(",")]:
            memory = _run(1, ["--memory-worker", str(root / "gaussian"),
                              str(root / f"mem-{size}"), str(size)])
            if size == int(args.shard_sizes.split(",")[0]):
                rows.append(("resident memory before writing", "MB", 1, memory["before"]))
            rows.append((f"peak memory writing shards of {size:,} paths", "MB", 1,
                         memory["peak"]))
            print(rows[-1], flush=True)
        start = time.perf_counter()
        write_dataset(gaussian, root / "eval", ShardPlan(args.eval_paths, 100_000, 64, seed=1))
        written = time.perf_counter() - start
        rows.append((f"writing {args.eval_paths:,} paths (gaussian)", "s", 1, written))
        start = time.perf_counter()
        dataset_facts(root / "eval")
        rows.append((f"streaming facts of {args.eval_paths:,} paths", "s", 1,
                     time.perf_counter() - start))
        rows.append(("peak memory of this process", "MB", 1,
                     resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
    table = pd.DataFrame(rows, columns=["what", "unit", "processes", "value"])
    print(f"\n{len(os.sched_getaffinity(0))} CPU cores usable ({os.cpu_count()} on the "
          f"machine), torch {torch.__version__}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:,.1f}"))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--train-worker":
        train_worker(Path(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--memory-worker":
        memory_worker(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]), Path(sys.argv[5]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--sample-worker":
        sample_worker(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]), Path(sys.argv[5]))
    else:
        main()
