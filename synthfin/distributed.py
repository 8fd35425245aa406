"""Data-parallel training and sharded work under ``torchrun``: the process group, each rank's
slice of a global batch, gradient averaging and agreement across ranks.

A job launched by ``torchrun`` (one machine or several, with the standard rendezvous flags)
finds ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and ``MASTER_ADDR`` in its environment;
:func:`setup` joins the process group from them (NCCL on CUDA, gloo on CPU). Without them every
function here is the single-process identity, so models need not know whether they run alone.

Rules (one global batch, the same on every rank):

- every rank draws the same global batch of ``B`` indices (same seed) and keeps its contiguous
  slice :func:`local_slice` of ``B_r`` indices; the effective batch is ``B`` whatever the number
  of processes, so the learning rate is the single-process one (no scaling rule is needed);
- each rank's loss is a mean over its slice, so the global mean-loss gradient is
  ``g = sum_r (B_r / B) g_r``: :class:`GradientAverager` forms it before clipping and the
  optimizer step;
- a decision taken on a loss (a gated step, early stopping) reads :func:`batch_mean` or
  :func:`mean_over_ranks`, so every rank decides alike.
"""

from __future__ import annotations

import datetime
import logging
import os
import random
import re
import subprocess
import sys
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from synthfin.errors import ModelError, first_line

logger = logging.getLogger("synthfin.distributed")
TIMEOUT = datetime.timedelta(minutes=10)  # a collective waiting longer than this fails the job
_share = {"weight": 1.0}  # this rank's share B_r / B of the last global batch drawn


def launched() -> bool:
    """Whether this process was started by ``torchrun`` (or another launcher) as one of
    several ranks."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    """Whether a process group of more than one rank is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Rank 0: the only one that logs progress and writes files."""
    return rank() == 0


def local_device(device: torch.device) -> torch.device:
    """This rank's device: ``cuda:LOCAL_RANK`` for CUDA under a launcher, else ``device``."""
    if launched() and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return device


def setup(device: torch.device) -> torch.device:
    """Join the process group described by torchrun's environment, once (NCCL for a CUDA
    ``device``, gloo otherwise), and return this rank's device (:func:`local_device`).
    Without a launcher, ``device`` is returned unchanged."""
    if not launched():
        return device
    device = local_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        try:
            dist.init_process_group(backend, timeout=TIMEOUT)
        except (RuntimeError, ValueError) as error:
            raise ModelError(f"cannot join the torchrun process group ({first_line(error)}); "
                             "check --rdzv-endpoint / MASTER_ADDR and that every node runs "
                             "the same command") from None
        logger.info("rank %d of %d joined the %s process group", rank(), world_size(), backend)
    if rank() > 0:
        logging.getLogger("synthfin").setLevel(logging.WARNING)  # rank 0 speaks for the job
    return device


def shutdown() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class LostRank(ModelError):
    """A collective failed: another rank died, was killed or hung."""


