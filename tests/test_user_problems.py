"""User-defined problems: formulas in scenario files, callables from Python, typed
overrides, and the errors a bad or malicious formula gives (file, line, key; exit 2)."""

import dataclasses
import json
import re

import numpy as np
import pytest

from compare import cli, plot, scenarios
from compare.problem import Problem
from compare.report import rebuild, report
from compare.run import run_scenario
from compare.scenarios import Launch, Medium, Run, Scenario, ScenarioError, Tolerance

#: The same GRIN medium given as a formula and as the built-in kind: the rays differ only
#: by rounding (the formula's K² and its exact sympy gradient against the closed form),
#: measured 2.4e-11 w0 after 0.5 z_R (a dynamics object with the same V: 0, bit for bit).
SAME_MEDIUM = 1e-9

GRIN_FORMULA = """
name = "grin-formula"
description = "the built-in GRIN medium written as a formula"

[constants]
a = 100.0

[launch]
amplitude = "exp(-x**2)"
wavelength = 1e-2
rays = 32

[medium]
K2 = "k**2 * (1 - (x / a)**2)"

[run]
z_end = 0.5
steps = 11
judge = "paraxial"
window = 6.0

[tolerance]
max_distance = 1e-3
"""


def _write(tmp_path, text, name="s.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_formula_medium_traces_the_same_rays_as_the_built_in_one(tmp_path):
    user = scenarios.get(str(_write(tmp_path, GRIN_FORMULA)))
    assert (user.launch.profile, user.medium.kind) == ("custom", "custom")
    built_in = scenarios.with_overrides(
        scenarios.get("grin"),
        {"launch.rays": 32, "run.z_end": 0.5, "run.steps": 11, "run.geometric": False},
    )
    a, b = run_scenario(user), run_scenario(built_in)
    assert a.metrics["passed"] and b.metrics["passed"], (a.metrics["verdict"], b.metrics["verdict"])
    np.testing.assert_allclose(a.rays["x"].values, b.rays["x"].values, atol=SAME_MEDIUM, rtol=0)
    assert a.metrics["max_distance_w0"] == pytest.approx(b.metrics["max_distance_w0"], rel=1e-3)


def test_the_same_problem_built_in_python_with_callables(tmp_path):
    k = 2 * np.pi / 1e-2
    sc = Scenario(
        name="grin-python",
        description="GRIN medium from Python callables",
        launch=Launch(amplitude=lambda x: np.exp(-(x**2)), wavelength=1e-2, rays=32),
        medium=Medium(K2=lambda x, z: k**2 * (1 - (x / 100.0) ** 2) + 0 * z),
        run=Run(z_end=0.5, steps=11, judge="paraxial", window=6.0),
        tolerance=Tolerance(max_distance=1e-3),
    )
    r = run_scenario(scenarios.validate(sc))
    assert r.metrics["passed"], r.metrics["verdict"]
    report([r], tmp_path / "run")  # the run folder records the callables by name, and rebuilds
    (tmp_path / "run" / "report.html").unlink()
    assert "grin-python" in rebuild(tmp_path / "run").read_text()
    text = json.dumps(sc.to_dict())  # a callable is a placeholder, the dict stays JSON
    assert (
        "<python: test_the_same_problem_built_in_python_with_callables.<locals>.<lambda>>" in text
    )


def test_an_asymmetric_launch_range_and_a_tilted_phase_move_the_window():
    sc = scenarios.with_overrides(
        scenarios.get("gaussian"),
        {
            "launch.x_range": [0.5, 3.0],
            "launch.phase": "k * sin(1e-4) * x",
            "launch.rays": 24,
            "run.z_end": 1.0,
            "run.steps": 11,
        },
    )
    p = Problem.of(sc)
    assert p.launch.x0[0] == 0.5 and p.launch.x0[-1] == 3.0
    drift = p.z_end * np.tan(1e-4)  # the beam's centre moves sideways by z·tan θ
    lo, hi = p.window
    assert hi - lo == pytest.approx(2 * sc.run.window * np.sqrt(2) + drift, rel=1e-6)
    r = run_scenario(sc)
    assert r.metrics["passed"], r.metrics["verdict"]
    steep = scenarios.with_overrides(sc, {"launch.phase": "k * sin(1e-3) * x"})
    with pytest.raises(ScenarioError, match=r"set run\.nx >= 8"):
        Problem.of(steep)  # 31 w0 sideways at 1024 points: the phase is not resolved
    ray = r.rays.isel(ray=12)  # eq. 11's spreading about the axis, carried by the tilt
    spread = float(ray["x0"]) * np.sqrt(1 + sc.run.z_end**2)
    assert float(ray["x"][-1]) == pytest.approx(spread + drift, rel=1e-4)


@pytest.mark.parametrize(
    ("table", "line", "why"),
    [
        (
            "[launch]\namplitude = \"__import__('os').system('touch pwned')\"",
            6,
            "not allowed|listed",
        ),
        ('[launch]\namplitude = "exp(-x**2).real"', 6, "not allowed"),
        ('[launch]\namplitude = "exp(-y**2)"', 6, "unknown name"),
        ('[launch]\nrays = 129\namplitude = "x * exp(-x**2)"', 7, "non-zero at every"),
        ('[launch]\nphase = "log(x)"', 6, "finite at every launch point"),
        ('[medium]\nK2 = "k**2 - 1e9 * x**2"', 6, "positive at every launch point"),
        ('[medium]\nK2 = "k**2"\nkind = "grin"', 6, "not both"),
        ("[constants]\nk = 3.0", 6, "predefined"),
        ("[launch]\nx_range = [3.0, 1.0]", 6, "a < b"),
    ],
)
def test_a_bad_formula_names_file_line_and_key_and_exits_2(
    tmp_path, monkeypatch, capsys, table, line, why
):
    monkeypatch.chdir(tmp_path)
    text = 'name = "bad"\ndescription = "bad formula"\n\n\n' + table + "\n"
    path = _write(tmp_path, text)
    with pytest.raises(ScenarioError, match=why) as err:
        scenarios.get(str(path))
    assert f"{path}:{line}:" in str(err.value)
    assert cli.main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    assert why.split("|")[0] in capsys.readouterr().err or "|" in why
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "out").exists()


