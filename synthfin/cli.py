"""The ``synthfin`` command: it parses arguments and calls the library, nothing more."""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import signal
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import pandas as pd
import typer

from synthfin import __version__
from synthfin.errors import SynthfinError, SynthfinWarning
from synthfin.io import output_lock

app = typer.Typer(help="Realistic synthetic financial time series.", no_args_is_help=True,
                  rich_markup_mode="markdown",  # docstrings reflowed, paragraphs kept
                  add_completion=False, pretty_exceptions_enable=False)
F = TypeVar("F", bound=Callable[..., Any])
_options = {"verbose": False}  # set by the global -v
# what a command interrupted by Ctrl-C left behind, and how to go on
_AFTER_INTERRUPT = {
    "run": "`synthfin run` again continues from the finished stages and the last checkpoint",
    "train": "`synthfin train` again with --resume continues from the last checkpoint",
    "sample": "nothing partial was written; with --shard-size the same command keeps the "
              "finished shards",
    "evaluate": "the folder keeps its earlier report, whole; run the command again",
}


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {' '.join(message.split())}", err=True)  # always one line
    return typer.Exit(code=code)


def _user_message(error: BaseException) -> str | None:
    """The one line a user-caused failure deserves, or None for a bug (which keeps its
    traceback)."""
    if isinstance(error, SynthfinError):
        return str(error)
    if isinstance(error, MemoryError):
        return ("out of memory; ask for less at once (fewer or shorter paths, a smaller model) "
                "or free memory")
    if isinstance(error, OSError):  # the user's files and disk: missing, a folder, full...
        where = " -> ".join(str(name) for name in (error.filename, error.filename2) if name)
        return (f"{error.strerror or error}{f': {where}' if where else ''}; check the path, "
                "its permissions and the free disk space")
    return None


def user_errors(command: F) -> F:
    """A failure the user caused (:class:`SynthfinError`, their files, disk or memory) becomes
    one line on stderr and exit code 2; Ctrl-C one line and exit code 130. ``-v`` also prints
    the traceback."""
    after = _AFTER_INTERRUPT.get(command.__name__, "nothing partial was written")

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with _interrupts() as interrupted, _plain_warnings():
                result = command(*args, **kwargs)
            if interrupted:  # a library swallowed the KeyboardInterrupt: still not a success
                raise KeyboardInterrupt
            return result
        except KeyboardInterrupt:
            raise _fail(f"interrupted; {after}", code=130) from None
        except Exception as error:
            message = _user_message(error)
            if message is None:
                raise
            if _options["verbose"]:
                traceback.print_exc()
            raise _fail(message) from None
    return wrapper  # type: ignore[return-value]


@contextlib.contextmanager
def _plain_warnings() -> Any:
    """While a command runs, each :class:`SynthfinWarning` (implausible paths...) is one
    ``warning: ...`` line on stderr; other warnings show as Python shows them."""
    original = warnings.showwarning

    def show(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        if issubclass(category, SynthfinWarning):
            typer.echo(f"warning: {message}", err=True)
        else:
            original(message, category, *args, **kwargs)

    with warnings.catch_warnings():  # restores showwarning and the filters afterwards
        warnings.simplefilter("always", SynthfinWarning)
        warnings.showwarning = show
        yield


@contextlib.contextmanager
def _interrupts() -> Any:
    """Record every SIGINT while a command runs (then raise KeyboardInterrupt as usual), so
    that one a library catches still ends the command with exit code 130; yields a list that
    is non-empty after an interrupt."""
    seen: list[int] = []
    if not hasattr(signal, "SIGINT") or signal.getsignal(signal.SIGINT) is not (
            signal.default_int_handler):  # not the main thread, or someone else's handler
        yield seen
        return

    def record(signum: int, frame: Any) -> None:
        seen.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, record)
    try:
        yield seen
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _locked(path: Path) -> contextlib.AbstractContextManager:
    """The lock on an output (:func:`synthfin.io.output_lock`), taken by rank 0 alone when
    torchrun starts several copies of the command."""
    return output_lock(path) if os.environ.get("RANK", "0") == "0" else contextlib.nullcontext()


