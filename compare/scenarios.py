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
key and the file line. The schema itself (the tables, rules and formulas) is in
:mod:`compare.tables`, the whole-scenario checks in :mod:`compare.validation`.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import pathlib
import re
import sys
from collections.abc import Mapping
from typing import Any

from compare import expressions
from compare.tables import (
    CUSTOM,
    DEFAULT_JUDGED,
    EXACT_CHECKS,
    FORMULAS,
    PROFILES,
    RULES,
    TABLES,
    Dynamics,
    Formula,
    Launch,
    Medium,
    Run,
    Scenario,
    ScenarioError,
    Tolerance,
    coerce,
    formula,
    located,
)
from compare.validation import homogeneous, validate

__all__ = [
    "DEFAULT_JUDGED",
    "EXACT_CHECKS",
    "PROFILES",
    "SCENARIO_DIR",
    "Dynamics",
    "Formula",
    "Launch",
    "Medium",
    "Run",
    "Scenario",
    "ScenarioError",
    "Tolerance",
    "builtin_names",
    "formula",
    "from_mapping",
    "get",
    "homogeneous",
    "library",
    "load_scenario",
    "parse_value",
    "tomllib",
    "validate",
    "with_overrides",
]

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


def _constants(given, path: str, text: str) -> dict[str, float]:
    if not isinstance(given, Mapping):
        raise ScenarioError(f"{path}: [constants] must be a table of numbers; got {given!r}")
    out = {}
    for name, value in given.items():
        where = located(path, text, "constants", name)
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ScenarioError(f"{where}: a constant's name must be an identifier")
        if name in expressions.RESERVED:
            raise ScenarioError(
                f"{where}: {name!r} is predefined (x, z, k, pi, e and the functions); rename it"
            )
        out[name] = coerce(value, float, where, "a finite number")
    return out


def _checked(table: str, key: str, value, where: str):
    """``value`` of ``table.key`` coerced to its type and checked by its rule."""
    kind, check, demand = RULES[table][key]
    value = coerce(value, kind, where, demand)
    if not check(value):
        raise ScenarioError(f"{where} = {value!r} is impossible: must be {demand}")
    return value


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
                f"{located(path, text, None, key)}: unknown key; allowed: {sorted(top)}"
            )
    for key in ("name", "description"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise ScenarioError(f"{located(path, text, None, key)}: required, a non-empty string")
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", data["name"]):
        raise ScenarioError(
            f"{located(path, text, None, 'name')}: use lower-case letters, digits and '-'; "
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
                    f"{located(path, text, table, key)}: unknown key; allowed: "
                    f"{sorted(RULES[table])}"
                )
            if value is None or (not evaluate and (table, key) in FORMULAS):
                values[key] = value  # None: not given (JSON); a formula read back as is
                continue
            shorthand, own = CUSTOM.get(table, (None, None))
            if key == shorthand and value == "custom":
                if table == "dynamics" and not evaluate:
                    continue  # read back from a run folder: the model is recorded by name
                if given.get(own) is None:
                    what = (
                        "a raytrace dynamics object: build the scenario in Python"
                        if table == "dynamics"
                        else "a formula"
                    )
                    raise ScenarioError(
                        f"{located(path, text, table, key)} = 'custom' needs {table}.{own}, {what}"
                    )
                continue  # set by the table itself, from its formula
            values[key] = _checked(table, key, value, located(path, text, table, key))
        shorthand, own = CUSTOM.get(table, (None, None))
        if given.get(own) is not None and given.get(shorthand, "custom") != "custom":
            raise ScenarioError(
                f"{located(path, text, table, own)}: give {table}.{own} "
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
            constants.update(_constants({key: value}, "override", ""))
            continue
        if table not in RULES or key not in RULES[table]:
            known = sorted(f"{t}.{k}" for t in RULES for k in RULES[t])
            raise ScenarioError(
                f"{where}: unknown key; allowed: constants.NAME, {', '.join(known)}"
            )
        if not ((table, key) in FORMULAS and (value is None or callable(value))):
            value = _checked(table, key, value, where)
        changes.setdefault(table, {})[key] = value
    for table, (shorthand, own) in CUSTOM.items():
        given = changes.get(table, {})
        if own in RULES[table] and shorthand in given:
            if given.get(own, getattr(getattr(sc, table), own)) is not None:
                raise ScenarioError(
                    f"override {table}.{shorthand}: the scenario gives {table}.{own}; "
                    f"override {table}.{own} instead (or set it to None as well)"
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
