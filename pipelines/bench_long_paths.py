"""Benchmark: 10-year paths of the window models (cvae, timegan) against GARCH and GJR.

    python pipelines/bench_long_paths.py [--series SP500] [--paths 200] [--years 10]
        [--cvae KEY=VALUE ...] [--timegan KEY=VALUE ...] [--threads 1]

Fits each model on the series' training split (window 64), draws ``--paths`` paths of
``--years`` x 2520 days (the window models chain windows, with their state carried across the
seams and, for comparison, without), and prints: the long-horizon summary
(:func:`synthfin.evaluation.long_horizon.long_horizon`: share of the ACF of |r| at lags 1-250
inside the band of the real series' own segments, ``power_law_beta`` and its gap to the real
series'), the ACF of |r| at the checked lags beside the band, and the pooled correlation of |r|
at lags 1-5 across seams against inside windows.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd
import torch
from bench_cvae import seam_correlation

import synthfin as sf
from synthfin.evaluation.long_horizon import long_horizon
from synthfin.models.baselines import GarchGenerator
from synthfin.models.cvae import ConditionalVAE
from synthfin.models.timegan import TimeGAN
from synthfin.stats.catalogue import long_max_lag


def settings(pairs: list[str]) -> dict:
    return {key: json.loads(value) for key, value in (pair.split("=", 1) for pair in pairs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series", default="SP500")
    parser.add_argument("--paths", type=int, default=200)
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cvae", action="append", default=[], help="cvae KEY=VALUE (JSON)")
    parser.add_argument("--timegan", action="append", default=[],
                        help="timegan KEY=VALUE (JSON)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pd.set_option("display.width", 250)
    returns = sf.log_returns(sf.load_prices("bundled", [args.series]))
    data = sf.make_windows(returns, 64)
    length = args.years * 2520 // 10
    common = {"seed": args.seed, "progress": False, "device": "cpu"}
    models = {"cvae": ConditionalVAE(**common, **settings(args.cvae)),
              "timegan": TimeGAN(**common, **settings(args.timegan)),
              "garch": GarchGenerator(), "gjr": GarchGenerator(gjr=True, dist="skewt")}
    samples, seams = {}, {}
    for name, model in models.items():
        start = time.perf_counter()
        model.fit(data)
        print(f"{name}: fitted in {time.perf_counter() - start:.0f} s", flush=True)
        carry = [True, False] if hasattr(model.config, "carry_state") else [None]
        for carry_state in carry:
            label = name if carry_state in (True, None) else f"{name} (no carry)"
            if carry_state is not None:
                model.config.carry_state = carry_state
            samples[label] = model.sample_returns(args.paths, seed=args.seed + 1, length=length)
            seams[label] = seam_correlation(samples[label], data.window_len)
    history = data.history()
    result = long_horizon(history, samples)
    print(f"\n{args.series}: {args.paths} paths of {length} days against {result.n_segments} "
          f"real segments")
    print(result.summary().round(3).to_string())
    lags = np.asarray(result.check_lags)
    acf = {name: result.values[name]["acf_abs"][lags - 1] for name in result.values}
    acf["band low"] = result.band_low["acf_abs"][lags - 1]
    acf["band high"] = result.band_high["acf_abs"][lags - 1]
    print(f"\nACF of |r| at lags {lags.tolist()} (max lag {long_max_lag(length)}):")
    print(pd.DataFrame(acf, index=lags).T.round(3).to_string())
    frame = pd.DataFrame(seams, index=["across seams", "inside windows"]).T
    frame.loc["real (64-day blocks)"] = seam_correlation(history[None], data.window_len)
    frame["ratio"] = frame["across seams"] / frame["inside windows"]
    print("\npooled corr(|r_t|, |r_t+k|), k = 1..5, pairs across a 64-day seam vs inside:")
    print(frame.round(3).to_string())


if __name__ == "__main__":
    main()
