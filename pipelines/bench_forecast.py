"""Forecast benchmark: ar and the arch peers continuing real history from yearly origins.

    python pipelines/bench_forecast.py [--series SP500,KO,AAPL,JPM] [--years 2016,2019,2022]
        [--models ar,gjr-t,egarch-t,figarch-t,gjr-skewt,fhs] [--n 300] [--step 5]
        [--horizons 1,5,20,60] [--finetune] [--jobs 1] [--out runs/forecast]
    python pipelines/bench_forecast.py --portfolio --series KO,PEP,PG,JNJ,WMT [--models ar,dcc,fhs]
        [--start 2005-01-01]

For each series and year, every forecaster is fitted on the days before the year's first day
(``ar``: the shipped pooled checkpoint, pretrained on training days up to 2013-02-01, zero-shot
unless ``--finetune``) and draws ``--n`` paths (as long as the longest of ``--horizons``) every
``--step`` days of the year
(:mod:`synthfin.backtest.forecast`). Printed: each series' table, then over series the median CRPS
per
horizon, the 90 % coverage / Kupiec 1 % counts, and one-day log scores against the best other
peer with Diebold-Mariano (Newey-West) errors. Writes ``forecast.md`` and ``forecast.json``.
``--jobs`` runs that many series at once, in processes of one torch thread each.
``--portfolio`` forecasts the equal-weight portfolio of the series instead, every model fitted
jointly on them (:func:`synthfin.backtest.forecast.run_portfolio_forecasts`; default models
``ar,dcc,fhs``; no log scores).
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from multiprocessing import get_context
from pathlib import Path

import pandas as pd
import torch

from synthfin.backtest.forecast import (
    JOINT_FORECASTERS,
    ForecastRun,
    forecast_tables,
    run_forecasts,
    run_portfolio_forecasts,
)
from synthfin.data.returns import log_returns
from synthfin.data.sources import load_prices
from synthfin.io import atomic_write_json, atomic_write_text, finite_json


def forecast_series(ticker: str, years: list[int], models: list[str], n: int, step: int,
                    seed: int, finetune: bool, horizons: list[int],
                    first_day: str | None = None) -> tuple[ForecastRun, float]:
    """One series' forecasts, and the seconds they took."""
    torch.set_num_threads(1)
    start = time.perf_counter()
    returns = log_returns(load_prices("bundled", [ticker], start=first_day))
    run = run_forecasts(returns, years, models, n=n, step=step, seed=seed, finetune=finetune,
                        horizons=horizons)
    return run, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", default="SP500,KO,AAPL,JPM")
    parser.add_argument("--years", default="2016,2019,2022")
    parser.add_argument("--models", default=None,
                        help="default: ar and the five arch peers; with --portfolio ar,dcc,fhs")
    parser.add_argument("--portfolio", action="store_true")
    parser.add_argument("--start", default=None, help="first day of the data (default: all)")
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--step", type=int, default=5)
    parser.add_argument("--horizons", default="1,5,20,60")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--finetune", action="store_true")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("runs/forecast"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    years = [int(y) for y in args.years.split(",")]
    horizons = [int(h) for h in args.horizons.split(",")]
    models = (args.models.split(",") if args.models else
              list(JOINT_FORECASTERS) if args.portfolio else
              ["ar", "gjr-t", "egarch-t", "figarch-t", "gjr-skewt", "fhs"])
    runs, lines = [], [f"forecast benchmark: series {args.series}, years {args.years}, "
                       f"n {args.n}, step {args.step}, horizons {args.horizons}, "
                       f"finetune {args.finetune}, "
                       f"portfolio {args.portfolio}"]
    if args.portfolio:
        started = time.perf_counter()
        returns = log_returns(load_prices("bundled", args.series.split(","), start=args.start))
        run = run_portfolio_forecasts(returns, years, models, n=args.n, step=args.step,
                                      seed=args.seed, horizons=horizons)
        print(f"{run.ticker}: {time.perf_counter() - started:.0f} s", flush=True)
        report([run], lines, args)
        return
    work = partial(forecast_series, years=years, models=models, n=args.n, step=args.step,
                   seed=args.seed, finetune=args.finetune, horizons=horizons,
                   first_day=args.start)
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        for run, seconds in pool.map(work, args.series.split(",")):  # in the order given
            runs.append(run)
            print(f"{run.ticker}: {seconds:.0f} s", flush=True)
    report(runs, lines, args)


def report(runs: list[ForecastRun], lines: list[str], args: argparse.Namespace) -> None:
    """Print and write every run's table and the tables over runs."""
    for run in runs:
        lines.append(f"\n{run.ticker}:\n{run.summary().round(3).to_string()}")
    for name, table in forecast_tables(runs).items():
        if len(table):  # a portfolio has no log scores
            lines.append(f"\n{name} over {len(runs)} series:\n{table.round(3).to_string()}")
    text = "\n".join(lines)
    with pd.option_context("display.width", 250):
        print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "forecast.md", text + "\n")
    atomic_write_json(args.out / "forecast.json", finite_json({
        "settings": vars(args) | {"out": str(args.out)},
        "series": {r.ticker: {m: t.to_dict(orient="index") for m, t in r.tables.items()}
                   for r in runs}}))


if __name__ == "__main__":
    main()
