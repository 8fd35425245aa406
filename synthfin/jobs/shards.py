"""Millions of synthetic paths as a partitioned parquet data set, written shard by shard.

``DIR/part-00000.parquet, part-00001.parquet, ...`` hold the paths of consecutive shards as long
tables ``path, date, asset, return, price`` (and ``open, high, low, volume`` with ``ohlcv``;
``price`` is then the close), one row group per chunk of paths, which pyarrow,
Dask, Spark, Polars and DuckDB read as one data set; ``DIR/_manifest.json`` lists every shard
with its paths, rows and SHA-256, and ``DIR/_shards/`` holds one such record per finished shard
(names starting with ``_`` are skipped by those readers).

- **Bounded memory**: a shard is drawn and written ``chunk_size`` paths at a time.
- **Resumable**: a shard whose file still has its recorded SHA-256 is skipped; any other is
  written again (atomically, so a kill never leaves half a file under the final name).
- **The same data for any number of ranks**: shard ``k`` draws from its own stream,
  ``SeedSequence(seed, spawn_key=(k,))``, and under ``torchrun`` rank ``r`` of ``W`` writes the
  shards ``k = r, r + W, ...``, so the files do not depend on ``W``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from synthfin import distributed
from synthfin.data.returns import prices_from_returns
from synthfin.errors import DataError
from synthfin.evaluation.streaming import StreamingFacts
from synthfin.io import FileReading, atomic_write, atomic_write_json, file_sha256, long_table
from synthfin.models.base import Generator
from synthfin.scenarios.calendars import parse_day
from synthfin.scenarios.ohlcv import OHLCVModel, sp500_ohlcv_model
from synthfin.scenarios.paths import business_days_after

MANIFEST = "_manifest.json"
PLAN = "_plan.json"  # the settings the folder's shards were drawn with
RECORDS = "_shards"
SCHEMA = pa.schema([("path", pa.int64()), ("date", pa.date32()),
                    ("asset", pa.dictionary(pa.int32(), pa.string())),
                    ("return", pa.float64()), ("price", pa.float64())])
BAR_COLUMNS = ("open", "high", "low", "volume")  # with ``ohlcv``: the bar model's columns
FORMAT = "synthfin-paths/1"


@dataclasses.dataclass(frozen=True)
class ShardPlan:
    """What a data set holds: ``n`` paths of ``length`` days in shards of ``shard_size``.

    ``start_date``: paths are dated on the business days after it; ``start_price``: every
    asset's price the day before the first return; ``chunk_size``: paths drawn at once (part of
    the plan because the random stream of a shard is consumed chunk by chunk); ``ohlcv``: also
    daily bars around the closes (:func:`synthfin.scenarios.ohlcv.sp500_ohlcv_model`), drawn from
    the
    shard's second stream ``SeedSequence(seed, spawn_key=(k, 1))``.
    """

    n: int
    shard_size: int
    length: int
    seed: int = 0
    regime: str | None = None
    start_date: str = "2025-12-31"
    start_price: float = 100.0
    chunk_size: int = 10_000
    ohlcv: bool = False

    def __post_init__(self) -> None:
        for name in ("n", "shard_size", "length", "chunk_size"):
            if getattr(self, name) < 1:
                raise DataError(f"{name} must be >= 1, got {getattr(self, name)}")
        parse_day(self.start_date, "start_date")
        if self.seed < 0:
            raise DataError(f"seed must be >= 0, got {self.seed}")
        if not (math.isfinite(self.start_price) and self.start_price > 0):
            raise DataError(f"start_price must be positive, got {self.start_price}")

    @property
    def n_shards(self) -> int:
        return -(-self.n // self.shard_size)

    def paths(self, shard: int) -> tuple[int, int]:
        """First and one-past-last path id of ``shard``."""
        return shard * self.shard_size, min(self.n, (shard + 1) * self.shard_size)

    def seed_of(self, shard: int) -> int:
        """The seed of ``shard``'s stream: ``SeedSequence(seed, spawn_key=(shard,))``, whatever
        the number of ranks."""
        state = np.random.SeedSequence(self.seed, spawn_key=(shard,)).generate_state(1, np.uint64)
        return int(state[0] >> np.uint64(1))  # a non-negative int64

    @property
    def schema(self) -> pa.Schema:
        if not self.ohlcv:
            return SCHEMA
        return pa.schema([*SCHEMA, *(pa.field(name, pa.float64()) for name in BAR_COLUMNS)])

    def dates(self) -> np.ndarray:
        return business_days_after(self.start_date, self.length).values.astype("datetime64[D]")


def shard_name(shard: int) -> str:
    return f"part-{shard:05d}.parquet"


def write_dataset(generator: Generator, out: str | Path, plan: ShardPlan, *,
                  progress: bool = False) -> dict[str, Any] | None:
    """Write the shards of ``plan`` this rank owns into ``out``, skipping finished ones; rank 0
    then writes the manifest and returns it (other ranks return None). Without ``torchrun``
    this process is the only rank and writes every shard."""
    from tqdm.auto import tqdm

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out} is a file; a sharded data set goes into a folder")
    settings = {"format": FORMAT, "model": generator.name,
                "model_sha256": generator.fingerprint(), "plan": dataclasses.asdict(plan)}
    rank, world = distributed.rank(), distributed.world_size()
    if rank == 0:
        _claim(out, settings)
    distributed.barrier("waiting for rank 0 to check the folder's plan")
    mine = range(rank, plan.n_shards, world)
    quiet = not progress or rank > 0
    for shard in tqdm(mine, desc="shards", unit="shard", disable=True if quiet else None,
                      leave=False):  # None: a bar on a terminal only
        if _finished(out, shard) is None:
            _write_shard(generator, out, plan, shard)
    distributed.barrier("waiting for the other ranks' shards")
    if rank > 0:
        return None
    records = [_record(out, shard) for shard in range(plan.n_shards)]  # hashed when written
    missing = [shard_name(k) for k, record in enumerate(records) if record is None]
    if missing:
        raise DataError(f"{len(missing)} shard(s) of {out} have no record after "
                        f"writing ({missing[0]}, ...); run the same command again")
    manifest = {**settings, "assets": list(generator.spec_.assets),
                "columns": plan.schema.names, "rows": sum(r["rows"] for r in records),
                "shards": records}
    atomic_write_json(out / MANIFEST, manifest)
    return manifest


def write_dataset_in_workers(model_dir: str | Path, out: str | Path, plan: ShardPlan,
                            nproc: int) -> dict[str, Any]:
    """:func:`write_dataset` by ``nproc`` local ranks (``torchrun --standalone``); returns the
    manifest."""
    with tempfile.TemporaryDirectory(prefix="synthfin-sample-") as scratch:
        job = Path(scratch) / "job.json"
        atomic_write_json(job, {"model_dir": str(Path(model_dir).resolve()),
                                "out": str(Path(out).resolve()),
                                "plan": dataclasses.asdict(plan)})
        distributed.torchrun(nproc, [__file__, str(job)],
                             f"sampling into {out} (finished shards are kept)")
    return read_manifest(out)


def _rank_main(job: Path) -> None:
    """One rank of :func:`write_dataset_in_workers`."""
    import torch

    spec = json.loads(job.read_text())
    distributed.setup(torch.device("cpu"))  # gloo: the ranks only wait for each other
    write_dataset(Generator.load(spec["model_dir"]), spec["out"], ShardPlan(**spec["plan"]),
                  progress=True)
    distributed.shutdown()


def _claim(out: Path, settings: dict[str, Any]) -> None:
    """Make ``out`` a data set of ``settings``. Finished shards drawn with other settings (or
    from another model) are never mixed with new ones: that is a :class:`DataError`. A folder
    with no finished shard, such as one left by a failed first command, is simply taken."""
    try:
        held = json.loads((out / PLAN).read_text())
    except FileNotFoundError:
        held = None
    except (OSError, ValueError):
        held = "damaged"
    if held != settings and (out / RECORDS).is_dir() and any((out / RECORDS).iterdir()):
        if held == "damaged":
            reason = f"its {PLAN} is damaged"
        elif isinstance(held, dict) and held.get("model_sha256") != settings["model_sha256"]:
            reason = "they were drawn from another model (or another fit of it)"
        else:
            reason = f"they were drawn with other settings ({out / PLAN})"
        raise DataError(f"{out} holds shards that cannot be continued: {reason}; choose "
                        "another folder, or delete it to start again")
    if held != settings:  # nothing finished: forget whatever an earlier attempt left
        for stale in [*out.glob("part-*.parquet"), out / MANIFEST]:
            stale.unlink(missing_ok=True)
        atomic_write_json(out / PLAN, settings)


def _record(out: Path, shard: int) -> dict[str, Any] | None:
    """The record written after ``shard``'s file, or None."""
    try:
        return json.loads((out / RECORDS / f"{shard:05d}.json").read_text())
    except (OSError, ValueError):
        return None


