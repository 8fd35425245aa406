"""The shape of `ar`'s bound on its scale: validation likelihood, clustering and explosive paths.

    python pipelines/bench_ar_bound.py [--bounds 1,8,8;4,5,8] [--threads 1]

Each bound is ``slope,cap,vols``: the day's log scale is ``M - softplus(slope (M - x)) / slope``
with ``M = log(cap)`` (cap in long-run standard deviations; slope 1 is the first, soft bound,
a large slope a clamp), and the network reads vols clipped at ``vols`` long-run sds
(:mod:`synthfin.models.autoregressive`: ``BOUND_SHARPNESS``, ``MAX_LOG_SCALE``,
``MAX_INPUT_VOL``). For every bound, `ar` at default settings (seed 0) is fitted on:

- S&P 500 with the quickstart's data (window 64, split 70 / 15 / 15 %): validation NLL and the
  acf_abs gaps of 2,000 windows in noise floors, in sample and out of sample;
- two universes whose training days end in a crash (:data:`bench_plausible.UNIVERSES`):
  validation NLL, the largest daily |log return| of 1,000 paths of 252 days and the paths
  above 0.5.

Validation NLL is what the bound is chosen on; the other columns say what it costs.
"""

from __future__ import annotations

import argparse
import math
import warnings

import numpy as np
import torch
from bench_plausible import UNIVERSES

from synthfin.data.returns import log_returns
from synthfin.data.sources import load_prices
from synthfin.data.windows import make_windows
from synthfin.evaluation.evaluate import evaluate_windows
from synthfin.models import autoregressive, get_generator


def set_bound(slope: float, cap: float, vols: float) -> None:
    """Make ``ar`` use this bound (module constants read at every call)."""
    autoregressive.BOUND_SHARPNESS = slope
    autoregressive.MAX_LOG_SCALE = math.log(cap)
    autoregressive.MAX_INPUT_VOL = vols


def sp500_row() -> list[str]:
    data = make_windows(log_returns(load_prices("bundled", ["SP500"])), 64,
                        split=(0.7, 0.15, 0.15))
    model = get_generator("ar")(progress=False, seed=0).fit(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        windows = model.sample_returns(2000, seed=0, length=64)
    evaluation = evaluate_windows(data, {"ar": windows}, neural=False, seed=0)
    gaps = [evaluation.summary(reference).loc["ar", "acf_abs /floor"]
            for reference in ("in_sample", "out_of_sample")]
    return [f"{model.val_nll_:.5f}", f"{gaps[0]:.3f} / {gaps[1]:.3f}"]


def crash_row(tickers: str, first: str, train_end: str, val_end: str) -> list[str]:
    prices = load_prices("bundled", tickers.split(","), start=first)
    data = make_windows(log_returns(prices), 64, split=(train_end, val_end))
    model = get_generator("ar")(progress=False, seed=0).fit(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        paths = model.sample_returns(1000, length=252, seed=0)
    largest = np.abs(paths).max(axis=(1, 2))
    return [f"{model.val_nll_:.5f}", f"{largest.max():.3f}, {(largest > 0.5).sum()}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bounds", default="1,8,8;1000,8,8;4,8,8;4,6,8;4,5,8;4,4,8;4,5,15",
                        help="semicolon-separated slope,cap,vols triples")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    header = ["bound", "S&P 500 val NLL", "acf_abs in / out"]
    for name in UNIVERSES:
        header += [f"{name}: val NLL", "max |r|, paths > 0.5"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for bound in args.bounds.split(";"):
        slope, cap, vols = (float(v) for v in bound.split(","))
        set_bound(slope, cap, vols)
        row = [bound, *sp500_row()]
        for tickers, first, train_end, val_end in UNIVERSES.values():
            row += crash_row(tickers, first, train_end, val_end)
        print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
