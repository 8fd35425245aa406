"""The one interface every generator keeps, its config, the on-disk format and the registry.

A model directory holds ``config.json`` (model name + hyper-parameters), ``data.json`` (assets,
window length, scaler state and regime thresholds of the data it was fitted on) and
``weights.safetensors`` (arrays only: no pickle is ever read). ``Generator.load(dir)`` then
``sample(...)`` works offline from that directory alone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import numbers
import operator
import types
import typing
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

import numpy as np
from safetensors.numpy import load_file, save_file

from synthfin.data.conditions import RegimeModel, realized_vol
from synthfin.data.scaling import ReturnScaler
from synthfin.data.windows import WindowData
from synthfin.errors import ConfigError, ImplausiblePathsWarning, ModelError
from synthfin.io import (
    CHUNK_VALUES,
    FileReading,
    atomic_directory,
    atomic_write_json,
    recover_directory,
)

G = TypeVar("G", bound="Generator")
Condition = str | int | None

_REGISTRY: dict[str, type[Generator]] = {}
MODEL_FILES = ("config.json", "data.json", "weights.safetensors")


def register(cls: type[G]) -> type[G]:
    """Class decorator: make a generator available by its ``name`` to the CLI and pipelines."""
    _REGISTRY[cls.name] = cls
    return cls


def available_generators() -> list[str]:
    """Names of the registered generators."""
    return sorted(_REGISTRY)


def continuing_models() -> list[str]:
    """The registered generators that can continue a real history (they override
    :meth:`Generator.context_sampler`): ``start="today"``, forecasts, crashes on their state."""
    return [name for name in available_generators()
            if _REGISTRY[name].context_sampler is not Generator.context_sampler]


def get_generator(name: str) -> type[Generator]:
    """The generator class registered under ``name``."""
    if name not in _REGISTRY:
        raise ModelError(f"unknown model {name!r}; available: {', '.join(available_generators())}")
    return _REGISTRY[name]


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """What a fitted generator must remember of its data to sample and unscale offline."""

    assets: list[str]
    window_len: int
    vol_lookback: int
    scaler: ReturnScaler
    regimes: RegimeModel

    def trailing_vol(self, scaled: np.ndarray) -> np.ndarray:
        """Annualized realized vol (n,) of the last ``vol_lookback`` days (all days, if fewer)
        of each path of scaled returns (n, days, assets), averaged over assets: the condition
        of the next window when a window model rolls a path forward."""
        return realized_vol(self.scaler.inverse(scaled[:, -self.vol_lookback:]))

    def scaled_context(self, context: np.ndarray, n: int, days: int) -> tuple[np.ndarray, bool]:
        """The last ``days`` days of a history a context sampler continues, scaled, as
        (1 or n, days', assets), and whether each of the ``n`` paths has its own: ``context``
        is one history (days, assets) shared by every path or one per path (n, days, assets),
        finite; anything else is a :class:`~synthfin.errors.ModelError`."""
        context = np.asarray(context, dtype=np.float64)
        per_path = context.ndim == 3
        if (context.ndim not in (2, 3) or context.shape[-1] != len(self.assets)
                or context.shape[-2] < 1 or (per_path and len(context) != n)
                or not np.isfinite(context).all()):
            raise ModelError(f"context must be finite, (days >= 1, {len(self.assets)}) or "
                             f"({n}, days >= 1, {len(self.assets)}), got {context.shape}")
        return self.scaler.transform((context if per_path else context[None])[:, -days:]), \
            per_path

    def regime_of(self, scaled: np.ndarray) -> np.ndarray:
        """Regime code after each path, from :meth:`trailing_vol`."""
        return self.regimes.label(self.trailing_vol(scaled))

    @classmethod
    def of(cls, data: WindowData) -> DataSpec:
        return cls(list(data.assets), data.window_len, data.vol_lookback, data.scaler, data.regimes)

    def to_dict(self) -> dict[str, Any]:
        return {"assets": self.assets, "window_len": self.window_len,
                "vol_lookback": self.vol_lookback, "scaler": self.scaler.to_dict(),
                "regimes": self.regimes.to_dict()}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> DataSpec:
        return cls(list(state["assets"]), int(state["window_len"]), int(state["vol_lookback"]),
                   ReturnScaler.from_dict(state["scaler"]), RegimeModel.from_dict(state["regimes"]))


class ContextSampler(Protocol):
    """A fitted generator that continues a given history: ``sample_after(context, n, length,
    seed)`` returns ``(n, length, assets)`` unscaled log returns after ``context`` (days,
    assets), or after one context per path (n, days, assets); it reads the last
    ``context_days`` days of a context."""

    @property
    def context_days(self) -> int: ...

    def sample_after(self, context: np.ndarray, n: int, length: int = 1,
                     seed: int | None = None) -> np.ndarray: ...


# A daily log return above 1 in absolute value (prices times e, or divided by it, in a day), or
# above 25 long-run (training) standard deviations of its asset, is not a plausible market day.
PLAUSIBLE_LOG_RETURN = 1.0
PLAUSIBLE_SDS = 25.0


def implausible_paths(returns: np.ndarray, long_run_sd: np.ndarray | float) -> np.ndarray:
    r"""Which paths (n,) of unscaled log returns (n, days, assets) hold a day beyond the
    plausibility bound: :math:`|r| > \min(1, 25 \sigma_a)`, :math:`\sigma_a` the asset's
    long-run standard deviation (assets,); a non-finite return counts as beyond it."""
    returns = np.asarray(returns, dtype=np.float64)
    bound = np.minimum(PLAUSIBLE_LOG_RETURN, PLAUSIBLE_SDS * np.asarray(long_run_sd, float))
    beyond = ~(np.abs(returns) <= bound)  # NaN counts as beyond
    return beyond.reshape(len(returns), -1).any(axis=1)


def implausible_note(count: int, n: int, source: str) -> str:
    """The one sentence that reports ``count`` of ``n`` paths of ``source`` beyond the bound."""
    return (f"{source}: {count} of {n} paths hold a daily log return beyond the plausibility "
            f"bound (|r| > {PLAUSIBLE_LOG_RETURN:g} or > {PLAUSIBLE_SDS:g} long-run standard "
            "deviations); check the model before using them")


def warn_implausible(count: int, n: int, source: str) -> None:
    """One :class:`~synthfin.errors.ImplausiblePathsWarning` when ``count`` of ``n`` paths
    from ``source`` (a model name and verb) went beyond the plausibility bound."""
    if count:
        warnings.warn(implausible_note(count, n, source), ImplausiblePathsWarning, stacklevel=3)


def given_arguments(spec: DataSpec, given: np.ndarray, given_assets: list[str] | str,
                    n: int) -> tuple[list[int], np.ndarray]:
    """Checked arguments of a ``sample_given``: the indices of ``given_assets`` among the
    model's assets and the given unscaled log returns (days, k) as floats."""
    names = [given_assets] if isinstance(given_assets, str) else list(given_assets)
    unknown = [name for name in names if name not in spec.assets]
    if not names or unknown or len(set(names)) != len(names):
        raise ModelError(f"given assets must be distinct names among {spec.assets}, got "
                         f"{names}")
    if len(names) == len(spec.assets):
        raise ModelError("every asset is given: there is nothing to draw")
    given = np.asarray(given, dtype=np.float64)
    if given.ndim == 1 and len(names) == 1:
        given = given[:, None]
    if given.ndim != 2 or given.shape[1] != len(names) or len(given) < 1:
        raise ModelError(f"the given path must be (days >= 1, {len(names)}), got {given.shape}")
    if not np.isfinite(given).all():
        raise ModelError("the given path holds NaN or infinite log returns")
    if not isinstance(n, numbers.Integral) or n < 1:
        raise ModelError(f"n must be an integer >= 1, got {n!r}")
    return [spec.assets.index(name) for name in names], given


Limit = str | tuple[str, ...]  # a bound such as ">= 1" or "> 0", or the allowed values
_COMPARE = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}


