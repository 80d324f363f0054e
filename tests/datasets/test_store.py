"""store: data/cache directory rules, checksums, atomic writes, offline downloads (file:// URLs), the
missing-data error, the tensor cache (round trip, memo, corrupt file, unwritable folder) and resizing."""

from __future__ import annotations

import hashlib
import os
import stat
import time
import warnings
from pathlib import Path

import pytest
import torch

from siamese_bench.datasets import store
from siamese_bench.datasets.imageset import ImageSet

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv(store.ENV_CACHE, str(d))
    store.clear_memory_cache()
    yield d
    store.clear_memory_cache()


def tiny_set(name: str = "tiny", n: int = 6) -> ImageSet:
    g = torch.Generator().manual_seed(0)
    return ImageSet(
        name,
        torch.randint(0, 256, (n, 1, 5, 7), generator=g, dtype=torch.uint8),
        torch.arange(n) % 3,
        ("a", "b", "c"),
        torch.tensor([0, 0, 1]),
        ("g0", "g1"),
        {"drawer": torch.arange(n)},
    )


def assert_same(a: ImageSet, b: ImageSet) -> None:
    assert a.name == b.name
    assert torch.equal(a.images, b.images) and a.images.dtype == torch.uint8
    assert torch.equal(a.labels, b.labels)
    assert a.class_names == b.class_names and a.group_names == b.group_names
    assert torch.equal(a.groups, b.groups)
    assert a.extra.keys() == b.extra.keys() and all(torch.equal(a.extra[k], b.extra[k]) for k in a.extra)


# ------------------------------------------------------------------------------------------- directories


def test_resolve_data_dir_rules(tmp_path, monkeypatch):
    monkeypatch.setenv(store.ENV_DATA, str(tmp_path / "env"))
    d, why = store.resolve_data_dir(tmp_path / "arg")
    assert d == tmp_path / "arg" and "explicit" in why
    d, why = store.resolve_data_dir()
    assert d == tmp_path / "env" and store.ENV_DATA in why
    monkeypatch.delenv(store.ENV_DATA)
    d, why = store.resolve_data_dir()
    assert d == REPO / "data" and "checkout" in why  # the tests run from a checkout (pyproject.toml)


def test_cache_dir_env_and_default(tmp_path, monkeypatch):
    monkeypatch.setenv(store.ENV_CACHE, str(tmp_path / "c"))
    monkeypatch.setenv(store.ENV_DATA, str(tmp_path / "readonly-data"))
    assert store.cache_dir() == tmp_path / "c"
    monkeypatch.delenv(store.ENV_CACHE)
    # not under $SIAMESE_BENCH_DATA (may be read-only) but under the default data dir
    assert store.cache_dir() == REPO / "data" / "cache"


# --------------------------------------------------------------------------------- checksums and writes


def test_checksums(tmp_path):
    p = tmp_path / "f.bin"
    p.write_bytes(b"hello world")
    assert store.sha256_file(p) == hashlib.sha256(b"hello world").hexdigest()
    assert store.md5_file(p) == "5eb63bbbe01eeed093cb22bb8f5acdc3"
    p.write_bytes(b"changed!!!!")  # same size, other mtime: hashed again
    os.utime(p, ns=(1, 1))
    assert store.sha256_file(p) == hashlib.sha256(b"changed!!!!").hexdigest()


def test_atomic_write_bytes(tmp_path):
    p = tmp_path / "sub" / "out.bin"
    store.atomic_write_bytes(p, b"abc")
    assert p.read_bytes() == b"abc"
    assert stat.S_IMODE(p.stat().st_mode) == 0o644
    assert sorted(x.name for x in p.parent.iterdir()) == ["out.bin"]


def test_atomic_torch_save_failure_keeps_old_file(tmp_path):
    p = tmp_path / "obj.pt"
    store.atomic_torch_save({"x": torch.arange(3)}, p)
    with pytest.raises(Exception):  # noqa: B017  (a lambda cannot be pickled)
        store.atomic_torch_save({"f": lambda: 0}, p)
    assert torch.equal(torch.load(p, weights_only=True)["x"], torch.arange(3))
    assert [x.name for x in tmp_path.iterdir()] == ["obj.pt"]  # no temp file left behind


