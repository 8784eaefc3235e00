"""``trace``: launch rays from the line z = z0 and integrate the ray system in z.

The ray system (DESIGN.md) is dr/dσ = k, dk/dσ = ½∇(K² + Q), with the constraint
k² = K² + Q + C along each ray (C = 0 for the "dispersion" launch, C = −Q(launch) for the
seed's |k| = K launch, its eq. 5.4). Rays go to +z, so z is the independent variable and
kz is eliminated through the constraint — an exact reduction of the Hamiltonian flow:

    dx/dz = kx/kz,   dkx/dz = ½ ∂x(K² + Q)/kz,   dσ/dz = 1/kz,   dt/dz = (dt/dσ)/kz,
    kz = sqrt(K² + Q + C − kx²).

Three sources of Q (``wave_potential=``):

* ``"none"`` — geometric optics, Q = 0; the rays are independent (DOP853).
* a field Dataset — Q = ∇²R/R of that field (:class:`~raytrace.wave_potential.FieldPotential`);
  independent rays (DOP853).
* ``"self-consistent"`` (default, the seed's method) — Q from the ray ensemble itself
  (:class:`~raytrace.wave_potential.Ensemble`); the rays are coupled through a stiff
  fourth-derivative term and integrated together by the L-stable Radau IIA method.

A ray stops when it meets a stop condition ("node", "crossed", "forbidden", "domain") at
the exact z where its margin crosses zero (a terminal event); the place is recorded in
``stop_x``/``stop_z``. Independent rays stop alone. In a self-consistent ensemble the ray
that stopped splits the rest: each side goes on as its own ensemble (recalibrated at that
z), and a side with fewer than MIN_RAYS rays stops with status "ensemble".

Two things keep a self-consistent front going where its rays alone could not:

* re-sampling (``trace(resample=True)``): when its tubes have widened and compressed
  unevenly, the front is re-launched evenly between its edge rays and the user's rays
  are carried at their labels among the new ones (``_SelfConsistent.resample`` in
  :mod:`raytrace.problems`, ``_Group`` in :mod:`raytrace.march`);
* the dark-edge peel: when the march stalls or its solve fails, the dim edge rays stop
  ("dark" if launched below DARK_FRACTION of the launch peak, else "node") and the rest
  run the stretch again; each retry that fails again cuts at the next of
  DARK_EDGE_FRACTIONS (``_dark_edges`` in :mod:`raytrace.march`).

The code: :mod:`raytrace.launch` (launch points and the profile's derivatives),
:mod:`raytrace.problems` (the three problems: right-hand sides, margins, Jacobians),
:mod:`raytrace.march` (groups of rays from plane to plane, splits, re-sampling, the peel),
:mod:`raytrace.integrate` (the integrator settings, the budget, one stretch's solve), and
here :func:`trace` and the ray Dataset.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

import numpy as np
import xarray as xr

from raytrace.dynamics import KleinGordon, _Dynamics
from raytrace.integrate import Integrator
from raytrace.launch import _check_x0, _launch_kx, _launch_log_derivatives, _launch_values
from raytrace.march import _March, _march
from raytrace.problems import _FromField, _GeometricOptics, _Problem, _SelfConsistent
from raytrace.wave_potential import (
    DEFAULT_ACCURACY,
    FieldPotential,
)
from wavetraj import ray_dataset
from wavetraj.resources import check_memory
from wavetraj.schema import RAY_VARIABLES, validate_field

log = logging.getLogger(__name__)

MODES = ("self-consistent", "none")
LAUNCHES = ("dispersion", "seed")
#: Output planes when neither ``n_steps`` nor ``z_out`` is given.
DEFAULT_STEPS = 201


#: (ray, plane) float arrays a trace holds at its peak: measured 15 (peak RSS growth, 2000
#: geometric rays × 2000 planes); 24 leaves room for xarray's copies when it is saved.
TRACE_ARRAYS = 24


#: The problem of each mode of ``trace``.
PROBLEMS: dict[str, type[_Problem]] = {
    "none": _GeometricOptics,
    "field": _FromField,
    "self-consistent": _SelfConsistent,
}


def _resolve_mode(wave_potential) -> str:
    if isinstance(wave_potential, xr.Dataset):
        return "field"
    if isinstance(wave_potential, str) and wave_potential in MODES:
        return wave_potential
    raise ValueError(
        f"wave_potential must be one of {MODES} or a field Dataset from wavefield; "
        f"got {wave_potential!r}"
    )


def _output_planes(z0: float, z_end, n_steps, z_out) -> np.ndarray:
    if z_out is not None:
        z_out = np.asarray(z_out, dtype=float)
        if z_out.ndim != 1 or z_out.size < 2 or np.any(np.diff(z_out) <= 0):
            raise ValueError("z_out must be a strictly increasing 1-D array of >= 2 planes")
        if z_out[0] != z0:
            raise ValueError(f"z_out must start at the launch line z0 = {z0!r}; got {z_out[0]!r}")
        return z_out
    if z_end is None or not np.isfinite(z_end) or z_end <= z0:
        raise ValueError(f"z_end must be a finite number > z0 = {z0!r}; got {z_end!r}")
    if n_steps is None:
        n_steps = DEFAULT_STEPS
    elif isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)):
        raise ValueError(
            f"n_steps must be a whole number of output planes (>= 2); got {n_steps!r}: "
            "pass an int, or z_out for planes of your own"
        )
    if n_steps < 2:
        raise ValueError(f"n_steps must be >= 2 output planes; got {n_steps!r}")
    return np.linspace(z0, z_end, n_steps)


def trace(
    dynamics: _Dynamics,
    x0,
    R0: Callable | np.ndarray,
    *,
    phi0: Callable | np.ndarray | None = None,
    z0: float = 0.0,
    z_end: float | None = None,
    wave_potential="self-consistent",
    launch: str = "dispersion",
    n_steps: int | None = None,
    z_out=None,
    accuracy: int = DEFAULT_ACCURACY,
    integrator: Integrator | None = None,
    resample: bool = True,
) -> xr.Dataset:
    """Trace rays launched from x0 on z = z0 to z_end; return a ray Dataset.

    Parameters
    ----------
    dynamics : :class:`~raytrace.Schrodinger` or :class:`~raytrace.KleinGordon`.
    x0 : launch positions [w0] (strictly increasing for the self-consistent mode).
    R0 : launch amplitude, a callable of x or an array on x0 (> 0 everywhere: its log is
        used, so tails as small as 1e-300 are fine).
    phi0 : launch phase φ0(x) (callable or array on x0); None for a flat phase (k ∥ +z).
        A callable may carry its exact derivative as ``phi0.dx`` (used for kx0).
    z0, z_end : launch line and end [w0]; or ``z_out``, the output planes themselves.
    wave_potential : "self-consistent" (Q from the rays, the seed's method), "none"
        (geometric optics) or a field Dataset (Q = ∇²R/R of that field).
    launch : "dispersion" (k² = K² + Q at launch, consistent with the field equation) or
        "seed" (|k| = K at launch, seed eq. 5.4). Recorded in attrs ``launch``.
    n_steps : number of output planes (default 201) from z0 to z_end.
    accuracy : findiff accuracy of the self-consistent label stencils (2, 4 or 6).
    integrator : :class:`Integrator` settings.
    resample : self-consistent mode: when the front's tubes have widened or compressed
        unevenly (gaps differing by RESAMPLE_SPREAD relative to their start), re-launch
        its rays evenly between its edge rays and carry the traced rays at their labels
        (``_SelfConsistent.resample``: why). False keeps the launched rays themselves as
        the ensemble to the end (where it cannot resolve the front, rays stop "node").
        The count is in attrs ``resamples``.

    Returns
    -------
    xarray.Dataset
        The ray schema (``wavetraj.ray_dataset``) plus ``stop_x``, ``stop_z`` (where a ray
        stopped, NaN if it reached z_end), ``dispersion_residual`` = k² − K² − Q and
        ``flux_residual`` = R²·kz·(tube width)/(launch value) − 1 along each ray.

    Notes
    -----
    Equations and the stop rules are in the module docstring; the self-consistent Q
    (quantum-stress form, why it is stable) in :mod:`raytrace.wave_potential`.

    Examples
    --------
    >>> import numpy as np, raytrace
    >>> d = raytrace.Schrodinger.for_wavelength(1e-2)
    >>> rays = trace(d, np.linspace(-3, 3, 64), lambda x: np.exp(-x**2), z_end=100.0)
    >>> rays.attrs["wave_potential"], str(rays.status.values[0])
    ('self-consistent', 'ok')
    """
    if not isinstance(dynamics, _Dynamics):
        raise TypeError(
            f"dynamics must be raytrace.Schrodinger(...) or raytrace.KleinGordon(...); "
            f"got {type(dynamics).__name__}"
        )
    mode = _resolve_mode(wave_potential)
    if launch not in LAUNCHES:
        raise ValueError(f"launch must be one of {LAUNCHES}; got {launch!r}")
    if accuracy not in (2, 4, 6):
        raise ValueError(f"accuracy must be 2, 4 or 6; got {accuracy!r}")
    integrator = integrator or Integrator()
    x0 = _check_x0(x0, mode)
    try:
        z0 = float(z0)
    except (TypeError, ValueError):
        raise TypeError(f"z0 must be a number (the launch line, w0); got {z0!r}") from None
    if not np.isfinite(z0):
        raise ValueError(f"z0 must be a finite launch line [w0]; got {z0!r}")
    planes = _output_planes(z0, z_end, n_steps, z_out)
    dynamics.check_launch(x0, z0)
    check_memory(
        TRACE_ARRAYS * 8.0 * x0.size * planes.size,
        f"tracing {x0.size} rays to {planes.size} output planes",
        "trace fewer rays or fewer output planes (n_steps, z_out)",
    )
    R0v = _launch_values("R0", R0, x0)
    if np.any(R0v <= 0):
        bad = x0[R0v <= 0]
        raise ValueError(
            f"R0 must be > 0 at every launch point (its log is used); R0 <= 0 at "
            f"{bad.size} points, e.g. x0 = {bad[0]:.6g}: launch only where R0 > 0 "
            "(narrow the span of x0)"
        )
    ln_R0 = np.log(R0v)
    kx0 = _launch_kx(phi0, x0)
    ln_R0_x = _launch_log_derivatives(R0, x0) if mode == "self-consistent" else None

    field_potential = None
    if mode == "field":
        validate_field(wave_potential)  # finite, on a uniform grid, with its units
        field_potential = FieldPotential(wave_potential)
        zmin, zmax = (float(v) for v in wave_potential["z"].values[[0, -1]])
        if not zmin - 1e-12 * max(1.0, abs(zmin)) <= z0 <= zmax:
            raise ValueError(
                f"z0 = {z0!r} is outside the field's planes z = {zmin!r} … {zmax!r}: "
                "launch on a plane the field covers"
            )
        if planes[-1] > zmax * (1 + 1e-12):
            raise ValueError(
                f"z_end = {planes[-1]!r} is beyond the field's last plane z = {zmax!r}: "
                "trace to at most the field's extent or compute a longer field"
            )
    if mode == "none" and x0.size == 1:
        log.warning(
            "one geometric-optics ray forms no ray tube: its trajectory is traced, "
            "R and flux_residual are NaN (launch >= 2 rays for the amplitude)"
        )
    problem = PROBLEMS[mode](
        dynamics,
        x0,
        kx0,
        ln_R0,
        z0,
        launch=launch,
        accuracy=accuracy,
        field=field_potential,
        ln_R0_x=ln_R0_x,
        resample=bool(resample),
    )
    march = _march(problem, x0, kx0, planes, integrator)
    ds = _dataset(
        problem,
        march,
        dynamics=dynamics,
        mode=mode,
        launch=launch,
        planes=planes,
        R0=R0,
        phi0=phi0,
        accuracy=accuracy,
        integrator=integrator,
    )
    ds.attrs["march_notes"] = " | ".join(march.notes)
    return ds


def _dataset(
    problem: _Problem,
    march: _March,
    *,
    dynamics: _Dynamics,
    mode: str,
    launch: str,
    planes: np.ndarray,
    R0,
    phi0,
    accuracy: int,
    integrator: Integrator,
) -> xr.Dataset:
    """The ray Dataset of a finished march (schema: ``wavetraj.ray_dataset``)."""
    out, status, stop = march.out, march.status, march.stop
    dyn, acc, integ, x0 = dynamics, accuracy, integrator, problem.x0
    n = x0.size
    K2 = dyn.K2(out["x"], np.broadcast_to(planes, out["x"].shape))
    k2 = out["kx"] ** 2 + out["kz"] ** 2
    disp = k2 - K2 - out["Q"]
    with np.errstate(invalid="ignore", divide="ignore"):
        width = np.gradient(out["x"], axis=0) if n >= 2 else np.full_like(out["x"], np.nan)
        flux = out["R"] ** 2 * out["kz"] * width
        flux_res = flux / flux[:, :1] - 1
    out["z"] = np.where(np.isfinite(out["x"]), planes[None, :], np.nan)
    kg = isinstance(dyn, KleinGordon)
    return ray_dataset(
        x0,
        **{name: out[name] for name in RAY_VARIABLES},
        status=status.astype(str),
        dynamics=dyn.describe(),
        wave_potential=mode,
        parameters={
            "x0": x0,
            "R0": R0,
            "phi0": phi0,
            "launch": launch,
            "accuracy": acc,
            "resample": problem.resampling,
            "integrator": dataclasses.asdict(integ),
            "dynamics": dyn.describe(),
        },
        time_unit="w0/c (c, hbar as given)" if kg else "m w0^2/hbar",
        extra={
            "stop_x": (stop[:, 0], "w0", "transverse position where the ray stopped"),
            "stop_z": (stop[:, 1], "w0", "z where the ray stopped"),
            "dispersion_residual": (disp, "1/w0^2", "k^2 - K^2 - Q along the ray"),
            "flux_residual": (
                flux_res,
                "1",
                "R^2 kz (tube width) relative to launch, minus 1 (2nd-order widths)",
            ),
        },
        attrs={
            "launch": launch,
            "launch_description": (
                "|k| = K at launch (seed eq. 5.4): k^2 - K^2 - Q = -Q(launch) on each ray"
                if launch == "seed"
                else "k^2 = K^2 + Q at launch (the field equation's dispersion relation)"
            ),
            "method": problem.label,
            "accuracy": acc,
            "resample": int(problem.resampling),
            "resamples": march.resamples,
            "rtol": integ.rtol,
            "atol": integ.atol,
        },
    )
