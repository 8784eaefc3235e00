"""Setup: the objects a run needs, built once from a validated :class:`Scenario`.

:class:`Problem` bundles them — the launch (:class:`LaunchProfile`: R0, φ0 and u0 from the
amplitude and phase formulas or the shorthand profile), the medium (:class:`MediumSetup`:
K² for the field solvers and the ray dynamics with the same K²), the judging field
(:class:`Judge`: angular spectrum, paraxial split-step or full-wave finite differences)
and the field window. Nothing downstream branches on the scenario's strings again.

Units: lengths in w0, k = 2π/λ0 in 1/w0; z_end in w0 (the scenario gives it in z_R).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import numpy as np
import scipy.optimize
import xarray as xr

import raytrace as rt
import wavefield as wf
from compare import scenarios
from compare.expressions import Expression
from compare.scenarios import Scenario

#: Split-step length of the paraxial judge, in Rayleigh lengths (second order in dz:
#: measured error < 1e-6 of the peak at this step in the GRIN test).
PARAXIAL_DZ = 2e-3
#: Fewest z planes of an angular-spectrum or split-step judging field, and fewest per
#: Rayleigh length: the streamlines interpolate ∇φ in z between planes. Measured on the
#: bell to 3 z_R (1024 rays over ±2.5 w0): with 121 planes 12 % of the core streamlines
#: are > 1e-2 w0 from converged ones, with 301 the rays' median distance to them is
#: 1.0e-5 w0 and with 1201 9.6e-6.
MIN_FIELD_PLANES = 121
FIELD_PLANES_PER_ZR = 100
#: The angular-spectrum judge's window is widened by the sideways reach of plane waves
#: holding more than GRAZING_LEVEL of the launch spectrum's peak, at most
#: MAX_GRAZING_ANGLE from the axis, and by at most MAX_PAD w0 (see AngularJudge).
GRAZING_LEVEL = 1e-6
MAX_GRAZING_ANGLE = 89.0
MAX_PAD = 160.0
#: Lens edge: the focusing region ends with a tanh step this fraction of its length wide.
LENS_EDGE = 0.02
#: The launch's support is where |u0| ≥ SUPPORT_LEVEL of its peak; the window
#: (``run.window``·w(z)) is sized for a unit Gaussian, whose support half-width at that
#: level is √ln(1/SUPPORT_LEVEL) = 2.63 w0, and widened by how much more a launch spans.
SUPPORT_LEVEL = 1e-3
GAUSSIAN_SUPPORT = float(np.sqrt(np.log(1 / SUPPORT_LEVEL)))
#: The support is searched for this far [w0] beyond the launch interval (a slowly
#: decaying amplitude, such as an Airy beam's tail, is cut there).
SUPPORT_SEARCH = 10.0
SUPPORT_SAMPLES = 8001
#: Points across the support where the launch phase's slope is sampled (tilt, drift).
SLOPE_SAMPLES = 201
#: Fewest grid points of a marched or angular judging field per transverse period 2π/kx
#: of the launch phase's steepest slope kx = φ0'(x) (a tilted launch). The streamlines
#: take ∇φ by finite differences; measured on a Gaussian tilted by 1e-3 rad at
#: λ0/w0 = 1e-4 to 1 z_R (31 w0 sideways): 3.6 w0 off at 3.8 points per period, 0.09 w0
#: at 7.6, 3.2e-3 w0 at 15 (1e-4 relative to the drift); 39 points gave 2e-6 w0.
MIN_POINTS_PER_TILT = 16


@dataclasses.dataclass(frozen=True)
class _Phase:
    """A phase formula with its exact derivative ``dx`` (the tracer's launch kx0: a
    formula with a branch cut, such as arctan2, stays right across it)."""

    phi: Expression
    dx: Expression

    def __call__(self, x):
        return self.phi(x)


@dataclasses.dataclass(frozen=True)
class LaunchProfile:
    """The launch: ``amplitude`` u0(x) (signed: a node is a sign change), ``phase`` φ0(x)
    (None: flat), the launch points ``x0`` and k = 2π/λ0."""

    amplitude: Callable
    phase: Callable | None
    x0: np.ndarray
    wavenumber: float

    @classmethod
    def of(cls, sc: Scenario) -> LaunchProfile:
        amplitude = scenarios.formula(sc, "launch", "amplitude", sc.launch.amplitude_formula)
        phase = scenarios.formula(sc, "launch", "phase")
        if isinstance(phase, Expression):
            phase = _Phase(phase, phase.derivative("x"))
        return cls(amplitude, phase, sc.launch.points, sc.wavenumber)

    def R0(self, x) -> np.ndarray:
        """|u0|, the rays' launch amplitude."""
        return np.abs(np.asarray(self.amplitude(np.asarray(x, float)), float))

    def u0(self, x) -> np.ndarray:
        """The field's launch values u0·e^{iφ0} (real when the phase is flat)."""
        x = np.asarray(x, float)
        u = np.asarray(self.amplitude(x), float)
        return u if self.phase is None else u * np.exp(1j * np.asarray(self.phase(x), float))

    def slope(self, x) -> np.ndarray:
        """kx = φ0'(x) [1/w0]: exact for a formula, by central differences otherwise."""
        x = np.asarray(x, float)
        if self.phase is None:
            return np.zeros_like(x)
        if isinstance(self.phase, _Phase):
            return self.phase.dx(x)
        h = 1e-6
        return (np.asarray(self.phase(x + h)) - np.asarray(self.phase(x - h))) / (2 * h)

    @functools.cached_property
    def support(self) -> tuple[float, float]:
        """Where |u0| ≥ SUPPORT_LEVEL of its peak: the outermost crossings, refined by
        root finding (so a shorthand's support is its analytic one to rounding)."""
        lo, hi = self.x0[0] - SUPPORT_SEARCH, self.x0[-1] + SUPPORT_SEARCH
        x = np.linspace(lo, hi, SUPPORT_SAMPLES)
        R = self.R0(x)
        level = SUPPORT_LEVEL * np.nanmax(R)
        strong = np.flatnonzero(R >= level)

        def edge(i, j):
            if i < 0 or j >= x.size:
                return x[max(min(i, j), 0)] if i < 0 else x[-1]
            return scipy.optimize.brentq(lambda t: self.R0(t) - level, x[i], x[j])

        return edge(strong[0] - 1, strong[0]), edge(strong[-1], strong[-1] + 1)