def _collective(where: str, operation: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Run a ``torch.distributed`` collective; its failure is a :class:`LostRank`."""
    try:
        operation(*args, **kwargs)
    except (RuntimeError, dist.DistError) as error:
        raise LostRank(f"rank {rank()} of {world_size()}: a collective failed in {where} "
                       f"({first_line(error)}); another rank died, was killed or timed out, "
                       "so the job stops") from None


def local_slice(batch: torch.Tensor) -> torch.Tensor:
    """This rank's contiguous part of a global ``batch`` (sizes differ by at most one), and
    its share ``B_r / B`` remembered for :class:`GradientAverager` and :func:`batch_mean`."""
    if not active():
        _share["weight"] = 1.0
        return batch
    size, world = len(batch), world_size()
    if size < world:
        raise ModelError(f"a batch of {size} cannot be split across {world} processes; use a "
                         f"batch_size of at least {world} (and at least {world} training windows)")
    bounds = np.linspace(0, size, world + 1).round().astype(int)  # np.array_split's sizes
    lo, hi = bounds[rank()], bounds[rank() + 1]
    _share["weight"] = (hi - lo) / size
    return batch[lo:hi]


def _all_reduce(tensor: torch.Tensor, where: str,
                op: dist.ReduceOp.RedOpType = dist.ReduceOp.SUM) -> torch.Tensor:
    """``tensor`` reduced over ranks, in place, on the device the backend needs (NCCL: CUDA)."""
    device = torch.device("cuda", torch.cuda.current_device()) if (
        dist.get_backend() == "nccl") else torch.device("cpu")
    moved = tensor.to(device)
    _collective(where, dist.all_reduce, moved, op=op)
    if moved is not tensor:
        tensor.copy_(moved)
    return tensor


def gather_bytes(data: bytes, where: str) -> list[bytes]:
    """Every rank's ``data``, in rank order, on every rank (``[data]`` in one process)."""
    if not active():
        return [data]
    device = torch.device("cuda", torch.cuda.current_device()) if (
        dist.get_backend() == "nccl") else torch.device("cpu")
    size = _all_reduce(torch.tensor([len(data)], dtype=torch.int64), where, dist.ReduceOp.MAX)
    padded = torch.zeros(int(size[0]) + 8, dtype=torch.uint8)  # 8 bytes: the true length
    padded[:8] = torch.tensor([len(data)], dtype=torch.int64).view(torch.uint8)
    padded[8:8 + len(data)] = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    parts = [torch.empty_like(padded, device=device) for _ in range(world_size())]
    _collective(where, dist.all_gather, parts, padded.to(device))
    parts = [part.cpu() for part in parts]
    return [part[8:8 + int(part[:8].view(torch.int64)[0])].numpy().tobytes() for part in parts]


def barrier(where: str) -> None:
    """Wait until every rank gets here."""
    if active():
        _collective(where, dist.barrier)


def batch_mean(local_mean: torch.Tensor) -> torch.Tensor:
    """The mean over the global batch of a quantity whose mean over this rank's slice is
    ``local_mean``: ``sum_r (B_r / B) m_r``; identity in one process."""
    if not active():
        return local_mean
    return _all_reduce(local_mean.detach() * _share["weight"], "batch_mean")


def mean_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """Plain average over ranks (of per-epoch losses, a validation score)."""
    if not active():
        return values
    return _all_reduce(values.detach().clone(), "mean_over_ranks") / world_size()


def broadcast_modules(modules: dict[str, nn.Module]) -> None:
    """Rank 0's parameters and buffers on every rank (as DistributedDataParallel starts)."""
    if not active():
        return
    for module in modules.values():
        for tensor in [*module.parameters(), *module.buffers()]:
            _collective("the first broadcast of the weights", dist.broadcast, tensor.data, src=0)


def fork_global_random() -> None:
    """Give ranks other than 0 their own global torch, NumPy and Python streams, derived from
    the current state and the rank, so that noise a model draws for its slice alone (``randn(
    len(idx), ...)``) differs across ranks. Rank 0 keeps the single-process streams. A model's
    own ``torch.Generator`` is left alone: noise drawn from it for the global batch and cut with
    :func:`local_slice` is the single-process noise, which is the better pattern."""
    if rank() == 0:
        return
    draw = int(torch.randint(0, 2**62, (1,)))
    seed = int(np.random.SeedSequence([draw, rank()]).generate_state(1, np.uint64)[0] >> 1)
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def check_in_step(modules: dict[str, nn.Module]) -> None:
    """Raise :class:`ModelError` when the ranks' weights differ (a model took a decision on a
    local loss). Each rank's checksum is compared with the largest and smallest over ranks."""
    if not active():
        return
    total = sum(float(p.detach().double().sum()) for m in modules.values()
                for p in m.parameters())
    both = _all_reduce(torch.tensor([total, -total], dtype=torch.float64),
                       "the check that ranks agree", dist.ReduceOp.MAX)
    if float(both[0]) != -float(both[1]):
        raise ModelError("the training processes' weights diverged: a model decided on a "
                         "rank's own loss (use synthfin.distributed.batch_mean) or drew inputs "
                         "of the global batch's size (cut them with local_slice)")


class GradientAverager:
    """Average gradients across ranks at the end of every backward pass.

    Every parameter gets a post-accumulate-grad hook; the first hook of a backward queues one
    callback at its end, which multiplies the gradients accumulated in it by this rank's share
    ``B_r / B`` and sums them over ranks in one flattened ``all_reduce``. This is the mechanism
    of DistributedDataParallel's reducer (without bucket overlap). DDP itself is not used
    because it synchronizes only through a wrapped ``forward``: synthfin's models train through
    other methods (``log_prob``, ``condition``), several networks and optimizers per step and
    parameters frozen between phases (TimeGAN), none of which DDP's reducer sees. Hooks see
    every backward, so clipping and the optimizer step read the averaged gradients and models
    need no change. Averaging is linear, so gradients accumulated over several backward passes
    before a step are averaged correctly too.
    """

    def __init__(self, modules: Iterable[nn.Module]) -> None:
        self.params = [p for module in modules for p in module.parameters()]
        self.index = {id(p): i for i, p in enumerate(self.params)}
        self.pending: dict[int, nn.Parameter] = {}
        self.handles = []
        for param in self.params:  # frozen ones too: a model may unfreeze them later
            frozen = not param.requires_grad
            param.requires_grad_(True)  # torch hooks only a tensor that requires grad
            self.handles.append(param.register_post_accumulate_grad_hook(self._ready))
            param.requires_grad_(not frozen)

    def _ready(self, param: nn.Parameter) -> None:
        if not self.pending:
            torch.autograd.Variable._execution_engine.queue_callback(self._flush)
        self.pending[self.index[id(param)]] = param

    def _flush(self) -> None:
        params = [self.pending[i] for i in sorted(self.pending)]  # the same order on every rank
        self.pending = {}
        grads = [p.grad for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads]) * _share["weight"]
        _all_reduce(flat, "the gradient all_reduce")
        offset = 0
        for grad in grads:
            grad.copy_(flat[offset:offset + grad.numel()].view_as(grad))
            offset += grad.numel()

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def run_rank(work: Callable[[], None]) -> None:
    """The body of a process torchrun started: a :class:`~synthfin.errors.SynthfinError` (a
    lost peer, a bad file) is one ``error:`` line on stderr and exit code 1, not a traceback;
    the parent's :func:`torchrun` then names the rank that failed first."""
    from synthfin.errors import SynthfinError

    try:
        work()
    except SynthfinError as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr, flush=True)
        sys.exit(1)