def _folder(path: Path) -> Path:
    """``path`` if it can become a folder (before any work is done), else a one-line error."""
    if path.exists() and not path.is_dir():
        raise _fail(f"{path} is a file; --out takes a folder (a new or an existing one)")
    return path


def _progress_off_terminal() -> contextlib.AbstractContextManager:
    """Long work reports progress as lines on stderr when stderr is no terminal (a log, CI);
    a terminal shows progress bars instead."""
    from synthfin.models.training import progress_lines

    if sys.stderr.isatty():
        return contextlib.nullcontext()
    return progress_lines(lambda line: typer.echo(line, err=True))


def _split_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"synthfin {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="Log progress and third-party messages; print tracebacks.")
    ] = False,
) -> None:
    """Realistic synthetic financial time series."""
    _options["verbose"] = verbose
    logger = logging.getLogger("synthfin")  # third-party output is re-logged under it (INFO)
    for handler in [h for h in logger.handlers if getattr(h, "synthfin_cli", False)]:
        logger.removeHandler(handler)
    handler = logging.StreamHandler()  # the stderr of this invocation
    handler.synthfin_cli = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if verbose else logging.WARNING)


@app.command()
@user_errors
def download(
    tickers: Annotated[str, typer.Option(help="Comma-separated Yahoo tickers, e.g. SPY,QQQ.")],
    start: Annotated[str, typer.Option(help="First date, YYYY-MM-DD.")],
    end: Annotated[str | None, typer.Option(help="Last date (default: today).")] = None,
    interval: Annotated[str, typer.Option(help="Bar interval.")] = "1d",
    cache_dir: Annotated[Path | None, typer.Option(
        help="Cache folder (default: $SYNTHFIN_CACHE_DIR or ~/.cache/synthfin).")] = None,
    retries: Annotated[int, typer.Option(
        help="Retries after a rate limit or a dropped connection (not after a DNS "
                    "failure, a 404 or an unknown ticker).")] = 4,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for Yahoo.")] = 10.0,
) -> None:
    """Download daily closes from Yahoo Finance into the local cache."""
    from synthfin.data.sources import load_prices

    prices = load_prices("yfinance", _split_list(tickers), start, end, interval=interval,
                         cache_dir=cache_dir, retries=retries, timeout=timeout)
    typer.echo(_describe_prices(prices).to_string())


def _describe_prices(prices: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"rows": prices.notna().sum(),
                         "first": [prices[c].first_valid_index().date() for c in prices],
                         "last": [prices[c].last_valid_index().date() for c in prices]})


