"""Shared fixture of the benchmark suites."""

from __future__ import annotations

from collections.abc import Callable

import pytest


@pytest.fixture(scope="module")
def show(request) -> Callable[[list[str]], None]:
    """`show(lines)` prints a suite's summary lines past pytest's output capture (seen even with -q)."""
    capman = request.config.pluginmanager.getplugin("capturemanager")

    def _show(lines: list[str]) -> None:
        with capman.global_and_fixture_disabled():
            print("\n" + "\n".join(lines))

    return _show
