"""How ``ar``'s cost grows with the number of assets.

    python pipelines/bench_joint_scale.py [--assets 5,10,21] [--synthetic 100,500]
        [--epochs 2] [--paths 1000] [--step-paths 100] [--threads 1] [--device cpu|cuda]

For the first 5, 10 and 21 bundled series (the S&P 500 and the stocks in their listed order,
daily closes from 2000, default split, window 64): the seconds to fit ``ar`` (``--epochs``
epochs of fine-tuning from the pooled checkpoint, then the stationary states and variance
targeting, which run at any number of epochs) and to sample ``--paths`` paths of 252 days.
Then the sampling step alone (one day of ``ARNet.step`` for ``--step-paths`` paths, the
pretrained network with a random long-run correlation) at every size, bundled and synthetic
(100 and 500 assets), in microseconds per path-day and per path-asset-day. All from one run;
ratios are against the smallest size.
"""

from __future__ import annotations

import argparse
import time

import torch

from synthfin.data.bundled import BUNDLED_TICKERS
from synthfin.data.returns import log_returns
from synthfin.data.sources import load_prices
from synthfin.data.windows import make_windows
from synthfin.models.autoregressive import (
    SPANS,
    ARNet,
    AutoregressiveConfig,
    AutoregressiveGenerator,
    features,
    load_pretrained,
)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fit_and_sample(assets: int, epochs: int, paths: int, device: torch.device
                   ) -> tuple[float, float]:
    tickers = list(BUNDLED_TICKERS)[:assets]
    data = make_windows(log_returns(load_prices("bundled", tickers, start="2000-01-01")), 64)
    began = time.perf_counter()
    model = AutoregressiveGenerator(epochs=epochs, progress=False, device=device.type).fit(data)
    fitted = time.perf_counter() - began
    began = time.perf_counter()
    model.sample(paths, length=252, seed=0)
    return fitted, time.perf_counter() - began


def step_seconds(assets: int, paths: int, device: torch.device, days: int = 21) -> float:
    """Seconds per day of ``ARNet.step`` for ``paths`` paths of ``assets`` assets."""
    config = AutoregressiveConfig()
    net = ARNet(assets, config.hidden, config.layers, config.components)
    load_pretrained(net, "universe", config)
    torch.manual_seed(0)
    with torch.no_grad():
        net.correlation.base.normal_(0, 0.1)
    net = net.to(device)
    v = torch.ones(paths, assets, len(SPANS), device=device)
    x, state = features(torch.zeros(paths, assets, device=device), v), None
    generator = torch.Generator(device).manual_seed(0)
    with torch.no_grad():
        q = net.correlation.start(paths)
        _, x, v, state, q = net.step(x, v, state, q, generator)  # warm-up
        _synchronize(device)
        began = time.perf_counter()
        for _ in range(days):
            _, x, v, state, q = net.step(x, v, state, q, generator)
        _synchronize(device)
    return (time.perf_counter() - began) / days


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", default="5,10,21",
                        help="bundled sizes to fit and sample ('' for the sampling step only)")
    parser.add_argument("--synthetic", default="100,500")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--paths", type=int, default=1000)
    parser.add_argument("--step-paths", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    bundled = [int(a) for a in args.assets.split(",") if a]  # "": the step only
    print(f"ar on bundled series: fit ({args.epochs} epochs + stationary states) and "
          f"{args.paths} paths x 252 days, torch threads {args.threads}, {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    print(f"{'assets':>7}{'fit s':>9}{'ratio':>8}{'sample s':>10}{'ratio':>8}")
    first = None
    for assets in bundled:
        fitted, sampled = fit_and_sample(assets, args.epochs, args.paths, device)
        first = first or (fitted, sampled)
        print(f"{assets:>7}{fitted:>9.1f}{fitted / first[0]:>8.2f}{sampled:>10.1f}"
              f"{sampled / first[1]:>8.2f}")
    print(f"\none sampling day (ARNet.step) for {args.step_paths} paths")
    print(f"{'assets':>7}{'us/path-day':>13}{'ratio':>8}{'us/path-asset-day':>19}")
    base = None
    for assets in bundled + [int(a) for a in args.synthetic.split(",")]:
        per_day = step_seconds(assets, args.step_paths, device) / args.step_paths * 1e6
        base = base or per_day
        print(f"{assets:>7}{per_day:>13.1f}{per_day / base:>8.2f}{per_day / assets:>19.2f}")


if __name__ == "__main__":
    main()