@app.command()
@user_errors
def prepare(
    out: Annotated[Path, typer.Option(help="Folder for the prepared data set.")],
    source: Annotated[str, typer.Option(
        help="'bundled' (offline), 'yfinance', or a CSV / parquet path.")] = "bundled",
    tickers: Annotated[str | None, typer.Option(help="Comma-separated tickers.")] = None,
    start: Annotated[str | None, typer.Option(help="First date, YYYY-MM-DD.")] = None,
    end: Annotated[str | None, typer.Option(help="Last date, YYYY-MM-DD.")] = None,
    window: Annotated[int | None, typer.Option(help="Days per window.")] = None,
    stride: Annotated[int | None, typer.Option(help="Days between window starts.")] = None,
    split: Annotated[str | None, typer.Option(
        help="Train,val,test fractions, or last-train-day,last-val-day dates.")] = None,
    vol_lookback: Annotated[int | None, typer.Option(
        help="Days of trailing realized vol.")] = None,
    regime_quantiles: Annotated[str | None, typer.Option(
        help="Training-vol quantiles separating calm,normal,stressed.")] = None,
    gaussianize: Annotated[bool | None, typer.Option(
        help="Also remove heavy tails with the Lambert W transform.")] = None,
    fill_gaps: Annotated[int, typer.Option(
        help="Forward-fill NaN runs up to this many days (0: gaps are errors).")] = 0,
    cache_dir: Annotated[Path | None, typer.Option(help="yfinance cache folder.")] = None,
) -> None:
    """Prices -> log returns -> scaled, regime-labelled windows, written to a folder. A window
    option left out takes its default from ``synthfin.data.windows.WindowSettings``."""
    from synthfin.jobs.config import DataConfig, validated
    from synthfin.jobs.pipeline import prepare_data

    windows: dict[str, Any] = {"window_len": window, "stride": stride,
                               "vol_lookback": vol_lookback, "gaussianize": gaussianize}
    if split is not None:
        split_parts = _split_list(split)
        try:
            windows["split"] = [float(s) for s in split_parts]
        except ValueError:
            windows["split"] = split_parts
    if regime_quantiles is not None:
        windows["regime_quantiles"] = [float(q) for q in _split_list(regime_quantiles)]
    config = validated(DataConfig, {
        "source": source, "tickers": _split_list(tickers) if tickers else None, "start": start,
        "end": end, "fill_gaps": fill_gaps,
        "cache_dir": None if cache_dir is None else str(cache_dir),
        **{k: v for k, v in windows.items() if v is not None}}, "synthfin prepare")
    with _locked(_folder(out)):
        data = prepare_data(config)
        data.save(out)
    typer.echo(f"prepared {', '.join(data.assets)}: window {data.window_len}, stride "
               f"{data.stride} -> {out}")
    typer.echo(data.summary().to_string())
    thresholds = ", ".join(f"{v:.1%}" for v in data.regimes.thresholds_)
    typer.echo(f"regime thresholds (annualized {data.vol_lookback}-day realized vol): {thresholds}")


def _parse_settings(settings: list[str]) -> dict[str, Any]:
    import json

    parsed = {}
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise _fail(f"--set takes KEY=VALUE, got {item!r}")
        try:
            parsed[key] = json.loads(value)
        except json.JSONDecodeError:
            parsed[key] = value
    return parsed


@app.command()
@user_errors
def train(
    model: Annotated[str, typer.Option(help="Model name: see `synthfin models`.")],
    data: Annotated[Path, typer.Option(help="Folder written by `synthfin prepare`.")],
    out: Annotated[Path, typer.Option(help="Folder for the fitted model.")],
    seed: Annotated[int | None, typer.Option(help="Random seed (default 0).")] = None,
    setting: Annotated[list[str] | None, typer.Option(
        "--set", help="Model setting KEY=VALUE (repeatable), e.g. --set gjr=true.")] = None,
    resume: Annotated[bool, typer.Option(
        help="Continue the training checkpointed in OUT/training (a model fitted in one step "
             "fits again).")] = False,
    nproc: Annotated[int | None, typer.Option(
        min=1, help="Train a neural model data-parallel in this many local processes "
                    "(torchrun); the same as --set nproc=N. Under torchrun it is not needed."
    )] = None,
) -> None:
    """Fit a generator on a prepared data set and save it.

    Models trained in epochs also write their loss history, checkpoints and best weights to
    OUT/training, and print their progress. Launched by torchrun (one or several machines),
    every rank trains its share and rank 0 saves."""
    from synthfin import distributed
    from synthfin.data.windows import WindowData
    from synthfin.models import get_generator

    settings = _parse_settings(setting or [])
    for key, value in (("seed", seed), ("nproc", nproc)):
        if value is not None and settings.setdefault(key, value) != value:
            raise _fail(f"--{key} {value} and --set {key}={settings[key]} disagree; give one")
    settings.setdefault("seed", 0)
    generator = get_generator(model)(**settings)
    prepared = WindowData.load(data)
    with _locked(_folder(out)):
        with _progress_off_terminal():
            generator.fit(prepared, run_dir=out / "training", resume=resume)
        if distributed.is_main():
            generator.save(out)
            typer.echo(f"trained {model} -> {out}")
    distributed.shutdown()


