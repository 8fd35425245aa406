"""Panel benchmark: every generator trained on each bundled series separately, one table.

    python pipelines/benchmark_panel.py [--pipeline pipelines/quickstart.yaml]
        [--series SP500,JPM] [--models ar,garch,gjr] [--n 1000] [--jobs 2] [--threads 1]
        [--window 256] [--stride 4] [--last-days 2500] [--quick] [--out runs/panel]

The models and data settings come from ``--pipeline`` (by default the quickstart: window 64,
short training); ``--quick`` uses ``pipelines/tiny.yaml`` on two series (seconds, for
tests); ``--window`` and ``--stride`` change the window length and the days between window
starts (at window 256, stride 4 keeps a window model's epochs as long as at 64 and 1), and
``--last-days`` keeps only each series' last days (short histories).
For each series, every model is fitted on that series' training split and sampled, and the
evaluator scores the samples against both references (in-sample: training windows;
out-of-sample: validation + test windows). Printed per model, across series: the median and
inter-quartile range of each main gap in units of the reference's noise floor, memorization,
and, for density models, the test-period one-day log-likelihood per day minus that of
GJR-GARCH(1,1)-t fitted by ``arch`` on the same training days (median, and on how many series
the model wins or loses by more than 2 standard errors; Newey-West (HAC) standard errors of the
mean daily difference, since the daily gains are autocorrelated; the iid one is saved too).
Writes ``panel.md``, ``panel.json`` and one ``series/TICKER.json`` per finished series, which a
rerun with the same settings reuses (a killed run resumes).
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
import torch

from synthfin.data.bundled import BUNDLED_TICKERS
from synthfin.data.returns import log_returns
from synthfin.data.sources import load_prices
from synthfin.errors import ModelError
from synthfin.evaluation import evaluate_windows
from synthfin.io import atomic_write_json, atomic_write_text, finite_json
from synthfin.jobs.config import load_pipeline_config
from synthfin.jobs.pipeline import model_settings, prepare_data
from synthfin.models.baselines import garch_one_step_log_likelihood
from synthfin.stats import FACTS
from synthfin.stats.hac import newey_west_se

PIPELINES = Path(__file__).parent
FACTS_SHOWN = tuple(fact.name for fact in FACTS if fact.headline)  # the summary's facts
QUICK_SERIES = ("SP500", "JPM")


@runtime_checkable
class OneStepDensity(Protocol):
    """A model with a one-day-ahead forecast density of a real series."""

    def one_step_log_likelihood(self, returns: np.ndarray, first_day: int) -> np.ndarray: ...


def run_series(ticker: str, pipeline: str, models: list[str], n: int, threads: int,
               out: Path, window: int | None = None, stride: int | None = None,
               last_days: int | None = None
               ) -> dict[str, Any]:
    """Fit, sample and score every model on one series; per model: the gaps over the floor of
    both references, memorization, and the likelihood gain over GJR-GARCH-t. The result is saved
    as ``out/series/TICKER.json`` and reused by a rerun with the same settings."""
    saved = out / "series" / f"{ticker}.json"
    config = load_pipeline_config(pipeline)
    for key, value in (("window_len", window), ("stride", stride)):
        if value is not None:
            config.data = config.data.model_copy(update={key: value})
    run_settings = finite_json({"config": config.model_dump(mode="json"), "models": models,
                                "n": n, "last_days": last_days})
    result = _saved_result(saved)
    if result is not None and result.get("settings") == run_settings:
        print(f"{ticker}: reused {saved}", flush=True)
        return result
    torch.set_num_threads(threads)
    start = time.perf_counter()
    settings = config.data.model_copy(update={"tickers": [ticker]})
    if last_days is None:
        data = prepare_data(settings)
    else:  # a short history: the last days only
        prices = load_prices(settings.source, settings.tickers, settings.start, settings.end)
        data = settings.make_windows(log_returns(prices).iloc[-last_days:])
    series = data.history()
    n_train = len(data.train.returns)
    first_test = n_train + len(data.val.returns)
    gjr = garch_one_step_log_likelihood(series[:, 0], n_train, gjr=True)[first_test:]
    samples, rows = {}, {}
    for run_name in models:
        model_cls, settings = model_settings(run_name, config.models[run_name],
                                             seed=config.seed, device="cpu")
        fit_start = time.perf_counter()
        try:
            model = model_cls(**settings).fit(data)
        except ModelError as error:  # e.g. a GARCH fit that does not converge: count it
            rows[run_name] = {"failed": str(error)}
            continue
        rows[run_name] = {"train_s": time.perf_counter() - fit_start}
        samples[run_name] = model.sample_returns(n, seed=config.seed)
        if isinstance(model, OneStepDensity):
            gain = model.one_step_log_likelihood(series, first_test) - gjr
            rows[run_name].update(ll_gain=gain.mean(),  # HAC: daily gains are autocorrelated
                                  ll_se=newey_west_se(gain),
                                  ll_se_iid=gain.std(ddof=1) / np.sqrt(len(gain)))
    evaluation = evaluate_windows(data, samples, neural=False, seed=config.seed)
    for reference, scores in evaluation.scores.items():
        for run_name, ratios in scores.ratios.iterrows():
            rows[run_name].update({f"{reference}:{fact}": ratios[fact] for fact in FACTS_SHOWN})
    for run_name, memo in evaluation.memorization.iterrows():
        rows[run_name].update(memorization=memo["median_ratio"], copies=memo["copy_share"])
    print(f"{ticker}: {time.perf_counter() - start:.0f} s", flush=True)
    result = finite_json({"ticker": ticker, "settings": run_settings, "test_days": len(gjr),
                          "rows": rows, "warnings": evaluation.warnings})
    atomic_write_json(saved, result)
    return result


def _saved_result(saved: Path) -> dict[str, Any] | None:
    """A series' saved result, or None when there is none or it is damaged (rebuilt then)."""
    try:
        result = json.loads(saved.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        result = None
    if not isinstance(result, dict):
        print(f"{saved} is damaged; its series runs again", flush=True)
        return None
    return result


def _cell(values: pd.Series, digits: int = 2) -> str:
    """Median and inter-quartile range across series."""
    values = values.astype(float)
    if values.isna().all():
        return "-"
    q25, q50, q75 = np.nanquantile(values, [0.25, 0.5, 0.75])
    return f"{q50:.{digits}f} [{q25:.{digits}f}, {q75:.{digits}f}]"


def _markdown(frame: pd.DataFrame) -> str:
    lines = ["| model | " + " | ".join(frame.columns) + " |",
             "|---|" + "---:|" * len(frame.columns)]
    lines += [f"| {name} | " + " | ".join(str(v) for v in row) + " |"
              for name, row in frame.iterrows()]
    return "\n".join(lines)


def grouped_column(grouped: dict[str, pd.DataFrame], models: list[str], column: str
                   ) -> dict[str, str]:
    """:func:`_cell` of one column for every model."""
    return {m: _cell(grouped[m][column]) for m in models}


def panel_tables(results: list[dict[str, Any]], models: list[str]) -> dict[str, pd.DataFrame]:
    """The printed tables: one per reference (median [IQR] across series of each gap over the
    floor, and memorization), and the likelihood table."""
    long = pd.DataFrame([{"ticker": r["ticker"], "model": m, **row}
                         for r in results for m, row in r["rows"].items()])
    grouped = {model: frame for model, frame in long.groupby("model")}
    tables = {}
    for reference in ("in_sample", "out_of_sample"):
        columns = {fact: grouped_column(grouped, models, f"{reference}:{fact}")
                   for fact in FACTS_SHOWN}
        tables[reference] = pd.DataFrame(
            {**columns, "memorization": grouped_column(grouped, models, "memorization")})
    likelihood = {}
    for m in models:
        frame = grouped[m]
        if "ll_gain" not in frame or frame["ll_gain"].isna().all():
            continue
        wins = int((frame["ll_gain"] > 2 * frame["ll_se"]).sum())
        losses = int((frame["ll_gain"] < -2 * frame["ll_se"]).sum())
        likelihood[m] = {"gain over GJR-t (nats/day)": _cell(frame["ll_gain"], digits=3),
                         "median HAC SE": f"{frame['ll_se'].median():.4f}",
                         "wins > 2 HAC SE": f"{wins} of {len(frame)}",
                         "losses > 2 HAC SE": f"{losses} of {len(frame)}"}
    tables["likelihood"] = pd.DataFrame(likelihood).T
    tables["train_s"] = pd.DataFrame({
        "train s (median)": {m: f"{grouped[m]['train_s'].median():.1f}" for m in models},
        "failed on": {m: ", ".join(grouped[m].loc[grouped[m]["failed"].notna(), "ticker"])
                      if "failed" in grouped[m] else "" for m in models}})
    return tables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pipeline", default=str(PIPELINES / "quickstart.yaml"))
    parser.add_argument("--series", help="comma-separated bundled tickers (default: all 21)")
    parser.add_argument("--models", help="comma-separated run names of the pipeline")
    parser.add_argument("--n", type=int, default=1000, help="sample windows per model")
    parser.add_argument("--jobs", type=int, default=2, help="series trained in parallel")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per job")
    parser.add_argument("--quick", action="store_true",
                        help="pipelines/tiny.yaml on SP500 and JPM with 200 samples")
    parser.add_argument("--window", type=int, help="window length (default: the pipeline's)")
    parser.add_argument("--stride", type=int, help="days between windows (default: the pipeline's)")
    parser.add_argument("--last-days", type=int,
                        help="keep only each series' last days (a short history)")
    parser.add_argument("--out", default="runs/panel")
    args = parser.parse_args()
    if args.quick:
        args.pipeline, args.n = str(PIPELINES / "tiny.yaml"), 200
        args.series = args.series or ",".join(QUICK_SERIES)
    config = load_pipeline_config(args.pipeline)
    series = args.series.split(",") if args.series else list(BUNDLED_TICKERS)
    models = args.models.split(",") if args.models else list(config.models)
    unknown = sorted(set(models) - set(config.models))
    if unknown:
        parser.error(f"--models {unknown} are not in {args.pipeline}: {list(config.models)}")
    start = time.perf_counter()
    out = Path(args.out)
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        results = list(pool.map(partial(run_series, pipeline=args.pipeline, models=models,
                                        n=args.n, threads=args.threads, out=out,
                                        window=args.window, stride=args.stride,
                                        last_days=args.last_days), series))
    minutes = (time.perf_counter() - start) / 60
    tables = panel_tables(results, models)
    header = (f"panel of {len(series)} series ({', '.join(series)}), {args.pipeline}, window "
              f"{args.window or config.data.window_len}, "
              f"stride {args.stride or config.data.stride}, "
              + (f"last {args.last_days} days, " if args.last_days else "")
              + f"{args.n} samples per model, {args.jobs} jobs x "
              f"{args.threads} threads, {minutes:.1f} min")
    sections = [header, "",
                "Gaps in units of the noise floor, median [IQR] across series; memorization: "
                "median nearest-training-window distance ratio (1 ideal, << 1 copies).", ""]
    for name, title in [("in_sample", "In-sample (reference: training windows)"),
                        ("out_of_sample", "Out-of-sample (reference: validation + test)"),
                        ("likelihood", "Test-period one-day log-likelihood minus "
                                       "GJR-GARCH(1,1)-t's (fitted on the same training days)"),
                        ("train_s", "Training time per series (s), and fits that failed "
                                    "(left out of that model's medians)")]:
        if len(tables[name]):
            sections += [f"### {title}", "", _markdown(tables[name]), ""]
    text = "\n".join(sections)
    print(text)
    atomic_write_text(out / "panel.md", text + "\n")
    atomic_write_json(out / "panel.json", finite_json({"header": header, "series": results}))


if __name__ == "__main__":
    main()