@dataclasses.dataclass
class GeneratorConfig:
    """Hyper-parameters shared by every generator; each model extends it with its own.

    Every setting is checked when a config is made (so before any data is read or any network
    built): against its annotated type (``int``, ``float``, ``bool``, ``str``; an int is accepted
    for a float, NaN and infinity are not) and against ``limits``, which each subclass extends
    with its own fields. A bad setting raises :class:`~synthfin.errors.ConfigError` naming it.
    """

    seed: int = 0
    limits: ClassVar[dict[str, Limit]] = {"seed": ">= 0"}

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        limits = {name: limit for klass in reversed(type(self).__mro__)
                  for name, limit in vars(klass).get("limits", {}).items()}
        for field in dataclasses.fields(self):
            value = _typed(field.name, getattr(self, field.name), hints.get(field.name))
            object.__setattr__(self, field.name, value)
            if field.name in limits and value is not None:
                _check_limit(field.name, value, limits[field.name])


def _typed(name: str, value: Any, expected: Any) -> Any:
    """``value`` if it is of the ``expected`` scalar type (int -> float widened), else raise."""
    union = typing.get_origin(expected) in (typing.Union, types.UnionType)
    options = typing.get_args(expected) if union else (expected,)
    if value is None and type(None) in options:
        return value
    for kind in options:
        if kind is bool and isinstance(value, (bool, np.bool_)):
            return bool(value)
        if kind is int and isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return int(value)
        if kind is float and isinstance(value, numbers.Real) and not isinstance(value, bool):
            if not np.isfinite(float(value)):
                raise ConfigError(f"setting {name}={value!r} must be a finite number")
            return float(value)
        if kind is str and isinstance(value, str):
            return value
    scalar = [k for k in options if k in (bool, int, float, str)]
    if not scalar:  # a type this check does not know: left to the model
        return value
    wanted = " or ".join({bool: "true/false", int: "an integer", float: "a number",
                          str: "a string"}[k] for k in scalar)
    raise ConfigError(f"setting {name}={value!r} must be {wanted}")