@app.command()
@user_errors
def sample(
    model_dir: Annotated[Path, typer.Option(help="Folder written by `synthfin train`.")],
    out: Annotated[Path, typer.Option(
        help="Output: .npy (n, length, assets) or .parquet; a folder with --shard-size.")],
    n: Annotated[int, typer.Option(help="Number of paths.")] = 1000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    regime: Annotated[str | None, typer.Option(help="calm, normal or stressed.")] = None,
    length: Annotated[int | None, typer.Option(
        min=1, help="Days per path (default: window).")] = None,
    shard_size: Annotated[int | None, typer.Option(
        min=1, help="Write a partitioned parquet data set (path, date, asset, return, price) "
                    "into the folder OUT, this many paths per shard; resumable.")] = None,
    start_date: Annotated[str, typer.Option(
        help="With --shard-size: paths are dated on the business days after this day.")
    ] = "2025-12-31",
    start_price: Annotated[float, typer.Option(
        help="With --shard-size: every asset's price the day before the first return.")
    ] = 100.0,
    nproc: Annotated[int, typer.Option(
        min=1, help="With --shard-size: write the shards in this many local processes "
                    "(torchrun); the data set is the same for any number.")] = 1,
    ohlcv: Annotated[bool, typer.Option(
        help="With --shard-size: also open, high, low, volume columns (price is the close).")
    ] = False,
) -> None:
    """Draw synthetic paths of unscaled log returns.

    Paths are written chunk by chunk (bounded memory); with --shard-size, a sharded data set
    (under torchrun each rank writes its own shards)."""
    from tqdm.auto import tqdm

    from synthfin.io import SampleWriter
    from synthfin.models import Generator

    if shard_size is not None:
        with _locked(_folder(out)):
            _sample_shards(model_dir, out, n, seed, regime, length, shard_size, start_date,
                           start_price, nproc, ohlcv)
        return
    generator = Generator.load(model_dir)
    length = length or generator.spec_.window_len
    assets = generator.spec_.assets
    source = {"model": generator.name, "model_sha256": generator.fingerprint(), "seed": seed,
              "regime": regime}
    with _locked(out), SampleWriter(out, n, length, assets, source=source) as writer, tqdm(
            total=n, unit="path", desc="sample", disable=None, leave=False) as bar:
        for chunk in generator.sample_chunks(n, condition=regime, seed=seed, length=length):
            writer.write(chunk)
            bar.update(len(chunk))
    typer.echo(f"sampled {n} paths x {length} days x {len(assets)} assets -> {out}")


def _sample_shards(model_dir: Path, out: Path, n: int, seed: int, regime: str | None,
                   length: int | None, shard_size: int, start_date: str, start_price: float,
                   nproc: int, ohlcv: bool) -> None:
    import torch

    from synthfin import distributed
    from synthfin.jobs.shards import ShardPlan, write_dataset, write_dataset_in_workers
    from synthfin.models import Generator

    if distributed.launched():  # started by torchrun: this process is one rank
        distributed.setup(torch.device("cpu"))  # gloo: the ranks only wait for each other
    generator = Generator.load(model_dir)
    plan = ShardPlan(n, shard_size, length or generator.spec_.window_len, seed, regime,
                     start_date, start_price, ohlcv=ohlcv)
    if nproc > 1 and not distributed.launched():
        manifest = write_dataset_in_workers(model_dir, out, plan, nproc)
    else:
        manifest = write_dataset(generator, out, plan, progress=True)
    distributed.shutdown()
    if manifest is not None:
        typer.echo(f"sampled {n} paths x {plan.length} days x {len(manifest['assets'])} assets "
                   f"in {plan.n_shards} shards ({manifest['rows']} rows) -> {out}")


