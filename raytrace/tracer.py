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
  are carried at their labels among the new ones (``_SelfConsistent.resample``, ``_Group``);
* the dark-edge peel: when the march stalls or its solve fails, the dim edge rays stop
  ("dark" if launched below DARK_FRACTION of the launch peak, else "node") and the rest
  run the stretch again; each retry that fails again cuts at the next of
  DARK_EDGE_FRACTIONS (:func:`_dark_edges`).
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from collections.abc import Callable

import numdifftools as nd
import numpy as np
import scipy.sparse as sp
import xarray as xr
from findiff import Diff
from scipy.integrate import solve_ivp
from scipy.interpolate import make_interp_spline
from scipy.ndimage import median_filter

from raytrace.dynamics import KleinGordon, _Dynamics
from raytrace.wave_potential import (
    DEFAULT_ACCURACY,
    FORBIDDEN_MARGIN,
    MIN_RAYS,
    Ensemble,
    FieldPotential,
)
from wavetraj import ray_dataset
from wavetraj.resources import check_memory
from wavetraj.schema import RAY_VARIABLES, validate_field

log = logging.getLogger(__name__)

MODES = ("self-consistent", "none")
LAUNCHES = ("dispersion", "seed")
#: Default local error tolerances. Measured (Gaussian, λ0/w0 = 1e-4, 3 z_R, 128–1000
#: self-consistent rays): 1e-7 leaves the integration error at ~1e-8 w0, far below the
#: ray-count error it is used to measure, at 1/10 the cost of 1e-9 (Radau's Newton and
#: Jacobian work grows fast with the tolerance).
RTOL = 1e-7
ATOL = 1e-7
#: Default launch for :func:`launch_points`: rays across ±3 w0 (R0 = e^-9 at the edge of a
#: Gaussian). 128 rays put the self-consistent Gaussian within 1e-7 w0 of seed eq. 11.
DEFAULT_RAYS = 128
DEFAULT_SPAN = 3.0
#: Output planes when neither ``n_steps`` nor ``z_out`` is given.
DEFAULT_STEPS = 201
#: Margins that are not applicable are reported as this (finite: the event root finder
#: must never see inf).
FAR = 1e30


@dataclasses.dataclass(frozen=True)
class Integrator:
    """Settings of the z-march.

    Parameters
    ----------
    rtol, atol : local error tolerances of SciPy's ``solve_ivp`` (atol in units of w0 and
        1/w0). The defaults hold the integration error near 1e-8 w0 over a few Rayleigh
        lengths, so the ray-count discretisation dominates the measured error.
    method : "auto" (Radau for the coupled self-consistent ensemble, DOP853 for
        independent rays) or any ``solve_ivp`` method name.
    max_rhs : budget of right-hand-side evaluations of the whole march. Every
        :data:`PROGRESS_CHECK` evaluations the march projects, from the z it has reached,
        how many it needs to finish; when that exceeds the budget (a stalled integrator:
        steps collapsing, Newton failures) it ends at once, its rays stop with status
        "max_steps" and ``attrs["march_notes"]`` says why. The default is ~40× the
        evaluations the built-in scenarios need (at most ~5000, measured).
    """

    rtol: float = RTOL
    atol: float = ATOL
    method: str = "auto"
    max_rhs: int = 200_000

    def __post_init__(self):
        for name in ("rtol", "atol"):
            value = getattr(self, name)
            if not (np.isfinite(value) and 0 < value < 1):
                raise ValueError(f"Integrator.{name} must be in (0, 1); got {value!r}")
        methods = ("auto", "Radau", "BDF", "LSODA", "DOP853", "RK45", "RK23")
        if self.method not in methods:
            raise ValueError(f"Integrator.method must be one of {methods}; got {self.method!r}")
        if not (isinstance(self.max_rhs, int) and self.max_rhs > 0):
            raise ValueError(f"Integrator.max_rhs must be a positive int; got {self.max_rhs!r}")


#: (ray, plane) float arrays a trace holds at its peak: measured 15 (peak RSS growth, 2000
#: geometric rays × 2000 planes); 24 leaves room for xarray's copies when it is saved.
TRACE_ARRAYS = 24
#: Right-hand-side evaluations between the march's projections of what it needs to
#: finish (see :class:`Integrator`): a stalled march ends after about this many.
PROGRESS_CHECK = 2000
#: Evaluations a march may still spend after its projection failed, for the integrator to
#: finish the step it is in (so the planes already passed are kept).
BUDGET_GRACE = 500


class _Budget(Exception):
    pass


