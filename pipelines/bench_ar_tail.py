"""Where `ar`'s one-day tail is calibrated: exact PITs of its one-day law, in and out of sample.

    python pipelines/bench_ar_tail.py [--series SP500,KO,JNJ,PG] [--origin 2013]
        [--years 2013,...,2022] [--finetune] [--symmetric] [--threads 2]

For each series, the model fitted at ``--origin`` (zero-shot from the shipped checkpoint, or
fine-tuned) reads the whole history before it; the PIT of each day is the one-day law's CDF at
the realized return (a two-piece Student-t mixture: no sampling; ``--symmetric`` fits every
model without the tail asymmetry, ``asymmetric_tails=False``). Rows: periods
before the origin (the checkpoint was pretrained on days up to 2013-02-01) and the test years,
where the model is refitted at each yearly origin as ``bench_forecast.py`` does. Columns: the
share of days below the 1 % and 5 % quantiles and above the 99 % one, the 90 % interval's
coverage, and the mean one-day log score in scaled units (comparable between runs on the same
series only).
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import torch
from scipy import stats

from synthfin.backtest.forecast import fit_forecaster, forecast_days
from synthfin.data.bundled import read_bundled
from synthfin.data.returns import log_returns
from synthfin.models.autoregressive import series_inputs
from synthfin.models.components import side_dfs, student_t_mixture_log_prob, upper_share

PERIODS = ((1991, 2006), (2007, 2009), (2010, 2012))


def mixture_cdf(y: np.ndarray, logits: np.ndarray, loc: np.ndarray, scale: np.ndarray,
                df: np.ndarray, log_skew: np.ndarray, tail: np.ndarray) -> np.ndarray:
    """CDF (days,) of two-piece Student-t mixtures (days, K) at ``y`` (days,): below the
    location ``(1 - u) 2 F_lo(z g)``, above it ``1 - u + u (2 F_hi(z / g) - 1)``, with
    ``g = exp(log_skew)``, ``F_lo``, ``F_hi`` the Student-t CDFs of the halves' degrees of
    freedom (``side_dfs``) and ``u`` the upper half's probability (``upper_share``)."""
    halves = side_dfs(torch.as_tensor(df), torch.as_tensor(tail))
    upper = upper_share(*halves, torch.as_tensor(log_skew)).numpy()
    df_lo, df_hi = (h.numpy() for h in halves)
    z, gamma = (y[:, None] - loc) / scale, np.exp(log_skew)
    below = (1 - upper) * 2 * stats.t.cdf(z * gamma, df_lo)
    above = 1 - upper + upper * (2 * stats.t.cdf(z / gamma, df_hi) - 1)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    return (weights / weights.sum(-1, keepdims=True) * np.where(z < 0, below, above)).sum(-1)


def one_day_pits(returns: pd.DataFrame, origin: int, first: int, end: int, finetune: bool,
                 symmetric: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """PITs and scaled log scores of days ``first`` to ``end`` under the model fitted at
    ``origin`` (without the tail asymmetry if ``symmetric``)."""
    model = fit_forecaster("ar", returns, origin, finetune=finetune,
                           asymmetric_tails=not symmetric)
    scaled = model.spec_.scaler.transform(returns.to_numpy()[None, :end])
    x, y = series_inputs(scaled)
    with torch.no_grad():
        params = [p[0, first:end, 0].double() for p in model.modules_["net"].marginal(x)[0]]
        observed = y[0, first:end, 0].double()
        log = student_t_mixture_log_prob(observed, *params).numpy()
    return mixture_cdf(observed.numpy(), *(p.numpy() for p in params)), log


def row(pit: np.ndarray, log: np.ndarray) -> dict[str, float]:
    return {"breach 1%": np.mean(pit < 0.01), "breach 5%": np.mean(pit < 0.05),
            "above 99%": np.mean(pit > 0.99), "cover 90%": np.mean(np.abs(pit - 0.5) <= 0.45),
            "log score": float(log.mean()), "days": len(pit)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series", default="SP500,KO,JNJ,PG")
    parser.add_argument("--origin", type=int, default=2013)
    parser.add_argument("--years", default=",".join(str(y) for y in range(2013, 2023)))
    parser.add_argument("--finetune", action="store_true")
    parser.add_argument("--symmetric", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    years = [int(y) for y in args.years.split(",")]
    for ticker in args.series.split(","):
        returns = log_returns(read_bundled([ticker]))
        index = returns.index
        origin = forecast_days(index, args.origin, 1)[0]
        pit, log = one_day_pits(returns, origin, 252, origin, args.finetune, args.symmetric)
        period_years = index[252:origin].year
        rows = {f"{lo}-{hi}": row(pit[(period_years >= lo) & (period_years <= hi)],
                                  log[(period_years >= lo) & (period_years <= hi)])
                for lo, hi in PERIODS}
        tests = [one_day_pits(returns, o, o, e, args.finetune, args.symmetric)
                 for o, e, _ in (forecast_days(index, year, 1) for year in years)]
        pits, logs = (np.concatenate(part) for part in zip(*tests, strict=True))
        rows[f"{years[0]}-{years[-1]}"] = row(pits, logs)
        print(f"\n{ticker} ({'fine-tuned' if args.finetune else 'zero-shot'}"
              f"{', symmetric' if args.symmetric else ''}):")
        print(pd.DataFrame(rows).T.round(4).to_string(), flush=True)


if __name__ == "__main__":
    main()
