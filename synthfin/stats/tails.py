"""Historical Value at Risk and Expected Shortfall of returns (NumPy only)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

RISK_LEVEL = 0.99  # the level of the VaR / ES facts (evaluator and portfolio facts)


def var_es(returns: ArrayLike, levels: Sequence[float]
           ) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """VaR and ES of each row of returns (rows, n) as positive losses: ``level -> (var, es)``.

    With ``L = -r``: ``VaR = Q_L(level)`` (linear interpolation) and ``ES = mean{L : L >= VaR}``,
    each an array (rows,); the tail always holds the row's largest loss, so ``ES >= VaR``.
    """
    losses = -np.asarray(returns, dtype=np.float64)  # (rows, n)
    result = {}
    for level in levels:
        var = np.quantile(losses, level, axis=1)  # (rows,)
        in_tail = losses >= var[:, None]
        result[level] = (var, (losses * in_tail).sum(axis=1) / in_tail.sum(axis=1))
    return result


def value_at_risk(returns: np.ndarray, level: float = RISK_LEVEL) -> tuple[float, float]:
    """Historical VaR and ES (:func:`var_es`) of all of ``returns`` as one
    sample of daily log returns, as positive losses."""
    (var, es), = var_es(np.asarray(returns, dtype=np.float64).reshape(1, -1), [level]).values()
    return float(var[0]), float(es[0])
