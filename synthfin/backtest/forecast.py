"""Forecasts from real history, judged at horizons of 1, 5, 20 and 60 days against arch peers.

At each forecast day ``t`` of a test year, every forecaster draws ``n`` paths of daily log
returns (as many days as the longest horizon) given the real returns before ``t`` only; the
draws' cumulative returns at each horizon ``h`` are scored against the realized
``sum(r[t:t+h])``:

- CRPS of the ensemble (``scoringrules.crps_ensemble``; lower is better),
- coverage of the 50 / 90 / 98 % central intervals,
- 1 % and 5 % VaR breaches with Kupiec and Christoffersen tests, ES with Acerbi-Szekely
  (:mod:`synthfin.backtest.risk`),
- the PIT histogram (uniform for a calibrated forecaster).

Forecast days ``step`` apart share most of a 60-day path, so a correct forecaster's breaches
beyond ``h = step`` come in runs: the Kupiec test allows for that overlap (its statistic divided
by the breaches' variance inflation over ``ceil(h / step) - 1`` lags, :func:`overlap_lags`);
the Christoffersen test, which assumes independent days, does not. The calibration table's
anchor row, :func:`calibrated_passes`, simulates the overlap. Models are fitted once per origin (the
first day of the year) on the history before it and filter every later day with fixed
parameters; each reads the history once and draws the paths of every forecast day of the year
together (``arch``'s forecast from every day; ``ar``'s ``sample_after_days``), so a step of one
day, the dense protocol of the calibration check, costs little more than a sparse one.
One-day log scores are compared on every day of the year with Diebold-Mariano (Newey-West)
errors (:mod:`synthfin.stats.hac`).

Peers (all ``arch``, percent units): GJR-GARCH(1,1)-t, EGARCH(1,1,1)-t, FIGARCH(1,d,1)-t,
GJR-GARCH(1,1)-skew-t, and filtered historical simulation (GJR-GARCH(1,1) fitted by Gaussian
QMLE, its standardized residuals bootstrapped: ``forecast(method="bootstrap")``; it has no
density, so no log score). Any generator that continues a history (``ar``, ``cvae``,
``timegan``, ...) forecasts the same way; :func:`run_portfolio_forecasts` scores the
equal-weight portfolio of a universe from the joint generators' paths.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from synthfin.backtest.risk import (
    acerbi_szekely_z2,
    christoffersen_independence,
    kupiec_test,
)
from synthfin.errors import DataError, ModelError

if TYPE_CHECKING:
    from synthfin.models.base import Generator

HORIZONS = (1, 5, 20, 60)
PATH_DAYS = 60
INTERVAL_LEVELS = (0.5, 0.9, 0.98)
VAR_LEVELS = (0.01, 0.05)
PIT_BINS = 10
WINDOW = 64  # days of the windows a forecaster is fitted on (fit_forecaster)
TRAIN_SHARE = 0.8  # the share of the days before an origin a forecaster trains on
COVER_BAND = (0.87, 0.93)  # the 90 % interval's coverage the calibration check accepts
ANCHOR_REPS = 1000  # simulated test sets of the calibrated forecaster (calibrated_passes)


@dataclass(frozen=True)
class ArchPeer:
    """One ``arch_model`` specification; ``bootstrap`` draws standardized residuals (FHS)."""

    vol: str
    o: int
    dist: str
    bootstrap: bool = False

    def fit(self, series: np.ndarray, origin: int) -> FittedPeer:
        """Fit on ``series[:origin]`` (unscaled log returns, 1-D); the result filters any later
        day of ``series`` with the parameters fixed."""
        from synthfin.models.baselines import fit_arch

        result = fit_arch(100 * np.asarray(series, dtype=np.float64), vol=self.vol, o=self.o,
                          dist=self.dist, last_obs=origin)
        if not np.isfinite(result.params.to_numpy()).all():
            raise ModelError(f"{self} fit gave non-finite parameters")
        return FittedPeer(self, result.model, result, origin)


PEERS: dict[str, ArchPeer] = {
    "gjr-t": ArchPeer("GARCH", 1, "t"),
    "egarch-t": ArchPeer("EGARCH", 1, "t"),
    "figarch-t": ArchPeer("FIGARCH", 0, "t"),
    "gjr-skewt": ArchPeer("GARCH", 1, "skewt"),
    "fhs": ArchPeer("GARCH", 1, "normal", bootstrap=True),
}


@dataclass
class FittedPeer:
    """An ``arch`` model fitted before ``origin``, continuing the real history after it."""

    peer: ArchPeer
    model: object
    result: object
    origin: int

    def paths(self, days: Sequence[int], n: int, seed: int, length: int = PATH_DAYS
              ) -> np.ndarray:
        """Draws (len(days), n, length) of log returns from each day ``t`` on, given the real
        returns before ``t``: one ``arch`` forecast from every day between the first and the
        last (the filter reads the history once; ``arch`` forecasts day ``t`` from index
        ``t - 1`` with the residuals up to it), of which ``days`` are kept."""
        days = np.asarray(days)
        if days.min() < max(self.origin, 1):
            raise DataError(f"forecast days must be >= the origin {self.origin}")
        from synthfin.models.baselines import arch_spec

        y = np.asarray(self.model.y)
        first, last = int(days.min()), int(days.max())
        model = arch_spec(y[:last], vol=self.peer.vol, o=self.peer.o, dist=self.peer.dist)
        generator = np.random.default_rng(seed)
        forecast = model.fix(self.result.params).forecast(
            horizon=length, start=first - 1, simulations=n, reindex=False,
            method="bootstrap" if self.peer.bootstrap else "simulation",
            rng=None if self.peer.bootstrap else self._draws(generator),
            random_state=np.random.RandomState(int(generator.integers(2**32))))
        return forecast.simulations.values[days - first] / 100

    def _shape(self) -> np.ndarray:
        count = self.model.distribution.num_params
        return np.asarray(self.result.params.iloc[-count:]) if count else np.array([])

    def _draws(self, generator: np.random.Generator):
        """Seeded standardized innovations ``rng(size)`` for ``arch``'s simulation (its own
        default draws are not seedable per call)."""
        distribution, shape = self.model.distribution, self._shape()
        return lambda size: distribution.ppf(generator.random(size), shape)

    def one_day_log_scores(self, first: int, last: int) -> np.ndarray:
        """Log density (log-return units) of each real day in ``[first, last)`` given the
        days before it, parameters fixed; NaN for FHS (an empirical residual law)."""
        if self.peer.bootstrap:
            return np.full(last - first, np.nan)
        fixed = self.model.fix(self.result.params)
        scores = self.model.distribution.loglikelihood(
            self._shape(), np.asarray(fixed.resid), np.asarray(fixed.conditional_volatility) ** 2,
            individual=True) + math.log(100)
        return np.asarray(scores)[first:last]


EXPLODED = 10.0  # the cumulative log return an overflowed draw is scored as (a price x e^-10)


def cumulative_returns(paths: np.ndarray, horizons: Sequence[int] = HORIZONS) -> np.ndarray:
    """Cumulative log returns ``sum(r[:h])`` of paths (..., days) at each horizon:
    (..., len(horizons))."""
    paths = np.asarray(paths, dtype=np.float64)
    if paths.shape[-1] < max(horizons):
        raise DataError(f"paths of {paths.shape[-1]} days are shorter than horizon "
                        f"{max(horizons)}")
    return np.cumsum(paths, axis=-1)[..., np.asarray(horizons) - 1]


def crps_ensemble(observed: np.ndarray, draws: np.ndarray) -> np.ndarray:
    r"""CRPS of ensembles ``draws`` (days, n) at ``observed`` (days,), by ``scoringrules``:
    :math:`E|X - y| - \tfrac12 E|X - X'|`."""
    import scoringrules

    return np.asarray(scoringrules.crps_ensemble(np.asarray(observed, dtype=np.float64),
                                                 np.asarray(draws, dtype=np.float64)))


def horizon_scores(draws: np.ndarray, observed: np.ndarray, seed: int = 0, lags: int = 0
                   ) -> dict[str, float]:
    """Scores of one horizon: ``draws`` (days, n) of cumulative returns, ``observed`` (days,);
    ``lags``: days over which a correct forecaster's breaches are dependent (:func:`overlap_lags`).

    Returns mean CRPS, coverage of each central interval, breach rate and the Kupiec and
    Christoffersen p-values of each VaR level, the Acerbi-Szekely Z2 p-value, and the PIT
    histogram's counts (``pit_0`` .. ``pit_9``) with its chi-square p-value. A forecaster whose
    simulation overflowed (an explosive EGARCH path gives inf or NaN) is scored, not dropped:
    its non-finite draws count as a cumulative log return of ``-EXPLODED`` (``+EXPLODED`` for
    ``+inf``), and their share is the ``non-finite`` column.
    """
    from scipy import stats

    draws, observed = np.asarray(draws, dtype=np.float64), np.asarray(observed, np.float64)
    broken = ~np.isfinite(draws)
    draws = np.where(broken, np.where(draws == np.inf, EXPLODED, -EXPLODED), draws)
    row: dict[str, float] = {"days": len(observed), "non-finite": float(broken.mean()),
                             "crps": float(crps_ensemble(observed, draws).mean())}
    for level in INTERVAL_LEVELS:
        low, high = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=1)
        row[f"cover {level:.0%}"] = float(np.mean((observed >= low) & (observed <= high)))
    for level in VAR_LEVELS:
        var = -np.quantile(draws, level, axis=1)  # positive losses
        es = -np.array([d[d <= -v].mean() for d, v in zip(draws, var, strict=True)])
        breaches = -observed > var
        row[f"breach {level:.0%}"] = float(breaches.mean())
        row[f"kupiec p {level:.0%}"] = kupiec_test(breaches, 1 - level, lags)[1]
        row[f"christoffersen p {level:.0%}"] = christoffersen_independence(breaches)[1]
        row[f"AS z2 p {level:.0%}"] = acerbi_szekely_z2(
            observed, var, np.maximum(es, 1e-12), 1 - level, simulated=draws, seed=seed)[1]
    pit = np.mean(draws <= observed[:, None], axis=1)
    counts = np.histogram(pit, bins=PIT_BINS, range=(0, 1))[0]
    row.update({f"pit_{b}": int(c) for b, c in enumerate(counts)})
    row["pit chi2 p"] = float(stats.chisquare(counts).pvalue)
    return row


def score_paths(paths: np.ndarray, realized: np.ndarray, days: Sequence[int],
                horizons: Sequence[int] = HORIZONS, seed: int = 0) -> pd.DataFrame:
    """Score paths (len(days), n, PATH_DAYS) drawn at forecast ``days`` against the real
    series ``realized`` (T,): one row per horizon (only horizons whose realized sum is known)."""
    realized = np.asarray(realized, dtype=np.float64)
    draws = cumulative_returns(paths, horizons)  # (days, n, H)
    step = int(np.median(np.diff(days))) if len(days) > 1 else max(horizons)  # within years
    rows = {}
    for k, h in enumerate(horizons):
        known = np.asarray(days) + h <= len(realized)
        if known.sum() < 2:
            continue
        observed = np.array([realized[d:d + h].sum() for d in np.asarray(days)[known]])
        rows[h] = horizon_scores(draws[known, :, k], observed, seed=seed,
                                 lags=overlap_lags(h, step))
    return pd.DataFrame(rows).T.rename_axis("horizon")


def overlap_lags(horizon: int, step: int) -> int:
    """Lags over which ``horizon``-day forecasts made every ``step`` days share days:
    ``ceil(horizon / step) - 1``."""
    return -(-horizon // step) - 1


def forecast_days(index: pd.DatetimeIndex, year: int, step: int) -> tuple[int, int, list[int]]:
    """The origin (first day of ``year``), the end of the year and the forecast days of it,
    ``step`` apart, as positions in ``index``."""
    in_year = np.flatnonzero(index.year == year)
    if len(in_year) == 0:
        raise DataError(f"no trading day in {year}")
    origin, end = int(in_year[0]), int(in_year[-1]) + 1
    return origin, end, list(range(origin, end, step))


def compare_log_scores(scores: Mapping[str, np.ndarray], reference: str) -> pd.DataFrame:
    """Mean one-day log score of each forecaster minus ``reference``'s, with the Newey-West
    standard error and Diebold-Mariano t of the daily differences."""
    from synthfin.stats.hac import diebold_mariano

    rows = {}
    for name, values in scores.items():
        if name == reference or not np.isfinite(values).all():
            continue
        test = diebold_mariano(np.asarray(values) - np.asarray(scores[reference]))
        rows[name] = {"gain (nats/day)": test.mean, "HAC SE": test.se, "DM t": test.t}
    return pd.DataFrame(rows).T


def fit_forecaster(name: str, returns: pd.DataFrame, origin: int, *, finetune: bool = False,
                   epochs: int = 3, seed: int = 0, **options: Any) -> Generator:
    """The generator ``name`` fitted on ``returns.iloc[:origin]`` (nothing after the origin is
    read), to continue histories with ``sample_after``: windows of :data:`WINDOW` days, the
    first :data:`TRAIN_SHARE` of the days for training, the rest up to the last window for
    validation (early stopping and ``ar``'s mean and tail fit: the days nearest the forecasts
    that training did not read), the last window left as the unread test split.
    ``ar`` starts from the shipped pooled checkpoint (pretrained on training days up to
    2013-02-01), fine-tuned for ``epochs`` when ``finetune``, else zero-shot, with its mean
    weight, tail weight and asymmetry fitted on the validation days (``shrunk_mean``,
    ``asymmetric_tails``). ``options``:
    more settings of the generator (overriding these)."""
    import torch

    from synthfin.data.windows import make_windows
    from synthfin.models import get_generator

    torch.set_num_threads(1)
    history = returns.iloc[:origin]
    last_train, last_val = history.index[[round(TRAIN_SHARE * origin) - 1, origin - WINDOW - 1]]
    data = make_windows(history, WINDOW, split=(last_train, last_val))
    own = {"finetune": finetune, "epochs": epochs, "progress": False, "device": "cpu",
           "asymmetric_tails": True, "shrunk_mean": True}
    settings = (own if name == "ar" else {}) | options
    return get_generator(name)(seed=seed, **settings).fit(data)


def _path_days(horizons: Sequence[int]) -> int:
    """Days of the paths that horizons need; a clear error for bad horizons."""
    if len(horizons) == 0 or min(horizons) < 1 or list(horizons) != sorted(set(horizons)):
        raise DataError(f"horizons must be increasing whole days >= 1, got {list(horizons)}")
    return int(max(horizons))


def continued_paths(model: Generator, history: np.ndarray, days: Sequence[int], n: int,
                    seed: int, length: int = PATH_DAYS) -> np.ndarray:
    """Paths (len(days), n, length, assets) of a fitted context sampler continuing the real
    ``history`` (T, assets) from each forecast day: in one pass where the model draws from many
    days at once (``sample_after_days``), else one ``sample_after`` a day (seed ``seed +
    day``: reproducible per day)."""
    if hasattr(model, "sample_after_days"):
        return model.sample_after_days(history, days, n, length, seed=seed)
    return np.stack([model.sample_after(history[:day], n, length, seed=seed + day)
                     for day in days])


@dataclass
class ForecastRun:
    """Scores of every forecaster on one series: ``tables[name]`` (rows: horizons) and the
    one-day log scores of every day of the test years, ``log_scores[name]`` (days,; none for a
    portfolio), and the days between forecasts, ``step``."""

    ticker: str
    tables: dict[str, pd.DataFrame]
    log_scores: dict[str, np.ndarray]
    step: int

    def summary(self, columns: Sequence[str] = ("crps", "cover 50%", "cover 90%",
                                                 "cover 98%", "breach 1%", "kupiec p 1%",
                                                 "breach 5%", "kupiec p 5%",
                                                 "christoffersen p 1%", "AS z2 p 1%",
                                                 "pit chi2 p")) -> pd.DataFrame:
        """Rows (forecaster, horizon), the headline columns."""
        return pd.concat({name: table[list(columns)] for name, table in self.tables.items()},
                         names=["model", "horizon"])


def run_forecasts(returns: pd.DataFrame, years: Sequence[int], models: Sequence[str], *,
                  n: int = 500, step: int = 5, seed: int = 0, finetune: bool = False,
                  horizons: Sequence[int] = HORIZONS) -> ForecastRun:
    """Every forecaster of ``models`` (names of :data:`PEERS` and of generators that continue a
    history, :func:`~synthfin.models.continuing_models`, fitted by :func:`fit_forecaster`) on
    one series (a one-column DataFrame of log returns), refitted at the first day of each of
    ``years`` on the days before it, drawing ``n`` paths of ``max(horizons)`` days every
    ``step`` days of the year, scored at ``horizons``."""
    from synthfin.models import continuing_models

    length = _path_days(horizons)

    if returns.shape[1] != 1:
        raise DataError(f"forecasts run on one series at a time; got {returns.shape[1]}")
    unknown = sorted(m for m in models if m not in PEERS and m not in continuing_models())
    if unknown:
        raise DataError(f"unknown forecasters {unknown}; choose from {[*PEERS]} or a "
                        f"generator that continues a history {continuing_models()}")
    series = returns.to_numpy()[:, 0]
    paths = {m: [] for m in models}
    logs = {m: [] for m in models}
    all_days: list[int] = []
    for year in years:
        origin, end, days = forecast_days(returns.index, year, step)
        all_days += days
        for name in models:
            if name in PEERS:
                fitted = PEERS[name].fit(series, origin)
                paths[name].append(fitted.paths(days, n, seed, length))
                logs[name].append(fitted.one_day_log_scores(origin, end))
            else:
                model = fit_forecaster(name, returns, origin, finetune=finetune, seed=seed)
                paths[name].append(
                    continued_paths(model, series[:, None], days, n, seed, length)[..., 0])
                logs[name].append(model.one_step_log_likelihood(series[:end, None], origin)
                                  if hasattr(model, "one_step_log_likelihood")
                                  else np.full(end - origin, np.nan))  # no exact density
    tables = {m: score_paths(np.concatenate(paths[m]), series, all_days, horizons, seed)
              for m in models}
    return ForecastRun(str(returns.columns[0]), tables,
                       {m: np.concatenate(logs[m]) for m in models}, step)


def portfolio_returns(returns: np.ndarray) -> np.ndarray:
    r"""Daily log returns of the equal-weight portfolio rebalanced every day, from the assets'
    log returns (..., assets): :math:`\log \frac{1}{A} \sum_a e^{r_a}`."""
    returns = np.asarray(returns, dtype=np.float64)
    return np.log(np.mean(np.exp(returns), axis=-1))


JOINT_FORECASTERS = ("ar", "dcc", "fhs")
"""Generators that continue a universe's joint history (``fhs``: the joint filtered historical
simulation of :mod:`synthfin.models.multivariate`, whole days of residuals)."""


def run_portfolio_forecasts(returns: pd.DataFrame, years: Sequence[int],
                            models: Sequence[str] = JOINT_FORECASTERS, *, n: int = 500,
                            step: int = 5, seed: int = 0, horizons: Sequence[int] = HORIZONS
                            ) -> ForecastRun:
    """Forecasts of a universe's equal-weight portfolio (:func:`portfolio_returns`): every
    generator of ``models`` is fitted jointly on the assets (log returns, days x assets) before
    the first day of each of ``years``, continues the real joint history with ``n`` paths of
    ``max(horizons)`` days every ``step`` days, and the paths' portfolio returns are scored
    against the real portfolio's (:func:`score_paths`). No one-day log scores: a sum of
    dependent assets has no closed-form density here."""
    from synthfin.models import continuing_models

    if returns.shape[1] < 2:
        raise DataError(f"a portfolio forecast needs at least 2 assets; got {returns.shape[1]}")
    cannot = [m for m in models if m not in continuing_models()]
    if cannot:
        raise DataError(f"{cannot} cannot continue a history; choose from "
                        f"{continuing_models()}")
    length, history = _path_days(horizons), returns.to_numpy()
    paths: dict[str, list[np.ndarray]] = {m: [] for m in models}
    all_days: list[int] = []
    for year in years:
        origin, _, days = forecast_days(returns.index, year, step)
        all_days += days
        for name in models:
            model = fit_forecaster(name, returns, origin, seed=seed)
            paths[name].append(portfolio_returns(
                continued_paths(model, history, days, n, seed, length)))
    realized = portfolio_returns(history)
    tables = {m: score_paths(np.concatenate(paths[m]), realized, all_days, horizons, seed)
              for m in models}
    return ForecastRun("equal-weight " + "+".join(map(str, returns.columns)), tables, {}, step)


def calibration_passes(cover: np.ndarray, kupiec_p: np.ndarray) -> np.ndarray:
    """The calibration check: 90 % interval coverage in :data:`COVER_BAND` and the 1 % VaR's
    Kupiec test not rejected at 5 %."""
    cover = np.asarray(cover)
    return (cover >= COVER_BAND[0]) & (cover <= COVER_BAND[1]) & (np.asarray(kupiec_p) > 0.05)


def calibrated_passes(days: int, horizon: int, step: int, reps: int = ANCHOR_REPS,
                      seed: int = 0) -> np.ndarray:
    r"""Whether a calibrated forecaster passes :func:`calibration_passes` on each of ``reps``
    simulated test sets (reps,) of ``days`` forecasts, ``step`` days apart, of ``horizon``-day
    sums: how often a perfect model meets the check with this many forecasts.

    Its PITs are :math:`\Phi(S_i / \sqrt{h})` of a Gaussian random walk's :math:`h`-day sums
    :math:`S_i` from days :math:`i \cdot \mathrm{step}`: uniform, and dependent as the real
    forecasts are when ``horizon > step`` (their windows overlap)."""
    from scipy import stats

    rng = np.random.default_rng(seed)
    walk = np.cumsum(rng.standard_normal((reps, (days - 1) * step + horizon)), axis=1)
    walk = np.concatenate([np.zeros((reps, 1)), walk], axis=1)
    starts = np.arange(days) * step
    pit = stats.norm.cdf((walk[:, starts + horizon] - walk[:, starts]) / math.sqrt(horizon))
    cover = np.mean(np.abs(pit - 0.5) <= 0.45, axis=1)
    kupiec = [kupiec_test(row < 0.01, 0.99, overlap_lags(horizon, step))[1] for row in pit]
    return calibration_passes(cover, kupiec)


def forecast_tables(runs: Sequence[ForecastRun]) -> dict[str, pd.DataFrame]:
    """The printed tables over series: median mean-CRPS (x 1e3) per forecaster and horizon,
    with the series where each forecaster has the lowest CRPS; the series that pass
    :func:`calibration_passes`, beside the anchor row ``calibrated``: the series a forecaster
    drawing from the true law would pass with the same numbers of forecasts (mean and 5-95 %
    range over :data:`ANCHOR_REPS` simulations, :func:`calibrated_passes`); one-day log scores
    against the best peer of each series (highest mean log score) with Diebold-Mariano HAC
    errors: wins and losses by more than 2 SE."""
    models = list(runs[0].tables)
    horizons = list(runs[0].tables[models[0]].index)
    crps = {m: {h: float(np.median([r.tables[m].loc[h, "crps"] for r in runs])) * 1e3
                for h in horizons} for m in models}
    best = {h: pd.Series([min(models, key=lambda m: r.tables[m].loc[h, "crps"]) for r in runs])
            .value_counts().to_dict() for h in horizons}
    crps_table = pd.DataFrame(crps).T.rename(columns=lambda h: f"h={h}")
    crps_table["lowest CRPS on (series x horizon)"] = [
        sum(best[h].get(m, 0) for h in horizons) for m in models]
    calibration = {}
    for m in models:
        row = {}
        for h in horizons:
            cover = np.array([r.tables[m].loc[h, "cover 90%"] for r in runs])
            kupiec = np.array([r.tables[m].loc[h, "kupiec p 1%"] for r in runs])
            row[f"h={h} cover90 median"] = float(np.median(cover))
            row[f"h={h} ok"] = f"{int(calibration_passes(cover, kupiec).sum())} of {len(runs)}"
        calibration[m] = row
    anchor = {}
    for h in horizons:
        passes = np.array([calibrated_passes(int(r.tables[models[0]].loc[h, "days"]), h,
                                             r.step, seed=i) for i, r in enumerate(runs)])
        low, high = np.quantile(passes.sum(axis=0), [0.05, 0.95])
        anchor[f"h={h} cover90 median"] = 0.9
        anchor[f"h={h} ok"] = (f"{passes.sum(axis=0).mean():.1f} of {len(runs)} "
                               f"({low:.0f}-{high:.0f})")
    calibration["calibrated"] = anchor
    rows = {}
    for m in models:
        gains, wins, losses = [], 0, 0
        for r in runs:
            peers = {p: v for p, v in r.log_scores.items()
                     if p != m and p != "ar" and np.isfinite(v).all()}
            if not peers or not np.isfinite(r.log_scores[m]).all():
                continue
            best_peer = max(peers, key=lambda p: peers[p].mean())
            table = compare_log_scores({m: r.log_scores[m], best_peer: peers[best_peer]},
                                       best_peer)
            gain, se = table.loc[m, "gain (nats/day)"], table.loc[m, "HAC SE"]
            gains.append(gain)
            wins += int(gain > 2 * se)
            losses += int(gain < -2 * se)
        if gains:
            rows[m] = {"median gain vs best other peer (nats/day)": float(np.median(gains)),
                       "wins > 2 HAC SE": f"{wins} of {len(gains)}",
                       "losses > 2 HAC SE": f"{losses} of {len(gains)}"}
    return {"crps": crps_table, "calibration": pd.DataFrame(calibration).T,
            "log_score": pd.DataFrame(rows).T}
