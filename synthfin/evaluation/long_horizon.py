"""Facts of long paths (1,000 days or more) against the real series cut into segments.

A window evaluator cannot see what a 10-year path does: whether volatility clustering keeps the
real long-memory decay (the ACF of |r| at lags up to a year, and its power-law exponent), how
much the volatility level moves, how deep and long drawdowns get, how returns aggregate, and
whether the volatility level drifts along the path. :func:`long_horizon` computes the facts of
:data:`synthfin.stats.LONG_FACTS` for every long sample set, for the real series' own segments
of the same length (one a year, overlapping) and for the whole real series, and places each set
inside or outside the band spanned by the single real segments.

A band of min-max over overlapping segments is wide: iid noise with a level per path lands in it
on many facts, and a persistent short-memory GJR-GARCH matches both the power-law exponent and
the GPH :math:`d` of real 10-year segments. So every table carries the two anchors
(:func:`synthfin.evaluation.scores.anchor_samples`, one level per path) and judges the exponent
and :math:`d` by their distance to the pooled real segments in units of the single segments'
spread (``beta z``, ``memory_d z``), not by a fixed tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from synthfin.errors import DataError
from synthfin.evaluation.scores import anchor_samples
from synthfin.stats import LONG_FACTS, fact_statistics
from synthfin.stats.catalogue import long_max_lag

LONG_MIN_DAYS = 1000
ANCHOR_PATHS = 100  # long paths per anchor
SEGMENT_STRIDE_DAYS = 252
CHECK_LAGS = (1, 5, 10, 20, 50, 100, 250)


def real_segments(history: np.ndarray, length: int, stride: int = SEGMENT_STRIDE_DAYS
                  ) -> np.ndarray:
    """The real series (days, assets) cut into segments of ``length`` days starting every
    ``stride`` days: (count, length, assets)."""
    history = np.asarray(history, dtype=float)
    if history.ndim == 1:
        history = history[:, None]
    days = len(history)
    if days < length + stride:
        raise DataError(f"the real series has {days} days: too few for a band of segments of "
                        f"{length} days (need at least {length + stride}); sample shorter paths")
    starts = np.arange(0, days - length + 1, stride)
    return np.stack([history[s:s + length] for s in starts])


@dataclass
class LongHorizon:
    """Long-horizon facts of real segments, the real series and every long sample set.

    Attributes
    ----------
    length : int
        Days per path (and per real segment).
    values : dict name -> dict fact -> array
        The facts (:func:`synthfin.stats.fact_statistics` with :data:`LONG_FACTS`) of
        ``real series`` (the whole history as one path), ``real segments`` (all segments
        pooled) and each sample set.
    band_low, band_high : dict fact -> array
        Minimum and maximum of each fact over the single real segments.
    n_segments : int
    band_sd : dict fact -> array
        Standard deviation of each fact over the single real segments (the tolerance of the
        ``z`` columns).
    """

    length: int
    values: dict[str, dict[str, np.ndarray]]
    band_low: dict[str, np.ndarray]
    band_high: dict[str, np.ndarray]
    n_segments: int
    band_sd: dict[str, np.ndarray] | None = None

    def _z(self, name: str, fact: str) -> float:
        """Mean gap of a fact to the pooled real segments in units of the single segments'
        standard deviation (NaN without it)."""
        if self.band_sd is None:
            return float("nan")
        gap = self.values[name][fact] - self.values["real segments"][fact]
        return float(np.mean(np.abs(gap) / self.band_sd[fact]))

    @property
    def check_lags(self) -> list[int]:
        """The lags of the ACF of |r| checked against the band."""
        return [lag for lag in CHECK_LAGS if lag <= long_max_lag(self.length)]

    def _inside(self, name: str, fact: str, entries: np.ndarray | None = None) -> float:
        """Share of the fact's entries (or of ``entries``) inside the real band."""
        value, low, high = (self.values[name][fact], self.band_low[fact], self.band_high[fact])
        inside = (value >= low) & (value <= high)
        return float(np.mean(inside if entries is None else inside[entries]))

    def _acf_entries(self) -> np.ndarray:
        """Positions of the checked lags in the concatenated per-asset ACF vector."""
        max_lag = long_max_lag(self.length)
        n_assets = len(self.values["real segments"]["acf_abs"]) // max_lag
        return np.concatenate([asset * max_lag + np.asarray(self.check_lags) - 1
                               for asset in range(n_assets)])

    def summary(self) -> pd.DataFrame:
        """One row per set (the real series and segments first): the headline values and the
        share of each fact's entries inside the band of the real segments (1 = all inside)."""
        series_beta = self.values["real series"]["power_law_beta"]
        rows = {}
        for name, value in self.values.items():
            rows[name] = {
                "acf_abs in band": self._inside(name, "acf_abs", self._acf_entries()),
                "power_law_beta": float(np.mean(value["power_law_beta"])),
                "beta gap": float(np.mean(np.abs(value["power_law_beta"] - series_beta))),
                "beta z": self._z(name, "power_law_beta"),
                "memory_d": float(np.mean(value["memory_d"])),
                "memory_d z": self._z(name, "memory_d"),
                "vol_of_vol": float(np.mean(value["vol_of_vol"])),
                "vol_of_vol in band": self._inside(name, "vol_of_vol"),
                "max_drawdown p50": float(np.mean(value["max_drawdown"][1::3])),
                "max_drawdown in band": self._inside(name, "max_drawdown"),
                "drawdown_days p50": float(np.mean(value["drawdown_days"][1::3])),
                "drawdown_days in band": self._inside(name, "drawdown_days"),
                "agg_kurtosis in band": self._inside(name, "agg_kurtosis"),
                "vol_drift": float(np.mean(value["vol_drift"])),
            }
        return pd.DataFrame(rows).T

    def to_dict(self) -> dict:
        """JSON-ready: length, segments, checked lags, every value, the band and the summary."""
        return {"length": self.length, "n_segments": self.n_segments,
                "segment_stride_days": SEGMENT_STRIDE_DAYS, "check_lags": self.check_lags,
                "values": {name: {fact: v.tolist() for fact, v in facts.items()}
                           for name, facts in self.values.items()},
                "band_low": {fact: v.tolist() for fact, v in self.band_low.items()},
                "band_high": {fact: v.tolist() for fact, v in self.band_high.items()},
                "band_sd": None if self.band_sd is None else
                {fact: v.tolist() for fact, v in self.band_sd.items()},
                "summary": self.summary().to_dict(orient="index")}


