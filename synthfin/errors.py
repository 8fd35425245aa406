"""Exceptions raised by synthfin. Every user-facing failure is a :class:`SynthfinError`."""

from __future__ import annotations


class SynthfinError(Exception):
    """Base class: a failure with a message meant for the user (the CLI prints it and exits 2)."""


class DataError(SynthfinError, ValueError):
    """Input data are unusable: bad prices, unknown ticker, too-short history, bad file."""


class DownloadError(DataError):
    """A download failed and no cache covers the request."""


class ModelError(SynthfinError):
    """A generator cannot do what was asked (not fitted, unknown regime, non-finite loss...)."""


class ConfigError(SynthfinError, ValueError):
    """A setting has the wrong type or is out of range (model settings, pipeline YAML)."""


class BusyError(SynthfinError):
    """An output folder or file is locked by another synthfin process that is still running."""


class SynthfinWarning(UserWarning):
    """Base class of synthfin's warnings: something a user must see, that is not a failure."""


class ImplausiblePathsWarning(SynthfinWarning):
    """Sampled paths hold a daily log return beyond the plausibility bound
    (:func:`synthfin.models.base.implausible_paths`)."""


def first_line(error: BaseException | str) -> str:
    """The first non-empty line of a (third-party) error message, for a one-line report."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
