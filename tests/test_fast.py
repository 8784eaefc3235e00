"""The fast paths: the envelope form, one factorisation for many launches, PARDISO, and
the split-step march's cached factors."""

from __future__ import annotations

import platform

import numpy as np
import pytest
import scipy.sparse as sp

import wavefield as wf
from wavefield import _pardiso, backends
from wavefield import helmholtz as hh
from wavefield import operators as ops

from .helpers import observed_order
from .test_helmholtz import DEFAULT_ERROR_MAX, LAMBDA, K, exact

#: Observed order of the accuracy-4 envelope form: measured 3.74 (w = 0.5 launch, z rows
#: twice the x spacing, 7 to 16 points per λ0); its finest grid sits within a factor 5 of
#: the 1e-6 floor set by the PML, which bends the fit below 4.
ENVELOPE_RATE_TOL = 0.3
#: The envelope form's error at 16 points per λ0 in that test: measured 7.3e-6 (+50 %).
ENVELOPE_FINEST = 1.1e-5
#: The envelope form reached 4.4e-5 on a 30λ × 30λ window with 8 points per λ0 across
#: and one per λ0 along z (20k unknowns, against 816k for the plain form's 1.5e-3).
FEWER_UNKNOWNS = 10
#: Factorisations of the same matrix by different solvers agree to round-off times the
#: condition number (measured 2e-14 on this grid).
SOLVER_AGREEMENT = 1e-9


def narrow(x):
    return np.exp(-((x / 0.5) ** 2))


def test_envelope_form_converges_at_fourth_order():
    hs, errs = [], []
    for ppw in (7, 9, 12, 16):
        hx = LAMBDA / ppw
        x = np.arange(-6, 6 + hx / 2, hx)
        z = np.arange(0, 2 + hx, 2 * hx)
        ds = wf.solve_helmholtz(K**2, x, z, narrow(x), form="envelope")
        ref = exact(x, z, narrow)
        hs.append(hx)
        errs.append(np.linalg.norm(ds["envelope"].values - ref) / np.linalg.norm(ref))
    assert abs(observed_order(hs, errs) - 4) <= ENVELOPE_RATE_TOL, errs
    assert errs[-1] <= ENVELOPE_FINEST, errs
    assert ds.attrs["form"] == "envelope"


def test_envelope_form_reaches_1e3_with_far_fewer_unknowns():
    x, z = wf.grid_for(LAMBDA, (-3.5, 3.5), (0, 5))  # 14 λ × 10 λ, 28 points per λ0
    plain = wf.HelmholtzSolver(K**2, x, z)
    xe = np.arange(-3.5, 3.5 + 1e-9, LAMBDA / 8)
    ze = np.arange(0, 5 + 1e-9, LAMBDA)
    ds = wf.solve_helmholtz(K**2, xe, ze, np.exp(-(xe**2)), form="envelope")
    ref = exact(xe, ze)
    err = np.linalg.norm(ds["envelope"].values - ref) / np.linalg.norm(ref)
    assert err <= DEFAULT_ERROR_MAX, err
    assert ds.attrs["unknowns"] * FEWER_UNKNOWNS <= plain.unknowns


def test_one_factorisation_serves_many_launches(monkeypatch):
    calls = []
    factorise = hh.SOLVERS["superlu"]
    monkeypatch.setitem(hh.SOLVERS, "superlu", lambda A: calls.append(A) or factorise(A))
    x, z = wf.grid_for(LAMBDA, (-3, 3), (0, 1.5))
    launches = [np.exp(-(x**2)), np.exp(-((x - 0.5) ** 2)) * np.exp(2j * x), narrow(x)]
    solver = wf.HelmholtzSolver(K**2, x, z, solver="superlu")
    many = solver.solve_many(launches)
    assert len(calls) == 1
    for u0, ds in zip(launches, many, strict=True):
        alone = wf.solve_helmholtz(K**2, x, z, u0, solver="superlu", k_ref=solver.k_ref)
        scale = np.abs(alone["envelope"].values).max()
        diff = np.abs(ds["envelope"].values - alone["envelope"].values).max()
        assert diff <= SOLVER_AGREEMENT * scale
        assert ds.attrs["time_factor_s"] == many[0].attrs["time_factor_s"]


def test_empty_launch_list_is_named():
    x, z = wf.grid_for(LAMBDA, (-2, 2), (0, 0.5))
    with pytest.raises(ValueError, match="launches is empty"):
        wf.HelmholtzSolver(K**2, x, z).solve_many([])


MKL_WHEELS = platform.machine() in ("x86_64", "AMD64")  # the mkl wheel's platforms


