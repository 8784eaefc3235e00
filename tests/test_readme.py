"""The README's Python tour runs as written."""

from __future__ import annotations

import pathlib
import re

import numpy as np

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
#: The README's problem from the file (exact gradient of K²) and from Python callables
#: (finite-difference gradient of V): measured 8.5e-9 w0 apart.
SAME_RAYS = 1e-7


def test_readme_tour_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "the README has a Python tour"
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    assert (tmp_path / "field.nc").is_file()
    assert namespace["same"]["envelope"].dtype.kind == "c"


def test_readme_scenario_file_is_the_python_problem(tmp_path):
    """The README's TOML scenario and its Python twin trace the same rays."""
    from compare import scenarios
    from compare.run import run_scenario

    (text,) = re.findall(r"```toml\n(.*?)```", README.read_text(), re.S)
    path = tmp_path / "my_grin.toml"
    path.write_text(text, encoding="utf-8")
    from_file = run_scenario(scenarios.get(str(path)))
    namespace: dict = {}
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    exec(
        compile(next(b for b in blocks if "mine = Scenario(" in b), str(README), "exec"), namespace
    )
    from_python = namespace["result"]
    assert from_file.metrics["passed"] and from_python.metrics["passed"]
    # the formula (exact sympy gradient) and the callables (finite differences of V)
    np.testing.assert_allclose(
        from_file.rays["x"].values, from_python.rays["x"].values, atol=SAME_RAYS, rtol=0
    )