def test_typed_overrides_check_their_values():
    sc = scenarios.get("gaussian")
    assert scenarios.with_overrides(sc, {"launch.rays": 64}).launch.rays == 64
    assert sc.launch.rays == 128  # frozen: the original is unchanged
    with pytest.raises(ScenarioError, match=re.escape("override launch.rays = 3 is impossible")):
        scenarios.with_overrides(sc, {"launch.rays": 3})
    with pytest.raises(ScenarioError, match=re.escape("override launch.nope: unknown key")):
        scenarios.with_overrides(sc, {"launch.nope": 3})
    with pytest.raises(ScenarioError, match="predefined"):
        scenarios.with_overrides(sc, {"constants.pi": 3.0})
    custom = scenarios.with_overrides(sc, {"launch.amplitude": "exp(-x**4)"})
    assert custom.launch.profile == "custom"
    with pytest.raises(ScenarioError, match=re.escape("override launch.amplitude instead")):
        scenarios.with_overrides(custom, {"launch.profile": "bell"})
    with pytest.raises(ScenarioError, match=re.escape("needs launch.amplitude")):
        dataclasses.replace(custom.launch, amplitude=None)


def test_the_figures_api_draws_on_given_axes_and_returns_them():
    from matplotlib.figure import Figure

    sc = scenarios.with_overrides(
        scenarios.get("lens"), {"launch.rays": 24, "run.steps": 11, "run.nx": 256}
    )
    r = run_scenario(sc)
    fig = Figure()
    ax = fig.subplots()
    assert plot.pattern(r.rays, r.field, heavy=[3, 20], geometric=r.geometric, ax=ax) is ax
    assert len(ax.lines) > 24 and ax.images  # thin, heavy and dashed rays, over |u|²
    for made in (
        plot.profiles(r.field, r.rays, -1),
        plot.overlay(r.rays, r.lines),
        plot.distance(r.agreement, tolerance=1e-3),
    ):
        assert made.lines and made.figure is not None
    layout = plot.seed_layout(r.rays, r.field, heavy=[3, 20])
    assert len(layout.axes) == 3


def test_a_formula_scenario_runs_and_rebuilds_from_the_command_line(tmp_path, capsys):
    path = _write(tmp_path, GRIN_FORMULA, "grin_formula.toml")
    out = tmp_path / "out"
    assert cli.main(["run", str(path), "--out", str(out), "--set", "launch.rays=24"]) == 0
    assert "PASS  grin-formula" in capsys.readouterr().out
    saved = json.loads((out / "grin-formula" / "scenario.json").read_text())
    assert saved["medium"]["K2"] == "k**2 * (1 - (x / a)**2)" and saved["constants"] == {"a": 100.0}
    (out / "report.html").unlink()
    assert cli.main(["report", str(out)]) == 0
    assert "grin-formula" in (out / "report.html").read_text()


def test_every_metric_has_words_in_the_report():
    from compare.report import METRIC_LABELS

    sc = scenarios.with_overrides(
        scenarios.get("tilted-grin"), {"launch.rays": 17, "run.steps": 11}
    )
    m = run_scenario(sc).metrics
    assert set(m) <= set(METRIC_LABELS), sorted(set(m) - set(METRIC_LABELS))


