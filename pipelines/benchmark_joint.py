"""Joint panel benchmark: every registered generator trained on multi-asset universes, one table.

    python pipelines/benchmark_joint.py [--universes staples_2020,banks_2008] [--models ar,cvae]
        [--epochs 5] [--n 1000] [--length 252] [--window 64] [--threads 1] [--out runs/joint]

Universes are cut from the bundled data (:data:`UNIVERSES`): four groups of five stocks with
different correlation levels and start dates, two of which end their training days in a crisis
(the default split 70 / 15 / 15 % puts the end of training in January 2009 for ``banks_2008``
and in April 2020 for ``staples_2020``), and all 21 series jointly. The models are every
generator of the registry (:func:`synthfin.models.available_generators`), so models registered
later join the table; each is fitted with its default settings (``--epochs`` overrides the
epochs of the neural ones) on a universe's training days, sampled (``--n`` paths of
``--length`` days, seed 0) and scored by the evaluator's joint facts
(:mod:`synthfin.evaluation.joint`) against both references (in-sample: training windows;
out-of-sample: validation + test windows), each gap in units of its noise floor.

Printed: per universe, each model's values of the main joint facts beside the real ones and
their gaps over the floor, the largest |daily log return| of any path, the days beyond a
|daily log return| of 0.5 per asset-year (:data:`EXTREME_DAY`; the real row: of the universe's
whole history, with its one-sided 95 % Poisson upper bound), memorization and, for a likelihood
model, its validation negative log-likelihood per asset-day (scaled units, ``val_nll_``); then,
per model, the medians over universes and on how many universes its rate of such days is above
the real history's bound. Writes ``joint.md`` and ``joint.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import stats

from synthfin.data.bundled import BUNDLED_TICKERS
from synthfin.data.returns import log_returns
from synthfin.data.sources import load_prices
from synthfin.data.windows import make_windows
from synthfin.errors import ModelError
from synthfin.evaluation import evaluate_windows
from synthfin.io import atomic_write_json, atomic_write_text, finite_json
from synthfin.models import available_generators, get_generator
from synthfin.stats.facts import TRADING_DAYS

# name -> (tickers, first day, last day)
UNIVERSES: dict[str, tuple[tuple[str, ...], str, str | None]] = {
    "banks_2008": (("JPM", "BAC", "GE", "HD", "BBY"), "1998-01-01", "2013-09-30"),
    "staples_2020": (("KO", "PEP", "PG", "JNJ", "WMT"), "2014-01-01", None),
    "energy_pharma": (("XOM", "CVX", "RRC", "PFE", "MRK"), "2005-01-01", None),
    "mixed_1995": (("AAPL", "AMD", "MSFT", "UNH", "LLY"), "1995-01-01", None),
    "all21": (BUNDLED_TICKERS, "1990-01-01", None),
}
FACTS_SHOWN = ("corr_mae", "mean_corr", "calm_corr", "stressed_corr", "tail_dependence",
               "ew_kurtosis")
VALUES_SHOWN = ("mean_corr", "calm_corr", "stressed_corr", "tail_dependence", "ew_kurtosis")
REFERENCES = ("out_of_sample", "in_sample")
EXTREME_DAY = 0.5  # |daily log return| whose rate per asset-year is compared with the real one


def extreme_day_rate(returns: np.ndarray, threshold: float = EXTREME_DAY
                     ) -> tuple[int, float, float]:
    r"""Days with :math:`|r| >` ``threshold`` among daily log returns (any shape; NaN never
    counts): their number ``k``, the rate per asset-year :math:`k / Y` (:math:`Y` = finite
    values / 252) and its one-sided 95 % Poisson upper bound :math:`\chi^2_{0.95}(2k + 2) / 2Y`
    (exact; a model whose rate is above a real history's bound makes such days likelier than
    that history allows at 5 %, one that is below it does not contradict the history)."""
    returns = np.asarray(returns, dtype=np.float64)
    finite = np.isfinite(returns)
    years = finite.sum() / TRADING_DAYS
    k = int((np.abs(returns[finite]) > threshold).sum())
    return k, k / years, float(stats.chi2.ppf(0.95, 2 * k + 2) / 2 / years)


def run_universe(name: str, models: list[str], n: int, length: int, window: int,
                 epochs: int | None) -> dict[str, Any]:
    """Fit, sample and score every model on one universe: per model the joint values, their
    gaps over the floor of both references, the largest |daily log return|, the rate of days
    beyond :data:`EXTREME_DAY` (and the real history's, with its bound) and memorization."""
    tickers, start, end = UNIVERSES[name]
    prices = load_prices("bundled", list(tickers), start=start, end=end)
    returns = log_returns(prices)
    data = make_windows(returns, window)
    begin = time.perf_counter()
    samples, rows = {}, {}
    for model_name in models:
        cls = get_generator(model_name)
        settings: dict[str, Any] = {"seed": 0}
        fields = getattr(cls.config_class, "__dataclass_fields__", {})
        if "progress" in fields:
            settings["progress"] = False
        if "device" in fields:
            settings["device"] = "cpu"
        if epochs is not None and "epochs" in fields:
            settings["epochs"] = epochs
        fit_start = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = cls(**settings).fit(data)
        except ModelError as error:
            rows[model_name] = {"failed": str(error)}
            continue
        paths = model.sample_returns(n, length=length, seed=0)
        rows[model_name] = {"train_s": time.perf_counter() - fit_start,
                            "val_nll": getattr(model, "val_nll_", None),
                            "max_abs_return": float(np.nanmax(np.abs(paths))),
                            "paths_above_0.5": int((np.abs(paths) > EXTREME_DAY)
                                                   .any(axis=(1, 2)).sum()),
                            "extreme_days_a_year": extreme_day_rate(paths)[1]}
        samples[model_name] = paths
    evaluation = evaluate_windows(data, samples, neural=False, seed=0)
    real = {}
    for reference in REFERENCES:
        table = evaluation.joint[reference]
        real[reference] = {fact: float(table.values.loc["real", fact]) for fact in VALUES_SHOWN}
        for model_name in samples:
            for fact in VALUES_SHOWN:
                rows[model_name][f"{reference}:{fact}"] = float(table.values.loc[model_name,
                                                                                 fact])
            for fact in FACTS_SHOWN:
                rows[model_name][f"{reference}:{fact}/floor"] = float(
                    table.ratios.loc[model_name, fact])
    for model_name, memo in evaluation.memorization.iterrows():
        rows[model_name].update(memorization=float(memo["median_ratio"]),
                                memorization_flagged=bool(memo["flagged"]))
    split = data.split_dates
    days, rate, upper = extreme_day_rate(returns.to_numpy())
    print(f"{name}: {len(tickers)} assets, train {split['train'][0]}..{split['train'][1]}, "
          f"{time.perf_counter() - begin:.0f} s", flush=True)
    return finite_json({"universe": name, "assets": list(tickers), "split_dates": split,
                        "real": real, "rows": rows, "warnings": evaluation.warnings,
                        "real_extreme_days": {"days": days, "a_year": rate, "upper": upper}})


def universe_table(result: dict[str, Any], reference: str) -> pd.DataFrame:
    """One universe, one reference: real and each model's values, then gaps over the floor."""
    extreme = result["real_extreme_days"]
    rows = {"real": {fact: result["real"][reference][fact] for fact in VALUES_SHOWN}
            | {"days>0.5/yr": extreme["a_year"], "bound": extreme["upper"]}}
    for model_name, row in result["rows"].items():
        if "failed" in row:
            rows[model_name] = {"failed": row["failed"][:60]}
            continue
        rows[model_name] = {fact: row.get(f"{reference}:{fact}") for fact in VALUES_SHOWN}
        rows[model_name].update({f"{fact}/fl": _ratio(row.get(f"{reference}:{fact}/floor"))
                                 for fact in FACTS_SHOWN})
        rows[model_name].update(max_abs_r=row["max_abs_return"],
                                **{"days>0.5/yr": row["extreme_days_a_year"]},
                                memo=row.get("memorization"), val_nll=row.get("val_nll"))
    return pd.DataFrame(rows).T


def _ratio(value: float | None) -> float:
    """A gap over its floor read back from JSON: None was an infinite gap (undefined fact)."""
    return np.inf if value is None else value


def median_table(results: list[dict[str, Any]], models: list[str]) -> pd.DataFrame:
    """Per model: medians over universes of the gaps over the floor (both references), the
    largest |daily log return| of any path over all universes, the paths above 0.5 and the
    universes on which days beyond 0.5 come more often than the real history's bound allows."""
    rows = {}
    for model_name in models:
        per = [r["rows"][model_name] for r in results if "failed" not in r["rows"][model_name]]
        if not per:
            rows[model_name] = {"universes": 0}
            continue
        row: dict[str, Any] = {"universes": len(per)}
        for reference in REFERENCES:
            short = "oos" if reference == "out_of_sample" else "ins"
            for fact in FACTS_SHOWN:
                values = [_ratio(p.get(f"{reference}:{fact}/floor")) for p in per]
                row[f"{short}:{fact}"] = float(np.median(values))
        row["max_abs_r"] = max(p["max_abs_return"] for p in per)
        row["paths>0.5"] = sum(p["paths_above_0.5"] for p in per)
        row["rate>bound"] = sum(r["rows"][model_name]["extreme_days_a_year"]
                                > r["real_extreme_days"]["upper"] for r in results
                                if "failed" not in r["rows"][model_name])
        row["memo_flags"] = sum(bool(p.get("memorization_flagged")) for p in per)
        rows[model_name] = row
    return pd.DataFrame(rows).T


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--universes", default=",".join(UNIVERSES))
    parser.add_argument("--models", default=None, help="default: every registered generator")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs of the neural models (default: their own)")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--length", type=int, default=252)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("runs/joint"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    universes = [u for u in args.universes.split(",") if u]
    unknown = [u for u in universes if u not in UNIVERSES]
    if unknown:
        parser.error(f"unknown universes {unknown}; choose from {list(UNIVERSES)}")
    models = args.models.split(",") if args.models else available_generators()
    results = [run_universe(u, models, args.n, args.length, args.window, args.epochs)
               for u in universes]
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 40)
    lines = []
    for result in results:
        for reference in REFERENCES:
            title = f"## {result['universe']} ({reference})"
            table = universe_table(result, reference)
            print(f"\n{title}\n{table.round(3).to_string()}")
            lines += [title, "", "```", table.round(3).to_string(), "```", ""]
        for message in result["warnings"]:
            print(f"  warning: {message}")
    medians = median_table(results, models)
    print(f"\n## Medians over {len(results)} universes (gaps in noise floors)\n"
          f"{medians.round(2).to_string()}")
    lines += [f"## Medians over {len(results)} universes (gaps in noise floors)", "", "```",
              medians.round(2).to_string(), "```"]
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "joint.md", "\n".join(lines) + "\n")
    atomic_write_json(args.out / "joint.json", finite_json(
        {"settings": vars(args) | {"out": str(args.out)}, "results": results}))
    print(json.dumps({"written": str(args.out / "joint.md")}))


if __name__ == "__main__":
    main()