# ------------------------------------------------------------------------------------------- downloads


def test_download_file_url_checks_md5_and_sha256(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"payload")
    dest = tmp_path / "dl" / "out.bin"
    store.download(src.as_uri(), dest, md5=hashlib.md5(b"payload").hexdigest())
    assert dest.read_bytes() == b"payload"
    dest2 = tmp_path / "dl" / "out2.bin"
    store.download(src.as_uri(), dest2, sha256=hashlib.sha256(b"payload").hexdigest())
    assert dest2.read_bytes() == b"payload"


def test_download_bad_checksum_leaves_nothing(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"payload")
    dest = tmp_path / "dl" / "out.bin"
    with pytest.raises(store.DownloadError, match="md5 .* != expected 0{32}"):
        store.download(src.as_uri(), dest, md5="0" * 32)
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []


def test_download_tries_mirrors_and_names_every_failure(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"x")
    missing = (tmp_path / "nope.bin").as_uri()
    dest = tmp_path / "out.bin"
    store.download([missing, src.as_uri()], dest)  # first mirror fails, second works
    assert dest.read_bytes() == b"x"
    with pytest.raises(store.DownloadError) as e:
        store.download([missing], tmp_path / "other.bin")
    assert "nope.bin" in str(e.value) and "other.bin" in str(e.value) and store.ENV_DATA in str(e.value)


def test_require_files_missing_message(tmp_path):
    rf = store.RemoteFile("thing.zip", ("https://example.org/thing.zip",), md5="0" * 32)
    with pytest.raises(store.DatasetMissingError) as e:
        store.require_files("toy", tmp_path, [rf])
    msg = str(e.value)
    assert "thing.zip" in msg and str(tmp_path / "toy") in msg
    assert "--data-dir" in msg and store.ENV_DATA in msg and "python -m siamese_bench data fetch toy" in msg
    assert isinstance(e.value, FileNotFoundError)


def test_require_files_names_every_file_whose_download_failed(tmp_path):
    """With downloads allowed but no way to reach the URLs, one error lists every missing file and why each
    download failed (not only the first file)."""
    files = [store.RemoteFile(n, ((tmp_path / "nowhere" / n).as_uri(),)) for n in ("a.gz", "b.gz", "c.gz")]
    with pytest.raises(store.DatasetMissingError) as e:
        store.require_files("toy", tmp_path / "data", files, allow_download=True, fetch_name="toy-files")
    msg = str(e.value)
    assert "missing a.gz, b.gz, c.gz" in msg
    assert all(f"could not download {n}" in msg for n in ("a.gz", "b.gz", "c.gz"))
    assert "data fetch toy-files" in msg
    assert not list((tmp_path / "data").rglob("*.part"))


def test_read_zip_entry_names_a_damaged_entry(tmp_path):
    import zipfile

    path = tmp_path / "a.zip"
    payload = bytes(range(256)) * 40
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("dir/entry.bin", payload)
    raw = bytearray(path.read_bytes())
    at = raw.find(payload[:64])
    raw[at + 100] ^= 0xFF  # flip a byte of the entry's data: its CRC no longer matches
    path.write_bytes(bytes(raw))
    with zipfile.ZipFile(path) as zf, pytest.raises(ValueError) as e:
        store.read_zip_entry(zf, path, "dir/entry.bin", "toy")
    assert f"{path}: entry dir/entry.bin is damaged" in str(e.value) and "data fetch toy" in str(e.value)


def test_mismatched_lists_files_that_are_not_the_official_download(tmp_path):
    good, bad = b"official", b"something else"
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "g.zip").write_bytes(good)
    (tmp_path / "toy" / "b.zip").write_bytes(bad)
    (tmp_path / "toy" / "c.raw").write_bytes(bad)  # an alternative form: no checksum of its own
    files = [
        store.RemoteFile("g.zip", ("https://example.org/g.zip",), md5=hashlib.md5(good).hexdigest()),
        store.RemoteFile("b.zip", ("https://example.org/b.zip",), sha256=hashlib.sha256(good).hexdigest()),
        store.RemoteFile("c.gz", ("https://example.org/c.gz",), md5="0" * 32, alternatives=("c.raw",)),
    ]
    found = store.require_files("toy", tmp_path, files)
    assert [rf.name for rf in store.mismatched(found, files)] == ["b.zip"]