class _Progress:
    """Counts right-hand-side evaluations over a march and projects, from the z reached,
    whether the rest fits in ``Integrator.max_rhs``."""

    def __init__(self, max_rhs: int):
        self.max_rhs, self.calls, self.exhausted, self.notes = max_rhs, 0, None, []
        self.reached, self.last = float("nan"), None  # set by :meth:`start`

    def start(self, z: float, z_end: float) -> None:
        self.z_start, self.z_end, self.reached, self.calls_start = z, z_end, z, self.calls
        self.exhausted = self.last = None

    def count(self) -> None:
        self.calls += 1
        if self.exhausted is not None:
            if self.calls > self.exhausted + BUDGET_GRACE:
                raise _Budget
            return
        if self.calls >= self.max_rhs:
            self._stop(f"the budget Integrator.max_rhs = {self.max_rhs} evaluations is spent")
        elif (self.calls - self.calls_start) % PROGRESS_CHECK == 0:
            used = self.calls - self.calls_start
            done = self.reached - self.z_start
            need = np.inf if done <= 0 else used * (self.z_end - self.reached) / done
            if self.calls + need > self.max_rhs:
                self._stop(
                    f"after {used} evaluations the march had advanced from z = "
                    f"{self.z_start:.6g} to {self.reached:.6g} of {self.z_end:.6g}; "
                    f"finishing would take ~{need:.3g} more, beyond Integrator.max_rhs = "
                    f"{self.max_rhs}"
                )

    def _stop(self, why: str) -> None:
        self.exhausted = self.calls
        # logged by the march when it gives up (a stalled ensemble may go on without
        # its dark edge rays instead: _dark_edges)
        self.notes.append(
            f"march stopped at z ≈ {self.reached:.6g}: {why}. The integrator's steps "
            "collapsed — for the self-consistent ensemble usually a launch it cannot resolve "
            "(rays too close for λ0, or the launch cut off where the beam is bright); "
            "launch fewer or wider-spread rays, or raise Integrator.max_rhs"
        )


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


class _Problem:
    """Right-hand side, stop margins and diagnostics of one mode, on the active rays.

    Every problem is built the same way, ``cls(dyn, x0, kx0, ln_R0, z0, launch=...,
    accuracy=..., field=..., ln_R0_x=..., resample=...)`` (``ln_R0_x``: (∂x ln R0, ∂x² ln R0)
    at x0 from a callable launch profile, or None; ``resample``: whether a coupled front may
    be re-sampled, ignored by independent rays), and sets the attributes declared here: ``C`` the
    constant k² − K² − Q of each ray (from the launch convention) and ``kz0`` the launch
    kz."""

    label: str
    coupled = False
    C: np.ndarray
    kz0: np.ndarray
    resampling: bool

    def __init__(
        self,
        dyn: _Dynamics,
        x0,
        kx0,
        ln_R0,
        z0,
        *,
        launch,
        accuracy,
        field,
        ln_R0_x=None,
        resample=False,
    ):
        self.dyn, self.z0 = dyn, z0
        self.x0, self.kx0, self.ln_R0 = x0, kx0, ln_R0
        self.resampling = bool(resample) and self.coupled

    # Q, ∂xQ and ln kz at the active rays; subclasses fill in Q.
    def potential(self, x, z, kx, K2, idx, need_force=True, frozen=None):  # pragma: no cover
        raise NotImplementedError

    def quadrature_rates(self, z, xk, idx):
        """(dt/dz, dσ/dz) = (rate/kz, 1/kz) at the state xk = (x, kx): no force needed."""
        n = idx.size
        x, kx = xk[:n], xk[n:]
        zz = np.full(n, z)
        K2 = self.dyn.K2(x, zz)
        rate = np.broadcast_to(self.dyn.time_rate(x, zz), x.shape)
        _, _, kz = self.potential(x, z, kx, K2, idx, need_force=False)
        return np.concatenate([rate / kz, 1.0 / kz])

    def rhs(self, z, y, idx, frozen=None):
        """dy/dz for y = (x, kx, t, σ) of the rays ``idx``; y may also be a batch of
        states as columns, shape (4n, B) (the Jacobian's perturbed states, with the
        ensemble's kz feedback ``frozen``)."""
        n = idx.size
        x, kx = y[:n], y[n : 2 * n]
        flat, zz = x.ravel(), np.full(x.size, z)
        K2 = self.dyn.K2(flat, zz).reshape(x.shape)
        gx = self.dyn.grad_K2(flat, zz)[0].reshape(x.shape)
        rate = np.broadcast_to(self.dyn.time_rate(flat, zz), flat.shape).reshape(x.shape)
        _, Qx, kz = self.potential(x, z, kx, K2, idx, frozen=frozen)
        return np.concatenate([kx / kz, 0.5 * (gx + Qx) / kz, rate / kz, 1.0 / kz])

    def margins(self, z, y, idx) -> dict[str, np.ndarray]:
        n = idx.size
        x, kx = y[:n], y[n : 2 * n]
        K2 = self.dyn.K2(x, np.full(n, z))
        Q, _, _ = self.potential(x, z, kx, K2, idx, need_force=False)
        with np.errstate(invalid="ignore", divide="ignore"):
            forbidden = (K2 + Q + self.C[idx] - kx**2) / np.abs(K2) - FORBIDDEN_MARGIN
        return {"forbidden": np.nan_to_num(forbidden, nan=-1.0)}

    def observe(self, z, y, idx):
        """(kz, R, Q) at the active rays, for the output planes."""
        n = idx.size
        x, kx = y[:n], y[n : 2 * n]
        K2 = self.dyn.K2(x, np.full(n, z))
        Q, _, kz = self.potential(x, z, kx, K2, idx, need_force=False)
        return kz, self.amplitude(x, z, kz, idx), Q

    def amplitude(self, x, z, kz, idx):
        """R from flux conservation R²·kz·(tube width) = const, 2nd-order tube widths
        (one-sided for 2 rays). One ray forms no tube: R is NaN (``trace`` warns)."""
        if idx.size < 2:
            return np.full(idx.size, np.nan)
        s = idx.astype(float)
        width = np.gradient(x, s)
        width0 = np.gradient(self.x0[idx], s)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = (self.kz0[idx] * width0) / (kz * width)
            R = np.exp(self.ln_R0[idx]) * np.sqrt(np.where(ratio > 0, ratio, np.nan))
        return R


