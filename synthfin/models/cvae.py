"""Conditional variational autoencoder for windows of returns: config, networks, the ELBO, the
generator, in that order.

``p(x | c) = ∫ p_θ(x | z, c) p(z) dz`` with one latent ``z ~ N(0, I)`` per window and the
condition ``c`` (:class:`ConditionEmbedding`). The decoder is autoregressive inside the window,
``p_θ(x | z, c) = Π_t p_θ(x_t | x_<t, z, c)``, Student-t (default) or Gaussian, so
clustering and leverage inside a window come from the decoder and its vol level from ``z`` and
``c``. With several assets each day is one multivariate Student-t (or Gaussian) draw of
low-rank-plus-diagonal scale matrix ``L_t L_t^T + diag(d_t^2)`` read from the decoder state, whose
single chi-square mixing variable is shared by all assets (:func:`joint_log_likelihood`): same-day
correlation, its change with the state and tail co-movement are learned. Encoder and decoder
are GRUs or dilated convolutions (``network``). Longer paths chain windows (:func:`chain_windows`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from synthfin.data.conditions import WindowConditions
from synthfin.data.windows import WindowData, WindowSplit
from synthfin.errors import ConfigError, ModelError
from synthfin.models.base import Limit, register
from synthfin.models.components import (
    ConditionEmbedding,
    WindowContinuation,
    WindowSampler,
    chain_windows,
    ewma_mean_squares,
    student_t_log_prob,
    update_mean_squares,
    window_tensors,
)
from synthfin.models.pooling import pretraining
from synthfin.models.training import (
    BatchOrder,
    TorchConfig,
    TorchGenerator,
    TrainingLoop,
    autocast,
    logger,
)
from synthfin.stats.volatility import span_weights

NETWORKS = ("gru", "tcn")
LIKELIHOODS = ("studentt", "gaussian")
ACTIVE_UNIT_THRESHOLD = 0.01  # Burda et al. (2016): Cov_x(E_q[z_d | x]) above this is active
MIN_SCALE = 1e-3              # floor of the decoder scale (scaled returns have unit std)
SAMPLE_CHUNK = 4096           # windows decoded at once when sampling
PRETRAIN_STEPS_PER_EPOCH = 100  # steps of a pooled pretraining epoch (then a validation)
AUTO_PRETRAIN_EPOCHS = 10     # on a short history by default (pipelines/MODELS.md, cvae)
VOL_SPANS = (5, 21, 63)       # days of the mean squares the decoder reads with vol_inputs
VOL_ALPHAS = span_weights(VOL_SPANS)


@dataclasses.dataclass
class CVAEConfig(TorchConfig):
    """Conditional VAE settings (on top of :class:`TorchConfig`: device, epochs, lr, ...).

    - ``network``: sequence model of encoder and decoder, ``"gru"`` or ``"tcn"`` (dilated convs).
    - ``hidden``, ``latent_dim``, ``regime_embedding``: widths of the networks, ``z``, the regime.
    - ``likelihood``: the decoder's day density, ``"studentt"`` (learned dfs) or ``"gaussian"``.
    - ``beta``: weight of the KL term after the warm-up (1 is the ELBO).
    - ``warmup_epochs``: the KL weight grows linearly from 0 to ``beta`` (:func:`kl_weight`).
    - ``free_bits``: nats per latent dimension not penalized (against posterior collapse).
    - ``grad_clip``: gradient norm clip.
    - ``pretrain_epochs``: pooled pretraining epochs (:func:`~synthfin.models.pooling.pretraining`).
    - ``carry_state``: longer paths carry the decoder state and last day across window seams.
    - ``joint_rank``: rank of the day's joint noise loadings (:func:`joint_log_likelihood`).
    - ``vol_inputs``: the GRU decoder also reads slow mean squares (:class:`GRUDecoder`).
    """

    network: str = "gru"
    hidden: int = 32
    latent_dim: int = 8
    regime_embedding: int = 4
    likelihood: str = "studentt"
    beta: float = 1.0
    warmup_epochs: int = 5
    free_bits: float = 0.1
    grad_clip: float = 5.0
    pretrain_epochs: int | None = None
    carry_state: bool = True
    joint_rank: int = 2
    vol_inputs: bool = False
    epochs: int = 40
    batch_size: int = 128
    lr: float = 2e-3
    patience: int = 8
    limits: ClassVar[dict[str, Limit]] = {
        "network": NETWORKS, "likelihood": LIKELIHOODS, "hidden": ">= 1", "latent_dim": ">= 1",
        "regime_embedding": ">= 0", "beta": ">= 0", "warmup_epochs": ">= 0",
        "free_bits": ">= 0", "grad_clip": "> 0", "pretrain_epochs": ">= 0",
        "joint_rank": ">= 0"}

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.vol_inputs and self.network != "gru":
            raise ConfigError(f"vol_inputs=True needs network='gru', got {self.network!r}; "
                              "set vol_inputs=False for the TCN")


# -- networks -------------------------------------------------------------------------------------
class ConvStack(nn.Module):
    """Residual dilated 1-d convolutions (kernel 3, dilations 1, 2, 4, ...) covering ``length``
    days; ``causal`` pads on the left only, so output ``t`` sees inputs ``<= t``."""

    def __init__(self, width: int, length: int, causal: bool) -> None:
        super().__init__()
        layers = max(1, math.ceil(math.log2(max(length, 2))))  # receptive field 2^(layers+1)-1
        self.dilations = [2**k for k in range(layers)]
        self.causal = causal
        self.convs = nn.ModuleList(nn.Conv1d(width, width, 3, dilation=d) for d in self.dilations)

    def forward(self, h: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        # h: (B, H, T); bias: (B, H) added before every layer (the condition)
        for conv, d in zip(self.convs, self.dilations, strict=True):
            x = h if bias is None else h + bias[:, :, None]
            x = F.pad(x, (2 * d, 0) if self.causal else (d, d))
            h = h + F.gelu(conv(x))  # (B, H, T)
        return h


class Encoder(nn.Module):
    """q_φ(z | x, c) = N(mu, diag(sigma^2)); a subclass pools (B, T, A+C) into (B, 2H)."""

    def __init__(self, assets: int, cond: int, config: CVAEConfig, length: int) -> None:
        super().__init__()
        self._body(assets + cond, config.hidden, length)  # before the head: the init order
        self.head = nn.Linear(2 * config.hidden + cond, 2 * config.latent_dim)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, T, _ = x.shape
        inp = torch.cat([x, c[:, None].expand(B, T, c.shape[-1])], dim=-1)  # (B, T, A+C)
        pooled = torch.cat([self._pool(inp), c], dim=-1)                     # (B, 2H+C)
        mu, log_var = self.head(pooled).chunk(2, dim=-1)                     # (B, D) each
        return mu, log_var.clamp(-12.0, 8.0)


class GRUEncoder(Encoder):
    """Bidirectional GRU: its last forward and backward states."""

    def _body(self, width: int, hidden: int, length: int) -> None:
        self.rnn = nn.GRU(width, hidden, batch_first=True, bidirectional=True)

    def _pool(self, inp: torch.Tensor) -> torch.Tensor:
        _, last = self.rnn(inp)                              # (2, B, H)
        return torch.cat([last[0], last[1]], dim=-1)


class TCNEncoder(Encoder):
    """Non-causal dilated convolutions: the mean and the last day of their output."""

    def _body(self, width: int, hidden: int, length: int) -> None:
        self.inp = nn.Conv1d(width, hidden, 1)
        self.conv = ConvStack(hidden, length, causal=False)

    def _pool(self, inp: torch.Tensor) -> torch.Tensor:
        h = self.conv(self.inp(inp.transpose(1, 2)))         # (B, H, T)
        return torch.cat([h.mean(dim=2), h[:, :, -1]], dim=-1)


class Decoder(nn.Module):
    """p_θ(x_t | x_<t, z, c): location, scale and loadings (..., A, K) of every day from a
    subclass's sequence model. ``forward`` is teacher-forced (all days at once, for the loss);
    ``step`` decodes one day from the previous one and a state (batch axis ``batch_dim``)."""

    batch_dim: int
    vol_inputs = False

    def __init__(self, assets: int, cond: int, config: CVAEConfig, length: int) -> None:
        super().__init__()
        self._body(assets, config.latent_dim + cond, config, length)  # before the head
        self.rank = min(config.joint_rank, assets) if assets > 1 else 0
        self.head = nn.Linear(config.hidden, (2 + self.rank) * assets)

    def _out(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.head(h)                                    # (..., (2 + K) A)
        assets = out.shape[-1] // (2 + self.rank)
        loc, raw = out[..., :assets], out[..., assets:2 * assets]  # (..., A) each
        loadings = out[..., 2 * assets:].unflatten(-1, (assets, self.rank))  # (..., A, K)
        return loc, F.softplus(raw) + MIN_SCALE, loadings

    def carried(self, state: torch.Tensor, length: int) -> torch.Tensor:
        """The state the next window continues from, after a window of ``length`` days."""
        return state

    def start(self, zc: torch.Tensor, assets: int
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The carry before a window's first day from ``[z, c]`` (B, D+C): the initial state,
        a last day of zeros (B, A) and the initial mean squares (B, A, S), or (B, 0) without
        ``vol_inputs``."""
        v = (self.initial_mean_squares(zc).float() if self.vol_inputs
             else zc.new_zeros(len(zc), 0))
        return self.initial_state(zc, assets), zc.new_zeros(len(zc), assets), v


