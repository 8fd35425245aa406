"""The volatility component in NumPy: exponentially weighted mean squares of returns,
:math:`v_t = (1 - \\alpha) v_{t-1} + \\alpha x_t^2`, one state per weight (the torch twin is in
:mod:`synthfin.models.components`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.signal import lfilter


def span_weights(spans: Sequence[int]) -> tuple[float, ...]:
    """Weights ``alpha = 2 / (span + 1)`` of exponentially weighted means over ``spans`` days."""
    return tuple(2.0 / (span + 1) for span in spans)


def ewma_mean_squares(x: np.ndarray, alphas: Sequence[float], v0: np.ndarray | float
                         ) -> np.ndarray:
    r"""Exponentially weighted mean squares in float64 (the torch twin is
    :func:`synthfin.models.components.ewma_mean_squares`), for histories (..., T, A):
    (..., T + 1, A, S), entry 0 ``v0`` (broadcast to (..., A, S)), then
    :math:`v_t = (1 - \alpha) v_{t-1} + \alpha x_t^2` after each day, by a linear filter."""
    squares = np.square(np.asarray(x, dtype=np.float64))
    out = np.empty((*squares.shape[:-2], squares.shape[-2] + 1, squares.shape[-1], len(alphas)))
    out[..., 0, :, :] = v0
    for k, alpha in enumerate(alphas):
        out[..., 1:, :, k], _ = lfilter([alpha], [1.0, alpha - 1.0], squares, axis=-2,
                                        zi=(1.0 - alpha) * out[..., :1, :, k])
    return out
