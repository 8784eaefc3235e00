"""The scenario library: named, documented cases in ``data/scenarios/*.toml``.

A scenario file has four tables (every key optional unless marked, defaults below)::

    name = "gaussian"                       # required
    description = "one line for `wavetraj list`"   # required
    figure = "Fig. 1"                       # the seed figure it reproduces, if any

    [constants]            # named numbers usable in every expression (optional)
    a = 314.159

    [launch]
    profile = "gaussian"   # gaussian: exp(-x²) | bell: exp(-x⁴) | two-beams (shorthands)
    amplitude = "x * exp(-x**2 / 2)"   # or any u0(x) as a formula (then profile = custom)
    phase = "k * sin(0.1) * x"         # φ0(x), optional (default flat)
    wavelength = 1e-4      # λ0/w0 at the launch line
    rays = 128             # self-consistent rays, equally spaced on [-span, span]
    span = 3.0             # w0
    x_range = [0.02, 3.0]  # instead of span: launch on [a, b] (need not be symmetric)
    separation = 3.0       # two-beams: distance between the beam centres (w0)
    heavy = [-1.0, 1.0]    # launch points drawn as heavy rays

    [medium]
    kind = "free"          # free | grin: K² = k²(1 − x²/a²) | lens: the same for z < length
    a = 100.0              # w0
    length = 0.0           # lens: thickness of the focusing region (w0)
    K2 = "k**2 * (1 - (x / a)**2)"     # or any K²(x, z) as a formula (then kind = custom)

    [dynamics]
    kind = "schrodinger"   # schrodinger | klein-gordon
    rest_mass = 0.0        # klein-gordon: m0 in units where c = ħ = 1 (K from E and m0)

    [run]
    z_end = 3.0            # in Rayleigh lengths z_R = K w0²/2
    steps = 61             # output planes
    judge = "angular"      # angular | paraxial | helmholtz: the field that judges the rays
    geometric = false      # also trace geometric-optics rays (drawn dashed)
    resample = true        # re-sample the self-consistent front when its gaps spread
    nx = 1024              # transverse points of the judging field
    window = 8.0           # the judging field spans ±window·w0 (times the beam growth)
    exact = ""             # an exact check: straight-rays | grin-centroid (EXACT_CHECKS)

    [tolerance]
    max_distance = 1e-4    # w0: worst ray–streamline distance that passes
    completed = 1.0        # fraction of the rays that must reach z_end ("ok")
    judged = 0.75          # fraction of the compared length (z0..z_end, averaged over the
                           # compared rays) over which rays and streamlines both exist
    exact = 1e-4           # w0: largest error of the run.exact check that passes

Formulas (``amplitude``, ``phase``: of x; ``K2``: of x and z) are parsed by
:mod:`compare.expressions` — a whitelist, never evaluated as code — and may use the names x,
z, k = 2π/λ0 (in 1/w0), pi, e and the ``[constants]``. In Python the same keys take
callables (``Launch(amplitude=lambda x: ...)``, ``Medium(K2=lambda x, z: ...)``); run
:func:`validate` on a scenario built by hand to get the file checks' errors. Validation
also evaluates them: the amplitude must be finite and non-zero at every launch point, the
phase finite, and K² finite and positive on the launch line.

A scenario passes only when all three hold: a run whose rays stopped, or whose streamlines
stopped before they could be compared, fails and says why.

Unknown keys, wrong types and impossible values raise :class:`ScenarioError` naming the
key and the file line.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.resources
import math
import pathlib
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from compare import expressions

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _scenario_dir() -> pathlib.Path:
    """The built-in scenarios: the package data ``compare/_scenarios`` of an installed wheel,
    else their source ``data/scenarios`` at the repository root (a checkout or an editable
    install). Both are the same files; pyproject.toml maps the one onto the other."""
    packaged = importlib.resources.files("compare") / "_scenarios"
    if packaged.is_dir() and any(p.name.endswith(".toml") for p in packaged.iterdir()):
        return pathlib.Path(str(packaged))
    return pathlib.Path(__file__).resolve().parents[1] / "data" / "scenarios"


#: Where the built-in scenarios live (see :func:`_scenario_dir`).
SCENARIO_DIR = _scenario_dir()


class ScenarioError(ValueError):
    """A scenario file or override is malformed; the message names the key and line."""


def _positive(v):
    return v > 0


def _nonneg(v):
    return v >= 0


def _in(*options):
    def check(v):
        return v in options

    return check


#: A formula (text) or, from Python, a callable.
Formula = str | Callable | None
#: The shorthand profiles as formulas (``s``: the two-beams separation).
PROFILES = {
    "gaussian": "exp(-x**2)",
    "bell": "exp(-x**4)",
    "two-beams": "exp(-(x - s / 2)**2) + exp(-(x + s / 2)**2)",
}


def _custom_when_given(obj, formula: str, name: str) -> None:
    """A table given its own formula is ``custom`` (a frozen dataclass sets it here)."""
    if getattr(obj, formula) is not None:
        object.__setattr__(obj, name, "custom")


def _needs_formula(obj, name: str, formula: str) -> None:
    if getattr(obj, name) == "custom" and getattr(obj, formula.split(".")[1]) is None:
        raise ScenarioError(f"{formula.split('.')[0]}.{name} = 'custom' needs {formula}")


@dataclasses.dataclass(frozen=True)
class Launch:
    """``amplitude`` (u0(x), signed: a node is a sign change) replaces ``profile``, which
    is then ``custom``; ``x_range`` replaces ``span`` (see :attr:`bounds`)."""

    profile: str = "gaussian"
    wavelength: float = 1e-4
    rays: int = 128
    span: float = 3.0
    separation: float = 3.0
    heavy: tuple[float, ...] = (-1.0, 1.0)
    amplitude: Formula = None
    phase: Formula = None
    x_range: tuple[float, float] | None = None

    def __post_init__(self):
        _custom_when_given(self, "amplitude", "profile")
        _needs_formula(self, "profile", "launch.amplitude")

    @property
    def bounds(self) -> tuple[float, float]:
        """The launch interval [w0]: ``x_range``, else [−span, span]."""
        return tuple(self.x_range) if self.x_range is not None else (-self.span, self.span)

    @property
    def points(self) -> np.ndarray:
        """The ``rays`` launch positions, equally spaced on :attr:`bounds`."""
        return np.linspace(*self.bounds, self.rays)

    @property
    def amplitude_formula(self) -> Formula:
        """``amplitude``, or the ``profile`` shorthand's formula."""
        if self.amplitude is not None:
            return self.amplitude
        return PROFILES[self.profile].replace("s / 2", repr(self.separation / 2))


