"""Exact free-space propagation by the angular spectrum (plane-wave decomposition)."""

from __future__ import annotations

import numpy as np
import scipy.fft
import xarray as xr

from wavefield._grid import FFT_WORKERS, check_grid_memory, coordinate, launch_row
from wavetraj import field_dataset

#: Peak memory per (z, x) point: measured 48 bytes (4096 × 2000 points: the complex
#: propagator and envelope, K², the Dataset); 56 leaves room for xarray's copies.
BYTES_PER_POINT = 56


def envelope_phase(kx: np.ndarray, k0: float) -> np.ndarray:
    """kz − k0 for kz = sqrt(k0² − kx²), evanescent branch kz = i·sqrt(kx² − k0²).

    Computed as −kx²/(k0 + kz) for propagating waves, which keeps full relative precision
    when kx ≪ k0 (λ0/w0 = 1e-4 gives kx/k0 ~ 1e-4, where sqrt(k0² − kx²) − k0 would lose
    eight digits to cancellation).
    """
    kx2 = kx**2
    propagating = kx2 <= k0**2
    out = np.empty(kx.shape, dtype=complex)
    kz = np.sqrt(k0**2 - kx2[propagating])
    out[propagating] = -kx2[propagating] / (k0 + kz)
    out[~propagating] = 1j * np.sqrt(kx2[~propagating] - k0**2) - k0
    return out


def angular_spectrum(k0: float, x, z, u0) -> xr.Dataset:
    """Exact solution of ∇²u + k0² u = 0 for z ≥ z0 = z[0], launched with u(x, z0) = u0.

    Parameters
    ----------
    k0 : float
        Free-space wavenumber [1/length].
    x : 1-D uniform array
        Transverse grid; the solution is x-periodic with period nx·dx, so the window must
        hold the beam at every z (the error is the field that wraps round).
    z : 1-D increasing array
        Output planes, z[0] the launch line; need not be uniform.
    u0 : complex array (len(x),) or callable of x
        Launch data.

    Returns
    -------
    xarray.Dataset
        Field Dataset (method "angular-spectrum") with k_ref = k0.

    Notes
    -----
    u(x, z) = Σ_kx Û(kx) exp(i kx x + i kz (z − z0)), kz = sqrt(k0² − kx²) (Im kz ≥ 0, so
    evanescent components decay). The envelope A = u e^{−i k0 z} is evaluated with
    kz − k0 directly (see :func:`envelope_phase`), so λ0/w0 from 1e-4 to 1 is exact to
    round-off on grids that resolve the beam but not λ0.
    """
    if not (np.isfinite(k0) and k0 > 0):
        raise ValueError(f"k0 must be a positive wavenumber; got {k0!r}")
    x = coordinate(x, "x")
    z = coordinate(z, "z", uniform=False, min_points=2)
    check_grid_memory(x, z, BYTES_PER_POINT, "the angular spectrum")
    u0 = launch_row(u0, x)
    kx = 2 * np.pi * scipy.fft.fftfreq(x.size, d=x[1] - x[0])
    spectrum = scipy.fft.fft(u0, workers=FFT_WORKERS)
    phase = envelope_phase(kx, k0)
    propagator = np.exp(1j * np.outer(z - z[0], phase))
    envelope = scipy.fft.ifft(spectrum[None, :] * propagator, axis=1, workers=FFT_WORKERS)
    envelope *= np.exp(-1j * k0 * z[0])
    return field_dataset(
        x,
        z,
        envelope,
        np.full((z.size, x.size), k0**2),
        k_ref=k0,
        method="angular-spectrum",
        wavelength=2 * np.pi / k0,
        parameters={"k0": k0, "x": x, "z": z, "u0": u0},
        attrs={"evanescent_fraction": float(np.mean(kx**2 > k0**2))},
    )
