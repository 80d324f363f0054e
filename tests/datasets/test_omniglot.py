"""Omniglot: zip reading, inversion, order and errors on tiny synthetic zips; counts and structure on the real
archives (loaded once per session through the `omniglot` fixture)."""

from __future__ import annotations

import io
import re
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from siamese_bench.datasets import omniglot as og
from siamese_bench.datasets import store, vinyals


def png(pixels: np.ndarray, mode: str = "1") -> bytes:
    """pixels: bool/uint8 (H, W) with True/255 = white background, False/0 = black ink (Omniglot's files)."""
    buf = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8) * (255 if pixels.dtype == bool else 1)).convert(mode).save(
        buf, "PNG"
    )
    return buf.getvalue()


def tiny_zip(path, subset="background", size=6, extra=None):
    """2 alphabets x 2 characters x 2 drawers; drawing k of character c has its ink pixel at (c, k)."""
    with zipfile.ZipFile(path, "w") as z:
        cid = 0
        for alpha in ("Zeta", "Alpha"):  # written out of order on purpose
            for c in (2, 1):
                cid += 1
                for d in (2, 1):
                    img = np.ones((size, size), dtype=bool)
                    img[c, d] = False  # one ink pixel
                    z.writestr(f"images_{subset}/{alpha}/character{c:02d}/{cid:04d}_{d:02d}.png", png(img))
        for name, data in (extra or {}).items():
            z.writestr(name, data)
    return path


def test_read_zip_inverts_sorts_and_names(tmp_path):
    s = og.read_omniglot_zip(tiny_zip(tmp_path / "bg.zip"), "background")
    assert s.images.shape == (8, 1, 6, 6) and s.images.dtype == torch.uint8
    assert s.class_names == ("Alpha/character01", "Alpha/character02", "Zeta/character01", "Zeta/character02")
    assert s.group_names == ("Alpha", "Zeta") and s.groups.tolist() == [0, 0, 1, 1]
    assert s.labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert s.extra["drawer"].tolist() == [0, 1] * 4
    # ink (black in the file) is 255, background 0; the ink pixel sits at (character, drawer)
    assert int(s.images.sum()) == 8 * 255
    assert int(s.images[3, 0, 2, 2]) == 255 and int(s.images[3, 0, 0, 0]) == 0
    # char ids: Zeta was written first (0001, 0002), Alpha second (0003 = character02, 0004 = character01)
    assert s.extra["char_id"].tolist() == [4, 4, 3, 3, 2, 2, 1, 1]


def test_read_zip_grayscale_png_inverted_too(tmp_path):
    with zipfile.ZipFile(tmp_path / "g.zip", "w") as z:
        z.writestr("images_evaluation/A/character01/0001_01.png", png(np.full((4, 4), 200, np.uint8), "L"))
    s = og.read_omniglot_zip(tmp_path / "g.zip", "evaluation")
    assert s.images.unique().tolist() == [55]


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        (
            "images_background/A/char01/0001_01.png",
            b"",
            "unexpected entry 'images_background/A/char01/0001_01.png'",
        ),
        ("images_evaluation/A/character01/0001_01.png", b"", "unexpected entry"),
        (
            "images_background/A/character09/0099_01.png",
            b"not a png",
            r"character09/0099_01\.png: not a readable PNG",
        ),
    ],
)
def test_read_zip_bad_entries_named(tmp_path, name, data, message):
    with pytest.raises(ValueError, match=message):
        og.read_omniglot_zip(tiny_zip(tmp_path / "bg.zip", extra={name: data}), "background")


@pytest.mark.parametrize("shape", [(5, 5), (6, 7)], ids=["smaller", "wider"])
def test_read_zip_mixed_sizes_named(tmp_path, shape):
    odd = png(np.ones(shape, dtype=bool))
    path = tiny_zip(tmp_path / "bg.zip", extra={"images_background/Zeta/character09/0099_01.png": odd})
    with pytest.raises(ValueError, match=re.escape(f"0099_01.png: size {shape} differs from (6, 6)")):
        og.read_omniglot_zip(path, "background")