@dataclasses.dataclass(frozen=True)
class Medium:
    """``K2`` (K²(x, z), a formula or a callable) replaces ``kind``, which is then
    ``custom``; free, grin and lens are the built-in media."""

    kind: str = "free"
    a: float = 100.0
    length: float = 0.0
    K2: Formula = None

    def __post_init__(self):
        _custom_when_given(self, "K2", "kind")
        _needs_formula(self, "kind", "medium.K2")


@dataclasses.dataclass(frozen=True)
class Dynamics:
    """``model`` (Python only): a ``raytrace.Schrodinger`` or ``KleinGordon`` object whose
    own K²(x, z) is then the medium of the rays and of the judging field (``kind`` is
    then ``custom``; leave ``[medium]`` at its default)."""

    kind: str = "schrodinger"
    rest_mass: float = 0.0
    model: object = None

    def __post_init__(self):
        _custom_when_given(self, "model", "kind")
        _needs_formula(self, "kind", "dynamics.model")


@dataclasses.dataclass(frozen=True)
class Run:
    z_end: float = 3.0
    steps: int = 61
    judge: str = "angular"
    geometric: bool = False
    resample: bool = True
    nx: int = 1024
    window: float = 8.0
    exact: str = ""


#: Exact checks a scenario may name (``run.exact``), implemented in :mod:`compare.checks`:
#: rays of an eigenmode stay straight; the centre ray of a tilted Gaussian in the GRIN
#: medium follows its centroid's sine (Ehrenfest, exact for the paraxial equation).
EXACT_CHECKS = ("straight-rays", "grin-centroid")