def test_require_files_finds_alternatives_and_top_level(tmp_path):
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "a.raw").write_bytes(b"1")
    (tmp_path / "b.gz").write_bytes(b"2")  # directly in the data dir is accepted too
    files = [
        store.RemoteFile("a.gz", ("https://example.org/a.gz",), alternatives=("a.raw",)),
        store.RemoteFile("b.gz", ("https://example.org/b.gz",)),
    ]
    found = store.require_files("toy", tmp_path, files)
    assert found == {"a.gz": tmp_path / "toy" / "a.raw", "b.gz": tmp_path / "b.gz"}


def test_require_files_downloads_when_allowed(tmp_path):
    src = tmp_path / "remote" / "thing.zip"
    src.parent.mkdir()
    src.write_bytes(b"zipzip")
    rf = store.RemoteFile("thing.zip", (src.as_uri(),), md5=hashlib.md5(b"zipzip").hexdigest())
    data = tmp_path / "data"
    found = store.require_files("toy", data, [rf], allow_download=True)
    assert found["thing.zip"] == data / "toy" / "thing.zip"
    assert found["thing.zip"].read_bytes() == b"zipzip"


# ----------------------------------------------------------------------------------------- tensor cache


def test_cache_round_trip_memo_and_disk(tmp_cache):
    calls = []

    def build():
        calls.append(1)
        return {"x": tiny_set("x"), "y": tiny_set("y", 3)}

    key = {"dataset": "toy", "sources": {"f": "abc"}, "image_size": None}
    first = store.cached(key, build, name="toy")
    path = store.cache_path(key, "toy")
    assert path.is_file() and calls == [1]
    assert [p.name for p in tmp_cache.iterdir()] == [path.name]  # written atomically: no temp file left
    assert store.cached(key, build, name="toy") is first  # per-process memo
    store.clear_memory_cache()
    second = store.cached(key, build, name="toy")  # from disk
    assert calls == [1]
    for k in first:
        assert_same(first[k], second[k])
    store.clear_memory_cache()
    other = store.cached({**key, "image_size": 28}, build, name="toy")  # another key: another file
    assert calls == [1, 1] and len(list(tmp_cache.iterdir())) == 2
    assert_same(other["x"], first["x"])


def test_cache_key_includes_format_version(monkeypatch):
    k1 = store.cache_key({"a": 1})
    monkeypatch.setattr(store, "FORMAT_VERSION", store.FORMAT_VERSION + 1)
    assert store.cache_key({"a": 1}) != k1


@pytest.mark.parametrize("garbage", [b"", b"not a torch file at all", "truncate"])
def test_corrupt_cache_file_is_rebuilt(tmp_cache, garbage):
    key = {"dataset": "toy"}
    store.cached(key, lambda: {"x": tiny_set()}, name="toy")
    path = store.cache_path(key, "toy")
    if garbage == "truncate":
        path.write_bytes(path.read_bytes()[:200])
    else:
        path.write_bytes(garbage)
    store.clear_memory_cache()
    with pytest.warns(UserWarning, match="rebuilding"):
        again = store.cached(key, lambda: {"x": tiny_set()}, name="toy")
    assert_same(again["x"], tiny_set())
    store.clear_memory_cache()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # rewritten: loads cleanly now
        assert_same(store.cached(key, lambda: pytest.fail("rebuilt twice"), name="toy")["x"], tiny_set())


def test_cache_file_with_wrong_key_is_rebuilt(tmp_cache):
    key = {"dataset": "toy"}
    path = store.cache_path(key, "toy")
    store.atomic_torch_save(
        {"key": "something else", "format_version": store.FORMAT_VERSION, "sets": {}}, path
    )
    with pytest.warns(UserWarning, match="key mismatch"):
        got = store.cached(key, lambda: {"x": tiny_set()}, name="toy")
    assert_same(got["x"], tiny_set())


