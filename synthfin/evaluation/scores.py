"""Real-versus-synthetic comparisons, each beside its noise floor.

Every fidelity score is a distance between a statistic of the synthetic windows and the same
statistic of the real windows (the L2 norm of the difference for curves, as the ACF and leverage
scores of Quant GANs). A raw score means nothing alone, so each comes with a **noise floor**: the
same distance between two independent sets of real windows, the first and second chronological
halves of the real set. The floor also carries the non-stationarity between the two halves; a
model as good as fresh real data scores at or below 1x the floor (about 0.5x when it draws many
more windows than the real set holds, since then only the real side is noisy).

Memorization gates everything: a generator that copies training windows wins most fidelity
scores, so each sample set's nearest-neighbour distances to the training windows are compared with
those of held-out real windows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from synthfin.errors import DataError
from synthfin.evaluation import facts

W1_HORIZONS = (1, 5, 20)
BATCHES_FOR_SPREAD = 10
# memorization flags: more than this share of exact copies, or of windows closer to the training
# set than the 5 % quantile of held-out real windows (expected share 0.05), or a median
# nearest-neighbour distance below this fraction of the held-out one
MAX_COPY_SHARE = 0.01
MAX_CLOSE_SHARE = 0.15
MIN_MEDIAN_RATIO = 0.8


def as_paths(x: np.ndarray, name: str) -> np.ndarray:
    """``x`` as float64 (n, length, assets); a 2-D array is one asset."""
    paths = np.asarray(x, dtype=np.float64)
    if paths.ndim == 2:
        paths = paths[..., None]
    if paths.ndim != 3 or paths.shape[0] < 2:
        raise DataError(f"{name} must have shape (n >= 2, length, assets), got {paths.shape}")
    if not np.isfinite(paths).all():
        raise DataError(f"{name} holds {int((~np.isfinite(paths)).sum())} non-finite values")
    return paths


def fact_statistics(x: np.ndarray) -> dict[str, np.ndarray]:
    """The statistics that fidelity scores compare, each a flat vector over assets (and lags).

    ``acf_r`` (lags 1..min(20, L-1)), ``acf_abs`` and ``acf_sq`` (lags 1..min(100, L/2)),
    ``leverage`` (lags 1..min(20, L-1)), ``tails`` (0.5/1/99/99.5 % quantiles in units of std),
    ``hill`` (left and right 5 % Hill indices), ``skewness``, ``kurtosis`` (excess, of 1-day
    returns), ``agg_kurtosis`` (5- and 20-day sums, where the window holds them) and, for several
    assets, ``cross_corr`` (upper triangle of the correlations of r and of |r|).
    """
    paths = as_paths(x, "returns")
    length = paths.shape[1]
    linear_lag, clustering_lag = min(20, length - 1), max(1, min(100, length // 2))
    horizons = [h for h in W1_HORIZONS[1:] if h <= length]

    def per_asset(fact: Callable[..., object], **kwargs) -> np.ndarray:
        return np.concatenate([np.atleast_1d(v) for v in facts.per_asset(fact, paths, **kwargs)])

    statistics = {
        "acf_r": per_asset(facts.acf, max_lag=linear_lag),
        "acf_abs": per_asset(facts.acf_abs, max_lag=clustering_lag),
        "acf_sq": per_asset(facts.acf_sq, max_lag=clustering_lag),
        "leverage": per_asset(facts.leverage_curve, max_lag=linear_lag),
        "tails": per_asset(facts.tail_quantiles),
        "hill": np.concatenate([per_asset(facts.hill_tail_index, tail=t)
                                for t in ("left", "right")]),
        "skewness": per_asset(facts.skewness),
        "kurtosis": per_asset(facts.excess_kurtosis),
        "agg_kurtosis": per_asset(facts.aggregated_kurtosis, horizons=horizons),
    }
    if paths.shape[2] > 1:
        upper = np.triu_indices(paths.shape[2], k=1)
        statistics["cross_corr"] = np.concatenate(
            [facts.cross_correlation(paths, absolute=a)[upper] for a in (False, True)])
    return statistics


def horizon_returns(x: np.ndarray, horizon_days: int) -> np.ndarray:
    """Non-overlapping ``horizon_days``-day log returns inside each window, (count, assets)."""
    paths = as_paths(x, "returns")
    n, length, assets = paths.shape
    blocks = length // horizon_days
    return paths[:, :blocks * horizon_days].reshape(n, blocks, horizon_days, assets).sum(axis=2)\
        .reshape(-1, assets)


def wasserstein_scores(synthetic: np.ndarray, real: np.ndarray) -> dict[str, float]:
    """W1 between demeaned h-day return distributions, in units of the real h-day std, and the
    drift gap (difference of mean daily returns, annualized) reported apart."""
    scores = {}
    for horizon in W1_HORIZONS:
        if horizon > min(synthetic.shape[1], real.shape[1]):
            continue
        fake, true = horizon_returns(synthetic, horizon), horizon_returns(real, horizon)
        scores[f"w1_{horizon}d"] = float(np.mean([
            stats.wasserstein_distance(fake[:, a] - fake[:, a].mean(), true[:, a] - true[:, a]
                                       .mean()) / true[:, a].std() for a in range(true.shape[1])]))
    scores["drift_gap"] = float(252 * np.abs(synthetic.mean(axis=(0, 1)) -
                                            real.mean(axis=(0, 1))).mean())
    return scores


def fact_gaps(synthetic: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray]
              ) -> dict[str, float]:
    """L2 norm of the difference of each statistic (NaN entries, e.g. undefined tails, dropped)."""
    gaps = {}
    for key, ref in reference.items():
        diff = synthetic[key] - ref
        gaps[key] = float(np.sqrt(np.sum(diff[np.isfinite(diff)] ** 2)))
    return gaps


def curve_spread(real: np.ndarray) -> dict[str, np.ndarray]:
    """Standard error of each statistic of the real set, by batch means over time.

    The chronologically ordered real windows are cut into 10 contiguous batches; the spread of a
    statistic is the standard deviation of its batch values divided by sqrt(10), an estimate of
    the standard error of the full-set value that respects the dependence between overlapping
    windows.
    """
    batches = np.array_split(as_paths(real, "real"), BATCHES_FOR_SPREAD)
    values = [fact_statistics(batch) for batch in batches]
    return {key: np.nanstd([v[key] for v in values], axis=0, ddof=1) / np.sqrt(len(batches))
            for key in values[0]}


def standardized_gap(synthetic: np.ndarray, reference: np.ndarray, spread: np.ndarray) -> float:
    """Root mean square of the lag-by-lag gap in units of the real spread: about 1 for a model
    as close as the real set's own sampling error allows."""
    z = (synthetic - reference) / spread
    return float(np.sqrt(np.mean(z[np.isfinite(z)] ** 2)))