#: Default share of the compared length that must be judged. The edge streamlines of the
#: bell start in its tails below the streamline floor (R < 1e-4 of the peak) and are not
#: compared at all: measured 0.83 for the bell, 0.94-1.0 for the other built-in scenarios.
DEFAULT_JUDGED = 0.75


@dataclasses.dataclass(frozen=True)
class Tolerance:
    max_distance: float = 1e-4
    completed: float = 1.0
    judged: float = DEFAULT_JUDGED
    exact: float = 1e-4


#: (type, check, what the check demands) per key of each table.
RULES: dict[str, dict[str, tuple[type, Any, str]]] = {
    "launch": {
        "profile": (str, _in(*PROFILES), "gaussian, bell or two-beams (or give amplitude)"),
        "amplitude": (str, lambda v: True, "a formula of x"),
        "phase": (str, lambda v: True, "a formula of x"),
        "x_range": (
            tuple,
            lambda v: (
                len(v) == 2 and all(isinstance(t, float) for t in v) and -50 <= v[0] < v[1] <= 50
            ),
            "[a, b] with -50 <= a < b <= 50 w0",
        ),
        "wavelength": (float, lambda v: 0 < v <= 2, "0 < λ0/w0 <= 2"),
        "rays": (int, lambda v: 16 <= v <= 20000, "16 <= rays <= 20000"),
        "span": (float, lambda v: 0 < v <= 10, "0 < span <= 10 w0"),
        "separation": (float, _nonneg, ">= 0"),
        "heavy": (tuple, lambda v: all(isinstance(t, (int, float)) for t in v), "numbers"),
    },
    "medium": {
        "kind": (str, _in("free", "grin", "lens"), "free, grin or lens (or give K2)"),
        "K2": (str, lambda v: True, "a formula of x and z"),
        "a": (float, _positive, "> 0"),
        "length": (float, _nonneg, ">= 0"),
    },
    "dynamics": {
        "kind": (str, _in("schrodinger", "klein-gordon"), "schrodinger or klein-gordon"),
        "rest_mass": (float, _nonneg, ">= 0"),
    },
    "run": {
        "z_end": (float, _positive, "> 0 Rayleigh lengths"),
        "steps": (int, lambda v: 2 <= v <= 10001, "2 <= steps <= 10001"),
        "judge": (str, _in("angular", "paraxial", "helmholtz"), "angular, paraxial or helmholtz"),
        "geometric": (bool, lambda v: True, "true or false"),
        "resample": (bool, lambda v: True, "true or false"),
        "nx": (int, lambda v: 32 <= v <= 65536, "32 <= nx <= 65536"),
        "window": (float, lambda v: v >= 2, ">= 2"),
        "exact": (str, _in("", *EXACT_CHECKS), f"one of {', '.join(EXACT_CHECKS)} (or empty)"),
    },
    "tolerance": {
        "max_distance": (float, _positive, "> 0 w0"),
        "completed": (float, lambda v: 0 < v <= 1, "a fraction in (0, 1]"),
        "judged": (float, lambda v: 0 < v <= 1, "a fraction in (0, 1]"),
        "exact": (float, _positive, "> 0 w0"),
    },
}
TABLES = {
    "launch": Launch,
    "medium": Medium,
    "dynamics": Dynamics,
    "run": Run,
    "tolerance": Tolerance,
}


