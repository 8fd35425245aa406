"""Cross-asset dependence of the joint generators, against the real stocks.

    python pipelines/bench_multi_asset.py [--tickers JPM,XOM,MSFT,KO,JNJ,PG] [--start 2000-01-01]
        [--models ar,garch] [--n 1000] [--threads 2] [--scaling 1,6,21]

Each model is fitted jointly on the stocks (window 64, default split) and samples ``--n`` paths of
252 days. Printed for the real history and each model: the mean pairwise correlation of daily
returns (pooled over paths), the same on calm and on stressed days (the equal-weighted
portfolio's trailing 21-day volatility below the real history's lower quartile, or above its
upper quartile; days 22 onwards of each path), and the lower-tail dependence
``P(r_j < q_5% | r_i < q_5%)`` averaged over pairs (each asset's own 5 % quantile). The real
band is the 10-90 % range of the mean pairwise correlation over calendar years. ``--scaling``
then times ``ar`` (2 epochs, 1,000 paths x 252 days) for universes of that many bundled series,
to show how the cost grows with the number of assets.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch

from synthfin.data.bundled import BUNDLED_TICKERS
from synthfin.data.returns import log_returns
from synthfin.data.sources import load_prices
from synthfin.data.windows import make_windows
from synthfin.models import get_generator
from synthfin.stats.facts import cross_correlation

MODELS = {"ar": {"progress": False}, "garch": {}}


def mean_pairwise(paths: np.ndarray) -> float:
    """Mean off-diagonal correlation of returns pooled over paths (n, days, assets)."""
    corr = cross_correlation(paths)
    return float(corr[np.triu_indices(len(corr), 1)].mean())


def lower_tail_dependence(paths: np.ndarray, level: float = 0.05) -> float:
    """``P(r_j < q_j | r_i < q_i)`` at each asset's own ``level`` quantile, mean over pairs."""
    flat = paths.reshape(-1, paths.shape[-1])
    low = flat < np.quantile(flat, level, axis=0)
    joint = (low[:, :, None] & low[:, None, :]).mean(axis=0) / low.mean(axis=0)[:, None]
    return float(joint[~np.eye(len(joint), dtype=bool)].mean())


def market_stress(paths: np.ndarray) -> np.ndarray:
    """Trailing 21-day volatility of the equal-weighted portfolio before each day (n, days);
    NaN for the first 21 days of each path."""
    squares = np.square(paths.mean(axis=-1))
    total = np.cumsum(np.pad(squares, ((0, 0), (1, 0))), axis=1)
    vol = np.full(squares.shape, np.nan)
    vol[:, 21:] = np.sqrt((total[:, 21:-1] - total[:, :-22]) / 21)
    return vol


def row(paths: np.ndarray, thresholds: np.ndarray) -> dict[str, float]:
    stress = market_stress(paths)
    calm, stressed = stress < thresholds[0], stress > thresholds[1]
    return {"corr": mean_pairwise(paths), "calm": mean_pairwise(paths[calm][None]),
            "stressed": mean_pairwise(paths[stressed][None]),
            "lower_tail": lower_tail_dependence(paths)}


def scaling(sizes: list[int]) -> pd.DataFrame:
    rows = []
    for size in sizes:
        returns = log_returns(load_prices("bundled", list(BUNDLED_TICKERS[:size]),
                                          start="2000-01-01"))
        data = make_windows(returns, 64, stride=4)
        start = time.perf_counter()
        model = get_generator("ar")(epochs=2, patience=2, progress=False).fit(data)
        fitted = time.perf_counter() - start
        start = time.perf_counter()
        model.sample(1000, length=252, seed=0)
        rows.append({"assets": size, "fit_2_epochs_s": fitted,
                     "sample_1000x252_s": time.perf_counter() - start})
    return pd.DataFrame(rows).set_index("assets")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tickers", default="JPM,XOM,MSFT,KO,JNJ,PG")
    parser.add_argument("--start", default="2000-01-01")
    parser.add_argument("--models", default="ar,garch")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--scaling", default="1,6,21")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    returns = log_returns(load_prices("bundled", args.tickers.split(","), start=args.start))
    data = make_windows(returns, 64)
    real = returns.to_numpy()[None]
    thresholds = np.nanquantile(market_stress(real), [0.25, 0.75])
    rows = {"real": row(real, thresholds)}
    years = returns.groupby(returns.index.year)
    yearly = [mean_pairwise(group.to_numpy()[None]) for _, group in years]
    band = np.quantile(yearly, [0.1, 0.9])
    for name in args.models.split(","):
        start = time.perf_counter()
        model = get_generator(name)(**MODELS.get(name, {})).fit(data)
        rows[name] = row(model.sample_returns(args.n, length=252, seed=0), thresholds)
        rows[name]["seconds"] = time.perf_counter() - start
    print(f"{len(data.assets)} assets ({', '.join(data.assets)}), from {args.start}; real band "
          f"of the yearly mean pairwise correlation (10-90 %): {band[0]:.3f} - {band[1]:.3f}")
    print(pd.DataFrame(rows).T.round(3).to_string())
    if args.scaling:
        print(scaling([int(size) for size in args.scaling.split(",")]).round(2).to_string())


if __name__ == "__main__":
    main()
