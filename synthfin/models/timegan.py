"""TimeGAN (Yoon, Jarrett and van der Schaar, NeurIPS 2019), conditional, for windows of returns.

Five recurrent networks: embedder ``e`` (x -> latent h), recovery ``r`` (h -> x, linear),
generator ``g`` (noise z and condition c -> latent), supervisor ``s`` (h_t -> h_{t+1}) and
discriminator ``d`` (latent and c -> one logit per step). A synthetic window is
``r(s(g(z, c)))``; ``c`` is a :class:`ConditionEmbedding`, repeated at every step. Training has
three phases (:class:`TimeGANTraining`); the joint phase keeps the weights with the best
held-out facts (:func:`held_out_facts`). The networks work on Lambert W gaussianized returns
with a linear recovery (a sigmoid output would cap crashes at the training extremes); the exact
inverse transform gives samples back their heavy tails. Longer paths chain windows.

The defaults fit in a few minutes on one CPU core; closer to the reference (a GPU run):
``hidden=64, layers=3, z_dim=16, lr=1e-3, batch_size=256, steps_per_epoch=200,
autoencoder_epochs=50, supervisor_epochs=25, epochs=250, patience=25``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from synthfin import distributed
from synthfin.data.conditions import WindowConditions
from synthfin.data.scaling import ReturnScaler
from synthfin.data.windows import WindowData
from synthfin.errors import ConfigError, ModelError
from synthfin.models.base import Limit, register
from synthfin.models.components import ConditionEmbedding, chain_windows, window_tensors
from synthfin.models.training import (
    BatchOrder,
    TorchConfig,
    TorchGenerator,
    TrainingLoop,
    autocast,
)
from synthfin.stats import FACTS_BY_NAME, fact_statistics
from synthfin.stats.catalogue import clustering_max_lag

logger = logging.getLogger("synthfin.models")

STABILIZERS = ("none", "spectral_norm")
TAIL_KEYS = ("mean", "std", "delta", "u_mean", "u_std")  # the Lambert W transform's state
CELLS = ("gru", "lstm")
VOL_STARTS = ("condition", "stationary")
RecurrentState = torch.Tensor | tuple[torch.Tensor, torch.Tensor]  # GRU h, or LSTM (h, c)


@dataclasses.dataclass
class TimeGANConfig(TorchConfig):
    """TimeGAN hyper-parameters; the defaults are small so a CPU fits in about a minute.

    ``epochs`` counts joint-training epochs; every phase runs ``steps_per_epoch`` steps per
    epoch (a joint step is two generator/embedder updates and one discriminator update, as one
    iteration of the reference). ``eta`` weighs ``sqrt(L_S)`` and ``moment_weight`` weighs
    ``L_V`` in the generator loss (both 100 in the reference); ``clustering_weight`` weighs
    ``L_C``, the gaps of the ACF of |x| and of the leverage curve (:func:`clustering_loss`; not in
    the reference: without it the ACF of |r| stays flat at about 0.13 on S&P 500, and without
    its leverage term the leverage gap on S&P 500 / JPM was 0.89 / 1.38 noise floors in-sample
    against 0.46 / 0.41 with it, measured); ``gamma`` weighs the losses on
    the unsupervised latent ``g(z)``. ``correlation_weight`` weighs ``L_R``, the gap of the
    same-day correlations of x and |x| between assets (:func:`correlation_loss`; 0 for one asset,
    so single-series training is unchanged; 100 like the other weights, not tuned).
    ``condition_vol`` adds the standardized log realized vol to the regime condition.
    ``stabilizer="spectral_norm"`` normalizes the discriminator's weights.
    ``carry_state``: paths longer than a window continue the recurrent states of generator,
    supervisor and recovery across each seam (False: every window starts from zeros).
    ``collapse_ratio``: warn after training when the samples' mean per-step spread is below this
    share of the data's.

    ``vol_state`` (off by default) gives the generator :class:`VolStateGenerator`: its noise
    carries ``vol_factors`` AR(1) log-volatility factors that evolve day to day and continue
    exactly across seams (with ``carry_state``), so a long path has one volatility dynamic
    instead of a level redrawn per window from the condition. ``vol_start="condition"`` (the
    default when on) lets the condition's vol set only the factors' start (so it needs
    ``condition_vol``; a regime reaches the generator through the vol drawn with it);
    ``"stationary"`` starts them from N(0, 1) and feeds the condition at every step as without
    ``vol_state``.
    Measured (``epochs=8``, window 64, 200 10-year paths; base -> ``vol_state``, condition
    start): share of the ACF-of-|r| lags 1-250 inside the real band S&P 500 0.57 -> 0.86, JPM
    0.71 -> 1.0, XOM 0.86 -> 1.0, KO 0.57 -> 1.0; ``power_law_beta`` gap 0.37 -> 0.22, 0.20 ->
    0.08, 0.32 -> 0.03, 0.22 -> 0.08. Window-64 gaps (noise floors, mean of the four, in /
    out of sample): ACF of |r| 0.29 / 0.76 -> 0.27 / 0.77, ACF of r^2 0.67 / 0.95 -> 0.57 /
    0.90, leverage 0.52 / 0.87 -> 0.60 / 0.93 (worse on all four), kurtosis about equal.
    ``"stationary"`` kept the flat long-range ACF (S&P 500 beta gap 0.36, JPM 0.19). At window
    256 (S&P 500), on short histories and on the 21-series panel: see the README. It is off by
    default because the joint phase's selection score (:meth:`TimeGAN._held_out_validator`, on
    validation windows) was worse with it on S&P 500, JPM and XOM (0.558 -> 0.629, 0.700 ->
    0.840, 1.110 -> 1.166) and better on KO (1.417 -> 1.277); turn it on for long paths.

    ``vol_scale`` (needs ``vol_state``) multiplies the returns after the inverse Lambert W
    transform by ``exp(vol_scale * l_t)``, ``l_t`` the factors' daily log-scale
    (:class:`VolScale`): the generator's latent is bounded and does not pass a crisis-sized
    volatility on to the recovery network, so without it the most volatile 1 % of S&P 500
    windows had 2.5x the median window's standard deviation against the real 4.2x (pooled
    excess kurtosis 2.6 against 8.5). Selection score (validation windows, ``epochs=8``) for
    ``vol_scale`` 0 / 0.25 / 0.5 / 1 / 1.5 / 2: S&P 500 0.629 / 0.573 / 0.547 / 0.538 / 0.553 /
    0.540, JPM 0.840 / 0.840 / 0.827 / 0.802 / 0.768 / 0.826, XOM 1.166 / 0.933 / 0.596 / 0.675
    / 0.692 / 0.855, KO 1.276 / 1.221 / 1.212 / 1.179 / 1.130 / 1.184; 1 has the best mean rank.
    With 1 on the 21-series panel (window 64, medians in noise floors, ``vol_state`` alone ->
    with ``vol_scale=1``): kurtosis gap 0.95 -> 0.55 in-sample, 1.39 -> 1.10 out of sample
    (smaller on all 21 series both ways), but the in-sample ACF of r^2 gap 0.98 -> 1.20 and of
    |r| 0.29 -> 0.42; in 10-year paths XOM's ACF of |r| falls too fast (4 of 7 lags in the real
    band, from 7). So it stays off by default; see the README.

    The noise differs from the reference on purpose: ``z_t ~ N(0, I_{z_dim})`` at every step with
    ``z_dim = 8`` by default, where the reference draws ``U(0, 1)`` with ``z_dim`` equal to the
    number of assets (1 for a single index). A centred, unbounded prior of several units per day
    gives the generator more randomness per step than one bounded draw per asset; the two
    priors were not compared in a benchmark.
    """

    hidden: int = 24
    layers: int = 1
    z_dim: int = 8
    cell: str = "gru"
    condition_dim: int = 4
    condition_vol: bool = True
    autoencoder_epochs: int = 2
    supervisor_epochs: int = 1
    epochs: int = 12
    steps_per_epoch: int = 25
    batch_size: int = 128
    lr: float = 3e-3
    patience: int = 4
    gamma: float = 1.0
    eta: float = 100.0
    moment_weight: float = 100.0
    clustering_weight: float = 100.0
    correlation_weight: float = 100.0
    carry_state: bool = True
    vol_state: bool = False
    vol_factors: int = 3
    vol_start: str = "condition"
    vol_scale: float = 0.0
    d_threshold: float = 0.15
    stabilizer: str = "none"
    validation_samples: int = 512
    collapse_ratio: float = 0.1
    # epochs may be 0 in every phase: built, untrained networks (bench_timegan times steps so)
    limits: ClassVar[dict[str, Limit]] = {
        "cell": CELLS, "stabilizer": STABILIZERS, "hidden": ">= 1", "layers": ">= 1",
        "z_dim": ">= 1", "vol_factors": ">= 1", "vol_start": VOL_STARTS,
        "condition_dim": ">= 1", "steps_per_epoch": ">= 1",
        "validation_samples": ">= 1", "autoencoder_epochs": ">= 0",
        "supervisor_epochs": ">= 0", "epochs": ">= 0", "gamma": ">= 0", "eta": ">= 0",
        "moment_weight": ">= 0", "clustering_weight": ">= 0", "collapse_ratio": ">= 0",
        "correlation_weight": ">= 0",
        "vol_scale": ">= 0"}

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.vol_state and self.vol_start == "condition" and not self.condition_vol:
            raise ConfigError("vol_start='condition' lets only the condition's vol reach the "
                              "generator, and condition_vol=False zeroes it: the samples would "
                              "ignore their condition; set condition_vol=True or "
                              "vol_start='stationary'")
        if self.vol_scale and not self.vol_state:
            raise ConfigError(f"vol_scale={self.vol_scale} scales the returns by the "
                              "generator's volatility factors, which only vol_state=True has; "
                              "set vol_state=True or vol_scale=0")

    @property
    def noise_dim(self) -> int:
        """Width of the generator's noise per day: ``z_dim``, plus ``vol_factors`` with
        ``vol_state``."""
        return self.z_dim + (self.vol_factors if self.vol_state else 0)


# ---------------------------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------------------------
class RecurrentNet(nn.Module):
    """A stacked GRU (or LSTM), then one linear map per step of ``[rnn output_t, input_t]``,
    optionally a sigmoid.

    The skip of ``input_t`` to the head lets each step's fresh input (the generator's noise, the
    current latent) reach the output without passing through the recurrent memory, which at
    initialization is a leaky average: without it, a short training generates smooth paths
    whose daily returns have a lag-1 autocorrelation near 0.9 (measured), where real ones have
    about 0.
    """

    def __init__(self, input_dim: int, hidden: int, output_dim: int, layers: int, cell: str,
                 sigmoid: bool) -> None:
        super().__init__()
        rnn = nn.GRU if cell == "gru" else nn.LSTM
        self.rnn = rnn(input_dim, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden + input_dim, output_dim)
        self.sigmoid = sigmoid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x)[0]

    def run(self, x: torch.Tensor, state: RecurrentState | None = None
            ) -> tuple[torch.Tensor, RecurrentState]:
        """The output (B, T, output_dim) from the recurrent ``state`` (zeros if None) and the
        state after the last step, from which a next window continues."""
        out, state = self.rnn(x, state)           # (B, T, hidden)
        y = self.head(torch.cat([out, x], -1))    # (B, T, output_dim)
        return (torch.sigmoid(y) if self.sigmoid else y), state


class ConditionedNet(nn.Module):
    """A :class:`RecurrentNet` whose input at every step is followed by the condition."""

    def __init__(self, input_dim: int, hidden: int, output_dim: int, layers: int, cell: str,
                 sigmoid: bool, n_regimes: int, condition_dim: int) -> None:
        super().__init__()
        self.condition = ConditionEmbedding(n_regimes, condition_dim)
        self.net = RecurrentNet(input_dim + self.condition.size, hidden, output_dim, layers,
                                cell, sigmoid)

    def forward(self, x: torch.Tensor, regime: torch.Tensor, log_vol: torch.Tensor
                ) -> torch.Tensor:
        return self.run(x, regime, log_vol)[0]

    def run(self, x: torch.Tensor, regime: torch.Tensor, log_vol: torch.Tensor,
            state: RecurrentState | None = None) -> tuple[torch.Tensor, RecurrentState]:
        """:meth:`RecurrentNet.run` on the input followed by the condition."""
        condition = self.condition(regime, log_vol)                    # (B, C)
        condition = condition[:, None, :].expand(-1, x.shape[1], -1)  # (B, T, C)
        return self.net.run(torch.cat([x, condition.to(x.dtype)], dim=-1), state)


class VolStateGenerator(nn.Module):
    r"""The generator with a stochastic-volatility state in its noise (``vol_state=True``).

    ``K`` factors follow stationary AR(1) recursions driven by extra noise ``eps``,

    .. math:: a_{k,t} = \phi_k a_{k,t-1} + \sqrt{1-\phi_k^2}\,\eta_{k,t}, \qquad
        \eta_{k,t} = \rho_k (-z_{t-1,0}) + \sqrt{1-\rho_k^2}\,\epsilon_{k,t},

    with ``phi_k = sigmoid(.)`` (initialized at time scales ``1 / (1 - phi)`` spread
    geometrically from 3.3 to 200 days) and ``rho_k = tanh(.)`` (leverage: a fall of the
    previous day's first noise raises the factors), so every ``a_{k,t}`` is N(0, 1). The
    log-scale ``l_t = sum_k w_k a_{k,t}`` (``w`` learned, initialized at 0.3) multiplies the
    return noise ``z_t``; all of it is reparameterized, so ``phi, rho, w`` train with the
    generator.

    ``start`` sets the factors on the first day of a window with no state and what the
    recurrent net reads:

    - ``"condition"``: ``a_{k,1} = u_k v + sqrt(1 - u_k^2) eps_{k,1}`` (``u_k = tanh(.)``,
      ``v`` the condition's standardized log vol), and the net reads ``[z_t exp(l_t), l_t]``
      only: the condition sets the start state, and a chained path's volatility memory is the
      carried state alone.
    - ``"stationary"``: ``a_{k,1} = eps_{k,1}``, and the net reads ``[z_t exp(l_t), l_t,
      condition]``.

    The state after the last day (recurrent state, factors, last ``z_{t,0}``) continues the
    recursion exactly in the next window.
    """

    def __init__(self, z_dim: int, hidden: int, output_dim: int, layers: int, cell: str,
                 n_regimes: int, condition_dim: int, factors: int, start: str) -> None:
        super().__init__()
        self.z_dim, self.start = z_dim, start
        self.net = (ConditionedNet(z_dim + 1, hidden, output_dim, layers, cell, True, n_regimes,
                                   condition_dim) if start == "stationary" else
                    RecurrentNet(z_dim + 1, hidden, output_dim, layers, cell, True))
        phi = 1 - 1 / torch.as_tensor(np.geomspace(10 / 3, 200, factors), dtype=torch.float32)
        self.phi_logit = nn.Parameter(torch.logit(phi))
        self.weight = nn.Parameter(torch.full((factors,), 0.3))
        self.rho_raw = nn.Parameter(torch.zeros(factors))
        if start == "condition":
            self.start_raw = nn.Parameter(torch.full((factors,), 0.5))

    @property
    def phi(self) -> torch.Tensor:
        """The factors' daily persistence, in (0, 1)."""
        return torch.sigmoid(self.phi_logit)

    def forward(self, noise: torch.Tensor, regime: torch.Tensor, log_vol: torch.Tensor
                ) -> torch.Tensor:
        return self.run(noise, regime, log_vol)[0]

    def factors(self, eps: torch.Tensor, z0: torch.Tensor, log_vol: torch.Tensor,
                state: tuple[torch.Tensor, torch.Tensor] | None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Factor paths (B, T, K) from the noises ``eps`` (B, T, K) and ``z0`` (B, T) and the
        state ``(a, z0)`` after the previous day (None: a window's start), and the end state."""
        phi, rho = self.phi, torch.tanh(self.rho_raw)
        scale, keep = torch.sqrt(1 - phi**2), torch.sqrt(1 - rho**2)
        previous_z0 = torch.cat([(torch.zeros_like(z0[:, :1]) if state is None
                                  else state[1][:, None]), z0[:, :-1]], 1)   # (B, T)
        eta = rho * -previous_z0[..., None] + keep * eps                     # (B, T, K)
        if state is not None:
            a = phi * state[0] + scale * eta[:, 0]                           # (B, K)
        elif self.start == "condition":
            u = torch.tanh(self.start_raw)
            a = u * log_vol[:, None] + torch.sqrt(1 - u**2) * eps[:, 0]
        else:
            a = eps[:, 0]
        path = [a]
        for t in range(1, eps.shape[1]):
            a = phi * a + scale * eta[:, t]
            path.append(a)
        return torch.stack(path, 1), (a, z0[:, -1])

    def log_scale(self, noise: torch.Tensor, log_vol: torch.Tensor, state: tuple | None = None
                  ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """``l_t = sum_k w_k a_{k,t}`` (B, T, 1) from ``noise`` (B, T, z_dim + K), continued
        from the generator state after the previous window (None: a window's start), and the
        factors' end state."""
        z, eps = noise[..., :self.z_dim], noise[..., self.z_dim:]
        a, factor_state = self.factors(eps.float(), z[..., 0].float(), log_vol.float(),
                                       None if state is None else state[1])
        return (a * self.weight).sum(-1, keepdim=True), factor_state

    def run(self, noise: torch.Tensor, regime: torch.Tensor, log_vol: torch.Tensor,
            state: tuple | None = None) -> tuple[torch.Tensor, tuple]:
        """The latent (B, T, output_dim) from ``noise`` (B, T, z_dim + K) under the condition,
        continued from the state after the previous window (None: a window's start), and the
        state after the last day."""
        z = noise[..., :self.z_dim]
        level, factor_state = self.log_scale(noise, log_vol, state)
        x = torch.cat([z * torch.exp(level), level], -1).to(noise.dtype)
        rnn_state = None if state is None else state[0]
        out, rnn_state = (self.net.run(x, regime, log_vol, rnn_state)
                          if isinstance(self.net, ConditionedNet) else self.net.run(x, rnn_state))
        return out, (rnn_state, factor_state)


def spectral_normalize(module: nn.Module) -> nn.Module:
    """Spectral norm on every weight matrix of the recurrent and linear layers of ``module``."""
    from torch.nn.utils.parametrizations import spectral_norm

    for layer in list(module.modules()):
        if isinstance(layer, (nn.GRU, nn.LSTM)):
            for name in [n for n, _ in layer.named_parameters(recurse=False)
                         if n.startswith("weight_")]:
                spectral_norm(layer, name=name)
        elif isinstance(layer, nn.Linear):
            spectral_norm(layer)
    return module


# ---------------------------------------------------------------------------------------------
# Losses and small helpers
# ---------------------------------------------------------------------------------------------
def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    """Mean sigmoid cross-entropy of per-step logits against a constant label."""
    return F.binary_cross_entropy_with_logits(logits.float(), torch.full_like(logits.float(),
                                                                               target))


def supervised_loss(h: torch.Tensor, h_next: torch.Tensor) -> torch.Tensor:
    """``L_S``: MSE between the latent at t+1 and the supervisor's prediction made at t."""
    return F.mse_loss(h_next[:, :-1].float(), h[:, 1:].float())


def moment_loss(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """``L_V``: mean absolute gap of the batch std and batch mean, per step and asset (the
    reference's terms), plus two of ours: the mean absolute gap of each window's log std (over
    its days) to the log std of the real window whose condition it was drawn under, and the
    Wasserstein-1 distance between the batch's pooled marginals of each asset (mean absolute gap
    of the sorted values), which carries the shape of the distribution, tails included, where
    mean and std alone do not (over 100 joint steps the tails gap fell from 2.3x to 0.8x the
    noise floor)."""
    fake, real = fake.float(), real.float()
    std_gap = (torch.sqrt(fake.var(0, unbiased=False) + 1e-6)
               - torch.sqrt(real.var(0, unbiased=False) + 1e-6)).abs().mean()
    window_std_gap = (torch.log(fake.var(1, unbiased=False) + 1e-6)
                      - torch.log(real.var(1, unbiased=False) + 1e-6)).abs().mean() / 2
    marginal_gap = (torch.sort(fake.flatten(0, 1), dim=0).values
                    - torch.sort(real.flatten(0, 1), dim=0).values).abs().mean()
    return (std_gap + (fake.mean(0) - real.mean(0)).abs().mean() + window_std_gap
            + marginal_gap)


def _standardized(x: torch.Tensor) -> torch.Tensor:
    """``x`` (B, T, A) standardized per asset over windows and days."""
    return (x - x.mean(dim=(0, 1))) / (x.std(dim=(0, 1)) + 1e-6)


def _lagged_products(a: torch.Tensor, b: torch.Tensor, max_lag: int) -> torch.Tensor:
    """Mean of ``a_t b_{t+k}`` over windows and days, k = 1..max_lag: (max_lag, A)."""
    return torch.stack([(a[:, :-lag] * b[:, lag:]).mean(dim=(0, 1))
                        for lag in range(1, max_lag + 1)])


def batch_acf(x: torch.Tensor, max_lag: int) -> torch.Tensor:
    """Autocorrelation at lags 1..max_lag of a batch of windows (B, T, A), pooled over windows
    and days after standardizing per asset: (max_lag, A)."""
    x = _standardized(x.float())
    return _lagged_products(x, x, max_lag)


def abs_acf(x: torch.Tensor, max_lag: int) -> torch.Tensor:
    """:func:`batch_acf` of ``|x|``: volatility clustering, (max_lag, A)."""
    return batch_acf(x.float().abs(), max_lag)


def batch_leverage(x: torch.Tensor, max_lag: int) -> torch.Tensor:
    """Leverage curve of a batch of windows (B, T, A): ``corr(x_t, |x_{t+k}|)`` at lags
    1..max_lag, pooled over windows and days after standardizing ``x`` and ``|x|`` per asset:
    (max_lag, A)."""
    x = x.float()
    return _lagged_products(_standardized(x), _standardized(x.abs()), max_lag)


def clustering_loss(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean absolute gap of the batch ACF of ``|x|`` (:func:`abs_acf`), of ``x``
    (:func:`batch_acf`) and of the leverage curve (:func:`batch_leverage`) at lags 1 to
    :func:`~synthfin.stats.catalogue.clustering_max_lag` between generated and real windows:
    volatility clustering, which the adversarial and moment losses leave flat (about 0.13 at
    every lag, measured), without the linear autocorrelation that matching ``|x|`` alone brings
    in, and the leverage effect (falls raise later volatility)."""
    max_lag = min(clustering_max_lag(real.shape[1]), real.shape[1] - 1)
    return ((abs_acf(fake, max_lag) - abs_acf(real, max_lag)).abs().mean()
            + (batch_acf(fake, max_lag) - batch_acf(real, max_lag)).abs().mean()
            + (batch_leverage(fake, max_lag) - batch_leverage(real, max_lag)).abs().mean())


def batch_correlation(x: torch.Tensor) -> torch.Tensor:
    """Same-day correlation matrix of a batch of windows (B, T, A), pooled over windows and
    days: (A, A)."""
    days = _standardized(x.float()).flatten(0, 1)               # (B T, A)
    return days.T @ days / len(days)


def correlation_loss(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """``L_R``: mean absolute gap of the off-diagonal same-day correlations of ``x`` and of
    ``|x|`` (co-movement of returns and of volatility) between generated and real batches
    (B, T, A); exactly 0 for one asset. Not in the reference: without it nothing in the losses
    sees the cross-section, and the assets collapse onto one (correlation .999 on five equity
    funds, issue 29)."""
    assets = real.shape[-1]
    if assets < 2:
        return real.new_zeros(())
    upper = torch.triu_indices(assets, assets, offset=1, device=real.device)
    gap = 0.0
    for transform in (torch.as_tensor, torch.abs):
        difference = batch_correlation(transform(fake)) - batch_correlation(transform(real))
        gap = gap + difference[upper[0], upper[1]].abs().mean()
    return gap


def lambertw(x: torch.Tensor, iterations: int = 6) -> torch.Tensor:
    """Principal branch ``W(x)`` for ``x >= 0`` by Halley's iterations from ``log(1 + x)``
    (differentiable; six iterations agree with :func:`scipy.special.lambertw` to float32
    precision)."""
    w = torch.log1p(x)
    for _ in range(iterations):
        e = torch.exp(w)
        f = w * e - x
        w = w - f / (e * (w + 1) - (w + 2) * f / (2 * w + 2))
    return w


class VolScale:
    r"""``vol_scale = gamma > 0``: the generator's log-volatility ``l_t`` also scales the returns
    after the inverse Lambert W transform, :math:`z_t \to z_t e^{\gamma l_t}`.

    Inside the networks' gaussianized space a scale is stretched exponentially by the inverse
    transform (a scale learned there gave S&P 500 an excess kurtosis of 26); applied to the
    standardized returns ``z = heavify(y)`` it is a plain stochastic-volatility factor, and the
    losses see it gaussianized again, ``y' = gaussianize(heavify(y) e^{gamma l})``.
    """

    def __init__(self, tails: ReturnScaler, gamma: float, device: torch.device) -> None:
        self.tails, self.gamma = tails, gamma
        self.delta, self.u_mean, self.u_std = (
            torch.as_tensor(getattr(tails, key), dtype=torch.float32, device=device)
            for key in ("delta_", "u_mean_", "u_std_"))

    def network(self, y: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        """Scaled network-space values ``y'`` (B, T, A) from ``y`` and ``l`` (B, T, 1)."""
        u = y.float() * self.u_std + self.u_mean
        z = u * torch.exp(self.delta * u**2 / 2) * torch.exp(self.gamma * level)
        u = z * torch.exp(-lambertw(self.delta * z**2) / 2)
        return (u - self.u_mean) / self.u_std

    def returns(self, y: np.ndarray, level: np.ndarray) -> np.ndarray:
        """The inverse transform of ``y`` (n, T, A) with its standardized part multiplied by
        ``exp(gamma l)`` (``l``: n, T, 1)."""
        mean = self.tails.mean_
        return mean + (self.tails.inverse(y) - mean) * np.exp(self.gamma * level)


def gated_step(optimizer: torch.optim.Optimizer, gate: torch.Tensor) -> None:
    """``optimizer.step()`` kept where the 0-d bool ``gate`` is true, undone otherwise.

    Weights and optimizer state are snapshot before the step and selected after it with
    ``torch.where``: the decision stays on the device (no host sync per step).
    """
    params = [p for group in optimizer.param_groups for p in group["params"]
              if p.grad is not None]
    before = [p.detach().clone() for p in params]
    state_before = [{k: v.clone() for k, v in optimizer.state[p].items()
                     if torch.is_tensor(v)} for p in params]
    optimizer.step()
    with torch.no_grad():
        for p, old, old_state in zip(params, before, state_before, strict=True):
            p.copy_(torch.where(gate, p, old))
            for key, value in optimizer.state[p].items():
                if torch.is_tensor(value):  # first step: the state did not exist, i.e. zeros
                    previous = old_state.get(key, torch.zeros_like(value))
                    value.copy_(torch.where(gate.to(value.device), value, previous))


SELECTION_FACTS = tuple(FACTS_BY_NAME[name] for name in ("acf_r", "acf_abs", "leverage", "tails",
                                                           "vol_level"))


def held_out_facts(windows: np.ndarray) -> np.ndarray:
    """The validation signal: the catalogue's ACF of r and of |r|, leverage, tail quantiles and
    volatility level (the quantiles alone are blind to scale) of windows (n, length, assets),
    and for several assets their cross-correlations, concatenated."""
    return np.concatenate(list(fact_statistics(windows, SELECTION_FACTS).values()))


# ---------------------------------------------------------------------------------------------
# Training: one method per phase
# ---------------------------------------------------------------------------------------------
class TimeGANTraining:
    """The optimizers and one step method per phase (Yoon et al. and their reference code), on
    shuffled batches of the training windows ``x`` with their conditions.

    1. :meth:`autoencoder`: ``e, r`` minimize ``10 sqrt(MSE(x, r(e(x))))``.
    2. :meth:`supervisor`: ``s`` minimizes ``L_S = MSE(h_{2:T}, s(h)_{1:T-1})`` on real latents.
    3. :meth:`joint`: twice a generator and an embedder update, then one discriminator update.
    """

    def __init__(self, modules: dict[str, nn.Module], config: TimeGANConfig,
                 device: torch.device, x: torch.Tensor, regime: torch.Tensor,
                 log_vol: torch.Tensor, vol_scale: VolScale | None = None) -> None:
        self.m, self.config, self.device, self.vol_scale = modules, config, device, vol_scale
        self.x, self.regime, self.log_vol = x, regime, log_vol
        self.order = BatchOrder(len(x), config.batch_size, config.seed)
        self.noise = torch.Generator(device).manual_seed(config.seed + 1)
        self.z_shape = (min(config.batch_size, len(x)), x.shape[1], config.noise_dim)
        self.optimizers = {"autoencoder": self._adam("embedder", "recovery"),
                           "supervisor": self._adam("supervisor"),
                           "generator": self._adam("generator", "supervisor"),
                           "embedder": self._adam("embedder", "recovery"),
                           "discriminator": self._adam("discriminator")}

    @property
    def steps(self) -> dict[str, Callable[[], dict[str, torch.Tensor]]]:
        """Phase name -> one optimization step returning its detached losses."""
        return {"autoencoder": self.autoencoder, "supervisor": self.supervisor,
                "joint": self.joint}

    # -- the phases -----------------------------------------------------------------------------
    def autoencoder(self) -> dict[str, torch.Tensor]:
        x = self._batch()[0]
        self._trainable("embedder", "recovery")
        with autocast(self.device):
            _, loss = self._reconstruction(x)
        self._update("autoencoder", loss)
        return {"recon": loss.detach() / 10}  # RMSE in scaled-return units

    def supervisor(self) -> dict[str, torch.Tensor]:
        x = self._batch()[0]
        self._trainable("supervisor")
        with autocast(self.device):
            with torch.no_grad():
                h = self.m["embedder"](x)
            loss = supervised_loss(h, self.m["supervisor"](h))
        self._update("supervisor", loss)
        return {"supervised": loss.detach()}

    def joint(self) -> dict[str, torch.Tensor]:
        losses: dict[str, torch.Tensor] = {}
        for _ in range(2):  # the generator moves twice per discriminator move
            x, regime, log_vol, z = self._batch()
            for key, value in self._generator_update(x, regime, log_vol, z).items():
                losses[key] = losses.get(key, 0) + value / 2
            losses["e_recon"] = losses.get("e_recon", 0) + self._embedder_update(x) / 2
        losses["d_loss"], losses["d_updated"] = self._discriminator_update()
        return losses

    # -- the joint phase's updates --------------------------------------------------------------
    def _generator_update(self, x: torch.Tensor, regime: torch.Tensor, log_vol: torch.Tensor,
                          z: torch.Tensor) -> dict[str, torch.Tensor]:
        """``g, s`` minimize ``L_U + gamma L_U,e + eta sqrt(L_S) + moment_weight L_V +
        clustering_weight L_C + correlation_weight L_R``, with the
        non-saturating ``L_U = -E log D(s(g(z)))``, ``L_U,e = -E log D(g(z))`` and the moment
        loss ``L_V`` (:func:`moment_loss`), ``L_C`` (:func:`clustering_loss`), ``L_R``
        (:func:`correlation_loss`)."""
        m, cfg = self.m, self.config
        self._trainable("generator", "supervisor")
        batch_size = len(x)
        with autocast(self.device):
            with torch.no_grad():
                h = m["embedder"](x)                              # (B, T, H)
            e_hat = m["generator"](z, regime, log_vol)            # (B, T, H)
            # one pass of each shared network over stacked batches (fewer recurrent loops)
            h_hat, h_next = m["supervisor"](torch.cat([e_hat, h])).split(batch_size)
            x_hat = m["recovery"](h_hat)                          # (B, T, A)
            if self.vol_scale is not None:
                x_hat = self.vol_scale.network(x_hat, m["generator"].log_scale(z, log_vol)[0])
            logits = m["discriminator"](torch.cat([h_hat, e_hat]), regime.repeat(2),
                                        log_vol.repeat(2))        # (2B, T, 1)
            adversarial, adversarial_e = (bce(part, 1.0) for part in logits.split(batch_size))
            supervised = supervised_loss(h, h_next)
            moments = moment_loss(x_hat, x)
            clustering = clustering_loss(x_hat, x)
            loss = (adversarial + cfg.gamma * adversarial_e
                    + cfg.eta * torch.sqrt(supervised) + cfg.moment_weight * moments
                    + cfg.clustering_weight * clustering)
            if x.shape[-1] > 1:  # one asset: no term at all, the same arithmetic as before
                correlation = correlation_loss(x_hat, x)
                loss = loss + cfg.correlation_weight * correlation
        self._update("generator", loss)
        return {"g_adversarial": adversarial.detach(), "g_supervised": supervised.detach(),
                "g_moments": moments.detach(), "g_clustering": clustering.detach(),
                **({"g_correlation": correlation.detach()} if x.shape[-1] > 1 else {}),
                "g_total": loss.detach()}

    def _embedder_update(self, x: torch.Tensor) -> torch.Tensor:
        """``e, r`` minimize ``10 sqrt(MSE(x, r(e(x)))) + 0.1 L_S``; returns the RMSE."""
        self._trainable("embedder", "recovery")
        with autocast(self.device):
            h, recon = self._reconstruction(x)
            loss = recon + 0.1 * supervised_loss(h, self.m["supervisor"](h))
        self._update("embedder", loss)
        return recon.detach() / 10

    def _discriminator_update(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``d`` minimizes ``L_D = -E log D(h) - E log(1 - D(s(g(z)))) - gamma E log(1 -
        D(g(z)))``, kept only when ``L_D > d_threshold`` (a winning discriminator is not pushed
        further; the test stays on the device, :func:`gated_step`). Returns ``L_D`` and 0/1."""
        m = self.m
        x, regime, log_vol, z = self._batch()
        self._trainable("discriminator")
        with autocast(self.device):
            with torch.no_grad():
                h = m["embedder"](x)                              # (B, T, H)
                e_hat = m["generator"](z, regime, log_vol)
                h_hat = m["supervisor"](e_hat)
            logits = m["discriminator"](torch.cat([h, h_hat, e_hat]), regime.repeat(3),
                                        log_vol.repeat(3))        # (3B, T, 1)
            real, fake, fake_e = logits.split(len(x))
            loss = bce(real, 1.0) + bce(fake, 0.0) + self.config.gamma * bce(fake_e, 0.0)
        optimizer = self.optimizers["discriminator"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        gate = distributed.batch_mean(loss.detach()) > self.config.d_threshold
        gated_step(optimizer, gate)
        return loss.detach(), gate.float()

    # -- helpers ------------------------------------------------------------------------------
    def _batch(self) -> tuple[torch.Tensor, ...]:
        """Windows, regimes, log vols of the next batch, and fresh noise z (B, T, Z)."""
        index = next(self.order).to(self.device)
        return (self.x[index], self.regime[index], self.log_vol[index],
                distributed.local_slice(torch.randn(self.z_shape, generator=self.noise,
                                                    device=self.device)))

    def _adam(self, *names: str) -> torch.optim.Optimizer:
        params = [p for name in names for p in self.m[name].parameters()]
        return torch.optim.Adam(params, lr=self.config.lr,
                                capturable=self.device.type == "cuda")

    def _trainable(self, *names: str) -> None:
        for name, module in self.m.items():
            module.requires_grad_(name in names)

    def _reconstruction(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.m["embedder"](x)                                 # (B, T, H)
        return h, 10 * torch.sqrt(F.mse_loss(self.m["recovery"](h).float(), x))

    def _update(self, optimizer: str, loss: torch.Tensor) -> None:
        self.optimizers[optimizer].zero_grad(set_to_none=True)
        loss.backward()
        self.optimizers[optimizer].step()


# ---------------------------------------------------------------------------------------------
# The generator
# ---------------------------------------------------------------------------------------------
@register
class TimeGAN(TorchGenerator):
    """Conditional TimeGAN; see the module docstring and :class:`TimeGANTraining`.

    After :meth:`fit`, ``history_`` holds one row of losses per phase and epoch and
    ``diversity_`` the samples' mean per-step spread relative to the training windows' (about 1
    is healthy; near 0 is mode collapse and warns).
    """

    name = "timegan"
    config_class = TimeGANConfig
    config: TimeGANConfig

    # -- networks ------------------------------------------------------------------------------
    def _build(self) -> dict[str, nn.Module]:
        cfg, spec = self.config, self._spec()
        assets, regimes = len(spec.assets), len(spec.regimes.names)
        hidden, layers, cell = cfg.hidden, cfg.layers, cfg.cell
        discriminator = ConditionedNet(hidden, hidden, 1, layers, cell, False, regimes,
                                       cfg.condition_dim)
        if cfg.stabilizer == "spectral_norm":
            spectral_normalize(discriminator.net)
        return {
            "embedder": RecurrentNet(assets, hidden, hidden, layers, cell, True),
            "recovery": RecurrentNet(hidden, hidden, assets, layers, cell, False),
            "generator": (VolStateGenerator(cfg.z_dim, hidden, hidden, layers, cell, regimes,
                                            cfg.condition_dim, cfg.vol_factors, cfg.vol_start)
                          if cfg.vol_state else
                          ConditionedNet(cfg.z_dim, hidden, hidden, layers, cell, True, regimes,
                                         cfg.condition_dim)),
            "supervisor": RecurrentNet(hidden, hidden, hidden, max(1, layers - 1), cell, True),
            "discriminator": discriminator,
        }

    # -- conditions ----------------------------------------------------------------------------
    def _condition_vol(self, realized_vol: np.ndarray) -> np.ndarray:
        """The standardized log vol the networks read (zeros when ``condition_vol`` is off)."""
        if not self.config.condition_vol:
            return np.zeros(len(realized_vol))
        return self.conditions_.standardize(realized_vol)

    # -- training ------------------------------------------------------------------------------
    def training_steps(self, data: WindowData) -> TimeGANTraining:
        """Fresh optimizers and the step of each phase on ``data.train``, for this fitted
        model's networks (a model fitted with zero epochs in every phase has untrained ones; the
        benchmark times the steps that way)."""
        self._spec()
        x, regime, log_vol = window_tensors(self.tails_.transform(data.train.windows),
                                            data.train.regimes,
                                            self._condition_vol(data.train.realized_vol),
                                            self.device_)
        return TimeGANTraining(self.modules_, self.config, self.device_, x, regime, log_vol,
                               self._vol_scale())

    def _vol_scale(self) -> VolScale | None:
        if not self.config.vol_scale:
            return None
        return VolScale(self.tails_, self.config.vol_scale, self.device_)

    def _train(self, data: WindowData, run_dir: Path | None, resume: bool) -> None:
        cfg = self.config
        if data.train.windows.shape[1] < 2:
            raise ModelError("timegan needs windows of at least 2 days")
        # unconditional samples draw training (regime, vol) pairs, so regimes come at their
        # training frequencies; the networks work behind the training days' Lambert W transform
        self.conditions_ = WindowConditions(data.train.regimes, data.train.realized_vol)
        self.tails_ = ReturnScaler(gaussianize=True).fit(data.train.returns)
        training = self.training_steps(data)
        loop = TrainingLoop(self.modules_, training.optimizers, run_dir=run_dir, resume=resume,
                            progress=cfg.progress,
                            streams={"order": training.order, "noise": training.noise})
        loop.run("autoencoder", cfg.autoencoder_epochs, training.autoencoder,
                 cfg.steps_per_epoch)
        loop.run("supervisor", cfg.supervisor_epochs, training.supervisor, cfg.steps_per_epoch)
        loop.run("joint", cfg.epochs, training.joint, cfg.steps_per_epoch,
                 validate=self._held_out_validator(data), patience=cfg.patience)
        for module in self.modules_.values():
            module.requires_grad_(True)
        self.history_ = loop.history
        self._check_diversity(data)

    def _held_out_validator(self, data: WindowData) -> Callable[[], float]:
        """Lower is better: L2 gap of :func:`held_out_facts` of a fixed set of samples, drawn
        under the validation windows' conditions, to those of the validation windows."""
        rng = np.random.default_rng(self.config.seed)
        pick = rng.choice(len(data.val), size=self.config.validation_samples)
        regimes = data.val.regimes[pick]
        log_vol = self._condition_vol(data.val.realized_vol[pick])
        reference = held_out_facts(data.val.windows)
        seed = int(rng.integers(2**62))

        def validate() -> float:
            samples, _ = self._generate(regimes, log_vol, torch.Generator(self.device_)
                                        .manual_seed(seed))
            for module in self.modules_.values():
                module.train()
            gap = held_out_facts(samples) - reference
            return float(np.sqrt(np.sum(gap**2))) if np.isfinite(gap).all() else math.nan

        return validate

    def _check_diversity(self, data: WindowData) -> None:
        samples = self.sample(min(512, 4 * len(data.train)), seed=self.config.seed)
        spread = samples.std(axis=0).mean()
        self.diversity_ = float(spread / data.train.windows.std(axis=0).mean())
        logger.info("timegan sample diversity: %.3f of the data's", self.diversity_)
        if self.diversity_ < self.config.collapse_ratio:
            warnings.warn(f"timegan looks collapsed: the samples' per-step spread is "
                          f"{self.diversity_:.3f} of the data's; train longer, lower lr or use "
                          "stabilizer='spectral_norm'", RuntimeWarning, stacklevel=3)

    # -- sampling ------------------------------------------------------------------------------
    @torch.no_grad()
    def _generate(self, regimes: np.ndarray, log_vol: np.ndarray, noise: torch.Generator,
                  carry: list | None = None, chunk: int = 4096) -> tuple[np.ndarray, list]:
        """One window per condition, scaled returns (n, window_len, assets), continued from
        ``carry`` (per chunk of windows, the recurrent states of generator, supervisor and
        recovery after the previous window; None starts from zeros), and the end carry."""
        m, device = self.modules_, self.device_
        for module in m.values():
            module.eval()
        shape = (self._spec().window_len, self.config.noise_dim)
        vol_scale = self._vol_scale()
        out, levels, end = [], [], []
        for k, lo in enumerate(range(0, len(regimes), chunk)):
            regime = torch.as_tensor(regimes[lo:lo + chunk], dtype=torch.long, device=device)
            vol = torch.as_tensor(log_vol[lo:lo + chunk], dtype=torch.float32, device=device)
            z = torch.randn((len(regime), *shape), generator=noise, device=device)  # (B, T, Z)
            g, s, r = (None, None, None) if carry is None else carry[k]
            if vol_scale is not None:
                levels.append(m["generator"].log_scale(z, vol, g)[0].cpu().numpy())
            with autocast(device):
                e_hat, g = m["generator"].run(z, regime, vol, g)
                h_hat, s = m["supervisor"].run(e_hat, s)
                x_hat, r = m["recovery"].run(h_hat, r)
            out.append(x_hat.float().cpu().numpy())
            end.append((g, s, r))
        y = np.concatenate(out).astype(np.float64)
        if vol_scale is not None:
            return vol_scale.returns(y, np.concatenate(levels).astype(np.float64)), end
        return self.tails_.inverse(y), end

    def _sample(self, n: int, length: int, regime: int | None,
                rng: np.random.Generator) -> np.ndarray:
        regimes, vols = self.conditions_.draw(n, regime, rng)
        noise = self._torch_generator(rng)

        def window(regimes: np.ndarray, vols: np.ndarray, carry: list | None
                   ) -> tuple[np.ndarray, list]:
            return self._generate(regimes, self._condition_vol(vols), noise,
                                  carry if self.config.carry_state else None)

        return chain_windows(self._spec(), window, regimes, vols, length)

    # -- state ---------------------------------------------------------------------------------
    def _state(self) -> dict[str, np.ndarray]:
        tails = self.tails_.to_dict()
        return {**super()._state(), **self.conditions_.to_arrays(),
                "conditions.tails": np.stack([np.asarray(tails[key]) for key in TAIL_KEYS])}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        super()._load_state({k: v for k, v in state.items() if not k.startswith("conditions.")})
        self.conditions_ = WindowConditions.from_arrays(state)
        self.tails_ = ReturnScaler.from_dict({"gaussianize": True, **dict(zip(
            TAIL_KEYS, state["conditions.tails"], strict=True))})