def _finished(out: Path, shard: int) -> dict[str, Any] | None:
    """The record of a finished shard whose file still has its SHA-256, else None."""
    record, data_file = _record(out, shard), out / shard_name(shard)
    if record is None or not data_file.is_file():
        return None
    return record if record.get("sha256") == file_sha256(data_file) else None


def _write_shard(generator: Generator, out: Path, plan: ShardPlan, shard: int) -> None:
    first, end = plan.paths(shard)
    rows = 0

    def write(temp: Path) -> None:
        nonlocal rows
        with pq.ParquetWriter(temp, plan.schema) as writer:
            for table in shard_tables(generator, plan, shard):
                writer.write_table(table)
                rows += table.num_rows

    atomic_write(out / shard_name(shard), write)
    atomic_write_json(out / RECORDS / f"{shard:05d}.json", {
        "file": shard_name(shard), "shard": shard, "paths": [first, end], "rows": rows,
        "sha256": file_sha256(out / shard_name(shard))})


def shard_tables(generator: Generator, plan: ShardPlan, shard: int) -> Iterator[pa.Table]:
    """The long tables of ``shard``, one per chunk of ``plan.chunk_size`` paths."""
    first, end = plan.paths(shard)
    assets = list(generator.spec_.assets)
    dates = plan.dates()
    chunks = generator.sample_chunks(end - first, condition=plan.regime,
                                     seed=plan.seed_of(shard), length=plan.length,
                                     chunk_size=plan.chunk_size)
    bars_rng = np.random.default_rng(np.random.SeedSequence(plan.seed, spawn_key=(shard, 1)))
    for chunk in chunks:  # (k, length, assets) log returns
        values = {"price": prices_from_returns(chunk, plan.start_price)[:, 1:]}
        if plan.ohlcv:
            bars = _bar_model().sample(chunk, plan.start_price, seed=bars_rng)[:, 1:]
            values.update({name: bars[..., field]  # (k, L, A, 5)
                           for name, field in zip(BAR_COLUMNS, (0, 1, 2, 4), strict=True)})
        yield long_table(chunk, assets, ("date", dates), first=first, values=values,
                         schema=plan.schema)
        first += len(chunk)