class _GeometricOptics(_Problem):
    label = "none"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.C = np.zeros_like(self.x0)  # Q = 0: both launch conventions give |k| = K
        K2 = self.dyn.K2(self.x0, np.full(self.x0.size, self.z0))
        self.kz0 = np.sqrt(K2 + self.C - self.kx0**2)

    def potential(self, x, z, kx, K2, idx, need_force=True, frozen=None):
        zero = np.zeros_like(x)
        with np.errstate(invalid="ignore"):
            return zero, zero, np.sqrt(K2 + self.C[idx] - kx**2)


class _FromField(_Problem):
    label = "field"

    def __init__(
        self, dyn, x0, kx0, ln_R0, z0, *, launch, accuracy, field, ln_R0_x=None, resample=False
    ):
        super().__init__(dyn, x0, kx0, ln_R0, z0, launch=launch, accuracy=accuracy, field=field)
        self.field = field  # R comes from the field
        Q0, _ = field(x0, np.full(x0.size, z0))
        self.C = -Q0 if launch == "seed" else np.zeros_like(x0)
        with np.errstate(invalid="ignore"):
            self.kz0 = np.sqrt(dyn.K2(x0, np.full(x0.size, z0)) + Q0 + self.C - kx0**2)

    def potential(self, x, z, kx, K2, idx, need_force=True, frozen=None):
        Q, Qx = self.field(x, np.full(x.size, z))
        with np.errstate(invalid="ignore"):
            return Q, Qx, np.sqrt(K2 + Q + self.C[idx] - kx**2)

    def margins(self, z, y, idx):
        out = super().margins(z, y, idx)
        x = y[: idx.size]
        out["node"] = self.field.node_margin(x, z)
        out["domain"] = self.field.domain_margin(x)
        return out

    def amplitude(self, x, z, kz, idx):
        return self.field.amplitude(x, np.full(x.size, z))


