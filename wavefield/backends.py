"""Sparse direct solvers of the assembled Helmholtz system, and their memory estimates.

Each backend factorises A once and returns ``solve(b)`` (b may have several columns), which
checks the relative residual of every solution: MKL PARDISO (the ``[fast]`` extra), SciPy's
SuperLU, or ``spsolve``. :func:`solve_memory` estimates a solve's peak memory from
measurements, so a solve too large for the machine is refused before it starts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from wavefield import _pardiso as mkl_pardiso

log = logging.getLogger(__name__)


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
