"""datasets/__init__: the registry, load_dataset, and verify/fetch/format_report for `data verify|fetch`."""

from __future__ import annotations

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
