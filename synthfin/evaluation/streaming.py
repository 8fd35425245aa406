"""Pooled stylized facts of more paths than memory holds, from running sums.

:class:`StreamingFacts` is fed paths (k, length, assets) chunk by chunk and gives the vectors of
:func:`synthfin.stats.fact_statistics` (the window catalogue, pooled over every path):

- moments (skewness, kurtosis, volatility level, aggregated kurtosis, cross-correlations) from
  power sums of values shifted by the first chunk's means, which keeps the cancellation small;
- lagged correlations (ACF of r, |r|, r^2, leverage) from the pooled estimator expanded into
  running sums: with a = lead, b = lag and ``P_k = n (L - k)`` pairs,
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

import numpy as np

from synthfin.errors import DataError
from synthfin.stats import catalogue, facts


class _Moments:
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


class _LaggedCorrelation:
    """Pooled correlation of ``lead[t]`` with ``lag[t + k]``, k = 1..max_lag, per asset."""

    def __init__(self, length: int, max_lag: int) -> None:
        self.length, self.max_lag, self.paths = length, max_lag, 0
        self.pivots: tuple[np.ndarray, np.ndarray] | None = None
        self.columns = [0.0, 0.0]  # per-day sums (L, A) of the shifted lead and lag
        self.squares = [0.0, 0.0]  # sums of squares (A,)
        self.spectrum = 0.0        # sum over paths of conj(FFT lead) * FFT lag, (L + 1, A)

    def update(self, lead: np.ndarray, lag: np.ndarray) -> None:  # (k, L, A) each
        if self.pivots is None:
            self.pivots = lead.mean(axis=(0, 1)), lag.mean(axis=(0, 1))
        a, b = lead - self.pivots[0], lag - self.pivots[1]
        self.columns = [self.columns[0] + a.sum(axis=0), self.columns[1] + b.sum(axis=0)]
        self.squares = [self.squares[0] + (a ** 2).sum(axis=(0, 1)),
                        self.squares[1] + (b ** 2).sum(axis=(0, 1))]
        n_fft = 2 * self.length
        self.spectrum = self.spectrum + (np.conj(np.fft.rfft(a, n=n_fft, axis=1))
                                         * np.fft.rfft(b, n=n_fft, axis=1)).sum(axis=0)
        self.paths += len(lead)

    def curve(self) -> np.ndarray:
        """(max_lag, assets) correlations."""
        length, lags = self.length, np.arange(1, self.max_lag + 1)
        total = self.paths * length
        products = np.fft.irfft(self.spectrum, n=2 * length, axis=0)[lags]  # S_ab(k), (K, A)
        col_a, col_b = np.asarray(self.columns[0]), np.asarray(self.columns[1])
        mean_a, mean_b = col_a.sum(axis=0) / total, col_b.sum(axis=0) / total
        head_a = np.stack([col_a[:length - k].sum(axis=0) for k in lags])
        tail_b = np.stack([col_b[k:].sum(axis=0) for k in lags])
        pairs = (self.paths * (length - lags))[:, None]
        centred = products - mean_b * head_a - mean_a * tail_b + pairs * mean_a * mean_b
        scale = np.sqrt((self.squares[0] / total - mean_a ** 2)
                        * (self.squares[1] / total - mean_b ** 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            return centred / pairs / scale


class _Tails:
    """Log-spaced histograms of ``|r|`` for losses and gains, per asset, with each bin's sum of
    logs; zeros counted apart. Values below ``10**low`` fall in the first bin, above
    ``10**high`` in the last."""

    def __init__(self, n_assets: int, bins_per_decade: int, low: float = -12.0,
                 high: float = 2.0) -> None:
        self.per_decade, self.low = bins_per_decade, low
        self.n_bins = int(round((high - low) * bins_per_decade))
        self.counts = np.zeros((n_assets, 2, self.n_bins))  # side 0: losses -r, 1: gains r
        self.log_sums = np.zeros((n_assets, 2, self.n_bins))
        self.zeros = np.zeros(n_assets)

    @property
    def log_width(self) -> float:
        return math.log(10.0) / self.per_decade

    def update(self, values: np.ndarray) -> None:  # (m, A)
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

    def hill(self, asset: int, side: int, total: int, k_fraction: float) -> float:
        """:func:`synthfin.stats.facts.hill_tail_index` of one tail (``total``: all values)."""
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


class StreamingFacts:
    """Running sums of paths (k, length, assets) of log returns, fed with :meth:`update`;
    :meth:`statistics` gives the vectors of :func:`synthfin.stats.fact_statistics`.

    Memory is that of one chunk plus the accumulators (two histograms of ``14 *
    bins_per_decade`` bins per asset, curves of at most 100 lags), whatever the number of paths.
    """

    def __init__(self, length: int, n_assets: int, *, bins_per_decade: int = 10_000) -> None:
        if length < 2:
            raise DataError(f"stylized facts need paths of at least 2 days; got {length}")
        self.length, self.n_assets = length, n_assets
        linear, clustering = catalogue.linear_max_lag(length), catalogue.clustering_max_lag(length)
        self.curves = {"acf_r": _LaggedCorrelation(length, linear),
                       "acf_abs": _LaggedCorrelation(length, clustering),
                       "acf_sq": _LaggedCorrelation(length, clustering),
                       "leverage": _LaggedCorrelation(length, linear)}
        self.moments = _Moments()
        self.horizons = [h for h in catalogue.WINDOW_AGGREGATION_DAYS if h <= length]
        self.aggregated = {h: _Moments() for h in self.horizons}
        self.cross = {absolute: _Moments() for absolute in (False, True)}
        self.products = {absolute: 0.0 for absolute in (False, True)}  # (A, A) shifted sums
        self.tails = _Tails(n_assets, bins_per_decade)

    def update(self, paths: np.ndarray) -> None:
        """Add paths (k, length, assets)."""
        paths = np.asarray(paths, dtype=float)
        if paths.ndim != 3 or paths.shape[1:] != (self.length, self.n_assets):
            raise DataError(f"paths must be (k, {self.length}, {self.n_assets}); got "
                            f"{paths.shape}")
        facts.as_multi_asset(paths)  # finite
        absolute, squared = np.abs(paths), paths ** 2
        for name, (lead, lag) in {"acf_r": (paths, paths), "acf_abs": (absolute, absolute),
                                  "acf_sq": (squared, squared),
                                  "leverage": (paths, squared)}.items():
            self.curves[name].update(lead, lag)
        days = paths.reshape(-1, self.n_assets)
        self.moments.update(days)
        for h in self.horizons:
            blocks = self.length // h
            sums = paths[:, :blocks * h].reshape(len(paths), blocks, h, -1).sum(axis=2)
            self.aggregated[h].update(sums.reshape(-1, self.n_assets))
        for use_abs, moments in self.cross.items():
            values = np.abs(days) if use_abs else days
            moments.update(values)
            shifted = values - moments.pivot
            self.products[use_abs] = self.products[use_abs] + shifted.T @ shifted
        self.tails.update(days)

    def statistics(self) -> dict[str, np.ndarray]:
        """Every window fact, flat over assets (and lags), keyed as in ``fact_statistics``."""
        if not self.moments.count:
            raise DataError("no paths were added")
        mean, mu2, _, _ = self.moments.central()
        std = np.sqrt(mu2)
        total = self.moments.count
        per_asset = {name: curve.curve().T for name, curve in self.curves.items()}  # (A, K)
        per_asset["tails"] = np.stack([
            (self.tails.quantiles(a, np.asarray(facts.DEFAULT_TAIL_PROBABILITIES)) - mean[a])
            / std[a] for a in range(self.n_assets)])
        per_asset["hill"] = np.array([[self.tails.hill(a, side, total, catalogue.HILL_K_FRACTION)
                                       for side in (0, 1)] for a in range(self.n_assets)])
        per_asset["skewness"] = self.moments.skewness()[:, None]
        per_asset["kurtosis"] = self.moments.kurtosis()[:, None]
        per_asset["agg_kurtosis"] = np.stack([self.aggregated[h].kurtosis()
                                              for h in self.horizons], axis=1)
        with np.errstate(divide="ignore"):
            per_asset["vol_level"] = np.log(std)[:, None]
        statistics = {fact.name: per_asset[fact.name].ravel() for fact in catalogue.FACTS}
        if self.n_assets > 1:
            upper = np.triu_indices(self.n_assets, k=1)
            statistics["cross_corr"] = np.concatenate(
                [self._correlation(a)[upper] for a in (False, True)])
        return statistics

    def _correlation(self, absolute: bool) -> np.ndarray:
        moments = self.cross[absolute]
        shifted_mean = moments.central()[0] - moments.pivot
        covariance = (self.products[absolute] / moments.count
                      - np.outer(shifted_mean, shifted_mean))
        scale = np.sqrt(np.diag(covariance))
        with np.errstate(invalid="ignore", divide="ignore"):
            return covariance / np.outer(scale, scale)
