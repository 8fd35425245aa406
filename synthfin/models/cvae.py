"""Conditional variational autoencoder for windows of returns: config, networks, the ELBO, the
generator, in that order.

``p(x | c) = ∫ p_θ(x | z, c) p(z) dz`` with one latent ``z ~ N(0, I)`` per window and the
condition ``c`` (:class:`ConditionEmbedding`). The decoder is autoregressive inside the window,
``p_θ(x | z, c) = Π_t p_θ(x_t | x_<t, z, c)``, Student-t (default) or Gaussian, so
clustering and leverage inside a window come from the decoder and its vol level from ``z`` and
``c``. With several assets each day is one multivariate Student-t (or Gaussian) draw of
low-rank-plus-diagonal scale matrix ``L_t L_t^T + diag(d_t^2)`` read from the decoder state, whose
single chi-square mixing variable is shared by all assets (:func:`joint_log_likelihood`): same-day
correlation, its change with the state and tail co-movement are learned. With ``vol_inputs``
the decoder also reads slow volatility inputs (mean squares of the past days over 5, 21 and 63
days). Longer paths chain windows (:func:`chain_windows`).
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
    chain_windows,
    span_weights,
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

NETWORKS = ("gru", "tcn")
LIKELIHOODS = ("studentt", "gaussian")
ACTIVE_UNIT_THRESHOLD = 0.01  # Burda et al. (2016): Cov_x(E_q[z_d | x]) above this is active
MIN_SCALE = 1e-3              # floor of the decoder scale (scaled returns have unit std)
SAMPLE_CHUNK = 4096           # windows decoded at once when sampling
PRETRAIN_STEPS_PER_EPOCH = 100  # steps of a pooled pretraining epoch (then a validation)
# pretraining epochs on a short history by default: the last 2,500 days of the 21 bundled series,
# lag-1 ACF of |r| of one-year paths (median) 0.10 without, 0.155 with; real pooled 0.305
AUTO_PRETRAIN_EPOCHS = 10
VOL_SPANS = (5, 21, 63)       # days of the mean squares the decoder reads with vol_inputs
VOL_ALPHAS = span_weights(VOL_SPANS)


@dataclasses.dataclass
class CVAEConfig(TorchConfig):
    """Conditional VAE settings (on top of :class:`TorchConfig`: device, epochs, lr, ...).

    Attributes
    ----------
    network : "gru" or "tcn"
        Sequence model of encoder and decoder: a GRU (bidirectional in the encoder) or a stack of
        dilated 1-d convolutions (causal in the decoder).
    hidden : int
        Width of the sequence models.
    latent_dim : int
        Dimension of ``z``.
    regime_embedding : int
        Width of the regime label embedding.
    likelihood : "studentt" or "gaussian"
        Per-step density of the decoder; Student-t learns one degrees-of-freedom value per asset.
        Student-t by default: against the Gaussian decoder (quickstart settings, window 64)
        its validation ELBO per day was higher on S&P 500 / XOM / JPM / KO (+0.038 / +0.021 /
        +0.034 / +0.053 nats), the out-of-sample kurtosis gap (noise floors) was
        0.72 / 1.53 / 0.44 / 1.10 against 1.15 / 2.95 / 1.00 / 2.33, and the |r| correlation
        across a seam of a 10-year path 0.97 / 0.95 / 0.97 / 0.95 of the within-window value
        against 0.86 / 0.80 / 0.87 / 0.90.
    beta : float
        Weight of the KL term at the end of the warm-up (1 is the ELBO).
    warmup_epochs : int
        The KL weight grows linearly from 0 at the first step to ``beta`` after these epochs
        (:func:`kl_weight`).
    free_bits : float
        Nats per latent dimension below which the KL is not penalized (Kingma et al., 2016):
        the guard against posterior collapse.
    grad_clip : float
        Gradient norm clip.
    pretrain_epochs : int or None
        Epochs of ``PRETRAIN_STEPS_PER_EPOCH`` steps on windows pooled from the 21 bundled
        series (:func:`~synthfin.models.pooling.pooled_training_windows`: each in its own
        scaled units, none after the target's training days) before training on the target;
        early stopping on the target's validation ELBO. 0: no pretraining. Single-asset data
        only. None (default): :data:`AUTO_PRETRAIN_EPOCHS` for a single-asset series with
        under ten years of training days, else none
        (:func:`~synthfin.models.pooling.pretraining`).
    carry_state : bool
        Paths longer than a window continue the decoder's state (the GRU's hidden vector or the
        TCN's past days) and the last day across each seam, with a fresh ``z`` and condition
        per window; False starts every window afresh (a seam in the dynamics).
    joint_rank : int
        Several assets only: rank ``K`` of the per-day factor loadings ``L_t`` (A, K) of the
        decoder's joint noise (:func:`joint_log_likelihood`); ``min(K, A)`` is used. 0: each
        asset's noise independent given the state (no same-day dependence: the old decoder).
        2 by default: validation ELBO per window-day (5 stocks, 20 epochs, seed 0) for ranks
        1 / 2 / 4 was -5.621 / -5.641 / -5.631 on KO, PEP, PG, JNJ, WMT from 2014 and -5.239 /
        -5.164 / -5.197 on JPM, BAC, GE, HD, BBY 1998-2013; 2 has the best mean, not the best
        on both (``pipelines/README.md``).
    vol_inputs : bool
        The GRU decoder also reads, each day, ``|x_{t-1}|`` and the log of exponentially
        weighted mean squares of the past days over :data:`VOL_SPANS` (:func:`mean_squares`),
        started from a learned function of ``z`` and the condition and carried across seams:
        slow volatility memory, as the ``ar`` model's inputs. GRU only.
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


# ---------------------------------------------------------------------------------------------
# networks
# ---------------------------------------------------------------------------------------------
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
    """q_φ(z | x, c) = N(mu, diag(sigma^2)) from a window and its condition."""

    def __init__(self, assets: int, cond: int, config: CVAEConfig, length: int) -> None:
        super().__init__()
        hidden, self.network = config.hidden, config.network
        if self.network == "gru":
            self.rnn = nn.GRU(assets + cond, hidden, batch_first=True, bidirectional=True)
            pooled = 2 * hidden
        else:
            self.inp = nn.Conv1d(assets + cond, hidden, 1)
            self.conv = ConvStack(hidden, length, causal=False)
            pooled = 2 * hidden
        self.head = nn.Linear(pooled + cond, 2 * config.latent_dim)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, T, _ = x.shape
        inp = torch.cat([x, c[:, None].expand(B, T, c.shape[-1])], dim=-1)  # (B, T, A+C)
        if self.network == "gru":
            _, last = self.rnn(inp)                          # (2, B, H)
            pooled = torch.cat([last[0], last[1]], dim=-1)   # (B, 2H)
        else:
            h = self.conv(self.inp(inp.transpose(1, 2)))     # (B, H, T)
            pooled = torch.cat([h.mean(dim=2), h[:, :, -1]], dim=-1)  # (B, 2H)
        mu, log_var = self.head(torch.cat([pooled, c], dim=-1)).chunk(2, dim=-1)  # (B, D) each
        return mu, log_var.clamp(-12.0, 8.0)


def mean_squares(x: torch.Tensor, v0: torch.Tensor) -> torch.Tensor:
    """The mean squares before each day of windows (B, T, A), from ``v0`` (B, A, S) before the
    first: (B, T, A, S), entry ``t`` covering days ``< t``."""
    out = [v0]
    for t in range(x.shape[1] - 1):
        out.append(update_mean_squares(out[-1], x[:, t], VOL_ALPHAS))
    return torch.stack(out, dim=1)


class Decoder(nn.Module):
    """p_θ(x_t | x_<t, z, c): location, scale and factor loadings of every day, autoregressive
    in the window (loadings (..., A, K), K = 0 without joint noise).

    ``forward`` is teacher-forced (all days at once, for the loss); ``step`` decodes one day
    from the previous one and a state (the GRU's hidden vector or the TCN's past inputs).
    With ``vol_inputs`` the GRU also reads ``|x_{t-1}|`` and ``0.5 log v_{t-1}`` of the mean
    squares ``v`` (:func:`mean_squares`), which start from ``exp(W [z, c] + b)`` and which the
    caller of ``step`` updates (:func:`~synthfin.models.components.update_mean_squares`).
    """

    def __init__(self, assets: int, cond: int, config: CVAEConfig, length: int) -> None:
        super().__init__()
        hidden, self.network = config.hidden, config.network
        context = config.latent_dim + cond
        self.vol_inputs = config.vol_inputs
        if self.network == "gru":
            self.init = nn.Linear(context, hidden)
            per_day = assets * (2 + len(VOL_SPANS)) if self.vol_inputs else assets
            self.rnn = nn.GRU(per_day + context, hidden, batch_first=True)
        else:
            self.inp = nn.Conv1d(assets, hidden, 1)
            self.context = nn.Linear(context, hidden)
            self.conv = ConvStack(hidden, length, causal=True)
        self.rank = min(config.joint_rank, assets) if assets > 1 else 0
        self.head = nn.Linear(hidden, (2 + self.rank) * assets)
        if self.vol_inputs:
            self.log_v0 = nn.Linear(context, assets * len(VOL_SPANS))

    def _out(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.head(h)                                    # (..., (2 + K) A)
        assets = out.shape[-1] // (2 + self.rank)
        loc, raw = out[..., :assets], out[..., assets:2 * assets]  # (..., A) each
        loadings = out[..., 2 * assets:].unflatten(-1, (assets, self.rank))  # (..., A, K)
        return loc, F.softplus(raw) + MIN_SCALE, loadings

    def initial_mean_squares(self, zc: torch.Tensor) -> torch.Tensor:
        """Mean squares before a window's first day, (B, A, S)."""
        return self.log_v0(zc).exp().view(len(zc), -1, len(VOL_SPANS))

    def _day_inputs(self, previous: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        # previous: (..., A) = x_{t-1}; v: (..., A, S) before day t -> (..., A (2 + S))
        if not self.vol_inputs:
            return previous
        logs = 0.5 * torch.log(v + 1e-6).flatten(-2)
        return torch.cat([previous, previous.abs(), logs], dim=-1)

    def forward(self, x: torch.Tensor, zc: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        B, T, _ = x.shape
        previous = F.pad(x, (0, 0, 1, 0))[:, :-1]            # (B, T, A): x_{t-1}, 0 at t = 0
        if self.network == "gru":
            if self.vol_inputs:
                v = mean_squares(x, self.initial_mean_squares(zc))  # (B, T, A, S)
                previous = self._day_inputs(previous, v)     # (B, T, A (2 + S))
            inp = torch.cat([previous, zc[:, None].expand(B, T, zc.shape[-1])], dim=-1)
            h, _ = self.rnn(inp, torch.tanh(self.init(zc))[None])  # (B, T, H)
        else:
            h = self.conv(self.inp(previous.transpose(1, 2)), self.context(zc))  # (B, H, T)
            h = h.transpose(1, 2)                             # (B, T, H)
        return self._out(h)

    def initial_state(self, zc: torch.Tensor, assets: int) -> torch.Tensor:
        if self.network == "gru":
            return torch.tanh(self.init(zc))[None]            # (1, B, H)
        return zc.new_zeros(zc.shape[0], 0, assets)          # (B, 0, A): no past inputs yet

    def batch_dim(self) -> int:
        """The batch axis of the state: 1 for the GRU's (1, B, H), 0 for the TCN's (B, t, A)."""
        return 1 if self.network == "gru" else 0

    def step(self, previous: torch.Tensor, zc: torch.Tensor, state: torch.Tensor,
             v: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        # previous: (B, A) = x_{t-1}; v: (B, A, S) mean squares before day t (vol_inputs only)
        if self.network == "gru":
            inp = self._day_inputs(previous, v)
            h, state = self.rnn(torch.cat([inp, zc], dim=-1)[:, None], state)  # (B, 1, H)
            return (*self._out(h[:, 0]), state)
        state = torch.cat([state, previous[:, None]], dim=1)  # (B, t+1, A)
        h = self.conv(self.inp(state.transpose(1, 2)), self.context(zc))  # (B, H, t+1)
        return (*self._out(h[:, :, -1]), state)


class CVAE(nn.Module):
    """Condition, encoder, decoder, and the Student-t degrees of freedom: one per asset, or one
    shared by all with joint noise (the shared chi-square mixing variable)."""

    def __init__(self, assets: int, regimes: int, length: int, config: CVAEConfig) -> None:
        super().__init__()
        self.condition = ConditionEmbedding(regimes, config.regime_embedding)
        self.encoder = Encoder(assets, self.condition.size, config, length)
        self.decoder = Decoder(assets, self.condition.size, config, length)
        dfs = 1 if self.decoder.rank else assets
        self.raw_df = nn.Parameter(torch.full((dfs,), math.log(math.expm1(4.0))))  # nu=6
        self.likelihood = config.likelihood

    def df(self) -> torch.Tensor:
        """Degrees of freedom ``nu = 2 + softplus(raw) > 2`` (finite variance), shape (A,) or
        (1,) with joint noise."""
        return 2.0 + F.softplus(self.raw_df)


# ---------------------------------------------------------------------------------------------
# loss
# ---------------------------------------------------------------------------------------------
def gaussian_kl(mu: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag(exp(log_var))) || N(0, I)) per dimension, shape (B, D).

    Notes
    -----
    ``KL_d = (mu_d^2 + sigma_d^2 - 1 - log sigma_d^2) / 2``.
    """
    return 0.5 * (mu.square() + log_var.exp() - 1.0 - log_var)


def kl_weight(step: int, steps_per_epoch: int, beta: float, warmup_epochs: int) -> float:
    """KL weight of optimization step ``step`` (0-based): ``β min(1, step / (warmup_epochs *
    steps_per_epoch))``, 0 at the first step and ``β`` from the end of the warm-up on."""
    if warmup_epochs == 0:
        return beta
    return beta * min(1.0, step / (warmup_epochs * steps_per_epoch))


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
    ``df=None``, multivariate Gaussian of covariance :math:`\Sigma`.

    Notes
    -----
    With ``x`` (..., A), :math:`\delta = (x - \mu)^\top \Sigma^{-1} (x - \mu)`,

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
    """Reconstruction log-likelihood per window (B,) and KL per latent dimension (B, D).

    Notes
    -----
    The evidence lower bound of a window ``x`` with condition ``c`` is

    ``log p(x | c) >= ELBO = E_q[log p_θ(x | z, c)] - KL(q_φ(z | x, c) || p(z))``

    with ``log p_θ(x | z, c) = Σ_t Σ_a log p_θ(x_{t,a} | x_<t, z, c)`` (one asset, or
    ``joint_rank=0``) or ``Σ_t log p_θ(x_t | x_<t, z, c)`` of the joint day density
    (:func:`joint_log_likelihood`). The expectation is
    estimated with one reparameterized draw ``z = mu + sigma * noise``, ``noise ~ N(0, I)``,
    so gradients flow through ``mu`` and ``sigma``; the KL is in closed form
    (:func:`gaussian_kl`). Training minimizes ``-E_q[log p] + β Σ_d max(λ, mean_batch KL_d)``
    (β warm-up, free bits λ); validation and :meth:`ConditionalVAE.elbo` use the true ELBO
    (β = 1, λ = 0).
    """
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


# ---------------------------------------------------------------------------------------------
# generator
# ---------------------------------------------------------------------------------------------
@register
class ConditionalVAE(TorchGenerator):
    """Conditional VAE with an autoregressive sequence decoder and a fat-tailed likelihood.

    After :meth:`fit`, ``active_units_`` counts the latent dimensions the encoder uses and
    ``kl_per_dim_`` holds their mean KL on the validation windows (nats).
    """

    name = "cvae"
    config_class = CVAEConfig
    config: CVAEConfig

    def _build(self) -> dict[str, nn.Module]:
        config, spec = self.config, self.spec_
        return {"cvae": CVAE(len(spec.assets), len(spec.regimes.names), spec.window_len,
                             config)}

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
        self.kl_per_dim_ = self._kl_per_dim(x_val, regime_val, cond_vol_val)
        self.active_units_ = self._active_units(x_val, regime_val, cond_vol_val)
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
        """Evidence lower bound of each window, in nats: a **lower bound** on ``log p(x | c)``.

        Parameters
        ----------
        split : WindowSplit
            Scaled windows with their regimes and realized vols (e.g. ``data.test``).
        draws : int
            Monte Carlo draws of ``z ~ q(z | x, c)`` averaged per window.
        seed : int
            Seeds the draws.

        Returns
        -------
        numpy.ndarray, shape (n,)
            ``E_q[log p(x | z, c)] - KL(q(z | x, c) || p(z))`` per window, for the *scaled*
            returns. For unscaled returns ``r`` add the log Jacobian of the data's scaler,
            ``data.scaler.log_abs_det_jacobian(r).sum(axis=(1, 2))``: ``-window_len Σ_a log
            std_a`` without ``gaussianize``, a value that depends on every day's return with it
            (the Lambert W map is not linear).
        """
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

    def _kl_per_dim(self, *tensors: torch.Tensor) -> np.ndarray:
        mu, log_var = self._posterior_means(*tensors)
        return gaussian_kl(mu, log_var).mean(dim=0).cpu().numpy()

    def _active_units(self, *tensors: torch.Tensor) -> int:
        """Latent dimensions with ``Var_x(E_q[z_d | x]) > 0.01`` (Burda et al., 2016)."""
        mu, _ = self._posterior_means(*tensors)
        return int((mu.var(dim=0) > ACTIVE_UNIT_THRESHOLD).sum())

    # -- sampling -----------------------------------------------------------------------------
    @torch.no_grad()
    def _decode(self, regime: np.ndarray, realized_vol: np.ndarray, rng: np.random.Generator,
                carry: tuple[torch.Tensor, ...] | None = None
                ) -> tuple[np.ndarray, tuple[torch.Tensor, ...]]:
        """One window per condition, (n, window_len, assets): z ~ N(0, I), then day by day,
        from ``carry`` = (decoder state, last day (n, A), mean squares (n, A, S) or an empty
        tensor without ``vol_inputs``) of the previous window if given, else from the initial
        state, a zero day and the initial mean squares. Returns the windows and their end carry.
        """
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
            as_tensor = lambda a, dtype=torch.float32: torch.as_tensor(  # noqa: E731
                a, dtype=dtype, device=self.device_)
            c = model.condition(as_tensor(regime[sl], torch.long),
                                as_tensor(self.conditions_.standardize(realized_vol[sl])))  # (b, C)
            zc = torch.cat([as_tensor(z[sl]), c], dim=-1)                     # (b, D+C)
            noise = as_tensor(shocks[sl])                                     # (b, T, A [+ K])
            with autocast(self.device_):
                if carry is None:
                    state = decoder.initial_state(zc, assets)
                    previous = zc.new_zeros(len(zc), assets)                  # (b, A)
                    v = (decoder.initial_mean_squares(zc).float() if decoder.vol_inputs
                         else zc.new_zeros(len(zc), 0))                       # (b, A, S)
                else:
                    state = carry[0].narrow(decoder.batch_dim(), lo, len(zc)).to(zc.dtype)
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
            if decoder.network == "tcn":
                state = state[:, -(length - 1):] if length > 1 else state[:, :0]  # (b, <T, A)
            states.append(state.float())
            lasts.append(previous.float())
            squares.append(v)
        return out, (torch.cat(states, dim=decoder.batch_dim()), torch.cat(lasts),
                     torch.cat(squares))

    def _sample(self, n: int, length: int, regime: int | None,
                rng: np.random.Generator) -> np.ndarray:
        codes, vols = self.conditions_.draw(n, regime, rng)

        def window(codes: np.ndarray, vols: np.ndarray, carry: tuple | None) -> tuple:
            return self._decode(codes, vols, rng, carry if self.config.carry_state else None)

        return chain_windows(self._spec(), window, codes, vols, length)

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
