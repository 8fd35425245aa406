"""Autoregressive density generator: an exact likelihood ``p(x) = prod_t p(x_t | x_<t)`` over
long histories, pooled across a universe of series.

Each asset is read by one GRU with weights shared across assets and series. Its inputs on day
``t`` are ``y_t``, ``|y_t|`` and the log of exponentially weighted mean squares over 5 / 21 / 63 /
252 days (a HAR model's slow information, as recursions that sampling carries exactly), and the
same for the market (the mean over assets). A linear head on the GRU output *and* those inputs
gives the next day's skewed Student-t (mixture) location, scale, degrees of freedom and skew: a
log-linear HAR volatility is a special case. Trained on long random crops of the history (each
with an unscored burn-in), early-stopped on the validation likelihood; then (with
``asymmetric_tails``) each asset's two tails are made heavier or lighter, each on its own (a
two-piece Student-t), and (with ``shrunk_mean``) the network's path-dependent mean is shrunk
towards the training mean, by maximum likelihood on the validation days
(:func:`fit_mean_and_tails`), and the scale is variance-targeted; sampled paths start from the
model's own stationary states (training days' states run forward five years).

Several assets are coupled within a day by a dynamic correlation (DCC-like): with
``e_t = L_t w_t``, ``w`` independent unit-variance Student-t innovations and ``L_t`` the Cholesky
factor of a correlation matrix ``R_t``, asset ``a`` returns ``y_a = mu_a + sd_a e_a``. ``R_t``
follows the recent co-movement of the standardized returns ``e`` (:class:`DynamicCorrelation`),
so correlations rise when assets have been falling together and revert to a long-run level.
A common shock shared by every asset (:class:`CommonShock`: a rare, wide and low type of day,
``e = mu_k + s_k L_t w``) makes their tails move together on the same day. The density stays
exact: a triangular solve per day type, mixed by the types' posterior.

**Pooling.** By default the network starts from a checkpoint pretrained on the 21 bundled series
(:data:`UNIVERSE`, :func:`pretrain_universe`; training and fitting:
:mod:`synthfin.models.pooling`) and keeps it when fine-tuning does not improve validation.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from synthfin.data.conditions import realized_vol, trailing_realized_vol
from synthfin.data.windows import WindowData
from synthfin.errors import ModelError
from synthfin.models.base import (
    PLAUSIBLE_SDS,
    ContextSampler,
    Limit,
    given_arguments,
    register,
)
from synthfin.models.components import (
    condition_innovations,
    heavier_df,
    mixture_moments,
    skewed_t_moments,
    skewed_t_sample,
    student_t_mixture_log_prob,
    update_mean_squares,
)
from synthfin.models.pooling import (
    Series,
    fit_series,
    read_checkpoint,
    save_checkpoint,
    split_series,
    validation_nll,
)
from synthfin.models.training import (
    TorchConfig,
    TorchGenerator,
    load_module_state,
    module_state,
    report_progress,
    resolve_device,
)
from synthfin.stats.facts import TRADING_DAYS
from synthfin.stats.volatility import ewma_mean_squares, span_weights

# measured reasons for these values: pipelines/MODELS.md, section ar
SPANS = (5, 21, 63, 252)  # days of the exponentially weighted mean squares the network reads
N_FEATURES = 2 + len(SPANS)  # y, |y|, 0.5 log v_span (per asset; the network reads them twice)
MIN_DF = 4.0  # degrees of freedom stay above 4: the conditional kurtosis is finite (but for
# a half made heavier by fit_mean_and_tails, whose df stays above TAIL_FLOOR = 3: the skewness
# is finite)
MAX_LOG_SKEW = 0.5  # |log gamma| of the skewed Student-t: each half's scale within e^0.5
HEAD_PARAMS = 5  # per component: mixture logit, location, log scale, df, skew
# the recursion is bounded: the day's scale stays below exp(MAX_LOG_SCALE) = 5 long-run standard
# deviations (bounded_log_scale, the identity up to about 2), the network reads returns clipped
# at MAX_INPUT of them and vols at MAX_INPUT_VOL
MAX_LOG_SCALE = math.log(5.0)
BOUND_SHARPNESS = 4.0
MIN_LOG_SCALE = -7.0
MAX_INPUT = 15.0
MAX_INPUT_VOL = 8.0
BANK_SIZE = 4096  # asset-states kept for unconditional and regime-conditional sampling
MIN_BANK_STATES = 256  # states kept however many assets (the burn-in costs states x assets)
TARGET_PATHS = 256  # simulated for variance targeting
MAX_PERSISTENCE = 0.995  # a + b of the within-day correlation's recursion
CORRELATION_CHUNK = 64  # days of that recursion computed at once (a K x K weight matrix)
CHUNK_FLOATS = 2**24  # state floats of the paths sample_after_days draws at once
SHOCK_TYPES = 2  # day types of the common shock (CommonShock)
UNIVERSE = Path(__file__).parent / "pretrained" / "ar_universe"
OWN_WEIGHTS = ("net.correlation.", "net.scale_shift", "net.tail_", "net.mean_weight")  # not
# pretrained
SHOCK_KEY = "net.correlation.shock.raw"
TAIL_KEY = "net.tail_shift"
WEIGHT_KEY = "net.tail_weight"
MEAN_KEY = "net.mean_weight"
MAX_TAIL = 1.5  # |a| of the fitted tail asymmetry: nu -/+ 3 within e^1.5 of nu - 3 (side_dfs)
# and |w| of the tail weight (heavier_df)
TAIL_STEPS = 60  # values of a tried on each side of 0 (steps of MAX_TAIL / 60 = 0.025; w: 0.05)
MEAN_STEPS = 4  # the mean weight g is tried at 0, 1/4, ..., 1
MIN_TAIL_DAYS = 250  # validation days below which the tails stay untouched and g = 1
HEAD_KEY = "net.head."


@dataclasses.dataclass
class AutoregressiveConfig(TorchConfig):
    """Hyper-parameters (on top of :class:`TorchConfig`).

    - ``hidden``, ``layers``, ``components``: GRU width and depth, skewed Student-t components
      per asset and day (all three must match a pretrained checkpoint's).
    - ``pretrained``: ``"universe"`` (:data:`UNIVERSE`), a :func:`pretrain_universe` folder or
      None (train from scratch).
    - ``finetune``: train the pretrained network on the data (False: zero-shot).
    - ``crop``: days per training sequence, of which the first ``burn_in`` only set the state.
    - ``context``: days of history read before a continued path or a validation period.
    - ``variance_targeting``: shift each asset's log scale so long paths keep the training variance.
    - ``stationary_days``: burn-in run on the model's own draws before states count as stationary.
    - ``asymmetric_tails``: fit each asset's tail weight and asymmetry on the validation days
      (:func:`fit_mean_and_tails`). Off by default: the heavier half (df down to 3) calibrates
      one-day forecasts (the forecast engine turns it on) but lets long unconditional paths
      reach implausible days (pipelines/FORECAST.md).
    - ``shrunk_mean``: fit each asset's mean weight :math:`g` in [0, 1] on the validation days
      with the tails (:func:`fit_mean_and_tails`): the day's mean is :math:`g` times the
      network's (0: the training mean). The network's mean reverts after falls more than
      validation days support, which thins multi-day lower tails (pipelines/FORECAST.md). Off
      by default (the generator's paths stay as they were); the forecast engine turns it on.
    """

    hidden: int = 32
    layers: int = 1
    components: int = 1
    pretrained: str | None = "universe"
    finetune: bool = True
    crop: int = 512
    burn_in: int = 128
    context: int = 1024
    variance_targeting: bool = True
    asymmetric_tails: bool = False
    shrunk_mean: bool = False
    stationary_days: int = 1260
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    patience: int = 5
    weight_decay: float = 1e-4
    limits: ClassVar[dict[str, Limit]] = {
        "hidden": ">= 1", "layers": ">= 1", "components": ">= 1", "crop": ">= 2",
        "burn_in": ">= 0", "context": ">= 1", "stationary_days": ">= 1", "weight_decay": ">= 0"}


# -- inputs -----------------------------------------------------------------------------------
ALPHAS = np.array(span_weights(SPANS))  # the recursions' weights


def mean_squares(scaled: np.ndarray) -> np.ndarray:
    """Exponentially weighted mean squares (..., T, A, S) after each day of scaled returns
    (..., T, A), one per span of :data:`SPANS`, from 1 (the scaled training variance)."""
    return ewma_mean_squares(scaled, ALPHAS, 1.0)[..., 1:, :, :]


def features(y: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The network's inputs for a day: ``[y, |y|, 0.5 log v_span]`` (..., N_FEATURES), with
    ``y`` clipped to :data:`MAX_INPUT` long-run standard deviations and the vols to
    :data:`MAX_INPUT_VOL` (bounded inputs: see :func:`bounded_log_scale`)."""
    y = y.clamp(-MAX_INPUT, MAX_INPUT)
    log_vol = (0.5 * torch.log(v + 1e-6)).clamp(max=math.log(MAX_INPUT_VOL))
    return torch.cat([y[..., None], y.abs()[..., None], log_vol], dim=-1)


def bounded_log_scale(raw: torch.Tensor) -> torch.Tensor:
    r"""The log scale kept in :math:`[-7, M]`, :math:`M` = :data:`MAX_LOG_SCALE`:
    :math:`M - \mathrm{softplus}(k (M - x)) / k` with :math:`k` = :data:`BOUND_SHARPNESS`
    (smooth, so training gradients pass; within 0.005 of :math:`x` for :math:`x < M - 1`), then
    clamped below at -7. With bounded inputs (:func:`features`) the recursion cannot explode."""
    gap = BOUND_SHARPNESS * (MAX_LOG_SCALE - raw)
    return (MAX_LOG_SCALE - F.softplus(gap) / BOUND_SHARPNESS).clamp(min=MIN_LOG_SCALE)


def series_inputs(scaled: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets of contiguous scaled histories (..., T, A): inputs (..., T, A, F),
    where day ``t``'s are the features of day ``t - 1`` (of an empty past on day 0), and the
    targets (..., T, A)."""
    x, y, _ = after_inputs(scaled)
    start = features(torch.zeros_like(y[..., :1, :]),
                     torch.ones((*y[..., :1, :].shape, len(SPANS))))
    return torch.cat([start, x[..., :-1, :, :]], dim=-3), y


def after_inputs(scaled: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Features of each day of scaled histories (..., T, A, F), the returns (..., T, A) and
    the mean squares after each day (..., T, A, S)."""
    scaled = np.asarray(scaled, dtype=np.float64)
    y = torch.as_tensor(scaled, dtype=torch.float32)
    v = torch.as_tensor(mean_squares(scaled), dtype=torch.float32)
    return features(y, v), y, v


def with_market(x: torch.Tensor) -> torch.Tensor:
    """Each asset's inputs (..., A, F) followed by the market's, their mean over assets
    (..., A, 2F): volatility spills over (for one series the two halves are equal)."""
    return torch.cat([x, x.mean(dim=-2, keepdim=True).expand_as(x)], dim=-1)


# -- the network ------------------------------------------------------------------------------
class CommonShock(nn.Module):
    r"""A type of day shared by every asset (Gaussian-scale-mixture-like tail dependence):
    on a day of type :math:`k` (probability :math:`\pi_k`) the standardized returns are
    :math:`e = \mu_k + s_k L_t w`, with :math:`\sum_k \pi_k \mu_k = 0` and
    :math:`\sum_k \pi_k (s_k^2 + \mu_k^2) = 1`, so ``e`` keeps mean 0 and variance 1 (below
    the cap of :meth:`scales`) and its correlation is :math:`(\sum_k \pi_k s_k^2) R_t +
    (\sum_k \pi_k \mu_k^2) \mathbf{1} \mathbf{1}^\top`. A wide type moves every asset's
    tail on the same day, a negative :math:`\mu_k` makes that the lower tail. No type widens an
    asset's day beyond :data:`MAX_LOG_SCALE` (:meth:`scales`). The density stays exact: a
    mixture over ``k``, and asset by asset (the factor is triangular) the posterior of ``k``
    given the earlier assets. Zero parameters make every type the same (no common shock)."""

    def __init__(self, types: int = SHOCK_TYPES) -> None:
        super().__init__()
        # rows: logits of pi, raw means, raw log scales; a second, rarer type, wider and lower
        start = torch.zeros(3, types)
        start[:, 1:] = torch.tensor([math.log(0.15 / 0.85), -0.3, 0.6])[:, None]
        self.raw = nn.Parameter(start)

    def types(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Log probabilities, means and scales (K,) of the day types, normalized as above."""
        log_pi = F.log_softmax(self.raw[0], dim=-1)
        pi = log_pi.exp()
        mean = self.raw[1] - (pi * self.raw[1]).sum()
        scale = torch.exp(self.raw[2])
        norm = torch.sqrt((pi * (scale**2 + mean**2)).sum())
        return log_pi, mean / norm, scale / norm

    def scales(self, sd: torch.Tensor) -> torch.Tensor:
        r"""Each type's scale (K, ...) for assets whose day has standard deviation ``sd``
        (...) in long-run units: :math:`\min(s_k, \max(1, e^M / sd))`, so a wide type
        never takes a day's deviation beyond :math:`e^M` (:data:`MAX_LOG_SCALE`; days already
        past it keep theirs): the bound of :func:`bounded_log_scale` holds on every type."""
        cap = torch.clamp(math.exp(MAX_LOG_SCALE) / sd, min=1.0)
        return torch.minimum(self.types()[2].view(-1, *(1,) * sd.dim()), cap)

    def draw(self, log_weights: torch.Tensor, sd: torch.Tensor, generator: torch.Generator
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """The means (n, 1) and scales (n, A) (:meth:`scales` of ``sd`` (n, A)) of day types
        drawn with unnormalized log weights (n, K)."""
        kind = torch.multinomial(torch.softmax(log_weights, dim=-1), 1, generator=generator)
        scale = self.scales(sd).gather(0, kind.T[..., None].expand(1, *sd.shape))[0]
        return self.types()[1][kind], scale


class DynamicCorrelation(nn.Module):
    r"""The within-day correlation ``R_t`` of standardized returns ``e`` (..., A), a DCC(1,1)
    recursion (Engle, 2002) whose parameters are learned with the rest of the network:

    .. math:: Q_t = (1 - a - b)\, C + a\, e_{t-1} e_{t-1}^\top + b\, Q_{t-1}, \qquad
        R_t = \mathrm{diag}(Q_t)^{-1/2} Q_t\, \mathrm{diag}(Q_t)^{-1/2},

    from :math:`Q_0 = C`. The long-run correlation :math:`C = L_0 L_0^\top` has the rows
    ``[b_a, 1] / ||[b_a, 1]||`` of a strictly lower ``B`` (``base``) as :math:`L_0`, so it is a
    correlation matrix whatever ``B``; :math:`a + b \le` :data:`MAX_PERSISTENCE`, so ``Q`` stays
    positive definite and reverts to ``C``."""

    def __init__(self, n_assets: int) -> None:
        super().__init__()
        self.base = nn.Parameter(torch.zeros(n_assets, n_assets))
        # logits of a + b (over MAX_PERSISTENCE) and of a / (a + b): a = 0.03, b = 0.94
        self.dynamics = nn.Parameter(torch.tensor([math.log(0.97 / (MAX_PERSISTENCE - 0.97)),
                                                   math.log(0.03 / 0.94)]))
        self.shock = CommonShock()

    def target(self) -> torch.Tensor:
        """The long-run correlation ``C`` (A, A)."""
        raw = torch.tril(self.base, diagonal=-1) + torch.eye(len(self.base),
                                                               device=self.base.device)
        factor = raw / raw.norm(dim=-1, keepdim=True)
        return factor @ factor.T

    def weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The news weight ``a`` and the persistence ``b`` of the recursion."""
        total = MAX_PERSISTENCE * torch.sigmoid(self.dynamics[0])
        news = total * torch.sigmoid(self.dynamics[1])
        return news, total - news

    def start(self, batch: int) -> torch.Tensor:
        """``Q`` (batch, A, A) of an empty past: ``C``."""
        return self.target().expand(batch, -1, -1)

    def update(self, q: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """``Q`` (..., A, A) after a day of standardized returns ``e`` (..., A)."""
        a, b = self.weights()
        return (1 - a - b) * self.target() + a * e[..., :, None] * e[..., None, :] + b * q

    def path(self, e: torch.Tensor, q: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        r"""``Q`` before each day (B, T, A, A) of standardized returns ``e`` (B, T, A) and after
        the last, from ``q`` (B, A, A; None: an empty past). Computed :data:`CORRELATION_CHUNK`
        days at a time: :math:`Q_{s+k} - C = b^k (Q_s - C) + a \sum_{j<k} b^{k-1-j}
        (e_{s+j} e_{s+j}^\top - C)`."""
        a, b = self.weights()
        target = self.target()
        gap = (self.start(len(e)) if q is None else q) - target
        news = e[..., :, None] * e[..., None, :] - target
        out = []
        for lo in range(0, e.shape[1], CORRELATION_CHUNK):
            chunk = news[:, lo:lo + CORRELATION_CHUNK]
            k = torch.arange(chunk.shape[1] + 1, device=e.device, dtype=e.dtype)
            lag = k[:, None] - k[None, :-1] - 1  # (K + 1, K): day k reads day j if j < k
            weight = torch.where(lag >= 0, b ** lag.clamp(min=0), torch.zeros_like(lag))
            gaps = (b ** k)[None, :, None, None] * gap[:, None] + a * torch.einsum(
                "kj,bjxy->bkxy", weight, chunk)
            out.append(gaps[:, :-1])
            gap = gaps[:, -1]
        return target + torch.cat(out, dim=1), target + gap

    @staticmethod
    def factor(q: torch.Tensor) -> torch.Tensor:
        """``L_t`` (..., A, A): the Cholesky factor of ``R_t``, ``Q`` (..., A, A) normalized;
        NaN where ``Q`` is not finite (a diverged fit), so that the loss says so."""
        scale = torch.sqrt(torch.diagonal(q, dim1=-2, dim2=-1))
        factor, info = torch.linalg.cholesky_ex(q / scale[..., :, None] / scale[..., None, :])
        return torch.where((info == 0)[..., None, None], factor, torch.nan)


class ARNet(nn.Module):
    """Shared per-asset GRU and skewed Student-t head; a dynamic within-day correlation."""

    def __init__(self, n_assets: int, hidden: int, layers: int, components: int = 1) -> None:
        super().__init__()
        self.n_assets, self.components = n_assets, components
        # single-layer GRUs stacked by hand, so every layer's state on every day is at hand
        self.grus = nn.ModuleList([nn.GRU(2 * N_FEATURES if i == 0 else hidden, hidden,
                                          batch_first=True) for i in range(layers)])
        self.head = nn.Linear(hidden + 2 * N_FEATURES, HEAD_PARAMS * components)
        with torch.no_grad():  # symmetric to start with: the data decide the skew
            self.head.weight.view(components, HEAD_PARAMS, -1)[:, 4].zero_()
            self.head.bias.view(components, HEAD_PARAMS)[:, 4].zero_()
        self.correlation = DynamicCorrelation(n_assets)
        # per-asset shift of the log scale, set by variance targeting after training, and
        # tail asymmetry, tail weight and mean weight, fitted on validation days after training
        # (fit_mean_and_tails)
        self.register_buffer("scale_shift", torch.zeros(n_assets))
        self.register_buffer("tail_shift", torch.zeros(n_assets))
        self.register_buffer("tail_weight", torch.zeros(n_assets))
        self.register_buffer("mean_weight", torch.ones(n_assets))

    def read(self, inputs: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        """Every layer's output (layers, B, T, A, H) after each day of inputs with the market's
        (B, T, A, 2F) (:func:`with_market`), from GRU states (layers, B * A, H) or zeros."""
        batch, days, assets, _ = inputs.shape
        inputs = inputs.transpose(1, 2).reshape(batch * assets, days, 2 * N_FEATURES)
        outs = []
        for i, gru in enumerate(self.grus):
            inputs, _ = gru(inputs, None if state is None else state[i:i + 1].contiguous())
            outs.append(inputs.view(batch, assets, days, -1).transpose(1, 2))
        return torch.stack(outs)

    def marginal(self, x: torch.Tensor, state: torch.Tensor | None = None
                 ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """Mixture logits, locations, scales, dfs, log skews and tail asymmetries (B, T, A, K)
        of the day after each input day of ``x`` (B, T, A, F), and the GRU states after the
        last day (layers, B * A, H)."""
        inputs = with_market(x)
        outs = self.read(inputs, state)
        last = outs[:, :, -1].reshape(len(self.grus), -1, outs.shape[-1])
        return self._density(outs[-1], inputs), last

    def _density(self, hidden: torch.Tensor, inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Mixture logits, locations, scales, dfs, log skews and tail asymmetries (..., K) from
        the top GRU output and the inputs with the market's (skip); the log skew is
        :math:`g_{max} \\tanh(raw / g_{max})` (:data:`MAX_LOG_SKEW`), the mean scaled by each
        asset's ``mean_weight`` (:func:`shrunk_location`), the degrees of freedom made heavier
        by each asset's ``tail_weight``
        (:func:`~synthfin.models.components.heavier_df`), the tail asymmetry each
        asset's ``tail_shift`` (:func:`~synthfin.models.components.side_dfs`), with the
        location moved so that the tails change the shape, not the mean
        (:func:`centred_location`)."""
        raw = self.head(torch.cat([hidden, inputs], dim=-1))
        raw = raw.unflatten(-1, (self.components, HEAD_PARAMS))
        log_scale = raw[..., 2] + self.scale_shift[:, None]
        scale = torch.exp(bounded_log_scale(log_scale))
        log_skew = MAX_LOG_SKEW * torch.tanh(raw[..., 4] / MAX_LOG_SKEW)
        df = MIN_DF + F.softplus(raw[..., 3])
        loc = raw[..., 1]
        if not torch.all(self.mean_weight == 1):
            loc = shrunk_location(loc, scale, df, log_skew, self.mean_weight[:, None])
        if self.tail_weight.any():
            df = heavier_df(df, self.tail_weight[:, None])
        tail = self.tail_shift[:, None].expand_as(df).clone()  # not a view of the buffer
        if self.tail_shift.any():
            loc = centred_location(loc, scale, df, log_skew, tail)
        return raw[..., 0], loc, scale, df, log_skew, tail

    def log_prob(self, y: torch.Tensor, x: torch.Tensor, state: torch.Tensor | None = None
                 ) -> torch.Tensor:
        r"""Log density (B, T, A) of each asset's return given the past and the same day's
        earlier assets: :math:`\log \sum_k P(k \mid e_{<a})\, p_{mix}(m + sd\, w_{ka}) /
        (L_{aa} s_{ka})` with the mixture's mean :math:`m` and sd, :math:`e = (y - m) / sd`,
        :math:`w_k = L_t^{-1} (e - \mu_k) / s_k` and the day types' posterior given the
        earlier assets (:class:`CommonShock`; one asset: :math:`\log p_{mix}(y)`); the
        correlation starts from an empty past."""
        return self.joint_log_prob(y, self.marginal(x, state)[0])

    def joint_log_prob(self, y: torch.Tensor, params: tuple[torch.Tensor, ...]
                       ) -> torch.Tensor:
        """:meth:`log_prob` (B, T, A) given each day's mixture parameters (B, T, A, K)."""
        if self.n_assets == 1:
            return student_t_mixture_log_prob(y, *params)
        e, mean, sd = self.standardized(y, params)
        factor = self.correlation.factor(self.correlation.path(e)[0])
        shock = self.correlation.shock
        log_pi, mu = (t.view(-1, *(1,) * e.dim()) for t in shock.types()[:2])
        s = shock.scales(sd)
        w = torch.linalg.solve_triangular(factor, ((e - mu) / s)[..., None], upper=False)[..., 0]
        diagonal = torch.diagonal(factor, dim1=-2, dim2=-1)
        # per day type (K, B, T, A), then each asset given the earlier ones: the types weighted
        # by their posterior given those assets
        log_t = student_t_mixture_log_prob(mean + sd * w, *params) - torch.log(diagonal * s)
        earlier = torch.cat([torch.zeros_like(log_t[..., :1]), log_t.cumsum(-1)[..., :-1]], -1)
        return torch.logsumexp(torch.log_softmax(log_pi + earlier, dim=0) + log_t, dim=0)

    @staticmethod
    def standardized(y: torch.Tensor, params: tuple[torch.Tensor, ...]
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Standardized returns ``e = (y - m) / sd`` (...) under mixture parameters (..., K),
        with the mixture's mean ``m`` and ``sd`` (:func:`mixture_moments`)."""
        mean, sd = mixture_moments(*params)
        return (y - mean) / sd, mean, sd

    def step(self, x: torch.Tensor, v: torch.Tensor, state: torch.Tensor | None,
             q: torch.Tensor, generator: torch.Generator, given: torch.Tensor | None = None,
             given_idx: list[int] | None = None) -> tuple[torch.Tensor, ...]:
        """One sampled day for every path: from inputs ``x`` (n, A, F), mean squares ``v``
        (n, A, S), GRU state and correlation state ``q`` (n, A, A), the day's scaled returns
        (n, A) and the next x, v, state, q. With ``given`` (n, k), the assets ``given_idx``
        take those returns and the others are drawn from the model's conditional given them
        (:func:`condition_innovations`)."""
        n, assets, _ = x.shape
        market = with_market(x)
        inputs = market.reshape(n * assets, 2 * N_FEATURES)
        if state is None:
            state = x.new_zeros(len(self.grus), n * assets, self.grus[0].hidden_size)
        layers = []
        for gru, h in zip(self.grus, state, strict=True):  # one cell per layer: no sequence
            inputs = torch.gru_cell(inputs, h, gru.weight_ih_l0, gru.weight_hh_l0,
                                    gru.bias_ih_l0, gru.bias_hh_l0)
            layers.append(inputs)
        state = torch.stack(layers)
        params = self._density(inputs.view(n, 1, assets, -1), market[:, None])
        logits, *parts = (p[:, 0] for p in params)
        if self.components > 1:
            pick = torch.multinomial(torch.softmax(logits, -1).flatten(0, 1), 1,
                                     generator=generator).view(*logits.shape[:2], 1)
            loc, scale, df, log_skew, tail = (p.gather(-1, pick)[..., 0] for p in parts)
        else:
            loc, scale, df, log_skew, tail = (p[..., 0] for p in parts)
        y = loc + scale * skewed_t_sample(df, log_skew, generator, tail)
        if self.n_assets > 1:  # a day type, then correlate the standardized draws
            day = tuple(p[:, 0] for p in params)
            e, mean, sd = self.standardized(y, day)
            factor = self.correlation.factor(q)
            shock = self.correlation.shock
            if given is None:
                mu, s = shock.draw(shock.types()[0].expand(n, -1), sd, generator)
                w = mu + s * (factor @ e[..., None])[..., 0]
            else:
                e_given = (given - mean[:, given_idx]) / sd[:, given_idx]
                log_weights = self._given_type_log_prob(
                    factor, e_given, day, given_idx, mean[:, given_idx], sd[:, given_idx])
                mu, s = shock.draw(log_weights, sd, generator)
                w = mu + s * condition_innovations(factor, e, (e_given - mu) / s[:, given_idx],
                                                   given_idx)
            y = mean + sd * w
            q = self.correlation.update(q, w)
        if given is not None:
            y[:, given_idx] = given  # exactly the path (not through the rounding above)
        v = update_mean_squares(v, y, ALPHAS)
        return y, features(y, v), v, state, q

    def _given_type_log_prob(self, factor: torch.Tensor, e_given: torch.Tensor,
                             day: tuple[torch.Tensor, ...], given_idx: list[int],
                             mean: torch.Tensor, sd: torch.Tensor) -> torch.Tensor:
        """Log posterior weights (n, K) of the day types given the standardized returns
        ``e_given`` (n, k) of the assets ``given_idx`` (whose mixture means and sds are ``mean``
        and ``sd`` (n, k)): the prior times their density under each type, with the Cholesky
        factor of their correlation (``factor`` (n, A, A) of ``R_t``); exact when they come
        first, the Gaussian-copula reading otherwise."""
        shock = self.correlation.shock
        log_pi, mu, _ = shock.types()
        corr = factor @ factor.transpose(-1, -2)
        sub = torch.linalg.cholesky(corr[:, given_idx][:, :, given_idx])
        part = tuple(p[:, given_idx] for p in day)
        s = shock.scales(sd)  # (K, n, k)
        z = (e_given - mu[:, None, None]) / s
        w = torch.linalg.solve_triangular(sub, z[..., None], upper=False)[..., 0]
        log_t = student_t_mixture_log_prob(mean + sd * w, *part) - torch.log(s)
        return (log_pi[:, None] + log_t.sum(-1)).T


# -- training ---------------------------------------------------------------------------------
def _series(train: np.ndarray, val: np.ndarray, context: int, device: torch.device) -> Series:
    return split_series(*series_inputs(np.concatenate([train, val])), len(train), context, device)


def initial_correlation(scaled: np.ndarray) -> torch.Tensor:
    """A starting point for ``DynamicCorrelation.base`` (A, A) from training returns (T, A):
    the Cholesky rows of their correlation matrix, each divided by its diagonal."""
    factor = np.linalg.cholesky(np.corrcoef(np.asarray(scaled).T))
    return torch.as_tensor(np.tril(factor / np.diag(factor)[:, None], -1), dtype=torch.float32)


def fit_correlation(net: ARNet, series: Series, lr: float = 0.02, steps: int = 300,
                    patience: int = 10) -> float:
    """Maximum likelihood of the within-day correlation (``net.correlation``) given the
    network's marginals, as the second step of a DCC fit: full-batch Adam on the training days
    (read from an empty past), stopped on the validation days' negative log-likelihood per
    asset-day, which it returns; the parameters kept are those of the best validation step."""
    with torch.no_grad():
        train = net.marginal(series.x[None])[0]
        val = net.marginal(series.val_x[None])[0]

    def nll(y: torch.Tensor, params: tuple[torch.Tensor, ...], first: int) -> torch.Tensor:
        return -net.joint_log_prob(y[None], params)[:, first:].mean()

    optimizer = torch.optim.Adam(net.correlation.parameters(), lr=lr)
    best, best_state, waited = math.inf, None, 0
    for _ in range(steps):
        with torch.no_grad():
            score = nll(series.val_y, val, series.val_from).item()
        if score < best - 1e-6:
            best, waited = score, 0
            best_state = {k: v.clone() for k, v in net.correlation.state_dict().items()}
        elif (waited := waited + 1) >= patience:
            break
        optimizer.zero_grad(set_to_none=True)
        nll(series.y, train, 0).backward()
        optimizer.step()
    net.correlation.load_state_dict(best_state)
    return best


def centred_location(loc: torch.Tensor, scale: torch.Tensor, df: torch.Tensor,
                     log_skew: torch.Tensor, tail: torch.Tensor) -> torch.Tensor:
    r"""The location of two-piece tails ``tail`` that keeps the mean of the same component
    without them: :math:`\mu - s\,(E z_a - E z_0)` (:func:`skewed_t_moments`). A heavier
    lower tail at a fixed location would lower the mean, and simulated paths would drift."""
    return loc - scale * (skewed_t_moments(df, log_skew, tail)[0]
                          - skewed_t_moments(df, log_skew)[0])


def shrunk_location(loc: torch.Tensor, scale: torch.Tensor, df: torch.Tensor,
                    log_skew: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    r"""The location that makes a component's mean :math:`g` (``weight``) times the network's:
    :math:`\mu - (1 - g)(\mu + s\, E z)` (:func:`skewed_t_moments`; in scaled units, so
    :math:`g = 0` is the training mean)."""
    return loc - (1 - weight) * (loc + scale * skewed_t_moments(df, log_skew)[0])


def fit_mean_and_tails(net: ARNet, series: Series, *, mean: bool = True,
                       tails: bool = True) -> None:
    r"""Each asset's mean weight :math:`g` (``net.mean_weight``, with ``mean``), tail weight
    :math:`w` (``net.tail_weight``) and asymmetry :math:`a` (``net.tail_shift``, with
    ``tails``) by maximum likelihood on the validation days of ``series``, the rest of the
    network fixed.

    - The day's mean is :math:`g` times the network's (:func:`shrunk_location`), tried at
      :math:`0, 1/4, \dots, 1` (:data:`MEAN_STEPS`). Daily returns' path-dependent mean is
      weak and unstable; a network trained on earlier years may revert after falls more than
      later years do, and over several days that reversal thins the lower tail of the sums.
    - The halves' degrees of freedom are :math:`\nu_\mp = f + (\nu - f) e^{-w \mp a}`
      (:func:`heavier_df`, :func:`side_dfs`), so each tail is fitted on its own
      (:math:`\log(\nu_\mp - f)` moves by :math:`-w \mp a`), the mean kept
      (:func:`centred_location`): a grid on :math:`[-m, m]^2` (:data:`MAX_TAIL`;
      :math:`2 \times` :data:`TAIL_STEPS` + 1 values of :math:`a`, half as many of :math:`w`).
      Daily equity returns standardized by their forecast fall below their 1 % quantile more
      often than they rise above the 99 % one, and more often after 2013 than before
      (pipelines/FORECAST.md): a heavier lower half at the same peak and width is that, which
      a symmetric or a scale-skewed Student-t (whose fitted skew is near 0) cannot give.

    Asset by asset (its one-day marginal density), jointly over the grid. With fewer than
    :data:`MIN_TAIL_DAYS` validation days the 1 % tails hold too few days to tell, and
    :math:`g = 1`, :math:`w = a = 0` (the network's own density)."""
    net.mean_weight.fill_(1.0)
    net.tail_shift.zero_()
    net.tail_weight.zero_()
    if len(series.val_y) - series.val_from < MIN_TAIL_DAYS or not (mean or tails):
        return
    with torch.no_grad():
        logits, loc, scale, df, log_skew = (p[0, series.val_from:] for p in
                                            net.marginal(series.val_x[None])[0][:5])
        y = series.val_y[series.val_from:]
        device = y.device
        steps = torch.arange(-TAIL_STEPS, TAIL_STEPS + 1, device=device) * (MAX_TAIL
                                                                            / TAIL_STEPS)
        if not tails:
            steps = steps[TAIL_STEPS:TAIL_STEPS + 1]  # 0 only
        weights = (torch.linspace(1, 0, MEAN_STEPS + 1, device=device) if mean
                   else torch.ones(1, device=device))  # from 1: a tie keeps the network's mean
        shifts = steps[:, None, None, None].expand(-1, *df.shape)  # (a, T, A, K)
        best = torch.full(df.shape[1:2], -math.inf, device=device)
        for g in weights:
            shrunk = shrunk_location(loc, scale, df, log_skew, g)
            for w in steps[::2]:
                heavier = heavier_df(df, w)
                scores = student_t_mixture_log_prob(
                    y, logits, centred_location(shrunk, scale, heavier, log_skew, shifts),
                    scale, heavier, log_skew, shifts).sum(1)  # (a, A)
                top, pick = scores.max(0)
                better = top > best
                best = torch.where(better, top, best)
                net.mean_weight.copy_(torch.where(better, g, net.mean_weight))
                net.tail_weight.copy_(torch.where(better, w, net.tail_weight))
                net.tail_shift.copy_(torch.where(better, steps[pick], net.tail_shift))


def pretrain_universe(universe: Mapping[str, WindowData], out: str | Path, *,
                      config: AutoregressiveConfig | None = None, run_dir: str | Path | None = None,
                      resume: bool = False) -> Path:
    """Train one univariate network on every asset of every series in ``universe`` (each in its
    own scaled units, training days only, validation days for early stopping) and write it to
    ``out`` as a checkpoint for ``AutoregressiveConfig(pretrained=out)``: ``weights.safetensors``
    and ``universe.json`` (sizes, series, their training periods, validation NLL)."""
    config = config or AutoregressiveConfig(pretrained=None)
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    series = [_series(data.train.returns[:, [a]], data.val.returns[:, [a]], config.context,
                      device)
              for data in universe.values() for a in range(data.n_assets)]
    net = ARNet(1, config.hidden, config.layers, config.components).to(device)
    best, _ = fit_series(net, series, config, device,
                         None if run_dir is None else Path(run_dir), resume, "universe")
    meta = {"hidden": config.hidden, "layers": config.layers, "components": config.components,
            "spans": list(SPANS), "val_nll": best, "config": dataclasses.asdict(config),
            "series": {name: {"assets": data.assets, "train": data.split_dates["train"],
                              "val": data.split_dates["val"]}
                       for name, data in universe.items()}}
    weights = {k: v for k, v in module_state({"net": net}).items()
               if not k.startswith(OWN_WEIGHTS)}
    return save_checkpoint(out, weights, meta)


def load_pretrained(net: ARNet, source: str, config: AutoregressiveConfig) -> None:
    """Copy a pretrained checkpoint's GRU and head into ``net`` (its correlation and scale
    shift stay)."""
    sizes = {key: getattr(config, key) for key in ("hidden", "layers", "components")}
    state = _with_skew(read_checkpoint(UNIVERSE if source == "universe" else Path(source),
                                       sizes), config.components)
    state.update({k: v for k, v in module_state({"net": net}).items()
                  if k.startswith(OWN_WEIGHTS)})
    load_module_state({"net": net}, state)


# -- the generator ----------------------------------------------------------------------------
@register
class AutoregressiveGenerator(TorchGenerator):
    """Autoregressive skewed Student-t density model of daily returns over long histories:
    ``sample`` draws from its stationary states (of one regime, if asked), :meth:`sample_after`
    continues a history, :meth:`one_step_log_likelihood` is the one-day-ahead forecast
    density."""

    name = "ar"
    config_class = AutoregressiveConfig
    config: AutoregressiveConfig

    def _build(self) -> dict[str, nn.Module]:
        return {"net": ARNet(len(self.spec_.assets), self.config.hidden, self.config.layers,
                             self.config.components)}

    def _train(self, data: WindowData, run_dir: Path | None, resume: bool) -> None:
        net = self.modules_["net"]
        series = [_series(data.train.returns, data.val.returns, self.config.context,
                          self.device_)]
        if self.config.pretrained is not None:
            load_pretrained(net, self.config.pretrained, self.config)
        if data.n_assets > 1:
            with torch.no_grad():
                net.correlation.base.copy_(initial_correlation(data.train.returns))
        start_nll = validation_nll(net, series)
        self.val_nll_, self.history_ = start_nll, []
        if self.config.pretrained is None or self.config.finetune:
            start = {k: v.clone() for k, v in net.state_dict().items()}
            best, self.history_ = fit_series(net, series, self.config, self.device_, run_dir,
                                             resume, "mle")
            if self.config.pretrained is not None and best >= start_nll:
                net.load_state_dict(start)  # fine-tuning did not help on validation days
            self.val_nll_ = min(best, start_nll) if self.config.pretrained else best
        if self.config.asymmetric_tails or self.config.shrunk_mean:
            fit_mean_and_tails(net, series[0], mean=self.config.shrunk_mean,
                               tails=self.config.asymmetric_tails)
        if data.n_assets > 1:
            report_progress("within-day correlation (maximum likelihood given the marginals)")
            fit_correlation(net, series[0])
        report_progress(f"stationary states ({self.config.stationary_days} days run"
                        f"{', variance targeted' if self.config.variance_targeting else ''})")
        self._fill_bank(data)
        if self.config.variance_targeting:
            self._target_variance()
        self.val_nll_ = validation_nll(net, series)  # the model as it is kept
        self._burn_in_bank(data)

    def _target_variance(self, tolerance: float = 0.01, iterations: int = 8) -> None:
        r"""Variance targeting: shift each asset's log scale by :math:`\delta_a` so that the mean
        square of simulated paths (the ``stationary_days`` after as many days from training
        states, common random numbers) equals the training variance, 1 in scaled units; by the
        secant method on :math:`\log \overline{y^2}(\delta)`, per asset."""
        net, days = self.modules_["net"], self.config.stationary_days

        def log_level(shift: torch.Tensor) -> np.ndarray:
            net.scale_shift.copy_(shift)
            paths = self._sample(TARGET_PATHS, 2 * days, None,
                                 np.random.default_rng(self.config.seed))
            squares = np.minimum(np.square(paths[:, days:]), PLAUSIBLE_SDS**2)
            return np.log(np.mean(squares, axis=(0, 1)))  # no path's excess can steer it

        shift = torch.zeros_like(net.scale_shift, device="cpu")  # the secant runs on the host
        previous = None  # (shift, level) of the last iteration
        for _ in range(iterations):
            level = log_level(shift)
            if np.all(np.abs(level) < tolerance):
                break
            slope = np.full_like(level, 20.0)  # about d log level / d shift on S&P 500
            if previous is not None:
                step = (shift - previous[0]).numpy()
                np.divide(level - previous[1], step, out=slope, where=np.abs(step) > 1e-9)
            previous = (shift.clone(), level)
            step = level / np.clip(slope, 2.0, 200.0)  # the level rises with the scale
            shift = (shift - torch.as_tensor(step, dtype=shift.dtype)).clamp(-0.5, 0.5)
        net.scale_shift.copy_(shift)

    # -- stationary states, to start sampled paths from ---------------------------------------
    def _fill_bank(self, data: WindowData) -> None:
        """Keep up to :data:`BANK_SIZE` training days' states (GRU states, mean squares, day's
        return), each with the regime of the realized vol of the days up to it."""
        scaled = data.train.returns
        vol = trailing_realized_vol(data.unscale(scaled), data.vol_lookback)
        after = np.append(vol[1:], np.nan)  # vol[t + 1] covers the lookback days up to day t
        known = np.flatnonzero(np.isfinite(after))
        days = known[np.linspace(0, len(known) - 1, min(BANK_SIZE, len(known))).astype(int)]
        state, v, y, q = self._states(scaled[None], days)
        self.bank_ = {"state": state[:, 0], "v": v[0], "y": y[0], "q": q[0],
                      "regime": torch.as_tensor(data.regimes.label(after[days]))}

    def _burn_in_bank(self, data: WindowData) -> None:
        """Carry the bank's states (up to :data:`BANK_SIZE` asset-states in all, at least
        :data:`MIN_BANK_STATES` states) ``stationary_days`` forward with the model's own
        draws and keep where they end, each with the regime of the realized vol of its last
        ``vol_lookback`` days: paths started there are stationary (no drift of the level)."""
        count = len(self.bank_["y"])
        keep = np.linspace(0, count - 1, min(count, max(MIN_BANK_STATES,
                                                        BANK_SIZE // data.n_assets))).astype(int)
        bank = {k: (v[:, keep] if k == "state" else v[keep]).to(self.device_)
                for k, v in self.bank_.items()}
        carry = (features(bank["y"], bank["v"]), bank["v"], bank["state"], bank["q"])
        rng = np.random.default_rng(self.config.seed)
        last = max(TRADING_DAYS, data.vol_lookback)  # holds the days of the regime's vol
        chunks = [TRADING_DAYS] * -(-(self.config.stationary_days - last) // TRADING_DAYS) + [last]
        for days in chunks:  # a year at a time: memory stays bounded for many assets
            paths, carry = self._roll(*carry, days, rng)
        recent = data.unscale(paths[:, -data.vol_lookback:].double().cpu().numpy())
        self.bank_ = {"state": carry[2].cpu(), "v": carry[1].cpu(), "y": paths[:, -1].cpu(),
                      "q": carry[3].cpu(),
                      "regime": torch.as_tensor(data.regimes.label(realized_vol(recent)))}

    def _states(self, scaled: np.ndarray, days: np.ndarray
                ) -> tuple[torch.Tensor, ...]:
        """After reading each of ``days`` of scaled histories (m, T, A): the GRU states
        (layers, m, len(days), A, H), mean squares (m, len(days), A, S), returns
        (m, len(days), A) and correlation states (m, len(days), A, A), on the CPU."""
        net = self.modules_["net"]
        x, y, v = after_inputs(scaled)
        start = series_inputs(scaled[:, :1])[0].to(self.device_)
        states, qs, state = [], [], None
        with torch.no_grad():
            # the density of each day comes from the day before (day 0's from an empty past)
            density = net.marginal(start)[0]
            q = net.correlation.start(len(x))
            for lo in range(0, x.shape[1], 512):  # chunked over time: memory stays bounded
                inputs = with_market(x[:, lo:lo + 512].to(self.device_))
                outs = net.read(inputs, state)
                state = outs[:, :, -1].reshape(len(outs), -1, outs.shape[-1])
                keep = days[(days >= lo) & (days < lo + 512)] - lo
                states.append(outs[:, :, keep].cpu())
                after = net._density(outs[-1], inputs)
                e, *_ = net.standardized(y[:, lo:lo + 512].to(self.device_),
                                         tuple(torch.cat([d, a[:, :-1]], dim=1)
                                               for d, a in zip(density, after, strict=True)))
                density = tuple(a[:, -1:] for a in after)
                before, q = net.correlation.path(e, q)
                qs.append(net.correlation.update(before[:, keep], e[:, keep]).cpu())
        return torch.cat(states, dim=2), v[:, days], y[:, days], torch.cat(qs, dim=1)

    # -- likelihood on the original scale ------------------------------------------------------
    def log_prob(self, returns: np.ndarray, *, per_step: bool = False) -> np.ndarray:
        """Exact log-likelihood of contiguous unscaled histories (n, days, assets), each read
        from an empty past; the scaler's Jacobian is included, so the values are log densities
        of the log returns themselves. Returns (n,) sums or (n, days) per day with ``per_step``.
        """
        spec = self._spec()
        returns = np.asarray(returns, dtype=np.float64)
        if returns.ndim != 3 or returns.shape[2] != len(spec.assets):
            raise ModelError(f"returns must be (n, days, {len(spec.assets)}), got "
                             f"{returns.shape}")
        scaled = spec.scaler.transform(returns)
        x, y = series_inputs(scaled)
        with torch.no_grad():
            log_p = self.modules_["net"].log_prob(y.to(self.device_), x.to(self.device_))
        log_p = log_p.double().cpu().numpy()
        per_day = (log_p + spec.scaler.log_abs_det_jacobian(returns)).sum(axis=2)
        return per_day if per_step else per_day.sum(axis=1)

    def one_step_log_likelihood(self, returns: np.ndarray, first_day: int) -> np.ndarray:
        """Log density of each day ``t >= first_day`` of a contiguous unscaled series (T, A)
        given every day before it: the one-day-ahead forecast density, comparable with a GARCH
        filter on the same days."""
        if not 1 <= first_day < len(returns):
            raise ModelError(f"first_day must be in [1, {len(returns)}), got {first_day}")
        return self.log_prob(np.asarray(returns)[None], per_step=True)[0, first_day:]

    # -- sampling --------------------------------------------------------------------------------
    def _sample(self, n: int, length: int, regime: int | None,
                rng: np.random.Generator) -> np.ndarray:
        codes = self.bank_["regime"].numpy()
        pool = np.arange(len(codes)) if regime is None else np.flatnonzero(codes == regime)
        if len(pool) == 0:
            raise ModelError(f"none of the model's {len(codes)} stationary states is in regime "
                             f"{regime}; cannot condition on it")
        pick = torch.as_tensor(rng.choice(pool, size=n))
        state = self.bank_["state"][:, pick].to(self.device_)
        v, y, q = (self.bank_[key][pick].to(self.device_) for key in ("v", "y", "q"))
        return self._roll(features(y, v), v, state, q, length, rng)[0].double().cpu().numpy()

    @property
    def context_days(self) -> int:
        """Days of history :meth:`sample_after` reads (earlier days are ignored)."""
        return self.config.context

    def _context_state(self, context: np.ndarray, n: int) -> tuple[torch.Tensor, ...]:
        """GRU states (layers, n, A, H), mean squares (n, A, S), last returns (n, A) and
        correlation states (n, A, A) after reading unscaled ``context`` (days, assets), or one
        per path (n, days, assets)."""
        recent, per_path = self._spec().scaled_context(context, n, self.config.context)
        state, v, y, q = self._states(recent, np.array([recent.shape[1] - 1]))
        state, v, y, q = state[:, :, 0], v[:, 0], y[:, 0], q[:, 0]
        if not per_path:
            state, v, y, q = (state.expand(-1, n, -1, -1), v.expand(n, -1, -1),
                              y.expand(n, -1), q.expand(n, -1, -1))
        return state, v, y, q

    def sample_after(self, context: np.ndarray, n: int, length: int = 1,
                     seed: int | None = None) -> np.ndarray:
        """Continue real (or any) history: ``n`` paths of ``length`` unscaled log returns after
        ``context``, one history (days, assets) for every path or one per path (n, days,
        assets), of which the last :attr:`context_days` days are read (``length=1``: the
        one-day-ahead draws of VaR / ES backtests; a shock enters the volatility state at once)."""
        spec = self._spec()
        if n < 1 or length < 1:
            raise ModelError(f"n and length must be >= 1, got {n} and {length}")
        rng = np.random.default_rng(seed)
        state, v, y, q = self._context_state(context, n)
        paths, _ = self._roll(features(y, v).to(self.device_), v.to(self.device_),
                              state.to(self.device_), q.to(self.device_), length, rng)
        return self._plausible(self._finite(spec.scaler.inverse(paths.double().cpu().numpy())),
                               "sample_after")

    def sample_after_days(self, history: np.ndarray, days: np.ndarray, n: int,
                          length: int = 1, seed: int | None = None) -> np.ndarray:
        """Continue one real history from each of many days at once: paths (len(days), n,
        length, assets) of unscaled log returns, those of day ``t`` drawn given
        ``history[:t]`` only. The history (days, assets) is read once, from its first day (not
        only the last :attr:`context_days`, which :meth:`sample_after` reads from the start
        state; the states forget the difference within that context), and the paths of all
        days are drawn together: the dense forecasts of a backtest in one pass."""
        spec = self._spec()
        days, history = np.asarray(days, dtype=np.int64), np.asarray(history, dtype=np.float64)
        if n < 1 or length < 1 or days.ndim != 1 or len(days) == 0 \
                or days.min() < 1 or days.max() > len(history):
            raise ModelError(f"need n and length >= 1 and forecast days, a 1-D array, in [1, "
                             f"{len(history)}] (a day reads the history before it); got n {n}, "
                             f"length {length}, days {days.ravel()[:5].tolist()}"
                             f"{'...' if days.size > 5 else ''}")
        last = int(days.max())
        scaled, _ = spec.scaled_context(history[:last], 1, last)
        state, v, y, q = self._states(scaled, days - 1)
        rng = np.random.default_rng(seed)
        assets = len(spec.assets)
        per_path = assets * (assets + self.config.hidden * self.config.layers)
        chunk = max(1, CHUNK_FLOATS // (n * per_path))  # days drawn together: bounded memory
        out = []
        for lo in range(0, len(days), chunk):
            part = slice(lo, lo + chunk)
            s = state[:, 0, part].repeat_interleave(n, dim=1).to(self.device_)
            vv, yy, qq = (t[0, part].repeat_interleave(n, dim=0).to(self.device_)
                          for t in (v, y, q))
            out.append(self._roll(features(yy, vv), vv, s, qq, length, rng)[0].cpu())
        paths = spec.scaler.inverse(torch.cat(out).double().numpy())
        paths = self._plausible(self._finite(paths), "sample_after_days")
        return paths.reshape(len(days), n, length, -1)

    def context_sampler(self) -> ContextSampler:
        return self

    def sample_given(self, given: np.ndarray, given_assets: list[str], n: int, *,
                     context: np.ndarray | None = None, seed: int | None = None) -> np.ndarray:
        """``n`` paths (n, days, assets) of unscaled log returns in which ``given_assets`` follow
        ``given`` (days, k) and the others are drawn given them day by day
        (:func:`condition_innovations`), continuing ``context`` (days, assets) if given, else
        from the model's stationary states."""
        spec = self._spec()
        idx, given = given_arguments(spec, given, given_assets, n)
        rng = np.random.default_rng(seed)
        if context is None:
            pick = torch.as_tensor(rng.choice(len(self.bank_["y"]), size=n))
            state, v, y, q = (self.bank_["state"][:, pick], self.bank_["v"][pick],
                              self.bank_["y"][pick], self.bank_["q"][pick])
        else:
            state, v, y, q = self._context_state(context, n)
        full = np.zeros((len(given), len(spec.assets)))
        full[:, idx] = given
        scaled = spec.scaler.transform(full)[:, idx]
        paths, _ = self._roll(features(y, v).to(self.device_), v.to(self.device_),
                              state.to(self.device_), q.to(self.device_), len(given), rng,
                              scaled, idx)
        out = spec.scaler.inverse(paths.double().cpu().numpy())
        out[:, :, idx] = given
        return self._plausible(self._finite(out), "sample_given")

    def _roll(self, x: torch.Tensor, v: torch.Tensor, state: torch.Tensor, q: torch.Tensor,
              length: int, rng: np.random.Generator, given: np.ndarray | None = None,
              given_idx: list[int] | None = None
              ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Ancestral sampling of ``length`` scaled days (n, length, A) from inputs ``x``
        (n, A, F), mean squares ``v`` (n, A, S), GRU states (layers, n, A, H) and correlation
        states ``q`` (n, A, A); also the inputs, mean squares and states after the last day, to
        continue from. ``given`` (length, k) scaled returns of the assets ``given_idx`` fix
        those assets' days."""
        net = self.modules_["net"]
        n, assets = x.shape[:2]
        state = state.reshape(state.shape[0], n * assets, -1).contiguous()
        out = torch.empty(n, length, assets, device=self.device_)
        generator = self._torch_generator(rng)
        devices = [self.device_] if self.device_.type == "cuda" else []
        with torch.no_grad(), torch.random.fork_rng(devices=devices):
            torch.manual_seed(int(rng.integers(2**62)))
            if given is not None:
                given = torch.as_tensor(given, dtype=torch.float32, device=self.device_)
            for t in range(length):  # sequential in time, batched over paths and assets
                day = None if given is None else given[t].expand(n, -1)
                out[:, t], x, v, state, q = net.step(x, v, state, q, generator, day,
                                                     given_idx)
        return out, (x, v, state.reshape(state.shape[0], n, assets, -1), q)

    def _state(self) -> dict[str, np.ndarray]:
        bank = {f"bank.{k}": v.numpy() for k, v in self.bank_.items()}
        return {**super()._state(), **bank}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        if "net.coupling" in state:  # saved before the dynamic correlation
            state = _without_coupling(state)
        if SHOCK_KEY not in state:  # saved before the common shock: one type, the same model
            state = {**state, SHOCK_KEY: np.zeros((3, SHOCK_TYPES), dtype=np.float32)}
        state = _with_skew(state, self.config.components)
        for key, value in ((TAIL_KEY, 0.0), (WEIGHT_KEY, 0.0), (MEAN_KEY, 1.0)):
            if key not in state:  # saved before it was fitted: the same model
                state = {**state, key: np.full_like(state["net.scale_shift"], value)}
        self.bank_ = {k[5:]: torch.as_tensor(v) for k, v in state.items()
                      if k.startswith("bank.")}
        super()._load_state({k: v for k, v in state.items() if not k.startswith("bank.")})


def _with_skew(state: Mapping[str, Any], components: int) -> dict[str, Any]:
    """Weights saved before the skewed head (four outputs per component, no skew): the same
    model in today's form, a zero skew output (:math:`g = 0`: symmetric) after each
    component's four. Other weights are returned as they are."""
    if len(state[HEAD_KEY + "weight"]) != (HEAD_PARAMS - 1) * components:
        return dict(state)

    def widened(values: Any) -> np.ndarray:
        values = np.asarray(values).reshape(components, HEAD_PARAMS - 1, *np.shape(values)[1:])
        return np.concatenate([values, np.zeros_like(values[:, :1])], axis=1).reshape(
            components * HEAD_PARAMS, *values.shape[2:])

    return {**state, **{HEAD_KEY + k: widened(state[HEAD_KEY + k]) for k in ("weight", "bias")}}


def _without_coupling(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A model saved with the volatility-linear coupling (before the dynamic correlation): for
    one asset, which the coupling never touched, the same model in today's form; for several,
    a clear error."""
    assets = state["net.coupling"].shape[-1]
    if assets > 1:
        raise ModelError(f"this ar model of {assets} assets was saved by an earlier synthfin "
                         "whose within-day correlation moved with volatility only; fit it again "
                         "(the dynamic correlation that replaced it has other parameters)")
    fresh = DynamicCorrelation(1)
    state = {k: v for k, v in state.items() if k != "net.coupling"}
    state.update({f"net.correlation.{k}": v.detach().numpy()
                  for k, v in fresh.state_dict().items()})
    state["bank.q"] = np.ones((len(state["bank.y"]), 1, 1), dtype=np.float32)
    return state
