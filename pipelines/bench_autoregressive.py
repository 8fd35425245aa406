"""Benchmark of the autoregressive density generator on a bundled series (window 64).

    python pipelines/bench_autoregressive.py [--ticker SP500] [--threads 2] [--samples 4000]

Prints: training time, held-out one-day-ahead negative log-likelihood per day against
GARCH(1,1)-t fitted by ``arch`` on the same training days, the volatility after a -10 % day
against plain continuations and the stressed regime, sampling throughput (and per path
against a loop over ``arch``'s ``simulate``, timed on ``--loop-paths`` paths), the evaluator's
table beside the classical peers, and the volatility clustering of long (256-day) paths.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch
from arch import arch_model

import synthfin as sf
from synthfin.models.autoregressive import AutoregressiveGenerator
from synthfin.models.baselines import (
    BlockBootstrap,
    GarchGenerator,
    GaussianGenerator,
    garch_one_step_log_likelihood,
)
from synthfin.stats import facts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--samples", type=int, default=4000)
    parser.add_argument("--loop-paths", type=int, default=500)
    parser.add_argument("--ticker", default="SP500")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 30)

    data = sf.make_windows(sf.log_returns(sf.load_prices("bundled", [args.ticker])), 64)
    start = time.perf_counter()
    model = AutoregressiveGenerator(progress=False).fit(data)
    seconds = time.perf_counter() - start
    epochs = len(model.history_)
    print(f"trained {epochs} epochs in {seconds:.1f} s ({seconds / epochs:.2f} s/epoch), "
          f"best validation NLL {model.val_nll_:.4f} (scaled units)")

    series = data.history()
    n_train, first_test = len(data.train.returns), len(data.train.returns) + len(data.val.returns)
    ar_ll = model.one_step_log_likelihood(series, first_test)
    garch_ll = garch_one_step_log_likelihood(series[:, 0], n_train)[first_test:]
    print(f"\nheld-out one-day-ahead NLL per day on {len(ar_ll)} test days "
          f"({data.split_dates['test'][0]} .. {data.split_dates['test'][1]}), log-return units:")
    print(f"| model | NLL/day |\n|---|---:|\n| ar | {-ar_ll.mean():.4f} |\n"
          f"| GARCH(1,1)-t (arch) | {-garch_ll.mean():.4f} |")
    difference = ar_ll - garch_ll
    print(f"AR log-likelihood minus GARCH-t's, per day: {difference.mean():+.4f} "
          f"(standard error {difference.std(ddof=1) / np.sqrt(len(difference)):.4f})")

    history = series[:first_test]  # the real days up to the test period
    shocked = np.concatenate([history, [[-0.10]]])
    vols = {"after the history": model.sample_after(history, 2000, 21, seed=0),
            "after the history and a -10% day": model.sample_after(shocked, 2000, 21, seed=0),
            "stressed regime": model.sample_returns(2000, condition="stressed", length=21,
                                                    seed=0)}
    print("\nannualized volatility of the next 21 days: " + ", ".join(
        f"{name} {paths.std() * np.sqrt(252):.2f}" for name, paths in vols.items()))

    start = time.perf_counter()
    model.sample(10_000, length=252, seed=0)
    seconds = time.perf_counter() - start
    garch = GarchGenerator().fit(data)
    mu, omega, alpha, _, beta, nu, _ = garch.params_.to_array()[0]
    simulator = arch_model(None, mean="Constant", vol="GARCH", p=1, q=1, dist="t")
    start = time.perf_counter()
    for _ in range(args.loop_paths):
        simulator.simulate([mu, omega, alpha, beta, nu], 252, burn=garch.config.burn_in)
    loop = (time.perf_counter() - start) / args.loop_paths
    print(f"\nsampling 10,000 paths x 252 days: {seconds:.2f} s, "
          f"{10_000 * 252 / seconds:,.0f} path-steps/s; per path {seconds / 10_000 * 1e6:.0f} us "
          f"against {loop * 1e6:.0f} us for arch's GARCH-t simulate loop "
          f"({loop / (seconds / 10_000):.0f}x faster per path)")

    samples = {"ar": model.sample_returns(args.samples, seed=0)}
    for name, peer in [("garch", GarchGenerator()), ("gjr", GarchGenerator(gjr=True,
                       dist="skewt")), ("bootstrap", BlockBootstrap()),
                       ("gaussian", GaussianGenerator())]:
        samples[name] = peer.fit(data).sample_returns(args.samples, seed=0)
    result = sf.evaluate_windows(data, samples, neural=False)
    print("\nnoise floors:\n" + result.floors().round(3).to_string())
    print(result.summary().round(2).to_string())
    for warning in result.warnings:
        print(warning)

    long_paths = model.sample_returns(2000, length=256, seed=1)[..., 0]
    real_long = series[: len(series) // 256 * 256, 0].reshape(-1, 256)
    print("\nACF of |r| at lags 1, 5, 20, 50 on 256-day paths (pooled):")
    for name, x in [("real (non-overlapping)", real_long), ("ar (one 256-day path each)",
                                                            long_paths)]:
        print(f"  {name}: {np.round(facts.acf_abs(x, 50)[[0, 4, 19, 49]], 3).tolist()}")


if __name__ == "__main__":
    main()
