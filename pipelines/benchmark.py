"""Benchmark every model of a pipeline on the same data, in one process, in one table.

    python pipelines/benchmark.py [pipelines/quickstart.yaml] [--device cuda] [--n 2000]
                                  [--threads 2] [--out runs/benchmark]

For each model: training time, sampling throughput (path-steps per second for ``--n`` paths of
the window length), peak memory (CUDA: peak allocated; CPU: the process's peak resident set,
which only grows, so read it as "up to this model"), and the evaluator's main scores in units of
the noise floor, memorization and the discriminative score. Writes ``benchmark.md`` and
``benchmark.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from synthfin.evaluation import evaluate_windows
from synthfin.io import atomic_write_json, atomic_write_text, finite_json
from synthfin.jobs.config import load_pipeline_config
from synthfin.jobs.pipeline import model_settings, prepare_data

SCORES = ["acf_r", "acf_abs", "acf_sq", "leverage", "tails", "w1_1d", "w1_20d"]


def peak_memory_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("pipeline", nargs="?", default="pipelines/quickstart.yaml")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="runs/benchmark")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_pipeline_config(args.pipeline, device=args.device)
    if args.device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    else:
        device = args.device
    data = prepare_data(config.data)
    rows, samples = {}, {}
    for run_name, entry in config.models.items():
        model_cls, settings = model_settings(run_name, entry, seed=config.seed, device=device)
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        model = model_cls(**settings).fit(data)
        train_seconds = time.perf_counter() - start
        start = time.perf_counter()
        samples[run_name] = model.sample_returns(args.n, seed=config.seed)
        sample_seconds = time.perf_counter() - start
        rows[run_name] = {"train_s": train_seconds,
                          "path_steps_per_s": args.n * data.window_len / sample_seconds,
                          "peak_mem_mb": peak_memory_mb(device)}
        print(f"{run_name}: trained in {train_seconds:.1f} s", flush=True)
    evaluation = evaluate_windows(data, samples, seed=config.seed, neural=True)
    timing = pd.DataFrame(rows).T
    tables = {reference: evaluation.summary(reference) for reference in evaluation.scores}
    header = (f"benchmark of {args.pipeline} on {', '.join(data.assets)}, window "
              f"{data.window_len}, {args.n} samples per model, device {device}, "
              f"{args.threads} CPU threads")
    text = "\n".join([header, "", _markdown(timing.round(3)),
                      *[f"gaps over the {reference} noise floor\n\n{_markdown(table.round(3))}"
                        for reference, table in tables.items()],
                      "noise floors:", evaluation.floors()[SCORES].round(3).to_string()])
    print(f"\n{text}")
    for warning in evaluation.warnings:
        print(warning)
    out = Path(args.out)
    atomic_write_text(out / "benchmark.md", text + "\n")
    atomic_write_json(out / "benchmark.json", finite_json({
        "header": header, "timing": json.loads(timing.to_json(orient="index")),
        **{reference: json.loads(table.to_json(orient="index"))
           for reference, table in tables.items()},
        "noise_floors": json.loads(evaluation.floors().to_json(orient="index")),
        "warnings": evaluation.warnings}))


def _markdown(table: pd.DataFrame) -> str:
    lines = ["| model | " + " | ".join(table.columns) + " |",
             "|---|" + "---:|" * len(table.columns)]
    for name, row in table.iterrows():
        lines.append(f"| {name} | " + " | ".join(
            "-" if not np.isfinite(v) else f"{v:,.3g}" for v in row.to_numpy(dtype=float))
            + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
