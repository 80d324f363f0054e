"""Vinyals split: the built-in definition reproduces the official files, the files are sha256-checked, the
split's sizes and disjointness, and the rotated ImageSet (synthetic rotate_set; the real one at 28x28)."""

from __future__ import annotations

import hashlib

import pytest
import torch

from siamese_bench.datasets import store, vinyals
from siamese_bench.datasets.imageset import ImageSet


def text(lines):
    return "".join(line + "\n" for line in lines).encode()


@pytest.mark.parametrize("part", ["test", "val"])
def test_builtin_reproduces_official_file_bytes(part):
    assert hashlib.sha256(text(vinyals.builtin_lines(part))).hexdigest() == vinyals.SPLIT_SHA256[part]


def test_builtin_sizes_and_disjointness():
    parts = {p: set(vinyals.builtin_lines(p)) for p in vinyals.PARTS}
    assert {p: len(v) for p, v in parts.items()} == vinyals.EXPECTED_CLASSES
    assert parts["trainval"] == parts["train"] | parts["val"]
    assert not parts["train"] & parts["val"] and not parts["trainval"] & parts["test"]
    chars = {line.rsplit("/", 1)[0] for line in parts["test"]}
    assert len(chars) == 423 and "Gurmukhi/character42" in chars and "Gurmukhi/character41" not in chars
    assert len({line.rsplit("/", 1)[0] for line in parts["trainval"]}) == 1200


def test_builtin_unknown_part():
    with pytest.raises(ValueError, match="unknown Vinyals part 'dev'"):
        vinyals.builtin_lines("dev")


def test_split_without_files_uses_builtin(tmp_path):
    lines, source = vinyals.read_split_lines(tmp_path)
    assert set(source.values()) == {"built-in definition"}
    sp = vinyals.vinyals_split(tmp_path)
    assert sp.name == "vinyals" and sp.dataset == "omniglot-vinyals" and sp.disjoint == "classes"
    assert {k: len(p.classes) for k, p in sp.parts} == vinyals.EXPECTED_CLASSES
    assert all(p.subset == "vinyals" for _, p in sp.parts)
    assert sp.hash == vinyals.vinyals_split(tmp_path).hash


def test_tampered_split_file_is_rejected(tmp_path):
    d = tmp_path / "omniglot" / "splits" / "vinyals"
    d.mkdir(parents=True)
    lines = vinyals.builtin_lines("test")
    (d / "test.txt").write_bytes(text(lines[:-4]))
    with pytest.raises(ValueError, match="test.txt: sha256 .* is not the official"):
        vinyals.read_split_lines(tmp_path)
    r = vinyals.verify(tmp_path)
    assert r.found and not r.ok and "not the official" in r.detail


def test_official_bytes_in_a_file_are_accepted(tmp_path):
    d = tmp_path / "omniglot" / "splits" / "vinyals"
    d.mkdir(parents=True)
    (d / "val.txt").write_bytes(text(vinyals.builtin_lines("val")))
    _, source = vinyals.read_split_lines(tmp_path)
    assert source["val"].endswith("(official sha256)") and source["test"] == "built-in definition"


def test_rotate_set_rotations_labels_and_order():
    img = torch.zeros(2, 1, 3, 3, dtype=torch.uint8)
    img[0, 0, 0, 2] = 255  # top-right pixel
    img[1, 0, 2, 2] = 9
    a = ImageSet(
        "a",
        img,
        torch.tensor([0, 0]),
        ("A/character01",),
        torch.tensor([0]),
        ("A",),
        {"drawer": torch.tensor([0, 1])},
    )
    b = ImageSet(
        "b",
        img[:1],
        torch.tensor([0]),
        ("B/character01",),
        torch.tensor([0]),
        ("B",),
        {"drawer": torch.tensor([0])},
    )
    s = vinyals.rotate_set([a, b])
    assert s.class_names[:2] == ("A/character01/rot000", "A/character01/rot090") and s.num_classes == 8
    assert s.labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 5, 6, 7]
    assert s.extra["rotation"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 0, 1, 2, 3]
    assert s.extra["drawer"].tolist() == [0, 1] * 4 + [0] * 4
    assert s.groups.tolist() == [0] * 4 + [1] * 4 and s.group_names == ("A", "B")
    # 90 degrees counter-clockwise: the top-right pixel moves to the top-left
    assert (
        int(s.images[2, 0, 0, 0]) == 255
        and int(s.images[4, 0, 2, 0]) == 255
        and int(s.images[6, 0, 2, 2]) == 255
    )


# ---------------------------------------------------------------------------------------------- real data

realdata = pytest.mark.realdata


@realdata
def test_real_files_match_builtin_and_sha256(real_data_dir, tmp_path):
    lines, source = vinyals.read_split_lines(real_data_dir)
    assert all(v.endswith("(official sha256)") for v in source.values()), source
    for p in vinyals.PARTS:
        assert set(lines[p]) == set(vinyals.builtin_lines(p))
    # the split (classes sorted) is the same object whichever source it came from
    assert vinyals.vinyals_split(real_data_dir).hash == vinyals.vinyals_split(tmp_path).hash
    r = vinyals.verify(real_data_dir)
    assert r.ok and "official sha256 of train.txt, val.txt, test.txt, trainval.txt" in r.check


