"""Streamlines of ∇φ of a field, in the ray schema.

For an exact solution u = R e^{iφ} of ∇²u + K²u = 0 the streamlines of k = ∇φ obey the
ray equations (DESIGN.md, "Why the comparison is exact"), so they are what the rays must
follow. With z as the parameter,

    dx/dz = kx(x, z) / kz(x, z),     dσ/dz = 1/kz,

with (kx, kz) = (Im ∂x A/A, k_ref + Im ∂z A/A) from :func:`wavetraj.derived.phase_gradient`
(6th-order differences of the smooth envelope, no unwrapping) and interpolated by quintic
splines. DOP853 integrates; a streamline stops with status "node" where the field's
amplitude is below the node floor (∇φ undefined) and "domain" at the edges of the grid.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy.integrate import solve_ivp

from wavetraj import ray_dataset, validate_field
from wavetraj.derived import AMPLITUDE_FLOOR, phase_gradient, wave_potential
from wavetraj.interpolant import SPLINE_DEGREE, FieldInterpolant
from wavetraj.schema import RAY_VARIABLES

#: Local error tolerance of the streamline integration (units of w0): well below the
#: 1e-6 w0 at which interpolated fields are judged.
RTOL = 1e-11
ATOL = 1e-11
#: Streamlines stop ("node") where R falls below this fraction of max R. ∇φ = Im(∇A/A)
#: is differenced from A, so its error grows like 1/R: measured on the bell field
#: (h = w0/45), a streamline launched at x0 = −1.87 w0 that runs into a node moved by
#: 0.007 w0 between field grids near R ~ 1e-6 max, while at R >= 1e-4 max the streamlines
#: agree to 1e-5 w0 across grids. Below this floor the field cannot judge the rays.
STREAMLINE_FLOOR = 1e-4
#: Difference accuracy of kx, kz on the field grid: the streamline error is set by it.
GRADIENT_ACCURACY = 6


class _Interpolated(FieldInterpolant):
    """∇φ, Q and R of a field as splines; untrusted where ∇φ is undefined or R is below
    ``floor`` of its peak, and off the grid."""

    def __init__(self, field: xr.Dataset, floor: float):
        x, z = field["x"].values, field["z"].values
        if x.size <= SPLINE_DEGREE + GRADIENT_ACCURACY or z.size <= SPLINE_DEGREE + 1:
            raise ValueError(
                f"the field grid is {z.size} × {x.size} (z × x): streamlines need > "
                f"{SPLINE_DEGREE + GRADIENT_ACCURACY} points in x and > {SPLINE_DEGREE + 1} in z"
            )
        acc = GRADIENT_ACCURACY if z.size > GRADIENT_ACCURACY + 2 else 2
        # ∇φ where it is defined at all; the zero-filled masked cells disturb the splines
        # only within a few cells, far inside the stop floor below.
        kx, kz = phase_gradient(field, accuracy=acc, floor=AMPLITUDE_FLOOR)
        Q = wave_potential(field, accuracy=acc, floor=AMPLITUDE_FLOOR).values
        undefined = ~(np.isfinite(kx.values) & np.isfinite(kz.values))
        R = np.abs(field["envelope"].values)
        super().__init__(field, undefined | (R < floor * R.max()), outside=1.0)
        # zero-filled only where ∇φ is undefined; the stop mask above is wider
        self.kx, self.kz, self.Q = (
            self.spline(v, undefined=undefined) for v in (kx.values, kz.values, Q)
        )


def streamlines(
    field: xr.Dataset,
    x0,
    *,
    z_end: float | None = None,
    n_steps: int | None = None,
    z_out=None,
    floor: float = STREAMLINE_FLOOR,
) -> xr.Dataset:
    """Streamlines of ∇φ of ``field`` launched from ``x0`` on its first plane.

    Parameters
    ----------
    field : a field Dataset (any wavefield solver, or built by ``wavetraj.field_dataset``).
    x0 : launch positions on z = field.z[0] [w0].
    z_end : last plane (default: the field's last plane); or ``z_out``, the planes.
    n_steps : number of output planes (default: the field's planes up to z_end).
    floor : relative amplitude below which the streamline stops with status "node"
        (default :data:`STREAMLINE_FLOOR`; ∇φ itself is undefined below
        ``wavetraj.derived.AMPLITUDE_FLOOR``).

    Returns
    -------
    xarray.Dataset in the ray schema: x, z, kx, kz, R, Q (∇²R/R of the field), sigma and
    t (= σ, the Schrödinger time-table with m = ħ = 1), per-ray ``status``, ``stop_x``,
    ``stop_z``.
    """
    validate_field(field)
    x0 = np.atleast_1d(np.asarray(x0, dtype=float))
    if x0.ndim != 1 or not np.all(np.isfinite(x0)):
        raise ValueError(f"x0 must be a 1-D array of finite positions; got {x0!r}")
    if x0.size == 0:
        raise ValueError("x0 is empty: give at least one launch position [w0]")
    zf = field["z"].values
    if z_out is None:
        z_end = float(zf[-1]) if z_end is None else float(z_end)
        if not zf[0] < z_end <= zf[-1] * (1 + 1e-12) + 1e-300:
            raise ValueError(
                f"z_end must lie in the field's range ({zf[0]!r}, {zf[-1]!r}]; got {z_end!r}"
            )
        z_out = zf[zf <= z_end] if n_steps is None else np.linspace(zf[0], z_end, int(n_steps))
    z_out = np.asarray(z_out, dtype=float)
    if z_out.size < 2 or z_out[0] != zf[0] or np.any(np.diff(z_out) <= 0):
        raise ValueError("z_out must be increasing, start at the field's first plane, >= 2 planes")
    f = _Interpolated(field, floor)
    n, m = x0.size, z_out.size
    names = ("x", "kx", "kz", "R", "Q", "sigma")
    out = {k: np.full((n, m), np.nan) for k in names}
    status = np.array(["ok"] * n, dtype=object)
    stop = np.full((n, 2), np.nan)

    def rhs(z, y):
        x = y[:1]
        kz = f.kz.ev(z, x)
        return np.concatenate([f.kx.ev(z, x) / kz, 1.0 / kz])

    def event(z, y):
        x = y[:1]
        return float(min(f.node_margin(x, z)[0], f.domain_margin(x)[0]))

    event.terminal, event.direction = True, -1
    for i, xi in enumerate(x0):
        y0 = np.array([xi, 0.0])
        if event(z_out[0], y0) < 0:
            status[i] = "node" if f.domain_margin(y0[:1])[0] >= 0 else "domain"
            stop[i] = (xi, z_out[0])
            continue
        sol = solve_ivp(
            rhs,
            (z_out[0], z_out[-1]),
            y0,
            method="DOP853",
            t_eval=z_out,
            events=event,
            rtol=RTOL,
            atol=ATOL,
        )
        j = sol.t.size
        xs, zs = sol.y[0], sol.t
        out["x"][i, :j], out["sigma"][i, :j] = xs, sol.y[1]
        out["kx"][i, :j], out["kz"][i, :j] = f.kx.ev(zs, xs), f.kz.ev(zs, xs)
        out["R"][i, :j], out["Q"][i, :j] = f.R.ev(zs, xs), f.Q.ev(zs, xs)
        if sol.status == 1:
            ze, xe = float(sol.t_events[0][0]), float(sol.y_events[0][0][0])
            status[i] = "domain" if f.domain_margin(np.array([xe]))[0] <= 1e-9 else "node"
            stop[i] = (xe, ze)
        elif sol.status != 0:
            status[i] = "nonfinite"
            stop[i, 1] = zs[-1] if zs.size else z_out[0]
    out["z"] = np.where(np.isfinite(out["x"]), z_out[None, :], np.nan)
    out["t"] = out["sigma"]  # the Schrödinger time-table with m = ħ = 1
    return ray_dataset(
        x0,
        **{name: out[name] for name in RAY_VARIABLES},
        status=status.astype(str),
        dynamics="streamlines of grad(phi)",
        wave_potential="field",
        parameters={
            "x0": x0,
            "z_out": z_out,
            "floor": floor,
            "field_method": field.attrs["method"],
        },
        extra={
            "stop_x": (stop[:, 0], "w0", "transverse position where the streamline stopped"),
            "stop_z": (stop[:, 1], "w0", "z where the streamline stopped"),
        },
        attrs={
            "method": "streamlines",
            "field_method": field.attrs["method"],
            "wavelength": field.attrs["wavelength"],
            "rtol": RTOL,
            "gradient_accuracy": GRADIENT_ACCURACY,
        },
    )
