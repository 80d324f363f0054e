"""provenance: CPU feature detection (what decides the bf16 warning) and the environment record."""

import os

import pytest

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


def test_git_hash_outside_a_checkout_is_unknown(monkeypatch, tmp_path):
    monkeypatch.setattr(provenance, "_REPO", tmp_path)  # an exported tree: no .git
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    monkeypatch.delenv("SIAMESE_BENCH_GIT_HASH", raising=False)
    assert provenance.git_hash.__wrapped__() == "unknown"


def test_git_hash_of_a_copy_below_the_top_of_a_repository_is_unknown(monkeypatch, tmp_path):
    """An installed copy inside a checkout (a tox or venv site-packages) or inside another repository: git's
    commit says nothing about that copy's code, so it is not recorded; at the top of a checkout it is."""
    import subprocess

    repo = tmp_path / "other"
    repo.mkdir()
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    for cmd in (["init", "-q"], ["commit", "-q", "--allow-empty", "-m", "x"]):
        subprocess.run(["git", *cmd], cwd=repo, check=True, env={**os.environ, **env})
    monkeypatch.delenv("SIAMESE_BENCH_GIT_HASH", raising=False)
    nested = repo / ".tox" / "lib" / "siamese_bench"
    top = repo / "siamese_bench"
    for pkg, expected in ((nested, "unknown"), (top, None)):
        pkg.mkdir(parents=True)
        monkeypatch.setattr(provenance, "_PACKAGE", pkg)
        monkeypatch.setattr(provenance, "_REPO", pkg.parent)
        h = provenance.git_hash.__wrapped__()
        assert h == expected if expected else len(h) == 12 and h != "unknown", h


@pytest.mark.skipif(not (provenance._REPO / ".git").exists(), reason="not a git checkout")
def test_git_hash_is_the_checkout_commit_unless_the_environment_names_one(monkeypatch):
    monkeypatch.delenv("SIAMESE_BENCH_GIT_HASH", raising=False)
    h = provenance.git_hash.__wrapped__()
    assert len(h.removesuffix("-dirty")) == 12 and all(c in "0123456789abcdef" for c in h[:12])
    monkeypatch.setenv("SIAMESE_BENCH_GIT_HASH", "0123456789ab")
    assert provenance.git_hash.__wrapped__() == "0123456789ab"


def test_code_hash_changes_with_any_edit_of_the_package_sources(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "sub" / "b.py").write_text("y = 2\n")
    monkeypatch.setattr(provenance, "_PACKAGE", tmp_path)

    def fresh() -> str:
        provenance.code_hash.cache_clear()
        return provenance.code_hash()

    first = fresh()
    assert fresh() == first and len(first) == 16
    (tmp_path / "sub" / "b.py").write_text("y = 3\n")
    second = fresh()
    assert second != first
    (tmp_path / "sub" / "b.py").rename(tmp_path / "b.py")  # same contents, another place
    assert fresh() not in (first, second)
    provenance.code_hash.cache_clear()


def test_git_hash_is_dirty_only_for_uncommitted_edits_of_tracked_package_code(monkeypatch, tmp_path):
    """ "-dirty" when a tracked file under siamese_bench/ has uncommitted changes; not for untracked files
    or for edits elsewhere in the checkout. The environment override is recorded without its whitespace."""
    import subprocess

    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t"}
    env |= {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    pkg = tmp_path / "siamese_bench"
    pkg.mkdir()
    (pkg / "a.py").write_text("x = 1\n")
    (tmp_path / "README.md").write_text("r\n")
    for cmd in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "x"]):
        subprocess.run(["git", *cmd], cwd=tmp_path, check=True, env=env)
    monkeypatch.delenv("SIAMESE_BENCH_GIT_HASH", raising=False)
    monkeypatch.setattr(provenance, "_PACKAGE", pkg)
    monkeypatch.setattr(provenance, "_REPO", tmp_path)
    clean = provenance.git_hash.__wrapped__()
    assert len(clean) == 12
    (pkg / "new.py").write_text("y = 2\n")
    (tmp_path / "README.md").write_text("edited\n")
    assert provenance.git_hash.__wrapped__() == clean
    (pkg / "a.py").write_text("x = 2\n")
    assert provenance.git_hash.__wrapped__() == clean + "-dirty"
    monkeypatch.setenv("SIAMESE_BENCH_GIT_HASH", " 0123456789ab\n")
    assert provenance.git_hash.__wrapped__() == "0123456789ab"
    # a full hash (`git rev-parse HEAD` on the machine the tree came from) is shortened as the checkout's is
    monkeypatch.setenv("SIAMESE_BENCH_GIT_HASH", "c83baccd71511675d0e10a5e45f56a38c0487e1e")
    assert provenance.git_hash.__wrapped__() == "c83baccd7151"
    monkeypatch.setenv("SIAMESE_BENCH_GIT_HASH", "c83baccd7151-dirty")
    assert provenance.git_hash.__wrapped__() == "c83baccd7151-dirty"


def test_git_hash_never_writes_the_checkouts_index(monkeypatch, tmp_path):
    """`git status` refreshes and rewrites a stale index under .git/index.lock; a run interrupted then (Ctrl-C
    reaches git, then subprocess SIGKILLs it) left that lock behind, and git commit/checkout failed on it."""
    import subprocess
    import time

    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t"}
    env |= {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    pkg = tmp_path / "siamese_bench"
    pkg.mkdir()
    (pkg / "a.py").write_text("x = 1\n")
    for cmd in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "x"]):
        subprocess.run(["git", *cmd], cwd=tmp_path, check=True, env=env)
    os.utime(pkg / "a.py", (1e9, 1e9))  # same content, other mtime: the index entry is stale
    index = tmp_path / ".git" / "index"
    before = (index.stat().st_mtime_ns, index.read_bytes())
    time.sleep(0.05)
    monkeypatch.delenv("SIAMESE_BENCH_GIT_HASH", raising=False)
    monkeypatch.setattr(provenance, "_PACKAGE", pkg)
    monkeypatch.setattr(provenance, "_REPO", tmp_path)
    assert not provenance.git_hash.__wrapped__().endswith("-dirty")
    assert (index.stat().st_mtime_ns, index.read_bytes()) == before