def test_unwritable_cache_folder_warns_and_still_returns(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv(store.ENV_CACHE, str(blocker / "cache"))
    store.clear_memory_cache()
    with pytest.warns(UserWarning, match="could not write cache file"):
        got = store.cached({"dataset": "toy"}, lambda: {"x": tiny_set()}, name="toy")
    assert_same(got["x"], tiny_set())
    store.clear_memory_cache()


# --------------------------------------------------------------------------------------------- resizing


def test_resize_images_matches_interpolate_and_rounds():
    x = torch.zeros(2, 1, 8, 8, dtype=torch.uint8)
    x[:, :, 2:6, 2:6] = 255
    y = store.resize_images(x, 4, chunk=1)
    ref = torch.nn.functional.interpolate(x.float(), size=(4, 4), mode="bilinear", antialias=True)
    assert y.dtype == torch.uint8 and y.shape == (2, 1, 4, 4)
    assert torch.equal(y, ref.round().clamp(0, 255).to(torch.uint8))
    assert int(y[0, 0, 1, 1]) > 128 > int(y[0, 0, 0, 0])  # square stays in the middle, blurred
    assert store.resize_images(x, 8) is x


def test_resize_images_rejects_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        store.resize_images(torch.zeros(1, 1, 4, 4), 2)
    with pytest.raises(ValueError, match="positive"):
        store.resize_images(torch.zeros(1, 1, 4, 4, dtype=torch.uint8), 0)


def test_format_report():
    text = store.format_report(
        [
            store.VerifyReport("a", True, True, Path("/d/a"), {"train": 60000}, "official md5"),
            store.VerifyReport("b", False, False, Path("/d/b"), detail="b: missing x.zip"),
            store.VerifyReport("c", True, False, Path("/d/c"), detail="bad sha256"),
        ],
        header="data directory: /d",
    )
    lines = text.splitlines()
    assert lines[0] == "data directory: /d"
    assert "OK" in lines[1] and "train 60,000" in text and "check passed: official md5" in text
    assert "MISSING" in text and "missing x.zip" in text and "FAILED" in text and "bad sha256" in text


def test_empty_data_dir_argument_means_not_given(tmp_path, monkeypatch):
    monkeypatch.setenv(store.ENV_DATA, str(tmp_path / "env"))
    assert store.resolve_data_dir("") == (tmp_path / "env", f"environment variable {store.ENV_DATA}")


def test_checksum_memo_sees_same_size_and_same_mtime_changes(tmp_path):
    """The memo key holds both size and mtime: a same-size rewrite (new mtime) and a different-size rewrite
    (mtime set back) are both hashed again."""
    p = tmp_path / "f.bin"
    p.write_bytes(b"hello world")
    os.utime(p, ns=(10**18, 10**18))
    assert store.sha256_file(p) == hashlib.sha256(b"hello world").hexdigest()
    p.write_bytes(b"HELLO WORLD")  # same size
    os.utime(p, ns=(2 * 10**18, 2 * 10**18))
    assert store.sha256_file(p) == hashlib.sha256(b"HELLO WORLD").hexdigest()
    p.write_bytes(b"hi")  # other size, same mtime as before
    os.utime(p, ns=(2 * 10**18, 2 * 10**18))
    assert store.md5_file(p) == hashlib.md5(b"hi").hexdigest()
    assert store.sha256_file(p) == hashlib.sha256(b"hi").hexdigest()


def test_checksum_memo_sees_a_rewrite_with_the_same_size_and_mtime(tmp_path):
    """Was: the memo was keyed on (path, size, mtime) only, so a file rewritten with its old size and mtime
    (`cp -p`, `rsync -t`, or os.utime) kept its old checksum, and so did the cache key of the images in it.
    The ctime (which no user can set) and the inode are in the key too."""
    p = tmp_path / "f.bin"
    p.write_bytes(b"aaaa")
    os.utime(p, ns=(10**18, 10**18))
    assert store.md5_file(p) == hashlib.md5(b"aaaa").hexdigest()
    time.sleep(0.02)  # past a clock tick: kernels without fine-grained ctime stamp whole ticks
    p.write_bytes(b"bbbb")  # in place: same inode, size and (set back) mtime; a new ctime
    os.utime(p, ns=(10**18, 10**18))
    assert store.md5_file(p) == hashlib.md5(b"bbbb").hexdigest()
    q = tmp_path / "g.bin"  # rsync -t: a new file renamed over the old one (a new inode)
    q.write_bytes(b"cccc")
    os.utime(q, ns=(10**18, 10**18))
    os.replace(q, p)
    assert store.sha256_file(p) == hashlib.sha256(b"cccc").hexdigest()
    assert store.md5_file(p) == hashlib.md5(b"cccc").hexdigest()


def test_clear_memory_cache_forgets_checksums(tmp_path, monkeypatch):
    p = tmp_path / "f.bin"
    p.write_bytes(b"aaaa")
    hashed = []
    new = hashlib.new
    monkeypatch.setattr(store.hashlib, "new", lambda algo: hashed.append(algo) or new(algo))
    assert store.md5_file(p) == store.md5_file(p) == hashlib.md5(b"aaaa").hexdigest()
    assert hashed == ["md5"]  # memoised
    store.clear_memory_cache()
    assert store.md5_file(p) == hashlib.md5(b"aaaa").hexdigest()
    assert hashed == ["md5", "md5"]


def test_download_is_world_readable_and_checks_sha256(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"payload")
    dest = tmp_path / "dl" / "out.bin"
    store.download(src.as_uri(), dest)
    assert stat.S_IMODE(dest.stat().st_mode) == 0o644
    with pytest.raises(store.DownloadError, match="sha256 .* != expected 0{64}"):
        store.download(src.as_uri(), tmp_path / "dl" / "bad.bin", sha256="0" * 64)
    assert sorted(x.name for x in dest.parent.iterdir()) == ["out.bin"]


def test_mismatched_checks_md5(tmp_path):
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "m.zip").write_bytes(b"not it")
    rf = store.RemoteFile("m.zip", ("https://example.org/m.zip",), md5=hashlib.md5(b"official").hexdigest())
    found = store.require_files("toy", tmp_path, [rf])
    assert store.mismatched(found, [rf]) == [rf]