@dataclasses.dataclass(frozen=True)
class MediumSetup:
    """K² for the field solvers (a number in a uniform medium, else a callable of (x, z))
    and the ray dynamics with the same K² (Schrödinger: V = E − K²/2 with E = k²/2;
    Klein–Gordon: V = E − √(m0² + K²) with E = √(k² + m0²), c = ħ = 1)."""

    K2: float | Callable
    dynamics: object

    @property
    def homogeneous(self) -> bool:
        return not callable(self.K2)

    @property
    def field_wavenumber(self) -> float:
        """K of a uniform medium (the angular spectrum's k0)."""
        if not self.homogeneous:
            raise ValueError("the medium is not uniform: it has no single wavenumber")
        return float(np.sqrt(self.K2))

    @classmethod
    def of(cls, sc: Scenario) -> MediumSetup:
        k = sc.wavenumber
        m = sc.medium
        model = sc.dynamics.model
        if model is not None:  # its own K² drives the rays and the judging field
            return cls(model.K2, model)
        if m.kind == "custom":
            K2 = scenarios.formula(sc, "medium", "K2")
            if isinstance(K2, Expression) and K2.constant:
                uniform = float(K2(0.0, 0.0))
                return cls(uniform, _dynamics(sc, _uniform(uniform)))
            grad = K2.gradient() if isinstance(K2, Expression) else None
            return cls(K2, _dynamics(sc, K2, grad))
        if m.kind == "free":
            return cls(k**2, _dynamics(sc, None))
        S, dS = _focusing(m)
        a = m.a

        def K2(x, z):
            return k**2 * (1 - S(z) * np.asarray(x) ** 2 / a**2)

        if sc.dynamics.kind == "klein-gordon":
            return cls(K2, _dynamics(sc, K2))
        E = k**2 / 2

        def V(x, z):  # E − K²/2 without the cancellation near the axis
            return E * S(z) * np.asarray(x) ** 2 / a**2

        def grad_V(x, z):
            return 2 * E * S(z) * x / a**2, E * dS(z) * x**2 / a**2

        return cls(K2, rt.Schrodinger(V, E=E, grad_V=grad_V))


def _uniform(K2: float):
    return lambda x, z: np.full(np.broadcast(np.asarray(x), np.asarray(z)).shape, K2)


def _focusing(m: scenarios.Medium):
    """S(z) and S'(z): 1 inside the focusing region, 0 outside (a tanh edge for the lens)."""
    if m.kind == "grin":
        return (lambda z: np.ones_like(np.asarray(z, float))), (
            lambda z: np.zeros_like(np.asarray(z, float))
        )
    width = LENS_EDGE * m.length

    def S(z):
        return 0.5 * (1 - np.tanh((np.asarray(z, float) - m.length) / width))

    def dS(z):
        h = 1e-6 * max(m.length, 1.0)
        return (S(z + h) - S(z - h)) / (2 * h)

    return S, dS