def test_a_dynamics_object_gives_the_medium_of_rays_and_field(tmp_path):
    """A raytrace dynamics object from Python: its K² drives the rays and the judging
    field. The GRIN potential V = E x²/a² gives the built-in grin scenario's rays."""
    import raytrace as rt

    k, a = 2 * np.pi / 1e-2, 100.0
    E = k**2 / 2

    def V(x, z):
        return E * np.asarray(x) ** 2 / a**2

    def grad_V(x, z):
        return 2 * E * np.asarray(x) / a**2, np.zeros_like(np.asarray(x, float))

    model = rt.Schrodinger(V, E=E, grad_V=grad_V)
    built_in = scenarios.with_overrides(
        scenarios.get("grin"),
        {"launch.rays": 32, "run.z_end": 0.5, "run.steps": 11, "run.geometric": False},
    )
    sc = dataclasses.replace(
        built_in,
        name="grin-model",
        medium=Medium(),
        dynamics=scenarios.Dynamics(model=model),
    )
    assert sc.dynamics.kind == "custom"
    a_run, b_run = run_scenario(sc), run_scenario(built_in)
    assert a_run.metrics["passed"], a_run.metrics["verdict"]
    np.testing.assert_allclose(
        a_run.rays["x"].values, b_run.rays["x"].values, atol=SAME_MEDIUM, rtol=0
    )
    report([a_run], tmp_path / "run")  # the model is recorded by its description
    saved = json.loads((tmp_path / "run" / "grin-model" / "scenario.json").read_text())
    assert saved["dynamics"]["model"].startswith("<python: Schrodinger(E=")
    (tmp_path / "run" / "report.html").unlink()
    assert "grin-model" in rebuild(tmp_path / "run").read_text()
    with pytest.raises(ScenarioError, match=r"set launch\.wavelength"):
        scenarios.validate(dataclasses.replace(sc, launch=Launch(wavelength=0.1)))
    with pytest.raises(ScenarioError, match="leave \\[medium\\]"):
        scenarios.validate(dataclasses.replace(sc, medium=Medium(kind="grin")))


def test_airy_streamlines_are_parabolas_without_decay_and_match_the_angular_spectrum():
    """The Airy exact check itself: with decay = 0 every streamline is x0 + (z/k)²/4
    (closed form); with decay = 0.2 the angular spectrum's streamlines (non-paraxial, on a
    grid) follow them to the paraxial error (measured 7.6e-5 w0 over 2 z_R)."""
    from compare.checks import airy_streamlines
    from compare.streamlines import streamlines

    k = 2 * np.pi / 5e-2
    z = np.linspace(0, 200.0, 11)
    x0 = np.array([-1.0, 0.0, 1.5])
    np.testing.assert_allclose(
        airy_streamlines(x0, z, k, 0.0), x0[:, None] + (z / k) ** 2 / 4, atol=1e-8
    )
    sc = scenarios.with_overrides(scenarios.get("airy"), {"run.z_end": 2.0})
    p = Problem.of(sc)
    field = p.judge_field()
    planes = p.planes(field)
    lines = streamlines(field, x0, z_out=planes)
    exact = airy_streamlines(x0, planes, p.wavenumber, sc.constants["decay"])
    assert np.max(np.abs(lines["x"].values - exact)) < 3e-4


def test_a_phase_with_a_branch_cut_launches_with_its_exact_slope():
    """The crossing beams' phase is an arctan2 with 2π jumps; the tracer takes kx0 from
    the formula's exact derivative, so a launch point beside a jump gets the slope of the
    continuous phase (differences across the jump would be off by 2π/h)."""
    import raytrace as rt

    sc = scenarios.get("crossing")
    p = Problem.of(sc)
    q = sc.constants["q"]
    cut = np.pi / q  # Re u0 < 0 and Im u0 changes sign here: arg u0 jumps by 2π
    x0 = np.array([cut - 1e-12, cut + 1e-6])  # the first point's stencil straddles the cut
    assert abs(np.diff(p.launch.phase(x0))[0]) > 6  # the jump is there
    kx0 = rt.launch._launch_kx(p.launch.phase, x0)
    differenced = rt.launch._launch_kx(p.launch.phase.phi, x0)  # the bare formula
    assert abs(differenced[0]) > 1e6  # 2π over a few 1e-9 w0
    h = 1e-7
    smooth = (np.unwrap(p.launch.phase(np.array([cut - 2 * h, cut + 2 * h]))) @ [-1, 1]) / (4 * h)
    np.testing.assert_allclose(kx0, smooth, rtol=1e-4)


def test_every_exact_check_a_scenario_may_name_is_implemented():
    from compare import checks

    assert set(checks.EXACT) == set(scenarios.EXACT_CHECKS)
