"""datasets/__init__: the registry, load_dataset, and verify/fetch/format_report for `data verify|fetch`."""

from __future__ import annotations

from pathlib import Path

import pytest

import siamese_bench.datasets as ds
from siamese_bench.datasets import lake_runs, store
from siamese_bench.registry import UnknownNameError


def test_registry_names():
    assert ds.DATASETS.names() == ["digits", "mnist", "omniglot", "omniglot-mnist", "omniglot-vinyals"]


def test_load_dataset_digits_and_unknown():
    sets = ds.load_dataset("digits", image_size=10)
    assert list(sets) == ["all"] and sets["all"].images.shape == (1797, 1, 10, 10)
    with pytest.raises(UnknownNameError, match="unknown dataset 'cifar'; valid datasets: digits, mnist"):
        ds.load_dataset("cifar")


def test_image_shape_is_known_without_reading_files():
    assert ds.image_shape("digits") == (1, 8) == ds.load_dataset("digits")["all"].image_shape[:2]
    assert ds.image_shape("digits", 10) == (1, 10) and ds.image_shape("mnist", 32) == (1, 32)
    assert ds.image_shape("omniglot") == (1, 105) and ds.image_shape("omniglot-vinyals") == (1, 28)
    assert ds.image_shape("folder:/nowhere") is None  # own images: their channels are in the files
    with pytest.raises(UnknownNameError, match="unknown dataset 'cifar'; valid datasets: digits, mnist"):
        ds.image_shape("cifar")
    with pytest.raises(ValueError, match="image_size"):
        ds.image_shape("mnist", 14.5)


def test_image_shape_knows_every_registered_loader():
    assert set(ds._NATIVE_SIZE) == set(ds.DATASETS.names())  # a new loader needs its shape declared


@pytest.mark.realdata
@pytest.mark.parametrize("name", ds.DATASETS.names())
def test_image_shape_is_that_of_every_loaded_set(real_data_dir, name):
    """What a finished run takes for its throughput rows instead of loading: the loaders' real shapes."""
    shapes = {s.image_shape for s in ds.load_dataset(name, real_data_dir).values()}
    channels, size = ds.image_shape(name)
    assert shapes == {(channels, size, size)}


def test_load_dataset_missing_data(tmp_path):
    with pytest.raises(ds.DatasetMissingError, match="mnist: missing"):
        ds.load_dataset("mnist", data_dir=tmp_path)
    with pytest.raises(ds.DatasetMissingError, match="omniglot: missing"):
        ds.load_dataset("omniglot-vinyals", data_dir=tmp_path)


def test_verify_all_on_empty_dir(tmp_path):
    reports = ds.verify_all(tmp_path)
    assert [r.name for r in reports] == list(ds.VERIFY_NAMES)
    status = {r.name: (r.found, r.ok) for r in reports}
    assert status["mnist"] == status["omniglot"] == status["omniglot-runs"] == (False, False)
    assert status["digits"] == (True, True)
    assert status["omniglot-vinyals"] == (True, True)  # built-in definition, said so in the detail
    text = ds.format_report(reports)
    assert text.count("MISSING") == 3 and "built-in definition used" in text


def test_unknown_verify_name():
    with pytest.raises(ValueError, match="unknown dataset\\(s\\) \\['emnist'\\]; valid: mnist, omniglot"):
        ds.verify_all(None, ["emnist"])


def test_every_listed_name_verifies_and_runs():
    """The dataset names `ls` lists are the loaders plus omniglot-runs; each names the checks of the files it
    reads (checks run once each, in order) and the protocol `run --datasets` runs."""
    from siamese_bench.protocols import DATASET_PROTOCOL, PROTOCOLS

    assert set(ds.ABOUT) == set(ds.DATASETS.names()) | {"omniglot-runs"}
    assert set(DATASET_PROTOCOL) == set(ds.ABOUT)
    assert all(p in PROTOCOLS.names() for p in DATASET_PROTOCOL.values())
    assert {c for _, checks in ds.ABOUT.values() for c in checks} == set(ds.VERIFY_NAMES)
    assert ds._names(["omniglot-mnist", "mnist", "omniglot-vinyals"]) == [
        "omniglot",
        "mnist",
        "omniglot-vinyals",
    ]
    assert ds._names(None) == list(ds.VERIFY_NAMES)