def test_read_zip_entry_names_undecompressable_data(tmp_path):
    import zipfile

    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("entry.bin", bytes(range(256)) * 40)
    raw = bytearray(path.read_bytes())
    start = 30 + int.from_bytes(raw[26:28], "little") + int.from_bytes(raw[28:30], "little")
    raw[start] |= 0b110  # deflate block type 3 (reserved): zlib.error, not a CRC mismatch
    path.write_bytes(bytes(raw))
    with zipfile.ZipFile(path) as zf, pytest.raises(ValueError, match="entry entry.bin is damaged"):
        store.read_zip_entry(zf, path, "entry.bin", "toy")


def test_cache_key_ignores_dict_order_and_paths_differ_per_key(tmp_cache):
    assert store.cache_key({"a": 1, "b": {"x": 1, "y": 2}}) == store.cache_key(
        {"b": {"y": 2, "x": 1}, "a": 1}
    )
    paths = {store.cache_path({"i": i}, "toy") for i in range(300)}
    assert len(paths) == 300  # no two keys share a cache file


def test_cache_file_with_other_format_version_is_rebuilt(tmp_cache):
    key = {"dataset": "toy"}
    path = store.cache_path(key, "toy")
    blob = {"key": store.cache_key(key), "format_version": store.FORMAT_VERSION - 1, "sets": {}}
    store.atomic_torch_save(blob, path)
    with pytest.warns(UserWarning, match="key mismatch"):
        got = store.cached(key, lambda: {"x": tiny_set()}, name="toy")
    assert_same(got["x"], tiny_set())


def test_resize_images_rejects_non_4d():
    with pytest.raises(ValueError, match=r"needs \(N, C, H, W\) uint8"):
        store.resize_images(torch.zeros(1, 8, 8, dtype=torch.uint8), 4)


def test_require_files_does_not_download_unless_allowed(tmp_path):
    src = tmp_path / "remote" / "thing.zip"
    src.parent.mkdir()
    src.write_bytes(b"zipzip")
    rf = store.RemoteFile("thing.zip", (src.as_uri(),))
    with pytest.raises(store.DatasetMissingError, match="chosen by: given explicitly"):
        store.require_files("toy", tmp_path / "data", [rf])
    assert not (tmp_path / "data").exists()


