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


def runs_zip(path, size=4, labels=None, skip=()):
    """A synthetic all_runs.zip (white PNGs of size x size, answer of item i = class i) in the official
    layout; `labels` {run: text} replaces class_labels.txt texts, `skip` leaves entries out."""
    import io
    import zipfile

    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((size, size), 255, np.uint8)).convert("1").save(buf, "PNG")
    white = buf.getvalue()
    labels = labels or {}
    with zipfile.ZipFile(path, "w") as z:
        for r in range(1, 21):
            for i in range(1, 21):
                for name in (f"run{r:02d}/training/class{i:02d}.png", f"run{r:02d}/test/item{i:02d}.png"):
                    if name not in skip:
                        z.writestr(name, white)
            text = "".join(
                f"run{r:02d}/test/item{i:02d}.png run{r:02d}/training/class{i:02d}.png\n"
                for i in range(1, 21)
            )
            if f"run{r:02d}/class_labels.txt" not in skip:
                z.writestr(f"run{r:02d}/class_labels.txt", labels.get(r, text))
    return path


def test_read_all_runs_on_a_synthetic_archive(tmp_path):
    good = "\n".join(f"run01/test/item{i:02d}.png run01/training/class{21 - i:02d}.png" for i in range(1, 21))
    runs = lake_runs.read_all_runs(runs_zip(tmp_path / "ok.zip", labels={1: "\n" + good + "\n\n"}))
    assert runs.train.shape == (20, 20, 1, 4, 4) and int(runs.train.max()) == 0  # white background -> 0
    assert runs.answer[0].tolist() == list(range(19, -1, -1)) and runs.answer[1].tolist() == list(range(20))
    cases = [
        ({"labels": {2: good}}, r"run02/class_labels.txt: unexpected line 'run01/test/item01.png"),
        (
            {"labels": {3: good.replace("run01", "run03").rsplit("\n", 1)[0]}},
            "run03/class_labels.txt has no answer for test item20",
        ),
        ({"skip": ("run04/training/class05.png",)}, r"missing entry run04/training/class05\.png"),
        ({"skip": ("run05/class_labels.txt",)}, r"missing entry run05/class_labels\.txt"),
    ]
    for kw, message in cases:
        with pytest.raises(ValueError, match=message):
            lake_runs.read_all_runs(runs_zip(tmp_path / "bad.zip", **kw))
    (tmp_path / "folder.zip").mkdir()
    with pytest.raises(ValueError, match="not a readable zip archive"):
        lake_runs.read_all_runs(tmp_path / "folder.zip")


def test_verify_names_the_check_that_passed_and_the_image_size(tmp_path):
    (tmp_path / "omniglot").mkdir()
    runs_zip(tmp_path / "omniglot" / "all_runs.zip", size=105)
    r = lake_runs.verify(tmp_path)
    assert r.ok and r.check.startswith("structure: 20 runs")  # re-packed: md5 is not the official one
    runs_zip(tmp_path / "omniglot" / "all_runs.zip", size=4)
    r = lake_runs.verify(tmp_path)
    assert r.found and not r.ok and r.detail == "images are (4, 4), expected (105, 105)"


def test_match_images_the_last_fingerprint_is_not_a_duplicate():
    g = torch.Generator().manual_seed(0)
    hay = torch.randint(0, 256, (50, 1, 6, 6), generator=g, dtype=torch.uint8)
    assert torch.equal(lake_runs.match_images(hay, hay), torch.arange(50))