def long_horizon(history: np.ndarray, samples: dict[str, np.ndarray], *, anchors: bool = True,
                 seed: int = 0) -> LongHorizon:
    """Long-horizon facts of sample paths of one length against the real series, with the two
    anchors of iid noise (``anchors``; one level per path) as rows of their own.

    Parameters
    ----------
    history : array (days, assets)
        The whole real series of unscaled log returns.
    samples : mapping name -> array (n, length, assets)
        Paths of ``length >= 1000`` days, finite, all of the same length.
    """
    lengths = {x.shape[1] for x in samples.values()}
    if len(lengths) != 1:
        raise DataError(f"long-horizon samples must share one length; got {sorted(lengths)}")
    length = lengths.pop()
    if length < LONG_MIN_DAYS:
        raise DataError(f"long-horizon facts need paths of at least {LONG_MIN_DAYS} days; "
                        f"got {length}")
    history = np.asarray(history, dtype=float).reshape(len(history), -1)
    segments = real_segments(history, length)
    single = [fact_statistics(segment[None], LONG_FACTS) for segment in segments]
    values = {"real series": fact_statistics(history[None], LONG_FACTS),
              "real segments": fact_statistics(segments, LONG_FACTS)}
    if anchors:
        samples = {**samples, **anchor_samples(segments, ANCHOR_PATHS, seed)}
    for name, x in samples.items():
        values[name] = fact_statistics(x, LONG_FACTS)
    keys = single[0].keys()
    return LongHorizon(length=length, values=values, n_segments=len(segments),
                       band_low={k: np.nanmin([s[k] for s in single], axis=0) for k in keys},
                       band_high={k: np.nanmax([s[k] for s in single], axis=0) for k in keys},
                       band_sd={k: np.nanstd([s[k] for s in single], axis=0, ddof=1)
                                for k in keys})
