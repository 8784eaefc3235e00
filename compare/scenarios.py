"""The scenario library: named, documented cases in ``data/scenarios/*.toml``.

A scenario file has four tables (every key optional unless marked, defaults below)::

    name = "gaussian"                       # required
    description = "one line for `wavetraj list`"   # required
    figure = "Fig. 1"                       # the seed figure it reproduces, if any

    [launch]
    profile = "gaussian"   # gaussian: exp(-x²) | bell: exp(-x⁴) | two-beams
    wavelength = 1e-4      # λ0/w0 at the launch line
    rays = 128             # self-consistent rays, equally spaced on [-span, span]
    span = 3.0             # w0
    separation = 3.0       # two-beams: distance between the beam centres (w0)
    heavy = [-1.0, 1.0]    # launch points drawn as heavy rays

    [medium]
    kind = "free"          # free | grin: K² = k²(1 − x²/a²) | lens: the same for z < length
    a = 100.0              # w0
    length = 0.0           # lens: thickness of the focusing region (w0)

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

    [tolerance]
    max_distance = 1e-4    # w0: worst ray–streamline distance that passes
    completed = 1.0        # fraction of the rays that must reach z_end ("ok")
    judged = 0.75          # fraction of the compared length (z0..z_end, averaged over the
                           # compared rays) over which rays and streamlines both exist

A scenario passes only when all three hold: a run whose rays stopped, or whose streamlines
stopped before they could be compared, fails and says why.

Unknown keys, wrong types and impossible values raise :class:`ScenarioError` naming the
key and the file line.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import math
import pathlib
import re
import sys
from collections.abc import Mapping
from typing import Any

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


@dataclasses.dataclass(frozen=True)
class Launch:
    profile: str = "gaussian"
    wavelength: float = 1e-4
    rays: int = 128
    span: float = 3.0
    separation: float = 3.0
    heavy: tuple[float, ...] = (-1.0, 1.0)


@dataclasses.dataclass(frozen=True)
class Medium:
    kind: str = "free"
    a: float = 100.0
    length: float = 0.0


@dataclasses.dataclass(frozen=True)
class Dynamics:
    kind: str = "schrodinger"
    rest_mass: float = 0.0


@dataclasses.dataclass(frozen=True)
class Run:
    z_end: float = 3.0
    steps: int = 61
    judge: str = "angular"
    geometric: bool = False
    resample: bool = True
    nx: int = 1024
    window: float = 8.0


#: Default share of the compared length that must be judged. The edge streamlines of the
#: bell start in its tails below the streamline floor (R < 1e-4 of the peak) and are not
#: compared at all: measured 0.83 for the bell, 0.94-1.0 for the other built-in scenarios.
DEFAULT_JUDGED = 0.75


@dataclasses.dataclass(frozen=True)
class Tolerance:
    max_distance: float = 1e-4
    completed: float = 1.0
    judged: float = DEFAULT_JUDGED


#: (type, check, what the check demands) per key of each table.
RULES: dict[str, dict[str, tuple[type, Any, str]]] = {
    "launch": {
        "profile": (str, _in("gaussian", "bell", "two-beams"), "gaussian, bell or two-beams"),
        "wavelength": (float, lambda v: 0 < v <= 2, "0 < λ0/w0 <= 2"),
        "rays": (int, lambda v: 16 <= v <= 20000, "16 <= rays <= 20000"),
        "span": (float, lambda v: 0 < v <= 10, "0 < span <= 10 w0"),
        "separation": (float, _nonneg, ">= 0"),
        "heavy": (tuple, lambda v: all(isinstance(t, (int, float)) for t in v), "numbers"),
    },
    "medium": {
        "kind": (str, _in("free", "grin", "lens"), "free, grin or lens"),
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
    },
    "tolerance": {
        "max_distance": (float, _positive, "> 0 w0"),
        "completed": (float, lambda v: 0 < v <= 1, "a fraction in (0, 1]"),
        "judged": (float, lambda v: 0 < v <= 1, "a fraction in (0, 1]"),
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

    @property
    def rayleigh_length(self) -> float:
        """z_R = K w0²/2 with K = 2π/λ0 at the launch (w0 = 1)."""
        return 3.141592653589793 / self.launch.wavelength

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


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


def from_mapping(data: Mapping[str, Any], *, path: str = "<scenario>", text: str = "") -> Scenario:
    """Validate a parsed scenario (the TOML as a dict) into a :class:`Scenario`."""
    top = {"name", "description", "figure"} | set(TABLES)
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
    tables = {}
    for table, cls in TABLES.items():
        given = data.get(table, {})
        if not isinstance(given, Mapping):
            raise ScenarioError(f"{path}: [{table}] must be a table; got {given!r}")
        values = {}
        for key, value in given.items():
            if key not in RULES[table]:
                raise ScenarioError(
                    f"{_where(path, text, table, key)}: unknown key; allowed: "
                    f"{sorted(RULES[table])}"
                )
            kind, check, demand = RULES[table][key]
            where = _where(path, text, table, key)
            value = _coerce(value, kind, where, demand)
            if not check(value):
                raise ScenarioError(f"{where} = {value!r} is impossible: must be {demand}")
            values[key] = value
        tables[table] = cls(**values)
    sc = Scenario(
        name=data["name"],
        description=data["description"].strip(),
        figure=str(data.get("figure", "")),
        source=path,
        **tables,
    )
    _check_consistency(sc, path, text)
    return sc


def _check_consistency(sc: Scenario, path: str, text: str) -> None:
    if sc.medium.kind == "lens" and sc.medium.length <= 0:
        raise ScenarioError(f"{_where(path, text, 'medium', 'length')}: a lens needs length > 0")
    if sc.medium.kind != "free" and sc.run.judge == "angular":
        raise ScenarioError(
            f"{_where(path, text, 'run', 'judge')}: the angular spectrum is exact only in free "
            f"space; medium.kind = {sc.medium.kind!r} needs judge = 'paraxial' or 'helmholtz'"
        )
    if sc.run.judge == "helmholtz" and sc.launch.wavelength < 0.05:
        raise ScenarioError(
            f"{_where(path, text, 'run', 'judge')}: λ0/w0 = {sc.launch.wavelength} cannot be "
            "resolved by the full-wave solver on this machine; use 'paraxial' or 'angular'"
        )


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
