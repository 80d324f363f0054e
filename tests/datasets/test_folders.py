"""Users' folders and DataFrames of images: layouts, channels, resizing, inversion and every error path."""

from __future__ import annotations

import builtins
import struct
import unicodedata
import zlib

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from siamese_bench.datasets.folders import load_dataframe, load_folder, load_images


def save(path, size=(4, 3), mode="L", value=10):
    """A size=(width, height) image filled with `value` (RGB: (value, value + 1, value + 2))."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fill = (value, value + 1, value + 2) if mode == "RGB" else value
    Image.new(mode, size, fill).save(path)
    return path


def one_level(root, mode="L"):
    for cls, v in (("cat", 10), ("dog", 20)):
        for i in range(2):
            save(root / cls / f"{i}.png", mode=mode, value=v + i)
    return root


def test_one_level_folder(tmp_path):
    s = load_folder(one_level(tmp_path / "pets"))
    assert s.name == "pets" and s.class_names == ("cat", "dog") and s.group_names == ("all",)
    assert s.images.shape == (4, 1, 3, 4) and s.images.dtype == torch.uint8
    assert s.labels.tolist() == [0, 0, 1, 1]
    assert s.images[:, 0, 0, 0].tolist() == [10, 11, 20, 21]  # as stored: no inversion by default


def test_two_level_folder_detected(tmp_path):
    for g in ("latin", "greek"):
        for c in ("a", "b"):
            save(tmp_path / "root" / g / c / "x.png")
    s = load_folder(tmp_path / "root")
    assert s.class_names == ("greek/a", "greek/b", "latin/a", "latin/b")
    assert s.group_names == ("greek", "latin") and s.groups.tolist() == [0, 0, 1, 1]


def test_hidden_files_skipped(tmp_path):
    root = one_level(tmp_path / "r")
    (root / ".DS_Store").write_text("x")
    (root / "cat" / ".hidden").write_text("x")
    assert len(load_folder(root)) == 4


def test_channels_auto_forced_and_invert(tmp_path):
    root = one_level(tmp_path / "r")
    save(root / "cat" / "rgb.png", mode="RGB", value=50)
    s = load_folder(root)
    assert s.images.shape[1] == 3  # one RGB image makes the set RGB
    assert s.images[2, :, 0, 0].tolist() == [50, 51, 52]
    assert s.images[0, :, 0, 0].tolist() == [10, 10, 10]
    g = load_folder(root, channels=1)
    assert g.images.shape[1] == 1
    inv = load_folder(one_level(tmp_path / "r2"), invert=True)
    assert inv.images[:, 0, 0, 0].tolist() == [245, 244, 235, 234]
    with pytest.raises(ValueError, match="channels must be 1"):
        load_folder(root, channels=2)


def test_image_size_resizes_mixed_sizes(tmp_path):
    root = tmp_path / "r"
    save(root / "a" / "big.png", size=(8, 8), value=100)
    save(root / "a" / "small.png", size=(2, 4), value=200)
    s = load_folder(root, image_size=4)
    assert s.images.shape == (2, 1, 4, 4)
    assert s.images[0].unique().tolist() == [100] and s.images[1].unique().tolist() == [200]


def test_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere does not exist"):
        load_folder(tmp_path / "nowhere")


def test_empty_root(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty is empty; expected one folder per class"):
        load_folder(tmp_path / "empty")


def test_empty_class(tmp_path):
    root = one_level(tmp_path / "r")
    (root / "eel").mkdir()
    with pytest.raises(ValueError, match="class folder .*eel is empty"):
        load_folder(root)


def test_empty_class_two_levels(tmp_path):
    save(tmp_path / "r" / "g" / "a" / "x.png")
    (tmp_path / "r" / "g" / "b").mkdir()
    with pytest.raises(ValueError, match="class folder .*b is empty"):
        load_folder(tmp_path / "r")


def test_file_at_class_level(tmp_path):
    root = one_level(tmp_path / "r")
    (root / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="notes.txt is a file"):
        load_folder(root)


def test_mixed_layouts(tmp_path):
    root = one_level(tmp_path / "r")
    save(root / "grp" / "cls" / "x.png")
    with pytest.raises(ValueError, match="grp holds folders while other class folders hold images"):
        load_folder(root)


def test_three_levels_of_folders_named(tmp_path):
    for g in ("g1", "g2"):
        for c in ("a", "b"):
            save(tmp_path / "r" / g / c / "x.png")
    save(tmp_path / "r" / "g1" / "a" / "deeper" / "y.png")
    with pytest.raises(
        ValueError, match="deeper is a folder inside class folder .*a: three levels of folders"
    ):
        load_folder(tmp_path / "r")


def test_a_broken_link_is_named_as_one(tmp_path):
    root = one_level(tmp_path / "r")
    (root / "dog" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    with pytest.raises(ValueError, match="gone.png is a broken link .*nowhere.png.*; fix or remove it"):
        load_folder(root)


def test_unreadable_image_named(tmp_path):
    root = one_level(tmp_path / "r")
    (root / "dog" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(ValueError, match=r"broken\.png: not a readable image"):
        load_folder(root)
    (root / "dog" / "broken.png").unlink()
    (root / "dog" / "readme.txt").write_text("text, not an image")
    with pytest.raises(ValueError, match=r"readme\.txt: not a readable image"):
        load_folder(root)


def test_mixed_sizes_without_image_size(tmp_path):
    root = one_level(tmp_path / "r")
    save(root / "dog" / "wide.png", size=(10, 3))
    with pytest.raises(
        ValueError, match=r"different sizes, e\.g\. 4x3 .* and 10x3 .*wide\.png.*pass image_size"
    ):
        load_folder(root)


def test_load_images_bad_image_size(tmp_path):
    p = save(tmp_path / "x.png")
    with pytest.raises(ValueError, match="image_size must be a positive int"):
        load_images([p], image_size=0)


# ----------------------------------------------------------------------------------------------- DataFrame


def test_dataframe_basic_relative_paths_and_groups(tmp_path):
    root = one_level(tmp_path / "r")
    df = pd.DataFrame(
        {
            "path": ["cat/0.png", "dog/0.png", "cat/1.png", "dog/1.png"],
            "label": [3, 1, 3, 1],
            "family": ["felid", "canid", "felid", "canid"],
        }
    )
    s = load_dataframe(df, group_col="family", root=root)
    assert s.class_names == ("1", "3")  # sorted by label value
    assert s.labels.tolist() == [1, 0, 1, 0]
    assert s.group_names == ("canid", "felid") and s.groups.tolist() == [0, 1]
    assert s.images[:, 0, 0, 0].tolist() == [10, 20, 11, 21]


def test_dataframe_absolute_paths_custom_columns(tmp_path):
    root = one_level(tmp_path / "r")
    df = pd.DataFrame({"file": [str(root / "cat" / "0.png")], "y": ["cat"]})
    s = load_dataframe(df, path_col="file", label_col="y", image_size=2)
    assert s.images.shape == (1, 1, 2, 2) and s.class_names == ("cat",)


def test_dataframe_missing_columns_named():
    df = pd.DataFrame({"file": ["a.png"], "y": [0]})
    with pytest.raises(ValueError, match=r"missing column\(s\) \['path', 'label'\]; it has \['file', 'y'\]"):
        load_dataframe(df)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['grp'\]"):
        load_dataframe(df, path_col="file", label_col="y", group_col="grp")


def test_dataframe_empty_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="no rows"):
        load_dataframe(pd.DataFrame({"path": [], "label": []}))
    with pytest.raises(FileNotFoundError, match="1 image file\\(s\\) not found, e.g. .*ghost.png"):
        load_dataframe(pd.DataFrame({"path": ["ghost.png"], "label": [0]}), root=tmp_path)


def test_dataframe_class_in_two_groups(tmp_path):
    root = one_level(tmp_path / "r")
    df = pd.DataFrame({"path": ["cat/0.png", "cat/1.png"], "label": ["cat", "cat"], "g": ["x", "y"]})
    with pytest.raises(ValueError, match="class 'cat' is in two groups"):
        load_dataframe(df, group_col="g", root=root)


def test_dataframe_unreadable_named(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"nope")
    with pytest.raises(ValueError, match=r"bad\.png: not a readable image"):
        load_dataframe(pd.DataFrame({"path": ["bad.png"], "label": [0]}), root=tmp_path)


def test_grayscale_modes_stay_one_channel(tmp_path):
    save(tmp_path / "r" / "a" / "l.png", mode="L")
    p = tmp_path / "r" / "a" / "one.png"
    Image.fromarray(np.ones((3, 4), dtype=bool)).save(p)  # mode "1"
    s = load_folder(tmp_path / "r")
    assert s.images.shape[1] == 1 and s.images[1].unique().tolist() == [255]


# ------------------------------------------------------------------------------------- modes beyond L/1/RGB


def test_16bit_int_and_float_images_scaled_to_8_bits(tmp_path):
    Image.fromarray(np.array([[0, 256, 32768, 65535]], np.uint16)).save(tmp_path / "g16.png")  # mode I;16
    Image.fromarray(np.array([[-5, 256, 70000, 65535]], np.int32)).save(tmp_path / "i32.tif")  # mode I
    Image.fromarray(np.array([[0, 0.5, 1, 0.25]], np.float32)).save(tmp_path / "unit.tif")  # F in 0..1
    Image.fromarray(np.array([[0, 100.4, 300, -2]], np.float32)).save(tmp_path / "byte.tif")  # F in 0..255
    expected = {"g16.png": [0, 1, 128, 255], "i32.tif": [0, 1, 255, 255], "unit.tif": [0, 128, 255, 64]}
    expected["byte.tif"] = [0, 100, 255, 0]
    for name, values in expected.items():
        x = load_images([tmp_path / name])
        assert x.shape == (1, 1, 1, 4), name  # grayscale, not RGB
        assert x.flatten().tolist() == values, name
    Image.fromarray(np.array([[0, np.nan]], np.float32)).save(tmp_path / "nan.tif")
    with pytest.raises(ValueError, match=r"nan\.tif: float image \(mode F\) has NaN"):
        load_images([tmp_path / "nan.tif"])


def test_transparency_composited_onto_white(tmp_path):
    rgba = np.array(
        [[[0, 0, 0, 255], [0, 0, 0, 0], [255, 0, 0, 128]]], np.uint8
    )  # ink, transparent, half red
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    x = load_images([tmp_path / "rgba.png"])
    assert x.shape == (1, 3, 1, 3)
    assert x[0, :, 0].T.tolist() == [[0, 0, 0], [255, 255, 255], [255, 127, 127]]
    la = np.array([[[0, 255], [0, 0], [100, 128]]], np.uint8)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    x = load_images([tmp_path / "la.png"])
    assert x.shape == (1, 1, 1, 3) and x.flatten().tolist() == [0, 255, 177]
    p = Image.new("P", (2, 1))
    p.putpalette([0, 0, 0, 40, 40, 40])
    p.putpixel((1, 0), 1)
    p.save(tmp_path / "t.gif", transparency=1)
    x = load_images([tmp_path / "t.gif"])
    assert x.shape == (1, 1, 1, 2) and x.flatten().tolist() == [0, 255]


def test_palette_images_grayscale_when_every_colour_is_gray(tmp_path):
    save(tmp_path / "r" / "a" / "l.png", size=(2, 1), value=7)
    Image.fromarray(np.array([[0, 128]], np.uint8)).save(
        tmp_path / "r" / "a" / "g.gif"
    )  # mode P, gray palette
    s = load_folder(tmp_path / "r")
    assert s.images.shape == (2, 1, 1, 2)
    assert s.images.flatten().tolist() == [0, 128, 7, 7]
    p = Image.new("P", (2, 1))
    p.putpalette([0, 0, 0, 255, 0, 0])
    p.putpixel((1, 0), 1)
    p.save(tmp_path / "r" / "a" / "red.gif")
    s = load_folder(tmp_path / "r")
    assert s.images.shape == (3, 3, 1, 2)
    assert s.images[2, :, 0, 1].tolist() == [255, 0, 0] and s.images[1, :, 0, 0].tolist() == [7, 7, 7]


def test_one_image_file_open_at_a_time(tmp_path, monkeypatch):
    root = tmp_path / "r"
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(5):
            Image.fromarray(np.full((3, 3), i, np.uint8)).save(root / cls / f"{i}.gif")  # GIFs stay open
    files, peak = [], [0]
    real_open = builtins.open

    def tracking_open(file, *args, **kwargs):
        f = real_open(file, *args, **kwargs)
        if str(file).endswith(".gif"):
            files.append(f)
            peak[0] = max(peak[0], sum(not g.closed for g in files))
        return f

    monkeypatch.setattr(builtins, "open", tracking_open)
    s = load_folder(root)
    assert len(s) == 10 and len(files) == 10
    assert peak[0] == 1 and all(f.closed for f in files)  # a folder of GIFs never hits "Too many open files"


def test_dataframe_blank_cells_name_the_rows(tmp_path):
    root = one_level(tmp_path / "r")
    df = pd.DataFrame({"path": ["cat/0.png", None, "dog/0.png", " "], "label": [0, 1, 1, 0]})
    with pytest.raises(
        ValueError, match=r"DataFrame: blank 'path' in row\(s\) 2, 4 \(data rows counted from 1"
    ):
        load_dataframe(df, root=root)
    df = pd.DataFrame({"path": ["cat/0.png", "cat/1.png", "dog/0.png"], "label": [0, 0, np.nan]})
    with pytest.raises(ValueError, match=r"blank 'label' in row\(s\) 3 .*fill them in or remove those rows"):
        load_dataframe(df, root=root)
    s = load_dataframe(df.dropna(), root=root)  # dropna leaves a float column: whole numbers are still ints
    assert s.class_names == ("0",)
    df = pd.DataFrame({"path": ["cat/0.png", "dog/0.png"], "label": [0.0, 1.0], "g": [2.0, np.nan]})
    assert load_dataframe(df, root=root).class_names == ("0", "1")
    with pytest.raises(ValueError, match=r"blank 'g' in row\(s\) 2"):
        load_dataframe(df, group_col="g", root=root)


def test_transparency_is_rounded_onto_white(tmp_path):
    """1 at alpha 200 onto white: (1 * 200 + 255 * 55) / 255 = 55.78, stored as 56 (not truncated to 55)."""
    Image.new("LA", (2, 2), (1, 200)).save(tmp_path / "x.png")
    assert load_images([tmp_path / "x.png"]).unique().tolist() == [56]


def test_a_palette_image_is_grayscale_only_when_every_colour_is_gray(tmp_path):
    for name, colour in (("gray", (90, 90, 90)), ("blue", (90, 90, 200))):
        im = Image.new("P", (2, 2), 0)
        im.putpalette(list(colour) + [0] * 765)
        im.save(tmp_path / f"{name}.png")
    assert load_images([tmp_path / "gray.png"]).shape[1] == 1
    blue = load_images([tmp_path / "blue.png"])
    assert blue.shape[1] == 3 and blue[0, :, 0, 0].tolist() == [90, 90, 200]


def test_a_zero_image_size_and_labels_that_collide_as_names_are_refused(tmp_path):
    save(tmp_path / "x.png")
    save(tmp_path / "y.png", value=30)
    with pytest.raises(ValueError, match="image_size must be a positive int, got 0"):
        load_images([tmp_path / "x.png"], image_size=0)
    df = pd.DataFrame({"path": [str(tmp_path / "x.png"), str(tmp_path / "y.png")], "label": [1, "1"]})
    with pytest.raises(ValueError, match="collide as class names"):
        load_dataframe(df)


def test_a_broken_link_to_a_class_or_group_folder_is_named_as_one(tmp_path):
    root = one_level(tmp_path / "r")
    (root / "eel").symlink_to(tmp_path / "gone", target_is_directory=True)
    with pytest.raises(ValueError, match="eel is a broken link .*gone.*; fix or remove it"):
        load_folder(root)  # not "eel is a file"
    for g in ("g1", "g2"):
        save(tmp_path / "t" / g / "a" / "x.png")
    (tmp_path / "t" / "g1" / "b").symlink_to(tmp_path / "gone", target_is_directory=True)
    with pytest.raises(ValueError, match="b is a broken link"):
        load_folder(tmp_path / "t")  # not "g1 holds folders while other class folders hold images"


def test_a_folder_holding_both_folders_and_files_is_named(tmp_path):
    for g in ("g1", "g2"):
        for c in ("a", "b"):
            save(tmp_path / "r" / g / c / "x.png")
    (tmp_path / "r" / "g1" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match=r"g1 holds both a folder \(a\) and a file \(notes\.txt\)"):
        load_folder(tmp_path / "r")  # g2 holds class folders too: "other class folders hold images" misleads


def test_one_image_linked_into_two_classes_is_refused(tmp_path):
    """Like a CSV row listed twice: the copy would be its own query's support, or a class of its twin."""
    root = one_level(tmp_path / "r")
    (root / "dog" / "also_cat.png").symlink_to(root / "cat" / "0.png")
    with pytest.raises(ValueError, match=r"cat/0\.png and .*also_cat\.png are one image file"):
        load_folder(root)
    (root / "dog" / "also_cat.png").unlink()
    (root / "kitten").symlink_to(root / "cat", target_is_directory=True)
    with pytest.raises(ValueError, match="are one image file"):
        load_folder(root)