def synthetic_evaluation():
    """An evaluation-like ImageSet (400 classes, run r's 20 classes in alphabet LAKE_RUN_ALPHABETS[r % 10],
    3 distinct drawings each) and LakeRuns taking drawing 0 as training and drawing 1 as test image, with
    a random answer permutation per run."""
    from siamese_bench.datasets.imageset import ImageSet

    n = 400 * 3
    ids = torch.arange(n)
    images = torch.stack([ids % 256, ids // 256, torch.zeros(n, dtype=torch.int64)], 1).to(torch.uint8)
    images = images.repeat(1, 3)[:, :4].view(n, 1, 2, 2)
    alphabets = tuple(LAKE_RUN_ALPHABETS[:10])
    ev = ImageSet(
        "ev",
        images,
        torch.arange(400).repeat_interleave(3),
        tuple(f"c{k}" for k in range(400)),
        (torch.arange(400) // 20) % len(alphabets),
        alphabets,
    )
    g = torch.Generator().manual_seed(0)
    answer = torch.stack([torch.randperm(20, generator=g) for _ in range(20)])
    cls = torch.arange(400).view(20, 20)
    train = images[3 * cls]
    test = images[3 * cls.gather(1, answer) + 1]
    return ev, lake_runs.LakeRuns(train, test, answer)


def test_runs_as_episodes_checks_on_synthetic_runs():
    import dataclasses

    ev, runs = synthetic_evaluation()
    ep = lake_runs.lake_runs_as_episodes(ev, runs, split_hash="abc")
    assert ep.split_hash == "abc" and torch.equal(ev.labels[ep.query], ep.classes)

    def fails(message, evaluation=ev, native=None, **change):
        with pytest.raises(ValueError, match=message):
            lake_runs.lake_runs_as_episodes(evaluation, dataclasses.replace(runs, **change), native=native)

    answer = runs.answer.clone()
    answer[0, 1] = answer[0, 0]
    fails("must be a permutation", answer=answer)
    test = runs.test.clone()
    test[0, [0, 1]] = test[0, [1, 0]]
    fails("a test image's class differs", test=test)
    train, test = runs.train.clone(), runs.test.clone()
    c = int(runs.answer[0, 0])  # run 0: class 0's third drawing as the training image of class c
    train[0, c] = ev.images[2]
    test[0, 0] = ev.images[1]
    test[0, (runs.answer[0] == 0).nonzero()[0]] = ev.images[1]
    fails("two training images of one class", train=train, test=test)
    mixed = dataclasses.replace(
        ev, groups=ev.groups.clone().index_put_((torch.tensor([5]),), torch.tensor(3))
    )
    fails("mixes alphabets", evaluation=mixed)
    renamed = dataclasses.replace(ev, group_names=("Klingon", *ev.group_names[1:]))
    fails(r"alphabets \['Klingon'\] are not among", evaluation=renamed)
    shuffled = dataclasses.replace(ev, labels=ev.labels.flip(0))
    fails("same evaluation set", native=shuffled)


@pytest.mark.parametrize(
    "line, message",
    [
        ("run01/test/item21.png run01/training/class01.png", "unexpected line"),  # was an IndexError
        ("run01/test/item00.png run01/training/class01.png", "unexpected line"),  # was item20's answer
        ("run01/test/item05.png run01/training/class21.png", "unexpected line"),  # was answer 20 of [0, 20)
        ("run01/test/item03.png run01/training/class07.png", "a second answer for test item03"),
    ],
)
def test_read_all_runs_rejects_answers_out_of_range_or_given_twice(tmp_path, line, message):
    text = "".join(f"run01/test/item{i:02d}.png run01/training/class{i:02d}.png\n" for i in range(1, 21))
    with pytest.raises(ValueError, match=message):
        lake_runs.read_all_runs(runs_zip(tmp_path / "bad.zip", labels={1: text + line + "\n"}))


def test_answers_that_are_not_a_permutation_are_refused_by_read_and_verify(tmp_path):
    """Two test items answered by one training class (item01 and item02 by class02): refused when read, so
    `data verify omniglot-runs` fails naming the run and the class (the episode builder caught it only later)."""
    text = "".join(
        f"run07/test/item{i:02d}.png run07/training/class{max(i, 2):02d}.png\n" for i in range(1, 21)
    )
    (tmp_path / "omniglot").mkdir()
    path = runs_zip(tmp_path / "omniglot" / "all_runs.zip", labels={7: text})
    message = (
        "run07/class_labels.txt: a second test item answered by training class02: 'run07/test/item02.png"
    )
    with pytest.raises(ValueError, match=message):
        lake_runs.read_all_runs(path)
    r = lake_runs.verify(tmp_path)
    assert r.found and not r.ok and message in r.detail


def test_an_unreadable_all_runs_says_to_fix_its_permissions(tmp_path, monkeypatch):
    """Was: "not a readable zip archive ([Errno 13] Permission denied ...); replace it"."""
    path = runs_zip(tmp_path / "all_runs.zip")

    def deny(*a, **k):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(lake_runs.zipfile, "ZipFile", deny)
    with pytest.raises(ValueError) as e:
        lake_runs.read_all_runs(path)
    assert str(e.value).startswith(f"cannot read {path} (permission denied): fix its permissions")
    assert "replace" not in str(e.value)
