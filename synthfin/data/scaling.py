"""Fitted, invertible transforms of log returns; their state is plain numbers (JSON).

``ReturnScaler`` standardizes each asset with the training mean and standard deviation and, when
``gaussianize=True``, then removes heavy tails with the inverse Lambert W x Gaussian transform of
Goerg (2015), as used by Quant GANs (Wiese et al., 2020), before standardizing again.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import optimize, special, stats

from synthfin.errors import DataError

_MAX_DELTA = 2.0  # tail parameter bound: delta = 1 already means a tail index of 1 (no mean)


def lambertw_gaussianize(z: np.ndarray, delta: np.ndarray | float) -> np.ndarray:
    """Heavy-tail Lambert W transform ``u = z exp(-W(delta z^2) / 2)``, the inverse of
    :func:`lambertw_heavify`.

    Notes
    -----
    ``z = u exp(delta u^2 / 2)`` maps a Gaussian ``u`` to a heavy-tailed ``z`` with tail index
    ``1 / delta``. Writing ``w = W(delta z^2)`` (principal branch) and using ``w e^w = delta z^2``
    gives ``u = z e^{-w/2}`` and ``du/dz = e^{-w/2} / (1 + w)``.
    """
    w = special.lambertw(np.asarray(delta) * np.square(z)).real
    return z * np.exp(-0.5 * w)


def lambertw_heavify(u: np.ndarray, delta: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`lambertw_gaussianize`: ``z = u exp(delta u^2 / 2)``."""
    return u * np.exp(0.5 * np.asarray(delta) * np.square(u))


def fit_lambertw_delta(z: np.ndarray) -> float:
    """Tail parameter ``delta >= 0`` for which the gaussianized sample has kurtosis 3.

    A moment-matching fit of the Lambert W x Gaussian tail parameter (the ``delta`` step of Goerg's
    IGMM): the kurtosis of ``lambertw_gaussianize(z, delta)`` falls monotonically in ``delta``, so
    the root is bracketed in ``[0, 2]``; a sample already as light-tailed as a Gaussian gets 0.
    """
    def excess_kurtosis(delta: float) -> float:
        return float(stats.kurtosis(lambertw_gaussianize(z, delta)))

    if excess_kurtosis(0.0) <= 0.0:
        return 0.0
    if excess_kurtosis(_MAX_DELTA) > 0.0:
        return _MAX_DELTA
    return float(optimize.brentq(excess_kurtosis, 0.0, _MAX_DELTA, xtol=1e-10))


class ReturnScaler:
    """Per-asset standardization with optional Lambert W gaussianization, fitted on training data.

    The forward map for asset ``a`` is ``z = (x - mean_a) / std_a``; with ``gaussianize`` it
    continues ``u = W_delta_a(z)`` and ``y = (u - u_mean_a) / u_std_a``. Every step is a monotone
    bijection, so :meth:`inverse` is exact to rounding (about 1e-15 relative).

    Parameters
    ----------
    gaussianize : bool
        Remove heavy tails with the Lambert W transform after standardizing.
    """

    def __init__(self, gaussianize: bool = False) -> None:
        self.gaussianize = gaussianize

    def fit(self, returns: np.ndarray) -> ReturnScaler:
        """Fit on training returns of shape (time, assets)."""
        returns = np.asarray(returns, dtype=np.float64)
        if returns.ndim != 2 or returns.shape[0] < 3:
            raise DataError("scaler needs returns of shape (time >= 3, assets), "
                            f"got {returns.shape}")
        if not np.isfinite(returns).all():
            raise DataError("scaler cannot be fitted on non-finite returns")
        self.mean_ = returns.mean(axis=0)
        self.std_ = returns.std(axis=0)
        if (self.std_ <= 0).any():
            flat = np.flatnonzero(self.std_ <= 0).tolist()
            raise DataError(f"returns of asset column(s) {flat} are constant; cannot standardize")
        z = (returns - self.mean_) / self.std_
        n_assets = returns.shape[1]
        self.delta_ = np.zeros(n_assets)
        self.u_mean_, self.u_std_ = np.zeros(n_assets), np.ones(n_assets)
        if self.gaussianize:
            self.delta_ = np.array([fit_lambertw_delta(z[:, a]) for a in range(n_assets)])
            u = lambertw_gaussianize(z, self.delta_)
            self.u_mean_, self.u_std_ = u.mean(axis=0), u.std(axis=0)
        return self

    def transform(self, returns: np.ndarray) -> np.ndarray:
        """Scaled returns, same shape as ``returns`` (..., assets)."""
        z = (np.asarray(returns, dtype=np.float64) - self._fitted().mean_) / self.std_
        if not self.gaussianize:
            return z
        return (lambertw_gaussianize(z, self.delta_) - self.u_mean_) / self.u_std_

    def inverse(self, scaled: np.ndarray) -> np.ndarray:
        """Unscaled log returns from scaled values of shape (..., assets)."""
        z = np.asarray(scaled, dtype=np.float64)
        if self._fitted().gaussianize:
            z = lambertw_heavify(z * self.u_std_ + self.u_mean_, self.delta_)
        return z * self.std_ + self.mean_

    def log_abs_det_jacobian(self, returns: np.ndarray) -> np.ndarray:
        """``log |dy/dx|`` per element of the forward map, for densities on the return scale.

        A density ``p_Y`` of scaled values gives ``log p_X(x) = log p_Y(y) + log|dy/dx|``.
        """
        x = np.asarray(returns, dtype=np.float64)
        log_jac = np.broadcast_to(-np.log(self._fitted().std_), x.shape)
        if not self.gaussianize:
            return np.array(log_jac)
        w = special.lambertw(self.delta_ * np.square((x - self.mean_) / self.std_)).real
        return log_jac - 0.5 * w - np.log1p(w) - np.log(self.u_std_)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable state."""
        self._fitted()
        return {
            "gaussianize": self.gaussianize,
            "mean": self.mean_.tolist(), "std": self.std_.tolist(), "delta": self.delta_.tolist(),
            "u_mean": self.u_mean_.tolist(), "u_std": self.u_std_.tolist(),
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> ReturnScaler:
        """Rebuild a fitted scaler from :meth:`to_dict` output."""
        scaler = cls(gaussianize=bool(state["gaussianize"]))
        for key in ("mean", "std", "delta", "u_mean", "u_std"):
            setattr(scaler, f"{key}_", np.asarray(state[key], dtype=np.float64))
        return scaler

    def _fitted(self) -> ReturnScaler:
        if not hasattr(self, "mean_"):
            raise DataError("the scaler is not fitted; call fit(train_returns) first")
        return self