def torchrun(nproc: int, args: list[str], what: str) -> None:
    """Run ``python -m torch.distributed.run --standalone --nproc-per-node nproc ARGS`` and
    wait; a failed job is a :class:`ModelError` naming the rank that failed first.

    The ranks' output (progress, their own one-line errors) passes through as it comes;
    torchrun's own report of a failure (its log lines, its traceback and the table of failed
    ranks, some 50 lines) is summed up in that error instead, unless the ``synthfin`` logger
    is at INFO (``-v``), when it is printed too.
    """
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc-per-node={nproc}", *args]
    environment = {"OMP_NUM_THREADS": "1", **os.environ}  # torchrun's default, without its warning
    with subprocess.Popen(command, env=environment, stderr=subprocess.PIPE) as process:
        launcher = _LauncherFilter(sys.stderr, verbose=logger.isEnabledFor(logging.INFO))
        for chunk in iter(lambda: os.read(process.stderr.fileno(), 65536), b""):
            launcher.feed(chunk)
        launcher.close()
    if process.returncode:
        raise ModelError(f"{what} in {nproc} processes failed ({launcher.root_cause()}); the "
                         "failing rank's own error, if it printed one, is above")


class _LauncherFilter:
    """Pass a torchrun job's stderr through to ``out``, holding back torchrun's own failure
    report (kept in ``held``): its glog-style lines, its ``ChildFailedError`` traceback and
    the table of failed ranks that follows."""

    _LOG = re.compile(rb"^[IWE]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ .*torch/distributed/")

    def __init__(self, out: Any, verbose: bool) -> None:
        self.out, self.verbose = out, verbose
        self.pending, self.held, self.block = b"", [], []
        self.in_report = False

    def feed(self, chunk: bytes) -> None:
        *lines, self.pending = (self.pending + chunk).split(b"\n")
        for line in lines:
            self._line(line + b"\n")
        if self.pending and not self.block and not self.in_report and not (
                self.pending[:1] in b"IWE" and self.pending[1:2].isdigit()):
            self._write(self.pending)  # a progress bar redrawn with \r: show it now
            self.pending = b""

    def close(self) -> None:
        if self.pending:
            self._line(self.pending)
        for line in self.block:  # a traceback that never reached torchrun's error
            self._write(line)
        self.block = []

    def _line(self, line: bytes) -> None:
        if self.in_report:
            self.held.append(line)
        elif self._LOG.match(line):
            self.held.append(line)
        elif self.block or line.startswith(b"Traceback (most recent call last):"):
            self.block.append(line)
            if not line[:1].isspace() and not line.startswith(b"Traceback"):  # its error line
                if b"ChildFailedError" in line:
                    self.held.extend(self.block)
                    self.in_report = True
                else:
                    for kept in self.block:
                        self._write(kept)
                self.block = []
        else:
            self._write(line)
        if self.verbose and (self.in_report or self._LOG.match(line)):
            self._write(line)

    def _write(self, data: bytes) -> None:
        self.out.write(data.decode(errors="replace"))
        self.out.flush()

    def root_cause(self) -> str:
        """``rank R: exitcode C (SIGNAL)`` of the first failure torchrun saw."""
        text = b"".join(self.held).decode(errors="replace")
        found = re.search(r"Root Cause.*?rank\s*:\s*(\d+).*?exitcode\s*:\s*(-?\d+)[^\n]*?"
                          r"(\(SIG\w+\))?\n", text, re.S)
        if found is None:
            return "torchrun reported no failed rank"
        rank_number, code, name = found.groups()
        return f"rank {rank_number} failed first, exit code {code}" + (
            f" {name}" if name else "")
