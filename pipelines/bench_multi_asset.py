"""Cross-asset dependence of the joint generators, against the real stocks.

    python pipelines/bench_multi_asset.py [--tickers JPM,XOM,MSFT,KO,JNJ,PG] [--start 2000-01-01]
        [--models ar,garch] [--n 2000] [--threads 2] [--scaling 1,6,21]

Each model is fitted jointly on the stocks (window 64, default split) and sampled unconditionally
and in the calm and stressed regimes. Printed per set: the mean pairwise correlation of daily
returns pooled over all windows, the same in calm and in stressed windows (real: the windows of
that regime over the whole history; models: paths sampled in that regime), and the lower-tail
dependence ``P(r_j < q_5% | r_i < q_5%)`` averaged over pairs (pooled, each asset's own 5 %
quantile). The real band is the 10-90 % range of the mean pairwise correlation over calendar
years. ``--scaling`` then times ``ar`` (2 epochs, 1,000 paths x 252 days) for universes of that
many bundled series, to show how the cost grows with the number of assets.
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


def row(paths: np.ndarray, calm: np.ndarray, stressed: np.ndarray) -> dict[str, float]:
    return {"corr": mean_pairwise(paths), "calm": mean_pairwise(calm),
            "stressed": mean_pairwise(stressed), "lower_tail": lower_tail_dependence(paths)}


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
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--scaling", default="1,6,21")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    returns = log_returns(load_prices("bundled", args.tickers.split(","), start=args.start))
    data = make_windows(returns, 64)
    real = data.real_windows()
    regimes = np.concatenate([data.split(name).regimes for name in ("train", "val", "test")])
    rows = {"real": row(real, real[regimes == 0], real[regimes == 2])}
    years = returns.groupby(returns.index.year)
    yearly = [mean_pairwise(group.to_numpy()[None]) for _, group in years]
    band = np.quantile(yearly, [0.1, 0.9])
    for name in args.models.split(","):
        start = time.perf_counter()
        model = get_generator(name)(**MODELS.get(name, {})).fit(data)
        rows[name] = row(*(model.sample_returns(args.n, condition=c, seed=0)
                           for c in (None, "calm", "stressed")))
        rows[name]["seconds"] = time.perf_counter() - start
    print(f"{len(data.assets)} assets ({', '.join(data.assets)}), from {args.start}; real band "
          f"of the yearly mean pairwise correlation (10-90 %): {band[0]:.3f} - {band[1]:.3f}")
    print(pd.DataFrame(rows).T.round(3).to_markdown())
    if args.scaling:
        print(scaling([int(size) for size in args.scaling.split(",")]).round(2).to_markdown())


if __name__ == "__main__":
    main()
