"""Quantities derived from any field Dataset: R, k = ∇φ, Q = ∇²R/R and W.

All are computed from the smooth complex envelope A (u = A e^{i k_ref z}), never from an
unwrapped phase or from R itself (which has a kink at every node):

    kx = Im(∂x A / A),     kz = k_ref + Im(∂z A / A),
    Q  = ∇²R/R = Σ_ξ [ Re(∂ξ² A / A) + Im(∂ξ A / A)² ],

the last from ∇²u/u = ∇²R/R − |∇φ|² + i(…) with the k_ref terms cancelling exactly.
Where R < ``floor``·max R (near nodes) these quantities are undefined: NaN, never inf.

They live in the shared core (not in ``wavefield``) because the contract says they are
derived on demand from *any* field Dataset, and ``raytrace`` needs Q from a field without
importing ``wavefield``; ``wavefield`` re-exports them under its own name.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from findiff import Diff

from wavetraj.schema import validate_field

#: Relative amplitude below which k and Q are reported as NaN. At 1e-6 of the peak the
#: round-off in ∂A/A is still ~1e-10 relative; below it a node dominates.
AMPLITUDE_FLOOR = 1e-6
DERIVATIVE_ACCURACY = 4


def _derivative(values: np.ndarray, coord: np.ndarray, axis: int, order: int, acc: int):
    need = order + acc
    if coord.size < need:
        raise ValueError(
            f"the field has {coord.size} points along {'xz'[1 - axis]}; derivatives of order "
            f"{order} at accuracy {acc} need >= {need}: pass more planes or a lower accuracy"
        )
    spacing = np.diff(coord)
    uniform = np.ptp(spacing) <= 1e-9 * spacing.mean()
    d = Diff(axis, float(spacing[0]) if uniform else coord, acc=acc)
    return (d**order)(values) if order > 1 else d(values)


def _mask(ds: xr.Dataset, floor: float) -> np.ndarray:
    if not 0 <= floor < 1:
        raise ValueError(f"floor must be a relative amplitude in [0, 1); got {floor!r}")
    R = np.abs(ds["envelope"].values)
    return R <= floor * R.max()


def _dataarray(ds: xr.Dataset, values: np.ndarray, units: str, long_name: str) -> xr.DataArray:
    return xr.DataArray(
        values,
        coords={"z": ds["z"], "x": ds["x"]},
        dims=("z", "x"),
        attrs={"units": units, "long_name": long_name},
    )


def amplitude(ds: xr.Dataset) -> xr.DataArray:
    """R = |u| = |A| on the field grid."""
    validate_field(ds)
    return _dataarray(ds, np.abs(ds["envelope"].values), "arb", "wave amplitude R = |u|")


def _log_derivatives(ds, acc, floor, orders):
    validate_field(ds)
    A = ds["envelope"].values
    mask = _mask(ds, floor)
    safe = np.where(mask, 1.0, A)
    out = {}
    for axis, name in ((1, "x"), (0, "z")):
        coord = ds[name].values
        for order in orders:
            ratio = _derivative(A, coord, axis, order, acc) / safe
            ratio[mask] = complex(np.nan, np.nan)  # both parts: kx uses .imag, Q .real
            out[name, order] = ratio
    return out


def phase_gradient(
    ds: xr.Dataset, *, accuracy: int = DERIVATIVE_ACCURACY, floor: float = AMPLITUDE_FLOOR
) -> tuple[xr.DataArray, xr.DataArray]:
    """(kx, kz) = ∇φ = (Im(∂x A/A), k_ref + Im(∂z A/A)); NaN where R < floor·max R."""
    d = _log_derivatives(ds, accuracy, floor, (1,))
    L = ds["x"].attrs["units"]
    kx = _dataarray(ds, d["x", 1].imag, f"1/{L}", "transverse wavenumber kx = dphi/dx")
    kz = _dataarray(
        ds, ds.attrs["k_ref"] + d["z", 1].imag, f"1/{L}", "longitudinal wavenumber kz = dphi/dz"
    )
    return kx, kz


def wave_potential(
    ds: xr.Dataset,
    *,
    mass: float | None = None,
    hbar: float = 1.0,
    accuracy: int = DERIVATIVE_ACCURACY,
    floor: float = AMPLITUDE_FLOOR,
) -> xr.DataArray:
    """Q = ∇²R/R [1/length²], or W = −(ħ²/2m) Q when ``mass`` is given.

    NaN where R < floor·max R: the Wave Potential is singular at nodes.
    """
    d = _log_derivatives(ds, accuracy, floor, (1, 2))
    Q = sum(d[n, 2].real + d[n, 1].imag ** 2 for n in ("x", "z"))
    L = ds["x"].attrs["units"]
    if mass is None:
        return _dataarray(ds, Q, f"1/{L}^2", "wave potential term Q = lap(R)/R")
    if not (mass > 0 and hbar > 0):
        raise ValueError(f"mass and hbar must be positive; got mass={mass!r}, hbar={hbar!r}")
    return _dataarray(ds, -(hbar**2) / (2 * mass) * Q, "energy", "Wave Potential W")
