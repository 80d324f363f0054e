"""Lake's 20 one-shot runs: the answer table, pixel matching into the evaluation set, the episodes built from
them, and the matcher's errors (synthetic)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from siamese_bench.datasets import lake_runs, store
from siamese_bench.splits import LAKE_RUN_ALPHABETS


def test_match_images_finds_exact_copies():
    g = torch.Generator().manual_seed(0)
    hay = torch.randint(0, 256, (50, 1, 6, 6), generator=g, dtype=torch.uint8)
    idx = torch.tensor([7, 0, 49, 7])
    assert torch.equal(lake_runs.match_images(hay[idx], hay), idx)


def test_match_images_errors():
    g = torch.Generator().manual_seed(0)
    hay = torch.randint(0, 256, (20, 1, 6, 6), generator=g, dtype=torch.uint8)
    other = hay[:2].clone()
    other[1, 0, 0, 0] ^= 1  # one pixel off
    with pytest.raises(ValueError, match="1 image\\(s\\) have no pixel-identical match, e.g. #1"):
        lake_runs.match_images(other, hay)
    dup = torch.cat([hay, hay[3:4]])
    with pytest.raises(ValueError, match="matches several"):
        lake_runs.match_images(hay[3:4], dup)
    with pytest.raises(ValueError, match="match at the native 105x105"):
        lake_runs.match_images(hay[:, :, :4, :4], hay)


def test_missing_all_runs(tmp_path):
    with pytest.raises(store.DatasetMissingError, match="all_runs.zip"):
        lake_runs.load_lake_runs(tmp_path)
    assert not lake_runs.verify(tmp_path).found


def test_missing_all_runs_names_its_own_fetch_command(tmp_path):
    assert "data fetch omniglot-runs" in lake_runs.verify(tmp_path).detail
    with pytest.raises(store.DatasetMissingError, match="data fetch omniglot-runs"):
        lake_runs.load_lake_runs(tmp_path)


def test_fetch_downloads_again_a_file_that_is_not_the_official_one(tmp_path, monkeypatch):
    """`data fetch` replaces a present but corrupt all_runs.zip (the hints tell users to run it), here with
    a download that fails for want of a network: the attempt names the file it would replace."""
    import siamese_bench.datasets as ds

    bad = tmp_path / "omniglot" / "all_runs.zip"
    bad.parent.mkdir()
    bad.write_bytes(b"garbage")
    calls = []

    def offline(urls, dest, md5=None, sha256=None):
        calls.append(Path(dest))
        raise store.DownloadError(f"could not download {Path(dest).name}: offline")

    monkeypatch.setattr(ds, "download", offline)
    with pytest.raises(store.DownloadError):
        ds.fetch(["omniglot-runs"], tmp_path)
    assert calls == [bad] and bad.read_bytes() == b"garbage"


@pytest.mark.realdata
def test_damaged_entry_of_all_runs_is_named(real_data_dir, tmp_path):
    import zipfile

    src = real_data_dir / "omniglot" / "all_runs.zip"
    dst = tmp_path / "omniglot" / "all_runs.zip"
    dst.parent.mkdir()
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info))
    raw = bytearray(dst.read_bytes())
    with zipfile.ZipFile(dst) as zf:
        info = zf.getinfo("run05/training/class03.png")
    at = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + 40
    raw[at] ^= 0xFF
    dst.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="entry run05/training/class03.png is damaged"):
        lake_runs.load_lake_runs(tmp_path)
    report = lake_runs.verify(tmp_path)
    assert report.found and not report.ok and "run05/training/class03.png" in report.detail


def test_corrupt_all_runs(tmp_path):
    (tmp_path / "omniglot").mkdir()
    (tmp_path / "omniglot" / "all_runs.zip").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="all_runs.zip: not a readable zip"):
        lake_runs.load_lake_runs(tmp_path)
    r = lake_runs.verify(tmp_path)
    assert r.found and not r.ok


# ---------------------------------------------------------------------------------------------- real data

realdata = pytest.mark.realdata


@pytest.fixture(scope="module")
def runs(real_data_dir):
    return lake_runs.load_lake_runs(real_data_dir)


@realdata
def test_runs_shapes_and_answers(runs):
    assert runs.train.shape == (20, 20, 1, 105, 105) and runs.test.shape == (20, 20, 1, 105, 105)
    assert runs.train.dtype == torch.uint8 and runs.answer.dtype == torch.int64
    assert torch.equal(runs.answer.sort(dim=1).values, torch.arange(20).expand(20, 20))  # permutations
    # run01/class_labels.txt: item01 -> class08, item02 -> class09, item03 -> class02
    assert runs.answer[0, :3].tolist() == [7, 8, 1]
    assert runs.train.unique().tolist() == [0, 255]  # inverted like Omniglot: ink 255
    assert float((runs.train == 255).float().mean()) < 0.2


@realdata
def test_runs_resized(real_data_dir, runs):
    r28 = lake_runs.load_lake_runs(real_data_dir, image_size=28)
    assert r28.train.shape == (20, 20, 1, 28, 28) and torch.equal(r28.answer, runs.answer)
    assert torch.equal(r28.test[3, 4], store.resize_images(runs.test[3, 4:5], 28)[0])


@realdata
def test_runs_as_episodes(omniglot, runs):
    ev = omniglot["evaluation"]
    ep = lake_runs.lake_runs_as_episodes(ev, runs)
    assert ep.support.shape == ep.query.shape == ep.classes.shape == (20, 20)
    assert (ep.n_way, ep.k_shot, ep.n_query, ep.seed, ep.within_group) == (20, 1, 1, -1, True)
    assert torch.equal(ep.query_labels(), torch.arange(20)) and len(ep) == 20
    # the indexed images are the runs' images, and query j belongs to support j's class
    assert torch.equal(ev.images[ep.support], runs.train)
    assert torch.equal(ev.labels[ep.query], ep.classes)
    assert torch.equal(ev.labels[ep.support], ep.classes)
    # test image i of run r is the query of its correct class answer[r, i]
    assert torch.equal(ev.images[ep.query.gather(1, runs.answer)], runs.test)
    assert (ep.support != ep.query).all()  # a query is another drawing, not the support image
    alphabets = [ev.group_names[int(g)] for g in ev.groups[ep.classes[:, 0]]]
    assert set(alphabets) == set(LAKE_RUN_ALPHABETS) and len(alphabets) == 20
    # within-alphabet: all 20 classes of a run share its alphabet
    g = ev.groups[ep.classes]
    assert (g == g[:, :1]).all()


@realdata
def test_runs_as_episodes_for_resized_set(omniglot, omniglot28, runs):
    ep = lake_runs.lake_runs_as_episodes(omniglot["evaluation"], runs)
    ep28 = lake_runs.lake_runs_as_episodes(omniglot28["evaluation"], runs, native=omniglot["evaluation"])
    assert torch.equal(ep.support, ep28.support) and torch.equal(ep.query, ep28.query)
    with pytest.raises(ValueError, match="native 105x105"):
        lake_runs.lake_runs_as_episodes(omniglot28["evaluation"], runs)
    with pytest.raises(ValueError, match="same evaluation set"):
        lake_runs.lake_runs_as_episodes(omniglot["background"], runs, native=omniglot["evaluation"])


@realdata
def test_verify_official_md5(real_data_dir):
    r = lake_runs.verify(real_data_dir)
    assert r.ok and r.check == "official md5"
    assert r.counts == {"runs": 20, "training images": 400, "test images": 400}
