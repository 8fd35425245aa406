"""Scenarios conditioned on a market path, judged on held-out crises.

    python pipelines/bench_given.py [--tickers SP500,JPM,XOM,MSFT,KO,JNJ] [--models ar,dcc,fhs]
        [--crises 2020-03,2008-10] [--n 1000] [--threads 1]

For each crisis month, every model is fitted on the universe's days before it only (training
days up to three months before the month, validation days up to its eve; the month itself is
the held-out test split), then ``Synthesizer.sample_given`` draws ``--n`` paths of the month in
which the first ticker (the S&P 500) follows its real path and the other stocks are drawn from
the model's conditional, continuing the real history up to the eve of the month. Printed per
stock: its real beta to the S&P 500 over the month's days, the median and 5-95 % range of the
sampled paths' betas, the real and the median sampled correlation; and per model, the median
over stocks of the sampled median betas beside the range (min, max) of the stocks' real betas.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch

from synthfin.data.sources import load_prices
from synthfin.synthesizer import Synthesizer

SETTINGS = {"ar": {"progress": False}}


def betas(paths: np.ndarray, market: np.ndarray) -> np.ndarray:
    """Betas (n, assets) of each path's assets (n, days, assets) to ``market`` (days,)."""
    centred = market - market.mean()
    return np.einsum("d,nda->na", centred, paths - paths.mean(axis=1, keepdims=True)
                     ) / np.sum(centred**2)


def correlations(paths: np.ndarray, market: np.ndarray) -> np.ndarray:
    """Correlations (n, assets) of each path's assets with ``market`` (days,)."""
    centred = market - market.mean()
    x = paths - paths.mean(axis=1, keepdims=True)
    return np.einsum("d,nda->na", centred, x) / np.sqrt(
        np.sum(centred**2) * np.sum(x**2, axis=1))


def crisis_table(prices: pd.DataFrame, month: str, model: str, n: int) -> tuple[pd.DataFrame,
                                                                                  float]:
    start = pd.Timestamp(month + "-01")
    end = start + pd.offsets.MonthEnd(0)
    history = prices.loc[:end]
    train_end = str((start - pd.DateOffset(months=3)).date())
    val_end = str((start - pd.Timedelta(days=1)).date())
    began = time.perf_counter()
    synth = Synthesizer(model, window_len=16, split=(train_end, val_end),
                        **SETTINGS.get(model, {})).fit(history)
    fitted = time.perf_counter() - began
    returns = np.log(history).diff().loc[start:end]
    market = returns.iloc[:, 0]
    scenarios = synth.sample_given(market, n, seed=0)
    real = returns.to_numpy()[None]
    rows = {}
    sampled_beta = betas(scenarios.returns, market.to_numpy())
    sampled_corr = correlations(scenarios.returns, market.to_numpy())
    real_beta = betas(real, market.to_numpy())[0]
    real_corr = correlations(real, market.to_numpy())[0]
    for a, asset in enumerate(prices.columns[1:], start=1):
        low, mid, high = np.quantile(sampled_beta[:, a], [0.05, 0.5, 0.95])
        rows[asset] = {"real beta": real_beta[a], "median beta": mid, "beta q5": low,
                       "beta q95": high, "real inside 90%": bool(low <= real_beta[a] <= high),
                       "real corr": real_corr[a],
                       "median corr": float(np.median(sampled_corr[:, a]))}
    table = pd.DataFrame(rows).T
    return table, fitted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickers", default="SP500,JPM,XOM,MSFT,KO,JNJ")
    parser.add_argument("--models", default="ar,dcc,fhs")
    parser.add_argument("--crises", default="2020-03,2008-10")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    prices = load_prices("bundled", args.tickers.split(","), start="1995-01-01")
    pd.set_option("display.width", 140)
    for month in args.crises.split(","):
        for model in args.models.split(","):
            table, fitted = crisis_table(prices, month, model, args.n)
            real = table["real beta"].astype(float)
            median = float(np.median(table["median beta"].astype(float)))
            inside = real.min() <= median <= real.max()
            print(f"\n{month} {model} (fit {fitted:.0f} s, {args.n} paths given the real "
                  f"{prices.columns[0]} path)")
            print(table.to_string(float_format=lambda x: f"{x:.2f}"))
            print(f"median over stocks of the median sampled beta {median:.2f}; real betas "
                  f"{real.min():.2f} to {real.max():.2f}: {'inside' if inside else 'OUTSIDE'}")


if __name__ == "__main__":
    main()