def test_verify_derived_names_on_empty_dir(tmp_path):
    reports = ds.verify_all(tmp_path, ["omniglot-mnist"])
    assert [(r.name, r.found) for r in reports] == [("omniglot", False), ("mnist", False)]
    with pytest.raises(ValueError, match="omniglot-mnist needs several checks \\(omniglot, mnist\\)"):
        ds.verify("omniglot-mnist", tmp_path)


@pytest.mark.realdata
def test_verify_all_real(real_data_dir):
    reports = ds.verify_all(real_data_dir)
    assert all(r.ok for r in reports), ds.format_report(reports)
    checks = {r.name: r.check for r in reports}
    assert checks["mnist"] == "sha256 of decompressed IDX files matches official"
    assert checks["omniglot-runs"] == "official md5"
    assert checks["omniglot"].startswith("structure: 30 alphabets, 964 characters")


@pytest.mark.realdata
def test_fetch_offline_via_file_urls(real_data_dir, tmp_path, monkeypatch):
    """fetch downloads into an empty data dir (file:// stands in for the official URL) and then verifies."""
    src = real_data_dir / "omniglot" / "all_runs.zip"
    rf = store.RemoteFile("all_runs.zip", (src.as_uri(),), md5=lake_runs.ALL_RUNS.md5)
    monkeypatch.setitem(ds._CHECKS, "omniglot-runs", (lake_runs, "omniglot", (rf,)))
    [report] = ds.fetch(["omniglot-runs"], tmp_path)
    assert (tmp_path / "omniglot" / "all_runs.zip").is_file()
    assert report.ok and report.check == "official md5"


def _offline(calls, ok=()):
    """A stand-in for store.download without a network: records each file asked for; writes those named in
    `ok`, fails for the others."""

    def download(urls, dest, md5=None, sha256=None):
        dest = Path(dest)
        calls.append(dest.name)
        if dest.name not in ok:
            raise store.DownloadError(f"could not download {dest.name}: offline")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(b"runs")
        return dest

    return download


def test_a_data_dir_that_is_a_file_is_refused_once(tmp_path, monkeypatch):
    """verify_all / fetch say once that the data directory (or a folder above it) is a file, instead of
    reporting every dataset missing or failing each download with 'Not a directory'; digits and your own
    images do not read it."""
    calls = []
    monkeypatch.setattr(store, "download", _offline(calls))
    file = tmp_path / "data"
    file.write_text("not a folder")
    for where in (file, file / "sub"):
        with pytest.raises(
            ds.DatasetMissingError, match=f"data directory {where} .* is (a file|inside {file})"
        ):
            ds.verify_all(where)
        with pytest.raises(ds.DatasetMissingError, match="which is a file|is a file, not a folder"):
            ds.fetch(["omniglot-runs", "mnist"], where)
    assert calls == []
    assert [r.ok for r in ds.verify_all(file, ["digits"])] == [True]