class _SelfConsistent(_Problem):
    """One :class:`Ensemble` per contiguous group of rays: the launch ensemble, the
    sub-ensembles left when a ray stops (each side continues with its own edges), and the
    re-sampled fronts (:meth:`resample`).

    The ensembles' rays are *internal* rays, held in the arrays of ``self.rays`` (launch
    position, ln R, kx, K² and C where each started, and the profile's derivatives of
    ln R there, NaN when not known). The first block is the user's launch; each
    re-sampled front appends a block, launched where the front was re-sampled."""

    label = "self-consistent"
    coupled = True

    def __init__(
        self, dyn, x0, kx0, ln_R0, z0, *, launch, accuracy, field=None, ln_R0_x=None, resample=True
    ):
        super().__init__(
            dyn, x0, kx0, ln_R0, z0, launch=launch, accuracy=accuracy, field=field,
            resample=resample,
        )  # fmt: skip
        K2 = dyn.K2(x0, np.full(x0.size, z0))
        ens = Ensemble(x0, ln_R0, kx0, K2, launch=launch, accuracy=accuracy, ln_R0_x=ln_R0_x)
        self.C = ens.C
        self.accuracy = accuracy
        self.kz0 = np.exp(ens.m0)
        nan = np.full(x0.size, np.nan)
        d1, d2 = (nan, nan) if ln_R0_x is None else ln_R0_x
        self.rays = {"x0": x0, "ln_R0": ln_R0, "kx0": kx0, "K2": K2, "C": ens.C, "d1": d1, "d2": d2}
        self._ensembles = {(0, x0.size): ens}
        self._colourings = {}

    def group(self, idx, z, y) -> None:
        """Prepare the ensemble of rays ``idx`` (contiguous) restarting from state y at z."""
        key = (int(idx[0]), idx.size)
        if key in self._ensembles:
            return
        r = {name: v[idx] for name, v in self.rays.items()}
        known = np.all(np.isfinite(r["d1"])) and np.all(np.isfinite(r["d2"]))
        ens = Ensemble(
            r["x0"],
            r["ln_R0"],
            r["kx0"],
            r["K2"],
            launch="dispersion",
            accuracy=self.accuracy,
            C=r["C"],
            ln_R0_x=(r["d1"], r["d2"]) if known else None,
        )
        n = idx.size
        ens.calibrate(y[:n], y[n : 2 * n], self.dyn.K2(y[:n], np.full(n, z)))
        self._ensembles[key] = ens

    def resample(self, idx, z, y):
        """Re-sample the front of rays ``idx`` at state y at z: as many new internal rays,
        equally spaced between its edge rays, launched there with ln R and kx interpolated
        from the old rays by quintic splines in x (the new launch's derivatives of ln R
        are the spline's), C linearly (it is constant for the "dispersion" launch), t
        and σ by cubic splines. Returns (new indices, new state). Measured alternative:
        quintic Hermite interpolation through the ensemble's own stencil derivatives of
        ln R and kx carries their noise where the front is compressed (Q off by ±150 in
        the valley between two beams) and the march fails at 0.36 z_R, against 0.47 with
        the splines.

        Why: the ensemble's label stencils need the rays' positions to stay a smooth,
        roughly even function of their label. Where the flow compresses or widens the
        tubes unevenly — the valley between two beams that approach each other, fringes
        forming in a far field — the gaps come to differ by orders of magnitude between
        neighbouring stretches of rays, the force's stencils (∝ x_s⁻⁵) turn stiff and
        noisy, and the march stalls. Measured, two Gaussians e^{−(x∓3)²}e^{∓2ix} at
        λ0/w0 = 1e-4 (256 rays): without re-sampling the valley rays' gaps fall to 1 % of
        their launch value by 0.30 z_R (following the exact streamlines, which do the
        same) and the march stalls there; re-launched evenly every 0.05 z_R, the march
        goes on, each stretch within 1.5e-3 w0 of the exact streamlines started where it
        began. Equal spacing (rather than, e.g., following the flux) keeps the dark parts
        of a front resolved, where nodes form. The user's rays are carried at their
        fractional labels among the new ones (labels are material: a ray keeps its
        place in the flow), see ``_Group``.

        Its cost: each re-launch starts from the ensemble's own ln R, which carries the
        ensemble's discretisation error (measured, two Gaussians 3 w0 apart, 128 rays:
        2e-4 in the valley at 0.41 z_R) into the new launch's derivatives, and the edge
        force drifts (an edge-ray ∂xQ 11 off by the third re-launch, 0.84 z_R). There the
        edge rays end 7.8e-3 w0 from the exact streamlines after 5 re-launches against
        8.6e-4 without (a spread of 16 before re-sampling: 1.4e-3), while on the tilted
        beams a spread of 8 instead of 2 leaves 19 % of the core > 1e-2 w0 off. Open in
        issue 13."""
        n = idx.size
        x, kx, t, sig = np.split(y, 4)
        K2 = self.dyn.K2(x, np.full(n, z))
        ens = self._ens(idx)
        ell = ens.ln_R(x, ens.ln_kz(x, kx, K2))
        xn = np.linspace(x[0], x[-1], n)
        quintic = make_interp_spline(x, np.column_stack([ell, kx]), k=5)
        ell_n, kx_n = quintic(xn).T
        d1, d2 = quintic.derivative(1)(xn)[:, 0], quintic.derivative(2)(xn)[:, 0]
        C = self.rays["C"][idx]
        C_n = np.interp(xn, x, C) if np.ptp(C) > 0 else np.full(n, C[0])
        t_n, sig_n = make_interp_spline(x, np.column_stack([t, sig]), k=3)(xn).T
        block = {
            "x0": xn,
            "ln_R0": ell_n,
            "kx0": kx_n,
            "K2": self.dyn.K2(xn, np.full(n, z)),
            "C": C_n,
            "d1": d1,
            "d2": d2,
        }
        start = self.rays["x0"].size
        self.rays = {k: np.concatenate([v, block[k]]) for k, v in self.rays.items()}
        return np.arange(start, start + n), np.concatenate([xn, kx_n, t_n, sig_n])

    def _ens(self, idx) -> Ensemble:
        return self._ensembles[int(idx[0]), idx.size]

    def potential(self, x, z, kx, K2, idx, need_force=True, frozen=None):
        ens = self._ens(idx)
        xd = ens.derivatives(x)  # shared by kz, Q and the force
        m = ens.ln_kz(x, kx, K2, frozen=frozen, xd=xd)
        Q = ens.Q(x, m, xd)
        Qx = ens.Qx(x, m, xd) if need_force else None
        return Q, Qx, np.exp(m)

    def feedback(self, z, y, idx):
        """The filtered kz feedback at state y (what the Jacobian holds fixed)."""
        ens, n = self._ens(idx), idx.size
        x, kx = y[:n], y[n : 2 * n]
        return ens.feedback(x, kx, self.dyn.K2(x, np.full(n, z)))

    def margins(self, z, y, idx):
        n = idx.size
        x, kx = y[:n], y[n : 2 * n]
        K2 = self.dyn.K2(x, np.full(n, z))
        Q, _, _ = self.potential(x, z, kx, K2, idx, need_force=False)
        found = self._ens(idx).margins(x, kx, K2, Q, resample=self.resampling)
        return {k: np.nan_to_num(v, nan=-1.0) for k, v in found.items()}

    def amplitude(self, x, z, kz, idx):
        return np.exp(self._ens(idx).ln_R(x, np.log(kz)))

    def sparsity(self, idx) -> sp.csr_matrix:
        P = self._ens(idx).jacobian_sparsity()  # (x, kx) block pattern, 2n × 2n
        n = idx.size
        rows = sp.vstack([P, P[:n], P[:n]])  # t and σ rows depend like x's
        return sp.hstack([rows, sp.csr_matrix((4 * n, 2 * n))]).tocsr()

    def jacobian(self, z, y, idx) -> sp.csc_matrix:
        """∂(dy/dz)/∂y by central differences on the banded pattern of :meth:`sparsity`,
        all columns of one colour perturbed together and all colours evaluated in one
        batched right-hand side (columns j, j' share a colour when they share no row).

        Why: SciPy's generic sparse num_jac took 54 % of a 1000-ray march (77 Jacobians
        in 98 Radau steps, each ~44 separate right-hand sides and an adaptive step
        search); one batched evaluation of the ~2(2b+1) colours (b the pattern's
        half-bandwidth) costs a few single ones (measured in tests/benchmarks)."""
        rows, cols, colour, n_colours = self._colouring(idx)
        n2 = 2 * idx.size  # t and σ never enter the right-hand side: zero columns
        frozen = self.feedback(z, y, idx)
        n = idx.size
        x = y[:n]
        gap = np.minimum(np.abs(np.gradient(x)), np.abs(np.gradient(self.rays["x0"][idx])))
        # x: the force varies on the scale of the ray spacing (x_s^-5 terms), so the step
        # is a fraction of the local gap; kx enters through kx/kz (nearly linear)
        step = JAC_STEP * np.concatenate([gap, np.maximum(np.abs(y[n:n2]), 1.0)])
        Y = np.repeat(y[:, None], 2 * n_colours, axis=1)
        Y[np.arange(n2), colour] += step
        Y[np.arange(n2), n_colours + colour] -= step
        F = self.rhs(z, Y, idx, frozen=frozen)
        values = (F[rows, colour[cols]] - F[rows, n_colours + colour[cols]]) / (2 * step[cols])
        m = y.size
        return sp.csc_matrix((values, (rows, cols)), shape=(m, m))

    def _colouring(self, idx):
        key = (int(idx[0]), idx.size)
        if key not in self._colourings:
            pattern = self.sparsity(idx).tocoo()
            n = idx.size
            keep = pattern.col < 2 * n
            rows, cols = pattern.row[keep], pattern.col[keep]
            block = cols % n  # the ray a column belongs to (x or kx)
            reach = int(np.max(np.abs(rows % n - block)))  # half-bandwidth b
            period = 2 * reach + 1  # columns ≥ 2b + 1 apart share no row
            colour = np.arange(2 * n) % period + (np.arange(2 * n) >= n) * period
            self._colourings[key] = (rows, cols, colour, 2 * period)
        return self._colourings[key]


