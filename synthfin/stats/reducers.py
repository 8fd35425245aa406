"""Streaming forms of the window facts: reducers fed paths (k, length, assets) chunk by chunk.

Each entry of :data:`synthfin.stats.FACTS` names its reducer, which asks a :class:`Stream` for the
accumulators it reads (each made once, however many facts share it) and finishes the fact pooled
over every path fed, per asset, as the in-memory function would:

- moments (skewness, kurtosis, volatility level, aggregated kurtosis) from power sums of values
  shifted by the first chunk's means, which keeps the cancellation small;
- lagged correlations (the streaming form of :func:`synthfin.stats.facts._lagged_correlation`)
  from running sums: with a = lead, b = lag and ``P_k = n (L - k)`` pairs,
  ``sum (a_t - m_a)(b_{t+k} - m_b) = S_ab(k) - m_b A_head(k) - m_a B_tail(k) + P_k m_a m_b``,
  where ``S_ab(k) = sum_i sum_t a_{i,t} b_{i,t+k}`` is summed in the frequency domain
  (``conj(FFT a) FFT b``, zero-padded to 2L, summed over paths) and the head and tail sums come
  from per-day column sums; products never cross two paths, as in the in-memory estimator;
- tail quantiles and Hill indices from log-spaced histograms of the losses and gains
  (``bins_per_decade`` bins, each also holding the sum of its values' logs): a quantile is
  within one bin of the exact one (relative error ``10**(1/bins_per_decade) - 1``), a Hill
  index's mean log within one bin's log-width.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from typing import Protocol, TypeVar

import numpy as np

A = TypeVar("A", bound="Accumulator")


class Accumulator(Protocol):
    """Running sums of a stream of paths (k, length, assets)."""

    def update(self, paths: np.ndarray) -> None: ...


Finish = Callable[[], np.ndarray]
"""A fact's finish: the fact pooled over every path fed so far, (assets, values)."""


class Stream:
    """The accumulators of one stream of paths of ``length`` days, each made once however many
    facts read it (e.g. the daily moments: skewness, kurtosis, tails, volatility level) and fed
    once per chunk by :meth:`update`."""

    def __init__(self, length: int, bins_per_decade: int = 10_000) -> None:
        self.length, self.bins_per_decade = length, bins_per_decade
        self.accumulators: dict[Hashable, Accumulator] = {}

    def accumulator(self, key: Hashable, make: Callable[[], A]) -> A:
        """The accumulator under ``key``, made by ``make()`` on first request."""
        if key not in self.accumulators:
            self.accumulators[key] = make()
        return self.accumulators[key]

    def update(self, paths: np.ndarray) -> None:
        """Feed paths (k, length, assets) to every accumulator."""
        for accumulator in self.accumulators.values():
            accumulator.update(paths)


Reducer = Callable[[Stream, "int | None"], Finish]
"""A fact's streaming form: ``reducer(stream, max_lag)`` asks ``stream`` for the accumulators
it reads and returns its finish."""


class Moments:
    """Count and power sums 1..4 per column of values shifted by a pivot."""

    def __init__(self) -> None:
        self.pivot: np.ndarray | None = None
        self.count, self.sums = 0, 0.0

    def update(self, values: np.ndarray) -> None:  # (m, columns)
        if self.pivot is None:
            self.pivot = values.mean(axis=0)
        shifted = values - self.pivot
        self.sums = self.sums + np.stack([(shifted ** j).sum(axis=0) for j in range(1, 5)])
        self.count += len(values)

    def central(self) -> tuple[np.ndarray, ...]:
        """Mean and central moments 2, 3, 4 (biased, as scipy's)."""
        s1, s2, s3, s4 = np.asarray(self.sums) / self.count
        m = s1
        mu2 = s2 - m ** 2
        mu3 = s3 - 3 * m * s2 + 2 * m ** 3
        mu4 = s4 - 4 * m * s3 + 6 * m ** 2 * s2 - 3 * m ** 4
        return self.pivot + m, mu2, mu3, mu4

    def kurtosis(self) -> np.ndarray:
        _, mu2, _, mu4 = self.central()
        with np.errstate(invalid="ignore", divide="ignore"):
            return mu4 / mu2 ** 2 - 3.0

    def skewness(self) -> np.ndarray:
        _, mu2, mu3, _ = self.central()
        with np.errstate(invalid="ignore", divide="ignore"):
            return mu3 / mu2 ** 1.5

    def log_std(self) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(np.sqrt(self.central()[1]))