@functools.cache
def _bar_model() -> OHLCVModel:
    return sp500_ohlcv_model()


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """The manifest of a finished data set, or a :class:`DataError` saying what is wrong."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise DataError(f"{directory} is not a finished sharded data set (no {MANIFEST}); "
                        "write it with `synthfin sample --shard-size ...`")
    with FileReading(DataError, _RESAMPLE) as reading:
        reading.file = path
        manifest = json.loads(path.read_text())
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise DataError(f"not a {FORMAT} manifest")
        for record in manifest["shards"]:
            if record["file"] != Path(record["file"]).name:  # a name, never a path outside
                raise DataError(f"shard file {record['file']!r} is not a plain file name")
        if not (isinstance(manifest["plan"]["length"], int)
                and isinstance(manifest["assets"], list)):
            raise DataError("its plan's length or its assets are not a number and a list")
    return manifest


_RESAMPLE = "write the data set again with `synthfin sample --shard-size ...`"


def dataset_facts(directory: str | Path, window: int | None = None,
                  batch_paths: int = 10_000) -> dict[str, np.ndarray]:
    """The pooled window facts (:func:`synthfin.stats.fact_statistics`) of a data set, read
    ``batch_paths`` paths at a time: :class:`~synthfin.evaluation.streaming.StreamingFacts`.
    ``window`` cuts each path into consecutive windows of that many days (the rest dropped),
    to compare with real windows of that length; by default a path is one window."""
    manifest = read_manifest(directory)
    length, n_assets = manifest["plan"]["length"], len(manifest["assets"])
    window = window or length
    if not 2 <= window <= length:
        raise DataError(f"window must be between 2 and the paths' {length} days; got {window}")
    streaming = StreamingFacts(window, n_assets)
    per_path = length // window
    for cube in iter_paths(directory, batch_paths):
        streaming.update(cube[:, :per_path * window].reshape(-1, window, n_assets))
    return streaming.statistics()


def iter_paths(directory: str | Path, batch_paths: int = 10_000) -> Iterator[np.ndarray]:
    """The paths of a data set as cubes (k, length, assets) of log returns, about
    ``batch_paths`` paths at a time, reading one row group at a time (bounded memory). Each
    part file is first checked against its SHA-256 in the manifest: a replaced or damaged
    shard is a :class:`DataError`, never facts of other paths."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    n_assets, length = len(manifest["assets"]), manifest["plan"]["length"]
    pending: list[np.ndarray] = []
    held = 0
    for record in manifest["shards"]:
        part = directory / record["file"]
        with FileReading(DataError, _RESAMPLE) as reading:
            reading.file = part
            if file_sha256(part) != record["sha256"]:
                raise DataError(f"its SHA-256 is not the one in {MANIFEST}: the file was "
                                f"replaced or damaged after it was written; {_RESAMPLE}")
            parquet = pq.ParquetFile(part)
        for group in range(parquet.num_row_groups):  # one row group in memory at a time
            with FileReading(DataError, _RESAMPLE) as reading:
                reading.file = part
                values = parquet.read_row_group(group, columns=["return"])["return"].to_numpy()
                values = values.reshape(-1, length, n_assets)  # rows are path, date, asset
            pending.append(values)
            held += len(pending[-1])
            if held >= batch_paths:
                yield np.concatenate(pending)
                pending, held = [], 0
    if pending:
        yield np.concatenate(pending)


if __name__ == "__main__":
    distributed.run_rank(lambda: _rank_main(Path(sys.argv[1])))
