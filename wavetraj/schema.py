"""The Dataset contract shared by every wavetraj package (see DESIGN.md, "Data contract").

Two schemas:

* **field** — dims ``("z", "x")``; complex ``envelope`` A with u = A·exp(i·k_ref·z) and real
  ``K2`` on the same grid; attrs ``method``, ``wavelength``, ``k_ref``.
* **rays** — dims ``("ray", "step")``; coord ``x0`` per ray; real ``x, z, kx, kz, R, Q, t,
  sigma``; a per-ray ``status`` string; attrs ``dynamics``, ``wave_potential``. Streamlines
  use the same schema so ``compare`` treats rays and streamlines alike.

Every variable and coordinate carries non-empty ``units`` and ``long_name`` attrs; every
Dataset carries provenance attrs (package version, git commit, creation time, the full
input parameters as JSON, library versions) and ``wavetraj_kind`` naming its schema.

Builders (:func:`field_dataset`, :func:`ray_dataset`) produce valid Datasets; validators
(:func:`validate_field`, :func:`validate_rays`, :func:`validate`) collect *every* problem
and raise one :class:`SchemaError` that lists them, so a broken file is diagnosed in one go.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import functools
import hashlib
import inspect
import json
import logging
import platform
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from wavetraj import __version__

log = logging.getLogger(__name__)

KIND_ATTR = "wavetraj_kind"
PROVENANCE_ATTRS = ("wavetraj_version", "git_commit", "created", "parameters", "versions")

FIELD_DIMS = ("z", "x")
RAY_DIMS = ("ray", "step")
RAY_VARIABLES = ("x", "z", "kx", "kz", "R", "Q", "t", "sigma")

#: Why a ray (or streamline) stopped. "ok" means it reached the requested end.
RAY_STATUSES = (
    "ok",  # reached z_end
    "node",  # entered a region where R -> 0 and the Wave Potential is undefined
    "domain",  # left the computational domain (field edge, PML)
    "forbidden",  # reached K^2 + Q <= 0: a turning point the +z march cannot follow
    "max_steps",  # the integrator's step budget ran out
    "nonfinite",  # NaN/inf met at a step boundary
    "crossed",  # crossed a neighbouring ray (caustic): ray-tube flux is undefined
    "ensemble",  # stopped with its self-consistent ensemble when a neighbour stopped
    "dark",  # a self-consistent edge ray too dark (R < 1e-6 of the peak) to resolve
)

#: Arrays up to this many elements are stored in full in the JSON parameters attr;
#: larger ones as shape, dtype and a SHA-256 digest (a 1000x1000 K2 does not belong in
#: an attribute, but its digest still identifies it).
JSON_ARRAY_LIMIT = 4096
#: Source text of callables (K2, V, R0 lambdas) is kept up to this length.
JSON_SOURCE_LIMIT = 2000


class SchemaError(ValueError):
    """A Dataset does not follow the wavetraj contract; the message lists every problem."""


# --------------------------------------------------------------------------- provenance


@functools.lru_cache(maxsize=1)
def _git_commit() -> str:
    """The commit of the checkout this package runs from, or "unknown" when not in git."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and len(commit) == 40 else "unknown"


@functools.lru_cache(maxsize=1)
def _library_versions() -> str:
    import importlib.metadata as md

    versions = {"python": platform.python_version(), "wavetraj": __version__}
    for name in ("numpy", "scipy", "xarray", "findiff", "h5netcdf", "h5py", "matplotlib"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = "not installed"
    return json.dumps(versions, sort_keys=True)


def _json_default(obj: Any) -> Any:
    """Encode what json cannot: numpy values, complex, dataclasses, callables, Datasets."""
    if isinstance(obj, complex | np.complexfloating):
        return {"re": float(obj.real), "im": float(obj.imag)}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        if obj.size <= JSON_ARRAY_LIMIT:
            if np.iscomplexobj(obj):
                return {"re": obj.real.tolist(), "im": obj.imag.tolist()}
            return obj.tolist()
        digest = hashlib.sha256(np.ascontiguousarray(obj).tobytes()).hexdigest()
        return {"shape": list(obj.shape), "dtype": str(obj.dtype), "sha256": digest}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        return {"type": type(obj).__qualname__, **fields}
    if isinstance(obj, xr.Dataset):
        return {
            "dataset": obj.attrs.get(KIND_ATTR, "unknown"),
            "method": obj.attrs.get("method", ""),
            "created": obj.attrs.get("created", ""),
            "sizes": dict(obj.sizes),
        }
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, Mapping):
        return dict(obj)
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    if callable(obj):
        entry = {"callable": getattr(obj, "__qualname__", type(obj).__qualname__)}
        entry["module"] = getattr(obj, "__module__", None)
        try:
            entry["source"] = inspect.getsource(obj).strip()[:JSON_SOURCE_LIMIT]
        except (OSError, TypeError):
            entry["repr"] = repr(obj)[:JSON_SOURCE_LIMIT]
        return entry
    return repr(obj)