def test_fetch_tries_every_dataset_and_reports_each(tmp_path, monkeypatch):
    """A dataset whose download fails does not stop the others: FetchError names the failed ones after all
    were tried and carries every dataset's report."""
    calls = []
    monkeypatch.setattr(store, "download", _offline(calls, ok=("all_runs.zip",)))

    class Runs:  # all_runs.zip is fine once it is there
        @staticmethod
        def verify(data_dir):
            p = data_dir / "omniglot" / "all_runs.zip"
            return store.VerifyReport("omniglot-runs", p.is_file(), p.is_file(), p)

    monkeypatch.setitem(ds._CHECKS, "omniglot-runs", (Runs, "omniglot", (lake_runs.ALL_RUNS,)))
    with pytest.raises(ds.FetchError) as caught:
        ds.fetch(["mnist", "omniglot-runs", "omniglot", "digits"], tmp_path)
    e = caught.value
    assert isinstance(e, store.DownloadError) and e.failed == ["mnist", "omniglot"]
    assert str(e).startswith(
        "could not fetch mnist, omniglot:\nmnist: missing"
    ) and "omniglot: missing" in str(e)
    assert [(r.name, r.found, r.ok) for r in e.reports] == [
        ("mnist", False, False),
        ("omniglot-runs", True, True),
        ("omniglot", False, False),
        ("digits", True, True),
    ]
    assert "could not download images_background.zip" in e.reports[2].detail
    assert calls.index("all_runs.zip") > calls.index("train-images-idx3-ubyte.gz")  # tried after mnist failed
    assert "images_background.zip" in calls


@pytest.mark.parametrize("size", [14.5, 28.9, True, "14", 0, -3, 14.0])
def test_load_dataset_refuses_an_image_size_that_is_not_a_positive_int(size, tmp_path):
    """Was: 14.5 gave 14x14 images, 28.9 28x28 and True 1x1."""
    for name in ("digits", "mnist", "omniglot", "omniglot-vinyals", "omniglot-mnist"):
        with pytest.raises(ValueError, match=f"image_size must be a positive int, got {size!r}"):
            ds.load_dataset(name, data_dir=tmp_path, image_size=size)
    with pytest.raises(ValueError, match="image_size must be a positive int"):
        lake_runs.load_lake_runs(tmp_path, image_size=size)


def test_load_dataset_takes_a_numpy_int_image_size():
    import numpy as np

    assert ds.load_dataset("digits", image_size=np.int64(12))["all"].image_shape == (1, 12, 12)


def test_load_dataset_omniglot_runs_names_its_loader_and_ls_says_so(tmp_path):
    """Was: `ls datasets` listed omniglot-runs but load_dataset('omniglot-runs') raised UnknownNameError."""
    with pytest.raises(ValueError, match=r"load it with siamese_bench\.datasets\.lake_runs\.load_lake_runs"):
        ds.load_dataset("omniglot-runs", tmp_path)
    assert "lake_runs.load_lake_runs()" in ds.ABOUT["omniglot-runs"][0]


def test_missing_all_runs_message_names_omniglot_runs(tmp_path):
    """Was: "omniglot: missing all_runs.zip" for the dataset the user asked for as omniglot-runs."""
    with pytest.raises(ds.DatasetMissingError) as e:
        lake_runs.load_lake_runs(tmp_path)
    assert str(e.value).startswith("omniglot-runs: missing all_runs.zip")
    assert ds.verify("omniglot-runs", tmp_path).detail.startswith("omniglot-runs: missing all_runs.zip")


def test_fetch_offline_reports_the_check_that_failed_and_every_file_it_could_not_replace(
    tmp_path, monkeypatch
):
    """Was: offline, `data fetch mnist` with two non-official files reported only the first failed download
    (of another file than the one verify had blamed) and dropped verify's error."""
    import gzip

    calls = []
    monkeypatch.setattr(store, "download", _offline(calls))
    monkeypatch.setattr(ds, "download", _offline(calls))
    monkeypatch.setenv(store.ENV_CACHE, str(tmp_path / "cache"))
    folder = tmp_path / "mnist"
    folder.mkdir()
    for rf in ds.mnist.MNIST_FILES:
        (folder / rf.name).write_bytes(gzip.compress(b"\0\0\x08\x01\0\0\0\0"))
    with pytest.raises(ds.FetchError) as caught:
        ds.fetch(["mnist"], tmp_path)
    msg = str(caught.value)
    assert "mnist: verification failed: " in msg and "differs from the official" in msg
    for rf in ds.mnist.MNIST_FILES:
        assert f"not the official download: {folder / rf.name}" in msg
        assert f"could not download {rf.name}: offline" in msg
    assert sorted(calls) == sorted(rf.name for rf in ds.mnist.MNIST_FILES)