def test_default_solver_follows_what_is_installed():
    # the [test] extra installs the [fast] one (the mkl wheel) where it exists, so the
    # PARDISO tests below run in CI
    assert _pardiso.available() == MKL_WHEELS
    assert hh.default_solver() == ("pardiso" if MKL_WHEELS else "superlu")


@pytest.mark.skipif(not MKL_WHEELS, reason="no mkl wheel for this platform")
def test_pardiso_is_the_default_and_agrees_with_superlu():
    x, z = wf.grid_for(LAMBDA, (-3, 3), (0, 2))
    for form in ("plain", "envelope"):
        a = wf.solve_helmholtz(K**2, x, z, narrow(x), form=form)
        b = wf.solve_helmholtz(K**2, x, z, narrow(x), form=form, solver="superlu")
        assert a.attrs["solver"] == "pardiso"
        scale = np.abs(b["envelope"].values).max()
        assert np.abs(a["envelope"].values - b["envelope"].values).max() <= SOLVER_AGREEMENT * scale


@pytest.mark.skipif(not MKL_WHEELS, reason="no mkl wheel for this platform")
def test_pardiso_solves_several_right_hand_sides_and_symmetric_matrices():
    rng = np.random.default_rng(1)
    n = 300
    A = (
        ops.derivative_matrix(n + 2, 0.1, 2, 4)[:, 1:-1] + 50 * (1 + 0.1j) * sp.identity(n)
    ).tocsr()
    B = rng.normal(size=(n, 3)) + 1j * rng.normal(size=(n, 3))
    for M in (A, A + A.T):
        f = _pardiso.PardisoFactor(M)
        X = f.solve(B)
        assert np.abs(M @ X - B).max() <= 1e-10 * np.abs(B).max()
        assert np.allclose(f.solve(B[:, 0]), X[:, 0], rtol=0, atol=1e-12)
    assert _pardiso.PardisoFactor(A + A.T).symmetric
    with pytest.raises(ValueError, match="b has 5 rows"):
        f.solve(np.ones(5))


@pytest.mark.parametrize("dz", [None, 0.25])
def test_split_step_media_constant_in_z_give_the_same_field(dz):
    k = 2 * np.pi / 1e-2
    x = np.linspace(-20, 20, 512)
    z = np.linspace(0, 40, 21)

    def grin_xz(X, Z):
        return k**2 * (1 - X**2 / 400)

    def grin_x(X):
        return k**2 * (1 - X**2 / 400)

    u0 = np.exp(-(x**2))
    ref = wf.propagate_paraxial(grin_xz, x, z, u0, dz=dz)["envelope"].values
    for medium in (grin_x, grin_xz(*np.meshgrid(x, z))):
        got = wf.propagate_paraxial(medium, x, z, u0, dz=dz)["envelope"].values
        assert np.abs(got - ref).max() <= 1e-12 * np.abs(ref).max()


def test_split_step_recomputes_factors_only_when_the_medium_changes(monkeypatch):
    from wavefield import paraxial

    count = {"n": 0}
    real_exp = np.exp

    def counting_exp(a, *args, **kw):
        if np.iscomplexobj(a) and np.ndim(a) == 1:
            count["n"] += 1
        return real_exp(a, *args, **kw)

    k = 2 * np.pi / 1e-2
    x = np.linspace(-20, 20, 256)
    z = np.linspace(0, 40, 11)
    monkeypatch.setattr(paraxial.np, "exp", counting_exp)
    wf.propagate_paraxial(lambda X: k**2 * (1 - X**2 / 400), x, z, np.exp(-(x**2)), dz=0.5)
    constant = count["n"]
    count["n"] = 0
    wf.propagate_paraxial(lambda X, Z: k**2 * (1 - X**2 / (400 + Z)), x, z, np.exp(-(x**2)), dz=0.5)
    assert constant <= 3  # the potential half step and the diffraction step, once each
    assert count["n"] >= 80  # a z-dependent medium: a new half step at each of 80 steps


#: Richardson order of the compact stencil in a GRIN medium (a = 6 w0, K² varies by 44 %
#: across the ±4 w0 window), from grids of 10, 20, 40 points per λ0: measured 4.02. With
#: the beam touching the window edge (±2 w0, 1.8 % of the peak there) the kink of the
#: edge-padded K² at the PML costs order: 2.2 measured (wide stencil: 3.5).
COMPACT_GRIN_RATE_TOL = 0.3
#: |u(20 points per λ0) − u(40)|, the finest difference: measured 2.3e-4 (+50 %).
COMPACT_GRIN_FINEST = 3.5e-4


