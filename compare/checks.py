"""Each scenario's own analytic anchor, beside the ray–streamline agreement.

A :class:`Check` says when it applies (from the scenario's launch and medium) and measures
its numbers from the self-consistent rays (and the geometric ones, if traced): eq. 11's
hyperbola for the free Gaussian (seed Fig. 1), Kogelnik's focal waist in the GRIN medium,
the lens's geometric focus and the Wave-Potential waist (Fig. 3), and the Klein–Gordon
time-table. A stopped ray checks nothing: its value is NaN, never a number from a partial
ray.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import scipy.integrate
import scipy.special
import xarray as xr

from compare.problem import Problem
from compare.scenarios import Scenario


def heavy_indices(sc: Scenario, rays: xr.Dataset) -> list[int]:
    """The rays nearest the scenario's ``launch.heavy`` points (drawn heavy)."""
    x0 = rays["x0"].values
    return sorted({int(np.argmin(np.abs(x0 - h))) for h in sc.launch.heavy})


def _reached_end(rays: xr.Dataset, idx) -> bool:
    return bool(np.all(rays["status"].values[np.atleast_1d(idx)].astype(str) == "ok"))


def _nearest(rays: xr.Dataset, x: float) -> int:
    return int(np.argmin(np.abs(rays["x0"].values - x)))


@dataclasses.dataclass(frozen=True)
class Check:
    """One analytic anchor: ``applies(scenario, traced_geometric)``, then
    ``measure(scenario, rays, geometric)`` → flat numbers."""

    name: str
    applies: Callable[[Scenario, bool], bool]
    measure: Callable[[Scenario, xr.Dataset, xr.Dataset | None], dict]


def _eq11(sc: Scenario, rays: xr.Dataset, geometric) -> dict:
    """Eq. 11: the heavy rays of a free Gaussian follow x0·√(1 + (z/z_R)²)."""
    idx = heavy_indices(sc, rays)
    z = rays["z"].values
    x0 = rays["x0"].values[idx, None]
    eq11 = x0 * np.sqrt(1 + (z[idx] / sc.rayleigh_length) ** 2)
    error = float(np.max(np.abs(rays["x"].values[idx] - eq11)))
    return {"eq11_heavy_error_w0": error if _reached_end(rays, idx) else float("nan")}


def _kogelnik(sc: Scenario, rays: xr.Dataset, geometric) -> dict:
    """GRIN: the x0 = 1 ray's distance from the axis at the focus πa/2 against Kogelnik's
    waist w_m²/w0 = 2a/k (w0 = 1)."""
    a, k = sc.medium.a, sc.wavenumber
    z = rays["z"].values
    j = int(np.argmin(np.abs(z[0] - np.pi * a / 2)))
    one = _nearest(rays, 1.0)
    w_rays = float(abs(rays["x"].values[one, j]) / rays["x0"].values[one])
    w_kog = 2 * a / k
    out = {
        "waist_rays_w0": w_rays,
        "waist_kogelnik_w0": w_kog,
        "waist_relative_error": abs(w_rays - w_kog) / w_kog,
    }
    if geometric is not None:
        out["waist_geometric_w0"] = float(np.nanmax(np.abs(geometric["x"].values[:, j])))
    return out


def _lens(sc: Scenario, rays: xr.Dataset, geometric) -> dict:
    """Lens (Fig. 3): where the geometric x0 = 1 ray meets the axis, how close it gets,
    and the self-consistent ray's waist."""
    z = rays["z"].values
    xg, xs = np.abs(geometric["x"].values), np.abs(rays["x"].values)
    one = _nearest(rays, 1.0)
    return {
        "focus_z_geometric_w0": float(z[0, int(np.nanargmin(xg[one]))]),
        "waist_geometric_w0": float(np.nanmin(xg[one])),
        "waist_rays_w0": float(np.min(xs[one])) if _reached_end(rays, one) else np.nan,
    }


def _timetable(sc: Scenario, rays: xr.Dataset, geometric) -> dict:
    """Klein–Gordon: the axial ray's time of flight against z/v with v = k/E (c = 1)."""
    c = _nearest(rays, 0.0)
    k = sc.wavenumber
    v = k / np.sqrt(k**2 + sc.dynamics.rest_mass**2)
    return {
        "time_of_flight_axis": float(rays["t"].values[c, -1]),
        "time_of_flight_free": float(rays["z"].values[c, -1] / v),
        "velocity_over_c": float(v),
    }


def _straight_rays(p: Problem, rays: xr.Dataset, geometric) -> dict:
    """An eigenmode (R independent of z): every ray stays at its launch x0. The error is
    the largest |x(z) − x0| over the rays that reached z_end (NaN if none did)."""
    ok = rays["status"].values.astype(str) == "ok"
    dev = np.abs(rays["x"].values[ok] - rays["x0"].values[ok, None])
    return {"exact_error_w0": float(np.max(dev)) if ok.any() else float("nan")}