@app.command()
@user_errors
def scenario(
    model_dir: Annotated[Path, typer.Option(
        help="A saved Synthesizer (paths continue its real history before the given days), "
             "or a generator folder (paths start from its stationary states).")],
    given: Annotated[Path, typer.Option(
        help="Prices of the given tickers on real dates (a CSV or parquet file as prepare "
             "reads; its first row is the base day): their log returns are the given path.")],
    out: Annotated[Path, typer.Option(help="Output .npy (n, days, assets) or .parquet.")],
    n: Annotated[int, typer.Option(help="Number of paths.")] = 1000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Draw the other assets given a real (or drawn) path of some: the given tickers follow
    the file's prices, the others come from the model's conditional (ar, dcc, fhs)."""
    import numpy as np

    from synthfin.data.returns import log_returns
    from synthfin.data.sources import load_prices
    from synthfin.io import SampleWriter
    from synthfin.models import Generator
    from synthfin.synthesizer import Synthesizer

    path = log_returns(load_prices(given))
    if (model_dir / "synthesizer.json").is_file():
        synth = Synthesizer.load(model_dir)
        returns = synth.sample_given(path, n, seed=seed).returns
        assets, name = synth.generator_.spec_.assets, synth.model
    else:
        generator = Generator.load(model_dir)
        if not hasattr(generator, "sample_given"):
            raise _fail(f"model {generator.name!r} cannot draw assets given a path of others "
                        "(ar, dcc, fhs can)")
        returns = generator.sample_given(path.to_numpy(), [str(c) for c in path.columns], n,
                                         seed=seed)
        assets, name = generator.spec_.assets, generator.name
    source = {"model": name, "seed": seed, "given": [str(c) for c in path.columns],
              "dates": [str(path.index[0].date()), str(path.index[-1].date())]}
    with _locked(out), SampleWriter(out, n, len(path), list(assets), source=source) as writer:
        writer.write(returns)
    market = path.iloc[:, 0].to_numpy()
    centred = market - market.mean()
    typer.echo(f"given {', '.join(source['given'])} on {source['dates'][0]} to "
               f"{source['dates'][1]} ({len(path)} days): {n} paths x {len(assets)} assets -> "
               f"{out}")
    beta_to = f"median beta to {path.columns[0]}"
    typer.echo(f"{'asset':<10}{'median total log return':>26}{beta_to:>26}")
    for a, asset in enumerate(assets):
        x = returns[:, :, a] - returns[:, :, a].mean(axis=1, keepdims=True)
        beta = np.median(x @ centred / np.sum(centred**2)) if np.any(centred) else np.nan
        typer.echo(f"{asset:<10}{np.median(returns[:, :, a].sum(axis=1)):>26.4f}{beta:>26.2f}")


@app.command()
@user_errors
def evaluate(
    data: Annotated[Path, typer.Option(help="Folder written by `synthfin prepare`.")],
    samples: Annotated[list[str], typer.Option(
        help="NAME=FILE of unscaled samples (.npy / .parquet); repeatable. Paths longer than "
             "the window are cut into windows; paths of 1,000 days or more are also judged on "
             "long-horizon facts against the real series cut into segments of that length.")],
    out: Annotated[Path, typer.Option(help="Folder for report.html and metrics.json.")],
    seed: Annotated[int, typer.Option(help="Seed of subsamples and score networks.")] = 0,
    neural: Annotated[bool, typer.Option(
        help="Also compute the discriminative and predictive scores.")] = True,
) -> None:
    """Compare synthetic samples with the real windows; write the report.

    Both references are used: in-sample (training) and out-of-sample (validation + test)."""
    from synthfin.data.windows import WindowData
    from synthfin.evaluation import evaluate_windows
    from synthfin.io import file_sha256, load_samples

    _folder(out)
    prepared = WindowData.load(data)
    named, files = {}, {}
    for item in samples:
        name, sep, file = item.partition("=")
        if not sep or not name:
            raise _fail(f"--samples takes NAME=FILE, got {item!r}")
        if name in named:
            raise _fail(f"--samples names {name!r} twice; give each set its own NAME")
        named[name] = load_samples(file)
        files[name] = {"file": str(Path(file).resolve()), "sha256": file_sha256(file)}
    with _locked(out):
        with _progress_off_terminal():
            result = evaluate_windows(prepared, named, neural=neural, seed=seed)
        result.about["samples"] = files  # what the report was made from
        result.save(out)
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        typer.echo(result.summary().round(3).to_string())
        for name in result.scores:
            blind = result.blind_scores(name)
            if blind:
                typer.echo(f"{name}: an anchor (iid noise) passes {', '.join(blind)}: these "
                           "scores show nothing alone")
        if result.long_horizon is not None:
            typer.echo(f"\nlong horizon ({result.long_horizon.length}-day paths against "
                       f"{result.long_horizon.n_segments} real segments):")
            typer.echo(result.long_horizon.summary().round(3).to_string())
    for warning in result.warnings:
        typer.secho(warning, fg="red", err=True)
    typer.echo(f"report -> {out / 'report.html'}")


@app.command()
@user_errors
def facts(
    samples: Annotated[Path, typer.Option(
        help="Folder written by `synthfin sample --shard-size`.")],
    data: Annotated[Path | None, typer.Option(
        help="Prepared data: also the facts of its training windows, and paths cut into "
             "windows of its length.")] = None,
    out: Annotated[Path | None, typer.Option(help="JSON file for every fact vector.")] = None,
) -> None:
    """Pooled stylized facts of a sharded data set, in bounded memory.

    ACF curves come from running sums of lag products, tails from histograms."""
    import numpy as np

    from synthfin.io import atomic_write_json
    from synthfin.jobs.shards import dataset_facts
    from synthfin.stats import fact_statistics

    columns = {}
    window = None
    if data is not None:
        from synthfin.data.windows import WindowData

        prepared = WindowData.load(data)
        window = prepared.window_len
        columns["real (train)"] = fact_statistics(prepared.real_windows("train"))
    columns = {"synthetic": dataset_facts(samples, window), **columns}
    if out is not None:
        atomic_write_json(out, {name: {key: np.asarray(value).tolist()
                                       for key, value in values.items()}
                                for name, values in columns.items()})
    table = pd.DataFrame({name: _fact_cells(values) for name, values in columns.items()})
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        typer.echo(table.to_string())
        if data is not None:
            typer.echo("\ngaps to the real training windows beside their noise floor:")
            typer.echo(_floor_table(columns["synthetic"], prepared).round(3).to_string())


def _floor_table(synthetic: dict[str, Any], prepared: Any) -> pd.DataFrame:
    """Gap of each fact of ``synthetic`` to the real training windows, the noise floor (mean
    and spread over block assignments) and the anchors' gaps; ``blind``: an anchor passes."""
    import numpy as np

    from synthfin.evaluation.scores import Reference, anchor_samples, fact_gaps
    from synthfin.stats import fact_statistics

    reference = Reference.blocked(prepared.real_windows("train"), prepared.stride)
    real = fact_statistics(reference.windows)
    floor, spread = reference.floor()
    rows = {"synthetic": fact_gaps({k: np.asarray(v) for k, v in synthetic.items()}, real)}
    rows.update({name: fact_gaps(fact_statistics(x), real)
                 for name, x in anchor_samples(reference.windows).items()})
    table = pd.DataFrame(rows).T
    table.loc["noise floor"], table.loc["floor spread"] = floor[table.columns], spread[
        table.columns]
    blind = table.iloc[1:3].min() <= table.loc["noise floor"] + 2 * table.loc["floor spread"]
    table.loc["blind"] = blind.astype(float)
    return table


def _fact_cells(statistics: dict[str, Any]) -> dict[str, str]:
    """One printable cell per fact: a curve (more than 4 values) by its mean, else the values."""
    return {f"{key} (mean of {len(value)})" if len(value) > 4 else key:
            f"{sum(value) / len(value):.3g}" if len(value) > 4 else
            " ".join(f"{v:.3g}" for v in value) for key, value in statistics.items()}


@app.command()
@user_errors
def run(
    pipeline: Annotated[Path, typer.Argument(
        help="Pipeline YAML, e.g. pipelines/quickstart.yaml.")],
    out: Annotated[Path | None, typer.Option(help="Run directory (default: the YAML's output, "
                                                  "else runs/NAME).")] = None,
    seed: Annotated[int | None, typer.Option(help="Override the pipeline's seed.")] = None,
    device: Annotated[str | None, typer.Option(help="Override the device: auto, cpu, cuda.")
                      ] = None,
) -> None:
    """Run a pipeline: data, every model, samples, evaluation and report.

    Stages whose inputs did not change are reused; progress goes to the terminal."""
    from synthfin.jobs.config import load_pipeline_config
    from synthfin.jobs.pipeline import Pipeline

    config = load_pipeline_config(pipeline, seed=seed, device=device,
                                  output=None if out is None else str(out))
    start = time.perf_counter()
    result = Pipeline(config, progress=typer.echo).run()
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        typer.echo(result.summary.astype(float).round(3).to_string())
    for warning in result.warnings:
        typer.secho(warning, fg="red", err=True)
    typer.echo(f"run {config.name} finished in {time.perf_counter() - start:.1f} s -> "
               f"{result.run_dir / 'report' / 'report.html'}")


@app.command()
@user_errors
def stress(
    model_dir: Annotated[Path, typer.Option(
        help="A saved Synthesizer, or a generator folder together with --data.")],
    strategy: Annotated[str, typer.Option(
        help="module:function; e.g. synthfin.backtest.harness:moving_average_crossover.")],
    out: Annotated[Path, typer.Option(help="Folder for stress.md, stress.json, stress.png.")],
    data: Annotated[Path | None, typer.Option(
        help="Prepared data (for a plain generator folder): the real history.")] = None,
    n: Annotated[int, typer.Option(help="Paths per scenario set.")] = 1000,
    length: Annotated[int, typer.Option(help="Days per path.")] = 252,
    regime: Annotated[str | None, typer.Option(
        help="Comma-separated regimes to add, e.g. calm,stressed.")] = None,
    crash: Annotated[float | None, typer.Option(
        help="Also a crash set: this one-day log return on --crash-day.")] = None,
    crash_day: Annotated[int, typer.Option(help="Day of the crash (0 = first).")] = 0,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    start: Annotated[str, typer.Option(
        help="Where every set's paths start: 'stationary' (the model's long-run states) or "
             "'today' (continue the real history; models that continue one, such as ar).")
    ] = "stationary",
) -> None:
    """Run a strategy on synthetic paths and on the real history.

    Scenario sets: unconditional, by regime and crash; the table says where the real history
    falls in each distribution."""
    from synthfin.backtest.harness import load_strategy, stress_test
    from synthfin.data.windows import WindowData
    from synthfin.models import Generator
    from synthfin.synthesizer import Synthesizer

    if (model_dir / "synthesizer.json").is_file():
        synth = Synthesizer.load(model_dir)
    elif data is not None:
        synth = Synthesizer.from_parts(Generator.load(model_dir), WindowData.load(data))
    else:
        raise _fail(f"{model_dir} is not a saved Synthesizer; pass --data with the prepared "
                    "data set the generator was trained on")
    if crash is not None and not math.isfinite(crash):
        raise _fail(f"--crash must be a finite log return such as -0.1, got {crash}")
    chosen = load_strategy(strategy)
    scenarios = {"unconditional": synth.sample(n, length=length, seed=seed, start=start)}
    for name in _split_list(regime or ""):
        scenarios[name] = synth.sample(n, length=length, regime=name, seed=seed)
    if crash is not None:
        scenarios[f"crash {crash:+.0%} day {crash_day}"] = synth.crash(
            n, length, shock=crash, shock_day=crash_day, seed=seed, start=start)
    prepared = synth.data_
    history = prepared.history()
    report = stress_test(chosen, scenarios, history)
    with _locked(out):
        report.save(out)
    metrics = ["total_return", "sharpe", "max_drawdown", "es_99"]
    table = report.table().loc[(slice(None), metrics), :]
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        typer.echo(table.astype(float).round(3).to_string())
    typer.echo(f"stress test -> {out}")


@app.command()
def models() -> None:
    """List the registered generators."""
    from synthfin.models import available_generators

    typer.echo("\n".join(available_generators()))




@app.command()
@user_errors
def forecast(
    tickers: Annotated[str, typer.Option(help="Comma-separated bundled tickers, e.g. SP500,KO.")],
    years: Annotated[str, typer.Option(
        help="Test years, e.g. 2016,2019: models refit on the days before each year's first "
             "day.")],
    models: Annotated[str | None, typer.Option(
        help="Forecasters: arch peers gjr-t, egarch-t, figarch-t, gjr-skewt, fhs and any "
             "generator that continues a history (ar, cvae, garch; default: ar and the peers); "
             "with --portfolio, joint generators (default: ar,dcc,fhs).")]
    = None,
    portfolio: Annotated[bool, typer.Option(
        help="Forecast the equal-weight portfolio of the tickers, fitted jointly.")] = False,
    n: Annotated[int, typer.Option(min=10, help="Paths per forecast day.")] = 500,
    step: Annotated[int, typer.Option(min=1, help="Days between forecast days.")] = 5,
    horizons: Annotated[str, typer.Option(
        help="Horizons in days, e.g. 1,5 (paths are as long as the longest).")] = "1,5,20,60",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    finetune: Annotated[bool, typer.Option(
        help="Fine-tune ar from the pooled checkpoint at each origin (else zero-shot).")]
    = False,
    out: Annotated[Path | None, typer.Option(help="Folder for forecast.json.")] = None,
) -> None:
    """Forecasts from real history at horizons of days (default 1/5/20/60): CRPS, coverage,
    VaR and ES backtests, PIT, one-day log scores with HAC errors (see
    synthfin.backtest.forecast)."""
    from synthfin.backtest.forecast import (
        JOINT_FORECASTERS,
        PEERS,
        forecast_tables,
        run_forecasts,
        run_portfolio_forecasts,
    )
    from synthfin.data.returns import log_returns
    from synthfin.data.sources import load_prices
    from synthfin.errors import ConfigError
    from synthfin.io import atomic_write_json, finite_json

    names = [t.strip() for t in tickers.split(",")]
    test_years = [int(y) for y in years.split(",")]
    steps = [int(h) for h in horizons.split(",")]
    chosen = ([m.strip() for m in models.split(",")] if models else
              list(JOINT_FORECASTERS if portfolio else ["ar", *PEERS]))
    if portfolio:
        if finetune:
            raise ConfigError("--finetune applies to single-series forecasts; drop it with "
                              "--portfolio")
        returns = log_returns(load_prices("bundled", names))
        runs = [run_portfolio_forecasts(returns, test_years, chosen, n=n, step=step, seed=seed,
                                        horizons=steps)]
    else:
        runs = [run_forecasts(log_returns(load_prices("bundled", [ticker])), test_years, chosen,
                              n=n, step=step, seed=seed, finetune=finetune, horizons=steps)
                for ticker in names]
    tables = forecast_tables(runs)
    with pd.option_context("display.width", 250, "display.max_columns", 40):
        for run in runs:
            typer.echo(f"\n{run.ticker}:\n{run.summary().round(3).to_string()}")
        for name, table in tables.items():
            if not (portfolio and name == "log_score"):  # a portfolio has no density
                typer.echo(f"\n{name} over {len(runs)} series:\n{table.round(3).to_string()}")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "forecast.json", finite_json({
            "series": {run.ticker: {m: t.to_dict(orient="index") for m, t in run.tables.items()}
                       for run in runs},
            "tables": {name: t.to_dict(orient="index") for name, t in tables.items()}}))
        typer.echo(f"forecast -> {out / 'forecast.json'}")


if __name__ == "__main__":
    app()
