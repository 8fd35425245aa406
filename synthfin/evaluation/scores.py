"""Real-versus-synthetic comparisons, each beside its noise floor.

Every fidelity score is a distance between a fact (:data:`synthfin.stats.FACTS`) of the synthetic
windows and the same fact of a **reference** set of real windows (the L2 norm of the difference
for curves, as the ACF and leverage scores of Quant GANs). A raw score means nothing alone, so each
comes with a **noise floor**: the same distance between two disjoint halves of the reference
(:class:`Reference`). A model as good as fresh real data scores at or below 1x the floor (about
0.5x when it draws many more windows than the reference holds, since then only the real side is
noisy). Two references answer two questions: *in-sample* (the training windows: did the model
learn its training period?) and *out-of-sample* (validation + test windows: does it generalize to
data it never saw?).

A set the facts cannot describe (non-finite values, zero variance) gets infinite gaps rather than
having its undefined entries dropped: a degenerate set never scores well.

Memorization gates everything: a generator that copies training windows wins most fidelity
scores, so each sample set's nearest-neighbour distances to the training windows are compared with
those of held-out real windows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from synthfin.errors import DataError
from synthfin.stats import catalogue, fact_statistics
from synthfin.stats.facts import TRADING_DAYS

W1_HORIZONS = (1, 5, 20)
BATCHES_FOR_SPREAD = 10
# the in-sample floor interleaves blocks of max(4 x window length, one year) of days
FLOOR_BLOCK_WINDOW_LENGTHS = 4
FLOOR_BLOCK_MIN_DAYS = 252
# the in-sample floor is the mean over this many random block-to-half assignments (one split
# depends on where the blocks start: shifting them by 128 windows moved the S&P 500 acf_abs
# floor from 1.06 to 0.21), reported with its spread over the assignments
FLOOR_ASSIGNMENTS = 32
# a single split (validation against test) gets its floor's spread from this many block-bootstrap
# replicates of each half
FLOOR_RESAMPLES = 16
# memorization flags: more than this share of exact copies, or of windows closer to the training
# set than the 5 % quantile of held-out real windows (expected share 0.05), or a median
# nearest-neighbour distance below this fraction of the held-out one
MAX_COPY_SHARE = 0.01
MAX_CLOSE_SHARE = 0.15
MIN_MEDIAN_RATIO = 0.8
# a set whose daily std is off the real one by more than this factor is degenerate: the calmest
# and the most turbulent calendar years of the bundled S&P 500 are 0.36x and 2.24x its std
MAX_SCALE_RATIO = 5.0
# the two anchors of every table: noise a fact must tell from real data. iid t(ANCHOR_T_DOF)
# days with a per-window lognormal level (sd ANCHOR_LEVEL_SD of the log) has no dynamics yet
# differs between windows, which pooled autocorrelations across windows mistake for clustering
ANCHOR_T_DOF = 4.0
ANCHOR_LEVEL_SD = 0.5
ANCHOR_WINDOWS = 2000
ANCHOR_GAUSSIAN = "anchor: iid Gaussian"
ANCHOR_T_LEVEL = "anchor: iid t x level"


def as_paths(x: np.ndarray, name: str, allow_non_finite: bool = False) -> np.ndarray:
    """``x`` as float64 (n, length, assets); a 2-D array is one asset. Non-finite values raise
    unless ``allow_non_finite`` (sample sets: they are scored as degenerate instead)."""
    paths = np.asarray(x, dtype=np.float64)
    if paths.ndim == 2:
        paths = paths[..., None]
    if paths.ndim != 3 or paths.shape[0] < 2:
        raise DataError(f"{name} must have shape (n >= 2, length, assets), got {paths.shape}")
    if not allow_non_finite and not np.isfinite(paths).all():
        raise DataError(f"{name} holds {int((~np.isfinite(paths)).sum())} non-finite values")
    return paths


@dataclass(frozen=True)
class Reference:
    """Real windows to score against, and pairs of disjoint halves that give the noise floor.

    Attributes
    ----------
    windows : array (n, length, assets)
        Unscaled real windows in date order.
    first, second : int arrays
        Indices into ``windows`` of the first assignment's two halves; no window of one half
        shares a day with a window of the other.
    assignments : tuple of (first, second) pairs
        Every split the floor averages over (``((first, second),)`` when built directly).
    resamples : tuple of (first, second) pairs
        Block-bootstrap replicates of a single split's halves (indices may repeat): they give
        that floor its spread and do not move it.
    """

    windows: np.ndarray
    first: np.ndarray
    second: np.ndarray
    assignments: tuple = ()
    resamples: tuple = ()

    def __post_init__(self) -> None:
        if not self.assignments:
            object.__setattr__(self, "assignments", ((self.first, self.second),))

    @classmethod
    def blocked(cls, windows: np.ndarray, stride: int = 1, *,
                assignments: int = FLOOR_ASSIGNMENTS, seed: int = 0) -> Reference:
        """Halves of blocks of days over ``assignments`` splits: even blocks against odd ones,
        then splits with a random start of the blocks and each block drawn to a random half.

        Blocks span ``max(4 * length, 252)`` days, so both halves cover the whole period
        (chronological halves would measure the change of regime between two decades); each
        split sends a random half of the blocks to each side. The last
        ``ceil(length / stride) - 1`` windows of every block are left out of both halves, so that
        overlapping windows never sit on both sides. The floor is the mean over the splits and
        its spread their standard deviation: one split depends on where the blocks start.
        """
        windows = as_paths(windows, "reference windows")
        if assignments < 1:
            raise DataError(f"assignments must be >= 1, got {assignments}")
        length = windows.shape[1]
        gap = math.ceil(length / stride) - 1
        block = max(math.ceil(max(FLOOR_BLOCK_WINDOW_LENGTHS * length, FLOOR_BLOCK_MIN_DAYS)
                              / stride), gap + 1)
        index = np.arange(len(windows))
        kept = index % block < block - gap
        parity = (index // block) % 2
        pairs = [(index[kept & (parity == 0)], index[kept & (parity == 1)])]  # even vs odd
        if min(len(half) for half in pairs[0]) < 2:
            raise DataError(f"{len(windows)} real windows of {length} days at stride {stride} "
                            f"are too few for a noise floor of blocks of {block} windows; pass "
                            "the windows' true stride, more history or shorter windows")
        rng = np.random.default_rng(seed)
        for _ in range(8 * assignments):  # random starts and sides; too small halves redrawn
            if len(pairs) == assignments:
                break
            shifted = index + int(rng.integers(block))
            block_id = shifted // block
            blocks = np.unique(block_id)
            side = np.zeros(block_id.max() + 1, dtype=int)
            side[rng.permutation(blocks)[: len(blocks) // 2]] = 1
            kept = shifted % block < block - gap
            first, second = index[kept & (side[block_id] == 0)], index[kept & (side[block_id] == 1)]
            if len(first) >= 2 and len(second) >= 2:
                pairs.append((first, second))
        return cls(windows, pairs[0][0], pairs[0][1], tuple(pairs))

    @classmethod
    def split(cls, first: np.ndarray, second: np.ndarray, stride: int = 1, *,
              resamples: int = FLOOR_RESAMPLES, seed: int = 0) -> Reference:
        """Two real sets from disjoint periods (e.g. validation and test): together they are the
        reference, against each other the floor. That one split's spread comes from
        ``resamples`` moving-block bootstrap replicates of each set (blocks of
        ``max(4 * length, 252)`` days, as in :meth:`blocked`; windows ``stride`` days apart)."""
        first, second = as_paths(first, "first real set"), as_paths(second, "second real set")
        block = math.ceil(max(FLOOR_BLOCK_WINDOW_LENGTHS * first.shape[1], FLOOR_BLOCK_MIN_DAYS)
                          / stride)
        rng = np.random.default_rng(seed)

        def replicate(offset: int, count: int) -> np.ndarray:
            size = min(block, count)
            starts = rng.integers(0, count - size + 1, size=math.ceil(count / size))
            return offset + (starts[:, None] + np.arange(size)).ravel()[:count]

        pairs = tuple((replicate(0, len(first)), replicate(len(first), len(second)))
                      for _ in range(resamples))
        return cls(np.concatenate([first, second]), np.arange(len(first)),
                   np.arange(len(first), len(first) + len(second)), resamples=pairs)

    def floor(self) -> tuple[pd.Series, pd.Series]:
        """The noise floor of every score (mean over the assignments) and its spread (standard
        deviation over them, or over the bootstrap replicates of a single split; NaN if
        neither)."""
        values = self._gaps(self.assignments)
        if len(values) > 1:
            spread = values.std(ddof=1)
        elif len(self.resamples) > 1:
            spread = self._gaps(self.resamples).std(ddof=1)
        else:
            spread = values.iloc[0] * np.nan
        return values.mean(), spread

    def _gaps(self, pairs: tuple) -> pd.DataFrame:
        """Every score between the two halves of each pair, one row per pair."""
        return pd.DataFrame([
            {**fact_gaps(fact_statistics(self.windows[a]), fact_statistics(self.windows[b])),
             **wasserstein_scores(self.windows[a], self.windows[b])}
            for a, b in pairs])


def anchor_samples(real: np.ndarray, n: int = ANCHOR_WINDOWS, seed: int = 0
                   ) -> dict[str, np.ndarray]:
    r"""The two dynamics-free anchors, with the real per-asset mean and std, (n, length, assets).

    ``iid Gaussian``: :math:`r = \mu + \sigma z`; ``iid t x level``: :math:`r = \mu +
    \sigma \lambda_w t_i \sqrt{(\nu - 2) / \nu}` with one level per window,
    :math:`\lambda_w = e^{s g_w - s^2}` (:math:`g_w \sim N(0, 1)`, :math:`s` =
    :data:`ANCHOR_LEVEL_SD`, so :math:`E\lambda^2 = 1`) shared by the assets.
    """
    real = as_paths(real, "real")
    rng = np.random.default_rng(seed)
    shape = (n, *real.shape[1:])
    mean, std = real.mean(axis=(0, 1)), real.std(axis=(0, 1))
    level = np.exp(ANCHOR_LEVEL_SD * rng.standard_normal((n, 1, 1)) - ANCHOR_LEVEL_SD ** 2)
    t = rng.standard_t(ANCHOR_T_DOF, shape) * np.sqrt((ANCHOR_T_DOF - 2) / ANCHOR_T_DOF)
    return {ANCHOR_GAUSSIAN: mean + std * rng.standard_normal(shape),
            ANCHOR_T_LEVEL: mean + std * level * t}


def horizon_returns(x: np.ndarray, horizon_days: int) -> np.ndarray:
    """Non-overlapping ``horizon_days``-day log returns inside each window, (count, assets)."""
    paths = as_paths(x, "returns", allow_non_finite=True)
    n, length, assets = paths.shape
    blocks = length // horizon_days
    return paths[:, :blocks * horizon_days].reshape(n, blocks, horizon_days, assets).sum(axis=2)\
        .reshape(-1, assets)


def wasserstein_scores(synthetic: np.ndarray, real: np.ndarray) -> dict[str, float]:
    """W1 between demeaned h-day return distributions, in units of the real h-day std, and the
    drift gap (difference of mean daily returns, annualized) reported apart; infinite for a set
    with non-finite values."""
    finite = bool(np.isfinite(synthetic).all())
    scores = {}
    for horizon in W1_HORIZONS:
        if horizon > min(synthetic.shape[1], real.shape[1]):
            continue
        if not finite:
            scores[f"w1_{horizon}d"] = math.inf
            continue
        fake, true = horizon_returns(synthetic, horizon), horizon_returns(real, horizon)
        scores[f"w1_{horizon}d"] = float(np.mean([
            stats.wasserstein_distance(fake[:, a] - fake[:, a].mean(), true[:, a] - true[:, a]
                                       .mean()) / true[:, a].std() for a in range(true.shape[1])]))
    scores["drift_gap"] = (float(TRADING_DAYS * np.abs(synthetic.mean(axis=(0, 1))
                                                       - real.mean(axis=(0, 1))).mean())
                           if finite else math.inf)
    return scores


def fact_gaps(synthetic: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray]
              ) -> dict[str, float]:
    """L2 norm of the difference of each statistic.

    Entries undefined for the reference (e.g. a Hill index of a too short tail) are dropped;
    an entry defined for the reference but not for the synthetic set (a correlation of a
    constant, a log of a zero std) makes the gap infinite."""
    gaps = {}
    for key, ref in reference.items():
        defined = np.isfinite(ref)
        diff = synthetic[key][defined] - ref[defined]
        gaps[key] = float(np.sqrt(np.sum(diff ** 2))) if np.isfinite(diff).all() else math.inf
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
    as close as the real set's own sampling error allows; infinite where the synthetic curve is
    undefined."""
    defined = np.isfinite(reference) & np.isfinite(spread) & (spread > 0)
    z = (synthetic[defined] - reference[defined]) / spread[defined]
    return float(np.sqrt(np.mean(z ** 2))) if np.isfinite(z).all() else math.inf


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


