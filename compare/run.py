"""Run one scenario: the judging field, the rays, their streamlines, and the agreement."""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np
import xarray as xr

import raytrace as rt
from compare import checks
from compare.agreement import agreement
from compare.problem import Problem
from compare.scenarios import Scenario
from compare.streamlines import streamlines

log = logging.getLogger(__name__)

#: At most this many rays are compared with streamlines (every k-th ray): enough to see
#: every part of the beam, and the streamline integration stays under a second or two.
MAX_COMPARED = 65
#: Ray families and the Wave Potential each is traced with ("field": the judging field's).
FAMILIES = {"self_consistent": "self-consistent", "field_driven": "field", "geometric": "none"}


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


def trace_family(
    p: Problem, family: str, planes, x0=None, field: xr.Dataset | None = None
) -> xr.Dataset:
    """The rays of one family (:data:`FAMILIES`) from ``x0`` (default: the scenario's
    launch points) to the output ``planes``; "field_driven" needs the judging ``field``."""
    if family not in FAMILIES:
        raise ValueError(f"family: {family!r} is not one of {', '.join(FAMILIES)}")
    x0 = p.launch.x0 if x0 is None else np.asarray(x0, float)
    wave_potential = field if family == "field_driven" else FAMILIES[family]
    if wave_potential is None:
        raise ValueError("family 'field_driven' needs the field that drives it: pass field=")
    extra = {"resample": p.sc.run.resample} if family == "self_consistent" else {}
    return rt.trace(
        p.dynamics,
        x0,
        p.launch.R0,
        phi0=p.launch.phase,
        z_out=planes,
        wave_potential=wave_potential,
        **extra,
    )


def compared(candidates: np.ndarray, limit: int = MAX_COMPARED) -> np.ndarray:
    """At most about ``limit`` of the ray indices ``candidates``: every k-th, and the last."""
    stride = int(np.ceil(candidates.size / limit))
    pick = candidates[::stride]
    if candidates[-1] not in pick:
        pick = np.append(pick, candidates[-1])
    return pick


def run_scenario(sc: Scenario) -> Result:
    """Compute field, rays (self-consistent, and geometric if asked), streamlines, agreement."""
    p = Problem.of(sc)
    t0 = time.perf_counter()
    field = p.judge_field()
    t_field = time.perf_counter() - t0
    planes = p.planes(field)
    x0 = p.launch.x0
    t1 = time.perf_counter()
    rays = trace_family(p, "self_consistent", planes)
    t_rays = time.perf_counter() - t1
    geometric = trace_family(p, "geometric", planes) if sc.run.geometric else None
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
    specific = checks.specific(p, rays, geometric)
    metrics.update(verdict(sc, rays, lines, agree, planes, specific.get("exact_error_w0")))
    metrics.update(specific)
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


def verdict(
    sc: Scenario,
    rays: xr.Dataset,
    lines: xr.Dataset,
    agree: xr.Dataset,
    planes,
    exact: float | None = None,
) -> dict:
    """PASS only when the rays completed, the streamlines were compared with them over
    enough of the run, and the distance is within tolerance; otherwise FAIL, with why.

    ``completed_fraction``: share of the rays that reached z_end ("ok"); required
    ``tolerance.completed``. ``judged_fraction``: the compared length (z0..z_end) over
    which each compared ray and its streamline both exist, averaged over the compared
    rays; required ``tolerance.judged``. A ray that stopped at the launch line would
    otherwise be "0 w0 from its streamline" — a PASS on nothing. ``exact``: the error of
    the scenario's exact check (``run.exact``), which must be within ``tolerance.exact``
    (NaN: it could not be made, a FAIL)."""
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
    if sc.run.exact:
        if exact is None or not np.isfinite(exact):
            reasons.append(f"the exact check {sc.run.exact!r} could not be made (rays stopped)")
        elif exact > tol.exact:
            reasons.append(
                f"the exact check {sc.run.exact!r} is off by {exact:.3g} w0, more than "
                f"{tol.exact:.3g} w0"
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
