"""Atomic file writes: a reader sees the old file or the new one, never half of either; the
one place that writes and reads sample files (``.npy`` or a long ``.parquet`` table); file
hashes; and the lock a command holds on its output while it writes there.

Each helper writes to a temporary file in the destination's folder and moves it into place
with :func:`os.replace`, which is atomic on POSIX and Windows when both paths share a
file system. Caches, checkpoints, samples and reports all write through here.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import json
import math
import os
import shutil
import socket
import sys
import tempfile
import time
import tokenize
import uuid
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import ArrayLike
from safetensors import SafetensorError

from synthfin.errors import BusyError, DataError, SynthfinError, first_line

SAMPLE_SUFFIXES = (".npy", ".parquet")


def atomic_write(path: str | os.PathLike, write_fn: Callable[[Path], object]) -> Path:
    """Write ``path`` atomically through ``write_fn``.

    Parameters
    ----------
    path : str or os.PathLike
        Destination. Missing parent folders are created.
    write_fn : callable
        Called with the path of a temporary file in the destination's folder; it must write
        the complete contents there (for example ``frame.to_parquet``).

    Returns
    -------
    pathlib.Path
        The destination path.

    Notes
    -----
    If ``write_fn`` raises, the temporary file is removed, the exception propagates and any
    existing file at ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        delete=False, dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    ) as handle:
        temp = Path(handle.name)
    try:
        write_fn(temp)
        os.chmod(temp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return path


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, read in 1 MB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def finite_json(value: Any) -> Any:
    """Replace NaN / inf by None and NumPy scalars by Python ones, recursively."""
    if isinstance(value, dict):
        return {str(k): finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [finite_json(v) for v in value]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (float, np.floating, int, np.integer)):
        return None if not math.isfinite(float(value)) else value.item() if hasattr(
            value, "item") else value
    return value


def check_name(name: str, what: str) -> str:
    """``name`` if it can name a file or folder inside another one, else a
    :class:`~synthfin.errors.DataError` naming ``what``: no separator, not ``.`` or ``..``, not
    hidden (synthfin's temporary and lock files start with a dot), not empty."""
    if (not isinstance(name, str) or not name.strip() or name in (".", "..")
            or name.startswith(".") or any(c in name for c in "/\\\0")):
        raise DataError(f"{what} {name!r} cannot name a folder: use letters, digits, '-' or "
                        "'_' (no '/', '\\', leading '.', or '..')")
    return name


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; see :func:`atomic_write`."""
    return atomic_write(path, lambda temp: temp.write_text(text, encoding=encoding))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON (keys in insertion order) to ``path`` atomically.

    Raises
    ------
    ValueError
        If ``obj`` holds NaN or infinity, which JSON cannot represent; nothing is written.
    TypeError
        If ``obj`` holds something JSON cannot serialise; nothing is written.
    """
    text = json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n"
    return atomic_write_text(path, text)


def atomic_save_npy(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write ``array`` as ``.npy`` to ``path`` atomically (no pickle)."""
    def write(temp: Path) -> None:
        with open(temp, "wb") as handle:  # np.save on a path would append ".npy" to the temp
            np.save(handle, array, allow_pickle=False)
    return atomic_write(path, write)


class SampleWriter:
    """Write samples (n, length, assets) chunk by chunk to ``.npy`` or ``.parquet``, atomically,
    with memory bounded by one chunk.

    ``.npy`` is the header of the final shape followed by each chunk's bytes, appended (no
    memory map, whose written pages would count as resident memory); ``.parquet`` is a long table
    with columns ``path, step, asset, return``, one row group per chunk
    (:class:`pyarrow.parquet.ParquetWriter`), and ``source`` (what drew the paths, such as the
    model's fingerprint) as JSON under the schema metadata key ``synthfin``. Both go to a
    temporary file in the destination's folder that replaces ``path`` only when every path
    was written; use as a context manager::

        with SampleWriter(path, n, length, assets) as writer:
            for chunk in chunks:            # (k, length, assets) each, k paths at a time
                writer.write(chunk)
    """

    def __init__(self, path: str | os.PathLike, n: int, length: int, assets: list[str], *,
                 source: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        if self.path.suffix not in SAMPLE_SUFFIXES:
            raise DataError(f"a samples file must end in {' or '.join(SAMPLE_SUFFIXES)}, "
                            f"got {self.path.name!r}")
        self.shape, self.assets, self.written = (n, length, len(assets)), list(assets), 0
        self.source = source  # what drew them (model fingerprint, seed): parquet metadata

    def __enter__(self) -> SampleWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.",
                                        suffix=".tmp")
        os.close(handle)
        self._temp = Path(name)
        if self.path.suffix == ".npy":
            self._npy = open(self._temp, "wb")  # closed in __exit__
            np.lib.format.write_array_header_2_0(self._npy, {
                "descr": np.lib.format.dtype_to_descr(np.dtype(np.float64)),
                "fortran_order": False, "shape": self.shape})
        else:
            schema = _LONG_SCHEMA if self.source is None else _LONG_SCHEMA.with_metadata(
                {"synthfin": json.dumps(self.source)})
            self._parquet = pq.ParquetWriter(self._temp, schema)
        return self

    def write(self, chunk: np.ndarray) -> None:
        """Append the next ``len(chunk)`` paths, shape (k, length, assets)."""
        k = len(chunk)
        if chunk.shape[1:] != self.shape[1:] or self.written + k > self.shape[0]:
            raise DataError(f"chunk of shape {chunk.shape} does not fit samples of shape "
                            f"{self.shape} after {self.written} paths")
        if self.path.suffix == ".npy":
            self._npy.write(np.ascontiguousarray(chunk, dtype=np.float64).tobytes())
        else:
            self._parquet.write_table(long_table(
                chunk, self.assets, ("step", np.arange(self.shape[1])), first=self.written,
                schema=self._parquet.schema))
        self.written += k

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        try:
            if self.path.suffix == ".npy":
                self._npy.close()
            else:
                self._parquet.close()
            if kind is None:
                if self.written != self.shape[0]:
                    raise DataError(f"only {self.written} of {self.shape[0]} paths were written "
                                    f"to {self.path}")
                os.chmod(self._temp, 0o666 & ~_umask())
                os.replace(self._temp, self.path)
        finally:
            self._temp.unlink(missing_ok=True)


def long_table(returns: np.ndarray, assets: Sequence[str], day: tuple[str, ArrayLike], *,
               first: int = 0, values: Mapping[str, np.ndarray] | None = None,
               schema: pa.Schema | None = None) -> pa.Table:
    """The long table of paths (k, length, assets): a row per path, day and asset, in that order.

    Columns ``path`` (numbered from ``first``), ``day = (name, labels (length,))``, ``asset``,
    ``return``, then each of ``values`` (k, length, assets); the asset is dictionary-encoded
    where ``schema`` (the cast applied at the end) says so, else a string.
    """
    k, length, n_assets = returns.shape
    asset = pa.DictionaryArray.from_arrays(
        np.tile(np.arange(n_assets, dtype=np.int32), k * length), list(assets))
    if schema is None or not pa.types.is_dictionary(schema.field("asset").type):
        asset = asset.cast(pa.string())
    table = pa.table({
        "path": np.repeat(np.arange(first, first + k), length * n_assets),
        day[0]: pa.array(day[1]).take(np.tile(np.repeat(np.arange(length), n_assets), k)),
        "asset": asset, "return": np.ascontiguousarray(returns, dtype=np.float64).ravel(),
        **{name: np.ascontiguousarray(column).ravel() for name, column in (values or {}).items()}})
    return table if schema is None else table.cast(schema)


_LONG_SCHEMA = pa.schema([("path", pa.int64()), ("step", pa.int64()), ("asset", pa.string()),
                          ("return", pa.float64())])
CHUNK_VALUES = 2**20  # values per chunk of samples written or drawn (8 MB of float64)


def save_samples(path: str | os.PathLike, returns: np.ndarray, assets: list[str]) -> Path:
    """Write samples (n, length, assets) atomically: ``.npy`` as the array, ``.parquet`` as a
    long table with columns ``path, step, asset, return`` (see :class:`SampleWriter`)."""
    returns = np.asarray(returns)
    chunk = max(1, CHUNK_VALUES // max(1, returns[0].size if len(returns) else 1))
    with SampleWriter(path, *returns.shape[:2], assets) as writer:
        for lo in range(0, len(returns), chunk):
            writer.write(returns[lo:lo + chunk])
    return Path(path)


def load_samples(path: str | os.PathLike) -> np.ndarray:
    """Read samples (n, length, assets) written by :func:`save_samples`; any file that is not
    such samples is a :class:`DataError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"samples file {path} does not exist")
    if path.suffix not in SAMPLE_SUFFIXES:
        raise DataError(f"samples must be {' or '.join(SAMPLE_SUFFIXES)}, got {path.name!r}")
    try:
        samples = np.load(path, allow_pickle=False) if path.suffix == ".npy" else _read_long(path)
    except (OSError, ValueError, EOFError, KeyError, pa.ArrowException) as error:
        raise DataError(f"{path} is not a samples file ({first_line(error)}); write it with "
                        "`synthfin sample` or an (n, length, assets) float array") from None
    if samples.ndim != 3 or not np.issubdtype(samples.dtype, np.number) or not samples.size:
        raise DataError(f"{path} holds a {samples.dtype} array of shape {samples.shape}; samples "
                        "are a non-empty numeric array (n, length, assets)")
    return samples


def _read_long(path: Path) -> np.ndarray:
    """The (n, length, assets) cube of a long ``path, step, asset, return`` parquet table."""
    table = pq.read_table(path, columns=[field.name for field in _LONG_SCHEMA])
    _, path_code = np.unique(table["path"].to_numpy(), return_inverse=True)
    _, step_code = np.unique(table["step"].to_numpy(), return_inverse=True)
    asset_code, names = pd.factorize(table["asset"].to_numpy(zero_copy_only=False))
    shape = (path_code.max() + 1, step_code.max() + 1, len(names))
    if len(table) != np.prod(shape):
        raise ValueError(f"{len(table)} rows do not make a full grid of {shape} paths, steps "
                         "and assets")
    order = np.lexsort((asset_code, step_code, path_code))
    return table["return"].to_numpy()[order].reshape(shape)


# -- reading a folder of files --------------------------------------------------------------
# what a truncated, garbage or hand-edited file makes the readers (json, numpy, zipfile,
# safetensors) and our constructors raise
FILE_ERRORS = (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError, EOFError,
               zipfile.BadZipFile, SafetensorError,
               SyntaxError, tokenize.TokenError)  # numpy parses a .npy header as Python


class FileReading:
    """Context for reading the files of a saved folder: any error a damaged file causes becomes
    one ``error_type`` naming ``self.file`` (the file being read, set by the caller) and how to
    fix it (``hint``)::

        with FileReading(ModelError, "train the model again") as reading:
            reading.file = directory / "config.json"
            header = json.loads(reading.file.read_text())
    """

    def __init__(self, error_type: type[SynthfinError], hint: str) -> None:
        self.error_type, self.hint, self.file = error_type, hint, Path()

    def __enter__(self) -> FileReading:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 *rest: object) -> None:
        if isinstance(error, SynthfinError):
            raise self.error_type(f"{self.file}: {first_line(error)}") from None
        if isinstance(error, FileNotFoundError):
            raise self.error_type(f"{self.file} does not exist; {self.hint}") from None
        if isinstance(error, FILE_ERRORS):
            raise self.error_type(f"{self.file} is damaged ({type(error).__name__}: "
                                  f"{first_line(error)}); {self.hint}") from None


# -- a folder written as a unit ---------------------------------------------------------------
@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Write a whole folder atomically: yields a temporary sibling folder to fill, which then
    replaces ``path`` as a unit.

    The old folder is renamed aside, the new one renamed into place, then the old one removed;
    entries of the old folder that the new one lacks (say a ``training/`` subfolder, or a user's
    own files beside a report) are moved into the new one first. A kill at any moment leaves
    ``path`` holding the old or the new complete folder, or no folder and the old one aside,
    which :func:`recover_directory` (run here and by loaders) puts back.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise DataError(f"{path} is a file; give the folder to write a new path")
    path.parent.mkdir(parents=True, exist_ok=True)
    recover_directory(path)
    temp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp-"))
    os.chmod(temp, 0o777 & ~_umask())  # mkdtemp makes 0700; give the folder the usual mode
    try:
        yield temp
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    aside = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
    if path.exists():
        os.replace(path, aside)
    os.replace(temp, path)
    _merge_aside(path, aside)


def recover_directory(path: str | os.PathLike) -> None:
    """Finish or undo an :func:`atomic_directory` that was killed: put the old folder back if
    no new one took its place, carry over its extra entries, drop unfinished temporary ones."""
    path = Path(path)
    if not path.parent.is_dir():
        return
    for leftover in sorted(path.parent.glob(f".{glob.escape(path.name)}.old-*")):
        if not path.exists():
            os.replace(leftover, path)
        else:
            _merge_aside(path, leftover)
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def _merge_aside(path: Path, aside: Path) -> None:
    """Move the entries of ``aside`` that ``path`` lacks into it, then remove ``aside``."""
    if not aside.exists():
        return
    for entry in aside.iterdir():
        if not (path / entry.name).exists():
            os.replace(entry, path / entry.name)
    shutil.rmtree(aside)


# -- the lock on an output ------------------------------------------------------------------
@contextlib.contextmanager
def output_lock(path: str | os.PathLike) -> Iterator[Path]:
    """Hold the lock on an output folder or file while a command writes it.

    The lock is ``flock`` on the sibling file ``.NAME.lock``, which names its holder (process,
    host, start time, command line). A second command on the same output raises
    :class:`~synthfin.errors.BusyError` saying who holds it; the operating system releases the
    lock of a process that dies, so a stale lock is simply taken over. While it holds the lock
    a command owns the output alone, so it first removes what killed writers left there
    (:func:`remove_leftovers`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.parent / f".{path.name}.lock"
    while True:
        handle = open(lock, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise BusyError(f"{path} is in use by {holder}; wait for it to finish, or write "
                            "somewhere else") from None
        try:  # the previous holder may have removed the file between our open and flock
            same = os.stat(lock).st_ino == os.fstat(handle.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        handle.close()
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()} since "
                     f"{time.strftime('%Y-%m-%d %H:%M:%S')} ({' '.join(sys.argv)[:200]})\n")
        handle.flush()
        remove_leftovers(path)
        yield path
    finally:
        lock.unlink(missing_ok=True)
        handle.close()


def remove_leftovers(path: str | os.PathLike) -> None:
    """Remove the temporary files and folders that killed atomic writes left for ``path``
    (and, for a folder, anywhere inside it), and finish or undo killed folder swaps
    (:func:`recover_directory`). Call it only while holding :func:`output_lock`: a live
    writer's temporary files look the same."""
    path = Path(path)
    recover_directory(path)
    for temp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        temp.unlink(missing_ok=True)
    if not path.is_dir():
        return
    for aside in sorted(path.rglob(".*.old-*")):
        recover_directory(aside.parent / aside.name[1:aside.name.rindex(".old-")])
    for temp in sorted(path.rglob(".*.tmp*"), reverse=True):
        if temp.is_dir() and ".tmp-" in temp.name:
            shutil.rmtree(temp, ignore_errors=True)
        elif temp.is_file() and temp.name.endswith(".tmp"):
            temp.unlink(missing_ok=True)