def _days(paths: np.ndarray) -> np.ndarray:
    return paths.reshape(-1, paths.shape[2])  # (k * length, assets)


class DailyMoments(Moments):
    """:class:`Moments` of the pooled daily returns of paths (k, length, assets)."""

    def update(self, paths: np.ndarray) -> None:
        super().update(_days(paths))


class AggregatedKurtosis:
    """Excess kurtosis of non-overlapping ``h``-day sums inside each path, per horizon."""

    def __init__(self, horizons: Sequence[int]) -> None:
        self.moments = {h: Moments() for h in horizons}

    def update(self, paths: np.ndarray) -> None:
        n, length, assets = paths.shape
        for h, moments in self.moments.items():
            blocks = length // h
            sums = paths[:, :blocks * h].reshape(n, blocks, h, -1).sum(axis=2)
            moments.update(sums.reshape(-1, assets))

    def finish(self) -> np.ndarray:
        """(assets, horizons) excess kurtosis."""
        return np.stack([moments.kurtosis() for moments in self.moments.values()], axis=1)


class LaggedCorrelation:
    """Pooled correlation of ``lead(r)[t]`` with ``lag(r)[t + k]``, k = 1..max_lag, per asset.

    A path whose transforms are not all finite (:func:`synthfin.stats.facts.relative_abs` of a
    path of zeros) is left out of its asset's sums, as the in-memory fact leaves out the window.
    """

    def __init__(self, length: int, max_lag: int, lead: Callable[[np.ndarray], np.ndarray],
                 lag: Callable[[np.ndarray], np.ndarray]) -> None:
        self.length, self.max_lag = length, max_lag
        self.paths: np.ndarray | int = 0  # per asset: the paths whose transforms are finite
        self.transforms = lead, lag
        self.pivots: tuple[np.ndarray, np.ndarray] | None = None
        self.columns = [0.0, 0.0]  # per-day sums (L, A) of the shifted lead and lag
        self.squares = [0.0, 0.0]  # sums of squares (A,)
        self.spectrum = 0.0        # sum over paths of conj(FFT lead) * FFT lag, (L + 1, A)

    def update(self, paths: np.ndarray) -> None:  # (k, L, A)
        lead = self.transforms[0](paths)
        lag = lead if self.transforms[1] is self.transforms[0] else self.transforms[1](paths)
        kept = (np.isfinite(lead).all(axis=1) & np.isfinite(lag).all(axis=1))[:, None, :]
        if self.pivots is None:  # any finite shift; the first chunk's means keep sums small
            count = np.maximum(kept.sum(axis=(0, 1)), 1)
            self.pivots = (np.where(kept, lead, 0.0).sum(axis=(0, 1)) / count,
                           np.where(kept, lag, 0.0).sum(axis=(0, 1)) / count)
        a = np.where(kept, lead - self.pivots[0], 0.0)
        b = np.where(kept, lag - self.pivots[1], 0.0)
        self.columns = [self.columns[0] + a.sum(axis=0), self.columns[1] + b.sum(axis=0)]
        self.squares = [self.squares[0] + (a ** 2).sum(axis=(0, 1)),
                        self.squares[1] + (b ** 2).sum(axis=(0, 1))]
        n_fft = 2 * self.length
        self.spectrum = self.spectrum + (np.conj(np.fft.rfft(a, n=n_fft, axis=1))
                                         * np.fft.rfft(b, n=n_fft, axis=1)).sum(axis=0)
        self.paths = self.paths + kept.sum(axis=(0, 1))

    def finish(self) -> np.ndarray:
        """(assets, max_lag) correlations."""
        length, lags = self.length, np.arange(1, self.max_lag + 1)
        total = self.paths * length
        products = np.fft.irfft(self.spectrum, n=2 * length, axis=0)[lags]  # S_ab(k), (K, A)
        col_a, col_b = np.asarray(self.columns[0]), np.asarray(self.columns[1])
        head_a = np.stack([col_a[:length - k].sum(axis=0) for k in lags])
        tail_b = np.stack([col_b[k:].sum(axis=0) for k in lags])
        pairs = np.outer(length - lags, self.paths)  # (K, A)
        with np.errstate(invalid="ignore", divide="ignore"):  # an asset with no path kept: NaN
            mean_a, mean_b = col_a.sum(axis=0) / total, col_b.sum(axis=0) / total
            centred = products - mean_b * head_a - mean_a * tail_b + pairs * mean_a * mean_b
            scale = np.sqrt((self.squares[0] / total - mean_a ** 2)
                            * (self.squares[1] / total - mean_b ** 2))
            return (centred / pairs / scale).T


