"""Start a test's ranks by forking pytest's process, with torchrun's environment variables:
two ranks start in a fraction of a second instead of importing torch again."""

from __future__ import annotations

import multiprocessing
import os
import socket
from collections.abc import Callable
from pathlib import Path


def _rank_main(rank: int, world: int, port: int, out: Path, target: Callable[[], None]
               ) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      LOCAL_WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    try:
        target()
    except Exception as error:  # the message the rank would print, for the test to read
        (out / f"error{rank}.txt").write_text(str(error))
        os._exit(1)
    os._exit(0)


def launch(out: Path, target: Callable[[], None], world: int = 2) -> list[int]:
    """Run ``target`` in ``world`` ranks forked from this process (as torchrun would start
    them, without re-importing torch); their exit codes."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    context = multiprocessing.get_context("fork")
    ranks = [context.Process(target=_rank_main, args=(r, world, port, out, target))
             for r in range(world)]
    for process in ranks:
        process.start()
    for process in ranks:
        process.join(120)
    for process in ranks:
        if process.is_alive():  # hung: stop it, and report exit code None
            process.kill()
    return [process.exitcode for process in ranks]
