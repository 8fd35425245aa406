"""Same-day dependence of the window models before and after issue 29, on one universe.

    python pipelines/bench_joint_noise.py

KO, PEP, PG, JNJ, WMT from 2014 (training ends 2020-04-20), window 64, 5 epochs, 500 paths of
252 days, seed 0: ``cvae`` with ``joint_rank=0`` (independent noise per asset, the old decoder)
and 2 (the default joint noise); ``timegan`` with ``correlation_weight=0`` (the old loss) and
100 (the default). Prints the evaluator's joint summary (values, gaps over the noise floor).
"""

from __future__ import annotations

import warnings

import pandas as pd
import torch

from synthfin.data.returns import log_returns
from synthfin.data.sources import load_prices
from synthfin.data.windows import make_windows
from synthfin.evaluation import evaluate_windows
from synthfin.models import get_generator

VARIANTS = (("cvae rank 0", "cvae", {"joint_rank": 0}), ("cvae rank 2", "cvae", {}),
            ("timegan w 0", "timegan", {"correlation_weight": 0.0}),
            ("timegan w 100", "timegan", {}))


def main() -> None:
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 30)
    prices = load_prices("bundled", ["KO", "PEP", "PG", "JNJ", "WMT"], start="2014-01-01")
    data = make_windows(log_returns(prices), 64)
    samples = {}
    for label, name, settings in VARIANTS:
        model = get_generator(name)(**settings, epochs=5, progress=False, device="cpu",
                                    seed=0).fit(data)
        samples[label] = model.sample_returns(500, length=252, seed=0)
        print(label, "done", flush=True)
    evaluation = evaluate_windows(data, samples, neural=False, seed=0)
    print(evaluation.joint_summary().round(3).to_string())


if __name__ == "__main__":
    main()
