"""Ten-year paths against the real series' own ten-year segments.

    python pipelines/bench_long_horizon.py [--series SP500,JPM,KO] [--models ar,garch,gjr]
        [--n 200] [--length 2520] [--threads 2]

Each model is fitted on the series' training split (window 64, default split, the quickstart's
settings) and samples ``--n`` paths of ``--length`` days; :func:`synthfin.evaluation.long_horizon`
compares them with the real series cut into segments of that length (one a year). Printed per
series: the share of the ACF of |r| at lags 1 / 5 / 10 / 20 / 50 / 100 / 250 inside the band of
the single real segments, the power-law decay exponent of that ACF (and its gap to the whole
series' own), the volatility of monthly realized volatility, drawdowns, and the drift of the
volatility level along the path (median vol of the last year over the first, minus one).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch

from synthfin.evaluation.long_horizon import long_horizon
from synthfin.jobs.config import load_pipeline_config
from synthfin.jobs.pipeline import model_settings, prepare_data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series", default="SP500,JPM,KO")
    parser.add_argument("--models", default="ar,garch,gjr")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--length", type=int, default=2520)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)
    config = load_pipeline_config(Path(__file__).parent / "quickstart.yaml")
    columns = ["acf_abs in band", "power_law_beta", "beta gap", "vol_of_vol in band",
               "max_drawdown in band", "vol_drift"]
    for ticker in args.series.split(","):
        data = prepare_data(config.data.model_copy(update={"tickers": [ticker]}))
        samples = {}
        for name in args.models.split(","):
            model_cls, settings = model_settings(name, config.models[name], seed=config.seed,
                                                 device="cpu")
            model = model_cls(**settings).fit(data)
            samples[name] = model.sample_returns(args.n, length=args.length, seed=0)
        result = long_horizon(data.history(), samples)
        print(f"\n{ticker}: {args.n} paths x {args.length} days against "
              f"{result.n_segments} real segments")
        print(result.summary()[columns].round(3).to_string())


if __name__ == "__main__":
    main()
