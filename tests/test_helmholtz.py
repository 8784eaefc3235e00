"""Full-wave Helmholtz solver against the exact angular-spectrum field (λ0/w0 = 0.5)."""

from __future__ import annotations

import numpy as np
import pytest

import wavefield as wf
from wavefield.helmholtz import DEFAULT_POINTS_PER_WAVELENGTH

from .helpers import observed_order

LAMBDA = 0.5  # λ0/w0 of the test
K = 2 * np.pi / LAMBDA
RATE_TOL = 0.15  # three refinements in the asymptotic range; issue 3's bound
DEFAULT_ERROR_MAX = 1e-3  # issue 3: relative L2 error at the default resolution, accuracy 4
PML_REFLECTION_MAX = 1e-4  # issue 3: reflection relative to the incident amplitude


def exact(x, z, u0=lambda x: np.exp(-(x**2))):
    """Angular-spectrum solution on a window 40 w0 wider each side (same spacing)."""
    h = x[1] - x[0]
    pad = int(40 / h)
    xw = x[0] + h * np.arange(-pad, x.size + pad)
    ref = wf.angular_spectrum(K, xw, z, u0(xw))
    return ref["envelope"].values[:, pad : pad + x.size]


def rel_l2(ds, x, z):
    ref = exact(x, z)
    return np.linalg.norm(ds["envelope"].values - ref) / np.linalg.norm(ref)


#: Error at the finest grid of each order test: measured 2.3e-2, 2.0e-4, 7.5e-5; the
#: ceilings allow 50 % so that a lost constant (not only a lost order) fails.
FINEST_ERROR = {(2, "wide"): 3.5e-2, (4, "wide"): 3e-4, (4, "compact"): 1.1e-4}


@pytest.mark.parametrize(
    ("accuracy", "stencil", "ppws"),
    [(2, "wide", (16, 23, 32)), (4, "wide", (14, 20, 28)), (4, "compact", (10, 14, 20, 28))],
)
def test_observed_order_matches_accuracy(accuracy, stencil, ppws):
    hs, errs = [], []
    for ppw in ppws:
        x, z = wf.grid_for(LAMBDA, (-4, 4), (0, 2), accuracy=accuracy, points_per_wavelength=ppw)
        ds = wf.solve_helmholtz(K**2, x, z, np.exp(-(x**2)), accuracy=accuracy, stencil=stencil)
        assert ds.attrs["stencil"] == stencil
        hs.append(x[1] - x[0])
        errs.append(rel_l2(ds, x, z))
    order = observed_order(hs, errs)
    assert abs(order - accuracy) <= RATE_TOL, (order, errs)
    assert errs[-1] <= FINEST_ERROR[accuracy, stencil], errs


@pytest.mark.slow
def test_observed_order_accuracy_6():
    hs, errs = [], []
    for ppw in (12, 17, 24):
        x, z = wf.grid_for(LAMBDA, (-4, 4), (0, 2), accuracy=6, points_per_wavelength=ppw)
        ds = wf.solve_helmholtz(K**2, x, z, np.exp(-(x**2)), accuracy=6)
        hs.append(x[1] - x[0])
        errs.append(rel_l2(ds, x, z))
    # Measured 6.39: successive pairs give 6.8 then 5.95 — still pre-asymptotic from above,
    # and finer grids reach the 1e-7 floor of the truncated launch window. Assert the
    # declared order is at least reached.
    order = observed_order(hs, errs)
    assert order >= 6 - RATE_TOL, (order, errs)


def test_default_resolution_reaches_1e3():
    assert DEFAULT_POINTS_PER_WAVELENGTH[4] == 28  # the wide stencil's
    x, z = wf.grid_for(LAMBDA, (-3.5, 3.5), (0, 5), stencil="wide")
    wide = wf.solve_helmholtz(K**2, x, z, np.exp(-(x**2)), stencil="wide")
    assert rel_l2(wide, x, z) <= DEFAULT_ERROR_MAX
    x, z = wf.grid_for(LAMBDA, (-3.5, 3.5), (0, 5))  # 14 λ × 10 λ, compact stencil
    ds = wf.solve_helmholtz(lambda x, z: K**2 + 0 * x, x, z, lambda x: np.exp(-(x**2)))
    err = rel_l2(ds, x, z)
    assert err <= DEFAULT_ERROR_MAX, err
    assert ds.attrs["method"] == "helmholtz-fd" and ds.attrs["k_ref"] == pytest.approx(K)
    assert (
        ds.attrs["points_per_wavelength"] == pytest.approx(24) and ds.attrs["stencil"] == "compact"
    )


