"""A tiny TrainingLoop run (linear regression, SGD), alone or as one rank under torchrun, for
tests/test_distributed.py: ``python distributed_worker.py OUT [KILL_RANK KILL_STEP]``.

Two linear regressions with their own SGD optimizers: ``net`` steps every time, ``critic`` only
while its global batch loss exceeds ``CRITIC_GATE`` (a gated step, as TimeGAN's discriminator).
Rank 0 (or the single process) writes ``OUT/result.json``: the final weights, the global-batch
losses of every step and, alone, the quantities the reassociation tolerance is derived from.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import torch
from torch import nn

from synthfin import distributed
from synthfin.models.training import BatchOrder, TrainingLoop

N, DIM, BATCH, LR, EPOCHS, STEPS = 64, 4, 16, 0.05, 3, 4
CRITIC_GATE = 4.0  # the critic steps while its global batch loss is above this


def data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(N, DIM, generator=generator)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1 * torch.randn(N, generator=generator)
    return x, y


def _regression_step(net: nn.Linear, optimizer: torch.optim.Optimizer, x: torch.Tensor,
                     y: torch.Tensor, gate: float | None, record: dict[str, list],
                     local_gate: bool = False) -> torch.Tensor:
    """One least-squares SGD step on the batch ``(x, y)``; with ``gate``, the step is kept only
    when the global batch loss exceeds it (as TimeGAN gates its discriminator), or with
    ``local_gate`` (a bug) this rank's loss. Alone, the quantities of the reassociation bound
    are recorded."""
    optimizer.zero_grad(set_to_none=True)
    residual = net(x)[:, 0] - y
    loss = (residual ** 2).mean()
    loss.backward()
    global_loss = distributed.batch_mean(loss.detach())
    record["losses"].append(float(global_loss))
    if gate is not None and not bool((loss if local_gate else global_loss) > gate):
        return loss.detach()
    if not distributed.active():
        with torch.no_grad():
            features = torch.cat([x, torch.ones(len(x), 1)], dim=1)  # (B, D + 1)
            weights = torch.cat([net.weight[0], net.bias])
            gradient = (2 * residual[:, None] * features).abs().max()
            forward = (2 * (features.abs() @ weights.abs()) * features.abs().max()).max()
        record["bound_terms"].append([float(gradient), float(forward)])
    optimizer.step()
    return loss.detach()


def main(out: Path, kill_rank: int = -1, kill_step: int = -1, local_gate: bool = False,
         noise: float = 0.0, resume: bool = False) -> None:
    """Train; ``noise`` adds ``noise * randn`` from the global torch stream (its own on each
    rank) to the targets, ``resume`` continues ``out/run``'s checkpoint."""
    torch.set_num_threads(1)
    distributed.setup(torch.device("cpu"))
    x, y = data()
    torch.manual_seed(1)
    nets = {"net": nn.Linear(DIM, 1), "critic": nn.Linear(DIM, 1)}
    optimizers = {name: torch.optim.SGD(net.parameters(), lr=LR) for name, net in nets.items()}
    order = BatchOrder(N, BATCH, seed=3)
    records = {name: {"losses": [], "bound_terms": []} for name in nets}

    def step() -> dict[str, torch.Tensor]:
        if distributed.rank() == kill_rank and len(records["net"]["losses"]) == kill_step:
            os.kill(os.getpid(), signal.SIGKILL)
        idx = next(order)
        target = y[idx] + noise * torch.randn(len(idx)) if noise else y[idx]
        return {name: _regression_step(net, optimizers[name], x[idx], target,
                                       CRITIC_GATE if name == "critic" else None, records[name],
                                       local_gate)
                for name, net in nets.items()}

    loop = TrainingLoop(nets, optimizers, run_dir=out / "run", progress=False,
                        streams={"order": order}, resume=resume)
    loop.run("fit", EPOCHS, step, STEPS)
    if distributed.is_main():
        (out / "result.json").write_text(json.dumps({
            "weights": {name: torch.cat([net.weight[0], net.bias]).tolist()
                        for name, net in nets.items()},
            "records": records, "history": loop.history,
            "world_size": distributed.world_size()}))
    distributed.shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1]), *map(int, sys.argv[2:]))
