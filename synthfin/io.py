"""Atomic file writes: a reader sees the old file or the new one, never half of either; and the
one place that writes and reads sample files (``.npy`` or a long ``.parquet`` table).

Each helper writes to a temporary file in the destination's folder and moves it into place
with :func:`os.replace`, which is atomic on POSIX and Windows when both paths share a
file system. Caches, checkpoints, samples and reports all write through here.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from synthfin.errors import DataError

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


def save_samples(path: str | os.PathLike, returns: np.ndarray, assets: list[str]) -> Path:
    """Write samples (n, length, assets) atomically: ``.npy`` as the array, ``.parquet`` as a
    long table with columns ``path, step, asset, return``."""
    path = Path(path)
    if path.suffix == ".npy":
        return atomic_save_npy(path, returns)
    if path.suffix == ".parquet":
        paths, steps, names = np.meshgrid(np.arange(returns.shape[0]),
                                          np.arange(returns.shape[1]), assets, indexing="ij")
        frame = pd.DataFrame({"path": paths.ravel(), "step": steps.ravel(),
                              "asset": names.ravel(), "return": returns.ravel()})
        return atomic_write(path, frame.to_parquet)
    raise DataError(f"a samples file must end in {' or '.join(SAMPLE_SUFFIXES)}, "
                    f"got {path.name!r}")


def load_samples(path: str | os.PathLike) -> np.ndarray:
    """Read samples (n, length, assets) written by :func:`save_samples`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"samples file {path} does not exist")
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
        cube = frame.pivot_table(index=["path", "step"], columns="asset", values="return",
                                 sort=False)
        n_paths, n_steps = frame["path"].nunique(), frame["step"].nunique()
        return cube.to_numpy().reshape(n_paths, n_steps, -1)
    raise DataError(f"samples must be {' or '.join(SAMPLE_SUFFIXES)}, got {path.name!r}")
