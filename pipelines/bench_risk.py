"""Risk backtest of one-day-ahead VaR and ES on bundled S&P 500 test days: the autoregressive
generator beside GARCH(1,1)-t.

    python pipelines/bench_risk.py [--days N] [--draws 1000] [--threads 1] [--out results/risk]

Both models condition on the real past: for each held-out day they draw ``--draws`` returns given
the days before it; VaR and ES at 95 % and 99 % come from those draws and are judged by Kupiec,
Christoffersen and Acerbi-Szekely Z2 (see :mod:`synthfin.backtest.risk`). Prints one Markdown table
per
model and the run time; ``--out`` also writes them as ``risk_backtest.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import torch

import synthfin as sf
from synthfin.backtest.risk import garch_t_forecast_samples, model_forecast_samples, risk_backtest
from synthfin.io import atomic_write_json, atomic_write_text
from synthfin.models.autoregressive import AutoregressiveGenerator

INTEGER_COLUMNS = ("days", "exceedances")


def _cell(column: str, value: float) -> str:
    if column in INTEGER_COLUMNS:
        return f"{int(value)}"
    return f"{value:.3g}" if column.endswith("_p") else f"{value:.3f}"


def markdown_table(table: pd.DataFrame) -> str:
    """One Markdown row per level: counts as integers, p-values to three significant digits,
    the rest to three decimals."""
    columns = ["level", *table.columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---:|" * len(columns)]
    for level, row in table.iterrows():
        cells = [f"{level:.0%}"] + [_cell(c, row[c]) for c in table.columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=None,
                        help="only the first N test days (quick run)")
    parser.add_argument("--draws", type=int, default=1000, help="predictive draws per day")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="folder for .md and .json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()

    data = sf.make_windows(sf.log_returns(sf.load_prices("bundled", ["SP500"])), 64)
    series = data.history()  # (T, 1)
    n_train = len(data.train.returns)
    first_day = n_train + len(data.val.returns)
    last_day = len(series) if args.days is None else min(len(series), first_day + args.days)
    series = series[:last_day]
    realized = series[first_day:, 0]

    model = AutoregressiveGenerator(progress=False).fit(data)
    fit_seconds = time.perf_counter() - start
    forecasts = {
        "ar": model_forecast_samples(model, series, first_day, n_draws=args.draws,
                                     seed=args.seed),
        "GARCH(1,1)-t": garch_t_forecast_samples(series[:, 0], n_train, first_day,
                                                 n_draws=args.draws, seed=args.seed),
    }
    tables = {name: risk_backtest(realized, samples, seed=args.seed)
              for name, samples in forecasts.items()}
    seconds = time.perf_counter() - start

    header = (f"One-day-ahead VaR/ES backtest, bundled S&P 500, {len(realized)} test days from "
              f"{data.split_dates['test'][0]}, {args.draws} draws per day, Z2 p-values from "
              "2,000 scenarios under H0")
    text = header + "\n\n" + "\n".join(f"### {name}\n\n{markdown_table(table)}"
                                       for name, table in tables.items())
    print(text)
    print(f"run time {seconds:.1f} s (ar training {fit_seconds:.1f} s)")
    if args.out is not None:
        atomic_write_text(args.out / "risk_backtest.md", text)
        atomic_write_json(args.out / "risk_backtest.json", {
            "header": header, "seconds": round(seconds, 1),
            "tables": {name: {f"{level:g}": row for level, row in
                              table.to_dict(orient="index").items()}
                       for name, table in tables.items()}})


if __name__ == "__main__":
    main()
