"""Shared pieces of every neural generator's training: device, seeding, the loop with early
stopping, a NaN guard, a progress bar, loss history, checkpoints and exact resume.

A run directory (optional) receives ``history.json`` (one row per epoch and phase),
``checkpoint.safetensors`` (the latest epoch: weights, optimizer state, every random state and,
in its JSON header, the loop's position and history, one file written at once, for resuming a
killed run) and ``best.safetensors`` (the weights with the best
validation score). Everything is written atomically, so a crash never leaves a half-written file,
and a run killed at any moment and resumed ends with the same weights, bit for bit on a CPU, as
one never interrupted.

Under ``torchrun`` (see :mod:`synthfin.distributed`) the same loop trains data-parallel: each
:class:`BatchOrder` hands its rank a slice of the global batch, gradients are averaged across
ranks before every optimizer step, losses and validation scores are averaged so every rank
decides alike, and only rank 0 shows progress and writes files, whose weights load in a single
process. The checkpoint holds every rank's random streams (gathered to rank 0), so a
distributed run resumed with the same number of processes continues exactly, as one never
interrupted; resumed with another number, ranks other than 0 re-derive theirs from rank 0's.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import logging
import math
import random
import sys
import tempfile
import time
from abc import abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from safetensors import safe_open
from safetensors.numpy import load_file as load_numpy_file
from safetensors.torch import load, load_file, save, save_file
from torch import nn
from tqdm.auto import tqdm

from synthfin import distributed
from synthfin.data.windows import WindowData
from synthfin.errors import ModelError, first_line
from synthfin.io import FileReading, atomic_write, atomic_write_json
from synthfin.models.base import Generator, GeneratorConfig, Limit, get_generator

logger = logging.getLogger("synthfin.models")
CHECKPOINT = "checkpoint.safetensors"  # a run directory's latest checkpoint
PROGRESS_EVERY_SECONDS = 10.0  # a text progress line at most this often (plus first and last)
_progress_sinks: list[Callable[[str], object]] = []


@contextlib.contextmanager
def progress_lines(sink: Callable[[str], object]) -> Iterator[None]:
    """Within the block, long work also reports progress as text lines to ``sink`` (e.g.
    ``print``), whatever a model's ``progress`` setting: for logs and pipelines, where a
    progress bar does not show. Training sends each phase's first and last epoch and at most
    one line every :data:`PROGRESS_EVERY_SECONDS` between, with the losses."""
    _progress_sinks.append(sink)
    try:
        yield
    finally:
        _progress_sinks.remove(sink)


def report_progress(line: str) -> None:
    """Send ``line`` to the sinks of :func:`progress_lines` (none: nothing happens)."""
    if distributed.is_main():
        for sink in _progress_sinks:
            sink(line)


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


# weights saved before the shared ConditionEmbedding (timegan) name its table differently
_RENAMED = {"regime_embedding.weight": "condition.embed.weight"}


def load_module_state(modules: dict[str, nn.Module], state: dict[str, Any]) -> None:
    """Inverse of :func:`module_state`; a missing or unexpected tensor is a clear error."""
    for name, module in modules.items():
        prefix = f"{name}."
        own = {_RENAMED.get(k[len(prefix):], k[len(prefix):]): torch.as_tensor(np.asarray(v))
               for k, v in state.items() if k.startswith(prefix)}
        try:
            module.load_state_dict(own)
        except RuntimeError as error:  # torch lists every mismatch; the first one says enough
            details = [line.strip() for line in str(error).splitlines()[1:] if line.strip()]
            raise ModelError(f"weights do not fit network {name!r} ("
                             f"{details[0] if details else first_line(error)}): the settings "
                             "in config.json are not those the weights were trained with"
                             ) from None


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


class BatchOrder:
    """Endless shuffled index batches of ``range(n)`` (a new permutation each pass), seeded.

    Under torchrun every rank draws the same global batch and gets its own contiguous slice
    (:func:`synthfin.distributed.local_slice`), so ``batch_size`` is the global batch.
    Resumable: :meth:`state` holds the generator, the current permutation and the position in
    it, so a :class:`TrainingLoop` given this order continues the same batches after a resume.
    """

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        self.n, self.batch_size = n, batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.order, self.position = torch.empty(0, dtype=torch.long), 0

    def __iter__(self) -> Iterator[torch.Tensor]:
        return self

    def __next__(self) -> torch.Tensor:
        last_start = max(0, self.n - self.batch_size)  # every batch full, unless n < batch_size
        if not len(self.order) or self.position > last_start:
            self.order, self.position = torch.randperm(self.n, generator=self.generator), 0
        batch = self.order[self.position:self.position + self.batch_size]
        self.position += self.batch_size
        return distributed.local_slice(batch)

    def state(self) -> dict[str, torch.Tensor]:
        return {"generator": self.generator.get_state(), "order": self.order,
                "position": torch.tensor([self.position])}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        self.generator.set_state(state["generator"])
        self.order, self.position = state["order"].long(), int(state["position"][0])


Stream = BatchOrder | torch.Generator  # a random stream a model's training draws from


def _stream_state(stream: Stream) -> dict[str, torch.Tensor]:
    return {"state": stream.get_state()} if isinstance(stream, torch.Generator) else stream.state()


def _load_stream_state(stream: Stream, state: dict[str, torch.Tensor]) -> None:
    if isinstance(stream, torch.Generator):
        stream.set_state(state["state"])
    else:
        stream.load_state(state)


def _global_random_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """torch (CPU and every CUDA device), NumPy's and Python's global random states, as
    tensors and plain JSON."""
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors.update({f"rng.cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    numpy_state = np.random.get_state(legacy=False)
    numpy_state["state"]["key"] = numpy_state["state"]["key"].tolist()
    return tensors, {"numpy": numpy_state, "python": random.getstate()}


def _set_global_random_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = sorted((k for k in tensors if k.startswith("rng.cuda.")), key=lambda k: int(k[9:]))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensors[k] for k in cuda])
    numpy_state = meta["numpy"]
    numpy_state["state"]["key"] = np.asarray(numpy_state["state"]["key"], dtype=np.uint32)
    np.random.set_state(numpy_state)
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))


def _pack(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> bytes:
    """Random states as one safetensors blob (the JSON part as a uint8 tensor ``meta``)."""
    text = torch.frombuffer(bytearray(json.dumps(meta).encode()), dtype=torch.uint8)
    return save({**tensors, "meta": text})


def _unpack(blob: bytes) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = load(blob)
    return tensors, json.loads(tensors.pop("meta").numpy().tobytes())


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
        Continue from ``run_dir/checkpoint.*``: finished phases are skipped and the current one
        continues after its last completed epoch, with every random state as it was then.
    progress : bool
        Show a tqdm bar per phase with the running losses on a terminal (elsewhere, e.g. in a
        log, :func:`progress_lines` reports the epochs as text).
    streams : dict name -> BatchOrder or torch.Generator, optional
        The random streams the steps draw from besides the global ones (torch, NumPy, Python,
        which are always checkpointed): their states are checkpointed and restored too.
    """

    def __init__(self, modules: dict[str, nn.Module],
                 optimizers: dict[str, torch.optim.Optimizer], *,
                 run_dir: str | Path | None = None, resume: bool = False,
                 progress: bool = True, streams: dict[str, Stream] | None = None) -> None:
        self.modules, self.optimizers = modules, optimizers
        self.streams = dict(streams or {})
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.progress = progress and distributed.is_main()
        self.history: list[dict[str, Any]] = []
        self._done: dict[str, int] = {}  # phase -> epochs completed (from a resumed checkpoint)
        self._finished: dict[str, int] = {}  # phase -> epochs of a run() that returned
        self._resumed_best: dict[str, Any] = {}
        own_streams = resume and self._resume()
        if distributed.active():
            distributed.broadcast_modules(modules)
            if not own_streams:  # this rank's streams were not in the checkpoint
                distributed.fork_global_random()

    def completed(self, phase: str) -> int:
        """Epochs of ``phase`` completed so far (including those of a resumed run)."""
        return self._done.get(phase, 0)

    def run(self, phase: str, epochs: int, step: Callable[[], dict[str, torch.Tensor]],
            steps_per_epoch: int, *, validate: Callable[[], float] | None = None,
            patience: int = 10) -> float:
        """Run ``epochs`` epochs of ``steps_per_epoch`` calls to ``step``.

        ``step`` performs one optimization step and returns its losses as detached scalar
        tensors; they are summed on the device and read once per epoch (no per-step host sync).
        With ``validate`` (lower is better), training stops after ``patience`` epochs without
        improvement and the best weights are restored at the end. A non-finite loss or
        validation score restores the last good weights and raises :class:`ModelError`.

        Returns the best validation score (infinity without ``validate``).
        """
        best_score = self._resumed_best.get(phase, (math.inf, 0))[0]
        if self._finished.get(phase, -1) >= epochs:  # a resumed run: this phase is over
            return best_score
        best_state = self._read_best() if math.isfinite(best_score) else None
        averager = distributed.GradientAverager(self.modules.values()) if (
            distributed.active()) else None
        try:
            best_state = self._epochs(phase, epochs, step, steps_per_epoch, validate, patience,
                                      best_state)
        except distributed.LostRank as error:
            raise ModelError(f"{error}" + (
                f"; {self.run_dir} holds the last good checkpoint ({self._done}): run again "
                "with resume to continue" if self.run_dir else "")) from None
        finally:
            if averager is not None:
                averager.remove()
        if best_state is not None:
            self._restore(best_state)
        self._finished[phase] = epochs  # a resumed run skips a finished phase entirely
        self._checkpoint(phase, self._resumed_best[phase])
        return self._resumed_best[phase][0]

    def _epochs(self, phase: str, epochs: int, step: Callable[[], dict[str, torch.Tensor]],
                steps_per_epoch: int, validate: Callable[[], float] | None, patience: int,
                best_state: dict[str, dict[str, torch.Tensor]] | None
                ) -> dict[str, dict[str, torch.Tensor]] | None:
        """The epochs of :meth:`run`; returns the best weights (None without validation)."""
        start = self._done.get(phase, 0)
        best_score, best_epoch = self._resumed_best.get(phase, (math.inf, start))
        bar = tqdm(range(start, epochs), desc=phase, leave=False, initial=start, total=epochs,
                   disable=None if self.progress else True)  # a bar on a terminal only
        good_state = self._snapshot()
        reported = -math.inf  # when the last text progress line went out
        for epoch in bar:
            # checked before the epoch, so a run resumed right after an early stop stops too
            if validate is not None and epoch - best_epoch >= patience:
                logger.info("%s: early stop at epoch %d (best %d)", phase, epoch, best_epoch)
                report_progress(f"{phase}: early stop at epoch {epoch} (best {best_epoch})")
                break
            totals: dict[str, torch.Tensor] = {}
            for _ in range(steps_per_epoch):
                for key, value in step().items():
                    totals[key] = totals.get(key, 0.0) + value.detach().float()
            losses = self._mean_losses(totals, steps_per_epoch)
            score = validate() if validate is not None else math.nan
            if validate is not None and distributed.active():  # every rank decides alike
                score = float(distributed.mean_over_ranks(torch.tensor(score,
                                                                        dtype=torch.float64)))
            distributed.check_in_step(self.modules)
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
            if (epoch == start or epoch + 1 == epochs
                    or time.monotonic() - reported >= PROGRESS_EVERY_SECONDS):
                reported = time.monotonic()
                report_progress(f"{phase}: epoch {epoch + 1}/{epochs}, " + ", ".join(
                    f"{k} {v:.4g}" for k, v in row.items() if k not in ("phase", "epoch")))
            bar.set_postfix({k: f"{v:.4g}" for k, v in row.items() if k not in ("phase",
                                                                              "epoch")})
            self._done[phase] = epoch + 1
            self._checkpoint(phase, (best_score, best_epoch))
        bar.close()
        self._resumed_best = {**self._resumed_best, phase: (best_score, best_epoch)}
        return best_state

    def _mean_losses(self, totals: dict[str, torch.Tensor], steps: int) -> dict[str, float]:
        """Each loss's mean over the epoch's steps (and over ranks)."""
        if not totals:
            return {}
        keys = list(totals)  # the same order on every rank: the same step code made them
        means = distributed.mean_over_ranks(torch.stack([totals[k] for k in keys]).cpu())
        return {key: float(value) / steps for key, value in zip(keys, means, strict=True)}

    # -- state -------------------------------------------------------------------------------
    def _snapshot(self) -> dict[str, dict[str, torch.Tensor]]:
        return {name: copy.deepcopy(module.state_dict()) for name, module in self.modules.items()}

    def _restore(self, snapshot: dict[str, dict[str, torch.Tensor]]) -> None:
        for name, module in self.modules.items():
            module.load_state_dict(snapshot[name])

    def _write_best(self, snapshot: dict[str, dict[str, torch.Tensor]]) -> None:
        if self.run_dir is None or not distributed.is_main():
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

    def _checkpoint(self, phase: str, best: tuple[float, int]) -> None:
        """Write weights, optimizer, random and stream states as tensors, and the loop's
        position and history as the file's JSON header: one file, written atomically, so a
        kill at any moment leaves one consistent checkpoint."""
        self._resumed_best = {**self._resumed_best, phase: best}
        if self.run_dir is None:
            return
        random_tensors, random_meta = self._random_state()
        ranks = [] if not distributed.active() else distributed.gather_bytes(
            _pack(random_tensors, random_meta), "gathering every rank's random state")
        if not distributed.is_main():
            return
        optimizer_tensors, optimizer_meta = _optimizer_state(self.optimizers)
        tensors = {**module_state(self.modules), **optimizer_tensors, **random_tensors,
                   **{f"rank.{r}": torch.frombuffer(bytearray(blob), dtype=torch.uint8)
                      for r, blob in enumerate(ranks) if r > 0}}
        meta = {"done": self._done, "finished": self._finished, "optimizers": optimizer_meta,
                "random": random_meta, "history": self.history,
                "world_size": distributed.world_size(),
                "best": {k: [None if not math.isfinite(v[0]) else v[0], v[1]]
                         for k, v in self._resumed_best.items()}}
        header = {"checkpoint": json.dumps(meta, allow_nan=False)}
        atomic_write(self.run_dir / CHECKPOINT,
                     lambda tmp: save_file(tensors, str(tmp), metadata=header))
        atomic_write_json(self.run_dir / "history.json", self.history)  # a copy to read

    def _random_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """This rank's global random states and model streams, as tensors and plain JSON."""
        tensors, meta = _global_random_state()
        tensors.update({f"stream.{name}.{key}": value.cpu().contiguous()
                        for name, stream in self.streams.items()
                        for key, value in _stream_state(stream).items()})
        return tensors, meta

    def _set_random_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        _set_global_random_state(tensors, meta)
        for name, stream in self.streams.items():
            prefix = f"stream.{name}."
            _load_stream_state(stream, {k[len(prefix):]: v for k, v in tensors.items()
                                        if k.startswith(prefix)})

    def _resume(self) -> bool:
        """Restore the checkpoint; True when this rank's own random streams were in it."""
        path = None if self.run_dir is None else self.run_dir / CHECKPOINT
        if path is None or not path.is_file():
            raise ModelError(f"cannot resume: no {CHECKPOINT} in {self.run_dir}")
        with FileReading(ModelError, f"delete {self.run_dir} to train from the start") as reading:
            reading.file = path
            with safe_open(str(path), framework="pt") as handle:
                meta = json.loads(handle.metadata()["checkpoint"])
                tensors = {key: handle.get_tensor(key) for key in handle.keys()}
            load_module_state(self.modules, {k: v for k, v in tensors.items() if not k.startswith(
                ("opt.", "rng.", "stream.", "rank."))})
            _load_optimizer_state(self.optimizers, tensors, meta["optimizers"])
            rank, blob = distributed.rank(), tensors.get(f"rank.{distributed.rank()}")
            own = rank == 0 or (blob is not None
                                and meta.get("world_size") == distributed.world_size())
            if rank > 0 and own:
                self._set_random_state(*_unpack(blob.numpy().tobytes()))
            else:  # rank 0, or a rank the checkpoint has no streams of: rank 0's
                self._set_random_state(tensors, meta["random"])
            self._done = {k: int(v) for k, v in meta["done"].items()}
            self._finished = {k: int(v) for k, v in meta["finished"].items()}
            self._resumed_best = {k: (math.inf if v[0] is None else v[0], v[1])
                                  for k, v in meta["best"].items()}
            self.history = meta["history"]
        if distributed.is_main():  # the readable copy, whatever happened to it since
            atomic_write_json(self.run_dir / "history.json", self.history)
        logger.info("resumed from %s: %s", self.run_dir, self._done)
        return own


