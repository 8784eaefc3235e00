"""Intel MKL PARDISO for complex sparse matrices, through ``libmkl_rt`` of the ``mkl`` wheel.

The PyPI binding ``pypardiso`` only factorises real matrices, and ``pydiso`` (which has
complex types) ships no wheels: it builds from source against MKL's pkg-config files. So
this module calls PARDISO itself with ctypes: one entry point, the documented
``pardiso(pt, maxfct, mnum, mtype, phase, n, a, ia, ja, perm, nrhs, iparm, msglvl, b, x,
error)``, zero-based CSR, nested-dissection (METIS) ordering. Install with
``pip install wavetraj[fast]`` (the ``mkl`` wheel, about 230 MB).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import glob
import os
import site
import sys
import weakref

import numpy as np
import scipy.sparse as sp

#: PARDISO matrix types used here.
COMPLEX_SYMMETRIC = 6
COMPLEX_UNSYMMETRIC = 13
_ERRORS = {
    -1: "input inconsistent",
    -2: "not enough memory",
    -3: "reordering problem",
    -4: "zero pivot, numerical factorisation or iterative refinement problem",
    -5: "unclassified (internal) error",
    -6: "reordering failed",
    -7: "diagonal matrix is singular",
    -8: "32-bit integer overflow problem",
    -9: "not enough memory for out-of-core",
    -10: "error opening out-of-core files",
    -11: "read/write error with out-of-core files",
}


@functools.cache
def library() -> ctypes.CDLL | None:
    """``libmkl_rt`` if it can be found and loaded (env ``WAVETRAJ_MKL_RT`` overrides)."""
    candidates = [os.environ.get("WAVETRAJ_MKL_RT"), ctypes.util.find_library("mkl_rt")]
    for base in (sys.prefix, site.getuserbase()):
        candidates += sorted(glob.glob(f"{base}/lib*/libmkl_rt.so*"), key=len)
    for path in filter(None, candidates):
        try:
            lib = ctypes.CDLL(path)
            lib.pardiso  # noqa: B018 - the symbol must exist
        except (OSError, AttributeError):
            continue
        lib.pardiso.restype = None
        lib.pardiso.argtypes = [
            ctypes.c_void_p,  # pt (64 pointers)
            ctypes.POINTER(ctypes.c_int32),  # maxfct
            ctypes.POINTER(ctypes.c_int32),  # mnum
            ctypes.POINTER(ctypes.c_int32),  # mtype
            ctypes.POINTER(ctypes.c_int32),  # phase
            ctypes.POINTER(ctypes.c_int32),  # n
            ctypes.c_void_p,  # a
            ctypes.c_void_p,  # ia
            ctypes.c_void_p,  # ja
            ctypes.c_void_p,  # perm
            ctypes.POINTER(ctypes.c_int32),  # nrhs
            ctypes.c_void_p,  # iparm
            ctypes.POINTER(ctypes.c_int32),  # msglvl
            ctypes.c_void_p,  # b
            ctypes.c_void_p,  # x
            ctypes.POINTER(ctypes.c_int32),  # error
        ]
        return lib
    return None


def available() -> bool:
    return library() is not None


#: A matrix is treated as complex symmetric when |A − Aᵀ| ≤ this × max |A| (the compact
#: stencil's flux-form rows in a medium of constant K² are exactly symmetric).
SYMMETRY_RTOL = 1e-14


def is_symmetric(A: sp.spmatrix) -> bool:
    d = abs(A - A.T)
    return d.nnz == 0 or d.max() <= SYMMETRY_RTOL * abs(A).max()


class PardisoFactor:
    """A PARDISO factorisation of a complex sparse matrix; ``solve(b)`` for one or many
    right-hand sides (columns). Symmetric matrices use the complex-symmetric type (half
    the work and memory); others the unsymmetric type, with weighted matching and scaling
    unless ``matching=False`` (faster and less fill where the diagonal is strong)."""

    def __init__(self, A: sp.spmatrix, *, symmetric: bool | None = None, matching: bool = True):
        lib = library()
        if lib is None:
            raise ImportError("MKL PARDISO not found: pip install 'wavetraj[fast]' (the mkl wheel)")
        A = sp.csr_matrix(A, dtype=np.complex128)
        if A.shape[0] != A.shape[1]:
            raise ValueError(f"PARDISO needs a square matrix; got {A.shape}")
        if symmetric is None:
            symmetric = is_symmetric(A)
        self.symmetric = bool(symmetric)
        M = sp.triu(A, format="csr") if self.symmetric else A
        M.sort_indices()
        self._lib = lib
        self.n = A.shape[0]
        self._a = np.ascontiguousarray(M.data)
        self._ia = M.indptr.astype(np.int32)
        self._ja = M.indices.astype(np.int32)
        del A, M  # only PARDISO's own copies stay during the factorisation (peak memory)
        self._pt = np.zeros(64, np.int64)
        self._iparm = np.zeros(64, np.int32)
        ip = self._iparm
        ip[0] = 1  # these settings, not the defaults
        ip[1] = 2  # nested-dissection ordering (METIS)
        ip[7] = 2  # at most two iterative-refinement steps
        ip[9] = 8 if self.symmetric else 13  # pivot perturbation 1e-8 / 1e-13
        ip[10] = int(matching and not self.symmetric)  # scaling
        ip[12] = int(matching and not self.symmetric)  # weighted matching
        ip[17] = -1  # report the factor's nonzeros
        ip[34] = 1  # zero-based indices
        self.mtype = COMPLEX_SYMMETRIC if self.symmetric else COMPLEX_UNSYMMETRIC
        self._call(12, np.zeros(0, np.complex128), 1)  # analysis + factorisation
        self.factor_nonzeros = int(ip[17])
        self.peak_memory_kb = int(max(ip[14], ip[15] + ip[16]))
        weakref.finalize(self, _release, lib, self._pt, self.mtype, self._iparm)

    def _call(self, phase: int, b: np.ndarray, nrhs: int) -> np.ndarray:
        x = np.zeros_like(b)
        err = ctypes.c_int32(0)
        one = ctypes.c_int32(1)
        self._lib.pardiso(
            self._pt.ctypes.data,
            ctypes.byref(one),
            ctypes.byref(one),
            ctypes.byref(ctypes.c_int32(self.mtype)),
            ctypes.byref(ctypes.c_int32(phase)),
            ctypes.byref(ctypes.c_int32(self.n)),
            self._a.ctypes.data,
            self._ia.ctypes.data,
            self._ja.ctypes.data,
            None,
            ctypes.byref(ctypes.c_int32(nrhs)),
            self._iparm.ctypes.data,
            ctypes.byref(ctypes.c_int32(0)),
            b.ctypes.data if b.size else None,
            x.ctypes.data if x.size else None,
            ctypes.byref(err),
        )
        if err.value != 0:
            why = _ERRORS.get(err.value, "unknown error")
            raise RuntimeError(f"PARDISO phase {phase} failed: error {err.value} ({why})")
        return x

    def solve(self, b: np.ndarray) -> np.ndarray:
        """x with A x = b; ``b`` of shape (n,) or (n, k) for k right-hand sides."""
        b = np.asarray(b, np.complex128)
        if b.shape[0] != self.n:
            raise ValueError(f"b has {b.shape[0]} rows; the matrix has {self.n}")
        nrhs = 1 if b.ndim == 1 else b.shape[1]
        bf = np.asfortranarray(b)  # PARDISO stores several right-hand sides column by column
        x = self._call(33, bf.ravel(order="F"), nrhs)
        return x if b.ndim == 1 else x.reshape(b.shape, order="F")


def _release(lib, pt, mtype, iparm) -> None:
    err = ctypes.c_int32(0)
    one = ctypes.c_int32(1)
    lib.pardiso(
        pt.ctypes.data,
        ctypes.byref(one),
        ctypes.byref(one),
        ctypes.byref(ctypes.c_int32(mtype)),
        ctypes.byref(ctypes.c_int32(-1)),
        ctypes.byref(ctypes.c_int32(0)),
        None,
        None,
        None,
        None,
        ctypes.byref(one),
        iparm.ctypes.data,
        ctypes.byref(ctypes.c_int32(0)),
        None,
        None,
        ctypes.byref(err),
    )