def _check_limit(name: str, value: Any, limit: Limit) -> None:
    if isinstance(limit, tuple):
        if value not in limit:
            raise ConfigError(f"setting {name}={value!r} must be one of {', '.join(limit)}")
        return
    op, bound = limit.split()
    if not _COMPARE[op](value, float(bound)):
        raise ConfigError(f"setting {name}={value!r} must be {limit}")


class Generator(ABC):
    """Fit on :class:`WindowData`, sample windows of scaled log returns, save and load.

    Subclasses set ``name`` and ``config_class`` and implement :meth:`_fit`, :meth:`_sample`,
    :meth:`_state` and :meth:`_load_state`. Hyper-parameters live in ``config`` only; learned
    state ends in ``_`` (scikit-learn style) and nothing is learned in ``__init__``. A model
    that can continue a real history declares it by returning itself from
    :meth:`context_sampler`.
    """

    name: ClassVar[str]
    config_class: ClassVar[type[GeneratorConfig]] = GeneratorConfig

    def __init__(self, config: GeneratorConfig | None = None, **overrides: Any) -> None:
        base = config if config is not None else self.config_class()
        if not isinstance(base, self.config_class):
            raise ModelError(f"{self.name} takes a {self.config_class.__name__}, "
                             f"got {type(base).__name__}")
        fields = {f.name for f in dataclasses.fields(self.config_class)}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise ModelError(f"unknown setting(s) {unknown} for model {self.name!r}; "
                             f"valid: {sorted(fields)}")
        try:
            self.config = dataclasses.replace(base, **overrides)
        except ConfigError as error:
            raise ConfigError(f"model {self.name!r}: {error}") from None

    # -- the public verbs ---------------------------------------------------------------------
    def fit(self: G, data: WindowData, *, run_dir: str | Path | None = None,
            resume: bool = False) -> G:
        """Fit on the training split (validation split for early stopping); returns ``self``.

        ``run_dir`` receives what a model trained in epochs writes as it goes (loss history,
        checkpoints, best weights) and ``resume=True`` continues a killed training from it; a
        model fitted in one step writes nothing there and simply fits again.
        """
        self.spec_ = DataSpec.of(data)
        self._fit(data, run_dir=None if run_dir is None else Path(run_dir), resume=resume)
        return self

    def sample(self, n: int, *, condition: Condition = None, seed: int | None = None,
               length: int | None = None) -> np.ndarray:
        """Draw ``n`` paths of scaled log returns, shape (n, length, assets).

        Parameters
        ----------
        n : int
            Number of independent paths.
        condition : str, int or None
            A regime name (``"calm"``, ``"normal"``, ``"stressed"``) or code; None draws
            unconditionally.
        seed : int or None
            Same seed, same data, same device -> same samples.
        length : int or None
            Days per path; defaults to the training window length.
        """
        chunk, = self.sample_chunks(n, condition=condition, seed=seed, length=length,
                                    chunk_size=n, scaled=True)  # run to the end: the warning
        return chunk

    def sample_chunks(self, n: int, *, condition: Condition = None, seed: int | None = None,
                      length: int | None = None, chunk_size: int | None = None,
                      scaled: bool = False) -> Iterator[np.ndarray]:
        """:meth:`sample_returns` (or :meth:`sample` with ``scaled=True``) ``chunk_size`` paths
        at a time, so that memory stays bounded however large ``n`` is.

        The chunks draw from one random stream seeded by ``seed``; the default ``chunk_size``
        holds about a million values (8 MB), and when it covers ``n`` the one chunk equals
        :meth:`sample_returns` with the same arguments. Once the last chunk is drawn, one
        :class:`~synthfin.errors.ImplausiblePathsWarning` says how many paths went beyond
        the plausibility bound (:func:`implausible_paths`), if any did.
        """
        spec = self._spec()
        if not isinstance(n, numbers.Integral) or n < 1:
            raise ModelError(f"n must be an integer >= 1, got {n!r}")
        length = spec.window_len if length is None else int(length)
        if length < 1:
            raise ModelError(f"length must be >= 1, got {length}")
        if seed is not None and (not isinstance(seed, numbers.Integral) or seed < 0):
            raise ModelError(f"seed must be a non-negative integer, got {seed!r}")
        code = None if condition is None else spec.regimes.code(condition)
        chunk_size = chunk_size or max(1, CHUNK_VALUES // (length * len(spec.assets)))
        rng = np.random.default_rng(seed)
        count = 0
        for lo in range(0, n, chunk_size):
            chunk = self._finite(self._sample(min(chunk_size, n - lo), length, code, rng))
            returns = spec.scaler.inverse(chunk)
            count += int(implausible_paths(returns, spec.scaler.std_).sum())
            yield chunk if scaled else returns
        warn_implausible(count, n, f"{self.name} sample")

    def context_sampler(self) -> ContextSampler | None:
        """This model as a :class:`ContextSampler` when it can continue a real history (it
        conditions on past returns), else None: the others start from a regime instead."""
        return None

    def sample_returns(self, n: int, **kwargs: Any) -> np.ndarray:
        """Like :meth:`sample`, but unscaled log returns (the scaler's exact inverse applied)."""
        return self._spec().scaler.inverse(self.sample(n, **kwargs))

    def fingerprint(self) -> str:
        """SHA-256 of everything a saved model folder holds (name, settings, data spec and
        learned arrays): equal fingerprints mean the same fitted model, so files drawn from
        it can name it and be checked against it."""
        digest = hashlib.sha256(json.dumps(
            [self.name, dataclasses.asdict(self.config), self._spec().to_dict()],
            sort_keys=True).encode())
        for key, value in sorted(self._state().items()):
            digest.update(key.encode())
            digest.update(np.ascontiguousarray(value).tobytes())
        return digest.hexdigest()

    def save(self, directory: str | Path) -> Path:
        """Write ``config.json``, ``data.json`` and ``weights.safetensors`` into ``directory``
        as a unit (:func:`~synthfin.io.atomic_directory`): a kill at any moment leaves the
        previous model or this one, complete."""
        spec = self._spec()
        directory = Path(directory)
        state = {key: np.ascontiguousarray(value) for key, value in self._state().items()}
        with atomic_directory(directory) as temp:
            save_file(state, str(temp / "weights.safetensors"))
            atomic_write_json(temp / "data.json", spec.to_dict())
            atomic_write_json(temp / "config.json",
                              {"model": self.name, "config": dataclasses.asdict(self.config)})
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> Generator:
        """Rebuild a fitted generator from a directory written by :meth:`save`.

        Called on the base class, it dispatches on the model name stored in ``config.json``.
        """
        directory = Path(directory)
        recover_directory(directory)
        missing = [f for f in MODEL_FILES if not (directory / f).is_file()]
        if missing:
            raise ModelError(f"{directory} is not a saved model: missing {', '.join(missing)}")
        with FileReading(ModelError, "save or train the model again") as reading:
            reading.file = directory / "config.json"
            header = json.loads(reading.file.read_text())
            model_cls = get_generator(header["model"])
            if cls is not Generator and model_cls is not cls:
                raise ModelError(f"it holds a {header['model']!r} model, not {cls.name!r}")
            model = model_cls(**header["config"])
            reading.file = directory / "data.json"
            model.spec_ = DataSpec.from_dict(json.loads(reading.file.read_text()))
            reading.file = directory / "weights.safetensors"
            model._load_state(load_file(str(reading.file)))
        return model

    # -- what each model implements -----------------------------------------------------------
    @abstractmethod
    def _fit(self, data: WindowData, *, run_dir: Path | None, resume: bool) -> None:
        """Learn from ``data``; ``self.spec_`` is already set (``run_dir``, ``resume``: see
        :meth:`fit`)."""

    @abstractmethod
    def _sample(self, n: int, length: int, regime: int | None,
                rng: np.random.Generator) -> np.ndarray:
        """(n, length, assets) scaled returns; ``regime`` is a validated code or None."""

    @abstractmethod
    def _state(self) -> dict[str, np.ndarray]:
        """Learned arrays to store in ``weights.safetensors``."""

    @abstractmethod
    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`_state` returned."""

    def _plausible(self, returns: np.ndarray, verb: str) -> np.ndarray:
        """``returns`` (n, days, assets, unscaled), after warning once if any path goes beyond
        the plausibility bound (:func:`implausible_paths`)."""
        count = int(implausible_paths(returns, self._spec().scaler.std_).sum())
        warn_implausible(count, len(returns), f"{self.name} {verb}")
        return returns

    def _finite(self, samples: np.ndarray) -> np.ndarray:
        if not np.isfinite(samples).all():
            raise ModelError(f"{self.name} produced non-finite samples; refit or check the data")
        return samples

    def _spec(self) -> DataSpec:
        if not hasattr(self, "spec_"):
            raise ModelError(f"the {self.name} generator is not fitted; call fit(data) or load()")
        return self.spec_
