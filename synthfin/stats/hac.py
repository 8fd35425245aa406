"""Standard errors of means of dependent series (Newey-West), and the Diebold-Mariano test.

Daily score differences between two forecasters are autocorrelated (volatility clusters), so the
iid standard error ``sd / sqrt(T)`` understates the uncertainty of their mean; every forecast
comparison in synthfin uses :func:`diebold_mariano` instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats


def newey_west_lags(count: int) -> int:
    """The usual automatic bandwidth ``floor(4 (T / 100) ** (2 / 9))``."""
    return int(math.floor(4 * (count / 100) ** (2 / 9)))


def newey_west_se(values: np.ndarray, lags: int | None = None) -> float:
    r"""Newey-West (Bartlett kernel) standard error of the mean of ``values`` (T,).

    .. math:: \widehat{\mathrm{Var}}(\bar x) = \frac{1}{T}\Big(\hat\gamma_0 + 2\sum_{j=1}^{L}
        \big(1 - \tfrac{j}{L + 1}\big)\hat\gamma_j\Big),\quad
        \hat\gamma_j = \frac{1}{T}\sum_{t=j+1}^{T}(x_t - \bar x)(x_{t-j} - \bar x),

    with ``L`` = :func:`newey_west_lags` unless given (``lags=0``: the iid error with divisor T).
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or len(x) < 2 or not np.isfinite(x).all():
        raise ValueError(f"values must be a finite 1-D array of >= 2 entries, got {x.shape}")
    lags = newey_west_lags(len(x)) if lags is None else int(lags)
    if not 0 <= lags < len(x):
        raise ValueError(f"lags must be in [0, {len(x)}), got {lags}")
    z = x - x.mean()
    variance = z @ z / len(x)
    for j in range(1, lags + 1):
        variance += 2 * (1 - j / (lags + 1)) * (z[j:] @ z[:-j]) / len(x)
    return float(math.sqrt(max(variance, 0.0) / len(x)))


@dataclass(frozen=True)
class DieboldMariano:
    """Mean score difference, its HAC standard error, t statistic and two-sided p-value."""

    mean: float
    se: float
    t: float
    p_value: float


def diebold_mariano(differences: np.ndarray, lags: int | None = None) -> DieboldMariano:
    """Diebold-Mariano (Amisano-Giacomini for log scores) test that the mean of the daily score
    differences ``d_t`` is zero: ``t = mean(d) / newey_west_se(d)``, asymptotically N(0, 1)."""
    d = np.asarray(differences, dtype=np.float64)
    se = newey_west_se(d, lags)
    t = float(d.mean() / se) if se > 0 else math.nan
    return DieboldMariano(float(d.mean()), se, t, float(2 * stats.norm.sf(abs(t))))