#: Rays launched below this fraction of the launch peak that a stalled march stops
#: (:func:`_dark_edges`) have status "dark"; brighter ones "node". Issue 13 asks every
#: ray with R0 >= 1e-6 of the peak to end "ok" or with a physical stop.
DARK_FRACTION = 1e-6
#: When a self-consistent march stalls or its solve fails, it stops its edge rays whose R
#: is below the first of these fractions of the ensemble's peak and runs the rest again;
#: each retry of the same stretch that fails again takes the next, larger fraction. So a
#: failure stops only as much of the dim edge as it must (a 32-ray Gaussian at
#: λ0/w0 = 1 fails at z = 0 and goes on once its 4 rays below 1e-6 stop), and a dim
#: fringed edge can still be cut back to 1e-3 of the peak, where its tubes hold ≲ 1e-6 of
#: the flux. Measured: a re-sampled front's tail edge, launched at 1e-7, had brightened to
#: 2.5e-6 by its stall (two tilted Gaussians, 0.48 z_R), and the asymmetric launch's tail
#: over ±3 w0 stalls at 0.46 z_R on fringes with R ~ 1e-5 once its dim tail is resolved.
DARK_EDGE_FRACTIONS = (1e-6, 1e-5, 1e-4, 1e-3)

#: The problem of each mode of ``trace``.
PROBLEMS: dict[str, type[_Problem]] = {
    "none": _GeometricOptics,
    "field": _FromField,
    "self-consistent": _SelfConsistent,
}

_NUM_JAC = False

#: Relative finite-difference step of the ensemble's Jacobian: central differences, so
#: ∛ε balances truncation (h²) and round-off (ε/h). Why central: Radau's Newton iteration
#: contracts by ~|hλ|·(relative Jacobian error) on the stiff label modes, and |hλ| grows
#: as the ray gap⁻²: forward differences (√ε, 1e-5 of a row's largest entry) made it
#: fail and refactorise at fine spacing (8000 rays over ±3 w0: 788 LUs, 28.6 s); central
#: ones (8.5e-9) take 42 LUs, 3.9 s — twice the right-hand sides per Jacobian.
JAC_STEP = float(np.cbrt(np.finfo(float).eps))


def launch_points(n: int = DEFAULT_RAYS, span: float = DEFAULT_SPAN) -> np.ndarray:
    """``n`` equally spaced launch positions on [−span, span] (units of w0)."""
    if not (isinstance(n, (int, np.integer)) and n >= 1):
        raise ValueError(f"n must be a positive number of rays; got {n!r}")
    if not (np.isfinite(span) and span > 0):
        raise ValueError(f"span must be a positive half-width in w0; got {span!r}")
    return np.linspace(-span, span, int(n))


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


@dataclasses.dataclass
class _March:
    """What a march produced: per-ray arrays on the output planes (``out``: x, kx, t,
    sigma, kz, R, Q, each (ray, plane), NaN where a ray had stopped), each ray's status
    and stop place (x, z), and notes for ``attrs["march_notes"]``."""

    out: dict[str, np.ndarray]
    status: np.ndarray
    stop: np.ndarray
    notes: list[str]
    resamples: int = 0


