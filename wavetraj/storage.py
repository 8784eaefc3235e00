"""Atomic netCDF4/HDF5 storage of wavetraj Datasets through the h5netcdf engine.

Complex variables are written natively (HDF5 compound type, as h5netcdf and netCDF-C's
nc-complex convention read them) and round-trip bit for bit. A write goes to a hidden
temporary file in the destination folder, is flushed to disk, then moved over the final
name with :func:`os.replace` — atomic on POSIX within one file system — so an interrupted
write never leaves a partial file under the final name, and an existing file survives.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path

import xarray as xr

from wavetraj.schema import SchemaError, validate

log = logging.getLogger(__name__)

ENGINE = "h5netcdf"


class WavetrajFileError(ValueError):
    """A file cannot be read as a wavetraj Dataset; the message says why and what to do."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a hidden temporary path beside ``path``; on success it is fsynced and moved
    over ``path`` (atomic on POSIX), on any failure removed. The folder is created."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"path {str(path)!r} is a folder; give a file name like data.nc")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_atomic(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write any Dataset atomically to ``path`` (netCDF4 via h5netcdf), without the
    wavetraj schema check (for metrics tables and sweep records)."""
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine=ENGINE)
    return Path(path)


def save(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Validate ``ds`` and write it atomically to ``path`` (netCDF4 via h5netcdf).

    Returns the final path. The parent folder is created if needed. On any failure —
    an exception or a killed process — the final name holds either the previous file or
    nothing, never a partial file.
    """
    validate(ds)
    path = write_atomic(ds, path)
    log.info("wrote %s (%s)", path, ds.attrs.get("wavetraj_kind"))
    return path


def load(path: str | os.PathLike) -> xr.Dataset:
    """Read a wavetraj Dataset fully into memory, validate it and close the file.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    WavetrajFileError
        The file is not netCDF4/HDF5, or does not follow the wavetraj contract.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no wavetraj file at {str(path)!r}")
    try:
        with xr.open_dataset(path, engine=ENGINE) as opened:
            ds = opened.load()
    except (OSError, ValueError, KeyError) as exc:
        raise WavetrajFileError(
            f"{str(path)!r} is not a readable netCDF4/HDF5 file ({type(exc).__name__}: {exc}); "
            "it may be damaged or not written by wavetraj — recompute it"
        ) from exc
    try:
        return validate(ds)
    except SchemaError as exc:
        raise WavetrajFileError(f"{str(path)!r}: {exc}") from exc
