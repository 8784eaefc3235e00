"""Whole-scenario checks, for a scenario read from a file or built in Python: the tables
agree with each other, and the formulas evaluate at the launch — the amplitude finite and
non-zero at every launch point, the phase finite, K² finite, positive and of the size the
launch wavelength says on the launch line.
"""

from __future__ import annotations

import sys

import numpy as np
import scipy.special

from compare.tables import (
    CALLABLE_MARK,
    Medium,
    Scenario,
    ScenarioError,
    formula,
    located,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def validate(sc: Scenario, text: str = "") -> Scenario:
    """Check a scenario as a whole (and its formulas, by evaluating them at the launch);
    also for one built in Python. Returns it; raises :class:`ScenarioError`."""
    path = sc.source or "<scenario>"
    if sc.dynamics.model is not None:
        if sc.medium != Medium():
            raise ScenarioError(
                f"{path}: dynamics.model gives K² itself; leave [medium] at its default"
            )
        if not callable(getattr(sc.dynamics.model, "K2", None)):
            raise ScenarioError(
                f"{path}: dynamics.model = {sc.dynamics.model!r} must be a raytrace dynamics "
                "object (raytrace.Schrodinger or raytrace.KleinGordon)"
            )
    if sc.medium.kind == "lens" and sc.medium.length <= 0:
        raise ScenarioError(f"{located(path, text, 'medium', 'length')}: a lens needs length > 0")
    if sc.launch.x_range is not None and "span" in _keys(text, "launch"):
        raise ScenarioError(
            f"{located(path, text, 'launch', 'x_range')}: give launch.x_range or launch.span, "
            "not both"
        )
    if sc.run.exact == "grin-centroid" and (
        sc.medium.kind != "grin" or "exp(-x**2)" != sc.launch.amplitude_formula
    ):
        raise ScenarioError(
            f"{located(path, text, 'run', 'exact')}: 'grin-centroid' is exact for a Gaussian "
            "launch exp(-x**2) in medium.kind = 'grin'"
        )
    if sc.run.exact == "grin-centroid" and not np.any(sc.launch.points == 0.0):
        raise ScenarioError(
            f"{located(path, text, 'launch', 'rays')}: 'grin-centroid' follows the ray launched "
            f"at x = 0, and {sc.launch.rays} rays on {sc.launch.bounds} have none there: use a "
            "symmetric span and an odd number of rays"
        )
    if sc.run.exact == "airy-streamlines":
        _check_airy(sc, text)
    x0 = sc.launch.points
    _check_formula(sc, text, "launch", "amplitude", x0, nonzero=True)
    _check_formula(sc, text, "launch", "phase", x0)
    K2 = _check_formula(sc, text, "medium", "K2", x0, positive=True)
    if sc.dynamics.model is not None:
        K2 = sc.dynamics.model.K2(x0, np.zeros_like(x0))
        _check_values(v=K2, x0=x0, where=f"{path}: dynamics.model", key="K2", positive=True)
    if K2 is not None:
        _check_wavenumber(sc, text, K2)
    if not homogeneous(sc) and sc.run.judge == "angular":
        raise ScenarioError(
            f"{located(path, text, 'run', 'judge')}: the angular spectrum is exact only in a "
            f"uniform medium; medium.kind = {sc.medium.kind!r} needs judge = 'paraxial' or "
            "'helmholtz'"
        )
    if sc.run.judge == "helmholtz" and sc.launch.wavelength < 0.05:
        raise ScenarioError(
            f"{located(path, text, 'run', 'judge')}: λ0/w0 = {sc.launch.wavelength} cannot be "
            "resolved by the full-wave solver on this machine; use 'paraxial' or 'angular'"
        )
    return sc


#: K² on the launch line must be within this factor of k² = (2π/λ0)²: the paraxial judge
#: marches the envelope about k, and z_R = k w0²/2 sets the run's length.
WAVENUMBER_FACTOR = 2.0


def _check_wavenumber(sc: Scenario, text: str, K2: np.ndarray) -> None:
    """K² on the launch line (already checked finite and positive) against k²."""
    where = "dynamics.model" if sc.dynamics.model is not None else "medium.K2"
    ratio = float(np.median(K2)) / sc.wavenumber**2
    if not 1 / WAVENUMBER_FACTOR <= ratio <= WAVENUMBER_FACTOR:
        raise ScenarioError(
            f"{located(sc.source or '<scenario>', text, 'launch', 'wavelength')}: {where} gives "
            f"K² = {ratio:.3g} k² on the launch line, with k = 2π/λ0 = {sc.wavenumber:.6g}/w0 "
            "from launch.wavelength: set launch.wavelength to the launch's own wavelength "
            f"2π/K (within a factor {WAVENUMBER_FACTOR:g} in K²)"
        )


def homogeneous(sc: Scenario) -> bool:
    """True if K² is the same everywhere (free space, or a K2 formula of neither x nor z;
    a dynamics model is taken as non-uniform)."""
    if sc.dynamics.model is not None:
        return False
    if sc.medium.kind == "free":
        return True
    if sc.medium.kind != "custom" or callable(sc.medium.K2):
        return False
    return formula(sc, "medium", "K2").constant


def _keys(text: str, table: str) -> set[str]:
    try:
        return set(tomllib.loads(text).get(table, {})) if text else set()
    except tomllib.TOMLDecodeError:  # pragma: no cover - the file was parsed before
        return set()


def _check_formula(sc, text, table, key, x0, nonzero=False, positive=False):
    """Evaluate formula ``table.key`` at the launch points (K2: on the launch line z = 0)
    and check its values; returns them (None if the formula is not given)."""
    value = getattr(getattr(sc, table), key)
    if key == "amplitude":
        value = sc.launch.amplitude_formula
    if value is None:
        return None
    where = located(sc.source or "<scenario>", text, table, key)
    if isinstance(value, str) and value.startswith(CALLABLE_MARK):
        raise ScenarioError(
            f"{where} = {value!r}: a Python callable cannot be read back from a file; build "
            "the scenario in Python"
        )
    f = formula(sc, table, key, value, text=text)
    args = (x0, np.zeros_like(x0)) if key == "K2" else (x0,)
    try:
        with np.errstate(all="ignore"):
            v = f(*args)
    except Exception as exc:  # a user's callable may raise anything: name it
        raise ScenarioError(f"{where}: evaluating it at the launch points failed: {exc}") from None
    return _check_values(v, x0, where, key, nonzero=nonzero, positive=positive)


def _check_values(v, x0, where, key, nonzero=False, positive=False) -> np.ndarray:
    """``v`` at the launch points: finite (and non-zero, or positive), else an error
    naming ``where``, the first bad point and the fix."""
    v = np.broadcast_to(np.asarray(v, dtype=float), x0.shape)
    bad = ~np.isfinite(v)
    if nonzero:
        bad |= v == 0
    if positive:
        bad |= v <= 0
    if bad.any():
        demand = (
            "finite and positive" if positive else "finite and non-zero" if nonzero else "finite"
        )
        i = int(np.flatnonzero(bad)[0])
        fix = (
            "; launch where it is not zero (launch.x_range, e.g. beside a node)" if nonzero else ""
        )
        raise ScenarioError(
            f"{where}: must be {demand} at every launch point{' (z = 0)' if key == 'K2' else ''}; "
            f"at x = {x0[i]:.6g} it is {v[i]:.6g} ({int(bad.sum())} of {x0.size} points){fix}"
        )
    return v


def _check_airy(sc: Scenario, text: str) -> None:
    """'airy-streamlines' is exact for u0 = Ai(x)·exp(decay·x) in free space, with
    ``decay`` a constant: the amplitude must be that (checked at the launch points)."""
    path = sc.source or "<scenario>"
    where = located(path, text, "run", "exact")
    if "decay" not in sc.constants or sc.medium.kind != "free" or sc.launch.phase is not None:
        raise ScenarioError(
            f"{where}: 'airy-streamlines' is exact for launch.amplitude = "
            "'airy(x) * exp(decay * x)' with [constants] decay, a flat phase, in free space"
        )
    x0 = sc.launch.points
    amp = formula(sc, "launch", "amplitude", sc.launch.amplitude_formula)
    want = scipy.special.airy(x0)[0] * np.exp(sc.constants["decay"] * x0)
    if not np.allclose(np.asarray(amp(x0), float), want, rtol=1e-10, atol=0):
        raise ScenarioError(
            f"{where}: the amplitude is not Ai(x)·exp(decay·x) at the launch points"
        )