@dataclasses.dataclass
class _Group:
    """Rays that march together: the internal rays ``ii`` (indices into the problem's
    rays) with state y = (x, kx, t, σ) at z, and the user's rays ``users`` they carry, at
    fractional labels ``lam`` among them (0 … m−1 in the group's order). Until a front is
    re-sampled the user's rays are the internal rays themselves (``lam`` None)."""

    ii: np.ndarray
    z: float
    y: np.ndarray
    users: np.ndarray
    lam: np.ndarray | None = None
    #: how many times this stretch (from z) has been run again after a peel: the index
    #: into DARK_EDGE_FRACTIONS of the next peel's least fraction
    retries: int = 0

    def at_users(self, values: np.ndarray) -> np.ndarray:
        """Per-user rows of per-internal-ray quantities (``values`` (m, q)): the same rows
        while the user's rays are the internal ones, else cubic interpolation in the
        label (labels are material, and the ensemble is smooth in them)."""
        if self.lam is None:
            return values
        m = self.ii.size
        return make_interp_spline(np.arange(m), values, k=min(3, m - 1))(self.lam)

    def x_users(self, y: np.ndarray) -> np.ndarray:
        """The user's rays' positions in the internal state y."""
        return self.at_users(y[: self.ii.size, None])[:, 0]

    def inside(self, keep: np.ndarray) -> np.ndarray:
        """Which user rays lie within the internal rays selected by ``keep`` (a coupled
        ensemble keeps one contiguous stretch, so a user ray between a kept and a
        dropped internal ray is outside)."""
        if self.lam is None:
            return keep.copy()
        local = np.flatnonzero(keep)
        return (self.lam >= local[0]) & (self.lam <= local[-1])

    def sub(self, keep: np.ndarray, z: float, y: np.ndarray) -> _Group:
        """The group of the internal rays ``keep`` with state y (all rays) at z."""
        ii, ysub = self.ii[keep], _rays_of(y, keep)
        inside = self.inside(keep)
        lam = None if self.lam is None else self.lam[inside] - np.flatnonzero(keep)[0]
        return _Group(ii, z, ysub, self.users[inside], lam)

    def retry(self, keep: np.ndarray, retries: int) -> _Group:
        """The group of the internal rays ``keep``, to run the same stretch again."""
        return dataclasses.replace(self.sub(keep, self.z, self.y), retries=retries)