def nearest_distances(queries: np.ndarray, pool: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """Euclidean distance from each flattened query window to its nearest pool window."""
    q = queries.reshape(len(queries), -1)
    p = pool.reshape(len(pool), -1)
    pool_norms = np.sum(p**2, axis=1)
    out = np.empty(len(q))
    for lo in range(0, len(q), chunk):
        block = q[lo:lo + chunk]
        squared = np.sum(block**2, axis=1)[:, None] + pool_norms[None, :] - 2 * block @ p.T
        nearest = p[squared.argmin(axis=1)]  # the expansion finds the neighbour; the direct
        out[lo:lo + chunk] = np.linalg.norm(block - nearest, axis=1)  # difference is exact
    return out


@dataclass
class Memorization:
    """How close samples sit to the training windows compared with held-out real windows."""

    copy_share: float      # share of samples equal to a training window (to rounding)
    close_share: float     # share closer than the 5 % quantile of held-out distances (0.05 ideal)
    median_ratio: float    # median distance, samples / held-out (1 ideal, << 1 copies)

    @property
    def flagged(self) -> bool:
        return (self.copy_share > MAX_COPY_SHARE or self.close_share > MAX_CLOSE_SHARE
                or self.median_ratio < MIN_MEDIAN_RATIO)


def _unit_rms(windows: np.ndarray) -> np.ndarray:
    rms = np.sqrt(np.mean(windows**2, axis=tuple(range(1, windows.ndim)), keepdims=True))
    return windows / np.maximum(rms, 1e-300)


def memorization(samples: np.ndarray, train: np.ndarray, held_out: np.ndarray) -> Memorization:
    """Nearest-training-window distances of samples against those of held-out real windows.

    Windows are compared by shape: each is divided by its root mean square first, so a model
    whose volatility level differs from the held-out period's is not mistaken for a copier (or
    a copier for a fresh model); an exact copy still has distance 0.
    """
    train, samples, held_out = _unit_rms(train), _unit_rms(samples), _unit_rms(held_out)
    held_out_distances = nearest_distances(held_out, train)
    sample_distances = nearest_distances(samples, train)
    scale = float(np.sqrt(train[0].size))  # every window now has norm sqrt(size)
    return Memorization(
        copy_share=float(np.mean(sample_distances <= 1e-9 * scale)),
        close_share=float(np.mean(sample_distances < np.quantile(held_out_distances, 0.05))),
        median_ratio=float(np.median(sample_distances) / np.median(held_out_distances)),
    )


@dataclass
class ScoreTable:
    """Fidelity scores of several sample sets against one real set, with the noise floor."""

    gaps: pd.DataFrame          # rows: sample sets; columns: scores (raw distances)
    floor: pd.Series            # the same scores between two halves of the real set
    standardized: pd.DataFrame  # curves' RMS gap in units of the real spread (batch means)
    memorization: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def ratios(self) -> pd.DataFrame:
        """Gaps in units of the noise floor."""
        return self.gaps / self.floor.replace(0.0, np.nan)


def score_samples(real: np.ndarray, samples: Mapping[str, np.ndarray], *,
                  train: np.ndarray | None = None, held_out: np.ndarray | None = None,
                  max_memorization_windows: int = 2000, seed: int = 0) -> ScoreTable:
    """Score every sample set against the real windows (all unscaled log returns).

    Parameters
    ----------
    real : array (n, length, assets)
        Real windows in chronological order (the noise floor splits them in halves).
    samples : mapping name -> array (m, length, assets)
        Synthetic windows of the same length and assets.
    train, held_out : arrays, optional
        Training windows and held-out real windows for the memorization check.
    max_memorization_windows : int
        Samples and held-out windows are subsampled (seeded) to at most this many.
    """
    real = as_paths(real, "real")
    half = len(real) // 2
    first, second = real[:half], real[half:]
    reference, spread = fact_statistics(real), curve_spread(real)
    floor = {**fact_gaps(fact_statistics(first), fact_statistics(second)),
             **wasserstein_scores(first, second)}
    rows, standardized, memo = {}, {}, {}
    rng = np.random.default_rng(seed)
    for name, x in samples.items():
        x = as_paths(x, f"samples {name!r}")
        if x.shape[1:] != real.shape[1:]:
            raise DataError(f"samples {name!r} have shape {x.shape[1:]} per window but the real "
                            f"windows {real.shape[1:]}; compare windows of the same length")
        statistics = fact_statistics(x)
        rows[name] = {**fact_gaps(statistics, reference), **wasserstein_scores(x, real)}
        standardized[name] = {key: standardized_gap(statistics[key], reference[key], spread[key])
                              for key in ("acf_r", "acf_abs", "acf_sq", "leverage")}
        if train is not None and held_out is not None:
            def subsample(a: np.ndarray) -> np.ndarray:
                keep = min(len(a), max_memorization_windows)
                return a[np.sort(rng.choice(len(a), keep, replace=False))]
            memo[name] = vars(memorization(subsample(x), as_paths(train, "train"),
                                           subsample(as_paths(held_out, "held_out"))))
    memo_frame = pd.DataFrame(memo).T
    if len(memo_frame):
        memo_frame["flagged"] = [Memorization(**row).flagged for row in memo.values()]
    return ScoreTable(gaps=pd.DataFrame(rows).T, floor=pd.Series(floor),
                      standardized=pd.DataFrame(standardized).T, memorization=memo_frame)