class LogHistogram:
    """Log-spaced histograms of ``|r|`` for losses and gains, per asset, with each bin's sum of
    logs; zeros counted apart. Values below ``10**low`` fall in the first bin, above
    ``10**high`` in the last."""

    def __init__(self, bins_per_decade: int, low: float = -12.0, high: float = 2.0) -> None:
        self.per_decade, self.low = bins_per_decade, low
        self.n_bins = int(round((high - low) * bins_per_decade))
        self.counts = self.log_sums = self.zeros = None  # (A, 2, bins) x 2 and (A,) once fed

    def update(self, paths: np.ndarray) -> None:  # (k, L, A)
        values = _days(paths)
        if self.counts is None:
            self.counts = np.zeros((values.shape[1], 2, self.n_bins))  # side 0: losses -r
            self.log_sums = np.zeros((values.shape[1], 2, self.n_bins))  # side 1: gains r
            self.zeros = np.zeros(values.shape[1])
        for asset in range(values.shape[1]):
            column = values[:, asset]
            self.zeros[asset] += np.count_nonzero(column == 0)
            for side, tail in enumerate((-column[column < 0], column[column > 0])):
                logs = np.log(tail)
                index = np.clip(((logs / math.log(10.0) - self.low) * self.per_decade)
                                .astype(np.int64), 0, self.n_bins - 1)
                self.counts[asset, side] += np.bincount(index, minlength=self.n_bins)
                self.log_sums[asset, side] += np.bincount(index, logs, minlength=self.n_bins)

    def _log_edge(self, index: np.ndarray) -> np.ndarray:
        return (self.low + index / self.per_decade) * math.log(10.0)

    def quantiles(self, asset: int, qs: np.ndarray) -> np.ndarray:
        """``np.quantile`` (linear) of the asset's values, each order statistic placed evenly
        in log inside its bin."""
        losses, gains = self.counts[asset]
        counts = np.concatenate([losses[::-1], [self.zeros[asset]], gains])  # ascending values
        ends = np.cumsum(counts)
        total = ends[-1]

        def order_statistic(j: np.ndarray) -> np.ndarray:  # 0-based, ascending
            slot = np.searchsorted(ends, j, side="right")
            within = (j - (ends[slot] - counts[slot]) + 0.5) / counts[slot]
            gain = slot - len(losses) - 1  # bin of a gain, or negative
            loss = len(losses) - 1 - slot  # bin of a loss, or negative
            up = np.exp(self._log_edge(gain + within))
            down = -np.exp(self._log_edge(loss + 1 - within))
            return np.where(gain >= 0, up, np.where(loss >= 0, down, 0.0))

        position = (total - 1) * np.asarray(qs, dtype=float)
        below = np.floor(position)
        fraction = position - below
        low = order_statistic(below)
        high = order_statistic(np.minimum(below + 1, total - 1))
        return low + fraction * (high - low)

    def hill(self, asset: int, side: int, k_fraction: float) -> float:
        """:func:`synthfin.stats.facts.hill_tail_index` of one tail of the asset's values."""
        total = self.counts[asset].sum() + self.zeros[asset]
        k = int(np.floor(k_fraction * total))
        counts = self.counts[asset, side][::-1]  # largest values first
        log_sums = self.log_sums[asset, side][::-1]
        if k < 1 or k + 1 > counts.sum():
            return float("nan")
        ends = np.cumsum(counts)
        slot = int(np.searchsorted(ends, k, side="left"))  # bin of the k-th largest
        before = ends[slot] - counts[slot]
        top = log_sums[:slot].sum() + (k - before) * log_sums[slot] / counts[slot]
        nxt = int(np.searchsorted(ends, k + 1, side="left"))  # bin of the (k+1)-th largest
        rank_in_bin = k + 1 - (ends[nxt] - counts[nxt])  # 1 = the bin's largest
        bin_index = self.n_bins - 1 - nxt
        log_next = self._log_edge(bin_index + 1 - (rank_in_bin - 0.5) / counts[nxt])
        return float(1.0 / (top / k - log_next))


