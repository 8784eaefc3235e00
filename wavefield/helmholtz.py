"""Full-wave finite-difference solution of ∇²u + K²(x, z) u = 0 with a PML and a sparse solve.

The launch row u(x, z0) = u0 is Dirichlet data; PML layers are appended outside the grid
on x-min, x-max and z-max (a Dirichlet wall u = 0 closes each layer), so the returned
field covers exactly the grid the caller gave and everything on it is physical.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import xarray as xr

from wavefield import _pardiso as mkl_pardiso
from wavefield._grid import (
    MediumLike,
    coordinate,
    launch_row,
    medium_on_grid,
    reference_wavenumber,
)
from wavefield.operators import ACCURACIES, derivative_matrix
from wavefield.pml import PML, pml_stretch, pml_stretch_half
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


def stretched_second_derivative(
    n_nodes: int, h: float, accuracy: int, s: np.ndarray, ds: np.ndarray
) -> sp.csr_matrix:
    """(1/s) d/dξ (1/s d/dξ) = (1/s²) d²/dξ² − (s'/s³) d/dξ on the unknown rows."""
    D2 = derivative_matrix(n_nodes, h, 2, accuracy)
    D1 = derivative_matrix(n_nodes, h, 1, accuracy)
    return (sp.diags(1 / s**2) @ D2 - sp.diags(ds / s**3) @ D1).tocsr()


def envelope_second_derivative(
    n_nodes: int, h: float, accuracy: int, s: np.ndarray, ds: np.ndarray, k: float
) -> sp.csr_matrix:
    """e^{−ikξ} (1/s) d/dξ (1/s d/dξ) e^{ikξ} on the unknown rows (see helmholtz_system)."""
    D2 = derivative_matrix(n_nodes, h, 2, accuracy)
    D1 = derivative_matrix(n_nodes, h, 1, accuracy)
    eye = sp.eye(n_nodes - 2, n_nodes, k=1, format="csr")  # the unknown rows
    return (
        sp.diags(1 / s**2) @ (D2 + 2j * k * D1 - k**2 * eye)
        - sp.diags(ds / s**3) @ (D1 + 1j * k * eye)
    ).tocsr()


@dataclasses.dataclass(frozen=True)
class HelmholtzSystem:
    """The assembled system A·u = b for one medium; ``rhs(u0)`` builds b for a launch row."""

    matrix: sp.csr_matrix
    launch_column: np.ndarray  # coupling of each unknown z row to the launch row
    shape: tuple[int, int]  # unknowns as (nz_rows, nx_cols) including PML
    pml_cells: tuple[int, int]  # (cells in x per side, cells at z-max)
    launch_operator: sp.spmatrix | None = None  # acts on the launch row (compact stencil)

    def rhs(self, u0_padded: np.ndarray) -> np.ndarray:
        row = u0_padded if self.launch_operator is None else self.launch_operator @ u0_padded
        return -np.outer(self.launch_column, row).ravel()


def helmholtz_system(
    K2_ext: np.ndarray,
    hx: float,
    hz: float,
    k_ref: float,
    accuracy: int,
    nlx: int,
    nlz: int,
    pml: PML,
    *,
    envelope: bool = False,
    compact: bool = False,
    K2_launch: np.ndarray | None = None,
) -> HelmholtzSystem:
    """Assemble ∂x(1/s_x ∂x)/s_x + ∂z(1/s_z ∂z)/s_z + K² on the PML-extended grid.

    ``K2_ext`` is K² on the unknown nodes, shape (nz − 1 + nlz, nx + 2 nlx). With
    ``envelope`` the unknowns are A = u e^{−i k_ref z} and the z operator becomes
    e^{−ik z}(1/s)∂z((1/s)∂z e^{ik z}·) = (1/s²)(∂z² + 2ik∂z − k²) − (s'/s³)(∂z + ik):
    still the exact equation, but A varies on the beam's scale, not λ0's, along z.

    With ``compact`` (fourth order on a 3×3 stencil, Singer & Turkel's Mehrstellen scheme
    for the Helmholtz equation) the operator is built from the second-order Lx, Lz:
    Lx + Lz + (hx² + hz²)/12·Lx·Lz + K² + (hx² Lx + hz² Lz)/12·K², with ``K2_launch``
    (K² on the PML-padded launch row) entering the launch coupling. Its nested-dissection
    separators are one row wide, not two, so it fills in like the 5-point stencil. Fourth
    order needs K² smooth: K² is padded into the PML by its edge values, whose kink costs
    order where the field reaches the layer (measured 2.2 with 1.8 % of the launch peak at
    the window edge in a GRIN medium; 4.0 with the beam clear of it).
    """
    if compact:
        return _compact_system(K2_ext, hx, hz, k_ref, nlx, nlz, pml, K2_launch)
    nzu, nxu = K2_ext.shape
    sx, dsx = pml_stretch(nxu - 2 * nlx, nlx, hx, k_ref, pml, low=True, high=True)
    sz, dsz = pml_stretch(nzu - nlz, nlz, hz, k_ref, pml, low=False, high=True)
    Lx = stretched_second_derivative(nxu + 2, hx, accuracy, sx, dsx)[:, 1:-1]
    if envelope:
        Lz_full = envelope_second_derivative(nzu + 2, hz, accuracy, sz, dsz, k_ref)
    else:
        Lz_full = stretched_second_derivative(nzu + 2, hz, accuracy, sz, dsz)
    launch_column = Lz_full[:, 0].toarray().ravel()
    Lz = Lz_full[:, 1:-1]
    A = (
        sp.kron(sp.identity(nzu, format="csr"), Lx, format="csr")
        + sp.kron(Lz, sp.identity(nxu, format="csr"), format="csr")
        + sp.diags(K2_ext.ravel())
    )
    return HelmholtzSystem(A.tocsr(), launch_column, (nzu, nxu), (nlx, nlz))


def flux_second_derivative(s_half: np.ndarray, h: float) -> sp.csr_matrix:
    """s·(1/s) d/dξ (1/s d/dξ) in flux form on the unknown nodes between two walls:
    row i is [(u_{i+1} − u_i)/s_{i+½} − (u_i − u_{i−1})/s_{i−½}]/h², an n × (n + 2) matrix
    (columns include the walls) that is symmetric on the unknown columns."""
    n = s_half.size - 1
    inv = 1 / s_half / h**2
    rows = np.repeat(np.arange(n), 3)
    cols = (np.arange(n)[:, None] + np.arange(3)[None, :]).ravel()
    vals = np.stack([inv[:-1], -(inv[:-1] + inv[1:]), inv[1:]], axis=1).ravel()
    return sp.csr_matrix((vals, (rows, cols)), shape=(n, n + 2))


def _tridiagonal(s_half: np.ndarray, h: float) -> dict[int, np.ndarray]:
    """The three diagonals of :func:`flux_second_derivative` on the unknowns, by offset;
    couplings to the walls are left out (offset −1 at the first node, +1 at the last)."""
    inv = 1 / s_half / h**2
    lower, upper = inv[:-1].copy(), inv[1:].copy()
    lower[0] = upper[-1] = 0
    return {-1: lower, 0: -(inv[:-1] + inv[1:]), 1: upper}


def _compact_system(K2_ext, hx, hz, k_ref, nlx, nlz, pml, K2_launch) -> HelmholtzSystem:
    """The fourth-order compact (3×3) operator; see :func:`helmholtz_system`. Each row is
    multiplied by s_z s_x (flux-form PML), which makes the matrix complex symmetric when
    K² is constant, so PARDISO can use its symmetric factorisation.

    With S·L the flux-form operators (tridiagonal) the matrix is
    Sz⊗SLx·(1 + hx²K²/12) + SLz⊗Sx·(1 + hz²K²/12) + c SLz⊗SLx + Sz⊗Sx·K² (K² acting on
    the column's node, c = (hx² + hz²)/12), assembled directly as its nine diagonals:
    the same matrix as the Kronecker products (tests), 1.4 s faster at 1M unknowns."""
    nzu, nxu = K2_ext.shape
    sx, _ = pml_stretch(nxu - 2 * nlx, nlx, hx, k_ref, pml, low=True, high=True)
    sz, _ = pml_stretch(nzu - nlz, nlz, hz, k_ref, pml, low=False, high=True)
    sx_half = pml_stretch_half(nxu - 2 * nlx, nlx, hx, k_ref, pml, low=True, high=True)
    sz_half = pml_stretch_half(nzu - nlz, nlz, hz, k_ref, pml, low=False, high=True)
    lx, lz = _tridiagonal(sx_half, hx), _tridiagonal(sz_half, hz)
    c = (hx**2 + hz**2) / 12
    K2p = np.pad(K2_ext, 1, mode="edge")  # K² at a neighbour, (iz + dz, ix + dx)
    n = nzu * nxu
    vals = np.zeros((9, nzu, nxu), complex)  # one plane per (dz, dx), columns in order
    valid = np.zeros((9, nzu, nxu), bool)
    offsets = []
    for k, (dz, dx) in enumerate((dz, dx) for dz in (-1, 0, 1) for dx in (-1, 0, 1)):
        K2n = K2p[1 + dz : 1 + dz + nzu, 1 + dx : 1 + dx + nxu]
        v = c * np.outer(lz[dz], lx[dx])
        if dz == 0:
            v += np.outer(sz, lx[dx]) * (1 + hx**2 / 12 * K2n)
        if dx == 0:
            v += np.outer(lz[dz], sx) * (1 + hz**2 / 12 * K2n)
        if dz == dx == 0:
            v += np.outer(sz, sx) * K2_ext
        vals[k] = v
        valid[k, max(0, -dz) : nzu - max(0, dz), max(0, -dx) : nxu - max(0, dx)] = True
        offsets.append(dz * nxu + dx)
    # CSR straight from the planes: row r holds its valid (dz, dx) entries in column order
    keep = valid.reshape(9, n).T
    cols = (np.arange(n)[:, None] + np.array(offsets)[None, :])[keep]
    indptr = np.concatenate([[0], np.cumsum(keep.sum(axis=1))])
    A = sp.csr_matrix((vals.reshape(9, n).T[keep], cols, indptr), shape=(n, n))
    # the launch row enters through Lz's wall column: s_z·Lz[:, 0] ⊗ s_x·(I + c Lx + hz²K²/12)
    launch_column = np.zeros(nzu, complex)
    launch_column[0] = 1 / sz_half[0] / hz**2
    SLx = flux_second_derivative(sx_half, hx)[:, 1:-1]
    launch = sp.diags(sx) + c * SLx + sp.diags(sx * hz**2 / 12 * np.asarray(K2_launch))
    return HelmholtzSystem(A, launch_column, (nzu, nxu), (nlx, nlz), launch.tocsr())


#: A factorisation whose solution leaves a relative residual ‖Au − b‖/‖b‖ above this is
#: rejected and redone with partial pivoting (round-off alone gives ~1e-12 here).
RESIDUAL_TOL = 1e-8


def _superlu(A: sp.spmatrix) -> Callable[[np.ndarray], np.ndarray]:
    """SuperLU with a symmetric minimum-degree ordering and diagonal pivots.

    Measured on the accuracy-4 operator with PML (134k unknowns): 7.1 s and 43M factor
    entries, against 8.2 s / 50M with SciPy's default COLAMD and 30 s / 75M with a pivot
    threshold of 0.1. Diagonal pivoting is not guaranteed stable for an indefinite matrix,
    so every solve checks its residual and falls back to COLAMD with partial pivoting.
    """
    A = sp.csc_matrix(A)  # SuperLU factorises columns
    lu = spla.splu(
        A, permc_spec="MMD_AT_PLUS_A", options={"SymmetricMode": True}, diag_pivot_thresh=0.0
    )
    return _checked(
        A, lu.solve, lambda: spla.splu(A, permc_spec="COLAMD").solve, "diagonal-pivot LU", "COLAMD"
    )


def _checked(A, solve, safer: Callable[[], Callable], what: str, instead: str) -> Callable:
    """``solve``, with every solution's residual checked: above RESIDUAL_TOL the matrix is
    refactorised once by ``safer()`` (a factorisation with pivoting or matching), which
    then serves every later right-hand side."""
    fallback = None

    def checked(b: np.ndarray) -> np.ndarray:
        nonlocal fallback
        if fallback is None:
            u = solve(b)
            residual = _residual(A, u, b)
            if residual <= RESIDUAL_TOL:
                return u
            log.warning("%s residual %.2g; refactorising with %s", what, residual, instead)
            fallback = safer()
        return fallback(b)

    return checked


def _spsolve(A: sp.spmatrix) -> Callable[[np.ndarray], np.ndarray]:
    return lambda b: np.reshape(spla.spsolve(A, b), b.shape)  # it squeezes (n, 1) to (n,)


def _pardiso(A: sp.spmatrix) -> Callable[[np.ndarray], np.ndarray]:
    """MKL PARDISO (the ``[fast]`` extra): nested-dissection ordering, parallel
    factorisation; the complex-symmetric type when the matrix is symmetric (the compact
    stencil in a medium of constant K²), else the unsymmetric type (the wide stencil's PML
    and one-sided closures make it unsymmetric, though its pattern is symmetric). Without
    weighted matching, measured at 398k unknowns: 3.8 s and 86M factor entries against
    5.2 s and 93M with it. Every solve checks its residual and refactorises with matching
    (unsymmetric type) if it is large."""
    factor = mkl_pardiso.PardisoFactor(A, matching=False)  # symmetric type when A is
    return _checked(
        A,
        factor.solve,
        lambda: mkl_pardiso.PardisoFactor(A, symmetric=False, matching=True).solve,
        "PARDISO without matching",
        "weighted matching",
    )


def _residual(A: sp.spmatrix, u: np.ndarray, b: np.ndarray) -> float:
    """Largest relative residual ‖Au − b‖/‖b‖ over the right-hand sides (columns); inf
    for NaN."""
    r = np.linalg.norm(A @ u - b, axis=0) / np.maximum(np.linalg.norm(b, axis=0), 1e-300)
    r = np.max(r)
    return float(r) if np.isfinite(r) else float("inf")


#: Factorisations by name; each returns a function solving A x = b for that A (b may have
#: several columns: one factorisation, many right-hand sides).
SOLVERS: dict[str, Callable[[sp.spmatrix], Callable[[np.ndarray], np.ndarray]]] = {
    "pardiso": _pardiso,
    "superlu": _superlu,
    "spsolve": _spsolve,
}


#: Peak memory of a solve per unknown [bytes] (matrix, ordering, factor, solution, the
#: Dataset), measured as the growth of the process peak RSS over the solve (a
#: free-space Gaussian at 733k unknowns, 2 cores) for (solver, stencil, accuracy). The wide
#: pattern is also the envelope form's. Fill grows as N log N: see :func:`solve_memory`.
BYTES_PER_UNKNOWN = {
    ("pardiso", "compact", 4): 1860,
    ("superlu", "compact", 4): 2980,
    ("spsolve", "compact", 4): 4390,
    ("pardiso", "wide", 2): 1960,
    ("pardiso", "wide", 4): 4860,
    ("pardiso", "wide", 6): 9720,
    ("superlu", "wide", 2): 2190,
    ("superlu", "wide", 4): 5290,  # at 183k unknowns
    ("superlu", "wide", 6): 10700,  # pardiso's 9720 scaled by the superlu/pardiso ratio at 4
    ("spsolve", "wide", 2): 3230,  # superlu's scaled by the compact spsolve/superlu ratio
    ("spsolve", "wide", 4): 7800,  # ditto
    ("spsolve", "wide", 6): 15800,  # ditto
}
#: Where those were measured, and their growth per doubling of the unknowns beyond it
#: (nested-dissection fill ~ N log N; measured 1–21 % for 183k → 733k, 2 doublings).
MEMORY_REFERENCE_UNKNOWNS = 733_212
MEMORY_GROWTH_PER_DOUBLING = 0.1


def solve_memory(unknowns: int, solver: str, stencil: str, accuracy: int) -> float:
    """Estimated peak memory [bytes] of a full-wave solve with this many unknowns."""
    per = BYTES_PER_UNKNOWN[solver, stencil, accuracy]
    doublings = max(0.0, np.log2(unknowns / MEMORY_REFERENCE_UNKNOWNS))
    return unknowns * per * (1 + MEMORY_GROWTH_PER_DOUBLING * doublings)


def default_solver() -> str:
    """ "pardiso" when MKL is installed (``pip install 'wavetraj[fast]'``), else "superlu"."""
    return "pardiso" if mkl_pardiso.available() else "superlu"


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