def memorization_table(samples: Mapping[str, np.ndarray], train: np.ndarray,
                       held_out: np.ndarray, *, max_windows: int = 2000, seed: int = 0
                       ) -> pd.DataFrame:
    """:func:`memorization` of every sample set, one row each, with a ``flagged`` column.

    Samples and held-out windows are subsampled (seeded) to at most ``max_windows``; a set with
    non-finite values has no row (it is degenerate, not a copier)."""
    rng = np.random.default_rng(seed)

    def subsample(a: np.ndarray) -> np.ndarray:
        keep = min(len(a), max_windows)
        return a[np.sort(rng.choice(len(a), keep, replace=False))]

    train = as_paths(train, "train")
    held_out = subsample(as_paths(held_out, "held_out"))
    rows = {}
    for name, x in samples.items():
        x = subsample(as_paths(x, f"samples {name!r}", allow_non_finite=True))
        if np.isfinite(x).all():
            rows[name] = vars(memorization(x, train, held_out))
    table = pd.DataFrame(rows).T
    if len(table):
        table["flagged"] = [Memorization(**row).flagged for row in rows.values()]
    return table


@dataclass
class ScoreTable:
    """Fidelity scores of several sample sets against one real reference, with its floor."""

    gaps: pd.DataFrame          # rows: sample sets; columns: scores (raw distances)
    floor: pd.Series            # the same scores between the reference's two halves (mean)
    standardized: pd.DataFrame  # curves' RMS gap in units of the real spread (batch means)
    floor_spread: pd.Series | None = None  # sd of the floor over the block assignments
    anchors: pd.DataFrame | None = None    # the anchors' gaps (:func:`anchor_samples`)

    @property
    def ratios(self) -> pd.DataFrame:
        """Gaps in units of the noise floor."""
        return self.gaps / self.floor.replace(0.0, np.nan)

    @property
    def anchor_ratios(self) -> pd.DataFrame:
        """The anchors' gaps in units of the noise floor."""
        return self.anchors / self.floor.replace(0.0, np.nan)

    @property
    def blind(self) -> pd.Series:
        """True for a score that cannot tell an anchor from the real data: some anchor's gap is
        within the floor plus two spreads of it (plus 1x the floor when the spread is unknown)."""
        spread = self.floor_spread.fillna(self.floor) if self.floor_spread is not None \
            else self.floor
        limit = self.floor + 2 * spread
        return (self.anchors.min(axis=0) <= limit).reindex(self.floor.index, fill_value=False)


