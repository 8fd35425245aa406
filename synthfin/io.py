"""Atomic file writes: a reader sees the old file or the new one, never half of either.

Each helper writes to a temporary file in the destination's folder and moves it into place
with :func:`os.replace`, which is atomic on POSIX and Windows when both paths share a
file system. Caches, checkpoints and reports all write through here.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


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
