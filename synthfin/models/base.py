"""The one interface every generator keeps, its config, the on-disk format and the registry.

A model directory holds ``config.json`` (model name + hyper-parameters), ``data.json`` (assets,
window length, scaler state and regime thresholds of the data it was fitted on) and
``weights.safetensors`` (arrays only: no pickle is ever read). ``Generator.load(dir)`` then
``sample(...)`` works offline from that directory alone.
"""

from __future__ import annotations

import dataclasses
import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

import numpy as np
from safetensors.numpy import load_file, save_file

from synthfin.data.conditions import RegimeModel, realized_vol
from synthfin.data.scaling import ReturnScaler
from synthfin.data.windows import WindowData
from synthfin.errors import ModelError
from synthfin.io import atomic_write, atomic_write_json

G = TypeVar("G", bound="Generator")
Condition = str | int | None

_REGISTRY: dict[str, type[Generator]] = {}


def register(cls: type[G]) -> type[G]:
    """Class decorator: make a generator available by its ``name`` to the CLI and pipelines."""
    _REGISTRY[cls.name] = cls
    return cls


def available_generators() -> list[str]:
    """Names of the registered generators."""
    return sorted(_REGISTRY)


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
    assets), or after one context per path (n, days, assets)."""

    def sample_after(self, context: np.ndarray, n: int, length: int = 1,
                     seed: int | None = None) -> np.ndarray: ...


@dataclasses.dataclass
class GeneratorConfig:
    """Hyper-parameters shared by every generator; each model extends it with its own."""

    seed: int = 0


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
        self.config = dataclasses.replace(base, **overrides)

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
        spec = self._spec()
        if n < 1:
            raise ModelError(f"n must be >= 1, got {n}")
        length = spec.window_len if length is None else int(length)
        if length < 1:
            raise ModelError(f"length must be >= 1, got {length}")
        code = None if condition is None else spec.regimes.code(condition)
        return self._finite(self._sample(n, length, code, np.random.default_rng(seed)))

    def context_sampler(self) -> ContextSampler | None:
        """This model as a :class:`ContextSampler` when it can continue a real history (it
        conditions on past returns), else None: the others start from a regime instead."""
        return None

    def sample_returns(self, n: int, **kwargs: Any) -> np.ndarray:
        """Like :meth:`sample`, but unscaled log returns (the scaler's exact inverse applied)."""
        return self._spec().scaler.inverse(self.sample(n, **kwargs))

    def save(self, directory: str | Path) -> Path:
        """Write ``config.json``, ``data.json`` and ``weights.safetensors`` atomically."""
        spec = self._spec()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {key: np.ascontiguousarray(value) for key, value in self._state().items()}
        atomic_write(directory / "weights.safetensors", lambda tmp: save_file(state, str(tmp)))
        atomic_write_json(directory / "data.json", spec.to_dict())
        atomic_write_json(directory / "config.json",
                          {"model": self.name, "config": dataclasses.asdict(self.config)})
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> Generator:
        """Rebuild a fitted generator from a directory written by :meth:`save`.

        Called on the base class, it dispatches on the model name stored in ``config.json``.
        """
        directory = Path(directory)
        missing = [f for f in ("config.json", "data.json", "weights.safetensors")
                   if not (directory / f).is_file()]
        if missing:
            raise ModelError(f"{directory} is not a saved model: missing {', '.join(missing)}")
        header = json.loads((directory / "config.json").read_text())
        model_cls = get_generator(header["model"])
        if cls is not Generator and model_cls is not cls:
            raise ModelError(f"{directory} holds a {header['model']!r} model, not {cls.name!r}")
        model = model_cls(model_cls.config_class(**header["config"]))
        model.spec_ = DataSpec.from_dict(json.loads((directory / "data.json").read_text()))
        model._load_state(load_file(str(directory / "weights.safetensors")))
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

    def _finite(self, samples: np.ndarray) -> np.ndarray:
        if not np.isfinite(samples).all():
            raise ModelError(f"{self.name} produced non-finite samples; refit or check the data")
        return samples

    def _spec(self) -> DataSpec:
        if not hasattr(self, "spec_"):
            raise ModelError(f"the {self.name} generator is not fitted; call fit(data) or load()")
        return self.spec_