@dataclasses.dataclass
class TorchConfig(GeneratorConfig):
    """Settings shared by the neural generators. ``nproc > 1`` trains data-parallel in that
    many processes on this machine (``torchrun --standalone``); ``batch_size`` and ``lr`` stay
    those of one process, since every step reads the same global batch."""

    device: str = "auto"
    epochs: int = 100
    batch_size: int = 128
    lr: float = 1e-3
    patience: int = 10
    progress: bool = True
    nproc: int = 1
    limits: ClassVar[dict[str, Limit]] = {"epochs": ">= 1", "batch_size": ">= 1", "lr": "> 0",
                                          "patience": ">= 1", "nproc": ">= 1"}


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
        if self.config.nproc > 1 and not distributed.launched():
            state, history = fit_in_workers(self, data, run_dir, resume)
            self._load_state(state)
            if history is not None:
                self.history_ = history
            return
        self.device_ = distributed.setup(resolve_device(self.config.device))
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
        self.device_ = distributed.local_device(resolve_device(self.config.device))
        self.modules_ = self._build()
        load_module_state(self.modules_, state)
        self.modules_ = {name: m.to(self.device_).eval() for name, m in self.modules_.items()}


def fit_in_workers(generator: TorchGenerator, data: WindowData, run_dir: Path | None,
                   resume: bool) -> tuple[dict[str, np.ndarray], list[dict[str, Any]] | None]:
    """The learned state of ``generator`` fitted by ``generator.config.nproc`` local ranks, and
    its loss history (``history_``): the data and settings go to a scratch folder, ``torchrun``
    runs this file on it (:func:`_rank_main`), rank 0 saves the fitted model there and this
    process reads its weights back."""
    with tempfile.TemporaryDirectory(prefix="synthfin-train-") as scratch:
        job = Path(scratch)
        data.save(job / "data")
        atomic_write_json(job / "job.json", {
            "model": generator.name, "config": dataclasses.asdict(generator.config),
            "run_dir": None if run_dir is None else str(Path(run_dir).resolve()),
            "resume": resume})
        where = "" if run_dir is None else f" ({run_dir} holds the last good checkpoint)"
        distributed.torchrun(generator.config.nproc, [__file__, scratch],
                             f"training {generator.name}{where}")
        history = job / "history.json"
        return (load_numpy_file(str(job / "model" / "weights.safetensors")),
                json.loads(history.read_text()) if history.is_file() else None)


def _rank_main(job: Path) -> None:
    """One rank: fit the job's model on its data; rank 0 saves it into the job folder."""
    spec = json.loads((job / "job.json").read_text())
    generator = get_generator(spec["model"])(**spec["config"])
    generator.fit(WindowData.load(job / "data"), run_dir=spec["run_dir"], resume=spec["resume"])
    if distributed.is_main():
        generator.save(job / "model")
        if hasattr(generator, "history_"):
            atomic_write_json(job / "history.json", generator.history_)
    distributed.shutdown()


if __name__ == "__main__":
    distributed.run_rank(lambda: _rank_main(Path(sys.argv[1])))
