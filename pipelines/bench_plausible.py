"""No explosive paths: the largest daily log return of each model on universes whose training
days end in a crash.

    python pipelines/bench_plausible.py [--models ar,dcc,fhs,garch] [--n 1000] [--threads 1]

Each universe (bundled stocks, window 64) is split so that its training days end just after
a crash; every model is fitted at default settings and samples ``--n`` paths of 252 days
(seed 0). Printed per universe and model: the largest daily |log return|, the paths above 0.5,
the paths beyond the plausibility bound (:func:`synthfin.models.base.implausible_paths`) and
the fit time.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch

from synthfin.data.returns import log_returns
from synthfin.data.sources import load_prices
from synthfin.data.windows import make_windows
from synthfin.models import get_generator
from synthfin.models.base import implausible_paths

# tickers, first day, last training day, last validation day
UNIVERSES = {
    "staples, 2020 crash": ("KO,PEP,PG,JNJ,WMT", "2014-01-01", "2020-04-09", "2021-06-30"),
    "banks and index, 2008 crash": ("SP500,JPM,BAC,GE,HD", "2003-01-01", "2008-12-31",
                                    "2010-06-30"),
}
SETTINGS = {"ar": {"progress": False}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="ar,dcc,fhs,garch")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{'universe':<30}{'model':<8}{'max |r|':>9}{'> 0.5':>7}{'implausible':>13}"
          f"{'fit s':>8}")
    for name, (tickers, first, train_end, val_end) in UNIVERSES.items():
        prices = load_prices("bundled", tickers.split(","), start=first)
        data = make_windows(log_returns(prices), 64, split=(train_end, val_end))
        for model in args.models.split(","):
            began = time.perf_counter()
            fitted = get_generator(model)(**SETTINGS.get(model, {})).fit(data)
            seconds = time.perf_counter() - began
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # counted below
                paths = fitted.sample_returns(args.n, length=252, seed=0)
            largest = np.abs(paths).max(axis=(1, 2))
            beyond = implausible_paths(paths, data.scaler.std_).sum()
            print(f"{name:<30}{model:<8}{largest.max():>9.3f}{(largest > 0.5).sum():>7}"
                  f"{beyond:>13}{seconds:>8.0f}", flush=True)


if __name__ == "__main__":
    main()