def _grin_centroid(p: Problem, rays: xr.Dataset, geometric) -> dict:
    """A Gaussian launched at x = 0 with tilt θ (sin θ = φ0'(0)/k) into K² = k²(1 − x²/a²):
    the beam stays symmetric about its centroid, so the Wave Potential's force vanishes on
    the ray launched at the centre, which then moves like the centroid's ray,
    x(z) = a sin θ sin(z / (a cos θ)) (kz = k cos θ is conserved in a z-independent
    medium; the paraxial centroid a θ sin(z/a) differs from it by O(θ²): 1.6e-4 w0 at
    θ = 0.01, z = πa). The error is the centre ray's largest departure from it."""
    sc = p.sc
    c = _nearest(rays, 0.0)
    sin_t = float(p.launch.slope(np.array([0.0]))[0]) / sc.wavenumber
    cos_t = np.sqrt(1 - sin_t**2)
    a = sc.medium.a
    z = rays["z"].values[c]
    exact = a * sin_t * np.sin(z / (a * cos_t))
    err = float(np.max(np.abs(rays["x"].values[c] - exact)))
    return {
        "exact_error_w0": err if _reached_end(rays, c) else float("nan"),
        "centroid_peak_w0": float(np.max(np.abs(exact))),
    }


#: Integration tolerance of the exact Airy streamlines [w0] (far below every tolerance).
AIRY_RTOL = 1e-10


def airy_streamlines(x0, z, k: float, decay: float) -> np.ndarray:
    """Exact paraxial streamlines of u0 = Ai(x)·e^{decay·x} (w0 = 1), shape (ray, z).

    The paraxial solution (Siviloglou and Christodoulides 2007), with ξ = z/k,
    u = Ai(x − ξ²/4 + i·decay·ξ)·exp(decay·x − decay·ξ²/2 + i(xξ/2 − decay²ξ/2 − ξ³/12)),
    has ∂φ/∂x = ξ/2 + Im Ai'(ζ)/Ai(ζ), ζ = x − ξ²/4 + i·decay·ξ, and its streamlines obey
    dx/dξ = ∂φ/∂x (for decay = 0 every one is the parabola x0 + ξ²/4)."""

    def rhs(xi, x):
        zeta = x - xi**2 / 4 + 1j * decay * xi
        ai, aip, _, _ = scipy.special.airy(zeta)
        return xi / 2 + np.imag(aip / ai)

    xi = np.asarray(z, float) / k
    out = np.full((len(x0), xi.size), np.nan)
    for i, start in enumerate(x0):
        sol = scipy.integrate.solve_ivp(
            rhs,
            (xi[0], xi[-1]),
            [start],
            t_eval=xi,
            rtol=AIRY_RTOL,
            atol=AIRY_RTOL,
            method="DOP853",
        )
        out[i, : sol.y.shape[1]] = sol.y[0]
    return out


def _airy_streamlines(p: Problem, rays: xr.Dataset, geometric) -> dict:
    """The rays that reached z_end against the Airy beam's exact paraxial streamlines
    (:func:`airy_streamlines`); NaN if none did."""
    ok = np.flatnonzero(rays["status"].values.astype(str) == "ok")
    if not ok.size:
        return {"exact_error_w0": float("nan")}
    z = rays["z"].values[ok[0]]
    exact = airy_streamlines(rays["x0"].values[ok], z, p.wavenumber, p.sc.constants["decay"])
    err = np.abs(rays["x"].values[ok] - exact)
    return {
        "exact_error_w0": float(np.nanmax(err)),
        "exact_median_error_w0": float(np.median(np.nanmax(err, axis=1))),
    }


EXACT = {
    "straight-rays": _straight_rays,
    "grin-centroid": _grin_centroid,
    "airy-streamlines": _airy_streamlines,
}


def _gaussian(sc: Scenario) -> bool:
    return sc.launch.profile == "gaussian" and sc.launch.phase is None


CHECKS = (
    Check("eq11", lambda sc, g: sc.medium.kind == "free" and _gaussian(sc), _eq11),
    Check("kogelnik", lambda sc, g: sc.medium.kind == "grin" and _gaussian(sc), _kogelnik),
    Check("lens", lambda sc, g: sc.medium.kind == "lens" and g, _lens),
    Check("time-table", lambda sc, g: sc.dynamics.kind == "klein-gordon", _timetable),
)


def specific(p: Problem, rays: xr.Dataset, geometric: xr.Dataset | None) -> dict:
    """The numbers of every check that applies to the scenario, and of its exact check
    (``run.exact``: ``exact_error_w0``, which the verdict holds to ``tolerance.exact``)."""
    sc = p.sc
    out = {}
    for check in CHECKS:
        if check.applies(sc, geometric is not None):
            out.update(check.measure(sc, rays, geometric))
    if sc.run.exact:
        out.update(EXACT[sc.run.exact](p, rays, geometric))
    return out