def _march(problem: _Problem, x0, kx0, planes, integ: Integrator) -> _March:
    """Integrate groups of rays; on a stop event, stop the ray that met it and continue
    with the rest (independent rays), or with each side as its own ensemble (coupled);
    on a "resample" event (coupled), go on from a re-sampled front."""
    n, n_out = x0.size, planes.size
    names = ("x", "kx", "t", "sigma", "kz", "R", "Q")
    out = {k: np.full((n, n_out), np.nan) for k in names}
    status = np.array(["ok"] * n, dtype=object)
    stop = np.full((n, 2), np.nan)  # (x, z) where a ray stopped
    method = integ.method
    if method == "auto":
        method = "Radau" if problem.coupled else "DOP853"
    progress = _Progress(integ.max_rhs)
    resampled = []  # z of each re-sampled front
    launched_dark = problem.ln_R0 < np.log(DARK_FRACTION) + np.max(problem.ln_R0)

    def record(j, zz, yy, g: _Group):
        kz, R, Q = problem.observe(zz, yy, g.ii)
        with np.errstate(invalid="ignore", divide="ignore"):
            rows = np.column_stack([*np.split(yy, 4), kz, np.log(R), Q])
        values = g.at_users(rows)
        for i, k in enumerate(("x", "kx", "t", "sigma", "kz")):
            out[k][g.users, j] = values[:, i]
        out["R"][g.users, j] = np.exp(values[:, 5])
        out["Q"][g.users, j] = values[:, 6]

    def stop_users(g: _Group, which, reason, z_at, y_at=None):
        """Stop the user rays ``which`` (a mask over g.users) at z_at, at their place in
        the internal state y_at (NaN x when not known)."""
        if not which.any():
            return
        status[g.users[which]] = reason
        x_at = np.full(g.users.size, np.nan) if y_at is None else g.x_users(y_at)
        stop[g.users[which]] = np.column_stack([x_at[which], np.full(which.sum(), z_at)])

    def peel(g: _Group, z_at, y_at, why, stalled=False) -> bool:
        """Stop the group's dark edge rays (:func:`_dark_edges`) and queue the rest to run
        again from the group's start; False when there are none to stop."""
        found = _dark_edges(problem, z_at, y_at, g)
        if found is None:
            return False
        dark, fraction, level = found
        gone = ~g.inside(~dark)
        note = (
            f"at z ≈ {z_at:.6g} {why}; its {int(dark.sum())} edge rays with R < "
            f"{fraction:g} of the peak stop, and with them {int(gone.sum())} of the traced "
            f"rays (status 'dark' if launched below {DARK_FRACTION:g} of the launch peak, "
            f"else 'node'); the other {int((~gone).sum())} start again from z = {g.z:.6g}"
        )
        log.info(note)  # an expected outcome, in the statuses and march_notes
        if stalled:
            progress.notes[-1:] = [note]  # replaces the stall note: the march goes on
        else:
            progress.notes.append(note)
        dim = launched_dark[g.users]
        stop_users(g, gone & dim, "dark", z_at, y_at)
        stop_users(g, gone & ~dim, "node", z_at, y_at)
        queue.append(g.retry(~dark, level + 1))
        return True

    def fail(g: _Group, reason, z_at, message=None):
        if message is not None:
            log.warning(message)
            if message not in progress.notes:  # the rays' statuses say where; this, why
                progress.notes.append(message)
        stop_users(g, np.ones(g.users.size, bool), reason, z_at)

    y0 = np.concatenate([x0, kx0, np.zeros(n), np.zeros(n)])
    first = _Group(np.arange(n), planes[0], y0, np.arange(n))
    record(0, planes[0], y0, first)
    queue = [first]
    while queue:
        g = queue.pop()
        ii, z, y = g.ii, g.z, g.y
        m = ii.size
        if problem.coupled:
            problem.group(ii, z, y)
        hit = _first_stop(problem.margins(z, y, ii))
        if hit is None:
            j_next = int(np.searchsorted(planes, z, side="right"))
            if j_next >= n_out:
                continue
            try:
                sol = _solve(problem, ii, z, y, planes[j_next:], method, integ, progress)
            except _Budget:  # no accepted step since the budget ran out
                if progress.last is not None:
                    z_at, y_at = progress.last
                    if peel(g, z_at, y_at, "the ensemble's steps collapsed", stalled=True):
                        continue
                fail(g, "max_steps", progress.reached, progress.notes[-1])
                continue
            except RuntimeError as exc:  # e.g. SuperLU: "Factor is exactly singular"
                if not peel(g, z, y, f"the solve failed ({exc})"):
                    fail(
                        g,
                        "nonfinite",
                        z,
                        f"ray march from z={z:.6g} failed at z ≈ {progress.reached:.6g}: {exc}",
                    )
                continue
            for col, zz in enumerate(sol.t):
                if not np.all(np.isfinite(sol.y[:, col])):
                    break
                record(j_next + col, zz, sol.y[:, col], g)
            if sol.status == 0:
                continue
            if progress.exhausted is not None:  # the budget event ended this solve
                if sol.t_events[0].size:
                    z_at, y_at = float(sol.t_events[0][0]), sol.y_events[0][0]
                    if peel(g, z_at, y_at, "the ensemble's steps collapsed", stalled=True):
                        continue
                z_at = sol.t_events[0][0] if sol.t_events[0].size else progress.reached
                fail(g, "max_steps", z_at, progress.notes[-1])
                continue
            if sol.status == -1 or not sol.t_events[0].size:
                ts, ys = np.asarray(sol.t), np.asarray(sol.y)
                z_at, y_at = (float(ts[-1]), ys[:, -1]) if ts.size else (z, y)
                if not peel(g, z_at, y_at, f"the solve failed ({sol.message})"):
                    fail(g, "nonfinite", z, f"ray march failed after z={z:.6g}: {sol.message}")
                continue
            z, y = float(sol.t_events[0][0]), sol.y_events[0][0]
            hit = _first_stop(problem.margins(z, y, ii), force=True)
        reason, w = hit
        if reason == "resample":
            if not np.all(np.isfinite(y[: 2 * m])) or (resampled and resampled[-1] == z):
                fail(g, "nonfinite", z, f"the front could not be re-sampled at z={z:.6g}")
                continue
            ii_new, y_new = problem.resample(ii, z, y)
            # the user rays' labels among the new rays, from where they are now
            lam = np.interp(g.x_users(y), y_new[:m], np.arange(m, dtype=float))
            resampled.append(z)
            queue.append(_Group(ii_new, z, y_new, g.users, lam))
            continue
        local = np.arange(m)
        if g.lam is None:
            hitting = local == w
        else:  # the user rays between the stopped ray's neighbours stop with it
            hitting = np.abs(g.lam - w) < 1
        stop_users(g, hitting, reason, z, y)
        parts = [local < w, local > w] if problem.coupled else [local != w]
        for part in parts:
            if not part.any():
                continue
            sub = g.sub(part, z, y)
            if problem.coupled and part.sum() < MIN_RAYS:  # too few rays left to form R''
                stop_users(sub, np.ones(sub.users.size, bool), "ensemble", z, sub.y)
                continue
            queue.append(sub)
    if resampled:
        where = ", ".join(f"{v:.6g}" for v in resampled[:8]) + (" …" if len(resampled) > 8 else "")
        progress.notes.append(
            f"the front was re-sampled {len(resampled)} time{'s' * (len(resampled) > 1)} "
            f"(z = {where}): its rays were "
            "re-launched evenly between its edges, carrying the traced rays at their labels"
        )
    log.info("march: %d right-hand-side evaluations for %d rays", progress.calls, n)
    return _March(out, status, stop, progress.notes, len(resampled))


def _rays_of(y, keep) -> np.ndarray:
    """The state (x, kx, t, σ) of the rays selected by the mask ``keep``."""
    return np.concatenate([p[keep] for p in np.split(y, 4)])


