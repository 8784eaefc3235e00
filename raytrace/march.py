"""The march of a problem's rays from plane to plane (:func:`_march`): groups of rays that
march together, their splitting where a ray stops, the re-sampled fronts, and the
dark-edge peel when a march stalls or fails (see :mod:`raytrace.tracer`)."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
from scipy.interpolate import make_interp_spline
from scipy.ndimage import median_filter

from raytrace.integrate import Integrator, _Budget, _Progress, _solve
from raytrace.wave_potential import MIN_RAYS

log = logging.getLogger("raytrace.tracer")  # one logger for the tracer's messages


#: Rays launched below this fraction of the launch peak that a stalled march stops
#: (:func:`_dark_edges`) have status "dark"; brighter ones "node". Issue 13 asks every
#: ray with R0 >= 1e-6 of the peak to end "ok" or with a physical stop.
DARK_FRACTION = 1e-6


#: When a self-consistent march stalls or its solve fails, it stops its edge rays whose R
#: is below the first of these fractions of the ensemble's peak and runs the rest again;
#: each retry of the same stretch that fails again takes the next, larger fraction. So a
#: failure stops only as much of the dim edge as it must (a 32-ray Gaussian at
#: λ0/w0 = 1 fails at z = 0 and goes on once its 4 rays below 1e-6 stop), and a dim
#: fringed edge can still be cut back to 1e-3 of the peak, where its tubes hold ≲ 1e-6 of
#: the flux. Measured: a re-sampled front's tail edge, launched at 1e-7, had brightened to
#: 2.5e-6 by its stall (two tilted Gaussians, 0.48 z_R), and the asymmetric launch's tail
#: over ±3 w0 stalls at 0.46 z_R on fringes with R ~ 1e-5 once its dim tail is resolved.
DARK_EDGE_FRACTIONS = (1e-6, 1e-5, 1e-4, 1e-3)


#: Relative finite-difference step of the ensemble's Jacobian: central differences, so
#: ∛ε balances truncation (h²) and round-off (ε/h). Why central: Radau's Newton iteration
#: contracts by ~|hλ|·(relative Jacobian error) on the stiff label modes, and |hλ| grows
#: as the ray gap⁻²: forward differences (√ε, 1e-5 of a row's largest entry) made it
#: fail and refactorise at fine spacing (8000 rays over ±3 w0: 788 LUs, 28.6 s); central
#: ones (8.5e-9) take 42 LUs, 3.9 s — twice the right-hand sides per Jacobian.
JAC_STEP = float(np.cbrt(np.finfo(float).eps))


@dataclasses.dataclass
class _March:
    """What a march produced: per-ray arrays on the output planes (``out``: x, kx, t,
    sigma, kz, R, Q, each (ray, plane), NaN where a ray had stopped), each ray's status
    and stop place (x, z), and notes for ``attrs["march_notes"]``."""

    out: dict[str, np.ndarray]
    status: np.ndarray
    stop: np.ndarray
    notes: list[str]
    resamples: int = 0


def _rays_of(y, keep) -> np.ndarray:
    """The state (x, kx, t, σ) of the rays selected by the mask ``keep``."""
    return np.concatenate([p[keep] for p in np.split(y, 4)])


@dataclasses.dataclass
class _Group:
    """Rays that march together: the internal rays ``ii`` (indices into the problem's
    rays) with state y = (x, kx, t, σ) at z, and the user's rays ``users`` they carry, at
    fractional labels ``lam`` among them (0 … m−1 in the group's order). Until a front is
    re-sampled the user's rays are the internal rays themselves (``lam`` None)."""

    ii: np.ndarray
    z: float
    y: np.ndarray
    users: np.ndarray
    lam: np.ndarray | None = None
    #: how many times this stretch (from z) has been run again after a peel: the index
    #: into DARK_EDGE_FRACTIONS of the next peel's least fraction
    retries: int = 0

    def at_users(self, values: np.ndarray) -> np.ndarray:
        """Per-user rows of per-internal-ray quantities (``values`` (m, q)): the same rows
        while the user's rays are the internal ones, else cubic interpolation in the
        label (labels are material, and the ensemble is smooth in them)."""
        if self.lam is None:
            return values
        m = self.ii.size
        return make_interp_spline(np.arange(m), values, k=min(3, m - 1))(self.lam)

    def x_users(self, y: np.ndarray) -> np.ndarray:
        """The user's rays' positions in the internal state y."""
        return self.at_users(y[: self.ii.size, None])[:, 0]

    def inside(self, keep: np.ndarray) -> np.ndarray:
        """Which user rays lie within the internal rays selected by ``keep`` (a coupled
        ensemble keeps one contiguous stretch, so a user ray between a kept and a
        dropped internal ray is outside)."""
        if self.lam is None:
            return keep.copy()
        local = np.flatnonzero(keep)
        return (self.lam >= local[0]) & (self.lam <= local[-1])

    def sub(self, keep: np.ndarray, z: float, y: np.ndarray) -> _Group:
        """The group of the internal rays ``keep`` with state y (all rays) at z."""
        ii, ysub = self.ii[keep], _rays_of(y, keep)
        inside = self.inside(keep)
        lam = None if self.lam is None else self.lam[inside] - np.flatnonzero(keep)[0]
        return _Group(ii, z, ysub, self.users[inside], lam)

    def retry(self, keep: np.ndarray, retries: int) -> _Group:
        """The group of the internal rays ``keep``, to run the same stretch again."""
        return dataclasses.replace(self.sub(keep, self.z, self.y), retries=retries)


def _march(problem, x0, kx0, planes, integ: Integrator) -> _March:
    """Integrate groups of rays; on a stop event, stop the ray that met it and continue
    with the rest (independent rays), or with each side as its own ensemble (coupled);
    on a "resample" event (coupled), go on from a re-sampled front."""
    n, n_out = x0.size, planes.size
    names = ("x", "kx", "t", "sigma", "kz", "R", "Q")
    out = {k: np.full((n, n_out), np.nan) for k in names}
    status = np.array(["ok"] * n, dtype=object)
    stop = np.full((n, 2), np.nan)  # (x, z) where a ray stopped
    method = integ.method
    if method == "auto":
        method = "Radau" if problem.coupled else "DOP853"
    progress = _Progress(integ.max_rhs)
    resampled = []  # z of each re-sampled front
    launched_dark = problem.ln_R0 < np.log(DARK_FRACTION) + np.max(problem.ln_R0)

    def record(j, zz, yy, g: _Group):
        kz, R, Q = problem.observe(zz, yy, g.ii)
        with np.errstate(invalid="ignore", divide="ignore"):
            rows = np.column_stack([*np.split(yy, 4), kz, np.log(R), Q])
        values = g.at_users(rows)
        for i, k in enumerate(("x", "kx", "t", "sigma", "kz")):
            out[k][g.users, j] = values[:, i]
        out["R"][g.users, j] = np.exp(values[:, 5])
        out["Q"][g.users, j] = values[:, 6]

    def stop_users(g: _Group, which, reason, z_at, y_at=None):
        """Stop the user rays ``which`` (a mask over g.users) at z_at, at their place in
        the internal state y_at (NaN x when not known)."""
        if not which.any():
            return
        status[g.users[which]] = reason
        x_at = np.full(g.users.size, np.nan) if y_at is None else g.x_users(y_at)
        stop[g.users[which]] = np.column_stack([x_at[which], np.full(which.sum(), z_at)])

    def peel(g: _Group, z_at, y_at, why, stalled=False) -> bool:
        """Stop the group's dark edge rays (:func:`_dark_edges`) and queue the rest to run
        again from the group's start; False when there are none to stop."""
        found = _dark_edges(problem, z_at, y_at, g)
        if found is None:
            return False
        dark, fraction, level = found
        gone = ~g.inside(~dark)
        note = (
            f"at z ≈ {z_at:.6g} {why}; its {int(dark.sum())} edge rays with R < "
            f"{fraction:g} of the peak stop, and with them {int(gone.sum())} of the traced "
            f"rays (status 'dark' if launched below {DARK_FRACTION:g} of the launch peak, "
            f"else 'node'); the other {int((~gone).sum())} start again from z = {g.z:.6g}"
        )
        log.info(note)  # an expected outcome, in the statuses and march_notes
        if stalled:
            progress.notes[-1:] = [note]  # replaces the stall note: the march goes on
        else:
            progress.notes.append(note)
        dim = launched_dark[g.users]
        stop_users(g, gone & dim, "dark", z_at, y_at)
        stop_users(g, gone & ~dim, "node", z_at, y_at)
        queue.append(g.retry(~dark, level + 1))
        return True

    def fail(g: _Group, reason, z_at, message=None):
        if message is not None:
            log.warning(message)
            if message not in progress.notes:  # the rays' statuses say where; this, why
                progress.notes.append(message)
        stop_users(g, np.ones(g.users.size, bool), reason, z_at)

    y0 = np.concatenate([x0, kx0, np.zeros(n), np.zeros(n)])
    first = _Group(np.arange(n), planes[0], y0, np.arange(n))
    record(0, planes[0], y0, first)
    queue = [first]
    while queue:
        g = queue.pop()
        ii, z, y = g.ii, g.z, g.y
        m = ii.size
        if problem.coupled:
            problem.group(ii, z, y)
        hit = _first_stop(problem.margins(z, y, ii))
        if hit is None:
            j_next = int(np.searchsorted(planes, z, side="right"))
            if j_next >= n_out:
                continue
            try:
                sol = _solve(problem, ii, z, y, planes[j_next:], method, integ, progress)
            except _Budget:  # no accepted step since the budget ran out
                if progress.last is not None:
                    z_at, y_at = progress.last
                    if peel(g, z_at, y_at, "the ensemble's steps collapsed", stalled=True):
                        continue
                fail(g, "max_steps", progress.reached, progress.notes[-1])
                continue
            except RuntimeError as exc:  # e.g. SuperLU: "Factor is exactly singular"
                if not peel(g, z, y, f"the solve failed ({exc})"):
                    fail(
                        g,
                        "nonfinite",
                        z,
                        f"ray march from z={z:.6g} failed at z ≈ {progress.reached:.6g}: {exc}",
                    )
                continue
            for col, zz in enumerate(sol.t):
                if not np.all(np.isfinite(sol.y[:, col])):
                    break
                record(j_next + col, zz, sol.y[:, col], g)
            if sol.status == 0:
                continue
            if progress.exhausted is not None:  # the budget event ended this solve
                if sol.t_events[0].size:
                    z_at, y_at = float(sol.t_events[0][0]), sol.y_events[0][0]
                    if peel(g, z_at, y_at, "the ensemble's steps collapsed", stalled=True):
                        continue
                z_at = sol.t_events[0][0] if sol.t_events[0].size else progress.reached
                fail(g, "max_steps", z_at, progress.notes[-1])
                continue
            if sol.status == -1 or not sol.t_events[0].size:
                ts, ys = np.asarray(sol.t), np.asarray(sol.y)
                z_at, y_at = (float(ts[-1]), ys[:, -1]) if ts.size else (z, y)
                if not peel(g, z_at, y_at, f"the solve failed ({sol.message})"):
                    fail(g, "nonfinite", z, f"ray march failed after z={z:.6g}: {sol.message}")
                continue
            z, y = float(sol.t_events[0][0]), sol.y_events[0][0]
            hit = _first_stop(problem.margins(z, y, ii), force=True)
        reason, w = hit
        if reason == "resample":
            if not np.all(np.isfinite(y[: 2 * m])) or (resampled and resampled[-1] == z):
                fail(g, "nonfinite", z, f"the front could not be re-sampled at z={z:.6g}")
                continue
            ii_new, y_new = problem.resample(ii, z, y)
            # the user rays' labels among the new rays, from where they are now
            lam = np.interp(g.x_users(y), y_new[:m], np.arange(m, dtype=float))
            resampled.append(z)
            queue.append(_Group(ii_new, z, y_new, g.users, lam))
            continue
        local = np.arange(m)
        if g.lam is None:
            hitting = local == w
        else:  # the user rays between the stopped ray's neighbours stop with it
            hitting = np.abs(g.lam - w) < 1
        stop_users(g, hitting, reason, z, y)
        parts = [local < w, local > w] if problem.coupled else [local != w]
        for part in parts:
            if not part.any():
                continue
            sub = g.sub(part, z, y)
            if problem.coupled and part.sum() < MIN_RAYS:  # too few rays left to form R''
                stop_users(sub, np.ones(sub.users.size, bool), "ensemble", z, sub.y)
                continue
            queue.append(sub)
    if resampled:
        where = ", ".join(f"{v:.6g}" for v in resampled[:8]) + (" …" if len(resampled) > 8 else "")
        progress.notes.append(
            f"the front was re-sampled {len(resampled)} time{'s' * (len(resampled) > 1)} "
            f"(z = {where}): its rays were "
            "re-launched evenly between its edges, carrying the traced rays at their labels"
        )
    log.info("march: %d right-hand-side evaluations for %d rays", progress.calls, n)
    return _March(out, status, stop, progress.notes, len(resampled))


def _dark_edges(problem, z, y, g: _Group):
    """When a self-consistent march stalls or its solve fails: (mask, fraction, level) of
    the internal rays at the ensemble's edges whose R is below ``fraction`` of its peak,
    the least of DARK_EDGE_FRACTIONS from index g.retries on that finds any (``level``
    its index), or None (none, or too few rays would be left). The traced rays among them
    stop "dark" when they were launched below DARK_FRACTION of the launch peak, else
    "node" (the front there could not be resolved: dim fringes with near-nodes).

    Why: a launch cut off far out in a tail (the bell exp(−x⁴) over ±2.5 w0 reaches
    R0 ~ 1e-17) carries rays whose tubes hold almost no flux. The exact field there is
    soon dominated by light diffracted from the bright part, with nodes (field-driven
    rays stop there from 0.024 z_R); the ensemble's edge, which only sees its own rays,
    develops a label-scale oscillation instead (measured: kx alternating ray to ray at the
    ±2.5 w0 edge from 0.011 z_R) and Radau's steps collapse. Those rays are stopped where
    the march stalled, and the bright rays run the same stretch again as their own
    ensemble (calibrated where that stretch began, as a launch without the dark rays would
    be; going on from the stall instead measured the same accuracy)."""
    if not problem.coupled:
        return None
    m = g.ii.size
    if not np.all(np.isfinite(y[: 2 * m])):
        return None
    _, R, _ = problem.observe(z, y, g.ii)
    # a 5-ray running median: a stalled edge oscillates from ray to ray (measured: an edge
    # ray at 2.3e-6 of the peak next to one at 2.9e-7), which must not hide a dark edge
    R = median_filter(np.where(np.isfinite(R), R, 0.0), size=5, mode="mirror")
    for level in range(g.retries, len(DARK_EDGE_FRACTIONS)):
        fraction = DARK_EDGE_FRACTIONS[level]
        dim = ~(fraction * np.max(R) <= R)
        if dim.all():
            return None
        left, right = int(np.argmin(dim)), int(np.argmin(dim[::-1]))
        dark = np.zeros(m, bool)
        dark[:left] = True
        dark[m - right :] = True
        if (~dark).sum() < MIN_RAYS:
            return None
        if dark.any():
            return dark, fraction, level
    return None


def _first_stop(margins: dict[str, np.ndarray], force: bool = False):
    """(reason, local ray index) of the most violated stop condition, or None."""
    reason = min(margins, key=lambda k: np.min(margins[k]))
    w = int(np.argmin(margins[reason]))
    if force or margins[reason][w] < 0:
        return reason, w
    return None
