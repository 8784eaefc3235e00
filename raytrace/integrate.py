"""Integrating a group of rays between planes: the integrator settings, the budget that
bounds a stalled march, and the solve of one stretch (Radau for a self-consistent
ensemble, DOP853 for independent rays) with its stop events and the quadratures of t
and σ after it."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
from scipy.integrate import solve_ivp

log = logging.getLogger("raytrace.tracer")  # one logger for the tracer's messages


#: Default local error tolerances. Measured (Gaussian, λ0/w0 = 1e-4, 3 z_R, 128–1000
#: self-consistent rays): 1e-7 leaves the integration error at ~1e-8 w0, far below the
#: ray-count error it is used to measure, at 1/10 the cost of 1e-9 (Radau's Newton and
#: Jacobian work grows fast with the tolerance).
RTOL = 1e-7


ATOL = 1e-7


#: Margins that are not applicable are reported as this (finite: the event root finder
#: must never see inf).
FAR = 1e30


#: Right-hand-side evaluations between the march's projections of what it needs to
#: finish (see :class:`Integrator`): a stalled march ends after about this many.
PROGRESS_CHECK = 2000


#: Evaluations a march may still spend after its projection failed, for the integrator to
#: finish the step it is in (so the planes already passed are kept).
BUDGET_GRACE = 500


@dataclasses.dataclass(frozen=True)
class Integrator:
    """Settings of the z-march.

    Parameters
    ----------
    rtol, atol : local error tolerances of SciPy's ``solve_ivp`` (atol in units of w0 and
        1/w0). The defaults hold the integration error near 1e-8 w0 over a few Rayleigh
        lengths, so the ray-count discretisation dominates the measured error.
    method : "auto" (Radau for the coupled self-consistent ensemble, DOP853 for
        independent rays) or any ``solve_ivp`` method name.
    max_rhs : budget of right-hand-side evaluations of the whole march. Every
        :data:`PROGRESS_CHECK` evaluations the march projects, from the z it has reached,
        how many it needs to finish; when that exceeds the budget (a stalled integrator:
        steps collapsing, Newton failures) it ends at once, its rays stop with status
        "max_steps" and ``attrs["march_notes"]`` says why. The default is ~40× the
        evaluations the built-in scenarios need (at most ~5000, measured).
    """

    rtol: float = RTOL
    atol: float = ATOL
    method: str = "auto"
    max_rhs: int = 200_000

    def __post_init__(self):
        for name in ("rtol", "atol"):
            value = getattr(self, name)
            if not (np.isfinite(value) and 0 < value < 1):
                raise ValueError(f"Integrator.{name} must be in (0, 1); got {value!r}")
        methods = ("auto", "Radau", "BDF", "LSODA", "DOP853", "RK45", "RK23")
        if self.method not in methods:
            raise ValueError(f"Integrator.method must be one of {methods}; got {self.method!r}")
        if not (isinstance(self.max_rhs, int) and self.max_rhs > 0):
            raise ValueError(f"Integrator.max_rhs must be a positive int; got {self.max_rhs!r}")


class _Budget(Exception):
    pass


class _Progress:
    """Counts right-hand-side evaluations over a march and projects, from the z reached,
    whether the rest fits in ``Integrator.max_rhs``."""

    def __init__(self, max_rhs: int):
        self.max_rhs, self.calls, self.exhausted, self.notes = max_rhs, 0, None, []
        self.reached, self.last = float("nan"), None  # set by :meth:`start`

    def start(self, z: float, z_end: float) -> None:
        self.z_start, self.z_end, self.reached, self.calls_start = z, z_end, z, self.calls
        self.exhausted = self.last = None

    def count(self) -> None:
        self.calls += 1
        if self.exhausted is not None:
            if self.calls > self.exhausted + BUDGET_GRACE:
                raise _Budget
            return
        if self.calls >= self.max_rhs:
            self._stop(f"the budget Integrator.max_rhs = {self.max_rhs} evaluations is spent")
        elif (self.calls - self.calls_start) % PROGRESS_CHECK == 0:
            used = self.calls - self.calls_start
            done = self.reached - self.z_start
            need = np.inf if done <= 0 else used * (self.z_end - self.reached) / done
            if self.calls + need > self.max_rhs:
                self._stop(
                    f"after {used} evaluations the march had advanced from z = "
                    f"{self.z_start:.6g} to {self.reached:.6g} of {self.z_end:.6g}; "
                    f"finishing would take ~{need:.3g} more, beyond Integrator.max_rhs = "
                    f"{self.max_rhs}"
                )

    def _stop(self, why: str) -> None:
        self.exhausted = self.calls
        # logged by the march when it gives up (a stalled ensemble may go on without
        # its dark edge rays instead: _dark_edges)
        self.notes.append(
            f"march stopped at z ≈ {self.reached:.6g}: {why}. The integrator's steps "
            "collapsed — for the self-consistent ensemble usually a launch it cannot resolve "
            "(rays too close for λ0, or the launch cut off where the beam is bright); "
            "launch fewer or wider-spread rays, or raise Integrator.max_rhs"
        )


_NUM_JAC = False


def _solve(problem, ii, z, y, t_eval, method, integ, progress: _Progress):
    progress.start(z, float(t_eval[-1]))
    n = ii.size
    implicit = problem.coupled and method in ("Radau", "BDF") and not _NUM_JAC
    # t and σ are quadratures along each ray (nothing depends on them): for the implicit
    # ensemble they are left out of the Newton system — which halves it, and its LU cost
    # (measured: 5.7 ms against 15.5 ms per LU for 2000 rays) — and integrated afterwards
    # from the dense output (:func:`_quadratures`)
    size = 2 * n if implicit else 4 * n
    rest = np.zeros(4 * n - size)

    def full(yy):
        return np.concatenate([yy, rest]) if implicit else yy

    def fun(zz, yy):
        progress.count()
        return problem.rhs(zz, full(yy), ii)[:size]

    def event(zz, yy):  # evaluated after every accepted step (and in its root search)
        if progress.exhausted is not None:  # a sign change after the last accepted step
            return -1.0 if zz > progress.reached else 1.0  # ends the solve, keeping its planes
        progress.reached = max(progress.reached, float(zz))
        progress.last = (float(zz), full(yy))  # for a peel when the budget ends the solve
        m = problem.margins(zz, full(yy), ii)
        return float(min(np.min(np.minimum(v, FAR)) for v in m.values()))

    event.terminal, event.direction = True, -1
    kwargs = {}
    if implicit:

        def jac(zz, yy):
            progress.count()
            return problem.jacobian(zz, full(yy), ii)[:size, :size]

        kwargs["jac"] = jac
        kwargs["dense_output"] = True
    elif problem.coupled:
        kwargs["jac_sparsity"] = problem.sparsity(ii)
    with np.errstate(all="ignore"):
        sol = solve_ivp(
            fun,
            (z, t_eval[-1]),
            y[:size],
            method=method,
            t_eval=t_eval,
            events=event,
            rtol=integ.rtol,
            atol=integ.atol,
            **kwargs,
        )
        if implicit:
            _quadratures(problem, ii, z, y[2 * n :], sol, integ)
    return sol


def _quadratures(problem, ii, z0, ts0, sol, integ: Integrator) -> None:
    """Append t and σ (dt/dz = rate/kz, dσ/dz = 1/kz) to ``sol.y`` and ``sol.y_events``,
    integrated by DOP853 along the implicit solve's dense output to the same tolerances."""
    n = ii.size
    events = [float(v) for v in sol.t_events[0]] if sol.t_events else []
    ends = [float(v) for v in sol.t] + events
    stop = max(ends) if ends else z0

    def rate(zz, _):
        return problem.quadrature_rates(zz, sol.sol(zz), ii)

    if stop > z0 and sol.sol is not None:
        where = np.unique(np.asarray(ends))
        q = solve_ivp(
            rate, (z0, stop), ts0, method="DOP853", t_eval=where, rtol=integ.rtol, atol=integ.atol
        )
        at = {float(zz): q.y[:, i] for i, zz in enumerate(q.t)}
    else:
        at = {}
    nan = np.full(2 * n, np.nan)
    columns = [at.get(float(zz), nan) for zz in sol.t]
    sol.y = np.vstack([sol.y, np.column_stack(columns) if columns else np.empty((2 * n, 0))])
    if sol.t_events and sol.t_events[0].size:
        tail = np.array([at.get(float(zz), nan) for zz in sol.t_events[0]])
        sol.y_events[0] = np.hstack([sol.y_events[0], tail])
