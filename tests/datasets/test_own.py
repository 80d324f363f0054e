"""datasets/own.py: your own images named folder:PATH[@SIZE] / csv:FILE[@SIZE]: parsing, listing and the
decoded-tensor cache."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from siamese_bench.datasets import folders, load_dataset, store
from siamese_bench.datasets.own import list_images, load_own, parse


def test_parse_path_and_size():
    assert parse("folder:imgs") == ("folder", Path("imgs"), 28)
    assert parse("folder:imgs@64") == ("folder", Path("imgs"), 64)
    assert parse("folder:a@b/imgs") == ("folder", Path("a@b/imgs"), 28)  # a non-size '@' is in the path
    assert parse("csv:labels.csv@32") == ("csv", Path("labels.csv"), 32)
    for bad, match in (
        ("folder:", "folder:PATH"),
        ("folder:imgs@2", "too small; use @4 or more"),
        ("zip:x", "csv:FILE"),
    ):
        with pytest.raises(ValueError, match=match):
            parse(bad)


def test_csv_listing_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="CSV file .* does not exist"):
        list_images("csv", tmp_path / "none.csv")
    with pytest.raises(ValueError, match="CSV file .* is a folder; .* written folder:PATH"):
        list_images("csv", tmp_path)  # not "does not exist"
    pd.DataFrame({"file": ["a.png"], "label": [1]}).to_csv(tmp_path / "cols.csv", index=False)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['path'\]"):
        list_images("csv", tmp_path / "cols.csv")
    pd.DataFrame({"path": ["ghost.png"], "label": [1]}).to_csv(tmp_path / "ghost.csv", index=False)
    with pytest.raises(FileNotFoundError, match="ghost.png"):
        list_images("csv", tmp_path / "ghost.csv")


def test_decoded_images_are_cached_and_rebuilt_when_a_file_changes(
    tmp_path, monkeypatch, digit_folder, own_cache
):
    root = digit_folder(tmp_path / "mine", per_class=3)
    dataset = f"folder:{root}"
    first = load_own(dataset, 16)
    assert first.images.shape == (30, 1, 16, 16) and first.num_classes == 10
    assert torch.equal(load_dataset(dataset, image_size=16)["all"].images, first.images)
    assert len(list(own_cache.glob("folder-mine-*.pt"))) == 1
    store.clear_memory_cache()
    decoded = []
    real = folders.load_images
    monkeypatch.setattr(folders, "load_images", lambda *a, **k: decoded.append(1) or real(*a, **k))
    again = load_own(dataset, 16)  # from the cache file: nothing decoded
    assert (
        decoded == [] and torch.equal(again.images, first.images) and again.class_names == first.class_names
    )
    # an image rewritten (another mtime and content): the cache key changes and the set is rebuilt
    some = next((root / "five").iterdir())
    Image.fromarray(np.full((8, 8), 255, np.uint8)).save(some)
    os.utime(some, ns=(10**18, 10**18))
    store.clear_memory_cache()
    rebuilt = load_own(dataset, 16)
    assert decoded == [1] and not torch.equal(rebuilt.images, first.images)
    # rewritten with its old size and modification time (cp -p, rsync -t): the content is in the key
    Image.fromarray(np.full((8, 8), 10, np.uint8)).save(some, compress_level=0)  # stored: size = pixels' size
    st = some.stat()
    store.clear_memory_cache()
    rebuilt = load_own(dataset, 16)
    Image.fromarray(np.full((8, 8), 200, np.uint8)).save(some, compress_level=0)
    assert some.stat().st_size == st.st_size
    os.utime(some, ns=(st.st_atime_ns, st.st_mtime_ns))
    store.clear_memory_cache()  # as in a new process
    edited = load_own(dataset, 16)
    assert decoded == [1, 1, 1] and not torch.equal(edited.images, rebuilt.images)
    # a new decoder version (images decoded differently) also rebuilds: no stale pixels from the cache
    from siamese_bench.datasets import own

    monkeypatch.setattr(own, "DECODER_VERSION", own.DECODER_VERSION + 1)
    store.clear_memory_cache()
    load_own(dataset, 16)
    assert decoded == [1, 1, 1, 1]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", r"CSV file .*bad\.csv is empty; it needs a header line"),
        ('path,label\n"a.png,1\n', r"CSV file .*bad\.csv cannot be read as CSV"),
        ("path,label\nx.png,0\n,1\nx.png,\n", r"CSV file .*bad\.csv: blank 'path' in row\(s\) 2 "),
        ("path,label\nx.png,0\nx.png,1\nx.png,\n", r"bad\.csv: blank 'label' in row\(s\) 3 "),
    ],
    ids=["empty", "unparsable", "blank-path", "blank-label"],
)
def test_csv_empty_unparsable_or_blank_cells_named(tmp_path, content, message):
    Image.new("L", (2, 2), 5).save(tmp_path / "x.png")
    Image.new("L", (2, 2), 6).save(tmp_path / "y.png")
    (tmp_path / "bad.csv").write_text(content)
    with pytest.raises(ValueError, match=message):
        list_images("csv", tmp_path / "bad.csv")
    (tmp_path / "ok.csv").write_text("path,label\nx.png,0\ny.png,1\n")
    assert [c for _, c, _ in list_images("csv", tmp_path / "ok.csv")] == ["0", "1"]


@pytest.mark.parametrize(
    ("rows", "shown"),
    [
        ("x.png,0\ny.png,1\nx.png,0\n", "rows 1 and 3 list the same image file"),  # a duplicate row
        (
            "x.png,0\ny.png,1\nsub/../x.png,1\n",
            "rows 1 and 3 list the same image file",
        ),  # one file, two labels
    ],
    ids=["duplicate-row", "two-labels"],
)
def test_a_csv_that_lists_one_file_twice_is_refused(tmp_path, rows, shown):
    """A copy of an image would be its own query's support (accuracy inflated), or a class's twin."""
    (tmp_path / "sub").mkdir()
    Image.new("L", (2, 2), 5).save(tmp_path / "x.png")
    Image.new("L", (2, 2), 6).save(tmp_path / "y.png")
    (tmp_path / "dup.csv").write_text("path,label\n" + rows)
    with pytest.raises(ValueError, match=shown + ".*list each image once"):
        list_images("csv", tmp_path / "dup.csv")


def test_parse_keeps_an_at_sign_in_the_path_and_expands_home():
    assert parse("folder:a@b/imgs@64") == ("folder", Path("a@b/imgs"), 64)
    assert parse("folder:~/imgs@64") == ("folder", Path.home() / "imgs", 64)
    assert parse("folder:~/imgs") == ("folder", Path.home() / "imgs", 28)


def _uniform(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (8, 8), value).save(path)


def test_the_cache_key_covers_image_size_same_size_edits_and_csv_labels(tmp_path, own_cache):
    """Each of these changes what load_own must return; a key without it would serve stale tensors."""
    for c, v in (("a", 10), ("b", 20), ("c", 30)):
        for i in range(2):
            _uniform(tmp_path / "r" / c / f"{i}.png", v + i)
    spec = f"folder:{tmp_path / 'r'}"
    assert load_own(spec, 16).images.shape[-1] == 16
    assert load_own(spec, 8).images.shape[-1] == 8  # another size: decoded again, not the 16x16 tensors
    f = tmp_path / "r" / "a" / "0.png"
    size = f.stat().st_size
    _uniform(f, 200)  # other pixels, the same number of bytes: only the modification time tells
    assert f.stat().st_size == size
    os.utime(f, ns=(10**18, 10**18))
    store.clear_memory_cache()
    assert int(load_own(spec, 8).images[0].max()) == 200
    # a CSV relabelled (same images, same files): the labels follow the CSV
    csv = tmp_path / "l.csv"
    rows = [f"r/{c}/{i}.png,{c}" for c in "abc" for i in range(2)]
    csv.write_text("path,label\n" + "\n".join(rows) + "\n")
    assert load_own(f"csv:{csv}", 8).class_names == ("a", "b", "c")
    csv.write_text("path,label\n" + "\n".join(r.replace(",a", ",z") for r in rows) + "\n")
    store.clear_memory_cache()
    assert load_own(f"csv:{csv}", 8).class_names == ("b", "c", "z")


def test_a_csv_group_column_gives_the_groups(tmp_path, own_cache):
    for c in "abcdef":
        for i in range(2):
            _uniform(tmp_path / c / f"{i}.png", 10 * i)
    csv = tmp_path / "g.csv"
    rows = [f"{c}/{i}.png,{c},g{'abcdef'.index(c) // 2}" for c in "abcdef" for i in range(2)]
    csv.write_text("path,label,group\n" + "\n".join(rows) + "\n")
    assert {g for g, _, _ in list_images("csv", csv)} == {"g0", "g1", "g2"}
    ds = load_own(f"csv:{csv}", 8)
    assert ds.group_names == ("g0", "g1", "g2") and ds.groups.tolist() == [0, 0, 1, 1, 2, 2]


def test_parse_reads_only_ascii_digits_as_a_size():
    assert parse("folder:imgs@²") == ("folder", Path("imgs@²"), 28)  # not int("²"): ValueError


def test_a_csv_label_na_or_none_is_a_class_name_not_a_blank(tmp_path):
    for i, name in enumerate(("x", "y", "z")):
        Image.new("L", (2, 2), i).save(tmp_path / f"{name}.png")
    (tmp_path / "l.csv").write_text("path,label\nx.png,NA\ny.png,None\nz.png,\n")
    with pytest.raises(ValueError, match=r"blank 'label' in row\(s\) 3 "):  # rows 1 and 2 are not blank
        list_images("csv", tmp_path / "l.csv")
    (tmp_path / "l.csv").write_text("path,label\nx.png,NA\ny.png,None\n")
    assert [c for _, c, _ in list_images("csv", tmp_path / "l.csv")] == ["NA", "None"]


def test_csv_labels_and_groups_are_text_so_zero_padding_is_kept(tmp_path):
    """pandas would read 01, 1 and 007 as ints 1, 1, 7: two classes merged. Plain integers keep their
    numeric order (2 before 10)."""
    from siamese_bench.datasets import own

    for name in ("a", "b", "c", "d", "007"):
        Image.new("L", (2, 2), 5).save(tmp_path / name, format="PNG")
    csv = tmp_path / "l.csv"
    csv.write_text("path,label,group\na,01,01\nb,1,1\nc,007,1\nd,3.0,1\n")
    items = list_images("csv", csv)
    assert [(g, c, f.name) for g, c, f in items] == [
        ("01", "01", "a"),
        ("1", "1", "b"),
        ("1", "007", "c"),
        ("1", "3.0", "d"),  # a label's text as written: "3.0" is not class "3"
    ]
    csv.write_text("path,label\n007,x\n")
    assert [f.name for _, _, f in list_images("csv", csv)] == ["007"]  # the path too: file 007, not 7
    csv.write_text("path,label\na,10\nb,2\nc, -3\n")
    df, _ = own._read_csv(csv)
    assert folders.load_dataframe(df, root=tmp_path).class_names == ("-3", "2", "10")


def test_a_folder_named_like_a_size_or_a_csv_given_as_a_folder_is_explained(tmp_path, digit_folder):
    from siamese_bench.protocols.folder import folder_protocol

    root = digit_folder(tmp_path / "photos@2024", per_class=2)
    with pytest.raises(FileNotFoundError, match="'@2024' was read as the image size") as err:
        folder_protocol(f"folder:{tmp_path / 'photos'}@2024")
    assert f"e.g. folder:{root}@28" in str(err.value)
    assert folder_protocol(f"folder:{root}@28").image_size == 28  # the way the message gives
    (tmp_path / "labels.csv").write_text("path,label\n")
    with pytest.raises(ValueError, match=f"is a file; folder:PATH .* written csv:{tmp_path / 'labels.csv'}"):
        list_images("folder", tmp_path / "labels.csv")
