"""Classical peers behind the :class:`Generator` interface: GARCH-t, block bootstrap, iid Gaussian.

They fit in one step (``run_dir`` and ``resume`` do not apply) on the training split's
contiguous scaled returns and simulate paths of any length.
Conditioning on a regime means *starting in* that regime's volatility state; the models' own
dynamics take over from there.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from arch import arch_model
from arch.bootstrap import optimal_block_length
from arch.univariate import SkewStudent, StudentsT
from scipy import special

from synthfin.data.conditions import trailing_sum_squares
from synthfin.data.windows import WindowData
from synthfin.errors import ModelError
from synthfin.models.base import ContextSampler, Generator, GeneratorConfig, Limit, register


def _regime_days(data: WindowData, regime: int) -> np.ndarray:
    """Indices of training days whose trailing-vol regime is ``regime``."""
    return np.flatnonzero(data.day_regimes("train") == regime)


def _per_regime(data: WindowData, statistic) -> list[np.ndarray]:
    """``statistic(days)`` for the training days of each regime, as a list over regime codes."""
    results = []
    for code, name in enumerate(data.regimes.names):
        days = _regime_days(data, code)
        if len(days) < 2:
            raise ModelError(f"regime {name!r} has {len(days)} training days; too few to fit")
        results.append(statistic(days))
    return results


def arch_spec(y: np.ndarray, *, vol: str = "GARCH", o: int = 0, dist: str = "t") -> Any:
    """``arch``'s constant-mean ``vol`` model (p = q = 1, ``o`` asymmetry lags) with ``dist``
    innovations on ``y`` (1-D, not rescaled): the one specification every fit uses."""
    return arch_model(y, mean="Constant", vol=vol, p=1, o=o, q=1, dist=dist, rescale=False)


def fit_arch(y: np.ndarray, *, vol: str = "GARCH", o: int = 0, dist: str = "t",
             last_obs: int | None = None, what: str | None = None) -> Any:
    """:func:`arch_spec` fitted by maximum likelihood on ``y[:last_obs]``: the result, whose
    ``.model`` filters all of ``y``. With ``what``, a fit that did not converge is
    a :class:`ModelError` naming it."""
    model = arch_spec(y, vol=vol, o=o, dist=dist)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # arch's convergence chatter; checked by the callers
        result = model.fit(last_obs=last_obs, disp="off")
    if what is not None and result.convergence_flag != 0:
        raise ModelError(f"{what} did not converge (flag {result.convergence_flag})")
    return result


def garch_one_step_log_likelihood(series: np.ndarray, n_train: int, *, gjr: bool = False,
                                  dist: str = "t") -> np.ndarray:
    """Per-day one-step-ahead log density of a GARCH(1,1) (GJR with ``gjr``) fitted by ``arch``
    on the first ``n_train`` days of a univariate series of unscaled log returns (T,), filtered
    through every day with those parameters.

    The held-out days ``t >= n_train`` (or later) of the result are the out-of-sample
    likelihood that density models are compared with. ``arch`` works in percent; the density of
    ``x`` is that of ``100 x`` times 100.
    """
    result = fit_arch(np.asarray(series, dtype=float) * 100, o=int(gjr), dist=dist,
                      last_obs=n_train)
    model, params = result.model, result.params
    filtered = model.fix(params)
    shape = np.asarray(params.iloc[-model.distribution.num_params:])
    return model.distribution.loglikelihood(
        shape, np.asarray(filtered.resid), np.asarray(filtered.conditional_volatility) ** 2,
        individual=True) + np.log(100)


# ---------------------------------------------------------------------------------------------
# history filtered by sample_after: the start at the unconditional variance fades by beta ** 1000
GARCH_CONTEXT_DAYS = 1000


@dataclasses.dataclass
class GarchConfig(GeneratorConfig):
    """GARCH(1,1) settings: ``gjr`` adds the leverage term, ``dist`` is ``"t"`` or ``"skewt"``."""

    gjr: bool = False
    dist: str = "t"
    burn_in: int = 500
    limits: ClassVar[dict[str, Limit]] = {"dist": ("t", "skewt"), "burn_in": ">= 0"}


@dataclasses.dataclass(frozen=True)
class GarchParams:
    """Fitted (GJR-)GARCH parameters in scaled units, each an array over assets (assets,);
    ``shape_params`` (assets, 2) holds ``nu, 0`` (Student-t) or ``eta, lambda`` (skew-t)."""

    mu: np.ndarray
    omega: np.ndarray
    alpha: np.ndarray
    gamma: np.ndarray
    beta: np.ndarray
    shape_params: np.ndarray

    @classmethod
    def from_array(cls, array: np.ndarray) -> GarchParams:
        """From the saved (assets, 7) array of :meth:`to_array`."""
        return cls(*np.asarray(array[:, :5]).T, shape_params=array[:, 5:])

    def to_array(self) -> np.ndarray:
        """Columns ``mu, omega, alpha, gamma, beta`` and the two shape parameters."""
        return np.column_stack([self.mu, self.omega, self.alpha, self.gamma, self.beta,
                                self.shape_params])


@register
class GarchGenerator(Generator):
    """GARCH(1,1) (optionally GJR) with Student-t or skew-t innovations, one model per asset.

    Notes
    -----
    Per asset, ``r_t = mu + sigma_t e_t`` with unit-variance innovations ``e_t`` and

    ``sigma_t^2 = omega + (alpha + gamma 1[e_{t-1} < 0]) (r_{t-1} - mu)^2 + beta sigma_{t-1}^2``

    (``gamma = 0`` unless ``gjr``), fitted by maximum likelihood with the ``arch`` package.
    Simulation is vectorized over paths, starting from the unconditional variance
    ``omega / (1 - alpha - gamma/2 - beta)`` followed by ``burn_in`` discarded days, or, for a
    regime, from that regime's mean trailing variance on the training days without burn-in.
    Several assets are joined by a Gaussian copula: the innovations' probability integral
    transforms are mapped to normal scores whose correlation is fitted on the standardized
    residuals. This captures contemporaneous dependence only; volatilities do not spill over.
    """

    name = "garch"
    config_class = GarchConfig

    def _fit(self, data: WindowData, *, run_dir: Path | None, resume: bool) -> None:
        series = data.train.returns
        rows, normal_scores = [], []
        for a, asset in enumerate(data.assets):
            result = fit_arch(series[:, a], o=int(self.config.gjr), dist=self.config.dist,
                              what=f"GARCH fit for {asset}")
            p = result.params
            shape = list(p.iloc[-result.model.distribution.num_params:])  # nu; eta, lambda
            rows.append([p["mu"], p["omega"], p["alpha[1]"], p.get("gamma[1]", 0.0),
                         p["beta[1]"], *shape, *[0.0] * (2 - len(shape))])
            resid = np.asarray(result.std_resid)[1:]
            pits = self._distribution().cdf(resid, self._shape(np.asarray(rows[-1][5:])))
            normal_scores.append(special.ndtri(np.clip(pits, 1e-12, 1 - 1e-12)))
        self.params_ = GarchParams.from_array(np.asarray(rows))
        self.copula_corr_ = np.atleast_2d(np.corrcoef(np.asarray(normal_scores)))
        trailing_var = trailing_sum_squares(series, data.vol_lookback) / data.vol_lookback
        self.regime_var_ = np.asarray(_per_regime(  # (regimes, assets)
            data, lambda days: trailing_var[days].mean(axis=0)))

    def _distribution(self) -> StudentsT | SkewStudent:
        return SkewStudent() if self.config.dist == "skewt" else StudentsT()

    def _shape(self, shape_params: np.ndarray) -> np.ndarray:
        return shape_params[:2] if self.config.dist == "skewt" else shape_params[:1]

    def _innovations(self, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
        """Unit-variance innovations (n, steps, assets) with the copula's dependence."""
        n, steps = shape
        if len(self.params_.mu) == 1 and self.config.dist == "t":  # no copula: no ppf
            nu = self.params_.shape_params[0, 0]
            return (rng.standard_t(nu, size=(n, steps)) * np.sqrt((nu - 2) / nu))[..., None]
        chol = np.linalg.cholesky(self.copula_corr_)
        pits = special.ndtr(rng.standard_normal((n, steps, len(chol))) @ chol.T)
        dist = self._distribution()
        return np.stack([dist.ppf(pits[..., a].ravel(), self._shape(p)).reshape(n, steps)
                         for a, p in enumerate(self.params_.shape_params)], axis=-1)

    def _unconditional_variance(self) -> np.ndarray:
        p = self.params_
        persistence = p.alpha + p.gamma / 2 + p.beta
        return np.where(persistence < 1, p.omega / np.maximum(1 - persistence, 1e-12), 1.0)

    def _next_variance(self, eps: np.ndarray, variance: np.ndarray) -> np.ndarray:
        """One step of the (GJR-)GARCH recursion from the shocks ``eps = r - mu``."""
        p = self.params_
        return p.omega + (p.alpha + p.gamma * (eps < 0)) * eps**2 + p.beta * variance

    def _simulate(self, variance: np.ndarray, length: int, burn_in: int,
                  rng: np.random.Generator) -> np.ndarray:
        """Paths (n, length, assets) from the conditional variances (n, assets) of their first
        day, after ``burn_in`` discarded days."""
        mu = self.params_.mu
        n = len(variance)
        shocks = self._innovations(rng, (n, burn_in + length))
        out = np.empty((n, length, len(mu)))
        for t in range(burn_in + length):  # the recursion is sequential in time, vector in paths
            eps = np.sqrt(variance) * shocks[:, t]
            if t >= burn_in:
                out[:, t - burn_in] = mu + eps
            variance = self._next_variance(eps, variance)
        return out

    def _sample(self, n: int, length: int, regime: int | None,
                rng: np.random.Generator) -> np.ndarray:
        burn_in = self.config.burn_in if regime is None else 0
        variance = (self._unconditional_variance() if regime is None
                    else self.regime_var_[regime])
        variance = np.broadcast_to(variance, (n, len(self.params_.mu))).copy()
        return self._simulate(variance, length, burn_in, rng)

    @property
    def context_days(self) -> int:
        """Days of history :meth:`sample_after` filters (earlier days are ignored): enough for
        the start at the unconditional variance to fade by ``beta ** days``."""
        return GARCH_CONTEXT_DAYS

    def filtered_variance(self, context: np.ndarray) -> np.ndarray:
        """Conditional variance of the day after each history, (paths, assets), in scaled
        units: the fitted recursion run over ``context`` (paths, days, assets) of scaled
        returns, started at the unconditional variance."""
        mu = self.params_.mu
        variance = np.broadcast_to(self._unconditional_variance(),
                                   (len(context), len(mu))).copy()
        for t in range(context.shape[1]):
            variance = self._next_variance(context[:, t] - mu, variance)
        return variance

    def sample_after(self, context: np.ndarray, n: int, length: int = 1,
                     seed: int | None = None) -> np.ndarray:
        """Continue a history with the fitted parameters (no refit): ``n`` paths of ``length``
        unscaled log returns after ``context``, one history (days, assets) shared by every path
        or one per path (n, days, assets); its last :attr:`context_days` days are filtered
        (``arch``'s ``forecast(method="simulation")`` with fixed parameters)."""
        spec = self._spec()
        recent, per_path = spec.scaled_context(context, n, self.context_days)
        if n < 1 or length < 1:
            raise ModelError(f"n and length must be >= 1, got {n} and {length}")
        variance = self.filtered_variance(recent)
        if not per_path:
            variance = np.repeat(variance, n, axis=0)
        paths = self._simulate(variance, length, 0, np.random.default_rng(seed))
        return self._finite(spec.scaler.inverse(paths))

    def context_sampler(self) -> ContextSampler:
        return self

    def _state(self) -> dict[str, np.ndarray]:
        return {"params": self.params_.to_array(), "copula_corr": self.copula_corr_,
                "regime_var": self.regime_var_}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self.params_ = GarchParams.from_array(state["params"])
        self.copula_corr_ = state["copula_corr"]
        self.regime_var_ = state["regime_var"]


# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class BootstrapConfig(GeneratorConfig):
    """``block_len``: expected block length in days; 0 chooses it from the data."""

    block_len: float = 0.0
    limits: ClassVar[dict[str, Limit]] = {"block_len": ">= 0"}


@register
class BlockBootstrap(Generator):
    """Stationary block bootstrap (Politis and Romano, 1994) of the training days.

    Notes
    -----
    Each path copies blocks of consecutive training days (all assets together, so cross-asset
    dependence is kept), with geometric block lengths of mean ``b``: at every step a new block
    starts at a uniform random day with probability ``1 / b``, else the path continues to the next
    day (circularly). With ``block_len = 0``, ``b`` is the Politis-White (2004) automatic choice
    (``arch.bootstrap.optimal_block_length``) on the squared returns, because the dependence to keep
    is in volatility; returns themselves are nearly uncorrelated and would give ``b`` near 1.
    A regime condition starts each path on a training day of that regime. The samples are copies
    of history by construction: the evaluator's memorization check flags them.
    """

    name = "bootstrap"
    config_class = BootstrapConfig

    def _fit(self, data: WindowData, *, run_dir: Path | None, resume: bool) -> None:
        self.series_ = data.train.returns
        block_len = self.config.block_len
        if block_len == 0:
            block_len = float(optimal_block_length(self.series_**2)["stationary"].mean())
        self.block_len_ = max(1.0, block_len)
        self.regime_days_ = [_regime_days(data, code) for code in range(len(data.regimes.names))]

    def _sample(self, n: int, length: int, regime: int | None,
                rng: np.random.Generator) -> np.ndarray:
        days = len(self.series_)
        new_block = rng.random((n, length)) < 1.0 / self.block_len_
        new_block[:, 0] = True
        starts = rng.integers(0, days, size=(n, length))
        if regime is not None:
            candidates = self.regime_days_[regime]
            if len(candidates) == 0:
                raise ModelError(f"no training day is in regime {regime}")
            starts[:, 0] = rng.choice(candidates, size=n)
        steps = np.arange(length)
        block_begin = np.maximum.accumulate(np.where(new_block, steps, 0), axis=1)  # (n, length)
        index = (np.take_along_axis(starts, block_begin, axis=1) + steps - block_begin) % days
        return self.series_[index]

    def _state(self) -> dict[str, np.ndarray]:
        state = {"series": self.series_, "block_len": np.array([self.block_len_])}
        state.update({f"regime_days_{k}": d for k, d in enumerate(self.regime_days_)})
        return state

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self.series_, self.block_len_ = state["series"], float(state["block_len"][0])
        self.regime_days_ = [state[f"regime_days_{k}"]
                             for k in range(len(self.spec_.regimes.names))]


# ---------------------------------------------------------------------------------------------
@register
class GaussianGenerator(Generator):
    """iid Gaussian days with the training mean and covariance: the floor every model must clear.

    A regime condition uses the mean and covariance of that regime's training days.
    """

    name = "gaussian"

    def _fit(self, data: WindowData, *, run_dir: Path | None, resume: bool) -> None:
        series = data.train.returns

        def moments(days: np.ndarray) -> np.ndarray:
            cov = np.atleast_2d(np.cov(series[days], rowvar=False))
            return np.vstack([series[days].mean(axis=0), np.linalg.cholesky(cov)])

        self.moments_ = np.stack([moments(np.arange(len(series)))] + _per_regime(data, moments))

    def _sample(self, n: int, length: int, regime: int | None,
                rng: np.random.Generator) -> np.ndarray:
        mean, chol = np.split(self.moments_[0 if regime is None else regime + 1], [1])
        return mean + rng.standard_normal((n, length, chol.shape[0])) @ chol.T

    def _state(self) -> dict[str, np.ndarray]:
        return {"moments": self.moments_}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self.moments_ = state["moments"]
