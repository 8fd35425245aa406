"""Benchmark TimeGAN: iterations per second of each training phase on CPU, then a short training
on bundled S&P 500 windows scored beside GARCH, GJR, the block bootstrap and the Gaussian.

    python pipelines/bench_timegan.py [--threads 1] [--samples 2000] [--epochs 16] [--skip-speed]

Speed: batch 128, windows of 24 and 64 days, hidden 24 and 64, one step = one optimizer step of
the phase (a joint step is two generator + embedder updates and one discriminator update).
Evaluation: real = every real window (train, val, test) unscaled in chronological order,
train = training windows, held out = validation + test windows; no neural scores.
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch

import synthfin as sf
from synthfin.models.baselines import BlockBootstrap, GarchGenerator, GaussianGenerator
from synthfin.models.timegan import TimeGAN


def phase_speed(returns, window: int, hidden: int, batch: int, layers: int,
                repeats: dict[str, int]) -> dict[str, float]:
    """Optimizer steps per second of each phase (after one warm-up step)."""
    data = sf.make_windows(returns, window)
    with warnings.catch_warnings():  # zero epochs: built, untrained, so "collapsed" by design
        warnings.simplefilter("ignore", RuntimeWarning)
        untrained = TimeGAN(hidden=hidden, layers=layers, batch_size=batch,
                            autoencoder_epochs=0, supervisor_epochs=0, epochs=0,
                            progress=False, device="cpu").fit(data)
    steps = untrained.training_steps(data).steps
    speed = {}
    for phase, step in steps.items():
        step()
        start = time.perf_counter()
        for _ in range(repeats[phase]):
            step()
        speed[phase] = repeats[phase] / (time.perf_counter() - start)
    return speed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=16, help="joint epochs of the training")
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    returns = sf.log_returns(sf.load_prices("bundled", ["SP500"]))

    if not args.skip_speed:
        print(f"## steps per second on CPU ({args.threads} thread(s), batch 128, "
              f"{args.layers} GRU layer(s))\n")
        print("| window | hidden | autoencoder | supervisor | joint |\n|---:|---:|---:|---:|---:|")
        for window in (24, 64):
            for hidden in (24, 64):
                speed = phase_speed(returns, window, hidden, 128, args.layers,
                                    {"autoencoder": 10, "supervisor": 10, "joint": 3})
                print(f"| {window} | {hidden} | {speed['autoencoder']:.1f} | "
                      f"{speed['supervisor']:.1f} | {speed['joint']:.2f} |", flush=True)

    data = sf.make_windows(returns, 64)
    start = time.perf_counter()
    timegan = TimeGAN(epochs=args.epochs, layers=args.layers, patience=6, progress=False,
                      device="cpu").fit(data)
    seconds = time.perf_counter() - start
    joint = [row for row in timegan.history_ if row["phase"] == "joint"]
    best = min(joint, key=lambda row: row["validation"])
    print(f"\ntimegan: fitted in {seconds:.0f} s, {len(joint)} joint epochs (best {best['epoch']},"
          f" validation {best['validation']:.3f}), diversity {timegan.diversity_:.2f}")

    generators = {"timegan": timegan, "garch": GarchGenerator().fit(data),
                  "gjr": GarchGenerator(gjr=True).fit(data),
                  "bootstrap": BlockBootstrap().fit(data),
                  "gaussian": GaussianGenerator().fit(data)}
    samples = {name: g.sample_returns(args.samples, seed=1) for name, g in generators.items()}
    evaluation = sf.evaluate_windows(data, samples, neural=False)
    print("\n## bundled S&P 500, window 64: gaps in units of the noise floor\n")
    print(evaluation.summary().round(3).to_string())
    for reference, table in evaluation.scores.items():
        print(f"\nstandardized curve gaps, {reference} (RMS in units of the real spread):\n")
        print(table.standardized.round(2).to_string())
    print("\nnoise floors:\n")
    print(evaluation.floors().round(4).to_string())
    for message in evaluation.warnings:
        print("WARNING:", message)


if __name__ == "__main__":
    main()
