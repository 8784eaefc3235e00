"""compare: streamlines of exact fields, agreement between rays and streamlines."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp

import compare
import raytrace as rt
import wavefield as wf
import wavetraj

from .helpers import gaussian_beam

STREAMLINE_TOL = 1e-6  # issue 5: streamlines of a well-resolved exact field to 1e-6 w0


def paraxial_field(lam, nx=321, z_rayleigh=2.0):
    k = 2 * np.pi / lam
    zR = k / 2
    x = np.linspace(-8, 8, nx)
    z = np.linspace(0, z_rayleigh * zR, 201)
    X, Z = np.meshgrid(x, z)
    return wavetraj.field_dataset(
        x,
        z,
        gaussian_beam(X, Z, zR),
        np.full(X.shape, k**2),
        k_ref=k,
        method="exact-paraxial",
        wavelength=lam,
    )


def test_streamlines_of_the_paraxial_gaussian_are_x0_w_over_w0():
    lam = 1e-4
    zR = np.pi / lam
    lines = compare.streamlines(paraxial_field(lam), np.linspace(-2, 2, 9))
    exact = lines["x0"].values[:, None] * np.sqrt(1 + (lines["z"].values / zR) ** 2)
    assert (lines["status"].values == "ok").all()
    assert np.max(np.abs(lines["x"].values - exact)) <= STREAMLINE_TOL
    wavetraj.validate_rays(lines)


def test_streamlines_of_the_angular_spectrum_gaussian_at_lambda_half():
    """Reference: the same periodic plane-wave sum evaluated exactly at every point
    (u = Σ c_j e^{i(q_j x + kz_j z)}), integrated by DOP853 at rtol 1e-12."""
    lam = 0.5
    k = 2 * np.pi / lam
    h = lam / 10
    x = np.arange(-20, 20, h)
    z = np.arange(0, 4 + h / 2, h)
    u0 = np.exp(-(x**2))
    field = wf.angular_spectrum(k, x, z, u0)
    x0 = np.linspace(-1.5, 1.5, 7)
    lines = compare.streamlines(field, x0)
    q = 2 * np.pi * np.fft.fftfreq(x.size, d=h)
    c = np.fft.fft(u0) * np.exp(-1j * q * x[0]) / x.size
    kz = np.sqrt((k**2 - q**2).astype(complex))

    def rhs(zz, y):
        phase = c * np.exp(1j * (q * y[0] + kz * zz))
        u = phase.sum()
        kx_ = ((1j * q * phase).sum() / u).imag  # Im(∂x u/u)
        kz_ = ((1j * kz * phase).sum() / u).imag  # Im(∂z u/u)
        return [kx_ / kz_]

    for i, xi in enumerate(x0):
        ref = solve_ivp(rhs, (0, z[-1]), [xi], t_eval=z, rtol=1e-12, atol=1e-12, method="DOP853")
        assert np.max(np.abs(lines["x"].values[i] - ref.y[0])) <= STREAMLINE_TOL


def test_streamlines_stop_at_nodes_and_edges():
    lam = 1e-4
    field = paraxial_field(lam)
    lines = compare.streamlines(field, np.array([0.0, 6.0, 9.0]))
    assert lines["status"].values.tolist() == ["ok", "node", "domain"]


def test_agreement_of_rays_and_streamlines():
    lam = 1e-4
    field = paraxial_field(lam)
    x0 = np.linspace(-2, 2, 33)
    lines = compare.streamlines(field, x0)
    rays = rt.trace(
        rt.Schrodinger.for_wavelength(lam), x0, lambda x: np.exp(-(x**2)), z_out=field["z"].values
    )
    a = compare.agreement(rays, lines)
    assert a.attrs["max_distance"] <= 1e-6
    assert a.attrs["rays_compared"] == 33
    assert a.attrs["max_distance_lambda"] == pytest.approx(a.attrs["max_distance"] / lam)
    assert np.all(a["max_angle"].values < 1e-9)
    # a deliberate offset is measured as such
    shifted = rays.copy(deep=True)
    shifted["x"] = shifted["x"] + 1e-3
    # (the rays sit ~3e-8 w0 from the streamlines, hence the relative tolerance)
    assert compare.agreement(shifted, lines).attrs["median_max_distance"] == pytest.approx(
        1e-3, rel=1e-4
    )


def test_agreement_needs_the_same_launch_points():
    lam = 1e-4
    field = paraxial_field(lam)
    a = compare.streamlines(field, np.array([0.0, 1.0]))
    b = compare.streamlines(field, np.array([0.0, 1.5]))
    with pytest.raises(ValueError, match="same x0"):
        compare.agreement(a, b)
