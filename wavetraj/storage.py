"""Atomic, checksummed netCDF4/HDF5 storage of wavetraj Datasets through the h5netcdf engine.

Complex variables are written natively (HDF5 compound type, as h5netcdf and netCDF-C's
nc-complex convention read them) and round-trip bit for bit. A write goes to a hidden
temporary file in the destination folder, is flushed to disk, then moved over the final
name with :func:`os.replace` — atomic on POSIX within one file system — so an interrupted
write never leaves a partial file under the final name, and an existing file survives.
The temporary file is created with mode 0666 minus the umask (0644 under the usual 022),
as any other file the user writes, so a colleague or a web server can read a report.

**Integrity.** Every file carries, in the attr :data:`DIGEST_ATTR`, a SHA-256 digest of
each variable's values (coordinates included) and of the attrs, computed before writing.
:func:`read_verified` (and so :func:`load`) recomputes them and raises
:class:`WavetrajFileError` naming the damaged variable. HDF5 itself checksums only some of
its metadata, so without this a few zeroed bytes inside a data block load silently (a
field's envelope off by 0.26 was seen). A SHA-256 over the values, not HDF5's Fletcher-32
filter, because the filter needs chunked storage, which scalar variables (sweep records)
and variable-length strings (ray status) do not have.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import secrets
from pathlib import Path

import numpy as np
import xarray as xr

from wavetraj.schema import SchemaError, validate

log = logging.getLogger(__name__)

ENGINE = "h5netcdf"
#: The attr holding the content digest (JSON: {"variables": {name: sha256}, "attrs": sha256}).
DIGEST_ATTR = "wavetraj_sha256"
#: Permissions asked for when a file or folder is created; the umask is taken off them.
FILE_MODE = 0o666
DIR_MODE = 0o777


class WavetrajFileError(ValueError):
    """A file cannot be read as a wavetraj Dataset; the message says why and what to do."""


def _temporary_name(path: Path) -> Path:
    return path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (a rename into it) to disk, where the system allows it."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a hidden temporary path beside ``path``; on success it is fsynced and moved
    over ``path`` (atomic on POSIX), on any failure removed. The folder is created.

    The temporary file is created (``O_EXCL``) with mode :data:`FILE_MODE`, so the final
    file gets the permissions the umask allows, as with ``open(path, "w")``."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"path {str(path)!r} is a folder; give a file name like data.nc")
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = _temporary_name(path)
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE))
            break
        except FileExistsError:  # pragma: no cover - 48 random bits collided
            continue
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


# --------------------------------------------------------------------------- digests


def _canonical(value):
    """Attr values as plain JSON types, identical before a write and after a read (numpy
    scalars and arrays come back from netCDF where Python numbers and lists went in)."""
    if isinstance(value, np.ndarray):
        return [_canonical(v) for v in value.tolist()]
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def _values_digest(var: xr.Variable) -> str:
    values = np.asarray(var.values)
    h = hashlib.sha256()
    h.update(json.dumps(list(values.shape)).encode())
    if values.dtype.kind in "OSU":  # strings: by text (vlen strings read back as objects)
        h.update(b"str:")
        h.update("\x1f".join(map(str, values.ravel().tolist())).encode("utf-8"))
    else:
        h.update(f"{values.dtype.kind}{values.dtype.itemsize}:".encode())
        h.update(np.ascontiguousarray(values).tobytes())
    attrs = {k: _canonical(v) for k, v in var.attrs.items()}
    h.update(json.dumps(attrs, sort_keys=True, default=str).encode())
    return h.hexdigest()


def content_digest(ds: xr.Dataset) -> dict:
    """SHA-256 digests of every variable (values and attrs) and of the Dataset's attrs."""
    attrs = {k: _canonical(v) for k, v in ds.attrs.items() if k != DIGEST_ATTR}
    return {
        "variables": {str(name): _values_digest(var) for name, var in ds.variables.items()},
        "attrs": hashlib.sha256(
            json.dumps(attrs, sort_keys=True, default=str).encode()
        ).hexdigest(),
    }


def _verify(ds: xr.Dataset, path: Path) -> xr.Dataset:
    """Check the stored digest against the values read; drop it from the attrs."""
    stored = ds.attrs.pop(DIGEST_ATTR, None)
    if stored is None:
        log.warning("%s carries no checksum (written before wavetraj kept them): unverified", path)
        return ds
    try:
        expected = json.loads(stored)
        expected_vars, expected_attrs = dict(expected["variables"]), expected["attrs"]
    except (TypeError, ValueError, KeyError) as exc:
        raise WavetrajFileError(
            f"{str(path)!r}: its checksum attr {DIGEST_ATTR!r} is unreadable ({exc}); the file "
            "is damaged — recompute it"
        ) from None
    found = content_digest(ds)
    bad = sorted(
        name
        for name in set(expected_vars) | set(found["variables"])
        if expected_vars.get(name) != found["variables"].get(name)
    )
    if found["attrs"] != expected_attrs:
        bad.append("(attributes)")
    if bad:
        raise WavetrajFileError(
            f"{str(path)!r} is damaged: the checksum of {', '.join(bad)} does not match what "
            "was written — recompute it (delete the file; a sweep or study re-runs the case)"
        )
    return ds


def write_atomic(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write any Dataset atomically to ``path`` (netCDF4 via h5netcdf) with its content
    digest, without the wavetraj schema check (for metrics tables and sweep records)."""
    out = ds.copy(deep=False)
    out.attrs = {**ds.attrs, DIGEST_ATTR: json.dumps(content_digest(ds), sort_keys=True)}
    with atomic_path(path) as tmp:
        out.to_netcdf(tmp, engine=ENGINE)
    return Path(path)


def read_verified(path: str | os.PathLike) -> xr.Dataset:
    """Read a file written by :func:`write_atomic` fully into memory and check its digest.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    WavetrajFileError
        The file is not netCDF4/HDF5, or its content does not match its digest.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no wavetraj file at {str(path)!r}")
    try:
        with xr.open_dataset(path, engine=ENGINE) as opened:
            ds = opened.load()
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise WavetrajFileError(
            f"{str(path)!r} is not a readable netCDF4/HDF5 file ({type(exc).__name__}: {exc}); "
            "it may be damaged or not written by wavetraj — recompute it"
        ) from exc
    return _verify(ds, path)


def save(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Validate ``ds`` and write it atomically to ``path`` (netCDF4 via h5netcdf).

    Returns the final path. The parent folder is created if needed. On any failure —
    an exception or a killed process — the final name holds either the previous file or
    nothing, never a partial file. The file carries a digest that :func:`load` checks.
    """
    validate(ds)
    path = write_atomic(ds, path)
    log.info("wrote %s (%s)", path, ds.attrs.get("wavetraj_kind"))
    return path


def load(path: str | os.PathLike) -> xr.Dataset:
    """Read a wavetraj Dataset fully into memory, verify its digest, validate it.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    WavetrajFileError
        The file is not netCDF4/HDF5, is damaged (its digest does not match), or does not
        follow the wavetraj contract.
    """
    ds = read_verified(path)
    try:
        return validate(ds)
    except SchemaError as exc:
        raise WavetrajFileError(f"{str(path)!r}: {exc}") from exc


def make_dir(path: str | os.PathLike) -> Path:
    """Create a folder (and its parents) with the permissions the umask allows."""
    path = Path(path)
    try:
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    except FileExistsError:
        raise NotADirectoryError(
            errno.ENOTDIR, f"{str(path)!r} is a file, not a folder; choose another path"
        ) from None
    return path