def _dynamics(sc: Scenario, K2, grad=None):
    """The ray side of K² (None: free space); ``grad`` = the Expressions (∂K²/∂x, ∂K²/∂z)
    if known exactly (else the dynamics takes finite differences of V)."""
    k = sc.wavenumber
    if sc.dynamics.kind == "klein-gordon":
        m0 = sc.dynamics.rest_mass
        E = float(np.sqrt(k**2 + m0**2))
        if K2 is None:
            return rt.KleinGordon(None, E=E, rest_mass=m0)

        def V(x, z):
            return E - np.sqrt(m0**2 + np.asarray(K2(x, z)))

        def grad_V(x, z):
            root = 2 * np.sqrt(m0**2 + np.asarray(K2(x, z)))
            return -grad[0](x, z) / root, -grad[1](x, z) / root

        return rt.KleinGordon(V, E=E, rest_mass=m0, grad_V=None if grad is None else grad_V)
    E = k**2 / 2
    if K2 is None:
        return rt.Schrodinger(None, E=E)

    def V(x, z):
        return E - np.asarray(K2(x, z)) / 2

    def grad_V(x, z):
        return -np.asarray(grad[0](x, z)) / 2, -np.asarray(grad[1](x, z)) / 2

    return rt.Schrodinger(V, E=E, grad_V=None if grad is None else grad_V)


