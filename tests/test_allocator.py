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


def test_the_environment_variable_opts_out(monkeypatch):
    monkeypatch.setattr(allocator, "_state", None)
    monkeypatch.setenv("SIAMESE_BENCH_MALLOC", "default")
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda *a: pytest.fail("mallopt must not be called"))
    assert allocator.keep_freed_memory() is False
    assert allocator.state() == "default (SIAMESE_BENCH_MALLOC=default)"