def test_require_files_in_a_data_dir_that_is_a_file_says_so(tmp_path):
    """What `run` and every loader meet: the message is the file, not a list of missing files, even with
    downloads allowed."""
    (tmp_path / "data").write_text("not a folder")
    rf = store.RemoteFile("thing.zip", ((tmp_path / "remote.zip").as_uri(),))
    for allow in (False, True):
        with pytest.raises(
            store.DatasetMissingError, match=r"data directory .*data \(chosen by: here\) is a file"
        ):
            store.require_files("toy", tmp_path / "data", [rf], allow_download=allow, reason="here")


def fail_writes_after(monkeypatch, error: BaseException, limit: int = 3000) -> None:
    """Files that atomic writes open raise `error` once `limit` bytes are written (a disk filling up mid-write,
    Ctrl-C): torch.save's zip writer then raises RuntimeError("unexpected pos") over it."""
    real_fdopen = os.fdopen

    class Failing:
        def __init__(self, f):
            self.f, self.n = f, 0

        def write(self, b):
            self.n += len(b)
            if self.n > limit:
                raise error
            return self.f.write(b)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: Failing(real_fdopen(fd, *a, **k)))


def test_cache_write_on_a_full_disk_warns_and_leaves_no_file(tmp_cache, monkeypatch):
    fail_writes_after(monkeypatch, OSError(28, "No space left on device"))
    with pytest.warns(UserWarning, match="could not write cache file .*No space left on device"):
        got = store.cached({"dataset": "toy"}, lambda: {"x": tiny_set(n=200)}, name="toy")
    assert_same(got["x"], tiny_set(n=200))
    assert list(tmp_cache.iterdir()) == []


def test_ctrl_c_during_a_cache_write_is_an_interrupt_and_leaves_no_file(tmp_path, monkeypatch):
    fail_writes_after(monkeypatch, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):  # not torch's RuntimeError: the CLI then exits 130, no traceback
        store.atomic_torch_save({"x": torch.zeros(1000)}, tmp_path / "obj.pt")
    assert list(tmp_path.iterdir()) == []


