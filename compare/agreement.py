"""How far apart two ray-schema Datasets are: rays against streamlines, ray for ray."""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from wavetraj import validate_rays


def _on(z_target: np.ndarray, z: np.ndarray, v: np.ndarray) -> np.ndarray:
    ok = np.isfinite(z) & np.isfinite(v)
    if ok.sum() < 2:
        return np.full(z_target.shape, np.nan)
    zz, vv = z[ok], v[ok]
    inside = (z_target >= zz[0]) & (z_target <= zz[-1])
    return np.where(inside, np.interp(z_target, zz, vv), np.nan)


def agreement(
    rays: xr.Dataset, lines: xr.Dataset, *, wavelength: float | None = None
) -> xr.Dataset:
    """Per-ray transverse distance and direction difference between ``rays`` and ``lines``.

    Both follow the ray schema and must have the same launch points ``x0`` (ray i against
    line i). Distances are taken at the rays' own planes where both exist (the lines are
    interpolated linearly in z, exact when both use the same planes).

    Returns
    -------
    xarray.Dataset with, per ray: ``max_distance`` and ``rms_distance`` [w0],
    ``max_angle`` [rad] (difference of the directions atan2(kx, kz)), ``z_common`` [w0]
    (how far both got) and ``distance`` (ray, step). Attrs: ``worst_ray``,
    ``worst_x0``, ``max_distance``, ``median_max_distance``, and the same in units of λ0
    (``*_lambda``) when the wavelength is known (argument, or the lines' attrs).
    """
    validate_rays(rays)
    validate_rays(lines)
    x0r, x0l = rays["x0"].values, lines["x0"].values
    if x0r.shape != x0l.shape or not np.allclose(x0r, x0l, rtol=0, atol=1e-12):
        raise ValueError(
            "rays and lines must start from the same x0 (ray i against line i); got "
            f"{x0r.size} and {x0l.size} launch points that differ: launch the streamlines "
            "from rays['x0']"
        )
    n, m = rays.sizes["ray"], rays.sizes["step"]
    dist = np.full((n, m), np.nan)
    angle = np.full((n, m), np.nan)
    for i in range(n):
        z = rays["z"].values[i]
        xl = _on(z, lines["z"].values[i], lines["x"].values[i])
        dist[i] = np.abs(rays["x"].values[i] - xl)
        al = np.arctan2(lines["kx"].values[i], lines["kz"].values[i])
        ar = np.arctan2(rays["kx"].values[i], rays["kz"].values[i])
        angle[i] = np.abs(ar - _on(z, lines["z"].values[i], al))
    with warnings.catch_warnings():  # all-NaN rows (a ray that never overlaps) give NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        max_d = np.nanmax(dist, axis=1)
        rms_d = np.sqrt(np.nanmean(dist**2, axis=1))
        max_a = np.nanmax(angle, axis=1)
    zc = np.where(np.isfinite(dist), rays["z"].values, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        z_common = np.nanmax(zc, axis=1)
    finite = np.isfinite(max_d)
    worst = int(np.nanargmax(max_d)) if finite.any() else -1
    lam = wavelength if wavelength is not None else lines.attrs.get("wavelength")
    attrs = {
        "worst_ray": worst,
        "worst_x0": float(x0r[worst]) if worst >= 0 else float("nan"),
        "max_distance": float(max_d[worst]) if worst >= 0 else float("nan"),
        "median_max_distance": float(np.median(max_d[finite])) if finite.any() else float("nan"),
        "rays_compared": int(finite.sum()),
    }
    if lam:
        attrs["wavelength"] = float(lam)
        attrs["max_distance_lambda"] = attrs["max_distance"] / float(lam)
        attrs["median_max_distance_lambda"] = attrs["median_max_distance"] / float(lam)

    def var(values, dims, units, long_name):
        return (dims, values, {"units": units, "long_name": long_name})

    return xr.Dataset(
        {
            "distance": var(dist, ("ray", "step"), "w0", "transverse distance |x_ray - x_line|"),
            "angle": var(angle, ("ray", "step"), "rad", "direction difference"),
            "max_distance": var(max_d, ("ray",), "w0", "maximum transverse distance"),
            "rms_distance": var(rms_d, ("ray",), "w0", "RMS transverse distance"),
            "max_angle": var(max_a, ("ray",), "rad", "maximum direction difference"),
            "z_common": var(z_common, ("ray",), "w0", "last z where both exist"),
        },
        coords={
            "x0": ("ray", x0r, {"units": "w0", "long_name": "launch position"}),
            "z": (("ray", "step"), rays["z"].values, {"units": "w0", "long_name": "z"}),
        },
        attrs=attrs,
    )
