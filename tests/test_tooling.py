"""The checkout's tooling agrees with itself: CI runs the README's test command, and every ruff install takes
the version range that pyproject's `required-version` accepts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _read(name: str) -> str:
    path = ROOT / name
    if not path.is_file():  # an sdist or installed copy without the checkout's files
        pytest.skip(f"{name} is not here (not a checkout)")
    return path.read_text()


def _ruff_specs(text: str) -> list[str]:
    """Every version spec of a ruff requirement in `text`: `ruff>=0.17,<0.18` -> `>=0.17,<0.18`."""
    return re.findall(r"\bruff((?:[<>=!~]=?[0-9.*]+,?)+)", text)


def test_every_ruff_install_takes_the_required_version_range():
    pyproject = _read("pyproject.toml")
    required = re.search(r'^required-version = "([^"]+)"$', pyproject, re.M)
    assert required, "pyproject.toml's [tool.ruff] has no required-version"
    places = {name: _ruff_specs(_read(name)) for name in ("pyproject.toml", "tox.ini", ".ci/run")}
    assert all(places.values()), f"a file installs no versioned ruff: {places}"
    assert {spec for specs in places.values() for spec in specs} == {required.group(1)}, places


def test_ci_runs_the_readme_test_command_verbatim():
    readme = _read("README.md")
    commands = re.findall(r"^    (pip install .*)$", readme, re.M)
    assert commands[:2] == [
        "pip install -e . && python -m siamese_bench run",
        'pip install -e ".[test]" && python -m pytest',
    ], commands
    ci = [line for line in _read(".ci/run").splitlines() if not line.lstrip().startswith("#")]
    assert any(line.startswith(commands[1] + " ") or line == commands[1] for line in ci), ci
