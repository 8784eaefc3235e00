"""The scenario schema: its tables as frozen dataclasses, the rules each key obeys, and
the formulas (text or callables) a scenario may hold. The file format and its loading are
in :mod:`compare.scenarios`, which re-exports these names.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from compare import expressions


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


#: Tables that may be given their own formula (or, for dynamics, object) instead of a
#: named kind: table → (the kind's key, the formula's key). A table given one is
#: ``custom``, and ``custom`` needs one.
CUSTOM = {
    "launch": ("profile", "amplitude"),
    "medium": ("kind", "K2"),
    "dynamics": ("kind", "model"),
}


def _custom(obj, table: str) -> None:
    """``__post_init__`` of a table in :data:`CUSTOM` (frozen: set through object)."""
    kind, own = CUSTOM[table]
    if getattr(obj, own) is not None:
        object.__setattr__(obj, kind, "custom")
    elif getattr(obj, kind) == "custom":
        raise ScenarioError(f"{table}.{kind} = 'custom' needs {table}.{own}")


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
        _custom(self, "launch")

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
        _custom(self, "medium")


@dataclasses.dataclass(frozen=True)
class Dynamics:
    """``model`` (Python only): a ``raytrace.Schrodinger`` or ``KleinGordon`` object whose
    own K²(x, z) is then the medium of the rays and of the judging field (``kind`` is
    then ``custom``; leave ``[medium]`` at its default)."""

    kind: str = "schrodinger"
    rest_mass: float = 0.0
    model: object = None

    def __post_init__(self):
        _custom(self, "dynamics")


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
#: medium follows its centroid's sine (Ehrenfest, exact for the paraxial equation); the
#: rays of a finite-energy Airy beam follow its exact paraxial streamlines.
EXACT_CHECKS = ("straight-rays", "grin-centroid", "airy-streamlines")

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
        raise ScenarioError(f"{located(sc.source, text, table, key)} = {value!r}: {exc}") from None


@functools.lru_cache(maxsize=256)
def _parse(text, variables, constants, k) -> expressions.Expression:
    return expressions.parse(text, variables, dict(constants), wavenumber=k)


def line_of(text: str, table: str | None, key: str) -> int | None:
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


def located(path: str, text: str, table: str | None, key: str) -> str:
    line = line_of(text, table, key)
    full = f"{table}.{key}" if table else key
    return f"{path}:{line}: {full}" if line else f"{path}: {full}"


def coerce(value, kind: type, where: str, demand: str):
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
