"""Volatility clustering learned from a short history: the ACF of |r| at lag 1 of one-year
paths against the band of the real series' own one-year segments.

    python pipelines/bench_short_history.py [--last-days 2500] [--series SP500,JPM]
        [--models ar,garch,gjr] [--pipeline pipelines/quickstart.yaml] [--n 500] [--threads 2]

Each model (a run name of the pipeline's ``models:``) is fitted on the training split of each
bundled series' last ``--last-days`` days with the pipeline's settings (the quickstart's by
default: ``ar`` starts from the pooled checkpoint and fine-tunes, ``cvae`` pretrains on the
pooled universe's windows, as on any short single-asset history) and samples ``--n`` paths of
252 days. Printed per series: the pooled lag-1 ACF of |r| of the paths, the
range of that ACF over the real history's 252-day segments (one every 63 days) and its value
pooled over those segments (the like-for-like figure); the last line counts the series whose
samples fall inside the band.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from synthfin.config import load_pipeline_config
from synthfin.data.bundled import BUNDLED_TICKERS
from synthfin.data.universe import bundled_universe
from synthfin.pipeline import model_settings
from synthfin.stats import facts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--last-days", type=int, default=2500)
    parser.add_argument("--series", default=",".join(BUNDLED_TICKERS))
    parser.add_argument("--models", default="ar,garch,gjr")
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--pipeline", default=str(Path(__file__).parent / "quickstart.yaml"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_pipeline_config(args.pipeline)
    window = config.data.model_dump(exclude={"source", "tickers", "start", "end", "fill_gaps",
                                             "cache_dir"})
    universe = bundled_universe(args.series.split(","), last_days=args.last_days, **window)
    rows = {}
    for ticker, data in universe.items():
        history = data.history()[:, 0]
        segments = np.stack([history[s:s + 252] for s in range(0, len(history) - 251, 63)])
        band = [facts.acf_abs(segment[None], 1)[0] for segment in segments]
        rows[ticker] = {"real low": min(band), "real high": max(band),
                        "real pooled": facts.acf_abs(segments, 1)[0]}
        for name in args.models.split(","):
            model_cls, settings = model_settings(name, config.models[name], seed=config.seed,
                                                 device="cpu")
            paths = model_cls(**settings).fit(data).sample_returns(args.n, length=252, seed=0)
            rows[ticker][name] = facts.acf_abs(paths[..., 0], 1)[0]
    table = pd.DataFrame(rows).T
    print(f"pooled lag-1 ACF of |r| of {args.n} one-year paths, last {args.last_days} days")
    print(table.round(3).to_string())
    inside = {name: int(((table[name] >= table["real low"]) & (table[name] <= table["real high"]))
                        .sum()) for name in args.models.split(",")}
    print("inside the real band: " + ", ".join(f"{name} {count} of {len(table)}"
                                               for name, count in inside.items()))


if __name__ == "__main__":
    main()