def undefined_facts(x: np.ndarray) -> bool:
    """True when the facts of ``x`` (n, length, assets) are undefined: non-finite values, or an
    asset whose every value is the same (its std is then zero or rounding noise)."""
    return not np.isfinite(x).all() or bool((np.ptp(x, axis=(0, 1)) == 0).any())


def degenerate(x: np.ndarray, real_std: np.ndarray) -> str | None:
    """Why a sample set (n, length, assets) cannot be scored, or None: non-finite values, an
    asset of zero variance, or a daily std off the real ``real_std`` (per asset) by more than
    :data:`MAX_SCALE_RATIO`."""
    bad = int(np.count_nonzero(~np.isfinite(x)))
    if bad:
        return f"holds {bad} non-finite values (NaN or inf) out of {x.size}"
    if undefined_facts(x):
        return "is constant (zero variance)"
    ratio = x.std(axis=(0, 1)) / real_std
    if (ratio > MAX_SCALE_RATIO).any() or (ratio < 1 / MAX_SCALE_RATIO).any():
        return (f"is mis-scaled: its daily std is {np.round(ratio, 2).tolist()} x the real one "
                "(are the returns unscaled log returns?)")
    return None


def _set_statistics(x: np.ndarray, like: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The facts of a sample set; all NaN (so every gap is infinite) where they are undefined."""
    if undefined_facts(x):
        return {key: np.full_like(value, np.nan) for key, value in like.items()}
    with np.errstate(divide="ignore", invalid="ignore"):
        return fact_statistics(x)


def score_samples(reference: Reference | np.ndarray, samples: Mapping[str, np.ndarray]
                  ) -> ScoreTable:
    """Score every sample set against one real reference (all unscaled log returns).

    Parameters
    ----------
    reference : Reference or array (n, length, assets)
        The real windows and their floor halves; an array is split by
        :meth:`Reference.blocked` (stride 1 assumed).
    samples : mapping name -> array (m, length, assets)
        Synthetic windows of the same length and assets; non-finite values allowed (scored as
        infinite gaps).
    """
    if not isinstance(reference, Reference):
        reference = Reference.blocked(reference)
    real = reference.windows
    anchors = anchor_samples(real)
    statistics_real, spread = fact_statistics(real), curve_spread(real)
    floor, floor_spread = reference.floor()
    curves = [fact.name for fact in catalogue.FACTS if fact.kind == "curve"]
    rows, standardized = {}, {}
    for name, x in anchors.items():
        rows[name] = {**fact_gaps(fact_statistics(x), statistics_real),
                      **wasserstein_scores(x, real)}
    anchor_rows, rows = pd.DataFrame(rows).T, {}
    for name, x in samples.items():
        x = as_paths(x, f"samples {name!r}", allow_non_finite=True)
        if x.shape[1:] != real.shape[1:]:
            raise DataError(f"samples {name!r} have shape {x.shape[1:]} per window but the real "
                            f"windows {real.shape[1:]}; compare windows of the same length")
        statistics = _set_statistics(x, statistics_real)
        rows[name] = {**fact_gaps(statistics, statistics_real), **wasserstein_scores(x, real)}
        standardized[name] = {key: standardized_gap(statistics[key], statistics_real[key],
                                                    spread[key])
                              for key in curves}
    return ScoreTable(gaps=pd.DataFrame(rows).T, floor=floor,
                      standardized=pd.DataFrame(standardized).T, floor_spread=floor_spread,
                      anchors=anchor_rows)
