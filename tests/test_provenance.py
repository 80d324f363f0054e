"""provenance: CPU feature detection (what decides the bf16 warning) and the environment record."""

from siamese_bench import provenance


def test_cpu_has_bf16_reads_the_flags():
    assert provenance.cpu_has_bf16(frozenset({"avx2", "avx512f", "avx512_bf16"})) is True
    assert provenance.cpu_has_bf16(frozenset({"avx2", "amx_bf16", "amx_tile"})) is True
    assert provenance.cpu_has_bf16(frozenset({"avx2", "avx512f", "fma"})) is False


def test_cpu_has_bf16_unknown_without_cpuinfo(monkeypatch):
    monkeypatch.setattr(provenance, "cpu_flags", lambda: None)
    assert provenance.cpu_has_bf16() is None


def test_environment_records_the_bf16_capability():
    env = provenance.environment()
    assert env["cpu_bf16"] in (True, False, None) and env["cpu_bf16"] == provenance.cpu_has_bf16()
