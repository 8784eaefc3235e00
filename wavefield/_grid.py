"""Input checks shared by the wavefield solvers: grids, media, launch rows."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import numpy as np

from wavetraj.resources import check_memory

#: FFT worker threads for the spectral solvers (the machines have 2 cores).
FFT_WORKERS = 2
#: Relative spread of grid steps tolerated as "uniform" (linspace round-off is ~1e-15).
UNIFORM_RTOL = 1e-9

MediumLike = (
    Callable[[np.ndarray, np.ndarray], np.ndarray]
    | Callable[[np.ndarray], np.ndarray]
    | np.ndarray
    | float
)


def coordinate(values, name: str, *, uniform: bool = True, min_points: int = 3) -> np.ndarray:
    """A 1-D, finite, strictly increasing (and optionally uniform) coordinate array."""
    given = np.asarray(values)
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1 or arr.size < min_points:
        raise ValueError(
            f"{name} must be a 1-D array of at least {min_points} points; got shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf; pass finite grid coordinates")
    steps = np.diff(arr)
    if np.any(steps <= 0):
        raise ValueError(f"{name} must be strictly increasing (e.g. np.linspace(a, b, n))")
    # The steps of a rounded linspace spread by ~eps·max|x| (eps of the dtype it came in:
    # 1e-7 for float32), which is round-off, not a non-uniform grid: such a grid is
    # re-spaced as the float64 linspace it stands for.
    if uniform and np.ptp(steps) > UNIFORM_RTOL * steps.mean():
        eps = np.finfo(given.dtype if np.issubdtype(given.dtype, np.floating) else float).eps
        if np.ptp(steps) > 16 * eps * np.max(np.abs(arr)):
            raise ValueError(
                f"{name} must be uniformly spaced for this solver (steps range "
                f"{steps.min():.6g}..{steps.max():.6g}); use np.linspace"
            )
        arr = np.linspace(arr[0], arr[-1], arr.size)
    return arr


def check_grid_memory(x: np.ndarray, z: np.ndarray, bytes_per_point: float, what: str) -> None:
    """Refuse, before any work, a field on (z, x) this machine cannot hold."""
    check_memory(
        bytes_per_point * x.size * z.size,
        f"{what} on {z.size} × {x.size} (z × x) points",
        "fewer output planes z, a coarser x grid or a narrower window",
    )


def z_independent(K2: MediumLike) -> bool:
    """True for media that declare themselves constant in z: a number, or a callable of x
    alone (one positional parameter), K2(x)."""
    if not callable(K2):
        return np.ndim(K2) == 0
    try:
        params = inspect.signature(K2).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature: assume K2(x, z)
        return False
    positional = [
        p
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    return len(positional) == 1 and not any(p.kind == p.VAR_POSITIONAL for p in params)


def medium_on_grid(K2: MediumLike, x: np.ndarray, z: np.ndarray, name: str = "K2") -> np.ndarray:
    """Evaluate K² as (nz, nx): a callable K2(x, z) of arrays, an array on the grid, or —
    for media constant in z — a callable K2(x) of x alone or a number, evaluated once and
    returned as a read-only view of one row."""
    shape = (z.size, x.size)
    if z_independent(K2):  # one row, shared by every plane (a read-only view)
        row = np.asarray(K2(x)) if callable(K2) else np.full(x.size, K2)
        if row.shape not in ((), (1,), (x.size,)):
            raise ValueError(
                f"{name}(x) returned shape {row.shape} for x of shape {x.shape}: it must work "
                "elementwise on arrays (np.where, not if)"
            )
        row = medium_on_grid(np.broadcast_to(row, (1, x.size)), x, z[:1], name)[0]
        return np.broadcast_to(row, shape)
    if callable(K2):
        X, Z = np.meshgrid(x, z)
        values = np.asarray(K2(X, Z))
        if values.shape != shape:
            try:
                values = np.broadcast_to(values, shape)
            except ValueError:
                raise ValueError(
                    f"{name}(x, z) returned shape {values.shape} for (x, z) meshes of shape "
                    f"{shape}: it must work elementwise on arrays (np.where, not if)"
                ) from None
    else:
        values = np.asarray(K2)
        if values.shape != shape:
            raise ValueError(
                f"{name} array has shape {values.shape}; expected (len(z), len(x)) = {shape}, "
                "or pass a callable K2(x, z)"
            )
    if np.iscomplexobj(values):
        raise TypeError(f"{name} must be real; got complex values. Absorption lives in the PML.")
    values = np.asarray(values, dtype=float)
    if not values.flags.writeable or not values.flags.owndata:  # broadcast views, inputs
        values = values.copy()
    if not np.isfinite(values).all():
        bad = np.argwhere(~np.isfinite(values))[0]
        raise ValueError(f"{name} is not finite at x={x[bad[1]]:.6g}, z={z[bad[0]]:.6g}")
    return values


def launch_row(u0, x: np.ndarray) -> np.ndarray:
    """The complex launch data u(x, z0) as a length-nx array (callable of x or array)."""
    values = np.asarray(u0(x) if callable(u0) else u0, dtype=complex)
    if values.shape != x.shape:
        raise ValueError(f"u0 has shape {values.shape}; expected ({x.size},), one value per x")
    if not np.all(np.isfinite(values)):
        raise ValueError("u0 contains NaN or inf; the launch data must be finite")
    if not np.any(values):
        raise ValueError("u0 is zero everywhere; nothing would propagate")
    return values


def reference_wavenumber(K2_row: np.ndarray, u0: np.ndarray) -> float:
    """k_ref = K at the peak of the launch amplitude |u0| (the beam centre): λ0 = 2π/k_ref."""
    i = int(np.argmax(np.abs(u0)))
    if K2_row[i] <= 0:
        raise ValueError(
            f"K2 = {K2_row[i]:.6g} <= 0 at the launch peak (index {i}): the launch is in a "
            "classically forbidden region; raise the energy, move z0, or pass k_ref"
        )
    return float(np.sqrt(K2_row[i]))
