"""Benchmark: vectorized GARCH-t sampling against a loop over ``arch``'s own ``simulate``, and the
evaluator's run time on 10,000 paths.

    python pipelines/bench_baselines.py [--paths 10000] [--days 252] [--loop-paths 1000]

Prints one table. The loop is timed on ``--loop-paths`` paths and compared per path, so the
ratio holds without waiting for 10,000 calls of ``arch``.
"""

from __future__ import annotations

import argparse
import time

import torch
from arch import arch_model

import synthfin as sf
from synthfin.models.baselines import GarchGenerator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--paths", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=252)
    parser.add_argument("--loop-paths", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    data = sf.make_windows(sf.log_returns(sf.load_prices("bundled", ["SP500"])), args.days)
    garch = GarchGenerator().fit(data)
    mu, omega, alpha, _, beta, nu, _ = garch.params_.to_array()[0]

    start = time.perf_counter()
    samples = garch.sample_returns(args.paths, seed=0, length=args.days)
    vectorized = time.perf_counter() - start

    model = arch_model(None, mean="Constant", vol="GARCH", p=1, q=1, dist="t")
    start = time.perf_counter()
    for _ in range(args.loop_paths):
        model.simulate([mu, omega, alpha, beta, nu], args.days, burn=garch.config.burn_in)
    loop = time.perf_counter() - start

    timings = {}
    for neural in (False, True):
        start = time.perf_counter()
        sf.evaluate_windows(data, {"garch": samples}, neural=neural)
        timings[neural] = time.perf_counter() - start

    per_path_vec = vectorized / args.paths
    per_path_loop = loop / args.loop_paths
    rows = [
        ("GARCH-t vectorized", f"{args.paths} x {args.days}", vectorized, per_path_vec * 1e6),
        ("arch simulate loop", f"{args.loop_paths} x {args.days}", loop, per_path_loop * 1e6),
        ("evaluate (facts, scores, memorization)", f"{args.paths} x {args.days}",
         timings[False], float("nan")),
        ("evaluate + discriminative/predictive", f"{args.paths} x {args.days}",
         timings[True], float("nan")),
    ]
    print("| task | paths x days | seconds | us per path |\n|---|---|---:|---:|")
    for name, size, seconds, per_path in rows:
        print(f"| {name} | {size} | {seconds:.2f} | {per_path:.0f} |")
    print(f"\nvectorized GARCH is {per_path_loop / per_path_vec:.0f}x faster per path than the "
          f"arch loop (burn-in {garch.config.burn_in} days in both)")


if __name__ == "__main__":
    main()
