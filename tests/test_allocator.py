"""The allocator setting that `run` applies: glibc only, idempotent, recorded in config.json."""

import platform

import pytest

from siamese_bench import allocator, provenance

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def test_keep_freed_memory_applies_on_glibc_once_and_says_so():
    first = allocator.keep_freed_memory()
    assert first is GLIBC
    assert allocator.keep_freed_memory() is first  # idempotent
    if GLIBC:
        assert allocator.state() == "glibc mallopt: mmap_threshold 32 MiB, trim_threshold 1024 MiB"
    assert provenance.environment()["allocator"] == allocator.state()


def test_other_c_libraries_are_left_alone(monkeypatch):
    monkeypatch.setattr(allocator, "_state", None)
    monkeypatch.setattr(allocator.platform, "libc_ver", lambda: ("musl", "1.2"))
    called = []
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda *a: called.append(a))
    assert allocator.keep_freed_memory() is False
    assert called == [] and allocator.state().startswith("default (")


@pytest.mark.skipif(not GLIBC, reason="glibc only")
def test_a_refused_setting_is_reported_not_hidden(monkeypatch):
    class Libc:
        def mallopt(self, param, value):
            return 0

    monkeypatch.setattr(allocator, "_state", None)
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda *a: Libc())
    assert allocator.keep_freed_memory() is False
    assert allocator.state() == "default (glibc refused mallopt)"


@pytest.mark.parametrize("value", ["default", " default\n"], ids=["plain", "with-whitespace"])
def test_the_environment_variable_opts_out(monkeypatch, value):
    monkeypatch.setattr(allocator, "_state", None)
    monkeypatch.setenv("SIAMESE_BENCH_MALLOC", value)
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda *a: pytest.fail("mallopt must not be called"))
    assert allocator.keep_freed_memory() is False
    assert allocator.state() == "default (SIAMESE_BENCH_MALLOC=default)"


class RecordingLibc:
    """Stands in for glibc: records mallopt(param, value) calls, accepts those in `accept`."""

    def __init__(self, accept=(-1, -3)):
        self.calls, self.accept = [], accept

    def mallopt(self, param, value):
        self.calls.append((param, value))
        return 1 if param in self.accept else 0


@pytest.mark.skipif(not GLIBC, reason="glibc only")
def test_mallopt_gets_glibcs_parameter_codes_and_the_documented_values_once(monkeypatch):
    """<malloc.h>: M_MMAP_THRESHOLD is -3, M_TRIM_THRESHOLD is -1; values 32 MiB and 1 GiB; one call each
    however often keep_freed_memory() runs."""
    libc = RecordingLibc()
    monkeypatch.setattr(allocator, "_state", None)
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda *a: libc)
    assert allocator.keep_freed_memory() is True and allocator.keep_freed_memory() is True
    assert libc.calls == [(-3, 32 * 2**20), (-1, 2**30)]


@pytest.mark.skipif(not GLIBC, reason="glibc only")
def test_one_refused_setting_of_two_is_reported(monkeypatch):
    monkeypatch.setattr(allocator, "_state", None)
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda *a: RecordingLibc(accept=(-3,)))
    assert allocator.keep_freed_memory() is False
    assert allocator.state() == "default (glibc refused mallopt)"
