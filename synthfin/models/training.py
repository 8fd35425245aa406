"""Shared pieces of every neural generator's training: device, seeding, the loop with early
stopping, a NaN guard, a progress bar, loss history, checkpoints and resume.

A run directory (optional) receives ``history.json`` (one row per epoch and phase),
``checkpoint.safetensors`` + ``checkpoint.json`` (the latest epoch, with optimizer state, for
resuming a killed run) and ``best.safetensors`` (the weights with the best validation score).
Everything is written atomically, so a crash never leaves a half-written file.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import logging
import math
from abc import abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from synthfin.data.windows import WindowData
from synthfin.errors import ModelError
from synthfin.io import atomic_write, atomic_write_json
from synthfin.models.base import Generator, GeneratorConfig

logger = logging.getLogger("synthfin.models")


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` picks CUDA when available, else CPU; the choice is logged."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        chosen = torch.device(device)
    except RuntimeError as error:
        raise ModelError(f"unknown device {device!r}: {error}") from None
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ModelError("device 'cuda' was asked for but CUDA is not available; use 'auto'")
    logger.info("synthfin training device: %s", chosen)
    return chosen


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA; a no-op on CPU (deterministic float32)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def module_state(modules: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
    """Flat ``{"module.param": tensor}`` of several modules, float32 on CPU."""
    return {f"{name}.{key}": value.detach().to("cpu", torch.float32).contiguous()
            for name, module in modules.items() for key, value in module.state_dict().items()}


# weights saved before the shared ConditionEmbedding (ar, timegan) name its table differently
_RENAMED = {"regime_embedding.weight": "condition.embed.weight"}


def load_module_state(modules: dict[str, nn.Module], state: dict[str, Any]) -> None:
    """Inverse of :func:`module_state`; a missing or unexpected tensor is a clear error."""
    for name, module in modules.items():
        prefix = f"{name}."
        own = {_RENAMED.get(k[len(prefix):], k[len(prefix):]): torch.as_tensor(np.asarray(v))
               for k, v in state.items() if k.startswith(prefix)}
        try:
            module.load_state_dict(own)
        except RuntimeError as error:
            raise ModelError(f"weights do not fit network {name!r}: {error}") from None


def _optimizer_state(optimizers: dict[str, torch.optim.Optimizer]
                     ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Optimizer state split into tensors (for safetensors) and plain JSON."""
    tensors, meta = {}, {}
    for name, optimizer in optimizers.items():
        state = optimizer.state_dict()
        meta[name] = {"param_groups": state["param_groups"], "keys": {}}
        for param_id, entries in state["state"].items():
            meta[name]["keys"][str(param_id)] = sorted(entries)
            for key, value in entries.items():
                tensors[f"opt.{name}.{param_id}.{key}"] = torch.as_tensor(value).cpu().contiguous()
    return tensors, meta