def test_compact_stencil_is_fourth_order_in_a_varying_medium():
    a = 6.0

    def grin(x, z):
        return K**2 * (1 - x**2 / a**2)

    fields = []
    for ppw in (10, 20, 40):
        x, z = wf.grid_for(LAMBDA, (-4, 4), (0, 1), points_per_wavelength=ppw)
        ds = wf.solve_helmholtz(grin, x, z, np.exp(-(x**2)), stencil="compact", k_ref=K)
        fields.append(ds["envelope"].values)
    step = [f[:: 2**i, :: 2**i] for i, f in enumerate(fields)]  # the coarse grid's nodes
    coarse, mid = np.abs(step[0] - step[1]).max(), np.abs(step[1] - step[2]).max()
    assert abs(np.log2(coarse / mid) - 4) <= COMPACT_GRIN_RATE_TOL, (coarse, mid)
    assert mid <= COMPACT_GRIN_FINEST, mid


def test_compact_matrix_is_symmetric_exactly_when_the_medium_is_constant():
    x, z = wf.grid_for(LAMBDA, (-2, 2), (0, 1))
    free = wf.HelmholtzSolver(K**2, x, z, solver="superlu")
    lens = wf.HelmholtzSolver(lambda x, z: K**2 * (1 - x**2 / 9), x, z, solver="superlu")
    assert free.stencil == "compact" and _pardiso.is_symmetric(free.system.matrix)
    assert not _pardiso.is_symmetric(lens.system.matrix)
    wide = wf.HelmholtzSolver(K**2, x, z, stencil="wide", solver="superlu")
    assert not _pardiso.is_symmetric(wide.system.matrix)


def _compact_by_kron(K2_ext, hx, hz, k, nlx, nlz, pml):
    """The compact operator written as the equation reads (Kronecker products): the
    reference the direct nine-diagonal assembly must reproduce."""
    from wavefield.pml import pml_stretch, pml_stretch_half

    nzu, nxu = K2_ext.shape
    sx, _ = pml_stretch(nxu - 2 * nlx, nlx, hx, k, pml, low=True, high=True)
    sz, _ = pml_stretch(nzu - nlz, nlz, hz, k, pml, low=False, high=True)
    SLx = ops.flux_second_derivative(
        pml_stretch_half(nxu - 2 * nlx, nlx, hx, k, pml, low=True, high=True), hx
    )[:, 1:-1]
    SLz = ops.flux_second_derivative(
        pml_stretch_half(nzu - nlz, nlz, hz, k, pml, low=False, high=True), hz
    )[:, 1:-1]
    X, Z = sp.kron(sp.diags(sz), SLx), sp.kron(SLz, sp.diags(sx))
    K2 = sp.diags(K2_ext.ravel())
    c = (hx**2 + hz**2) / 12
    return (
        X
        + Z
        + c * sp.kron(SLz, SLx)
        + sp.diags((np.outer(sz, sx) * K2_ext).ravel())
        + (hx**2 * X + hz**2 * Z) @ K2 / 12
    )


@pytest.mark.parametrize("varying", [False, True])
def test_compact_assembly_is_the_kronecker_operator(varying):
    rng = np.random.default_rng(3)
    K2_ext = K**2 * (1 + (0.1 * rng.random((23, 31)) if varying else np.zeros((23, 31))))
    pml = wf.PML()
    direct = ops._compact_system(K2_ext, 0.03, 0.05, K, 5, 6, pml, K2_ext[0]).matrix
    ref = _compact_by_kron(K2_ext, 0.03, 0.05, K, 5, 6, pml)
    assert abs(direct - ref).max() <= 1e-12 * abs(ref).max()


@pytest.mark.parametrize(
    "solver",
    [
        "superlu",
        pytest.param(
            "pardiso", marks=pytest.mark.skipif(not MKL_WHEELS, reason="no mkl wheel here")
        ),
    ],
)
def test_a_large_residual_refactorises_with_the_safer_method(solver, monkeypatch, caplog):
    x, z = wf.grid_for(LAMBDA, (-2, 2), (0, 1))
    good = wf.solve_helmholtz(K**2, x, z, narrow(x), solver=solver)["envelope"].values
    monkeypatch.setattr(backends, "RESIDUAL_TOL", -1.0)  # every first solution is "too inaccurate"
    redone = wf.solve_helmholtz(K**2, x, z, narrow(x), solver=solver)["envelope"].values
    assert "refactorising with" in caplog.text
    assert np.abs(redone - good).max() <= SOLVER_AGREEMENT * np.abs(good).max()