@dataclasses.dataclass(frozen=True)
class Scenario:
    """One validated case (see the module docstring for the keys)."""

    name: str
    description: str
    figure: str = ""
    launch: Launch = Launch()
    medium: Medium = Medium()
    dynamics: Dynamics = Dynamics()
    run: Run = Run()
    tolerance: Tolerance = Tolerance()
    source: str = ""
    constants: Mapping[str, float] = dataclasses.field(default_factory=dict, hash=False)

    @property
    def rayleigh_length(self) -> float:
        """z_R = K w0²/2 with K = 2π/λ0 at the launch (w0 = 1)."""
        return 3.141592653589793 / self.launch.wavelength

    @property
    def wavenumber(self) -> float:
        """k = 2π/λ0 [1/w0], the name ``k`` in formulas."""
        return 2 * math.pi / self.launch.wavelength

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: a callable formula becomes its placeholder ``<python: name>``, a
        dynamics model ``<python: its description>``."""
        model = self.dynamics.model
        dynamics = dataclasses.replace(self.dynamics, model=None, kind="schrodinger")
        out = _jsonable(dataclasses.asdict(dataclasses.replace(self, dynamics=dynamics)))
        out["dynamics"]["kind"] = self.dynamics.kind
        if model is not None:
            describe = getattr(model, "describe", None)
            name = describe() if describe else repr(model)
            out["dynamics"]["model"] = f"{CALLABLE_MARK} {name}>"
        return out


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if callable(value):
        return f"{CALLABLE_MARK} {getattr(value, '__qualname__', type(value).__name__)}>"
    return value


#: How :meth:`Scenario.to_dict` writes a callable (it cannot be read back as a formula).
CALLABLE_MARK = "<python:"
#: The formula keys: (table, key) → their variables.
FORMULAS = {
    ("launch", "amplitude"): ("x",),
    ("launch", "phase"): ("x",),
    ("medium", "K2"): ("x", "z"),
}


def formula(
    sc: Scenario, table: str, key: str, value: Formula = None, *, text: str = ""
) -> Callable | None:
    """The callable of formula ``table.key`` (or of ``value`` in its place): an
    :class:`~compare.expressions.Expression` parsed with the scenario's constants and k,
    or the user's own callable; None if not given. A bad formula is a ScenarioError
    naming the file, line and key."""
    if value is None:
        value = getattr(getattr(sc, table), key)
    if value is None or callable(value):
        return value
    try:
        return _parse(value, FORMULAS[(table, key)], tuple(sc.constants.items()), sc.wavenumber)
    except expressions.ExpressionError as exc:
        raise ScenarioError(f"{_where(sc.source, text, table, key)} = {value!r}: {exc}") from None


@functools.lru_cache(maxsize=256)
def _parse(text, variables, constants, k) -> expressions.Expression:
    return expressions.parse(text, variables, dict(constants), wavenumber=k)


def _line_of(text: str, table: str | None, key: str) -> int | None:
    """The 1-based line where ``key`` is set (inside ``[table]`` if given)."""
    current = None
    for number, line in enumerate(text.splitlines(), 1):
        header = re.match(r"\s*\[([^\]]+)\]", line)
        if header:
            current = header.group(1).strip()
            continue
        if current == table and re.match(rf"\s*{re.escape(key)}\s*=", line):
            return number
    return None


def _where(path: str, text: str, table: str | None, key: str) -> str:
    line = _line_of(text, table, key)
    full = f"{table}.{key}" if table else key
    return f"{path}:{line}: {full}" if line else f"{path}: {full}"


def _coerce(value, kind: type, where: str, demand: str):
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is tuple and isinstance(value, list):
        value = tuple(float(v) if isinstance(v, (int, float)) else v for v in value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ScenarioError(
            f"{where} must be {kind.__name__} ({demand}); got {type(value).__name__} {value!r}"
        )
    numbers = value if kind is tuple else (value,)
    if any(isinstance(v, float) and not math.isfinite(v) for v in numbers):
        raise ScenarioError(f"{where} = {value!r}: must be a finite number ({demand})")
    return value


def _constants(given, path: str, text: str) -> dict[str, float]:
    if not isinstance(given, Mapping):
        raise ScenarioError(f"{path}: [constants] must be a table of numbers; got {given!r}")
    out = {}
    for name, value in given.items():
        where = _where(path, text, "constants", name)
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ScenarioError(f"{where}: a constant's name must be an identifier")
        if name in expressions.RESERVED:
            raise ScenarioError(
                f"{where}: {name!r} is predefined (x, z, k, pi, e and the functions); rename it"
            )
        out[name] = _coerce(value, float, where, "a finite number")
    return out


def from_mapping(
    data: Mapping[str, Any], *, path: str = "<scenario>", text: str = "", evaluate: bool = True
) -> Scenario:
    """Validate a parsed scenario (the TOML as a dict) into a :class:`Scenario`.

    ``evaluate=False`` (re-reading a run folder's ``scenario.json``) skips parsing and
    evaluating the formulas; a callable's placeholder is then kept as it is."""
    top = {"name", "description", "figure", "constants"} | set(TABLES)
    for key in data:
        if key not in top:
            raise ScenarioError(
                f"{_where(path, text, None, key)}: unknown key; allowed: {sorted(top)}"
            )
    for key in ("name", "description"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise ScenarioError(f"{_where(path, text, None, key)}: required, a non-empty string")
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", data["name"]):
        raise ScenarioError(
            f"{_where(path, text, None, 'name')}: use lower-case letters, digits and '-'; "
            f"got {data['name']!r}"
        )
    constants = _constants(data.get("constants", {}), path, text)
    tables = {}
    for table, cls in TABLES.items():
        given = data.get(table, {})
        if not isinstance(given, Mapping):
            raise ScenarioError(f"{path}: [{table}] must be a table; got {given!r}")
        values = {}
        for key, value in given.items():
            if table == "dynamics" and key == "model" and (value is None or not evaluate):
                continue  # a Python object: recorded by name, not rebuilt from a file
            if key not in RULES[table]:
                raise ScenarioError(
                    f"{_where(path, text, table, key)}: unknown key; allowed: "
                    f"{sorted(RULES[table])}"
                )
            if value is None or (not evaluate and (table, key) in FORMULAS):
                values[key] = value  # None: not given (JSON); a formula read back as is
                continue
            if table == "dynamics" and key == "kind" and value == "custom":
                if evaluate:
                    raise ScenarioError(
                        f"{_where(path, text, table, key)} = 'custom' needs dynamics.model, "
                        "a raytrace dynamics object: build the scenario in Python"
                    )
                continue  # read back from a run folder: the model is recorded by name
            if key in ("profile", "kind") and value == "custom":
                formula_key = "amplitude" if key == "profile" else "K2"
                if given.get(formula_key) is None:
                    raise ScenarioError(
                        f"{_where(path, text, table, key)} = 'custom' needs "
                        f"{table}.{formula_key}, a formula"
                    )
                continue  # set by the table itself, from its formula
            kind, check, demand = RULES[table][key]
            where = _where(path, text, table, key)
            value = _coerce(value, kind, where, demand)
            if not check(value):
                raise ScenarioError(f"{where} = {value!r} is impossible: must be {demand}")
            values[key] = value
        for (t, formula_key), _ in FORMULAS.items():
            shorthand = "profile" if formula_key == "amplitude" else "kind"
            if t == table and formula_key != "phase" and {formula_key, shorthand} <= set(given):
                if given[formula_key] is not None and given[shorthand] != "custom":
                    raise ScenarioError(
                        f"{_where(path, text, table, formula_key)}: give {table}.{formula_key} "
                        f"or {table}.{shorthand}, not both"
                    )
        tables[table] = cls(**values)
    sc = Scenario(
        name=data["name"],
        description=data["description"].strip(),
        figure=str(data.get("figure", "")),
        source=path,
        constants=constants,
        **tables,
    )
    if evaluate:
        validate(sc, text)
    return sc


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
        raise ScenarioError(f"{_where(path, text, 'medium', 'length')}: a lens needs length > 0")
    if sc.launch.x_range is not None and "span" in _keys(text, "launch"):
        raise ScenarioError(
            f"{_where(path, text, 'launch', 'x_range')}: give launch.x_range or launch.span, "
            "not both"
        )
    if sc.run.exact == "grin-centroid" and (
        sc.medium.kind != "grin" or "exp(-x**2)" != sc.launch.amplitude_formula
    ):
        raise ScenarioError(
            f"{_where(path, text, 'run', 'exact')}: 'grin-centroid' is exact for a Gaussian "
            "launch exp(-x**2) in medium.kind = 'grin'"
        )
    if sc.run.exact == "grin-centroid" and not np.any(sc.launch.points == 0.0):
        raise ScenarioError(
            f"{_where(path, text, 'launch', 'rays')}: 'grin-centroid' follows the ray launched "
            f"at x = 0, and {sc.launch.rays} rays on {sc.launch.bounds} have none there: use a "
            "symmetric span and an odd number of rays"
        )
    x0 = sc.launch.points
    _check_formula(sc, text, "launch", "amplitude", x0, nonzero=True)
    _check_formula(sc, text, "launch", "phase", x0)
    _check_formula(sc, text, "medium", "K2", x0, positive=True)
    _check_wavenumber(sc, text, x0)
    if not homogeneous(sc) and sc.run.judge == "angular":
        raise ScenarioError(
            f"{_where(path, text, 'run', 'judge')}: the angular spectrum is exact only in a "
            f"uniform medium; medium.kind = {sc.medium.kind!r} needs judge = 'paraxial' or "
            "'helmholtz'"
        )
    if sc.run.judge == "helmholtz" and sc.launch.wavelength < 0.05:
        raise ScenarioError(
            f"{_where(path, text, 'run', 'judge')}: λ0/w0 = {sc.launch.wavelength} cannot be "
            "resolved by the full-wave solver on this machine; use 'paraxial' or 'angular'"
        )
    return sc


#: K² on the launch line must be within this factor of k² = (2π/λ0)²: the paraxial judge
#: marches the envelope about k, and z_R = k w0²/2 sets the run's length.
WAVENUMBER_FACTOR = 2.0


def _launch_K2(sc: Scenario, x0: np.ndarray):
    """K² at the launch points (z = 0), or None in free space."""
    if sc.dynamics.model is not None:
        return np.asarray(sc.dynamics.model.K2(x0, np.zeros_like(x0)), float)
    if sc.medium.kind == "custom":
        f = formula(sc, "medium", "K2")
        return np.broadcast_to(np.asarray(f(x0, np.zeros_like(x0)), float), x0.shape)
    return None


def _check_wavenumber(sc: Scenario, text: str, x0: np.ndarray) -> None:
    K2 = _launch_K2(sc, x0)
    if K2 is None:
        return
    where = "dynamics.model" if sc.dynamics.model is not None else "medium.K2"
    if sc.dynamics.model is not None and not np.all(np.isfinite(K2) & (K2 > 0)):
        raise ScenarioError(
            f"{sc.source or '<scenario>'}: {where}: K² must be positive at every launch point"
        )
    ratio = float(np.median(K2)) / sc.wavenumber**2
    if not 1 / WAVENUMBER_FACTOR <= ratio <= WAVENUMBER_FACTOR:
        raise ScenarioError(
            f"{_where(sc.source or '<scenario>', text, 'launch', 'wavelength')}: {where} gives "
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


def _check_formula(sc, text, table, key, x0, nonzero=False, positive=False) -> None:
    """Evaluate formula ``table.key`` at the launch points (K2: on the launch line z = 0)."""
    value = getattr(getattr(sc, table), key)
    if key == "amplitude":
        value = sc.launch.amplitude_formula
    if value is None:
        return
    if isinstance(value, str) and value.startswith(CALLABLE_MARK):
        raise ScenarioError(
            f"{_where(sc.source, text, table, key)} = {value!r}: a Python callable cannot be "
            "read back from a file; build the scenario in Python"
        )
    f = formula(sc, table, key, value, text=text)
    where = _where(sc.source or "<scenario>", text, table, key)
    args = (x0, np.zeros_like(x0)) if key == "K2" else (x0,)
    try:
        with np.errstate(all="ignore"):
            v = np.broadcast_to(np.asarray(f(*args), dtype=float), x0.shape)
    except Exception as exc:  # a user's callable may raise anything: name it
        raise ScenarioError(f"{where}: evaluating it at the launch points failed: {exc}") from None
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


def with_overrides(sc: Scenario, overrides: Mapping[str, Any]) -> Scenario:
    """``sc`` with ``{"table.key": value}`` replaced (typed values, checked by the file's
    rules; formulas may be text or callables; ``constants.NAME`` sets a constant), then
    validated as a whole. The scenario itself is unchanged (frozen)."""
    changes: dict[str, dict[str, Any]] = {}
    constants = dict(sc.constants)
    for dotted, value in overrides.items():
        table, _, key = dotted.partition(".")
        where = f"override {dotted}"
        if table == "constants" and key:
            constants.update(_constants({key: value}, where, ""))
            continue
        if table not in RULES or key not in RULES[table]:
            known = sorted(f"{t}.{k}" for t in RULES for k in RULES[t])
            raise ScenarioError(
                f"{where}: unknown key; allowed: constants.NAME, {', '.join(known)}"
            )
        if not ((table, key) in FORMULAS and (value is None or callable(value))):
            kind, check, demand = RULES[table][key]
            value = _coerce(value, kind, where, demand)
            if not check(value):
                raise ScenarioError(f"{where} = {value!r} is impossible: must be {demand}")
        changes.setdefault(table, {})[key] = value
    for table, shorthand, formula_key in (
        ("launch", "profile", "amplitude"),
        ("medium", "kind", "K2"),
    ):
        given = changes.get(table, {})
        if shorthand in given:
            if given.get(formula_key, getattr(getattr(sc, table), formula_key)) is not None:
                raise ScenarioError(
                    f"override {table}.{shorthand}: the scenario gives {table}.{formula_key}; "
                    f"override {table}.{formula_key} instead (or set it to None as well)"
                )
    tables = {t: dataclasses.replace(getattr(sc, t), **kv) for t, kv in changes.items()}
    return validate(dataclasses.replace(sc, constants=constants, **tables))


def parse_value(raw: str):
    """A command-line value as TOML (64, 1e-4, true, [1, 2], "x"); a bare word is a string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw.strip()


def load_scenario(path: str | pathlib.Path, overrides: Mapping[str, str] | None = None) -> Scenario:
    """Read and validate a scenario file; ``overrides`` maps "table.key" to a TOML value."""
    path = pathlib.Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario file {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ScenarioError(
            f"{path}: not a UTF-8 text file (byte {exc.start} is {exc.object[exc.start]:#04x}): "
            "save the scenario as UTF-8 TOML"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from None
    for dotted, raw in (overrides or {}).items():
        table, _, key = dotted.rpartition(".")
        if not key:
            raise ScenarioError(f"--set {dotted}={raw}: use table.key=value, e.g. launch.rays=64")
        value = parse_value(raw)
        target, walked = data, []
        for part in table.split(".") if table else []:
            walked.append(part)
            if part not in target:
                target[part] = {}  # an unknown table is named by from_mapping
            target = target[part]
            if not isinstance(target, dict):
                name = ".".join(walked)
                raise ScenarioError(
                    f"--set {dotted}={raw}: {name} is a key (= {target!r}), not a table: "
                    f"set it with --set {name}=<value>"
                )
        target[key] = value
    return from_mapping(data, path=str(path), text=text)


def builtin_names() -> list[str]:
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.toml"))


def get(name_or_path: str, overrides: Mapping[str, str] | None = None) -> Scenario:
    """A built-in scenario by name, or a scenario file by path."""
    candidate = pathlib.Path(name_or_path)
    if candidate.suffix == ".toml" or candidate.exists():
        return load_scenario(candidate, overrides)
    path = SCENARIO_DIR / f"{name_or_path}.toml"
    if not path.exists():
        raise ScenarioError(
            f"no scenario named {name_or_path!r}; built-in: {', '.join(builtin_names())} "
            "(or pass a path to a .toml file)"
        )
    return load_scenario(path, overrides)


def library() -> list[Scenario]:
    """Every built-in scenario, validated."""
    return [get(name) for name in builtin_names()]
