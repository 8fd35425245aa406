"""Volatility clustering learned from a short history: the ACF of |r| at lag 1 of one-year
paths against the band of the real series' own one-year segments.

    python pipelines/bench_short_history.py [--last-days 2500] [--series SP500,JPM]
        [--models ar,garch,gjr] [--pipeline pipelines/quickstart.yaml] [--n 500] [--threads 2]

Each model (a run name of the pipeline's ``models:``) is fitted on the training split of each
bundled series' last ``--last-days`` days with the pipeline's settings (the quickstart's by
default: ``ar`` starts from the pooled checkpoint and fine-tunes, ``cvae`` pretrains on the
pooled universe's windows, as on any short single-asset history) and samples ``--n`` paths of
252 days. Printed per series: the pooled lag-1 ACF of |r| of the paths and of the two anchors
of iid noise (:func:`synthfin.evaluation.scores.anchor_samples`: an iid Gaussian, iid t(4) with
a lognormal level per path), the range of that ACF over the real history's 252-day segments
(one every 63 days; printed, not used: iid noise lands in it on most series) and its value
pooled over those segments with its standard error (sd of the values of the non-overlapping
segments / sqrt(their count)). The last lines count the series whose samples lie within
2 SE of the pooled real value; a model is only credited where the anchors are not.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from synthfin.data.bundled import BUNDLED_TICKERS
from synthfin.data.universe import bundled_universe
from synthfin.evaluation.scores import ANCHOR_GAUSSIAN, ANCHOR_T_LEVEL, anchor_samples
from synthfin.jobs.config import load_pipeline_config
from synthfin.jobs.pipeline import model_settings
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
        disjoint = [facts.acf_abs(history[None, s:s + 252], 1)[0]
                    for s in range(0, len(history) - 251, 252)]
        rows[ticker] = {"real low": min(band), "real high": max(band),
                        "real pooled": facts.acf_abs(segments, 1)[0],
                        "real SE": np.std(disjoint, ddof=1) / np.sqrt(len(disjoint))}
        for name, paths in anchor_samples(segments[..., None], args.n).items():
            rows[ticker][name] = facts.acf_abs(paths[..., 0], 1)[0]
        for name in args.models.split(","):
            model_cls, settings = model_settings(name, config.models[name], seed=config.seed,
                                                 device="cpu")
            paths = model_cls(**settings).fit(data).sample_returns(args.n, length=252, seed=0)
            rows[ticker][name] = facts.acf_abs(paths[..., 0], 1)[0]
    table = pd.DataFrame(rows).T
    print(f"pooled lag-1 ACF of |r| of {args.n} one-year paths, last {args.last_days} days")
    print(table.round(3).to_string())
    names = [*args.models.split(","), ANCHOR_GAUSSIAN, ANCHOR_T_LEVEL]
    inside = {name: int(((table[name] >= table["real low"]) & (table[name] <= table["real high"]))
                        .sum()) for name in names}
    print("inside the min-max band (not evidence): " + ", ".join(
        f"{name} {count} of {len(table)}" for name, count in inside.items()))
    close = {name: int(((table[name] - table["real pooled"]).abs() <= 2 * table["real SE"]).sum())
             for name in names}
    print("within 2 SE of the pooled real value: " + ", ".join(
        f"{name} {count} of {len(table)}" for name, count in close.items()))


if __name__ == "__main__":
    main()
