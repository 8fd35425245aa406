"""Pooled stylized facts of more paths than memory holds, from running sums.

:class:`StreamingFacts` is fed paths (k, length, assets) chunk by chunk and gives the vectors of
:func:`synthfin.stats.fact_statistics` (the window catalogue, pooled over every path): each fact
of :data:`synthfin.stats.FACTS` is finished from the accumulators its reducer registers with one
:class:`~synthfin.stats.reducers.Stream` (power sums, lagged sums through FFTs, log-spaced tail
histograms; each made once, however many facts read it); the cross-asset correlations come from
power sums and cross-products of values shifted by the first chunk's means.
"""

from __future__ import annotations

import numpy as np

from synthfin.errors import DataError
from synthfin.stats import catalogue, facts
from synthfin.stats.reducers import Moments, Stream


class StreamingFacts:
    """Running sums of paths (k, length, assets) of log returns, fed with :meth:`update`;
    :meth:`statistics` gives the vectors of :func:`synthfin.stats.fact_statistics`.

    Memory is that of one chunk plus the accumulators (two histograms of ``14 *
    bins_per_decade`` bins per asset, curves of at most 100 lags), whatever the number of paths.
    """

    def __init__(self, length: int, n_assets: int, *, bins_per_decade: int = 10_000) -> None:
        if length < 2:
            raise DataError(f"stylized facts need paths of at least 2 days; got {length}")
        self.length, self.n_assets, self.count = length, n_assets, 0
        self.stream = Stream(length, bins_per_decade)
        self.finishes = {fact.name: fact.reduce(self.stream) for fact in catalogue.FACTS}
        self.cross = {absolute: Moments() for absolute in (False, True)}
        self.products = {absolute: 0.0 for absolute in (False, True)}  # (A, A) shifted sums

    def update(self, paths: np.ndarray) -> None:
        """Add paths (k, length, assets)."""
        paths = np.asarray(paths, dtype=float)
        if paths.ndim != 3 or paths.shape[1:] != (self.length, self.n_assets):
            raise DataError(f"paths must be (k, {self.length}, {self.n_assets}); got "
                            f"{paths.shape}")
        facts.as_multi_asset(paths)  # finite
        self.stream.update(paths)
        days = paths.reshape(-1, self.n_assets)
        for use_abs, moments in self.cross.items():
            values = np.abs(days) if use_abs else days
            moments.update(values)
            shifted = values - moments.pivot
            self.products[use_abs] = self.products[use_abs] + shifted.T @ shifted
        self.count += len(days)

    def statistics(self) -> dict[str, np.ndarray]:
        """Every window fact, flat over assets (and lags), keyed as in ``fact_statistics``."""
        if not self.count:
            raise DataError("no paths were added")
        statistics = {name: finish().ravel() for name, finish in self.finishes.items()}
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