def _load_optimizer_state(optimizers: dict[str, torch.optim.Optimizer],
                          tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    for name, optimizer in optimizers.items():
        state = {int(pid): {key: tensors[f"opt.{name}.{pid}.{key}"] for key in keys}
                 for pid, keys in meta[name]["keys"].items()}
        optimizer.load_state_dict({"state": state, "param_groups": meta[name]["param_groups"]})


class TrainingLoop:
    """Epochs of optimization steps in named phases, with early stopping on a validation score.

    Parameters
    ----------
    modules : dict name -> module
        Every network whose weights are checkpointed and restored.
    optimizers : dict name -> optimizer
        Their state is checkpointed too, so a resumed run continues exactly.
    run_dir : path, optional
        Where history, checkpoints and the best weights go; None keeps everything in memory.
    resume : bool
        Continue from ``run_dir/checkpoint.*``: completed phases are skipped and the current one
        continues after its last completed epoch.
    progress : bool
        Show a tqdm bar per phase with the running losses.
    """

    def __init__(self, modules: dict[str, nn.Module],
                 optimizers: dict[str, torch.optim.Optimizer], *,
                 run_dir: str | Path | None = None, resume: bool = False,
                 progress: bool = True) -> None:
        self.modules, self.optimizers = modules, optimizers
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.progress = progress
        self.history: list[dict[str, Any]] = []
        self._done: dict[str, int] = {}  # phase -> epochs completed (from a resumed checkpoint)
        self._resumed_best: dict[str, Any] = {}
        if resume:
            self._resume()

    def run(self, phase: str, epochs: int, step: Callable[[], dict[str, torch.Tensor]],
            steps_per_epoch: int, *, validate: Callable[[], float] | None = None,
            patience: int = 10) -> float:
        """Run ``epochs`` epochs of ``steps_per_epoch`` calls to ``step``.

        ``step`` performs one optimization step and returns its losses as detached scalar
        tensors; they are summed on the device and read once per epoch (no per-step host sync).
        With ``validate`` (lower is better), training stops after ``patience`` epochs without
        improvement and the best weights are restored at the end. A non-finite loss or
        validation score restores the last good weights and raises :class:`ModelError`.

        Returns the best validation score (NaN without ``validate``).
        """
        start = self._done.get(phase, 0)
        best_score, best_epoch = self._resumed_best.get(phase, (math.inf, start))
        best_state = self._read_best() if math.isfinite(best_score) else None
        bar = tqdm(range(start, epochs), desc=phase, disable=not self.progress, leave=False,
                   initial=start, total=epochs)
        good_state = self._snapshot()
        for epoch in bar:
            totals: dict[str, torch.Tensor] = {}
            for _ in range(steps_per_epoch):
                for key, value in step().items():
                    totals[key] = totals.get(key, 0.0) + value.detach().float()
            losses = {key: float(value) / steps_per_epoch for key, value in totals.items()}
            score = validate() if validate is not None else math.nan
            if not all(math.isfinite(v) for v in losses.values()) or (
                    validate is not None and not math.isfinite(score)):
                self._restore(good_state)
                raise ModelError(
                    f"non-finite loss in phase {phase!r} at epoch {epoch + 1} ({losses}, "
                    f"validation {score}); the last good weights were kept"
                    + (f" and {self.run_dir} holds the last good checkpoint" if self.run_dir
                       else "") + "; lower the learning rate or check the data")
            good_state = self._snapshot()
            row = {"phase": phase, "epoch": epoch + 1, **losses}
            if validate is not None:
                row["validation"] = score
                if score < best_score:
                    best_score, best_epoch, best_state = score, epoch + 1, good_state
                    self._write_best(best_state)
            self.history.append(row)
            bar.set_postfix({k: f"{v:.4g}" for k, v in row.items() if k not in ("phase",
                                                                              "epoch")})
            self._checkpoint(phase, epoch + 1, (best_score, best_epoch))
            if validate is not None and epoch + 1 - best_epoch >= patience:
                logger.info("%s: early stop at epoch %d (best %d)", phase, epoch + 1, best_epoch)
                break
        bar.close()
        if best_state is not None:
            self._restore(best_state)
        self._done[phase] = epochs  # a resumed run skips a finished phase entirely
        self._checkpoint(phase, epochs, (best_score, best_epoch))
        return best_score

    # -- state -------------------------------------------------------------------------------
    def _snapshot(self) -> dict[str, dict[str, torch.Tensor]]:
        return {name: copy.deepcopy(module.state_dict()) for name, module in self.modules.items()}

    def _restore(self, snapshot: dict[str, dict[str, torch.Tensor]]) -> None:
        for name, module in self.modules.items():
            module.load_state_dict(snapshot[name])

    def _write_best(self, snapshot: dict[str, dict[str, torch.Tensor]]) -> None:
        if self.run_dir is None:
            return
        flat = {f"{name}.{key}": value.detach().cpu().contiguous()
                for name, state in snapshot.items() for key, value in state.items()}
        atomic_write(self.run_dir / "best.safetensors", lambda tmp: save_file(flat, str(tmp)))

    def _read_best(self) -> dict[str, dict[str, torch.Tensor]] | None:
        path = None if self.run_dir is None else self.run_dir / "best.safetensors"
        if path is None or not path.is_file():
            return None
        flat = load_file(str(path))
        return {name: {key[len(name) + 1:]: value for key, value in flat.items()
                       if key.startswith(f"{name}.")} for name in self.modules}

    def _checkpoint(self, phase: str, epoch: int, best: tuple[float, int]) -> None:
        if self.run_dir is None:
            return
        optimizer_tensors, optimizer_meta = _optimizer_state(self.optimizers)
        tensors = {**module_state(self.modules), **optimizer_tensors}
        atomic_write(self.run_dir / "checkpoint.safetensors",
                     lambda tmp: save_file(tensors, str(tmp)))
        done = {**self._done, phase: epoch}
        best_by_phase = {**self._resumed_best, phase: best}
        atomic_write_json(self.run_dir / "checkpoint.json", {
            "done": done, "optimizers": optimizer_meta,
            "best": {k: [None if not math.isfinite(v[0]) else v[0], v[1]]
                     for k, v in best_by_phase.items()}})
        self._resumed_best = best_by_phase
        atomic_write_json(self.run_dir / "history.json", self.history)

    def _resume(self) -> None:
        if self.run_dir is None or not (self.run_dir / "checkpoint.json").is_file():
            raise ModelError(f"cannot resume: no checkpoint.json in {self.run_dir}")
        meta = json.loads((self.run_dir / "checkpoint.json").read_text())
        tensors = load_file(str(self.run_dir / "checkpoint.safetensors"))
        load_module_state(self.modules, {k: v for k, v in tensors.items()
                                         if not k.startswith("opt.")})
        _load_optimizer_state(self.optimizers, tensors, meta["optimizers"])
        self._done = {k: int(v) for k, v in meta["done"].items()}
        self._resumed_best = {k: (math.inf if v[0] is None else v[0], v[1])
                              for k, v in meta["best"].items()}
        history_path = self.run_dir / "history.json"
        if history_path.is_file():
            self.history = json.loads(history_path.read_text())
        logger.info("resumed from %s: %s", self.run_dir, self._done)


def batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless shuffled index batches (a new permutation each pass), seeded."""
    while True:
        order = torch.randperm(n, generator=generator)
        for lo in range(0, n - batch_size + 1 if n >= batch_size else 1, batch_size):
            yield order[lo:lo + batch_size]


@dataclasses.dataclass
class TorchConfig(GeneratorConfig):
    """Settings shared by the neural generators."""

    device: str = "auto"
    epochs: int = 100
    batch_size: int = 128
    lr: float = 1e-3
    patience: int = 10
    progress: bool = True


class TorchGenerator(Generator):
    """A :class:`Generator` made of torch modules: device choice, seeding, weights as safetensors.

    Subclasses implement :meth:`_build` (the networks, from ``self.spec_`` and ``self.config``),
    :meth:`_train` and :meth:`_sample`. ``fit(data, run_dir=..., resume=True)`` continues a
    killed training from the run directory's checkpoint.
    """

    config_class = TorchConfig
    config: TorchConfig

    @abstractmethod
    def _build(self) -> dict[str, nn.Module]:
        """Fresh networks for ``self.spec_`` and ``self.config``."""

    @abstractmethod
    def _train(self, data: WindowData, run_dir: Path | None, resume: bool) -> None:
        """Optimize ``self.modules_`` on ``data`` (use :class:`TrainingLoop`)."""

    def _fit(self, data: WindowData, *, run_dir: Path | None, resume: bool) -> None:
        self.device_ = resolve_device(self.config.device)
        torch.manual_seed(self.config.seed)
        self.modules_ = {name: m.to(self.device_) for name, m in self._build().items()}
        self._train(data, run_dir, resume)
        for module in self.modules_.values():
            module.eval()

    def _torch_generator(self, rng: np.random.Generator) -> torch.Generator:
        """A torch generator on the model's device, seeded from the sampling ``rng``."""
        return torch.Generator(self.device_).manual_seed(int(rng.integers(2**62)))

    def _state(self) -> dict[str, np.ndarray]:
        return {key: value.numpy() for key, value in module_state(self.modules_).items()}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self.device_ = resolve_device(self.config.device)
        self.modules_ = self._build()
        load_module_state(self.modules_, state)
        self.modules_ = {name: m.to(self.device_).eval() for name, m in self.modules_.items()}
