"""Parts the neural models share: the condition they read, their training tensors, the volatility
component (exponentially weighted mean squares), skewed Student-t (mixture) densities, innovations
conditioned on given assets, and window chaining for paths longer than a window."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from synthfin.errors import ModelError
from synthfin.models.base import ContextSampler, DataSpec

WindowSampler = Callable[[np.ndarray, np.ndarray, Any], tuple[np.ndarray, Any]]
"""``(regimes, realized_vol, carry) -> (windows, carry)``: one window per condition, continued
from ``carry`` (the previous window's end state, or None)."""


class ConditionEmbedding(nn.Module):
    """``c = [embedding(regime), standardized log realized vol]``, shape (B, width + 1).

    The standardized log vol comes from :meth:`WindowConditions.standardize`.
    """

    def __init__(self, n_regimes: int, width: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(n_regimes, width)
        self.size = width + 1

    def forward(self, regime: torch.Tensor, log_vol: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.embed(regime), log_vol[:, None]], dim=-1)  # (B, C)


def window_tensors(windows: np.ndarray, regimes: np.ndarray, log_vol: np.ndarray,
                   device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Windows (n, T, A) and standardized log vols (n,) as float32, regime codes (n,) as long,
    on ``device``."""
    return (torch.as_tensor(windows, dtype=torch.float32, device=device),
            torch.as_tensor(regimes, dtype=torch.long, device=device),
            torch.as_tensor(log_vol, dtype=torch.float32, device=device))


# -- the volatility component in torch (NumPy: synthfin.stats.volatility) -------------------------
def update_mean_squares(v: torch.Tensor, x: torch.Tensor, alphas: Sequence[float]
                        ) -> torch.Tensor:
    """One day of exponentially weighted mean squares (..., S) after the day's values ``x``
    (...): ``v <- v + alpha_s (x^2 - v_s)`` for each weight of ``alphas`` (:func:`span_weights`).
    """
    return v + v.new_tensor(alphas) * (x[..., None].square() - v)


def ewma_mean_squares(x: torch.Tensor, alphas: Sequence[float], v0: torch.Tensor
                      ) -> torch.Tensor:
    r"""Exponentially weighted mean squares of ``x`` (B, T, A): (B, T + 1, A, S), entry ``t``
    before day ``t`` (entry 0 is ``v0`` (B, A, S), entry T after the last day), by
    :math:`v \leftarrow (1 - \alpha) v + \alpha x_t^2` per weight (:func:`update_mean_squares`)."""
    out = [v0]
    for t in range(x.shape[1]):
        out.append(update_mean_squares(out[-1], x[:, t], alphas))
    return torch.stack(out, dim=1)


def student_t_log_prob(x: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor,
                       df: torch.Tensor) -> torch.Tensor:
    r"""Elementwise log density of a Student-t with location, scale and degrees of freedom.

    Notes
    -----
    With :math:`z = (x - \mu) / s`,

    .. math:: \log p(x) = \log\Gamma(\tfrac{\nu+1}{2}) - \log\Gamma(\tfrac{\nu}{2})
        - \tfrac12 \log(\nu\pi) - \log s - \tfrac{\nu+1}{2} \log(1 + z^2/\nu)
    """
    z = (x - loc) / scale
    return (torch.lgamma((df + 1) / 2) - torch.lgamma(df / 2) - 0.5 * torch.log(df * math.pi)
            - torch.log(scale) - (df + 1) / 2 * torch.log1p(z**2 / df))


TAIL_FLOOR = 3.0  # a half's degrees of freedom stay above 3 (side_dfs): the skewness is finite


def heavier_df(df: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    r"""Degrees of freedom :math:`f + (\nu - f)\, e^{-w}` with :math:`f` = :data:`TAIL_FLOOR`
    and :math:`w` = ``weight``: a heavier tail for :math:`w > 0`, a lighter one for
    :math:`w < 0`, never at or below :math:`f`."""
    return TAIL_FLOOR + (df - TAIL_FLOOR) * torch.exp(-weight)


def side_dfs(df: torch.Tensor, tail: torch.Tensor | None
             ) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Degrees of freedom of the lower and the upper half of a two-piece Student-t:
    :math:`\nu_\mp = f + (\nu - f)\, e^{\mp a}` (:func:`heavier_df`) with :math:`a` = ``tail``
    (None or 0: both :math:`\nu`; :math:`a > 0`: the lower tail is the heavier)."""
    if tail is None:
        return df, df
    return heavier_df(df, tail), heavier_df(df, -tail)


def _log_t_peak(df: torch.Tensor) -> torch.Tensor:
    """Log density of the standard Student-t at 0."""
    return torch.lgamma((df + 1) / 2) - torch.lgamma(df / 2) - 0.5 * torch.log(df * math.pi)


def upper_share(df_lo: torch.Tensor, df_hi: torch.Tensor, log_skew: torch.Tensor
                 ) -> torch.Tensor:
    r"""Probability of the upper half, :math:`P(z \ge 0) = \sigma(2g + \log t_{\nu_-}(0) -
    \log t_{\nu_+}(0))` (:math:`\sigma(2g)` for equal halves)."""
    return torch.sigmoid(2 * log_skew + _log_t_peak(df_lo) - _log_t_peak(df_hi))


def student_t_mixture_log_prob(x: torch.Tensor, logits: torch.Tensor, loc: torch.Tensor,
                               scale: torch.Tensor, df: torch.Tensor,
                               log_skew: torch.Tensor | None = None,
                               tail: torch.Tensor | None = None) -> torch.Tensor:
    r"""Log density of a mixture of (two-piece) Student-t components, elementwise over ``x``:
    :math:`\log \sum_k \mathrm{softmax}(\text{logits})_k\, p_k(x)`. Shapes: ``x`` (...),
    parameters (..., K).

    Notes
    -----
    Component :math:`k` joins two halves of Student-t densities continuously at the mode,
    each half at the same scale, with
    :math:`z = (x - \mu) / s`, :math:`\gamma = e^g` (``log_skew``) and each half's degrees of
    freedom :math:`\nu_\mp` (:func:`side_dfs` of ``df`` and ``tail``):

    .. math:: p(x) = \frac{c}{s} \begin{cases} t_{\nu_-}(z\gamma) / t_{\nu_-}(0) & z < 0 \\
        t_{\nu_+}(z / \gamma) / t_{\nu_+}(0) & z \ge 0 \end{cases}, \qquad
        \frac1c = \frac{1}{2\gamma\, t_{\nu_-}(0)} + \frac{\gamma}{2\, t_{\nu_+}(0)}.

    With no ``tail`` it is the skewed Student-t of Fernandez and Steel (1998),
    :math:`\frac{2}{\gamma + 1/\gamma} t_\nu(z \gamma^{-\operatorname{sign} z}) / s`
    (:math:`\gamma < 1`: the lower half is the wider); with neither, the Student-t
    (:func:`student_t_log_prob`). A positive ``tail`` gives the lower half a heavier tail than
    the upper (the asymmetry of equity returns' 1 % tails), a negative one the upper half.
    """
    x = x.unsqueeze(-1)
    if log_skew is None and tail is None:
        log_p = student_t_log_prob(x, loc, scale, df)
    else:  # each half's Student-t kernel at its stretched z, over the halves' joint constant
        log_skew = torch.zeros_like(df) if log_skew is None else log_skew
        df_lo, df_hi = side_dfs(df, tail)
        log_c = math.log(2) - torch.logaddexp(-log_skew - _log_t_peak(df_lo),
                                              log_skew - _log_t_peak(df_hi))
        z = (x - loc) / scale
        lower = z < 0
        side = torch.where(lower, df_lo, df_hi)
        stretched = z * torch.exp(torch.where(lower, log_skew, -log_skew))
        log_p = log_c - torch.log(scale) - (side + 1) / 2 * torch.log1p(stretched**2 / side)
    return torch.logsumexp(F.log_softmax(logits, dim=-1) + log_p, dim=-1)


def skewed_t_moments(df: torch.Tensor, log_skew: torch.Tensor | None,
                     tail: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Mean and second moment of the standard two-piece Student-t
    (:func:`student_t_mixture_log_prob` with :math:`\mu = 0`, :math:`s = 1`): with the lower
    half's probability :math:`p` (1 - :func:`upper_share`) and :math:`m_1(\nu) = E|t_\nu| =
    \frac{2 \sqrt\nu\, \Gamma((\nu + 1) / 2)}{\sqrt\pi\, (\nu - 1)\, \Gamma(\nu / 2)}`,
    :math:`E z = (1 - p)\, \gamma\, m_1(\nu_+) - p\, m_1(\nu_-) / \gamma` and
    :math:`E z^2 = (1 - p)\, \gamma^2 \frac{\nu_+}{\nu_+ - 2} + p\, \gamma^{-2}
    \frac{\nu_-}{\nu_- - 2}` (equal halves: :math:`2 m_1 \sinh g` and
    :math:`\frac{\nu}{\nu - 2} \frac{\cosh 3g}{\cosh g}`)."""
    if log_skew is None and tail is None:
        return torch.zeros_like(df), df / (df - 2)

    def abs_mean(nu: torch.Tensor) -> torch.Tensor:
        return 2 * nu * torch.exp(_log_t_peak(nu)) / (nu - 1)

    log_skew = torch.zeros_like(df) if log_skew is None else log_skew
    df_lo, df_hi = side_dfs(df, tail)
    upper, gamma = upper_share(df_lo, df_hi, log_skew), torch.exp(log_skew)
    return (upper * gamma * abs_mean(df_hi) - (1 - upper) * abs_mean(df_lo) / gamma,
            upper * gamma**2 * df_hi / (df_hi - 2) + (1 - upper) * df_lo / (df_lo - 2) / gamma**2)


def mixture_moments(logits: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor,
                    df: torch.Tensor, log_skew: torch.Tensor | None = None,
                    tail: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Mean and standard deviation (...) of a (two-piece) Student-t mixture with parameters
    (..., K): with each component's standard moments :math:`E z_k, E z_k^2`
    (:func:`skewed_t_moments`), :math:`m = \sum_k \pi_k (\mu_k + s_k E z_k)` and
    :math:`sd^2 = \sum_k \pi_k (\mu_k^2 + 2 \mu_k s_k E z_k + s_k^2 E z_k^2) - m^2`."""
    weights = torch.softmax(logits, dim=-1)
    first, second = skewed_t_moments(df, log_skew, tail)
    mean = (weights * (loc + scale * first)).sum(-1)
    second = (weights * (loc**2 + 2 * loc * scale * first + scale**2 * second)).sum(-1)
    return mean, torch.sqrt(torch.clamp(second - mean**2, min=1e-12))


def skewed_t_sample(df: torch.Tensor, log_skew: torch.Tensor, generator: torch.Generator,
                    tail: torch.Tensor | None = None) -> torch.Tensor:
    r"""Draws of the standard two-piece Student-t (shape of ``df``): with probability
    :math:`u` (:func:`upper_share`) :math:`\gamma |t_{\nu_+}|`, else
    :math:`-|t_{\nu_-}| / \gamma`. The normal and uniform draws use ``generator``, the
    chi-square draws the global stream, which the caller seeds."""
    df_lo, df_hi = side_dfs(df, tail)
    normal = torch.randn(df.shape, generator=generator, device=df.device)
    up = (torch.rand(df.shape, generator=generator, device=df.device)
          < upper_share(df_lo, df_hi, log_skew))
    side = torch.where(up, df_hi, df_lo)
    size = (normal * torch.sqrt(side / torch.distributions.Chi2(side, validate_args=False)
                                .sample())).abs()
    return torch.where(up, size * torch.exp(log_skew), -size * torch.exp(-log_skew))


def condition_innovations(factor: torch.Tensor, e: torch.Tensor, w_given: torch.Tensor,
                          given_idx: list[int]) -> torch.Tensor:
    r"""Correlated innovations :math:`w = L e` (n, A) whose entries ``given_idx`` equal
    ``w_given`` (n, k), the others drawn given them; ``factor`` is :math:`L` (n, A, A), ``e``
    (n, A) fresh standardized draws. Exact when the given assets come first
    (:math:`e_G = L_{GG}^{-1} w_G`), else the linear (Gaussian-copula) conditional
    :math:`w_O = w'_O + C_{OG} C_{GG}^{-1} (w_G - w'_G)`, :math:`w' = L e`, :math:`C = L L^\top`."""
    k = len(given_idx)
    if list(given_idx) == list(range(k)):
        e = e.clone()
        e[:, :k] = torch.linalg.solve_triangular(factor[:, :k, :k], w_given[..., None],
                                                 upper=False)[..., 0]
        return (factor @ e[..., None])[..., 0]
    w = (factor @ e[..., None])[..., 0]
    corr = factor @ factor.transpose(-1, -2)
    others = [a for a in range(e.shape[-1]) if a not in set(given_idx)]
    gain = torch.linalg.solve(corr[:, given_idx][:, :, given_idx],
                              corr[:, given_idx][:, :, others])  # (n, k, A - k)
    w = w.clone()
    w[:, others] = w[:, others] + ((w_given - w[:, given_idx])[:, None, :] @ gain)[:, 0]
    w[:, given_idx] = w_given
    return w


def chain_windows(spec: DataSpec, window: WindowSampler, regimes: np.ndarray,
                  realized_vol: np.ndarray, length: int, carry: Any = None) -> np.ndarray:
    """Paths of ``length`` scaled days (n, length, assets) from a model of one window.

    ``window(regimes, realized_vol, carry)`` draws one window (n, window_len, assets) per
    condition and returns it with the state its next window continues from (``carry``; None for
    a fresh start, or the state a continued history ends in; a model without memory across
    windows returns None). The first window gets the given conditions, each next one the regime
    and realized vol of the last ``vol_lookback`` days of the path so far.
    """
    path, carry = window(regimes, realized_vol, carry)
    while path.shape[1] < length:
        vol = spec.trailing_vol(path)
        more, carry = window(spec.regimes.label(vol), vol, carry)
        path = np.concatenate([path, more], axis=1)
    return path[:, :length]


class WindowContinuation(ABC):
    """``sample_after`` for a window model with a carried state (a mixin of a
    :class:`~synthfin.models.base.Generator` whose config has ``carry_state``): the model reads
    the real days into the state its next window would continue from
    (:meth:`_context_state`), then chains windows from there (:func:`chain_windows`, the first
    under the regime and realized vol of the context's last ``vol_lookback`` days); with
    ``carry_state=False`` only that condition carries over. A subclass defines
    :attr:`context_days`, :meth:`_context_state` and :meth:`_window_sampler`."""

    @property
    @abstractmethod
    def context_days(self) -> int:
        """Days of history :meth:`sample_after` reads."""

    @abstractmethod
    def _context_state(self, scaled: np.ndarray) -> Any:
        """The carry after real scaled days (n, context_days, assets)."""

    @abstractmethod
    def _window_sampler(self, rng: np.random.Generator) -> WindowSampler:
        """The model's one-window sampler, drawing from ``rng``."""

    def sample_after(self, context: np.ndarray, n: int, length: int = 1,
                     seed: int | None = None) -> np.ndarray:
        """``n`` paths of ``length`` unscaled log returns after ``context`` (days, assets), or
        one context per path (n, days, assets), of at least :attr:`context_days` days."""
        if n < 1 or length < 1:
            raise ModelError(f"n and length must be >= 1, got {n} and {length}")
        spec = self._spec()
        scaled, _ = spec.scaled_context(context, n, self.context_days)
        if scaled.shape[1] < self.context_days:
            raise ModelError(f"{self.name} continues a history of at least {self.context_days} "
                             f"days, got {scaled.shape[1]}")
        scaled = np.broadcast_to(scaled, (n, *scaled.shape[1:]))
        vol = spec.trailing_vol(scaled)
        carry = self._context_state(scaled) if self.config.carry_state else None
        paths = chain_windows(spec, self._window_sampler(np.random.default_rng(seed)),
                              spec.regimes.label(vol), vol, length, carry)
        return self._plausible(self._finite(spec.scaler.inverse(paths)), "sample_after")

    def context_sampler(self) -> ContextSampler:
        return self


# ---------------------------------------------------------------------------------------------
# Torch lag kernel
# ---------------------------------------------------------------------------------------------
def standardized(x: torch.Tensor) -> torch.Tensor:
    """``x`` (B, T, A) standardized per asset over windows and days (unbiased std + 1e-6)."""
    return (x - x.mean(dim=(0, 1))) / (x.std(dim=(0, 1)) + 1e-6)


def lagged_correlation(x: torch.Tensor, max_lag: int,
                       lagging: Callable[[torch.Tensor], torch.Tensor] | None = None
                       ) -> torch.Tensor:
    """Correlation of ``x_t`` with ``y_{t+k}``, ``y = lagging(x)`` (None: ``x``), k = 1..max_lag,
    of windows (B, T, A): the mean of the products over windows and days after
    :func:`standardized`, (max_lag, A).

    The differentiable torch mirror of :func:`synthfin.stats.facts._lagged_correlation`
    (pooled). ``y`` is made after ``x`` is standardized: that order of operations fixes the
    order in which backward sums the gradients, so losses keep their exact numbers.
    """
    leading = standardized(x)
    following = leading if lagging is None else standardized(lagging(x))
    return torch.stack([(leading[:, :-lag] * following[:, lag:]).mean(dim=(0, 1))
                        for lag in range(1, max_lag + 1)])
