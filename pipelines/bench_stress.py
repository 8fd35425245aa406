"""Stress-test table: a strategy on the real history against 1,000 synthetic one-year paths
from each generator (bundled S&P 500, models fitted on window 64).

    python pipelines/bench_stress.py [--models ar,cvae,timegan,garch,gjr,bootstrap,gaussian]
                                     [--strategy ma|vol] [--n 1000] [--length 252]

For each model: the 5 / 50 / 95 % quantiles of total return, Sharpe and max drawdown over the
synthetic paths, the median over the real history's non-overlapping one-year segments, and the
percentile of that real median inside the synthetic distribution.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

import synthfin as sf

MODELS = {"ar": {"progress": False}, "cvae": {"progress": False},
          "timegan": {"progress": False}, "garch": {},
          "gjr": {"model": "garch", "gjr": True, "dist": "skewt"}, "bootstrap": {},
          "gaussian": {}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--strategy", choices=("ma", "vol"), default="ma")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--length", type=int, default=252)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    strategy = (sf.moving_average_crossover(20, 100) if args.strategy == "ma"
                else sf.volatility_targeting(0.10))
    prices = sf.load_prices("bundled", ["SP500"])
    rows = {}
    for name in args.models.split(","):
        settings = dict(MODELS[name])
        start = time.perf_counter()
        synth = sf.Synthesizer(settings.pop("model", name), **settings).fit(prices)
        scenarios = synth.sample(args.n, length=args.length, seed=0)
        data = synth.data_
        history = data.history()
        table = sf.stress_test(strategy, {name: scenarios}, history).table().loc[name]
        for metric in ("total_return", "sharpe", "max_drawdown"):
            row = table.loc[metric]
            rows[(name, metric)] = {"p05": row["p05"], "median": row["median"],
                                    "p95": row["p95"], "real median": row["real_median"],
                                    "real percentile": row["real_percentile"]}
        print(f"{name}: {time.perf_counter() - start:.0f} s", flush=True)
    frame = pd.DataFrame(rows).T
    print(f"\n{strategy.__name__} on {args.n} synthetic paths of {args.length} days per model "
          f"vs the real history in {len(history) // args.length} one-year segments\n")
    print("| model | metric | p05 | median | p95 | real median | real percentile |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for (name, metric), row in frame.iterrows():
        print(f"| {name} | {metric} | " + " | ".join(f"{v:.3f}" for v in row.iloc[:4])
              + f" | {row.iloc[4]:.0f} |")


if __name__ == "__main__":
    main()