def to_json(parameters: Mapping[str, Any] | None) -> str:
    """Serialise input parameters (arrays, callables and dataclasses included) to JSON."""
    return json.dumps(dict(parameters or {}), default=_json_default, sort_keys=True)


def provenance(parameters: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Provenance attrs for a new Dataset: version, git commit, UTC time, inputs as JSON."""
    return {
        "wavetraj_version": __version__,
        "git_commit": _git_commit(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "parameters": to_json(parameters),
        "versions": _library_versions(),
    }


def _attrs(units: str, long_name: str) -> dict[str, str]:
    return {"units": units, "long_name": long_name}


# --------------------------------------------------------------------------- builders


def field_dataset(
    x: np.ndarray,
    z: np.ndarray,
    envelope: np.ndarray,
    K2: np.ndarray,
    *,
    k_ref: float,
    method: str,
    wavelength: float,
    parameters: Mapping[str, Any] | None = None,
    length_unit: str = "w0",
    attrs: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Build a field Dataset per the contract and validate it.

    Parameters
    ----------
    x, z : 1-D arrays
        Grid coordinates [length_unit], strictly increasing.
    envelope : complex array, shape (len(z), len(x))
        A with u = A·exp(i·k_ref·z).
    K2 : real array, shape (len(z), len(x))
        Local wavenumber squared [1/length_unit²].
    k_ref : float
        Carrier wavenumber [1/length_unit]; 0 when the envelope is the field itself.
    method : str
        Which solver made the field (e.g. "helmholtz-fd", "angular-spectrum").
    wavelength : float
        Launch wavelength λ0 = 2π/K(launch) [length_unit].
    parameters : mapping
        The full input of the solver call, stored as JSON for provenance.
    attrs : mapping
        Further solver settings to keep (scalars or strings).
    """
    x = np.asarray(x, dtype=float)
    z = np.asarray(z, dtype=float)
    envelope = np.asarray(envelope)
    K2 = np.asarray(K2)
    if np.iscomplexobj(K2):
        raise TypeError(
            f"K2 must be real; got dtype {K2.dtype}. Absorption belongs in the PML, "
            "not in K2: pass K2.real."
        )
    shape = (z.size, x.size)
    for name, arr in (("envelope", envelope), ("K2", K2)):
        if arr.shape != shape:
            raise ValueError(
                f"{name} has shape {arr.shape}; the grid (len(z), len(x)) is {shape}. "
                "Arrays are indexed [z, x]."
            )
    L = length_unit
    ds = xr.Dataset(
        {
            "envelope": (
                FIELD_DIMS,
                envelope.astype(complex, copy=False),
                _attrs("arb", "complex envelope A, u = A exp(i k_ref z)"),
            ),
            "K2": (
                FIELD_DIMS,
                K2.astype(float, copy=False),
                _attrs(f"1/{L}^2", "local wavenumber squared"),
            ),
        },
        coords={
            "x": ("x", x, _attrs(L, "transverse position")),
            "z": ("z", z, _attrs(L, "propagation distance")),
        },
        attrs={
            KIND_ATTR: "field",
            "method": str(method),
            "wavelength": float(wavelength),
            "k_ref": float(k_ref),
            "length_unit": L,
            **(dict(attrs) if attrs else {}),
            **provenance(parameters),
        },
    )
    return validate_field(ds)


def ray_dataset(
    x0: np.ndarray,
    *,
    x: np.ndarray,
    z: np.ndarray,
    kx: np.ndarray,
    kz: np.ndarray,
    R: np.ndarray,
    Q: np.ndarray,
    t: np.ndarray,
    sigma: np.ndarray,
    status: np.ndarray,
    dynamics: str,
    wave_potential: str,
    parameters: Mapping[str, Any] | None = None,
    length_unit: str = "w0",
    time_unit: str = "m w0^2/hbar",
    extra: Mapping[str, tuple[np.ndarray, str, str]] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Build a ray (or streamline) Dataset per the contract and validate it.

    ``x, z, kx, kz, R, Q, t, sigma`` are arrays of shape (n_ray, n_step), NaN after a
    ray stops; ``status`` holds one of :data:`RAY_STATUSES` per ray. ``extra`` adds
    diagnostics as ``name: (values, units, long_name)``; values of shape (n_ray,) get dim
    ``ray``, of shape (n_ray, n_step) dims ``("ray", "step")``.
    """
    x0 = np.asarray(x0, dtype=float)
    n_ray = x0.size
    L = length_unit
    specs = {
        "x": (x, L, "transverse position"),
        "z": (z, L, "propagation distance"),
        "kx": (kx, f"1/{L}", "transverse wavenumber"),
        "kz": (kz, f"1/{L}", "longitudinal wavenumber"),
        "R": (R, "arb", "wave amplitude R = |u|"),
        "Q": (Q, f"1/{L}^2", "wave potential term Q = lap(R)/R"),
        "t": (t, time_unit, "time-table (time of flight)"),
        "sigma": (sigma, f"{L}^2", "ray parameter sigma (dr/dsigma = k)"),
    }
    data_vars = {}
    shape = None
    for name, (values, units, long_name) in specs.items():
        arr = np.asarray(values, dtype=float)
        if arr.ndim != 2 or arr.shape[0] != n_ray:
            raise ValueError(
                f"{name} has shape {arr.shape}; expected (n_ray, n_step) with n_ray = "
                f"len(x0) = {n_ray}."
            )
        if shape is not None and arr.shape != shape:
            raise ValueError(f"{name} has shape {arr.shape} but x has {shape}; all must agree.")
        shape = arr.shape
        data_vars[name] = (RAY_DIMS, arr, _attrs(units, long_name))
    status = np.asarray(status, dtype=str)
    if status.shape != (n_ray,):
        raise ValueError(f"status has shape {status.shape}; expected ({n_ray},), one per ray.")
    data_vars["status"] = ("ray", status, _attrs("1", "why the ray stopped"))
    for name, (values, units, long_name) in (extra or {}).items():
        arr = np.asarray(values)
        dims = RAY_DIMS if arr.ndim == 2 else ("ray",)
        data_vars[name] = (dims, arr, _attrs(units, long_name))
    ds = xr.Dataset(
        data_vars,
        coords={
            "ray": ("ray", np.arange(n_ray), _attrs("1", "ray index")),
            "x0": ("ray", x0, _attrs(L, "launch position")),
        },
        attrs={
            KIND_ATTR: "rays",
            "dynamics": str(dynamics),
            "wave_potential": str(wave_potential),
            "length_unit": L,
            **(dict(attrs) if attrs else {}),
            **provenance(parameters),
        },
    )
    return validate_rays(ds)


# --------------------------------------------------------------------------- validators


def _check_common(ds: Any, kind: str) -> list[str]:
    """Problems shared by all schemas: type, kind, units/long_name, provenance."""
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"expected an xarray.Dataset ({kind} schema); got {type(ds).__name__}")
    problems = []
    found = ds.attrs.get(KIND_ATTR)
    if found != kind:
        problems.append(f"attr {KIND_ATTR!r} is {found!r}, expected {kind!r}")
    for name, var in {**ds.coords, **ds.data_vars}.items():
        for key in ("units", "long_name"):
            value = var.attrs.get(key)
            if not isinstance(value, str) or not value.strip():
                problems.append(f"variable {name!r} has no {key!r} attr (got {value!r})")
    for key in PROVENANCE_ATTRS:
        if key not in ds.attrs:
            problems.append(f"provenance attr {key!r} is missing")
    for key in ("parameters", "versions"):
        if key in ds.attrs:
            try:
                json.loads(ds.attrs[key])
            except (TypeError, ValueError) as exc:
                problems.append(f"attr {key!r} is not valid JSON ({exc})")
    return problems


def _check_var(
    ds: xr.Dataset, name: str, dims: tuple[str, ...], dtype_kind: str, problems: list[str]
) -> None:
    kinds = {"c": "complex", "f": "real floating-point", "U": "string"}
    if name not in ds.variables:
        problems.append(f"required variable {name!r} is missing")
        return
    var = ds[name]
    if var.dims != dims:
        problems.append(f"variable {name!r} has dims {var.dims}, expected {dims}")
    if var.dtype.kind != dtype_kind and not (dtype_kind == "U" and var.dtype.kind in "OS"):
        problems.append(f"variable {name!r} has dtype {var.dtype}, expected {kinds[dtype_kind]}")


def _raise(problems: list[str], kind: str) -> None:
    if problems:
        listing = "\n  - ".join(problems)
        raise SchemaError(f"not a valid wavetraj {kind} Dataset:\n  - {listing}")


def validate_field(ds: xr.Dataset) -> xr.Dataset:
    """Check a field Dataset against the contract; return it unchanged or raise SchemaError."""
    problems = _check_common(ds, "field")
    _check_var(ds, "envelope", FIELD_DIMS, "c", problems)
    _check_var(ds, "K2", FIELD_DIMS, "f", problems)
    for name in ("envelope", "K2"):
        if name in ds.variables and ds[name].dtype.kind in "fc":
            values = ds[name].values
            bad = ~np.isfinite(values)
            if bad.any() and values.ndim == 2:
                iz, ix = np.argwhere(bad)[0]
                problems.append(
                    f"variable {name!r} is not finite at {int(bad.sum())} of {values.size} "
                    f"points (first at z index {iz}, x index {ix}): a field must be a "
                    "solution everywhere — recompute it"
                )
    for c in ("x", "z"):
        _check_var(ds, c, (c,), "f", problems)
        if c in ds.coords and ds[c].dtype.kind == "f":
            v = ds[c].values
            if v.size < 2 or not np.all(np.isfinite(v)) or not np.all(np.diff(v) > 0):
                problems.append(f"coordinate {c!r} must be finite and strictly increasing")
    if not isinstance(ds.attrs.get("method"), str):
        problems.append("attr 'method' (which solver made the field) is missing")
    for key, minimum in (("wavelength", 0.0), ("k_ref", None)):
        value = ds.attrs.get(key)
        if not isinstance(value, int | float | np.number) or not np.isfinite(value):
            problems.append(f"attr {key!r} must be a finite number; got {value!r}")
        elif minimum is not None and value <= minimum:
            problems.append(f"attr {key!r} must be > {minimum}; got {value!r}")
    _raise(problems, "field")
    return ds


def validate_rays(ds: xr.Dataset) -> xr.Dataset:
    """Check a ray/streamline Dataset against the contract; return it or raise SchemaError."""
    problems = _check_common(ds, "rays")
    for name in RAY_VARIABLES:
        _check_var(ds, name, RAY_DIMS, "f", problems)
    _check_var(ds, "x0", ("ray",), "f", problems)
    _check_var(ds, "status", ("ray",), "U", problems)
    if "status" in ds.variables:
        unknown = sorted(set(map(str, np.asarray(ds["status"].values))) - set(RAY_STATUSES))
        if unknown:
            problems.append(f"status values {unknown} are not among {RAY_STATUSES}")
    for key in ("dynamics", "wave_potential"):
        if not isinstance(ds.attrs.get(key), str):
            problems.append(f"attr {key!r} is missing")
    _raise(problems, "rays")
    return ds


VALIDATORS: dict[str, Callable[[xr.Dataset], xr.Dataset]] = {
    "field": validate_field,
    "rays": validate_rays,
}


def validate(ds: xr.Dataset) -> xr.Dataset:
    """Validate a Dataset by the schema its ``wavetraj_kind`` attr names."""
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"expected an xarray.Dataset; got {type(ds).__name__}")
    kind = ds.attrs.get(KIND_ATTR)
    if kind not in VALIDATORS:
        raise SchemaError(
            f"not a wavetraj Dataset: attr {KIND_ATTR!r} is {kind!r}, expected one of "
            f"{sorted(VALIDATORS)}. Build Datasets with wavetraj.field_dataset or "
            "wavetraj.ray_dataset."
        )
    return VALIDATORS[kind](ds)
