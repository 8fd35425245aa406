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
from synthfin.errors import ModelError
from synthfin.models.base import Limit, register
from synthfin.models.components import (
    ConditionEmbedding,
    WindowContinuation,
    WindowSampler,
    chain_windows,
    lagged_correlation,
    standardized,
    window_tensors,
)
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
GENERATE_CHUNK = 4096  # windows per forward pass when sampling
RecurrentState = torch.Tensor | tuple[torch.Tensor, torch.Tensor]  # GRU h, or LSTM (h, c)


@dataclasses.dataclass
class TimeGANConfig(TorchConfig):
    """TimeGAN hyper-parameters; small defaults, so a CPU fits in about a minute. Measured
    reasons for the choices: ``pipelines/MODELS.md``.

    - ``hidden``, ``layers``, ``cell``: width, depth and cell (GRU or LSTM) of every network.
    - ``z_dim``: generator noise per day, ``z_t ~ N(0, I_{z_dim})`` (the reference: U(0, 1)).
    - ``condition_dim``: width of the regime embedding in the condition.
    - ``condition_vol``: add the standardized log realized vol to the condition.
    - ``epochs``: joint epochs; every phase runs ``steps_per_epoch`` steps per epoch.
    - ``gamma``: weight of the losses on the unsupervised latent ``g(z)``.
    - ``eta``, ``moment_weight``: weights of ``sqrt(L_S)`` and of ``L_V`` (:func:`moment_loss`).
    - ``clustering_weight``: weight of ``L_C`` (:func:`clustering_loss`).
    - ``correlation_weight``: weight of ``L_R`` (:func:`correlation_loss`; 0 for one asset).
    - ``carry_state``: long paths continue the recurrent states across each seam.
    - ``d_threshold``: keep a discriminator step only while ``L_D`` exceeds it.
    - ``stabilizer``: ``"spectral_norm"`` normalizes the discriminator's weights.
    - ``validation_samples``: samples behind the joint phase's selection score.
    - ``collapse_ratio``: warn when the samples' per-step spread is below this share of the data's.
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
    d_threshold: float = 0.15
    stabilizer: str = "none"
    validation_samples: int = 512
    collapse_ratio: float = 0.1
    # epochs may be 0 in every phase: built, untrained networks (bench_timegan times steps so)
    limits: ClassVar[dict[str, Limit]] = {
        "cell": CELLS, "stabilizer": STABILIZERS, "hidden": ">= 1", "layers": ">= 1",
        "z_dim": ">= 1", "condition_dim": ">= 1", "steps_per_epoch": ">= 1",
        "validation_samples": ">= 1", "autoencoder_epochs": ">= 0",
        "supervisor_epochs": ">= 0", "epochs": ">= 0", "gamma": ">= 0", "eta": ">= 0",
        "moment_weight": ">= 0", "clustering_weight": ">= 0", "collapse_ratio": ">= 0",
        "correlation_weight": ">= 0"}


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
    mean and std alone do not."""
    fake, real = fake.float(), real.float()
    std_gap = (torch.sqrt(fake.var(0, unbiased=False) + 1e-6)
               - torch.sqrt(real.var(0, unbiased=False) + 1e-6)).abs().mean()
    window_std_gap = (torch.log(fake.var(1, unbiased=False) + 1e-6)
                      - torch.log(real.var(1, unbiased=False) + 1e-6)).abs().mean() / 2
    marginal_gap = (torch.sort(fake.flatten(0, 1), dim=0).values
                    - torch.sort(real.flatten(0, 1), dim=0).values).abs().mean()
    return (std_gap + (fake.mean(0) - real.mean(0)).abs().mean() + window_std_gap
            + marginal_gap)


