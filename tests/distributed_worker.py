"""A tiny TrainingLoop run (linear regression, SGD), alone or as one rank under torchrun, for
tests/test_distributed.py: ``python distributed_worker.py OUT [KILL_RANK KILL_STEP]``.

Rank 0 (or the single process) writes ``OUT/result.json``: the final weights, the global-batch
loss of every step and, alone, the quantities the reassociation tolerance is derived from.
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


def data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(N, DIM, generator=generator)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1 * torch.randn(N, generator=generator)
    return x, y


def main(out: Path, kill_rank: int = -1, kill_step: int = -1) -> None:
    torch.set_num_threads(1)
    distributed.setup(torch.device("cpu"))
    x, y = data()
    torch.manual_seed(1)
    net = nn.Linear(DIM, 1)
    optimizer = torch.optim.SGD(net.parameters(), lr=LR)
    order = BatchOrder(N, BATCH, seed=3)
    losses: list[float] = []
    bound_terms: list[list[float]] = []  # per step: max |per-sample gradient|, max forward size

    def step() -> dict[str, torch.Tensor]:
        if distributed.rank() == kill_rank and len(losses) == kill_step:
            os.kill(os.getpid(), signal.SIGKILL)
        idx = next(order)
        optimizer.zero_grad(set_to_none=True)
        residual = net(x[idx])[:, 0] - y[idx]
        loss = (residual ** 2).mean()
        loss.backward()
        if not distributed.active():
            with torch.no_grad():
                features = torch.cat([x[idx], torch.ones(len(idx), 1)], dim=1)  # (B, D + 1)
                weights = torch.cat([net.weight[0], net.bias])
                gradient = (2 * residual[:, None] * features).abs().max()
                forward = (2 * (features.abs() @ weights.abs()) * features.abs().max()).max()
            bound_terms.append([float(gradient), float(forward)])
        optimizer.step()
        losses.append(float(distributed.batch_mean(loss.detach())))
        return {"mse": loss.detach()}

    loop = TrainingLoop({"net": net}, {"net": optimizer}, run_dir=out / "run", progress=False,
                        streams={"order": order})
    loop.run("fit", EPOCHS, step, STEPS)
    if distributed.is_main():
        weights = torch.cat([net.weight[0], net.bias]).tolist()
        (out / "result.json").write_text(json.dumps({
            "weights": weights, "losses": losses, "bound_terms": bound_terms,
            "history": loop.history, "world_size": distributed.world_size()}))
    distributed.shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1]), *map(int, sys.argv[2:]))