class GRUDecoder(Decoder):
    """A GRU started from ``tanh(W [z, c] + b)``. With ``vol_inputs`` it also reads
    ``|x_{t-1}|`` and ``0.5 log v`` of the mean squares before day ``t``
    (:func:`~synthfin.models.components.ewma_mean_squares`, from ``exp(W [z, c] + b)``),
    which the caller of ``step`` updates."""

    batch_dim = 1  # state (1, B, H)

    def __init__(self, assets: int, cond: int, config: CVAEConfig, length: int) -> None:
        super().__init__(assets, cond, config, length)
        if self.vol_inputs:
            self.log_v0 = nn.Linear(config.latent_dim + cond, assets * len(VOL_SPANS))

    def _body(self, assets: int, context: int, config: CVAEConfig, length: int) -> None:
        self.vol_inputs = config.vol_inputs
        self.init = nn.Linear(context, config.hidden)
        per_day = assets * (2 + len(VOL_SPANS)) if self.vol_inputs else assets
        self.rnn = nn.GRU(per_day + context, config.hidden, batch_first=True)

    def initial_mean_squares(self, zc: torch.Tensor) -> torch.Tensor:
        """Mean squares before a window's first day, (B, A, S)."""
        return self.log_v0(zc).exp().view(len(zc), -1, len(VOL_SPANS))

    def _day_inputs(self, previous: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        # previous: (..., A) = x_{t-1}; v: (..., A, S) before day t -> (..., A (2 + S))
        if not self.vol_inputs:
            return previous
        logs = 0.5 * torch.log(v + 1e-6).flatten(-2)
        return torch.cat([previous, previous.abs(), logs], dim=-1)

    def initial_state(self, zc: torch.Tensor, assets: int) -> torch.Tensor:
        return torch.tanh(self.init(zc))[None]              # (1, B, H)

    def forward(self, x: torch.Tensor, zc: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        B, T, _ = x.shape
        previous = F.pad(x, (0, 0, 1, 0))[:, :-1]            # (B, T, A): x_{t-1}, 0 at t = 0
        if self.vol_inputs:
            v = ewma_mean_squares(x[:, :-1], VOL_ALPHAS, self.initial_mean_squares(zc))
            previous = self._day_inputs(previous, v)         # (B, T, A (2 + S))
        inp = torch.cat([previous, zc[:, None].expand(B, T, zc.shape[-1])], dim=-1)
        h, _ = self.rnn(inp, self.initial_state(zc, 0))      # (B, T, H)
        return self._out(h)

    def step(self, previous: torch.Tensor, zc: torch.Tensor, state: torch.Tensor,
             v: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        # previous: (B, A) = x_{t-1}; v: (B, A, S) mean squares before day t (vol_inputs only)
        inp = self._day_inputs(previous, v)
        h, state = self.rnn(torch.cat([inp, zc], dim=-1)[:, None], state)  # (B, 1, H)
        return (*self._out(h[:, 0]), state)


class TCNDecoder(Decoder):
    """Causal dilated convolutions of the past days (the state), plus the condition per layer."""

    batch_dim = 0  # state (B, t, A)

    def _body(self, assets: int, context: int, config: CVAEConfig, length: int) -> None:
        self.inp = nn.Conv1d(assets, config.hidden, 1)
        self.context = nn.Linear(context, config.hidden)
        self.conv = ConvStack(config.hidden, length, causal=True)

    def initial_state(self, zc: torch.Tensor, assets: int) -> torch.Tensor:
        return zc.new_zeros(zc.shape[0], 0, assets)          # (B, 0, A): no past inputs yet

    def forward(self, x: torch.Tensor, zc: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        previous = F.pad(x, (0, 0, 1, 0))[:, :-1]            # (B, T, A): x_{t-1}, 0 at t = 0
        h = self.conv(self.inp(previous.transpose(1, 2)), self.context(zc))  # (B, H, T)
        return self._out(h.transpose(1, 2))                  # (B, T, H)

    def step(self, previous: torch.Tensor, zc: torch.Tensor, state: torch.Tensor,
             v: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        state = torch.cat([state, previous[:, None]], dim=1)  # (B, t+1, A)
        h = self.conv(self.inp(state.transpose(1, 2)), self.context(zc))  # (B, H, t+1)
        return (*self._out(h[:, :, -1]), state)

    def carried(self, state: torch.Tensor, length: int) -> torch.Tensor:
        return state[:, -(length - 1):] if length > 1 else state[:, :0]  # (B, <T, A)


SEQUENCE_MODELS = {"gru": (GRUEncoder, GRUDecoder), "tcn": (TCNEncoder, TCNDecoder)}


class CVAE(nn.Module):
    """Condition, encoder, decoder, and the Student-t degrees of freedom: one per asset, or one
    shared by all with joint noise (the shared chi-square mixing variable)."""

    def __init__(self, assets: int, regimes: int, length: int, config: CVAEConfig) -> None:
        super().__init__()
        self.condition = ConditionEmbedding(regimes, config.regime_embedding)
        encoder, decoder = SEQUENCE_MODELS[config.network]
        self.encoder = encoder(assets, self.condition.size, config, length)
        self.decoder = decoder(assets, self.condition.size, config, length)
        dfs = 1 if self.decoder.rank else assets
        self.raw_df = nn.Parameter(torch.full((dfs,), math.log(math.expm1(4.0))))  # nu=6
        self.likelihood = config.likelihood

    def df(self) -> torch.Tensor:
        """Degrees of freedom ``nu = 2 + softplus(raw) > 2``, shape (A,) or (1,) (joint noise)."""
        return 2.0 + F.softplus(self.raw_df)


# -- loss -----------------------------------------------------------------------------------------
def gaussian_kl(mu: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag(exp(log_var))) || N(0, I)) per dimension, shape (B, D):
    ``KL_d = (mu_d^2 + sigma_d^2 - 1 - log sigma_d^2) / 2``."""
    return 0.5 * (mu.square() + log_var.exp() - 1.0 - log_var)


def kl_weight(step: int, steps_per_epoch: int, beta: float, warmup_epochs: int) -> float:
    """KL weight of optimization step ``step`` (0-based): ``β min(1, step / (warmup_epochs *
    steps_per_epoch))``, 0 at the first step and ``β`` from the end of the warm-up on."""
    return beta if warmup_epochs == 0 else beta * min(1.0, step / (warmup_epochs * steps_per_epoch))


def free_bits_kl(kl: torch.Tensor, free_bits: float) -> torch.Tensor:
    """``Σ_d max(λ, mean_batch KL_d)`` of a KL per window and dimension (B, D), the training
    penalty (Kingma et al., 2016): a dimension whose batch-mean KL is below ``λ`` gets no
    gradient from it."""
    return torch.clamp(kl.mean(dim=0), min=free_bits).sum()


def log_likelihood(x: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor,
                   df: torch.Tensor | None) -> torch.Tensor:
    """Log density of every day, shape (B, T, A): Student-t with ``df``
    (:func:`student_t_log_prob`) or, with ``df=None``, Gaussian:
    ``-log(2π)/2 - log scale - u^2/2`` with ``u = (x - loc) / scale``.
    """
    if df is not None:
        return student_t_log_prob(x, loc, scale, df)
    u = (x - loc) / scale
    return -0.5 * math.log(2 * math.pi) - scale.log() - 0.5 * u.square()


def joint_log_likelihood(x: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor,
                         loadings: torch.Tensor, df: torch.Tensor | None) -> torch.Tensor:
    r"""Log density of every day's vector of returns, shape (B, T): multivariate Student-t with
    scale matrix :math:`\Sigma = L L^\top + \mathrm{diag}(d^2)` and ``df`` (1,) or, with
    ``df=None``, multivariate Gaussian of covariance :math:`\Sigma`. With ``x`` (..., A),
    :math:`\delta = (x - \mu)^\top \Sigma^{-1} (x - \mu)`,

    .. math:: \log p(x) = \log\Gamma(\tfrac{\nu+A}{2}) - \log\Gamma(\tfrac{\nu}{2})
        - \tfrac{A}{2}\log(\nu\pi) - \tfrac12\log|\Sigma|
        - \tfrac{\nu+A}{2}\log(1 + \delta/\nu),

    the density of :math:`x = \mu + \sqrt{\nu/w}\,(L f + d \odot e)` with
    :math:`f \sim N(0, I_K)`, :math:`e \sim N(0, I_A)` and one :math:`w \sim \chi^2_\nu` per
    day shared by all assets (the source of tail dependence; :math:`\nu \to \infty` is the
    Gaussian, :math:`-\tfrac{A}{2}\log 2\pi - \tfrac12\log|\Sigma| - \tfrac12\delta`).
    With :math:`M = L / d` and :math:`C = I_K + M^\top M = R R^\top` (Woodbury and the matrix
    determinant lemma), :math:`\delta = |u|^2 - |R^{-1} M^\top u|^2` with :math:`u = (x-\mu)/d`
    and :math:`\log|\Sigma| = 2\sum\log d + 2\sum\log\mathrm{diag}\,R`: exact, O(A K^2).
    """
    assets, rank = x.shape[-1], loadings.shape[-1]
    u = (x - loc) / scale                                        # (B, T, A)
    m = (loadings / scale[..., None]).to(u.dtype)                # (B, T, A, K)
    capacitance = (torch.eye(rank, dtype=u.dtype, device=x.device)
                   + m.transpose(-1, -2) @ m)                    # (B, T, K, K)
    root = torch.linalg.cholesky(capacitance)                    # (B, T, K, K)
    projected = torch.linalg.solve_triangular(
        root, (m.transpose(-1, -2) @ u[..., None]), upper=False)[..., 0]   # (B, T, K)
    delta = u.square().sum(-1) - projected.square().sum(-1)      # (B, T)
    log_det = 2 * scale.log().sum(-1) + 2 * torch.diagonal(root, dim1=-2, dim2=-1).log().sum(-1)
    if df is None:
        return -0.5 * (assets * math.log(2 * math.pi) + log_det + delta)
    nu = df[0]
    return (torch.lgamma((nu + assets) / 2) - torch.lgamma(nu / 2)
            - 0.5 * assets * torch.log(nu * math.pi) - 0.5 * log_det
            - (nu + assets) / 2 * torch.log1p(delta / nu))


def elbo_terms(model: CVAE, x: torch.Tensor, regime: torch.Tensor, log_vol: torch.Tensor,
               noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Reconstruction log-likelihood per window (B,) and KL per latent dimension (B, D) of
    ``log p(x | c) >= ELBO = E_q[log p_θ(x | z, c)] - KL(q_φ(z | x, c) || p(z))``, with one
    reparameterized draw ``z = mu + sigma * noise`` and the KL in closed form. Training
    minimizes ``-E_q[log p] + β Σ_d max(λ, mean_batch KL_d)``; validation uses the ELBO."""
    c = model.condition(regime, log_vol)                         # (B, C)
    mu, log_var = model.encoder(x, c)                            # (B, D)
    z = mu + torch.exp(0.5 * log_var) * noise                    # (B, D)
    loc, scale, loadings = model.decoder(x, torch.cat([z, c], dim=-1))  # (B, T, A), (B, T, A, K)
    df = model.df() if model.likelihood == "studentt" else None
    if model.decoder.rank:
        recon = joint_log_likelihood(x, loc.float(), scale.float(), loadings.float(),
                                     df).sum(dim=1)             # (B,)
    else:
        recon = log_likelihood(x, loc.float(), scale.float(), df).sum(dim=(1, 2))  # (B,)
    return recon, gaussian_kl(mu.float(), log_var.float())


# -- generator ------------------------------------------------------------------------------------
@register
class ConditionalVAE(WindowContinuation, TorchGenerator):
    """Conditional VAE with an autoregressive sequence decoder and a fat-tailed likelihood;
    :meth:`sample_after` continues a history through the decoder's state
    (:meth:`_context_state`).

    After :meth:`fit`, ``active_units_`` counts the latent dimensions the encoder uses and
    ``kl_per_dim_`` holds their mean KL on the validation windows (nats).
    """

    name = "cvae"
    config_class = CVAEConfig
    config: CVAEConfig

    def _build(self) -> dict[str, nn.Module]:
        spec = self.spec_
        return {"cvae": CVAE(len(spec.assets), len(spec.regimes.names), spec.window_len,
                             self.config)}

    @property
    def _model(self) -> CVAE:
        return self.modules_["cvae"]

    # -- conditions ---------------------------------------------------------------------------
    def _tensors(self, split: WindowSplit) -> tuple[torch.Tensor, ...]:
        return window_tensors(split.windows, split.regimes,
                              self.conditions_.standardize(split.realized_vol), self.device_)

    # -- training -----------------------------------------------------------------------------
    def _train(self, data: WindowData, run_dir: Path | None, resume: bool) -> None:
        config = self.config
        for name in ("train", "val"):
            if not np.isfinite(data.split(name).realized_vol).all():
                raise ModelError(f"the {name} split has windows without a realized vol")
        self.conditions_ = WindowConditions(data.train.regimes, data.train.realized_vol)
        x, regime, cond_vol = self._tensors(data.train)   # the whole split on the device, once
        x_val, regime_val, cond_vol_val = self._tensors(data.val)
        model = self._model
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        order = BatchOrder(len(x), config.batch_size, config.seed)
        streams: dict[str, BatchOrder] = {"order": order}
        pretrain_epochs, pooled_windows = pretraining(data, config.pretrain_epochs,
                                                      AUTO_PRETRAIN_EPOCHS)
        if pooled_windows is not None:
            pooled = window_tensors(*pooled_windows, self.device_)
            streams["pooled"] = BatchOrder(len(pooled[0]), config.batch_size, config.seed + 1)
        loop = TrainingLoop({"cvae": model}, {"cvae": optimizer}, run_dir=run_dir,
                            resume=resume, progress=config.progress, streams=streams)
        steps_per_epoch = max(1, len(x) // config.batch_size)
        # the KL warm-up runs over the first warmup_epochs * steps_per_epoch steps of all phases
        counter = {"step": PRETRAIN_STEPS_PER_EPOCH * loop.completed("pretrain")
                   + steps_per_epoch * loop.completed("elbo")}

        def stepper(tensors: tuple[torch.Tensor, ...], order: BatchOrder
                    ) -> Callable[[], dict[str, torch.Tensor]]:
            x, regime, cond_vol = tensors

            def step() -> dict[str, torch.Tensor]:
                beta = kl_weight(counter["step"], steps_per_epoch, config.beta,
                                 config.warmup_epochs)
                counter["step"] += 1
                idx = next(order).to(self.device_)
                with autocast(self.device_):
                    noise = torch.randn(len(idx), config.latent_dim, device=self.device_)
                    recon, kl = elbo_terms(model, x[idx], regime[idx], cond_vol[idx], noise)
                loss = -recon.mean() + beta * free_bits_kl(kl, config.free_bits)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                return {"loss": loss.detach(), "recon": -recon.mean().detach(),
                        "kl": kl.sum(dim=1).mean().detach()}

            return step

        def validate() -> float:
            model.eval()
            elbo = self._elbo(x_val, regime_val, cond_vol_val, seed=config.seed)
            model.train()
            return -float(elbo.mean())

        model.train()
        if pretrain_epochs:
            loop.run("pretrain", pretrain_epochs, stepper(pooled, streams["pooled"]),
                     PRETRAIN_STEPS_PER_EPOCH, validate=validate, patience=config.patience)
        loop.run("elbo", config.epochs, stepper((x, regime, cond_vol), order), steps_per_epoch,
                 validate=validate, patience=config.patience)
        model.eval()
        self.history_ = loop.history
        mu, log_var = self._posterior_means(x_val, regime_val, cond_vol_val)
        self.kl_per_dim_ = gaussian_kl(mu, log_var).mean(dim=0).cpu().numpy()
        self.active_units_ = int((mu.var(dim=0) > ACTIVE_UNIT_THRESHOLD).sum())
        logger.info("cvae: %d of %d latent units active", self.active_units_, config.latent_dim)

    # -- the bound ----------------------------------------------------------------------------
    @torch.no_grad()
    def _elbo(self, x: torch.Tensor, regime: torch.Tensor, log_vol: torch.Tensor, seed: int,
              draws: int = 1) -> torch.Tensor:
        """ELBO per window (n,), on the device; ``draws`` reparameterized samples of z."""
        generator = torch.Generator(self.device_).manual_seed(seed)
        out = []
        for lo in range(0, len(x), SAMPLE_CHUNK):
            sl = slice(lo, lo + SAMPLE_CHUNK)
            total = 0.0
            for _ in range(draws):
                noise = torch.randn(len(x[sl]), self.config.latent_dim, device=self.device_,
                                    generator=generator)
                with autocast(self.device_):
                    recon, kl = elbo_terms(self._model, x[sl], regime[sl], log_vol[sl], noise)
                total = total + recon - kl.sum(dim=1)
            out.append(total / draws)
        return torch.cat(out)

    def elbo(self, split: WindowSplit, *, draws: int = 8, seed: int = 0) -> np.ndarray:
        """Evidence lower bound (n,) of each scaled window of ``split``, in nats, a lower bound on
        ``log p(x | c)``: ``E_q[log p(x | z, c)] - KL(q(z | x, c) || p(z))`` averaged over
        ``draws`` of ``z`` seeded by ``seed``. For unscaled returns ``r`` add the scaler's log
        Jacobian, ``data.scaler.log_abs_det_jacobian(r).sum(axis=(1, 2))``."""
        self._spec()
        return self._elbo(*self._tensors(split), seed=seed, draws=draws).cpu().numpy()

    @torch.no_grad()
    def _posterior_means(self, x: torch.Tensor, regime: torch.Tensor, log_vol: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        mus, log_vars = [], []
        for lo in range(0, len(x), SAMPLE_CHUNK):
            sl = slice(lo, lo + SAMPLE_CHUNK)
            mu, log_var = self._model.encoder(x[sl], self._model.condition(regime[sl],
                                                                           log_vol[sl]))
            mus.append(mu.float())
            log_vars.append(log_var.float())
        return torch.cat(mus), torch.cat(log_vars)

    # -- sampling -----------------------------------------------------------------------------
    def _tensor(self, a: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype, device=self.device_)

    def _condition(self, regime: np.ndarray, realized_vol: np.ndarray) -> torch.Tensor:
        """The condition (n, C) of windows with these regime codes and trailing vols."""
        return self._model.condition(self._tensor(regime, torch.long),
                                     self._tensor(self.conditions_.standardize(realized_vol)))

    @torch.no_grad()
    def _decode(self, regime: np.ndarray, realized_vol: np.ndarray, rng: np.random.Generator,
                carry: tuple[torch.Tensor, ...] | None = None
                ) -> tuple[np.ndarray, tuple[torch.Tensor, ...]]:
        """One window per condition (n, window_len, assets) and its end carry: z ~ N(0, I), then
        day by day from ``carry`` (decoder state, last day (n, A), mean squares (n, A, S) or
        (n, 0)) of the previous window if given, else from the decoder's initial ones."""
        spec, model, decoder = self.spec_, self._model, self._model.decoder
        n, length, assets = len(regime), spec.window_len, len(spec.assets)
        z = rng.standard_normal((n, self.config.latent_dim))
        rank = decoder.rank
        if rank:  # x = loc + sqrt(nu / w) (L f + d e), one w ~ chi2(nu) per day for all assets
            shocks = rng.standard_normal((n, length, assets + rank))      # (n, T, A + K)
            if model.likelihood == "studentt":
                nu = float(model.df()[0])
                shocks *= np.sqrt(nu / rng.chisquare(nu, size=(n, length, 1)))
        elif model.likelihood == "studentt":
            df = model.df().cpu().numpy().astype(np.float64)
            shocks = rng.standard_t(df, size=(n, length, assets))
        else:
            shocks = rng.standard_normal((n, length, assets))
        out, states, lasts, squares = np.empty((n, length, assets)), [], [], []
        for lo in range(0, n, SAMPLE_CHUNK):
            sl = slice(lo, lo + SAMPLE_CHUNK)
            c = self._condition(regime[sl], realized_vol[sl])                # (b, C)
            zc = torch.cat([self._tensor(z[sl]), c], dim=-1)                  # (b, D+C)
            noise = self._tensor(shocks[sl])                                  # (b, T, A [+ K])
            with autocast(self.device_):
                if carry is None:
                    state, previous, v = decoder.start(zc, assets)
                else:
                    state = carry[0].narrow(decoder.batch_dim, lo, len(zc)).to(zc.dtype)
                    previous, v = carry[1][sl].to(zc.dtype), carry[2][sl]
                days = []
                for t in range(length):
                    loc, scale, loadings, state = decoder.step(previous, zc, state,
                                                               v.to(zc.dtype))
                    shock = noise[:, t, :assets]                              # (b, A)
                    day = loc.float() + scale.float() * shock
                    if rank:
                        day = day + (loadings.float() @ noise[:, t, assets:, None])[..., 0]
                    if decoder.vol_inputs:
                        v = update_mean_squares(v, day, VOL_ALPHAS)
                    previous = day.to(zc.dtype)
                    days.append(day)
            out[sl] = torch.stack(days, dim=1).cpu().numpy()                 # (b, T, A)
            states.append(decoder.carried(state, length).float())
            lasts.append(previous.float())
            squares.append(v)
        return out, (torch.cat(states, dim=decoder.batch_dim), torch.cat(lasts),
                     torch.cat(squares))

    @property
    def context_days(self) -> int:
        """Days of history :meth:`sample_after` reads: the last window and the
        ``vol_lookback`` days before it (that window's condition)."""
        spec = self._spec()
        return spec.window_len + spec.vol_lookback

    def _context_state(self, scaled: np.ndarray) -> tuple[torch.Tensor, ...]:
        """The decoder reads the context's last window day by day (teacher-forced) under the
        encoder's posterior mean latent for it and that window's condition (the trailing vol
        before it): the carry it ends in."""
        spec = self._spec()
        window, before = scaled[:, -spec.window_len:], scaled[:, :-spec.window_len]
        return self._read(window, spec.regime_of(before), spec.trailing_vol(before))

    @torch.no_grad()
    def _read(self, window: np.ndarray, regime: np.ndarray, realized_vol: np.ndarray
              ) -> tuple[torch.Tensor, ...]:
        """The carry (as :meth:`_decode` returns it) after the decoder reads real windows
        (n, window_len, assets) of scaled returns with their conditions, under the encoder's
        posterior mean latent."""
        model, decoder = self._model, self._model.decoder
        states, lasts, squares = [], [], []
        for lo in range(0, len(window), SAMPLE_CHUNK):
            sl = slice(lo, lo + SAMPLE_CHUNK)
            x = self._tensor(window[sl])                                      # (b, T, A)
            c = self._condition(regime[sl], realized_vol[sl])                # (b, C)
            with autocast(self.device_):
                mu, _ = model.encoder(x, c)
                zc = torch.cat([mu.to(c.dtype), c], dim=-1)                   # (b, D+C)
                state, previous, v = decoder.start(zc, x.shape[-1])
                for t in range(x.shape[1]):
                    *_, state = decoder.step(previous, zc, state, v.to(zc.dtype))
                    if decoder.vol_inputs:
                        v = update_mean_squares(v, x[:, t], VOL_ALPHAS)
                    previous = x[:, t].to(zc.dtype)
            states.append(decoder.carried(state, x.shape[1]).float())
            lasts.append(previous.float())
            squares.append(v)
        return (torch.cat(states, dim=decoder.batch_dim), torch.cat(lasts), torch.cat(squares))

    def _window_sampler(self, rng: np.random.Generator) -> WindowSampler:
        def window(codes: np.ndarray, vols: np.ndarray, carry: tuple | None) -> tuple:
            return self._decode(codes, vols, rng, carry if self.config.carry_state else None)

        return window

    def _sample(self, n: int, length: int, regime: int | None,
                rng: np.random.Generator) -> np.ndarray:
        codes, vols = self.conditions_.draw(n, regime, rng)
        return chain_windows(self._spec(), self._window_sampler(rng), codes, vols, length)

    # -- state --------------------------------------------------------------------------------
    def _state(self) -> dict[str, np.ndarray]:
        return {**super()._state(), **self.conditions_.to_arrays(),
                "stats.kl_per_dim": np.asarray(self.kl_per_dim_, dtype=np.float64),
                "stats.active_units": np.array([self.active_units_])}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        super()._load_state({k: v for k, v in state.items()
                             if not k.startswith(("stats.", "conditions."))})
        self.conditions_ = WindowConditions.from_arrays(state)
        self.kl_per_dim_ = state["stats.kl_per_dim"]
        self.active_units_ = int(state["stats.active_units"][0])