def test_read_zip_damaged_entry_named(tmp_path):
    """A flipped byte inside one PNG of the archive (its CRC-32 no longer matches): a ValueError that names
    the archive and the entry, not zipfile's traceback."""
    path = tiny_zip(tmp_path / "bg.zip")
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("images_background/Alpha/character01/0004_01.png")
    raw = bytearray(path.read_bytes())
    raw[info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(
        ValueError, match=r"bg\.zip: entry images_background/Alpha/character01/0004_01\.png is damaged"
    ):
        og.read_omniglot_zip(path, "background")


def test_read_zip_not_a_zip(tmp_path):
    (tmp_path / "x.zip").write_bytes(b"nope")
    with pytest.raises(ValueError, match="not a readable zip"):
        og.read_omniglot_zip(tmp_path / "x.zip", "background")


def test_load_rejects_wrong_structure(tmp_path, monkeypatch):
    monkeypatch.setenv(store.ENV_CACHE, str(tmp_path / "cache"))
    store.clear_memory_cache()
    (tmp_path / "omniglot").mkdir()
    tiny_zip(tmp_path / "omniglot" / "images_background.zip", "background")
    tiny_zip(tmp_path / "omniglot" / "images_evaluation.zip", "evaluation")
    with pytest.raises(
        ValueError, match="not the official Omniglot background set: 2 alphabets / 4 characters"
    ):
        og.load_omniglot(tmp_path)
    r = og.verify(tmp_path)
    assert r.found and not r.ok and "expected 30 / 964 / 19280" in r.detail
    store.clear_memory_cache()


def test_load_missing_zips(tmp_path):
    with pytest.raises(store.DatasetMissingError, match="images_background.zip, images_evaluation.zip"):
        og.load_omniglot(tmp_path)
    assert not og.verify(tmp_path).found


# ---------------------------------------------------------------------------------------------- real data

realdata = pytest.mark.realdata


@realdata
def test_counts(omniglot):
    bg, ev = omniglot["background"], omniglot["evaluation"]
    assert (len(bg.group_names), bg.num_classes, len(bg)) == (30, 964, 19280)
    assert (len(ev.group_names), ev.num_classes, len(ev)) == (20, 659, 13180)
    assert bg.images.shape[1:] == (1, 105, 105) and bg.images.dtype == torch.uint8
    for s in (bg, ev):
        assert torch.bincount(s.labels).tolist() == [20] * s.num_classes
        assert torch.equal(s.labels, torch.sort(s.labels).values)  # class-major order
        assert s.extra["drawer"].view(-1, 20).eq(torch.arange(20)).all()


@realdata
def test_ink_is_bright_and_binary(omniglot):
    ev = omniglot["evaluation"]
    assert ev.images[:500].unique().tolist() == [0, 255]
    assert 0.02 < float((ev.images[:500] == 255).float().mean()) < 0.2  # strokes are a small part


@realdata
def test_names_ids_and_alphabet_table(omniglot):
    bg, ev = omniglot["background"], omniglot["evaluation"]
    assert ev.group_of("Gurmukhi/character42") == "Gurmukhi"
    assert list(bg.class_names) == sorted(bg.class_names)
    assert bg.extra["char_id"].min() == 1 and bg.extra["char_id"].max() == 964
    assert ev.extra["char_id"].min() == 965 and ev.extra["char_id"].max() == 1623
    # spot checks from the provenance file: 0001 = Arcadian/character01, 1276 = Malayalam/character05
    assert bg.class_names[int(bg.labels[bg.extra["char_id"] == 1][0])] == "Arcadian/character01"
    assert ev.class_names[int(ev.labels[ev.extra["char_id"] == 1276][0])] == "Malayalam/character05"
    for subset, s in omniglot.items():  # the hard-coded alphabet table in vinyals.py matches the data
        counts = torch.bincount(s.groups, minlength=len(s.group_names)).tolist()
        assert dict(zip(s.group_names, counts, strict=True)) == dict(vinyals.ALPHABETS[subset])


@realdata
def test_resized_is_same_order(omniglot, omniglot28):
    for k in omniglot:
        assert omniglot28[k].images.shape[1:] == (1, 28, 28)
        assert torch.equal(omniglot28[k].labels, omniglot[k].labels)
        assert omniglot28[k].class_names == omniglot[k].class_names
    ref = store.resize_images(omniglot["evaluation"].images[:50], 28)
    assert torch.equal(omniglot28["evaluation"].images[:50], ref)


@realdata
def test_verify_reports_structure_check(real_data_dir, omniglot):
    r = og.verify(real_data_dir)
    assert r.ok and r.found, r.detail
    assert r.counts["background characters"] == 964 and r.counts["evaluation alphabets"] == 20
    # the archives here are re-packed (md5 differs from the official), so the structure check is what passed
    assert "structure: 30 alphabets, 964 characters, 20 drawings each" in r.check


def test_read_zip_skips_non_png_entries_and_needs_some_png(tmp_path):
    path = tiny_zip(tmp_path / "bg.zip", extra={"images_background/README.txt": b"notes", "Thumbs.db": b"x"})
    assert len(og.read_omniglot_zip(path, "background")) == 8
    with zipfile.ZipFile(tmp_path / "empty.zip", "w") as z:
        z.writestr("images_background/README.txt", b"no images here")
    with pytest.raises(ValueError, match=r"empty\.zip: no images_background/\.\.\./\*\.png entries"):
        og.read_omniglot_zip(tmp_path / "empty.zip", "background")


def test_read_zip_truncated_png_and_unopenable_archive_named(tmp_path):
    cut = png(np.random.default_rng(0).random((40, 40)) > 0.5)[:60]  # valid header, data cut off: OSError
    path = tiny_zip(tmp_path / "bg.zip", extra={"images_background/Zeta/character09/0099_01.png": cut})
    with pytest.raises(ValueError, match=r"0099_01\.png: not a readable PNG"):
        og.read_omniglot_zip(path, "background")
    (tmp_path / "folder.zip").mkdir()  # an OSError (not BadZipFile) on opening
    with pytest.raises(ValueError, match=r"folder\.zip: not a readable zip archive"):
        og.read_omniglot_zip(tmp_path / "folder.zip", "background")


def _tiny_omniglot(tmp_path, monkeypatch):
    """tmp_path/omniglot/ holding the two tiny zips, the expected structure (EXPECTED, DRAWERS, SIZE) patched to
    theirs, and a fresh cache in tmp_path/cache; returns the (background, evaluation) zip paths."""
    monkeypatch.setattr(og, "EXPECTED", {"background": (2, 4, 8), "evaluation": (2, 4, 8)})
    monkeypatch.setattr(og, "DRAWERS", 2)
    monkeypatch.setattr(og, "SIZE", 6)
    monkeypatch.setenv(store.ENV_CACHE, str(tmp_path / "cache"))
    store.clear_memory_cache()
    folder = tmp_path / "omniglot"
    folder.mkdir()
    return (
        tiny_zip(folder / "images_background.zip", "background"),
        tiny_zip(folder / "images_evaluation.zip", "evaluation"),
    )


def test_check_structure_reports_every_problem():
    from siamese_bench.datasets.imageset import ImageSet

    labels = torch.tensor([0] * 20 + [1] * 19)
    s = ImageSet(
        "x",
        torch.zeros(39, 1, 5, 5, dtype=torch.uint8),
        labels,
        ("A/c1", "A/c2"),
        torch.tensor([0, 0]),
        ("A",),
    )
    assert og.check_structure(s, "evaluation") == (
        "1 alphabets / 2 characters / 39 images, expected 20 / 659 / 13180; "
        "A/c2 has 19 drawings, expected 20; image shape (1, 5, 5), expected (1, 105, 105)"
    )


def test_load_and_verify_on_tiny_official_layout(tmp_path, monkeypatch):
    """With the expected structure patched to the tiny zips: both subsets load; image_size=SIZE is the
    unresized set (one cache file); verify says which check passed (official md5 only when both zips have
    it); the cache key follows the zips' bytes, so a replaced zip is read again."""
    bg, ev = _tiny_omniglot(tmp_path, monkeypatch)
    sets = og.load_omniglot(tmp_path, image_size=6)
    assert sorted(sets) == ["background", "evaluation"] and len(sets["evaluation"]) == 8
    assert og.load_omniglot(tmp_path) is sets
    assert len(list((tmp_path / "cache").iterdir())) == 1
    md5 = {"images_background.zip": store.md5_file(bg), "images_evaluation.zip": store.md5_file(ev)}
    monkeypatch.setattr(og, "OFFICIAL_MD5", md5)
    assert og.verify(tmp_path).check.startswith("official md5")
    monkeypatch.setattr(og, "OFFICIAL_MD5", {**md5, "images_evaluation.zip": "0" * 32})
    r = og.verify(tmp_path)
    assert r.ok and r.check.startswith("structure: 2 alphabets, 4 characters, 2 drawings each")
    tiny_zip(
        bg, "background", extra={"images_background/Zeta/character03/0009_01.png": png(np.ones((6, 6), bool))}
    )
    store.clear_memory_cache()
    with pytest.raises(ValueError, match="not the official Omniglot background set"):
        og.load_omniglot(tmp_path)
    store.clear_memory_cache()


def test_verify_decodes_from_the_zips_and_rebuilds_a_damaged_cache(tmp_path, monkeypatch):
    """Was: a cache file whose pixel bytes were damaged (same size, still loads) was served by load_dataset
    and passed `data verify`, which checked the cached tensors. verify now decodes the zips, says the cache
    was damaged and rebuilt, and the next load_dataset returns the zips' pixels."""
    from siamese_bench.datasets import load_dataset

    _tiny_omniglot(tmp_path, monkeypatch)
    clean = og.load_omniglot(tmp_path)
    assert og.verify(tmp_path).detail == ""  # an intact cache: nothing to say
    (cache,) = (tmp_path / "cache").iterdir()
    raw = bytearray(cache.read_bytes())
    at = raw.find(clean["background"].images.numpy().tobytes())
    raw[at + clean["background"].images.numel() // 2] ^= 0xFF
    cache.write_bytes(bytes(raw))
    store.clear_memory_cache()
    assert not torch.equal(
        load_dataset("omniglot", tmp_path)["background"].images, clean["background"].images
    )
    r = og.verify(tmp_path)
    assert (
        r.ok and "the decoded cache was damaged and has been rebuilt" in r.detail and str(cache) in r.detail
    )
    store.clear_memory_cache()
    again = load_dataset("omniglot", tmp_path)
    for k in clean:
        assert torch.equal(again[k].images, clean[k].images)
    store.clear_memory_cache()


def test_an_unreadable_zip_says_to_fix_its_permissions(tmp_path, monkeypatch):
    path = tiny_zip(tmp_path / "images_background.zip")

    def deny(*a, **k):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(og.zipfile, "ZipFile", deny)
    with pytest.raises(ValueError) as e:
        og.read_omniglot_zip(path, "background")
    assert str(e.value).startswith(f"cannot read {path} (permission denied): fix its permissions")
    assert "replace" not in str(e.value)


def test_a_png_that_is_not_an_image_is_named_without_a_memory_address_and_says_the_fix(tmp_path):
    """Was: "not a readable PNG (cannot identify image file <_io.BytesIO object at 0x7f68e4512160>)"."""
    path = tiny_zip(tmp_path / "bg.zip", extra={"images_background/Zeta/character09/0099_01.png": b"junk"})
    with pytest.raises(ValueError) as e:
        og.read_omniglot_zip(path, "background")
    msg = str(e.value)
    assert "0099_01.png: not a readable PNG (cannot identify image file)" in msg and "0x" not in msg
    assert msg.endswith(
        "replace the archive (`python -m siamese_bench data fetch omniglot`, or copy it again)"
    )
    with pytest.raises(ValueError, match="data fetch omniglot-runs`, or copy it again"):
        og.decode_png(b"junk", "all_runs.zip:run01/test/item01.png", fetch_name="omniglot-runs")


def test_verify_checks_the_resized_cache_files_too(tmp_path, monkeypatch):
    """Was: verify rebuilt and compared only the full-size cache file: damaged bytes in omniglot4-*.pt (what
    a run at image_size=4 reads) passed verify and were served. verify now resizes the freshly decoded sets
    for every resized cache file there (decoding the zips once), says it was damaged and rebuilt, and the
    next load returns the zips' pixels; other sizes get no file of their own."""
    _tiny_omniglot(tmp_path, monkeypatch)
    clean = og.load_omniglot(tmp_path, image_size=4)
    (resized,) = (tmp_path / "cache").glob("omniglot4-*.pt")
    assert og.verify(tmp_path).detail == ""
    blob = torch.load(resized, weights_only=True)
    blob["sets"]["evaluation"]["images"][3].fill_(77)
    torch.save(blob, resized)
    store.clear_memory_cache()
    assert not torch.equal(
        og.load_omniglot(tmp_path, image_size=4)["evaluation"].images, clean["evaluation"].images
    )
    decoded = []
    read = og.read_omniglot_zip
    monkeypatch.setattr(og, "read_omniglot_zip", lambda *a: decoded.append(a) or read(*a))
    r = og.verify(tmp_path)
    assert r.ok and r.detail == f"{store.REBUILT_NOTE} ({resized})" and len(decoded) == 2
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "cache").iterdir()) == ["omniglot", "omniglot4"]
    store.clear_memory_cache()
    again = og.load_omniglot(tmp_path, image_size=4)
    for k in clean:
        assert torch.equal(again[k].images, clean[k].images)
    store.clear_memory_cache()


def test_read_zip_skips_what_macos_adds_when_it_re_zips_the_archive(tmp_path):
    """Was: an archive re-zipped on macOS was refused with "unexpected entry '__MACOSX/...'" (its AppleDouble
    `._<name>` files end in .png too). They are skipped; any other off-pattern entry is still refused."""
    apple = b"\x00\x05\x16\x07AppleDouble"
    junk = {
        "__MACOSX/images_background/Alpha/character01/._0004_01.png": apple,
        "__MACOSX/images_background/Alpha/._character01": apple,
        "images_background/Alpha/character01/._0004_02.png": apple,  # zipped elsewhere than on HFS
    }
    s = og.read_omniglot_zip(tiny_zip(tmp_path / "mac.zip", extra=junk), "background")
    plain = og.read_omniglot_zip(tiny_zip(tmp_path / "bg.zip"), "background")
    assert torch.equal(s.images, plain.images) and s.class_names == plain.class_names
    bad = {**junk, "MACOSX/images_background/Alpha/character01/0004_01.png": png(np.ones((6, 6), bool))}
    with pytest.raises(ValueError, match="unexpected entry 'MACOSX/images_background/"):
        og.read_omniglot_zip(tiny_zip(tmp_path / "bad.zip", extra=bad), "background")
