"""Run one scenario: the judging field, the rays, their streamlines, and the agreement."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable

import numpy as np
import xarray as xr

import raytrace as rt
import wavefield as wf
from compare.agreement import agreement
from compare.scenarios import Scenario
from compare.streamlines import streamlines

log = logging.getLogger(__name__)

#: At most this many rays are compared with streamlines (every k-th ray): enough to see
#: every part of the beam, and the streamline integration stays under a second or two.
MAX_COMPARED = 65
#: Split-step length of the paraxial judge, in Rayleigh lengths (second order in dz:
#: measured error < 1e-6 of the peak at this step in the GRIN test).
PARAXIAL_DZ = 2e-3
#: Fewest z planes of an angular-spectrum or split-step judging field, and fewest per
#: Rayleigh length: the streamlines interpolate ∇φ in z between planes. Measured on the
#: bell to 3 z_R (1024 rays over ±2.5 w0): with 121 planes 12 % of the core streamlines
#: are > 1e-2 w0 from converged ones, with 301 the rays' median distance to them is
#: 1.0e-5 w0 and with 1201 9.6e-6.
MIN_FIELD_PLANES = 121
FIELD_PLANES_PER_ZR = 100
#: The angular-spectrum judge's window is widened by the sideways reach of plane waves
#: holding more than GRAZING_LEVEL of the launch spectrum's peak, at most
#: MAX_GRAZING_ANGLE from the axis, and by at most MAX_PAD w0 (see _angular_judge).
GRAZING_LEVEL = 1e-6
MAX_GRAZING_ANGLE = 89.0
MAX_PAD = 160.0
#: Lens edge: the focusing region ends with a tanh step this fraction of its length wide.
LENS_EDGE = 0.02


@dataclasses.dataclass
class Result:
    """Everything one scenario produced; ``metrics`` is flat JSON-ready numbers/strings."""

    scenario: Scenario
    field: xr.Dataset
    rays: xr.Dataset
    lines: xr.Dataset
    agreement: xr.Dataset
    geometric: xr.Dataset | None
    metrics: dict


def launch_profile(sc: Scenario) -> Callable:
    profile, s = sc.launch.profile, sc.launch.separation
    if profile == "gaussian":
        return lambda x: np.exp(-(x**2))
    if profile == "bell":
        return lambda x: np.exp(-(x**4))
    return lambda x: np.exp(-((x - s / 2) ** 2)) + np.exp(-((x + s / 2) ** 2))


def _focusing(sc: Scenario):
    """S(z): 1 inside the focusing region, 0 outside (smooth edge for the lens)."""
    m = sc.medium
    if m.kind == "free":
        return None
    if m.kind == "grin":
        return lambda z: np.ones_like(np.asarray(z, float))
    width = LENS_EDGE * m.length
    return lambda z: 0.5 * (1 - np.tanh((np.asarray(z, float) - m.length) / width))


def medium(sc: Scenario) -> tuple[float, Callable | float]:
    """(K0, K²) with K² = K0²(1 − S(z) x²/a²): the field side of the scenario."""
    K0 = 2 * np.pi / sc.launch.wavelength
    S = _focusing(sc)
    if S is None:
        return K0, K0**2
    a = sc.medium.a
    return K0, lambda x, z: K0**2 * (1 - S(z) * np.asarray(x) ** 2 / a**2)


def dynamics(sc: Scenario):
    """The ray side: a Schrödinger or Klein–Gordon particle with the same K²."""
    K0, K2 = medium(sc)
    S = _focusing(sc)
    if sc.dynamics.kind == "klein-gordon":
        m0 = sc.dynamics.rest_mass
        E = float(np.sqrt(K0**2 + m0**2))  # c = ħ = 1
        V = None if S is None else (lambda x, z: E - np.sqrt(m0**2 + K2(x, z)))
        return rt.KleinGordon(V, E=E, rest_mass=m0)
    E = K0**2 / 2
    if S is None:
        return rt.Schrodinger(None, E=E)
    a = sc.medium.a

    def V(x, z):
        return E * S(z) * np.asarray(x) ** 2 / a**2

    def grad_V(x, z):
        h = 1e-6 * max(sc.medium.length, 1.0)
        dS = (S(z + h) - S(z - h)) / (2 * h)
        return 2 * E * S(z) * x / a**2, E * dS * x**2 / a**2

    return rt.Schrodinger(V, E=E, grad_V=grad_V)


def _grid(sc: Scenario):
    zR = sc.rayleigh_length
    z_end = sc.run.z_end * zR
    growth = np.sqrt(1 + sc.run.z_end**2)
    half = sc.launch.separation / 2 if sc.launch.profile == "two-beams" else 0.0
    W = sc.run.window * max(growth, 1.0) + half
    return W, z_end


def field_planes(sc: Scenario) -> int:
    """Planes of the judging field: at least MIN_FIELD_PLANES (the streamlines interpolate
    ∇φ in z between them; 21 planes over 3 z_R put the x0 = 3 w0 streamline 1e-2 w0 off,
    measured) and FIELD_PLANES_PER_ZR per Rayleigh length, and the output planes a subset
    of them."""
    fewest = max(MIN_FIELD_PLANES, int(np.ceil(FIELD_PLANES_PER_ZR * sc.run.z_end)) + 1)
    per = int(np.ceil((fewest - 1) / (sc.run.steps - 1)))
    return (sc.run.steps - 1) * per + 1


def grazing_pad(u0, wavelength: float, z_end: float, h: float) -> float:
    """How far [w0] light of the launch travels sideways by z_end: the steepest propagating
    plane wave holding more than GRAZING_LEVEL of the launch spectrum's peak, at most
    MAX_GRAZING_ANGLE, gives z_end·tan θ (capped at MAX_PAD)."""
    k = 2 * np.pi / wavelength
    x = h * (np.arange(2**16) - 2**15)
    spectrum = np.abs(np.fft.fft(u0(x)))
    kx = np.abs(2 * np.pi * np.fft.fftfreq(x.size, d=h))
    strong = (spectrum > GRAZING_LEVEL * spectrum.max()) & (kx < k)
    theta = np.arcsin(min(kx[strong].max() / k, np.sin(np.radians(MAX_GRAZING_ANGLE))))
    return float(min(z_end * np.tan(theta), MAX_PAD))


def _angular_judge(sc: Scenario, K0: float, W: float, z: np.ndarray, u0) -> xr.Dataset:
    """The exact free-space field on ±W, computed on a window wider by :func:`grazing_pad`
    on each side and cropped: the angular spectrum is periodic, and at λ0/w0 ~ 1 light
    leaving at grazing angles would come back round. Measured for the bell at λ0/w0 = 1:
    the x0 = ±1 streamline moved 7.7e-3 w0 between a ±8.5 w0 window and a ±160 w0 one
    (6e-4 at ±40, 1.6e-4 at ±80; 1.7e-4 from a ±200 one with this padding)."""
    nx = sc.run.nx
    h = 2 * W / nx
    pad = int(np.ceil(grazing_pad(u0, sc.launch.wavelength, z[-1], h) / h))
    x = -W + h * np.arange(-pad, nx + pad)
    full = wf.angular_spectrum(K0, x, z, u0(x))
    cropped = full.isel(x=slice(pad, pad + nx))
    cropped.attrs["padded_window"] = float(pad * h + W)
    return cropped


def judge_field(sc: Scenario) -> xr.Dataset:
    """The independent wave solution named by ``run.judge``."""
    K0, K2 = medium(sc)
    W, z_end = _grid(sc)
    u0 = launch_profile(sc)
    if sc.run.judge == "helmholtz":
        x, z = wf.grid_for(sc.launch.wavelength, (-W, W), (0, z_end))
        return wf.solve_helmholtz(K2, x, z, u0(x))
    z = np.linspace(0, z_end, field_planes(sc))
    if sc.run.judge == "angular":
        return _angular_judge(sc, K0, W, z, u0)
    x = np.linspace(-W, W, sc.run.nx, endpoint=False)
    return wf.propagate_paraxial(K2, x, z, u0(x), k_ref=K0, dz=PARAXIAL_DZ * sc.rayleigh_length)


def compared(candidates: np.ndarray, limit: int = MAX_COMPARED) -> np.ndarray:
    """At most about ``limit`` of the ray indices ``candidates``: every k-th, and the last."""
    stride = int(np.ceil(candidates.size / limit))
    pick = candidates[::stride]
    if candidates[-1] not in pick:
        pick = np.append(pick, candidates[-1])
    return pick


def output_planes(sc: Scenario, field: xr.Dataset) -> np.ndarray:
    """The ``run.steps`` output planes, a subset of the judging field's planes."""
    zf = field["z"].values
    if sc.run.judge == "helmholtz":  # its planes are its grid rows: pick the nearest ones
        rows = np.unique(np.round(np.linspace(0, zf.size - 1, sc.run.steps)).astype(int))
        return zf[rows]
    return zf[:: (zf.size - 1) // (sc.run.steps - 1)]


def run_scenario(sc: Scenario) -> Result:
    """Compute field, rays (self-consistent, and geometric if asked), streamlines, agreement."""
    t0 = time.perf_counter()
    field = judge_field(sc)
    t_field = time.perf_counter() - t0
    planes = output_planes(sc, field)
    x0 = rt.launch_points(sc.launch.rays, sc.launch.span)
    dyn = dynamics(sc)
    R0 = launch_profile(sc)
    t1 = time.perf_counter()
    rays = rt.trace(dyn, x0, R0, z_out=planes, resample=sc.run.resample)
    t_rays = time.perf_counter() - t1
    geometric = (
        rt.trace(dyn, x0, R0, z_out=planes, wave_potential="none") if sc.run.geometric else None
    )
    pick = compared(np.arange(x0.size))
    t2 = time.perf_counter()
    lines = streamlines(field, x0[pick], z_out=planes)
    t_lines = time.perf_counter() - t2
    agree = agreement(rays.isel(ray=pick), lines, wavelength=sc.launch.wavelength)
    metrics = {
        "scenario": sc.name,
        "figure": sc.figure,
        "wavelength_over_w0": sc.launch.wavelength,
        "judge": field.attrs["method"],
        "rays": int(x0.size),
        "rays_ok": int((rays["status"].values == "ok").sum()),
        "rays_compared": int(agree.attrs["rays_compared"]),
        "max_distance_w0": agree.attrs["max_distance"],
        "median_max_distance_w0": agree.attrs["median_max_distance"],
        "max_distance_lambda": agree.attrs.get("max_distance_lambda", float("nan")),
        "worst_x0": agree.attrs["worst_x0"],
        "tolerance_w0": sc.tolerance.max_distance,
        "time_field_s": t_field,
        "time_rays_s": t_rays,
        "time_streamlines_s": t_lines,
    }
    metrics.update(verdict(sc, rays, lines, agree, planes))
    metrics.update(_specific_checks(sc, rays, geometric))
    log.info(
        "%s: max distance %.3g w0 (tolerance %.3g): %s",
        sc.name,
        metrics["max_distance_w0"],
        sc.tolerance.max_distance,
        metrics["verdict"],
    )
    return Result(sc, field, rays, lines, agree, geometric, metrics)


def status_counts(status) -> str:
    """ "ok: 30, node: 2": how many rays ended with each status, most common first."""
    names, counts = np.unique(np.asarray(status).astype(str), return_counts=True)
    order = np.argsort(-counts, kind="stable")
    return ", ".join(f"{names[i]}: {int(counts[i])}" for i in order)


def verdict(sc: Scenario, rays: xr.Dataset, lines: xr.Dataset, agree: xr.Dataset, planes) -> dict:
    """PASS only when the rays completed, the streamlines were compared with them over
    enough of the run, and the distance is within tolerance; otherwise FAIL, with why.

    ``completed_fraction``: share of the rays that reached z_end ("ok"); required
    ``tolerance.completed``. ``judged_fraction``: the compared length (z0..z_end) over
    which each compared ray and its streamline both exist, averaged over the compared
    rays; required ``tolerance.judged``. A ray that stopped at the launch line would
    otherwise be "0 w0 from its streamline" — a PASS on nothing."""
    tol = sc.tolerance
    status = rays["status"].values.astype(str)
    completed = float(np.mean(status == "ok"))
    span = float(planes[-1] - planes[0])
    with np.errstate(invalid="ignore"):
        length = np.nan_to_num((agree["z_common"].values - planes[0]) / span, nan=0.0)
    judged = float(np.mean(np.clip(length, 0.0, 1.0))) if length.size else 0.0
    distance = agree.attrs["max_distance"]
    reasons = []
    if completed < tol.completed:
        reasons.append(
            f"{int((status != 'ok').sum())} of {status.size} rays stopped before z_end "
            f"({status_counts(status[status != 'ok'])}); {tol.completed:.0%} must complete"
        )
    if judged < tol.judged:
        reasons.append(
            f"rays and streamlines were compared over {judged:.0%} of the run "
            f"(streamlines: {status_counts(lines['status'].values)}); {tol.judged:.0%} required"
        )
    if not np.isfinite(distance):
        reasons.append("no ray could be compared with its streamline")
    elif distance > tol.max_distance:
        reasons.append(
            f"max distance {distance:.3g} w0 exceeds the tolerance {tol.max_distance:.3g} w0"
        )
    return {
        "completed_fraction": completed,
        "completed_required": tol.completed,
        "ray_status": status_counts(status),
        "lines_ok": int((lines["status"].values.astype(str) == "ok").sum()),
        "line_status": status_counts(lines["status"].values),
        "judged_fraction": judged,
        "judged_required": tol.judged,
        "passed": not reasons,
        "verdict": "; ".join(reasons) if reasons else "all checks met",
    }


def _reached_end(rays: xr.Dataset, idx) -> bool:
    return bool(np.all(rays["status"].values[np.atleast_1d(idx)].astype(str) == "ok"))


def heavy_indices(sc: Scenario, rays: xr.Dataset) -> list[int]:
    x0 = rays["x0"].values
    return sorted({int(np.argmin(np.abs(x0 - h))) for h in sc.launch.heavy})


def _specific_checks(sc: Scenario, rays: xr.Dataset, geometric) -> dict:
    """The figure's own analytic anchor: eq. 11, Kogelnik's waist, the time-table."""
    out = {}
    zR = sc.rayleigh_length
    z = rays["z"].values
    if sc.medium.kind == "free" and sc.launch.profile == "gaussian":
        idx = heavy_indices(sc, rays)
        x0 = rays["x0"].values[idx, None]
        eq11 = x0 * np.sqrt(1 + (z[idx] / zR) ** 2)
        out["eq11_heavy_error_w0"] = (
            float(np.max(np.abs(rays["x"].values[idx] - eq11)))
            if _reached_end(rays, idx)
            else float("nan")  # a stopped heavy ray checks nothing
        )
    if sc.medium.kind == "grin" and sc.launch.profile == "gaussian":
        a, K0 = sc.medium.a, 2 * np.pi / sc.launch.wavelength
        zf = np.pi * a / 2
        j = int(np.argmin(np.abs(z[0] - zf)))
        one = int(np.argmin(np.abs(rays["x0"].values - 1.0)))
        w_rays = float(abs(rays["x"].values[one, j]) / rays["x0"].values[one])
        w_kog = 2 * a / K0
        out["waist_rays_w0"] = w_rays
        out["waist_kogelnik_w0"] = w_kog
        out["waist_relative_error"] = abs(w_rays - w_kog) / w_kog
        if geometric is not None:
            out["waist_geometric_w0"] = float(np.nanmax(np.abs(geometric["x"].values[:, j])))
    if sc.medium.kind == "lens" and geometric is not None:
        xg = np.abs(geometric["x"].values)
        xr_ = np.abs(rays["x"].values)
        one = int(np.argmin(np.abs(rays["x0"].values - 1.0)))
        out["focus_z_geometric_w0"] = float(z[0, int(np.nanargmin(xg[one]))])
        out["waist_geometric_w0"] = float(np.nanmin(xg[one]))
        out["waist_rays_w0"] = float(np.min(xr_[one])) if _reached_end(rays, one) else np.nan
    if sc.dynamics.kind == "klein-gordon":
        c = int(np.argmin(np.abs(rays["x0"].values)))
        K0 = 2 * np.pi / sc.launch.wavelength
        E = np.sqrt(K0**2 + sc.dynamics.rest_mass**2)
        v = K0 / E
        t_end, z_end = rays["t"].values[c, -1], rays["z"].values[c, -1]
        out["time_of_flight_axis"] = float(t_end)
        out["time_of_flight_free"] = float(z_end / v)
        out["velocity_over_c"] = float(v)
    return out