def damage_middle(path: Path, data: bytes) -> None:
    """Flip a byte in the middle of `data` (a tensor's bytes) inside the file `path`, keeping its size."""
    raw = bytearray(path.read_bytes())
    at = raw.find(data)
    assert at >= 0, "tensor bytes not found in the cache file"
    raw[at + len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_from_source_rebuilds_a_cache_file_whose_tensor_bytes_were_damaged(tmp_cache):
    """Was: a cache file with damaged pixel bytes (same size, still loads) was trusted, by loads and by
    `data verify` alike. A normal load still trusts it (no hashing on the fast path); from_source() builds
    from the source, reports the file and rewrites it, so the next normal load is right again."""
    key = {"dataset": "toy"}
    store.cached(key, lambda: {"x": tiny_set()}, name="toy")
    path = store.cache_path(key, "toy")
    size = path.stat().st_size
    damage_middle(path, tiny_set().images.numpy().tobytes())
    assert path.stat().st_size == size
    store.clear_memory_cache()
    assert not torch.equal(
        store.cached(key, lambda: {"x": tiny_set()}, name="toy")["x"].images, tiny_set().images
    )
    with store.from_source() as rebuilt:
        fresh = store.cached(key, lambda: {"x": tiny_set()}, name="toy")
    assert rebuilt == [path] and store.rebuilt_note(rebuilt).startswith(store.REBUILT_NOTE)
    assert_same(fresh["x"], tiny_set())
    store.clear_memory_cache()
    assert_same(store.cached(key, lambda: pytest.fail("rebuilt again"), name="toy")["x"], tiny_set())
    with store.from_source() as rebuilt:  # an intact file: built and compared, not reported nor rewritten
        mtime = path.stat().st_mtime_ns
        assert_same(store.cached(key, lambda: {"x": tiny_set()}, name="toy")["x"], tiny_set())
    assert rebuilt == [] and path.stat().st_mtime_ns == mtime and store.rebuilt_note(rebuilt) == ""


def test_from_source_reports_an_unloadable_cache_file_and_writes_a_missing_one(tmp_cache):
    key = {"dataset": "toy"}
    path = store.cache_path(key, "toy")
    with store.from_source() as rebuilt:
        store.cached(key, lambda: {"x": tiny_set()}, name="toy")
    assert rebuilt == [] and path.is_file()
    path.write_bytes(b"garbage")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reported by from_source, not warned about
        with store.from_source() as rebuilt:
            assert_same(store.cached(key, lambda: {"x": tiny_set()}, name="toy")["x"], tiny_set())
    assert rebuilt == [path]


def test_cached_sizes_lists_the_resized_cache_files_of_these_key_parts(tmp_cache):
    """What verify checks besides the full-size file: the sizes whose `<name>S-<hash>.pt` is the cache file
    of these key parts at image_size S, not another dataset's, another source's or a look-alike name."""
    assert store.cached_sizes("toy", {"dataset": "toy"}) == []  # no cache folder yet
    for size in (32, 4):
        store.cached({"dataset": "toy", "image_size": size}, lambda: {"x": tiny_set()}, name=f"toy{size}")
    store.cached({"dataset": "toy"}, lambda: {"x": tiny_set()}, name="toy")
    store.cached({"dataset": "other", "image_size": 8}, lambda: {"x": tiny_set()}, name="toy8")
    store.cached({"dataset": "toy", "image_size": 16}, lambda: {"x": tiny_set()}, name="toyish16")
    (tmp_cache / "toy12-0123456789abcdef0123.pt").write_bytes(b"")
    assert store.cached_sizes("toy", {"dataset": "toy"}) == [4, 32]
    assert store.cached_sizes("toyish", {"dataset": "toy"}) == [16]


@pytest.fixture
def broken_server():
    """serve(reply) -> base URL of a local server that answers every request with the bytes `reply`, then
    closes the connection."""
    import socket
    import threading

    socks = []

    def serve(reply: bytes) -> str:
        sock = socket.create_server(("127.0.0.1", 0))
        socks.append(sock)

        def loop() -> None:
            while True:
                try:
                    conn, _ = sock.accept()
                except OSError:  # closed at the end of the test
                    return
                with conn:
                    conn.recv(65536)
                    conn.sendall(reply)

        threading.Thread(target=loop, daemon=True).start()
        return f"http://127.0.0.1:{sock.getsockname()[1]}"

    yield serve
    for sock in socks:
        sock.close()


@pytest.mark.parametrize(
    "reply, why",
    [
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n" + b"x" * 100,
            "broken HTTP response (IncompleteRead(",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 100,
            "cut off after 100 bytes, 900 short",
        ),
        (b"GARBAGE\r\n\r\n", "broken HTTP response (BadStatusLine("),
    ],
    ids=["chunked-cut-off", "cut-off", "not-http"],
)
def test_download_a_broken_http_response_tries_the_next_mirror_then_names_every_url(
    tmp_path, broken_server, reply, why
):
    """Was: http.client.HTTPException (a chunked response cut off, a status line that is not HTTP) is not an
    OSError: it escaped download(), so the next mirror was not tried and `data fetch` printed a traceback. A
    response cut off short of its Content-Length is named as such (not only by the checksum)."""
    bad = broken_server(reply)
    src = tmp_path / "src.bin"
    src.write_bytes(b"payload")
    dest = tmp_path / "dl" / "out.bin"
    store.download([f"{bad}/a.zip", src.as_uri()], dest, md5=hashlib.md5(b"payload").hexdigest())
    assert dest.read_bytes() == b"payload"
    urls = [f"{bad}/a.zip", f"{bad}/mirror/a.zip"]
    with pytest.raises(store.DownloadError) as e:
        store.download(urls, tmp_path / "dl" / "a.zip", md5="0" * 32)
    msg = str(e.value)
    assert all(f"{u}: {why}" in msg for u in urls), msg
    assert sorted(p.name for p in dest.parent.iterdir()) == ["out.bin"]  # no partial file left