@realdata
def test_split_file_download_offline(real_data_dir, tmp_path, monkeypatch):
    """fetch path with file:// URLs: the four files land in <data>/omniglot/splits/vinyals, checked."""
    src = real_data_dir / "omniglot" / "splits" / "vinyals"
    files = tuple(
        store.RemoteFile(rf.name, ((src / rf.name.rsplit("/", 1)[1]).as_uri(),), sha256=rf.sha256)
        for rf in vinyals.SPLIT_FILES
    )
    monkeypatch.setattr(vinyals, "SPLIT_FILES", files)
    lines, source = vinyals.read_split_lines(tmp_path / "data", download=True)
    assert (tmp_path / "data" / "omniglot" / "splits" / "vinyals" / "trainval.txt").is_file()
    assert all(v.endswith("(official sha256)") for v in source.values())


@pytest.fixture(scope="module")
def vset(real_data_dir, omniglot28):
    return vinyals.load_vinyals(real_data_dir)["vinyals"]


@realdata
def test_rotated_set(vset, omniglot28):
    assert vset.images.shape == (129840, 1, 28, 28) and vset.num_classes == 6492
    assert len(vset.group_names) == 50
    assert torch.bincount(vset.labels).tolist() == [20] * 6492
    # class 4c + k is Omniglot class c (background then evaluation) rotated k * 90 degrees
    bg = omniglot28["background"]
    c = 10
    base = bg.images[bg.labels == c]
    for k in range(4):
        assert torch.equal(vset.images[vset.labels == 4 * c + k], torch.rot90(base, k, dims=(2, 3)))
    ev = omniglot28["evaluation"]
    cls = 4 * (964 + 3) + 2
    assert vset.class_names[cls] == ev.class_names[3] + "/rot180"
    assert torch.equal(
        vset.images[vset.labels == cls], torch.rot90(ev.images[ev.labels == 3], 2, dims=(2, 3))
    )


@realdata
def test_split_classes_exist_in_rotated_set(real_data_dir, vset):
    sp = vinyals.vinyals_split(real_data_dir)
    for _, part in sp.parts:
        ids = vset.class_ids(part.classes)
        assert len(ids.unique()) == len(part.classes)
    test_groups = {vset.group_names[int(g)] for g in vset.groups[vset.class_ids(sp.part("test").classes)]}
    assert "Gurmukhi" in test_groups and len(test_groups) == 13


def test_verify_rebuilds_a_damaged_rotated_cache_from_the_zips(tmp_path, monkeypatch):
    """Was: verify checked only the split files: damaged bytes in vinyals4-*.pt (what a run at image_size=4
    reads) passed verify and were served. verify now builds every rotated set that has a cache file again
    from the zips, says the file was damaged and rebuilt, and the next load returns the zips' pixels."""
    import io
    import zipfile

    import numpy as np
    from PIL import Image

    from siamese_bench.datasets import omniglot as og

    monkeypatch.setattr(og, "EXPECTED", {"background": (1, 2, 4), "evaluation": (1, 2, 4)})
    monkeypatch.setattr(og, "DRAWERS", 2)
    monkeypatch.setattr(og, "SIZE", 6)
    monkeypatch.setenv(store.ENV_CACHE, str(tmp_path / "cache"))
    store.clear_memory_cache()
    (tmp_path / "omniglot").mkdir()
    rng = np.random.default_rng(0)
    for subset in og.SUBSETS:
        with zipfile.ZipFile(tmp_path / "omniglot" / f"images_{subset}.zip", "w") as z:
            for i, name in enumerate(
                f"images_{subset}/{subset}/character0{c}/000{c}_0{d}.png" for c in (1, 2) for d in (1, 2)
            ):
                buf = io.BytesIO()
                Image.fromarray(rng.integers(0, 256, (6, 6), dtype=np.uint8) | i).save(buf, "PNG")
                z.writestr(name, buf.getvalue())
    clean = vinyals.load_vinyals(tmp_path, image_size=4)["vinyals"]
    assert len(clean) == 32 and clean.image_shape == (1, 4, 4)
    (rotated,) = (tmp_path / "cache").glob("vinyals4-*.pt")
    assert vinyals.verify(tmp_path).detail.endswith(
        "built-in definition used (its test and val reproduce the official files' sha256)"
    )
    blob = torch.load(rotated, weights_only=True)
    blob["sets"]["vinyals"]["images"][5].fill_(77)
    torch.save(blob, rotated)
    store.clear_memory_cache()
    assert not torch.equal(vinyals.load_vinyals(tmp_path, image_size=4)["vinyals"].images, clean.images)
    r = vinyals.verify(tmp_path)
    assert r.ok and r.detail.endswith(f"; {store.REBUILT_NOTE} ({rotated})")
    store.clear_memory_cache()
    assert torch.equal(vinyals.load_vinyals(tmp_path, image_size=4)["vinyals"].images, clean.images)
    store.clear_memory_cache()