def clustering_loss(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean absolute gaps between generated and real windows of three curves of
    :func:`~synthfin.models.components.lagged_correlation` at lags 1 to
    :func:`~synthfin.stats.catalogue.clustering_max_lag`: ACF of ``|x|`` (volatility
    clustering, which the adversarial and moment losses leave flat), ACF of ``x`` (so matching
    ``|x|`` brings in no linear autocorrelation) and leverage, ``corr(x_t, |x_{t+k}|)``."""
    max_lag = min(clustering_max_lag(real.shape[1]), real.shape[1] - 1)

    def gap(curve: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        return (curve(fake.float()) - curve(real.float())).abs().mean()

    return (gap(lambda x: lagged_correlation(x.abs(), max_lag))
            + gap(lambda x: lagged_correlation(x, max_lag))
            + gap(lambda x: lagged_correlation(x, max_lag, torch.abs)))


def batch_correlation(x: torch.Tensor) -> torch.Tensor:
    """Same-day correlation matrix of a batch of windows (B, T, A), pooled over windows and
    days: (A, A)."""
    days = standardized(x.float()).flatten(0, 1)               # (B T, A)
    return days.T @ days / len(days)


def correlation_loss(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """``L_R``: mean absolute gap of the off-diagonal same-day correlations of ``x`` and of
    ``|x|`` (co-movement of returns and of volatility) between generated and real batches
    (B, T, A); exactly 0 for one asset. Not in the reference: without it nothing in the losses
    sees the cross-section."""
    assets = real.shape[-1]
    if assets < 2:
        return real.new_zeros(())
    upper = torch.triu_indices(assets, assets, offset=1, device=real.device)
    gap = 0.0
    for transform in (torch.as_tensor, torch.abs):
        difference = batch_correlation(transform(fake)) - batch_correlation(transform(real))
        gap = gap + difference[upper[0], upper[1]].abs().mean()
    return gap


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
                 log_vol: torch.Tensor) -> None:
        self.m, self.config, self.device = modules, config, device
        self.x, self.regime, self.log_vol = x, regime, log_vol
        self.order = BatchOrder(len(x), config.batch_size, config.seed)
        self.noise = torch.Generator(device).manual_seed(config.seed + 1)
        self.z_shape = (min(config.batch_size, len(x)), x.shape[1], config.z_dim)
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
class TimeGAN(WindowContinuation, TorchGenerator):
    """Conditional TimeGAN; see the module docstring and :class:`TimeGANTraining`;
    :meth:`sample_after` continues a history (:meth:`_context_state`).

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
            "generator": ConditionedNet(cfg.z_dim, hidden, hidden, layers, cell, True, regimes,
                                        cfg.condition_dim),
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
        return TimeGANTraining(self.modules_, self.config, self.device_, x, regime, log_vol)

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
                  carry: list | None = None, chunk: int = GENERATE_CHUNK
                  ) -> tuple[np.ndarray, list]:
        """One window per condition, scaled returns (n, window_len, assets), continued from
        ``carry`` (per chunk of windows, the recurrent states of generator, supervisor and
        recovery after the previous window; None starts from zeros), and the end carry."""
        m, device = self.modules_, self.device_
        for module in m.values():
            module.eval()
        shape = (self._spec().window_len, self.config.z_dim)
        out, end = [], []
        for k, lo in enumerate(range(0, len(regimes), chunk)):
            regime = torch.as_tensor(regimes[lo:lo + chunk], dtype=torch.long, device=device)
            vol = torch.as_tensor(log_vol[lo:lo + chunk], dtype=torch.float32, device=device)
            z = torch.randn((len(regime), *shape), generator=noise, device=device)  # (B, T, Z)
            g, s, r = (None, None, None) if carry is None else carry[k]
            with autocast(device):
                e_hat, g = m["generator"].run(z, regime, vol, g)
                h_hat, s = m["supervisor"].run(e_hat, s)
                x_hat, r = m["recovery"].run(h_hat, r)
            out.append(x_hat.float().cpu().numpy())
            end.append((g, s, r))
        return self.tails_.inverse(np.concatenate(out).astype(np.float64)), end

    @property
    def context_days(self) -> int:
        """Days of history :meth:`sample_after` reads: the last window (read by the embedder;
        its last ``vol_lookback`` days give the first new window's condition)."""
        return self._spec().window_len

    @torch.no_grad()
    def _context_state(self, window: np.ndarray, chunk: int = GENERATE_CHUNK) -> list:
        """The carry of :meth:`_generate` (per chunk of paths) after real windows (n, days,
        assets) of scaled returns: the embedder reads them, the supervisor and recovery start
        from the states their latents leave; the generator starts afresh (its noise has no
        inverse)."""
        m, device = self.modules_, self.device_
        for module in m.values():
            module.eval()
        x = self.tails_.transform(window)
        end = []
        for lo in range(0, len(x), chunk):
            days = torch.as_tensor(x[lo:lo + chunk], dtype=torch.float32, device=device)
            with autocast(device):
                h, _ = m["embedder"].run(days)
                _, s = m["supervisor"].run(h)
                _, r = m["recovery"].run(h)
            end.append((None, s, r))
        return end

    def _window_sampler(self, rng: np.random.Generator) -> WindowSampler:
        noise = self._torch_generator(rng)

        def window(regimes: np.ndarray, vols: np.ndarray, carry: list | None
                   ) -> tuple[np.ndarray, list]:
            return self._generate(regimes, self._condition_vol(vols), noise,
                                  carry if self.config.carry_state else None)

        return window

    def _sample(self, n: int, length: int, regime: int | None,
                rng: np.random.Generator) -> np.ndarray:
        regimes, vols = self.conditions_.draw(n, regime, rng)
        return chain_windows(self._spec(), self._window_sampler(rng), regimes, vols, length)

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
