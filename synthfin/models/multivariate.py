r"""The joint peers a risk team would pick: DCC-GARCH(1,1) with Student-t innovations (``dcc``)
and filtered historical simulation (``fhs``), both on per-asset GJR-GARCH(1,1) filters.

Both fit in one step on the training split's contiguous scaled returns, simulate paths of any
length, continue a given history (:meth:`sample_after`) and draw the other assets given a path
of some of them (:meth:`sample_given`). Conditioning on a regime means starting in that
regime's mean trailing variance (and, for ``dcc``, its correlation), as ``garch`` does.

**Bounded by construction.** Per-asset GJR fits near integration on a short sample exploded
(issue 29: kurtosis 404 from ``garch``). Here each filter's persistence
:math:`\alpha + \gamma/2 + \beta` is capped at :data:`MAX_PERSISTENCE`, its intercept is
variance-targeted (:math:`\omega = \bar\sigma^2 (1 - \text{persistence})`, so the long-run
variance is the training variance), its degrees of freedom are at least :data:`MIN_DF` and its
conditional standard deviation at most :data:`MAX_VOL_MULTIPLE` long-run ones.
"""

from __future__ import annotations

import dataclasses
from abc import abstractmethod
from pathlib import Path
from typing import ClassVar

import numpy as np
from scipy import optimize, special
from scipy.signal import lfilter

from synthfin.data.conditions import trailing_sum_squares
from synthfin.data.windows import WindowData
from synthfin.errors import ModelError
from synthfin.models.base import (
    ContextSampler,
    Generator,
    GeneratorConfig,
    Limit,
    given_arguments,
    register,
)
from synthfin.models.baselines import fit_arch

MAX_PERSISTENCE = 0.99  # alpha + gamma / 2 + beta of each filter, and a + b of the DCC
MIN_DF = 5.0  # Student-t degrees of freedom: the innovations keep a finite kurtosis (> 4)
MAX_VOL_MULTIPLE = 5.0  # conditional sd <= 5 long-run (training) sds
FHS_NEIGHBOURS = 20  # training days among which fhs draws a day nearest to a given one
PARAMS = ("mu", "omega", "alpha", "gamma", "beta", "nu")


def fit_gjr(series: np.ndarray) -> np.ndarray:
    r"""Per-asset GJR-GARCH(1,1)-t fits (assets, 6) of scaled returns (T, assets), columns
    :data:`PARAMS`, bounded as the module says.

    Notes
    -----
    :math:`r_t = \mu + \sigma_t z_t`, :math:`z_t` unit-variance Student-t with :math:`\nu`
    degrees of freedom, and
    :math:`\sigma_t^2 = \omega + (\alpha + \gamma 1[\epsilon_{t-1} < 0]) \epsilon_{t-1}^2
    + \beta \sigma_{t-1}^2`, :math:`\epsilon = r - \mu`; maximum likelihood by ``arch``, then
    :math:`(\alpha, \gamma, \beta)` scaled so that the persistence is at most
    :data:`MAX_PERSISTENCE`, :math:`\omega = \overline{\epsilon^2}(1 - \text{persistence})`
    and :math:`\nu \ge` :data:`MIN_DF`.
    """
    rows = []
    for a in range(series.shape[1]):
        result = fit_arch(series[:, a], o=1, dist="t", what=f"GJR-GARCH fit of asset {a}")
        p = result.params
        alpha, gamma, beta = p["alpha[1]"], p["gamma[1]"], p["beta[1]"]
        persistence = alpha + gamma / 2 + beta
        shrink = min(1.0, MAX_PERSISTENCE / persistence) if persistence > 0 else 1.0
        alpha, gamma, beta = alpha * shrink, gamma * shrink, beta * shrink
        variance = np.mean(np.square(series[:, a] - p["mu"]))
        omega = variance * (1 - persistence * shrink)
        rows.append([p["mu"], omega, alpha, gamma, beta, max(p["nu"], MIN_DF)])
    return np.asarray(rows)


def long_run_variance(params: np.ndarray) -> np.ndarray:
    r""":math:`\omega / (1 - \alpha - \gamma/2 - \beta)` per asset (assets,)."""
    _, omega, alpha, gamma, beta, _ = params.T
    return omega / (1 - alpha - gamma / 2 - beta)


