"""Benchmark: the conditional VAE against the classical peers on bundled S&P 500 (window 64).

    python pipelines/bench_cvae.py [--samples 3000] [--threads 1] [--set key=value ...]

Prints the training time per epoch, the sampling time for 10,000 windows, the evaluator's
headline table (gaps in units of the noise floor; neural scores off) for cvae beside garch, gjr,
bootstrap and gaussian, the noise floor, and a seam check: the same table on 128-day windows, where
cvae chains two 64-day windows, so its ACF scores include every pair straddling the seam.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd
import torch

import synthfin as sf
from synthfin.models.baselines import BlockBootstrap, GarchGenerator, GaussianGenerator
from synthfin.models.cvae import ConditionalVAE


def seam_correlation(paths: np.ndarray, window: int, max_lag: int = 5) -> tuple[float, float]:
    """Pooled correlation of |r| at lags 1..max_lag over pairs straddling a seam (days t and
    t + lag in different ``window``-day blocks) and over pairs inside one block."""
    a = np.abs(paths[..., 0])
    a = (a - a.mean()) / a.std()
    seam, within = [], []
    for lag in range(1, max_lag + 1):
        t = np.arange(paths.shape[1] - lag)
        across = t // window != (t + lag) // window
        products = a[:, t] * a[:, t + lag]                      # (n, pairs)
        seam.append(products[:, across].mean())
        within.append(products[:, ~across].mean())
    return float(np.mean(seam)), float(np.mean(within))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", dest="settings", action="append", default=[],
                        help="cvae setting KEY=VALUE (JSON value), repeatable")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 30)
    settings = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.settings)}

    returns = sf.log_returns(sf.load_prices("bundled", ["SP500"]))
    data = sf.make_windows(returns, 64)
    real = data.real_windows()

    start = time.perf_counter()
    cvae = ConditionalVAE(seed=args.seed, progress=False, device="cpu", **settings).fit(data)
    fit_seconds = time.perf_counter() - start
    epochs = len(cvae.history_)
    best = min(cvae.history_, key=lambda row: row["validation"])
    start = time.perf_counter()
    cvae.sample(10_000, seed=args.seed)
    sample_seconds = time.perf_counter() - start
    elbo = cvae.elbo(data.test, draws=8)
    print(f"cvae {cvae.config}")
    print(f"training: {epochs} epochs in {fit_seconds:.1f} s = {fit_seconds / epochs:.2f} s per "
          f"epoch (CPU, {args.threads} thread); best epoch {best['epoch']}, validation -ELBO "
          f"{best['validation']:.2f} nats per window")
    print(f"sampling 10,000 windows of 64 days: {sample_seconds:.2f} s")
    print(f"test ELBO (a lower bound on log p(x | c), scaled returns): {elbo.mean():.2f} nats "
          f"per window; active latent units {cvae.active_units_} of {cvae.config.latent_dim}; "
          f"KL per unit {[round(float(v), 3) for v in cvae.kl_per_dim_]}")

    peers = {"cvae": cvae, "garch": GarchGenerator().fit(data),
             "gjr": GarchGenerator(gjr=True).fit(data), "bootstrap": BlockBootstrap().fit(data),
             "gaussian": GaussianGenerator().fit(data)}
    samples = {name: model.sample_returns(args.samples, seed=args.seed + 1)
               for name, model in peers.items()}
    evaluation = sf.evaluate_windows(data, samples, neural=False)
    print(f"\nbundled S&P 500, window 64: {len(real)} real windows, {args.samples} samples each")
    print(evaluation.summary().round(3).to_string())
    print("\nnoise floors (in-sample: blocks of training windows; out-of-sample: val vs test):")
    print(evaluation.floors().round(4).to_string())
    for warning in evaluation.warnings:
        print(warning)

    long = sf.make_windows(returns, 128)
    real_long = long.real_windows()
    long_samples = {name: model.sample_returns(args.samples, seed=args.seed + 2, length=128)
                    for name, model in peers.items()}
    seam = sf.evaluate(real_long, long_samples, neural=False)
    print("\nseam check, window 128 (cvae = two chained 64-day windows; ACF of |r| and r^2 to "
          "lag 64):")
    print(seam.summary().round(3).to_string())
    rows = {"real (no seam)": seam_correlation(real_long, 64),
            **{name: seam_correlation(x, 64) for name, x in long_samples.items()}}
    print("\npooled corr(|r_t|, |r_t+k|), k = 1..5, pairs across day 64 vs inside a window:")
    print(pd.DataFrame(rows, index=["across day 64", "inside"]).T.round(3).to_string())


if __name__ == "__main__":
    main()
