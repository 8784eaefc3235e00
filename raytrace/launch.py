"""The launch: its points, and the launch profile's values and derivatives at them
(R0, φ0 and kx0 = φ0', ln R0's derivatives for the ensemble near nodes)."""

from __future__ import annotations

import logging
import warnings

import numdifftools as nd
import numpy as np
from findiff import Diff

from raytrace.wave_potential import MIN_RAYS

log = logging.getLogger("raytrace.tracer")  # one logger for the tracer's messages


def _launch_values(name: str, value, x0: np.ndarray) -> np.ndarray:
    """A launch profile given as a callable of x0 or as an array on x0 (real, one value per
    launch point or a constant)."""
    out = np.asarray(value(x0) if callable(value) else value)
    if np.iscomplexobj(out):
        if np.any(out.imag != 0):
            where = "the phase goes in phi0" if name == "R0" else "phi0 is the real phase φ0"
            raise TypeError(
                f"{name} must be real; got complex values (max |imag| = "
                f"{np.max(np.abs(out.imag)):.3g}): u = R e^(i φ), {where}"
            )
        out = out.real
    if not (np.issubdtype(out.dtype, np.number) or out.dtype == bool):
        raise TypeError(f"{name} must be numbers; got {out.dtype} values")
    if out.shape not in ((), x0.shape, (1,)):
        how = "returned" if callable(value) else "has"
        raise ValueError(
            f"{name} {how} shape {out.shape}; it must give one value per launch point, "
            f"shape {x0.shape} (or a single constant)"
        )
    out = np.broadcast_to(out.astype(float), x0.shape).copy()
    if not np.all(np.isfinite(out)):
        bad = x0[~np.isfinite(out)]
        raise ValueError(f"{name} is not finite at x0 = {bad[:3]}…: check the launch profile")
    return out


def _launch_kx(phi0, x0: np.ndarray) -> np.ndarray:
    """kx0 = dφ0/dx at the launch points: ``phi0.dx(x)`` if the callable carries its exact
    derivative (a phase with branch cuts, such as an arctan2, has a continuous derivative
    that differences across a cut would miss by 2π/h), else 4th-order differences."""
    if phi0 is None:
        return np.zeros_like(x0)
    if callable(getattr(phi0, "dx", None)):
        return _launch_values("phi0.dx", phi0.dx, x0)
    if callable(phi0):
        h = 1e-3 * max(np.min(np.diff(np.sort(x0))) if x0.size > 1 else 1.0, 1e-6)
        f = [_launch_values("phi0", phi0, x0 + s * h) for s in (-2, -1, 1, 2)]
        return (f[0] - 8 * f[1] + 8 * f[2] - f[3]) / (12 * h)
    phi = _launch_values("phi0", phi0, x0)
    if x0.size < 5:
        raise ValueError(f"phi0 as an array needs >= 5 launch points; got {x0.size}")
    return Diff(0, x0, acc=4)(phi)


#: Largest step [w0] of the launch profile's derivatives (:func:`_launch_log_derivatives`);
#: measured best of 0.03, 0.1, 0.3 on the cases there.
LAUNCH_BASE_STEP = 0.3


def _launch_log_derivatives(R0, x0: np.ndarray):
    """(∂x ln R0, ∂x² ln R0) at x0 from a callable profile, or None (an array, or a
    profile that is not positive and finite around every launch point).

    numdifftools' adaptive Richardson extrapolation picks the step per point, from
    LAUNCH_BASE_STEP down (steps that leave the profile's domain give NaN and are passed
    over): measured errors of ∂x² ln R0, 1e-11 on the Gaussian's −2 and 1e-10 on the
    bell's −12x² (8000 points over ±4 w0), 5e-9 on ln(x e^{−x²}) at x = 0.02. A fixed step
    trades truncation near a node against round-off on the smooth ones (h = 1e-2 of the
    ray gap: 4e-9 on the Gaussian at 128 rays, 2e-4 at 8000)."""
    if not callable(R0) or x0.size < 2:
        return None

    def ln_R0(x):
        with np.errstate(all="ignore"):
            return np.log(_launch_values("R0", R0, np.asarray(x, float)))

    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the NaN steps beyond a node
        d1 = nd.Derivative(ln_R0, n=1, step=nd.MaxStepGenerator(base_step=LAUNCH_BASE_STEP))(x0)
        d2 = nd.Derivative(ln_R0, n=2, step=nd.MaxStepGenerator(base_step=LAUNCH_BASE_STEP))(x0)
    if not (np.all(np.isfinite(d1)) and np.all(np.isfinite(d2))):
        return None
    return d1, d2


def _check_x0(x0, mode: str) -> np.ndarray:
    x0 = np.atleast_1d(np.asarray(x0, dtype=float))
    if x0.ndim != 1 or x0.size == 0 or not np.all(np.isfinite(x0)):
        raise ValueError(f"x0 must be a non-empty 1-D array of finite positions; got {x0!r}")
    if mode == "self-consistent":
        if x0.size < MIN_RAYS:
            raise ValueError(
                f"the self-consistent Wave Potential needs >= {MIN_RAYS} rays to form R''; "
                f"got {x0.size}: pass more launch points (e.g. np.linspace(-3, 3, 200))"
            )
        if np.any(np.diff(x0) <= 0):
            raise ValueError(
                "x0 must be strictly increasing for the self-consistent Wave Potential "
                "(neighbouring rays form the ray tubes): pass np.unique(x0)"
            )
    return x0


#: Default launch for :func:`launch_points`: rays across ±3 w0 (R0 = e^-9 at the edge of a
#: Gaussian). 128 rays put the self-consistent Gaussian within 1e-7 w0 of seed eq. 11.
DEFAULT_RAYS = 128


DEFAULT_SPAN = 3.0


def launch_points(n: int = DEFAULT_RAYS, span: float = DEFAULT_SPAN) -> np.ndarray:
    """``n`` equally spaced launch positions on [−span, span] (units of w0)."""
    if not (isinstance(n, (int, np.integer)) and n >= 1):
        raise ValueError(f"n must be a positive number of rays; got {n!r}")
    if not (np.isfinite(span) and span > 0):
        raise ValueError(f"span must be a positive half-width in w0; got {span!r}")
    return np.linspace(-span, span, int(n))