def gjr_update(variance: np.ndarray, eps: np.ndarray, params: np.ndarray) -> np.ndarray:
    """The next day's conditional variances (..., assets) after residuals ``eps``, capped at
    :data:`MAX_VOL_MULTIPLE` squared long-run variances."""
    _, omega, alpha, gamma, beta, _ = params.T
    nxt = omega + (alpha + gamma * (eps < 0)) * eps**2 + beta * variance
    return np.minimum(nxt, MAX_VOL_MULTIPLE**2 * long_run_variance(params))


def gjr_filter(series: np.ndarray, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Standardized residuals (..., T, assets) of scaled returns (..., T, assets) through the
    filters, started at the long-run variance, and the variances of the day after (..., assets).
    """
    series = np.asarray(series, dtype=np.float64)
    variance = np.broadcast_to(long_run_variance(params), series[..., 0, :].shape).copy()
    z = np.empty_like(series)
    for t in range(series.shape[-2]):
        eps = series[..., t, :] - params[:, 0]
        z[..., t, :] = eps / np.sqrt(variance)
        variance = gjr_update(variance, eps, params)
    return z, variance


def standard_t(rng: np.random.Generator, nu: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Unit-variance Student-t draws of ``shape`` with degrees of freedom ``nu`` (broadcast)."""
    return rng.standard_t(np.broadcast_to(nu, shape)) * np.sqrt((nu - 2) / nu)


def _regime_start(data: WindowData, series: np.ndarray) -> np.ndarray:
    """Mean trailing variance (regimes, assets) of each regime's training days (as ``garch``)."""
    trailing = trailing_sum_squares(series, data.vol_lookback) / data.vol_lookback
    labels = data.day_regimes("train")
    out = []
    for code, name in enumerate(data.regimes.names):
        days = np.flatnonzero(labels == code)
        if len(days) < 2:
            raise ModelError(f"regime {name!r} has {len(days)} training days; too few to fit")
        out.append(trailing[days].mean(axis=0))
    return np.asarray(out)


@dataclasses.dataclass
class JointConfig(GeneratorConfig):
    """``burn_in`` days run (and dropped) before an unconditional path; ``context`` days of a
    history read by :meth:`sample_after`."""

    burn_in: int = 500
    context: int = 1000
    limits: ClassVar[dict[str, Limit]] = {"burn_in": ">= 0", "context": ">= 1"}


class _FilteredGenerator(Generator):
    """Per-asset GJR filters and a joint model of their standardized residuals ``z``: the
    recursion, regime starts and history continuation both models share. A subclass fits
    its joint state (:meth:`_fit_joint`), draws a day of ``z`` (:meth:`_draw`) and carries
    its state after each day (:meth:`_advance`)."""

    config_class = JointConfig
    config: JointConfig

    def _fit(self, data: WindowData, *, run_dir: Path | None, resume: bool) -> None:
        series = data.train.returns
        self.params_ = fit_gjr(series)
        self.regime_var_ = _regime_start(data, series)
        z, _ = gjr_filter(series, self.params_)
        self._fit_joint(z, data.day_regimes("train"), len(data.regimes.names))

    # -- the joint part ------------------------------------------------------------------------
    @abstractmethod
    def _fit_joint(self, z: np.ndarray, labels: np.ndarray, n_regimes: int) -> None:
        """Fit the joint part on standardized residuals (T, assets) whose days have the
        regime codes ``labels`` (T,)."""

    def _start(self, n: int, regime: int | None) -> np.ndarray | None:
        """The joint state of ``n`` new paths (or of a regime's start)."""
        return None

    @abstractmethod
    def _draw(self, joint: np.ndarray | None, rng: np.random.Generator, n: int) -> np.ndarray:
        """A day of standardized residuals (n, assets) given the joint state."""

    @abstractmethod
    def _draw_given(self, joint: np.ndarray | None, rng: np.random.Generator,
                    z_given: np.ndarray, given_idx: list[int]) -> np.ndarray:
        """A day of residuals (n, assets) whose entries ``given_idx`` are ``z_given`` (n, k)
        and the others drawn given them."""

    def _advance(self, joint: np.ndarray | None, z: np.ndarray) -> np.ndarray | None:
        return joint

    def _history_state(self, z: np.ndarray) -> np.ndarray | None:
        """The joint state after standardized residuals (n, T, assets) of a history."""
        return None

    # -- sampling --------------------------------------------------------------------------------
    def _roll(self, variance: np.ndarray, joint: np.ndarray | None, length: int, skip: int,
              rng: np.random.Generator, given: np.ndarray | None = None,
              given_idx: list[int] | None = None) -> np.ndarray:
        """``length`` scaled days (n, length, assets) after ``skip`` dropped ones, from
        variances (n, assets) and joint state; ``given`` (length, k) scaled returns fix the
        assets ``given_idx`` on the kept days (:meth:`_draw_given` draws the others)."""
        n = len(variance)
        mu = self.params_[:, 0]
        out = np.empty((n, length, len(mu)))
        for t in range(skip + length):  # sequential in time, vectorized over paths
            if given is None or t < skip:
                z = self._draw(joint, rng, n)
            else:  # the given assets' residuals under the path's own variances
                z_given = (given[t - skip] - mu[given_idx]) / np.sqrt(variance[:, given_idx])
                z = self._draw_given(joint, rng, z_given, given_idx)
            eps = np.sqrt(variance) * z
            if t >= skip:
                out[:, t - skip] = mu + eps
            variance = gjr_update(variance, eps, self.params_)
            joint = self._advance(joint, z)
        return out

    def _sample(self, n: int, length: int, regime: int | None,
                rng: np.random.Generator) -> np.ndarray:
        start = long_run_variance(self.params_) if regime is None else self.regime_var_[regime]
        variance = np.broadcast_to(start, (n, len(start))).copy()
        skip = self.config.burn_in if regime is None else 0
        return self._roll(variance, self._start(n, regime), length, skip, rng)

    @property
    def context_days(self) -> int:
        """Days of history :meth:`sample_after` reads."""
        return self.config.context

    def context_sampler(self) -> ContextSampler:
        return self

    def _after(self, context: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Variances (n, assets) and joint state after unscaled ``context`` (days, assets) or
        (n, days, assets), checked."""
        scaled, per_path = self._spec().scaled_context(context, n, self.config.context)
        z, variance = gjr_filter(scaled, self.params_)
        joint = self._history_state(z)
        if not per_path:
            variance = np.repeat(variance, n, axis=0)
            joint = None if joint is None else np.repeat(joint, n, axis=0)
        return variance, joint

    def sample_after(self, context: np.ndarray, n: int, length: int = 1,
                     seed: int | None = None) -> np.ndarray:
        """``n`` paths of ``length`` unscaled log returns after ``context`` (days, assets), or
        one context per path (n, days, assets): its last :attr:`context_days` days are
        filtered (from the long-run state) and the model runs on from there."""
        if n < 1 or length < 1:
            raise ModelError(f"n and length must be >= 1, got {n} and {length}")
        variance, joint = self._after(context, n)
        paths = self._roll(variance, joint, length, 0, np.random.default_rng(seed))
        return self._plausible(self._finite(self._spec().scaler.inverse(paths)), "sample_after")

    def sample_given(self, given: np.ndarray, given_assets: list[str], n: int, *,
                     context: np.ndarray | None = None, seed: int | None = None) -> np.ndarray:
        """``n`` paths (n, days, assets) of unscaled log returns in which ``given_assets``
        follow ``given`` (days, k) and the others are drawn given them each day (see
        :meth:`_draw_given` of each model). Paths continue ``context`` (days, assets) or,
        without it, start after ``burn_in`` days from the long-run state."""
        spec = self._spec()
        idx, given = given_arguments(spec, given, given_assets, n)
        full = np.zeros((len(given), len(spec.assets)))
        full[:, idx] = given
        scaled = spec.scaler.transform(full)[:, idx]
        rng = np.random.default_rng(seed)
        if context is None:
            start = long_run_variance(self.params_)
            variance, joint = np.broadcast_to(start, (n, len(start))).copy(), self._start(n, None)
            skip = self.config.burn_in
        else:
            (variance, joint), skip = self._after(context, n), 0
        out = spec.scaler.inverse(self._roll(variance, joint, len(given), skip, rng, scaled, idx))
        out[:, :, idx] = given
        return self._plausible(self._finite(out), "sample_given")

    def _state(self) -> dict[str, np.ndarray]:
        return {"params": self.params_, "regime_var": self.regime_var_}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self.params_, self.regime_var_ = state["params"], state["regime_var"]


# ---------------------------------------------------------------------------------------------
def dcc_correlations(z: np.ndarray, qbar: np.ndarray, a: float, b: float) -> np.ndarray:
    r"""DCC correlations :math:`R_t` (T, A, A) of each day of standardized residuals (T, A):
    :math:`Q_t = (1 - a - b)\bar Q + a z_{t-1} z_{t-1}^\top + b Q_{t-1}`, :math:`Q_0 = \bar Q`,
    :math:`R_t = \mathrm{diag}(Q_t)^{-1/2} Q_t\, \mathrm{diag}(Q_t)^{-1/2}` (one linear filter
    per matrix entry)."""
    outer = z[:, :, None] * z[:, None, :] - qbar  # (T, A, A)
    q = qbar + lfilter([0.0, a], [1.0, -b], outer, axis=0)
    return _normalize(q)


def _normalize(q: np.ndarray) -> np.ndarray:
    d = np.sqrt(np.diagonal(q, axis1=-2, axis2=-1))
    return q / d[..., :, None] / d[..., None, :]


def mvt_log_density(z: np.ndarray, corr: np.ndarray, nu: float) -> np.ndarray:
    r"""Log density (T,) of unit-variance multivariate Student-t days ``z`` (T, A) with
    correlations (T, A, A):

    .. math:: \log\Gamma(\tfrac{\nu+A}{2}) - \log\Gamma(\tfrac{\nu}{2})
        - \tfrac{A}{2}\log(\pi(\nu-2)) - \tfrac12\log|R_t|
        - \tfrac{\nu+A}{2}\log\Big(1 + \frac{z_t^\top R_t^{-1} z_t}{\nu-2}\Big)
    """
    dims = z.shape[-1]
    _, logdet = np.linalg.slogdet(corr)
    quad = np.einsum("ta,ta->t", z, np.linalg.solve(corr, z[..., None])[..., 0])
    return (special.gammaln((nu + dims) / 2) - special.gammaln(nu / 2)
            - dims / 2 * np.log(np.pi * (nu - 2)) - 0.5 * logdet
            - (nu + dims) / 2 * np.log1p(quad / (nu - 2)))


@register
class DCCGenerator(_FilteredGenerator):
    r"""DCC-GARCH(1,1) with Student-t innovations (Engle, 2002), in two steps.

    Notes
    -----
    Per asset a GJR-GARCH(1,1)-t filter (:func:`fit_gjr`) gives standardized residuals
    :math:`z_t`; their correlation follows the DCC recursion of :func:`dcc_correlations` with
    :math:`\bar Q` the residuals' correlation, and :math:`(a, b, \nu)` maximize the
    multivariate-t likelihood :func:`mvt_log_density` (:math:`a + b \le`
    :data:`MAX_PERSISTENCE`, :math:`\nu \ge` :data:`MIN_DF`). A day is drawn as
    :math:`z = \sqrt{(\nu - 2)/\chi^2_\nu}\, L_t n`, :math:`L_t L_t^\top = R_t`, :math:`n`
    standard normal: one shared chi-square per day gives the assets tail dependence. A regime
    starts from its training days' variances and the correlation of their residuals.
    """

    name = "dcc"

    def _fit_joint(self, z: np.ndarray, labels: np.ndarray, n_regimes: int) -> None:
        self.qbar_ = np.atleast_2d(np.corrcoef(z.T))

        def nll(x: np.ndarray) -> float:
            s, share, nu = x
            return -float(mvt_log_density(z, dcc_correlations(z, self.qbar_, s * share,
                                                                s * (1 - share)), nu).sum())

        best = optimize.minimize(nll, np.array([0.95, 0.03, 8.0]), method="L-BFGS-B",
                                 bounds=[(0.0, MAX_PERSISTENCE), (1e-4, 0.5), (MIN_DF, 200.0)])
        s, share, nu = best.x
        self.dcc_ = np.array([s * share, s * (1 - share), nu])  # a, b, nu
        self.regime_q_ = np.stack([
            np.atleast_2d(np.corrcoef(z[labels == code].T)) if (labels == code).sum() > 2
            else self.qbar_ for code in range(n_regimes)])

    def _start(self, n: int, regime: int | None) -> np.ndarray:
        q = self.qbar_ if regime is None else self.regime_q_[regime]
        return np.broadcast_to(q, (n, *q.shape)).copy()

    def _draw(self, joint: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
        nu = self.dcc_[2]
        factor = np.linalg.cholesky(_normalize(joint))  # (n, A, A)
        normal = rng.standard_normal((n, len(self.params_)))
        mix = np.sqrt((nu - 2) / rng.chisquare(nu, size=(n, 1)))
        return mix * (factor @ normal[..., None])[..., 0]

    def _draw_given(self, joint: np.ndarray, rng: np.random.Generator, z_given: np.ndarray,
                    given_idx: list[int]) -> np.ndarray:
        r"""The multivariate-t conditional: with :math:`R` the day's correlation, :math:`G`
        the given and :math:`O` the other assets, :math:`d = z_G^	op R_{GG}^{-1} z_G`,

        .. math:: z_O = R_{OG} R_{GG}^{-1} z_G + \sqrt{rac{
u - 2 + d}{\chi^2_{
u+k}}}
            \, \mathrm{chol}(R_{OO} - R_{OG} R_{GG}^{-1} R_{GO})\, n

        (a Student-t with :math:`
u + k` degrees of freedom: a large given move widens the
        others' spread, the tail dependence of the joint t)."""
        nu, n = self.dcc_[2], len(joint)
        corr = _normalize(joint)
        others = [a for a in range(corr.shape[-1]) if a not in set(given_idx)]
        r_gg = corr[:, given_idx][:, :, given_idx]
        r_go = corr[:, given_idx][:, :, others]
        gain = np.linalg.solve(r_gg, r_go)  # (n, k, m)
        mean = (z_given[:, None, :] @ gain)[:, 0]
        spread = corr[:, others][:, :, others] - r_go.transpose(0, 2, 1) @ gain
        d = np.einsum("nk,nk->n", z_given, np.linalg.solve(r_gg, z_given[..., None])[..., 0])
        mix = np.sqrt((nu - 2 + d) / rng.chisquare(nu + len(given_idx), size=n))[:, None]
        normal = rng.standard_normal((n, len(others)))
        z = np.empty((n, corr.shape[-1]))
        z[:, given_idx] = z_given
        z[:, others] = mean + mix * (np.linalg.cholesky(spread) @ normal[..., None])[..., 0]
        return z

    def _advance(self, joint: np.ndarray, z: np.ndarray) -> np.ndarray:
        a, b, _ = self.dcc_
        return (1 - a - b) * self.qbar_ + a * z[:, :, None] * z[:, None, :] + b * joint

    def _history_state(self, z: np.ndarray) -> np.ndarray:
        joint = self._start(len(z), None)
        for t in range(z.shape[1]):
            joint = self._advance(joint, z[:, t])
        return joint

    def _state(self) -> dict[str, np.ndarray]:
        return {**super()._state(), "qbar": self.qbar_, "dcc": self.dcc_,
                "regime_q": self.regime_q_}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        super()._load_state(state)
        self.qbar_, self.dcc_, self.regime_q_ = state["qbar"], state["dcc"], state["regime_q"]


# ---------------------------------------------------------------------------------------------
@register
class FilteredHistoricalSimulation(_FilteredGenerator):
    """Filtered historical simulation (Barone-Adesi et al., 1999): per-asset GJR-GARCH(1,1)-t
    filters (:func:`fit_gjr`), then each simulated day's standardized residuals are one whole
    training day's, drawn uniformly, so the cross-section and its joint tails are the real
    ones; the filters rescale them by the path's own conditional volatilities. A regime starts
    from its training days' mean trailing variances.
    """

    name = "fhs"

    def _fit_joint(self, z: np.ndarray, labels: np.ndarray, n_regimes: int) -> None:
        self.residuals_ = z  # (T, A)

    def _draw(self, joint: None, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.residuals_[rng.integers(0, len(self.residuals_), size=n)]

    def _draw_given(self, joint: None, rng: np.random.Generator, z_given: np.ndarray,
                    given_idx: list[int]) -> np.ndarray:
        """Each path's day is one of the :data:`FHS_NEIGHBOURS` training days whose given
        assets' residuals are nearest (Euclidean) to ``z_given``, drawn uniformly: the
        others keep that real day's cross-section; the given assets take ``z_given``."""
        days = self.residuals_
        k = min(FHS_NEIGHBOURS, len(days))
        distance = np.square(z_given[:, None, :] - days[None, :, given_idx]).sum(-1)  # (n, T)
        nearest = np.argpartition(distance, k - 1, axis=1)[:, :k]
        pick = nearest[np.arange(len(z_given)), rng.integers(0, k, size=len(z_given))]
        z = days[pick].copy()
        z[:, given_idx] = z_given
        return z

    def _state(self) -> dict[str, np.ndarray]:
        return {**super()._state(), "residuals": self.residuals_}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        super()._load_state(state)
        self.residuals_ = state["residuals"]