@dataclasses.dataclass(frozen=True)
class Judge:
    """The independent wave solution that judges the rays."""

    name: str = "base"

    def field(self, p: Problem) -> xr.Dataset:  # pragma: no cover - overridden
        raise NotImplementedError

    def planes(self, p: Problem, field: xr.Dataset) -> np.ndarray:
        """The ``run.steps`` output planes, a subset of the judging field's planes."""
        zf = field["z"].values
        return zf[:: (zf.size - 1) // (p.sc.run.steps - 1)]


def field_planes(sc: Scenario) -> int:
    """Planes of a marched judging field: at least MIN_FIELD_PLANES (the streamlines
    interpolate ∇φ in z between them; 21 planes over 3 z_R put the x0 = 3 w0 streamline
    1e-2 w0 off, measured) and FIELD_PLANES_PER_ZR per Rayleigh length, and the output
    planes a subset of them."""
    fewest = max(MIN_FIELD_PLANES, int(np.ceil(FIELD_PLANES_PER_ZR * sc.run.z_end)) + 1)
    per = int(np.ceil((fewest - 1) / (sc.run.steps - 1)))
    return (sc.run.steps - 1) * per + 1


def grazing_pad(u0, wavelength: float, z_end: float, h: float) -> float:
    """How far [w0] light of the launch travels sideways by z_end: the steepest propagating
    plane wave holding more than GRAZING_LEVEL of the launch spectrum's peak, at most
    MAX_GRAZING_ANGLE, gives z_end·tan θ (capped at MAX_PAD)."""
    k = 2 * np.pi / wavelength
    x = h * (np.arange(2**16) - 2**15)
    spectrum = np.abs(np.fft.fft(u0(x)))
    kx = np.abs(2 * np.pi * np.fft.fftfreq(x.size, d=h))
    strong = (spectrum > GRAZING_LEVEL * spectrum.max()) & (kx < k)
    theta = np.arcsin(min(kx[strong].max() / k, np.sin(np.radians(MAX_GRAZING_ANGLE))))
    return float(min(z_end * np.tan(theta), MAX_PAD))


@dataclasses.dataclass(frozen=True)
class AngularJudge(Judge):
    """The exact uniform-medium field on the window, computed on a window wider by
    :func:`grazing_pad` on each side and cropped: the angular spectrum is periodic, and
    at λ0/w0 ~ 1 light leaving at grazing angles would come back round. Measured for the
    bell at λ0/w0 = 1: the x0 = ±1 streamline moved 7.7e-3 w0 between a ±8.5 w0 window
    and a ±160 w0 one (6e-4 at ±40, 1.6e-4 at ±80; 1.7e-4 from a ±200 one with this
    padding)."""

    name: str = "angular"

    def field(self, p: Problem) -> xr.Dataset:
        nx = p.sc.run.nx
        lo, hi = p.window
        z = np.linspace(0, p.z_end, field_planes(p.sc))
        h = (hi - lo) / nx
        pad = int(np.ceil(grazing_pad(p.launch.u0, p.sc.launch.wavelength, z[-1], h) / h))
        x = lo + h * np.arange(-pad, nx + pad)
        full = wf.angular_spectrum(p.medium.field_wavenumber, x, z, p.launch.u0(x))
        cropped = full.isel(x=slice(pad, pad + nx))
        cropped.attrs["padded_window"] = float(pad * h + (hi - lo) / 2)
        return cropped


@dataclasses.dataclass(frozen=True)
class ParaxialJudge(Judge):
    """The split-step paraxial field (exact diffraction in a uniform medium)."""

    name: str = "paraxial"

    def field(self, p: Problem) -> xr.Dataset:
        x = np.linspace(*p.window, p.sc.run.nx, endpoint=False)
        z = np.linspace(0, p.z_end, field_planes(p.sc))
        dz = PARAXIAL_DZ * p.sc.rayleigh_length
        return wf.propagate_paraxial(p.medium.K2, x, z, p.launch.u0(x), k_ref=p.wavenumber, dz=dz)


@dataclasses.dataclass(frozen=True)
class HelmholtzJudge(Judge):
    """The full-wave finite-difference field (PML, sparse solve) on its own grid."""

    name: str = "helmholtz"

    def field(self, p: Problem) -> xr.Dataset:
        x, z = wf.grid_for(p.sc.launch.wavelength, p.window, (0, p.z_end))
        return wf.solve_helmholtz(p.medium.K2, x, z, p.launch.u0(x))

    def planes(self, p: Problem, field: xr.Dataset) -> np.ndarray:
        zf = field["z"].values  # its planes are its grid rows: pick the nearest ones
        rows = np.unique(np.round(np.linspace(0, zf.size - 1, p.sc.run.steps)).astype(int))
        return zf[rows]


JUDGES = {j.name: j for j in (AngularJudge(), ParaxialJudge(), HelmholtzJudge())}


@dataclasses.dataclass(frozen=True)
class Problem:
    """Everything a run needs, built once: ``Problem.of(scenario)``."""

    sc: Scenario
    launch: LaunchProfile
    medium: MediumSetup
    judge: Judge
    window: tuple[float, float]
    z_end: float

    @classmethod
    def of(cls, sc: Scenario) -> Problem:
        scenarios.validate(sc)
        launch = LaunchProfile.of(sc)
        z_end = sc.run.z_end * sc.rayleigh_length
        window = _window(sc, launch, z_end)
        _check_tilt_resolved(sc, launch, window)
        return cls(sc, launch, MediumSetup.of(sc), JUDGES[sc.run.judge], window, z_end)

    @property
    def wavenumber(self) -> float:
        return self.sc.wavenumber

    @property
    def dynamics(self):
        return self.medium.dynamics

    def judge_field(self) -> xr.Dataset:
        return self.judge.field(self)

    def planes(self, field: xr.Dataset) -> np.ndarray:
        return self.judge.planes(self, field)


def _check_tilt_resolved(sc: Scenario, launch: LaunchProfile, window) -> None:
    """A tilted launch needs MIN_POINTS_PER_TILT grid points per transverse period."""
    if launch.phase is None or sc.run.judge == "helmholtz":  # its grid resolves λ0 itself
        return
    lo, hi = launch.support
    kx = float(np.max(np.abs(launch.slope(np.linspace(lo, hi, SLOPE_SAMPLES)))))
    h = (window[1] - window[0]) / sc.run.nx
    if kx > 0 and 2 * np.pi / (kx * h) < MIN_POINTS_PER_TILT:
        need = int(np.ceil(MIN_POINTS_PER_TILT * kx * (window[1] - window[0]) / (2 * np.pi)))
        raise scenarios.ScenarioError(
            f"run.nx = {sc.run.nx} gives {2 * np.pi / (kx * h):.3g} points per transverse "
            f"period of the launch phase (slope up to {kx:.4g}/w0 over a {hi - lo:.3g} w0 "
            f"support); at least {MIN_POINTS_PER_TILT} are needed: set run.nx >= {need}"
        )


def _window(sc: Scenario, launch: LaunchProfile, z_end: float) -> tuple[float, float]:
    """The judging field's x range: ±``run.window``·w(z_end) (w0 = 1; a Gaussian's
    growth) about the launch's support, widened by how far the support exceeds a unit
    Gaussian's and by the sideways drift a tilted launch phase gives by z_end."""
    s_lo, s_hi = launch.support
    growth = max(np.sqrt(1 + sc.run.z_end**2), 1.0)
    half = sc.run.window * growth + max((s_hi - s_lo) / 2 - GAUSSIAN_SUPPORT, 0.0)
    centre = (s_lo + s_hi) / 2
    x = np.linspace(s_lo, s_hi, SLOPE_SAMPLES)
    kx = np.clip(launch.slope(x), -0.999 * launch.wavenumber, 0.999 * launch.wavenumber)
    drift = z_end * kx / np.sqrt(launch.wavenumber**2 - kx**2)
    return centre - half + min(0.0, drift.min()), centre + half + max(0.0, drift.max())