def daily(statistic: Callable[[Moments], np.ndarray]) -> Reducer:
    """A statistic of the moments of the pooled daily returns, e.g. ``Moments.kurtosis``."""

    def reducer(stream: Stream, max_lag: int | None) -> Finish:
        moments = stream.accumulator("daily moments", DailyMoments)
        return lambda: statistic(moments)[:, None]

    return reducer


def aggregated_kurtosis(horizons: Callable[[int], Sequence[int]]) -> Reducer:
    """Excess kurtosis of h-day sums for each of ``horizons(length)``."""

    def reducer(stream: Stream, max_lag: int | None) -> Finish:
        chosen = tuple(horizons(stream.length))
        return stream.accumulator(("aggregated", chosen),
                                  lambda: AggregatedKurtosis(chosen)).finish

    return reducer


def returns(r: np.ndarray) -> np.ndarray:
    """The returns themselves, as a lead or lag of :func:`lagged`."""
    return r


def lagged(lead: Callable[[np.ndarray], np.ndarray], lag: Callable[[np.ndarray], np.ndarray]
           ) -> Reducer:
    """The correlation of ``lead(r)`` with future ``lag(r)`` at lags 1..max_lag."""

    def reducer(stream: Stream, max_lag: int | None) -> Finish:
        return stream.accumulator(("lagged", lead, lag, max_lag), lambda: LaggedCorrelation(
            stream.length, max_lag, lead, lag)).finish

    return reducer


def _histogram(stream: Stream) -> LogHistogram:
    return stream.accumulator("histogram", lambda: LogHistogram(stream.bins_per_decade))


def tail_quantiles(probabilities: Sequence[float]) -> Reducer:
    """Quantiles of the pooled daily returns in units of their std (after the mean)."""
    qs = np.asarray(probabilities, dtype=float)

    def reducer(stream: Stream, max_lag: int | None) -> Finish:
        histogram = _histogram(stream)
        moments = stream.accumulator("daily moments", DailyMoments)

        def finish() -> np.ndarray:
            mean, mu2, _, _ = moments.central()
            std = np.sqrt(mu2)
            return np.stack([(histogram.quantiles(a, qs) - mean[a]) / std[a]
                             for a in range(len(mean))])

        return finish

    return reducer


def hill_indices(k_fraction: float) -> Reducer:
    """Hill tail indices of the losses and of the gains from the ``k_fraction`` largest."""

    def reducer(stream: Stream, max_lag: int | None) -> Finish:
        histogram = _histogram(stream)
        return lambda: np.array([[histogram.hill(a, side, k_fraction) for side in (0, 1)]
                                 for a in range(len(histogram.zeros))])

    return reducer
