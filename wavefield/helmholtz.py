"""Full-wave finite-difference solution of ∇²u + K²(x, z) u = 0 with a PML and a sparse solve.

The public solver: grid sizing (:func:`grid_for`), :func:`solve_helmholtz` and
:class:`HelmholtzSolver`. The operator assembly is in :mod:`wavefield.operators`, the
sparse direct backends and their memory estimates in :mod:`wavefield.backends`.

The launch row u(x, z0) = u0 is Dirichlet data; PML layers are appended outside the grid
on x-min, x-max and z-max (a Dirichlet wall u = 0 closes each layer), so the returned
field covers exactly the grid the caller gave and everything on it is physical.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import xarray as xr

from wavefield._grid import (
    MediumLike,
    coordinate,
    launch_row,
    medium_on_grid,
    reference_wavenumber,
)
from wavefield.backends import SOLVERS, default_solver, solve_memory
from wavefield.operators import ACCURACIES, helmholtz_system
from wavefield.pml import PML
from wavetraj import field_dataset
from wavetraj.resources import check_memory

log = logging.getLogger(__name__)

#: Below this many points per (shortest local) wavelength the scheme of that accuracy is
#: not a wave solver any more (phase error per wavelength of order one): refuse the grid.
MIN_POINTS_PER_WAVELENGTH = {2: 10.0, 4: 6.0, 6: 5.0}
#: Grid density used by :func:`grid_for`; measured to reach ≤ 1e-3 relative L2 error on a
#: 16λ × 16λ Gaussian (λ0/w0 = 0.5) at accuracy 4 (see tests/test_helmholtz.py).
DEFAULT_POINTS_PER_WAVELENGTH = {2: 60.0, 4: 28.0, 6: 14.0}
#: The same for the compact fourth-order stencil (the accuracy-4 default): measured
#: 3.5e-4 on that Gaussian and 1.04e-3 on a 30λ × 30λ one (the wide stencil at 28: 1.5e-3).
DEFAULT_POINTS_PER_WAVELENGTH_COMPACT = 24.0
DEFAULT_PML = PML()
#: Unknowns of the full-wave solver: u itself, or the envelope A = u e^{−i k_ref z}.
FORMS = ("plain", "envelope")
#: Finite-difference stencils: "wide" (findiff's order-``accuracy`` stencils along each
#: axis) or "compact" (fourth order on 3×3 points, plain form only; "auto" picks it for
#: accuracy 4 in the plain form: at 1.06M unknowns it factorises in 4.8 s and 1.5 GB with
#: PARDISO's symmetric type, against 17.6 s and 5.3 GB for the wide stencil, and it is
#: more accurate at the same grid: 7.5e-5 against 2.0e-4 at 28 points per λ0).
STENCILS = ("wide", "compact")
#: Fewest z cells of the PML in the envelope form, whose z rows may be coarse: the layer
#: must still grade σ smoothly over several cells.
ENVELOPE_PML_CELLS = 48
#: Launch amplitude at the x edges above this fraction of the peak is cut by the PML.
EDGE_AMPLITUDE_WARN = 1e-3


def grid_for(
    wavelength: float,
    x_range: tuple[float, float],
    z_range: tuple[float, float],
    *,
    accuracy: int = 4,
    points_per_wavelength: float | None = None,
    stencil: str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """Uniform x and z grids that resolve ``wavelength`` for the chosen accuracy and
    stencil (as :func:`solve_helmholtz` will use them: "auto" is the compact stencil at
    accuracy 4)."""
    if stencil not in ("auto", *STENCILS):
        raise ValueError(f"stencil must be 'auto' or one of {STENCILS}; got {stencil!r}")
    if accuracy not in ACCURACIES:
        raise ValueError(f"accuracy must be one of {ACCURACIES}; got {accuracy!r}")
    for name, value in (
        ("wavelength", wavelength),
        ("points_per_wavelength", points_per_wavelength),
    ):
        if value is None and name == "points_per_wavelength":
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float, np.number))
            or not (np.isfinite(value) and value > 0)
        ):
            raise ValueError(
                f"{name} must be a positive finite number (length units of the grid); got {value!r}"
            )
    compact = accuracy == 4 and stencil in ("auto", "compact")
    default = DEFAULT_POINTS_PER_WAVELENGTH_COMPACT if compact else None
    ppw = points_per_wavelength or default or DEFAULT_POINTS_PER_WAVELENGTH[accuracy]
    h = wavelength / ppw
    axes = []
    for name, (lo, hi) in (("x_range", x_range), ("z_range", z_range)):
        if not hi > lo:
            raise ValueError(f"{name} must be (low, high) with high > low; got {(lo, hi)}")
        n = int(np.ceil((hi - lo) / h)) + 1
        axes.append(np.linspace(lo, hi, n))
    return axes[0], axes[1]


def _check_resolution(
    K2: np.ndarray, x: np.ndarray, z: np.ndarray, accuracy: int, envelope: bool = False
) -> float:
    """Points per shortest local wavelength; raise if the scheme cannot resolve it (in the
    envelope form along x only: along z it resolves the envelope, not λ0)."""
    h = x[1] - x[0] if envelope else max(x[1] - x[0], z[1] - z[0])
    iz, ix = np.unravel_index(np.argmax(K2), K2.shape)
    K_max = np.sqrt(max(K2[iz, ix], 0.0))
    if K_max == 0:
        return np.inf
    ppw = 2 * np.pi / K_max / h
    need = MIN_POINTS_PER_WAVELENGTH[accuracy]
    if ppw < need:
        h_need = 2 * np.pi / K_max / need
        nx = int(np.ceil(np.ptp(x) / h_need)) + 1
        nz = int(np.ceil(np.ptp(z) / h_need)) + 1
        raise ValueError(
            f"grid has {ppw:.2f} points per wavelength at x={x[ix]:.6g}, z={z[iz]:.6g} "
            f"(local wavelength {2 * np.pi / K_max:.6g}); accuracy={accuracy} needs "
            f">= {need:g}: use nx >= {nx} and nz >= {nz} (currently {x.size} x {z.size}), "
            "or propagate_paraxial / angular_spectrum for grids that do not resolve lambda"
        )
    return float(ppw)


def solve_helmholtz(
    K2: MediumLike,
    x,
    z,
    u0,
    *,
    accuracy: int = 4,
    pml: PML = DEFAULT_PML,
    solver: str = "auto",
    k_ref: float | None = None,
    form: str = "plain",
    stencil: str = "auto",
) -> xr.Dataset:
    """Solve ∇²u + K²(x, z) u = 0 for z ≥ z0 with launch data u(x, z0) = u0(x).

    Parameters
    ----------
    K2 : callable K2(x, z), callable K2(x) (constant in z), array (len(z), len(x)), or number
        Local wavenumber squared [1/length²]. K² < 0 (forbidden, evanescent) is allowed.
    x, z : 1-D uniform arrays
        The grid [length]; z[0] is the launch line. PML layers are added outside it.
    u0 : complex array (len(x),) or callable of x
        Launch data R0 e^{iφ0} on z = z[0].
    accuracy : {2, 4, 6}
        Order of the finite-difference stencils (one-sided closures of the same order).
    pml : PML
        Thickness (in launch wavelengths), grading and target reflection.
    solver : {"auto", "pardiso", "superlu", "spsolve"}
        Sparse direct solver. "auto" is "pardiso" (MKL PARDISO, the ``[fast]`` extra) when
        it is installed, else "superlu": SciPy's SuperLU with a symmetric minimum-degree
        ordering (the matrix pattern is symmetric). "spsolve" is SciPy's default, for
        comparison.
    k_ref : float, optional
        Carrier wavenumber of the stored envelope; default K at the launch line.
    stencil : {"auto", "compact", "wide"}
        "compact": fourth order on 3×3 points (plain form, accuracy 4; the default there),
        complex symmetric in media of constant K², so PARDISO factorises half the matrix.
        "wide": findiff's order-``accuracy`` stencil along each axis.
    form : {"plain", "envelope"}
        Unknowns u (plain), or A = u e^{−i k_ref z} (envelope): the same exact equation,
        ∂x²A + ∂z²A + 2i k_ref ∂zA + (K² − k_ref²)A = 0, whose solution varies along z on the
        beam's scale, so z rows can be much coarser than λ0 for beams near the z axis
        (x must still resolve λ0). Backward waves are not resolved on such coarse rows.

    Returns
    -------
    xarray.Dataset
        Field Dataset (method "helmholtz-fd"): envelope A = u e^{−i k_ref z}, K2, attrs
        with points per wavelength, PML cells, timings and any forbidden region.

    Notes
    -----
    In the PML, ∂ξ → (1/s_ξ)∂ξ with s_ξ = 1 + iσ(ξ)/k_ref, discretised as
    (1/s²) D2 − (s'/s³) D1 with D1, D2 the order-``accuracy`` findiff stencils. The unknowns
    are all nodes with z > z0; the operator is the Kronecker sum I⊗Lx + Lz⊗I + diag(K²).
    """
    x = coordinate(x, "x")
    u0 = launch_row(u0, x)
    if k_ref is None:
        zc = coordinate(z, "z")
        full = not callable(K2) and np.ndim(K2) == 2  # an array on the whole grid
        launch_K2 = medium_on_grid(K2, x, zc if full else zc[:1])[0]
        k_ref = reference_wavenumber(launch_K2, u0)
    solver_ = HelmholtzSolver(
        K2,
        x,
        z,
        accuracy=accuracy,
        pml=pml,
        solver=solver,
        k_ref=k_ref,
        form=form,
        stencil=stencil,
    )
    return solver_(u0)


class HelmholtzSolver:
    """The full-wave operator of one medium and grid, factorised once; call it with launch
    rows: ``solver(u0)`` or ``solver.solve_many([u0, u1, ...])`` (one factorisation, many
    right-hand sides, solved together). Arguments as :func:`solve_helmholtz`; ``k_ref``
    defaults to the largest K on the launch line."""

    def __init__(
        self,
        K2: MediumLike,
        x,
        z,
        *,
        accuracy: int = 4,
        pml: PML = DEFAULT_PML,
        solver: str = "auto",
        k_ref: float | None = None,
        form: str = "plain",
        stencil: str = "auto",
    ):
        t_start = time.perf_counter()
        if accuracy not in ACCURACIES:
            raise ValueError(f"accuracy must be one of {ACCURACIES}; got {accuracy!r}")
        if solver == "auto":
            solver = default_solver()
        if solver not in SOLVERS:
            raise ValueError(f"solver must be 'auto' or one of {sorted(SOLVERS)}; got {solver!r}")
        if form not in FORMS:
            raise ValueError(f"form must be one of {FORMS}; got {form!r}")
        if stencil == "auto":
            stencil = "compact" if accuracy == 4 and form == "plain" else "wide"
        if stencil not in STENCILS:
            raise ValueError(f"stencil must be 'auto' or one of {STENCILS}; got {stencil!r}")
        compact = stencil == "compact"
        if compact and (accuracy != 4 or form != "plain"):
            raise ValueError(
                f"stencil='compact' is the fourth-order plain-form scheme: use accuracy=4 "
                f"and form='plain' (got accuracy={accuracy!r}, form={form!r}), or "
                "stencil='wide' or 'auto'"
            )
        if not isinstance(pml, PML):
            raise TypeError(f"pml must be a wavefield.PML; got {type(pml).__name__}")
        self.x = x = coordinate(x, "x")
        self.z = z = coordinate(z, "z")
        self.K2_input, self.K2 = K2, medium_on_grid(K2, x, z)
        if k_ref is None:
            top = float(self.K2[0].max())
            if top <= 0:
                raise ValueError(
                    f"K2 <= 0 along the whole launch line (max {top:.6g}): nothing propagates; "
                    "raise the energy, move z0, or pass k_ref"
                )
            k_ref = np.sqrt(top)
        self.k_ref = k_ref = float(k_ref)
        self.accuracy, self.pml, self.solver, self.form = accuracy, pml, solver, form
        self.stencil = stencil
        self.envelope_form = form == "envelope"
        self.ppw = _check_resolution(self.K2, x, z, accuracy, self.envelope_form)
        hx, hz = x[1] - x[0], z[1] - z[0]
        wavelength = 2 * np.pi / k_ref
        nlx, nlz = pml.cells(wavelength, hx), pml.cells(wavelength, hz)
        if self.envelope_form:
            nlz = max(nlz, ENVELOPE_PML_CELLS)
        self.nlx, self.nlz = nlx, nlz
        unknowns = (z.size - 1 + nlz) * (x.size + 2 * nlx)
        check_memory(
            solve_memory(unknowns, solver, stencil, accuracy),
            f"the full-wave solve on {unknowns} unknowns ({z.size - 1 + nlz} × "
            f"{x.size + 2 * nlx} with PML; {solver}, {stencil} stencil, accuracy {accuracy})",
            "use a coarser grid (grid_for(..., points_per_wavelength=...)), the envelope "
            "form with coarser z rows (form='envelope'), or a smaller x or z window",
        )
        K2_ext = np.pad(self.K2[1:], ((0, nlz), (nlx, nlx)), mode="edge")
        self.system = helmholtz_system(
            K2_ext,
            hx,
            hz,
            k_ref,
            accuracy,
            nlx,
            nlz,
            pml,
            envelope=self.envelope_form,
            compact=compact,
            K2_launch=np.pad(self.K2[0], nlx, mode="edge"),
        )
        t_assembled = time.perf_counter()
        log.info(
            "helmholtz: %d unknowns (%d x %d with PML), accuracy %d, solver %s, form %s",
            self.system.matrix.shape[0],
            *self.system.shape,
            accuracy,
            solver,
            form,
        )
        self._solve = SOLVERS[solver](self.system.matrix)
        t_factored = time.perf_counter()
        self.time_assemble_s = t_assembled - t_start
        self.time_factor_s = t_factored - t_assembled

    @property
    def unknowns(self) -> int:
        return int(self.system.matrix.shape[0])

    def __call__(self, u0) -> xr.Dataset:
        return self.solve_many([u0])[0]

    def solve_many(self, launches) -> list[xr.Dataset]:
        """One field Dataset per launch row (callable of x or array), all from the one
        factorisation, solved as one block of right-hand sides."""
        x, z, nlx = self.x, self.z, self.nlx
        rows0 = [launch_row(u, x) for u in launches]
        if not rows0:
            raise ValueError("launches is empty: give at least one launch row u0")
        for u0 in rows0:
            edge = max(abs(u0[0]), abs(u0[-1])) / np.abs(u0).max()
            if edge > EDGE_AMPLITUDE_WARN:
                log.warning(
                    "launch amplitude at the x edges is %.3g of the peak: widen the grid", edge
                )
        shift = np.exp(-1j * self.k_ref * z[0]) if self.envelope_form else 1.0
        known = [u0 * shift for u0 in rows0]  # the launch rows in the unknowns' variable
        t = time.perf_counter()
        b = np.stack([self.system.rhs(np.pad(row, nlx)) for row in known], axis=1)
        solved = self._solve(b)
        t_solve = (time.perf_counter() - t) / len(rows0)
        return [
            self._dataset(u0, row, solved[:, i].reshape(self.system.shape), t_solve)
            for i, (u0, row) in enumerate(zip(rows0, known, strict=True))
        ]

    def _dataset(self, u0, launch, unknown: np.ndarray, t_solve: float) -> xr.Dataset:
        """The field Dataset of launch ``u0`` (``launch`` in the unknowns' variable)."""
        x, z, k_ref, nlx = self.x, self.z, self.k_ref, self.nlx
        rows = np.vstack([launch[None, :], unknown[: z.size - 1, nlx : nlx + x.size]])
        envelope = rows if self.envelope_form else rows * np.exp(-1j * k_ref * z)[:, None]
        forbidden = self.K2 < 0
        attrs = {
            "accuracy": self.accuracy,
            "solver": self.solver,
            "form": self.form,
            "stencil": self.stencil,
            "points_per_wavelength": self.ppw,
            "pml_cells_x": nlx,
            "pml_cells_z": self.nlz,
            "unknowns": self.unknowns,
            "forbidden_fraction": float(forbidden.mean()),
            "time_assemble_s": self.time_assemble_s,
            "time_factor_s": self.time_factor_s,
            "time_solve_s": t_solve,
        }
        if forbidden.any():
            zs, xs = z[forbidden.any(axis=1)], x[forbidden.any(axis=0)]
            attrs["forbidden_region"] = (
                f"K2 < 0 in x=[{xs.min():.6g}, {xs.max():.6g}], z=[{zs.min():.6g}, {zs.max():.6g}]"
            )
        return field_dataset(
            x,
            z,
            envelope,
            self.K2,
            k_ref=k_ref,
            method="helmholtz-fd",
            wavelength=2 * np.pi / k_ref,
            parameters={
                "K2": self.K2_input,
                "x": x,
                "z": z,
                "u0": u0,
                "accuracy": self.accuracy,
                "pml": self.pml,
                "solver": self.solver,
                "k_ref": k_ref,
                "form": self.form,
                "stencil": self.stencil,
            },
            attrs=attrs,
        )
