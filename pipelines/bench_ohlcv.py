"""OHLCV realism and backtesting.py SmaCross distributions on synthetic stress paths.

    python pipelines/bench_ohlcv.py [--n 200] [--models ar,garch] [--threads 1]

Table 1, bar facts (:func:`synthfin.scenarios.ohlcv.bar_facts`, per one-year segment, averaged):
real
S&P 500 bars of the fitted years (2008-2016) and of the held-out years 2017-2018 (``arch.data``);
the default OHLCV model applied to the real held-out closes (10 seeds); and the layer on top of
synthetic one-year paths from each model. Table 2: backtesting.py's SmaCross (10/20, long/short,
as in its README) on plain, stressed and crash (-10 % on day 60) paths beside the real history's
one-year segments (bundled closes with the same OHLCV layer, via ``stress_test``) and the real
S&P 500 bars of 1999-2018: median and inter-quartile range of return, max drawdown and Sharpe.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch
from arch.data import sp500
from backtesting import Strategy
from backtesting.lib import crossover
from backtesting.test import SMA

import synthfin as sf
from synthfin.backtest.adapters import BacktestingStrategy
from synthfin.backtest.performance import performance
from synthfin.scenarios.ohlcv import FIELDS, bar_facts, sp500_ohlcv_model

MODELS = {"ar": {"progress": False}, "garch": {"gjr": True, "dist": "skewt"}}
LENGTH = 252


class SmaCross(Strategy):
    """backtesting.py's README example."""

    n1 = 10
    n2 = 20

    def init(self):
        close = self.data.Close
        self.sma1 = self.I(SMA, close, self.n1)
        self.sma2 = self.I(SMA, close, self.n2)

    def next(self):
        if crossover(self.sma1, self.sma2):
            self.position.close()
            self.buy()
        elif crossover(self.sma2, self.sma1):
            self.position.close()
            self.sell()


def segments(bars: pd.DataFrame, first: int, last: int, length: int = 250) -> np.ndarray:
    """Non-overlapping ``length``-day blocks (k, length, 5) of real bars of years first..last."""
    values = bars.loc[str(first):str(last), list(FIELDS)].to_numpy()
    k = len(values) // length
    return values[:k * length].reshape(k, length, len(FIELDS))


def facts_table(real: pd.DataFrame, synthetic: dict[str, sf.Scenarios]) -> pd.DataFrame:
    columns = {"real 2008-16 (fit)": bar_facts(segments(real, 2008, 2016)),
               "real 2017-18 (held out)": bar_facts(segments(real, 2017, 2018))}
    held_out = segments(real, 2017, 2018)
    closes = held_out[:, :, 3]
    returns = np.diff(np.log(closes), axis=1)[:, :, None]
    model = sp500_ohlcv_model()
    on_real = [bar_facts(model.sample(returns[i:i + 1], closes[i, 0], seed=seed)[:, :, 0])
               for seed in range(10) for i in range(len(returns))]
    columns["model on real 2017-18 closes"] = pd.DataFrame(on_real).mean().to_dict()
    for name, scen in synthetic.items():
        columns[name] = bar_facts(scen.bars[:, :, 0])
    return pd.DataFrame(columns)


def summary(metrics: pd.DataFrame) -> dict[str, float]:
    row = {}
    for metric in ("total_return", "max_drawdown", "sharpe"):
        q25, q50, q75 = np.quantile(metrics[metric], [0.25, 0.5, 0.75])
        row[f"{metric} median"], row[f"{metric} IQR"] = q50, q75 - q25
    row["paths"] = len(metrics)
    return row


def real_bar_metrics(real: pd.DataFrame) -> pd.DataFrame:
    """SmaCross on each 250-day block of real S&P 500 bars, 1999-2018."""
    blocks = segments(real, 1999, 2018)                           # (20, 250, 5)
    blocks[:, :, :4] /= blocks[:, :1, 3:4]                         # every block starts at 1.0
    scen = sf.Scenarios(np.diff(np.log(blocks[:, :, 3]), axis=1)[:, :, None],
                        pd.bdate_range("2001-01-02", periods=blocks.shape[1] - 1),
                        ["SP500"], 1.0, bars=blocks[:, :, None, :])
    return performance(BacktestingStrategy(SmaCross).scenario_returns(scen))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    real = sp500.load()
    prices = sf.load_prices("bundled", ["SP500"])
    scenarios, fits = {}, {}
    for name in args.models.split(","):
        start = time.perf_counter()
        synth = sf.Synthesizer(name, **MODELS[name]).fit(prices)
        fits[name] = time.perf_counter() - start
        scenarios[f"{name} plain"] = synth.sample(args.n, LENGTH, seed=0)
        scenarios[f"{name} stressed"] = synth.sample(args.n, LENGTH, regime="stressed", seed=0)
        scenarios[f"{name} crash"] = synth.crash(args.n, LENGTH, shock=-0.10, shock_day=60,
                                                 seed=0)
    history = synth.data_.history()
    scenarios = {label: scen.with_ohlcv(seed=1) for label, scen in scenarios.items()}
    print("fit seconds:", {name: round(s, 1) for name, s in fits.items()})
    print(f"OHLCV model: {sp500_ohlcv_model()}\n")

    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)
    plain = {label: s for label, s in scenarios.items() if label.endswith("plain")}
    print("Table 1: bar facts, real vs synthetic")
    print(facts_table(real, plain).round(3).to_string(), "\n")

    start = time.perf_counter()
    report = sf.stress_test(SmaCross, scenarios, history)
    seconds = time.perf_counter() - start
    rows = {label: summary(frame) for label, frame in report.metrics.items()}
    rows["real segments (bundled closes + OHLCV layer)"] = summary(report.real)
    rows["real S&P 500 bars 1999-2018"] = summary(real_bar_metrics(real))
    print(f"Table 2: backtesting.py SmaCross(10, 20), one-year paths "
          f"({sum(len(s) for s in scenarios.values())} synthetic runs in {seconds:.1f} s)")
    print(pd.DataFrame(rows).T.round(3).to_string())


if __name__ == "__main__":
    main()
