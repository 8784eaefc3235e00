"""Project-level promises: package independence, CLI basics."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

import wavetraj
from compare import cli

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _imported_top_levels(package: str) -> set[str]:
    names = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize(
    ("package", "forbidden"), [("wavefield", "raytrace"), ("raytrace", "wavefield")]
)
def test_wavefield_and_raytrace_never_import_each_other(package, forbidden):
    assert forbidden not in _imported_top_levels(package)
    assert "compare" not in _imported_top_levels(package)
    code = f"import sys, {package}; assert {forbidden!r} not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_version_and_help(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert wavetraj.__version__ in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    assert info.value.code == 0
    assert "paper" in capsys.readouterr().out


def test_cli_without_command_is_usage_error(capsys):
    assert cli.main([]) == cli.EXIT_BAD_INPUT