def _dark_edges(problem: _Problem, z, y, g: _Group):
    """When a self-consistent march stalls or its solve fails: (mask, fraction, level) of
    the internal rays at the ensemble's edges whose R is below ``fraction`` of its peak,
    the least of DARK_EDGE_FRACTIONS from index g.retries on that finds any (``level``
    its index), or None (none, or too few rays would be left). The traced rays among them
    stop "dark" when they were launched below DARK_FRACTION of the launch peak, else
    "node" (the front there could not be resolved: dim fringes with near-nodes).

    Why: a launch cut off far out in a tail (the bell exp(−x⁴) over ±2.5 w0 reaches
    R0 ~ 1e-17) carries rays whose tubes hold almost no flux. The exact field there is
    soon dominated by light diffracted from the bright part, with nodes (field-driven
    rays stop there from 0.024 z_R); the ensemble's edge, which only sees its own rays,
    develops a label-scale oscillation instead (measured: kx alternating ray to ray at the
    ±2.5 w0 edge from 0.011 z_R) and Radau's steps collapse. Those rays are stopped where
    the march stalled, and the bright rays run the same stretch again as their own
    ensemble (calibrated where that stretch began, as a launch without the dark rays would
    be; going on from the stall instead measured the same accuracy)."""
    if not problem.coupled:
        return None
    m = g.ii.size
    if not np.all(np.isfinite(y[: 2 * m])):
        return None
    _, R, _ = problem.observe(z, y, g.ii)
    # a 5-ray running median: a stalled edge oscillates from ray to ray (measured: an edge
    # ray at 2.3e-6 of the peak next to one at 2.9e-7), which must not hide a dark edge
    R = median_filter(np.where(np.isfinite(R), R, 0.0), size=5, mode="mirror")
    for level in range(g.retries, len(DARK_EDGE_FRACTIONS)):
        fraction = DARK_EDGE_FRACTIONS[level]
        dim = ~(fraction * np.max(R) <= R)
        if dim.all():
            return None
        left, right = int(np.argmin(dim)), int(np.argmin(dim[::-1]))
        dark = np.zeros(m, bool)
        dark[:left] = True
        dark[m - right :] = True
        if (~dark).sum() < MIN_RAYS:
            return None
        if dark.any():
            return dark, fraction, level
    return None


def _first_stop(margins: dict[str, np.ndarray], force: bool = False):
    """(reason, local ray index) of the most violated stop condition, or None."""
    reason = min(margins, key=lambda k: np.min(margins[k]))
    w = int(np.argmin(margins[reason]))
    if force or margins[reason][w] < 0:
        return reason, w
    return None


def _solve(problem, ii, z, y, t_eval, method, integ, progress: _Progress):
    progress.start(z, float(t_eval[-1]))
    n = ii.size
    implicit = problem.coupled and method in ("Radau", "BDF") and not _NUM_JAC
    # t and σ are quadratures along each ray (nothing depends on them): for the implicit
    # ensemble they are left out of the Newton system — which halves it, and its LU cost
    # (measured: 5.7 ms against 15.5 ms per LU for 2000 rays) — and integrated afterwards
    # from the dense output (:func:`_quadratures`)
    size = 2 * n if implicit else 4 * n
    rest = np.zeros(4 * n - size)

    def full(yy):
        return np.concatenate([yy, rest]) if implicit else yy

    def fun(zz, yy):
        progress.count()
        return problem.rhs(zz, full(yy), ii)[:size]

    def event(zz, yy):  # evaluated after every accepted step (and in its root search)
        if progress.exhausted is not None:  # a sign change after the last accepted step
            return -1.0 if zz > progress.reached else 1.0  # ends the solve, keeping its planes
        progress.reached = max(progress.reached, float(zz))
        progress.last = (float(zz), full(yy))  # for a peel when the budget ends the solve
        m = problem.margins(zz, full(yy), ii)
        return float(min(np.min(np.minimum(v, FAR)) for v in m.values()))

    event.terminal, event.direction = True, -1
    kwargs = {}
    if implicit:

        def jac(zz, yy):
            progress.count()
            return problem.jacobian(zz, full(yy), ii)[:size, :size]

        kwargs["jac"] = jac
        kwargs["dense_output"] = True
    elif problem.coupled:
        kwargs["jac_sparsity"] = problem.sparsity(ii)
    with np.errstate(all="ignore"):
        sol = solve_ivp(
            fun,
            (z, t_eval[-1]),
            y[:size],
            method=method,
            t_eval=t_eval,
            events=event,
            rtol=integ.rtol,
            atol=integ.atol,
            **kwargs,
        )
        if implicit:
            _quadratures(problem, ii, z, y[2 * n :], sol, integ)
    return sol


def _quadratures(problem, ii, z0, ts0, sol, integ: Integrator) -> None:
    """Append t and σ (dt/dz = rate/kz, dσ/dz = 1/kz) to ``sol.y`` and ``sol.y_events``,
    integrated by DOP853 along the implicit solve's dense output to the same tolerances."""
    n = ii.size
    events = [float(v) for v in sol.t_events[0]] if sol.t_events else []
    ends = [float(v) for v in sol.t] + events
    stop = max(ends) if ends else z0

    def rate(zz, _):
        return problem.quadrature_rates(zz, sol.sol(zz), ii)

    if stop > z0 and sol.sol is not None:
        where = np.unique(np.asarray(ends))
        q = solve_ivp(
            rate, (z0, stop), ts0, method="DOP853", t_eval=where, rtol=integ.rtol, atol=integ.atol
        )
        at = {float(zz): q.y[:, i] for i, zz in enumerate(q.t)}
    else:
        at = {}
    nan = np.full(2 * n, np.nan)
    columns = [at.get(float(zz), nan) for zz in sol.t]
    sol.y = np.vstack([sol.y, np.column_stack(columns) if columns else np.empty((2 * n, 0))])
    if sol.t_events and sol.t_events[0].size:
        tail = np.array([at.get(float(zz), nan) for zz in sol.t_events[0]])
        sol.y_events[0] = np.hstack([sol.y_events[0], tail])


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