def test_a_16_bit_grayscale_and_alpha_png_is_grayscale(tmp_path):
    """PIL opens it as "RGBA": one such file used to turn a grayscale folder into 3-channel colour."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    gray, alpha = np.array([[0, 300, 65535]]), np.array([[65535, 65535, 0]])  # 16-bit values, one row
    pixels = np.stack([gray, alpha], -1).astype(">u2").tobytes()
    header = struct.pack(">IIBBBBB", 3, 1, 16, 4, 0, 0, 0)  # 3x1, 16 bits, colour type 4: gray + alpha
    path = tmp_path / "la16.png"
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" + pixels)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    assert Image.open(path).mode == "RGBA"  # what PIL makes of it
    images = load_images([path])
    assert images.shape == (1, 1, 1, 3)  # one channel
    assert images.flatten().tolist() == [0, 1, 255]  # >> 8, and alpha 0 laid onto white


def test_an_image_too_large_to_decode_is_named(tmp_path):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0)  # 900 M pixels: PIL's decompression bomb
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    with pytest.raises(ValueError, match=r"big\.png: too large to decode .*make it smaller"):
        load_images([big])


def test_an_image_size_too_large_for_memory_is_named(tmp_path, monkeypatch):
    from siamese_bench.datasets import store

    def no_room(images, size):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr(store, "resize_images", no_room)
    with pytest.raises(
        ValueError, match=r"1 images at 100000x100000 do not fit in memory .*smaller image_size"
    ):
        load_images([save(tmp_path / "x.png")], image_size=100000)


def test_os_junk_files_and_folders_are_skipped_like_hidden_files(tmp_path):
    """Windows' Thumbs.db / desktop.ini (any case), macOS zips' __MACOSX, Synology's @eaDir: not classes,
    not images."""
    root = one_level(tmp_path / "r")
    (root / "cat" / "Thumbs.db").write_bytes(b"not an image")
    (root / "dog" / "DESKTOP.INI").write_text("[.ShellClassInfo]")
    (root / "__MACOSX" / "cat").mkdir(parents=True)  # an unzipped macOS archive: not a group folder
    (root / "__MACOSX" / "cat" / "._0.png").write_bytes(b"resource fork")
    (root / "@eaDir" / "0.png").mkdir(parents=True)  # Synology thumbnails, in every folder
    (root / "dog" / "@eaDir" / "0.png").mkdir(parents=True)
    (root / "dog" / "@eaDir" / "0.png" / "SYNOFILE_THUMB_S.jpg").write_bytes(b"x")
    s = load_folder(root)
    assert s.class_names == ("cat", "dog") and len(s) == 4
    for g in ("g1", "g2"):
        save(tmp_path / "t" / g / "a" / "x.png")
    (tmp_path / "t" / "g1" / "thumbs.db").write_bytes(b"x")
    (tmp_path / "t" / "g1" / "a" / "desktop.ini").write_bytes(b"x")
    assert load_folder(tmp_path / "t").class_names == ("g1/a", "g2/a")


def test_something_other_than_a_dataframe_is_named(tmp_path):
    from siamese_bench.datasets.folders import list_dataframe

    rows = [{"path": "cat/0.png", "label": 0}]
    for bad, kind in ((pd.Series(["cat/0.png"]), "Series"), (rows, "list"), (rows[0], "dict")):
        with pytest.raises(TypeError, match=rf"pandas DataFrame with columns 'path', 'label'.* got a {kind}"):
            load_dataframe(bad, root=tmp_path)
    with pytest.raises(TypeError, match=r"columns 'file', 'y', 'g' .* got a list"):
        list_dataframe(rows, "file", "y", "g")


def test_a_dataframe_row_that_is_a_folder_is_named_as_one(tmp_path):
    root = one_level(tmp_path / "r")
    df = pd.DataFrame({"path": ["cat/0.png", "dog", "cat/1.png"], "label": [0, 1, 0]})
    with pytest.raises(ValueError, match=r"DataFrame: row 2 .*dog is a folder, not an image file"):
        load_dataframe(df, root=root)  # not "image file(s) not found"


def _form(form: str, name: str) -> str:
    return unicodedata.normalize(form, name)


# "Ålborg" sorts after "zebra" composed (U+00C5) and before it decomposed ("A" + U+030A); "Éa" after "F" composed
# and before it decomposed: without reading names in one form, the classes and the images would change order
ACCENTED = ("café", "zebra", "Ålborg")


def accented(root, form):
    """root/<class>/<file>: ACCENTED classes with files "Éa.png" and "F.png", names written in Unicode `form`."""
    for v, cls in enumerate(ACCENTED):
        for i, f in enumerate(("F.png", "Éa.png")):
            save(root / _form(form, cls) / _form(form, f), value=10 * v + i)
    return root


def test_names_in_either_unicode_form_give_the_same_classes_and_order(tmp_path):
    composed = load_folder(accented(tmp_path / "a", "NFC"))
    decomposed = load_folder(accented(tmp_path / "b", "NFD"))
    assert composed.class_names == decomposed.class_names == ("café", "zebra", "Ålborg")
    assert all(unicodedata.is_normalized("NFC", n) for n in decomposed.class_names)
    assert torch.equal(composed.labels, decomposed.labels)
    assert torch.equal(composed.images, decomposed.images)  # files in the same order within each class
    assert composed.images[:2, 0, 0, 0].tolist() == [
        0,
        1,
    ]  # "F" (value 0), then "Éa" (1): É composed sorts after F


def test_one_name_in_two_unicode_forms_is_an_error(tmp_path):
    root = one_level(tmp_path / "r")
    for form in ("NFC", "NFD"):
        save(root / _form(form, "café") / "0.png")
    with pytest.raises(ValueError, match="one name written in two Unicode forms") as err:
        load_folder(root)
    assert "'caf\\xe9'" in str(err.value) and "'cafe\\u0301'" in str(err.value)
    root = one_level(tmp_path / "files")
    for form in ("NFC", "NFD"):
        save(root / "cat" / _form(form, "é.png"))
    with pytest.raises(ValueError, match="one name written in two Unicode forms"):
        load_folder(root)


def test_dataframe_labels_and_groups_are_read_stripped_and_in_nfc(tmp_path):
    """Cells that print alike are one class (or group): an accent composed or not, surrounding spaces."""
    paths = [save(tmp_path / f"{i}.png", value=i) for i in range(6)]
    labels = [c for c in ACCENTED for _ in range(2)]
    groups = ["Ü", "Ü", "o", "o", "o", "o"]
    frames = {
        form: pd.DataFrame(
            {
                "path": paths,
                "label": [_form(form, x) for x in labels],
                "group": [_form(form, g) for g in groups],
            }
        )
        for form in ("NFC", "NFD")
    }
    frames["mixed"] = pd.DataFrame(
        {
            "path": paths,
            "label": [
                _form(f, x) + pad for f, x, pad in zip(["NFC", "NFD"] * 3, labels, ["", " "] * 3, strict=True)
            ],
            "group": [" Ü", _form("NFD", "Ü"), "o", "o ", "o", "\to"],
        }
    )
    a, b, c = (load_dataframe(f, group_col="group") for f in frames.values())
    assert a.class_names == b.class_names == c.class_names == ("café", "zebra", "Ålborg")
    assert a.group_names == b.group_names == c.group_names == ("o", "Ü")
    assert torch.equal(a.labels, b.labels) and torch.equal(a.labels, c.labels)
    assert a.labels.tolist() == [0, 0, 1, 1, 2, 2] and torch.equal(a.groups, c.groups)


@pytest.mark.parametrize("fmt", ["png", "jpg"])
def test_exif_orientation_is_applied(tmp_path, fmt):
    """A picture stored as the sensor read it plus an EXIF Orientation tag is loaded as viewers show it."""
    stored = np.zeros((20, 40), np.uint8)  # 40 wide, 20 high: left half black, right half white
    stored[:, 20:] = 255
    shown = {  # how each tag value displays the stored pixels (EXIF 2.32, Orientation)
        1: stored,
        2: stored[:, ::-1],
        3: stored[::-1, ::-1],
        4: stored[::-1],
        5: stored.T,
        6: np.rot90(stored, -1),  # 90 degrees clockwise: the black half on top
        7: stored[::-1, ::-1].T,  # row 0 shown as the right column, column 0 as the bottom row
        8: np.rot90(stored),
    }
    for tag in shown:
        exif = Image.Exif()
        exif[0x0112] = tag
        save_to = tmp_path / str(tag) / f"x.{fmt}"
        save_to.parent.mkdir()
        Image.fromarray(stored).save(save_to, exif=exif, **({"quality": 100} if fmt == "jpg" else {}))
        (got,) = load_images([save_to])
        assert got.shape[1:] == shown[tag].shape, tag
        diff = (got[0].int() - torch.from_numpy(shown[tag].copy()).int()).abs()
        assert diff.max() <= (0 if fmt == "png" else 8), tag  # JPEG: lossy near the edge
    assert load_images([save(tmp_path / "plain.png", size=(40, 20))]).shape == (1, 1, 20, 40)  # no tag


def test_a_missing_file_or_a_folder_given_as_an_image_is_named(tmp_path):
    with pytest.raises(ValueError, match="nope.png: no such file"):
        load_images([tmp_path / "nope.png"])
    with pytest.raises(ValueError, match="is a folder, not an image file"):
        load_images([tmp_path])


def test_a_transparent_colour_key_is_laid_onto_white_in_every_mode(tmp_path):
    """Was: a grayscale ("L"), 1-bit, 16-bit or RGB PNG with a tRNS transparent colour was read as is (its
    transparent pixels black), while the same picture as a palette image was laid onto white."""
    gray = np.array([[0, 200], [0, 9]], np.uint8)
    Image.fromarray(gray, "L").save(tmp_path / "l.png", transparency=0)
    palette = Image.fromarray(gray, "L").convert("P")
    palette.save(tmp_path / "p.png", transparency=int(np.asarray(palette)[0, 0]))
    Image.fromarray(gray > 0).save(tmp_path / "one.png", transparency=0)  # mode "1": black is transparent
    Image.fromarray(gray.astype(np.uint16) * 257).save(tmp_path / "g16.png", transparency=9 * 257)  # I;16
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[0, 1] = (200, 10, 10)
    rgb[1, 1] = (0, 0, 1)  # near the key, not it
    Image.fromarray(rgb, "RGB").save(tmp_path / "rgb.png", transparency=(0, 0, 0))
    assert Image.open(tmp_path / "l.png").mode == "L" and Image.open(tmp_path / "g16.png").mode == "I;16"
    for name in ("l.png", "p.png"):
        assert load_images([tmp_path / name]).tolist() == [[[[255, 200], [255, 9]]]], name
    assert load_images([tmp_path / "one.png"]).tolist() == [[[[255, 255], [255, 255]]]]
    assert load_images([tmp_path / "g16.png"]).tolist() == [[[[0, 200], [0, 255]]]]
    x = load_images([tmp_path / "rgb.png"])
    assert x.shape == (1, 3, 2, 2) and x[0].permute(1, 2, 0).tolist() == [
        [[255, 255, 255], [200, 10, 10]],
        [[255, 255, 255], [0, 0, 1]],
    ]
    save(tmp_path / "plain.png", mode="L", value=0)  # no key: black stays black
    assert load_images([tmp_path / "plain.png"]).unique().tolist() == [0]


@pytest.mark.parametrize("size", [14.5, True, "14", 0, -3])
def test_every_loader_refuses_an_image_size_that_is_not_a_positive_int(tmp_path, size):
    """Was: load_images / load_folder / load_dataframe took int(image_size): 14.5 became 14, True 1 and "14"
    14, where load_dataset refuses them."""
    root = one_level(tmp_path / "r")
    df = pd.DataFrame({"path": ["cat/0.png", "dog/0.png"], "label": [0, 1]})
    msg = rf"image_size must be a positive int, got {size!r} \({type(size).__name__}\)"
    with pytest.raises(ValueError, match=msg):
        load_images([root / "cat" / "0.png"], image_size=size)
    with pytest.raises(ValueError, match=msg):
        load_folder(root, image_size=size)
    with pytest.raises(ValueError, match=msg):
        load_dataframe(df, root=root, image_size=size)
    assert load_folder(root, image_size=np.int64(5)).images.shape == (4, 1, 5, 5)  # a NumPy integer is fine