def test_pml_reflection_is_below_1e4():
    """A beam at 40° hits the x-max and z-max layers; the reflected field is the difference
    from the same solve on a larger domain (same stencil, so discretisation error cancels)."""
    theta = np.radians(40)

    def u0(x):  # centred at x = -1 so the launch row is ~1e-7 at the x edges
        return np.exp(-((x + 1) ** 2) + 1j * K * np.sin(theta) * x)

    x, z = wf.grid_for(LAMBDA, (-4, 3), (0, 5), points_per_wavelength=16)
    h = x[1] - x[0]
    xb = np.concatenate([x, x[-1] + h * np.arange(1, int(6 / h))])
    zb = np.concatenate([z, z[-1] + h * np.arange(1, int(4 / h))])
    big = wf.solve_helmholtz(K**2, xb, zb, u0(xb), k_ref=K)["envelope"].values
    small = wf.solve_helmholtz(K**2, x, z, u0(x), k_ref=K)["envelope"].values
    incident = max(np.abs(big[: z.size, x.size - 1]).max(), np.abs(big[z.size - 1]).max())
    assert incident > 0.5  # the beam really reaches both layers
    reflection = np.abs(small - big[: z.size, : x.size]).max() / incident
    assert reflection <= PML_REFLECTION_MAX, reflection
    print(f"PML reflection {reflection:.3g} of incident {incident:.3g}")


def test_coarse_grid_error_names_points_per_wavelength_and_fix():
    x, z = np.linspace(-3, 3, 31), np.linspace(0, 3, 16)
    with pytest.raises(ValueError, match=r"points per wavelength at x=.*nx >= \d+ and nz >= \d+"):
        wf.solve_helmholtz(K**2, x, z, np.exp(-(x**2)))


def test_forbidden_region_is_allowed_and_reported():
    x, z = wf.grid_for(LAMBDA, (-3, 3), (0, 3), points_per_wavelength=12)

    def K2(x, z):  # a barrier K² < 0 for 2 < z < 2.5: the wave tunnels (evanescent)
        return np.where((z > 2) & (z < 2.5), -0.2 * K**2, K**2)

    ds = wf.solve_helmholtz(K2, x, z, np.exp(-(x**2)))
    assert 0 < ds.attrs["forbidden_fraction"] < 0.25
    assert "z=[2.0" in ds.attrs["forbidden_region"]
    R = np.abs(ds["envelope"].values)
    assert np.all(np.isfinite(R))
    # Evanescent decay across the barrier: exp(-κ·0.5) with κ = sqrt(0.2)·K ≈ 2.8 → ≈ 0.25.
    assert R[z > 2.6].max() < 0.5 * R[z < 1.9].max()


def test_bad_arguments_are_named():
    x, z = wf.grid_for(LAMBDA, (-2, 2), (0, 1), points_per_wavelength=10)
    with pytest.raises(ValueError, match="accuracy must be one of"):
        wf.solve_helmholtz(K**2, x, z, np.exp(-(x**2)), accuracy=3)
    with pytest.raises(ValueError, match="solver must be 'auto' or one of"):
        wf.solve_helmholtz(K**2, x, z, np.exp(-(x**2)), solver="magic")
    with pytest.raises(ValueError, match=r"u0 has shape \(3,\)"):
        wf.solve_helmholtz(K**2, x, z, np.ones(3))
    with pytest.raises(ValueError, match="K2 array has shape"):
        wf.solve_helmholtz(np.ones((2, 2)), x, z, np.exp(-(x**2)))
    with pytest.raises(ValueError, match="x must be uniformly spaced"):
        wf.solve_helmholtz(K**2, x**3, z, np.exp(-(x**2)))
    with pytest.raises(ValueError, match="stencil must be 'auto' or one of"):
        wf.solve_helmholtz(K**2, x, z, np.exp(-(x**2)), stencil="box")
    with pytest.raises(ValueError, match="stencil='compact' is the fourth-order plain-form"):
        wf.solve_helmholtz(K**2, x, z, np.exp(-(x**2)), accuracy=6, stencil="compact")
    with pytest.raises(ValueError, match=r"PML\.wavelengths must be a positive"):
        wf.PML(wavelengths=0)
    with pytest.raises(ValueError, match=r"K2 = .* <= 0 at the launch peak"):
        wf.solve_helmholtz(-1.0, x, z, np.exp(-(x**2)))


def test_spsolve_and_superlu_agree():
    x, z = wf.grid_for(LAMBDA, (-2, 2), (0, 1.5), points_per_wavelength=12)
    a = wf.solve_helmholtz(K**2, x, z, np.exp(-(x**2)))["envelope"].values
    b = wf.solve_helmholtz(K**2, x, z, np.exp(-(x**2)), solver="spsolve")["envelope"].values
    np.testing.assert_allclose(a, b, atol=1e-10)
