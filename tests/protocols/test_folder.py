"""protocols/folder.py: `folder:PATH[@SIZE]` and `csv:FILE[@SIZE]`, the protocols over a user's own images: the
pinned split, the episode shape derived from the images, the errors, and runs through the CLI's runner."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import unicodedata

import pytest
import torch
from PIL import Image

from siamese_bench import runner
from siamese_bench.cli import build_parser
from siamese_bench.datasets.own import load_own
from siamese_bench.protocols import get_protocol
from siamese_bench.protocols.folder import build_split, folder_protocol
from siamese_bench.results import read_csv


@pytest.fixture(autouse=True)
def _cache(own_cache):
    return own_cache


def test_split_is_pinned_by_names_only():
    classes = {f"class{i:02d}": "all" for i in range(20)}
    shuffled = list(classes.items())
    random.Random(0).shuffle(shuffled)
    a = build_split("s", "folder:/x", classes)
    b = build_split("s", "folder:/x", dict(shuffled))
    assert a == b and a.hash == b.hash
    sizes = {k: len(a.part(k).classes) for k in a.part_names}
    assert sizes == {"train": 12, "val": 4, "test": 4}
    parts = [set(a.part(k).classes) for k in a.part_names]
    assert set().union(*parts) == set(classes) and sum(map(len, parts)) == 20  # a partition
    # the value is pinned: a change to the ordering or the cut would change every folder run's split
    assert a.hash == "5f2c54ab57944da6"
    assert a.part("test").classes == ("class02", "class10", "class15", "class16")
    assert a.part("val").classes == ("class03", "class04", "class13", "class17")


def test_groups_are_split_whole_when_there_are_three_or_more():
    classes = {f"g{g}/c{c}": f"g{g}" for g in range(5) for c in range(3)}
    split = build_split("s", "folder:/x", classes)
    seen = {}
    for key in split.part_names:
        for c in split.part(key).classes:
            assert seen.setdefault(classes[c], key) == key  # no group in two parts
    assert {len(split.part(k).classes) for k in split.part_names} == {3, 9}
    # two groups: the cut is by class instead
    two = build_split("s", "folder:/x", {f"g{g}/c{c}": f"g{g}" for g in range(2) for c in range(5)})
    assert len(two.part("test").classes) == 2


def test_a_part_of_one_class_says_how_to_fix_a_folder_and_a_csv():
    lonely = {f"g{g}/c{g}": f"g{g}" for g in range(3)}  # three groups of one class: every part gets one class
    with pytest.raises(ValueError, match="use one level of class folders"):
        build_split("s", "folder:/x", lonely)
    with pytest.raises(ValueError, match="leave out the CSV's group column"):
        build_split("s", "csv:/x.csv", lonely)


def test_too_few_classes_or_images_are_clear_errors(tmp_path, digit_folder):
    with pytest.raises(ValueError, match="5 classes; a one-shot protocol needs at least 6"):
        build_split("s", "folder:/x", {f"c{i}": "all" for i in range(5)})
    root = digit_folder(tmp_path / "few", per_class=2)
    (next((root / "three").iterdir())).unlink()
    with pytest.raises(ValueError, match="class 'three' has 1 image"):
        folder_protocol(f"folder:{root}")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        get_protocol(f"folder:{tmp_path / 'nowhere'}")


def test_protocol_shape_follows_the_folder(tmp_path, digit_folder):
    root = digit_folder(tmp_path / "mine", per_class=4)
    proto = get_protocol(f"folder:{root}@16")
    assert proto.image_size == 16 and proto.dataset == f"folder:{root.resolve()}"
    assert proto.ways == (2,) and proto.val_way == 2  # 10 classes: 2 test, 2 val, 6 train
    assert proto.n_query == 3  # the smallest class has 4 images: 1 support + 3 queries
    # the same images in another place: the same split (hash), so rows from both compare
    other = digit_folder(tmp_path / "elsewhere" / "mine", per_class=4)
    assert get_protocol(f"folder:{other}@16").split({}, None).hash == proto.split({}, None).hash


def _args(*argv):
    return build_parser().parse_args(["run", *argv])


def test_run_on_a_folder(tmp_path, digit_folder):
    root = digit_folder(tmp_path / "mine")
    spec = f"folder:{root}@16"
    common = ["--protocols", spec, "--heads", "contrastive", "--train-pairs", "256", "--episodes", "30"]
    # without --out the results go to results/folder-<name>/, never into a preset's folder
    assert runner.config_from_args(_args(*common)).out.name == "folder-mine"
    out = tmp_path / "out"
    argv = [*common, "--out", str(out), "--devices", "cpu", "--quiet", "--checkpoints"]
    runner.run(runner.config_from_args(_args(*argv)))
    (row,) = read_csv(out / "accuracy.csv")
    assert row["status"] == "ok", row["error"]
    assert row["protocol"] == spec and row["dataset"] == f"folder:{root.resolve()}"
    assert row["split_hash"] == get_protocol(spec).split({}, None).hash
    assert (row["n_way"], row["k_shot"], row["n_query"]) == ("2", "1", "5")
    assert 0.0 <= float(row["accuracy"]) <= 1.0
    # the protocol's path becomes safe file names: no sub-folders, no ':' (Windows)
    for sub in ("episodes", "per_episode", "checkpoints"):
        (f,) = (out / sub).iterdir()
        assert f.is_file() and f.name.startswith("folder_") and ":" not in f.name, f


def test_two_folders_whose_names_differ_only_in_unsafe_characters_keep_their_own_files(
    tmp_path, digit_folder
):
    """`folder:fläche` and `folder:flöche` (or `sub/d` and `sub_d`) made the same file names: one folder's
    per-episode results (read by the summary's and `compare`'s paired tests) and checkpoints overwrote the
    other's, silently."""
    a = digit_folder(tmp_path / "fläche")
    b = digit_folder(tmp_path / "flöche", classes=8)  # other images: other per-episode results
    out = tmp_path / "out"
    specs = [f"folder:{a}@16", f"folder:{b}@16"]
    argv = [
        "--protocols",
        ",".join(specs),
        "--backbones",
        "pixels",
        "--heads",
        "l2,cosine",
        "--episodes",
        "30",
    ]
    argv += ["--out", str(out), "--devices", "cpu", "--quiet", "--no-throughput", "--checkpoints"]
    assert runner.run(runner.config_from_args(_args(*argv)), print_summary=False) == 0
    assert len(list((out / "per_episode").iterdir())) == 4 and len(list((out / "episodes").iterdir())) == 2
    assert len(list((out / "checkpoints").iterdir())) == 4
    from siamese_bench.summary import per_episode_path

    for row in read_csv(out / "accuracy.csv"):  # each row's file holds that row's episodes
        correct = torch.load(per_episode_path(out, row))
        assert abs(correct.float().mean().item() - float(row["accuracy"])) < 1e-6, row["protocol"]


def test_csv_gives_the_same_split_and_run_as_the_folder(tmp_path, digit_folder):
    """A CSV listing a folder's images (paths relative to the CSV) gives the same protocol: the same classes
    in each part (the hashes differ: a split names its source), and the same one-shot numbers."""
    import pandas as pd

    root = digit_folder(tmp_path / "mine")
    rows = [
        {"path": str(p.relative_to(tmp_path)), "label": p.parent.name} for p in sorted(root.rglob("*.png"))
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "mine.csv", index=False)
    by_folder, by_csv = get_protocol(f"folder:{root}@16"), get_protocol(f"csv:{tmp_path / 'mine.csv'}@16")
    folder_split, csv_split = by_folder.split({}, None), by_csv.split({}, None)
    assert folder_split.parts == csv_split.parts
    assert (by_csv.ways, by_csv.n_query, by_csv.val_way) == (
        by_folder.ways,
        by_folder.n_query,
        by_folder.val_way,
    )
    accuracy = {}
    for spec in (f"folder:{root}@16", f"csv:{tmp_path / 'mine.csv'}@16"):
        out = tmp_path / spec.split(":")[0]
        argv = ["--protocols", spec, "--heads", "contrastive", "--train-pairs", "256", "--episodes", "30"]
        runner.run(runner.config_from_args(_args(*argv, "--out", str(out), "--devices", "cpu", "--quiet")))
        (row,) = read_csv(out / "accuracy.csv")
        assert row["status"] == "ok", row["error"]
        accuracy[spec.split(":")[0]] = row["accuracy"]
    assert accuracy["folder"] == accuracy["csv"]  # same images, classes, episodes and training


def test_data_verify_reports_your_images(tmp_path, digit_folder):
    from siamese_bench.datasets import verify

    root = digit_folder(tmp_path / "mine", per_class=4)
    report = verify(f"folder:{root}@16")
    assert report.ok and report.counts == {
        "classes": 10,
        "images": 40,
        "train classes": 6,
        "val classes": 2,
        "test classes": 2,
    }
    assert (
        "every image decodes (grayscale, 16x16)" in report.check and "2-way 1-shot, 3 queries" in report.check
    )
    two = digit_folder(tmp_path / "two", per_class=2)  # one support and one query per class
    assert "2-way 1-shot, 1 query per class" in verify(f"folder:{two}@16").check
    (root / "five" / "notes.txt").write_text("not an image")
    bad = verify(f"folder:{root}@16")
    assert bad.found and not bad.ok and "notes.txt" in bad.detail
    missing = verify(f"csv:{tmp_path / 'none.csv'}")
    assert not missing.found and "does not exist" in missing.detail
    r = _cli_verify(f"folder:{root}@16", tmp_path / "cache")
    assert r.returncode == 1 and "FAILED" in r.stdout and "notes.txt" in r.stdout


def test_data_verify_decodes_your_images_and_rebuilds_a_damaged_cache(tmp_path, digit_folder, own_cache):
    """Was: verify loaded the images through the tensor cache, so damaged pixel bytes in a cache file that
    still loads passed verify and were served to runs. verify now decodes every image file, says the cache
    file was damaged and rebuilt, and the next load returns the files' pixels."""
    from siamese_bench.datasets import store, verify

    root = digit_folder(tmp_path / "mine", per_class=3)
    dataset = f"folder:{root.resolve()}"
    clean = load_own(dataset, 16)
    assert verify(f"folder:{root}@16").detail == ""  # an intact cache: nothing to say
    (path,) = own_cache.glob("*.pt")
    blob = torch.load(path, weights_only=True)
    blob["sets"]["all"]["images"][0].fill_(123)  # the file still loads, with its key
    torch.save(blob, path)
    store.clear_memory_cache()
    assert not torch.equal(load_own(dataset, 16).images, clean.images)
    r = verify(f"folder:{root}@16")
    assert r.ok and r.detail == f"{store.REBUILT_NOTE} ({path})"
    store.clear_memory_cache()
    assert torch.equal(load_own(dataset, 16).images, clean.images)
    store.clear_memory_cache()


def _cli_verify(spec: str, cache):
    """`python -m siamese_bench data verify SPEC` in a subprocess, with its decoded images cached in `cache`."""
    env = {**os.environ, "SIAMESE_BENCH_CACHE": str(cache)}
    return subprocess.run(
        [sys.executable, "-m", "siamese_bench", "data", "verify", spec],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def _edit_pixels(root):
    """Every image's pixels changed, names kept."""
    for f in root.rglob("*.png"):
        Image.open(f).point(lambda v: 255 - v).save(f)


def _add_image(root):
    src = next((root / "one").iterdir())
    Image.open(src).point(lambda v: 255 - v).save(root / "one" / "new.png")  # not a copy: copies are refused


@pytest.mark.parametrize(
    "change",
    [
        lambda root: (root / "nine").rename(root / "ten"),  # a class renamed: the split moves
        _edit_pixels,  # same names, other images: the split's image digest changes
        _add_image,  # one more image: other episodes (and queries per class)
    ],
    ids=["class-renamed", "pixels-edited", "image-added"],
)
def test_a_resume_after_the_images_changed_is_refused(tmp_path, digit_folder, change):
    """Also when every cell is already done: the same command must not report the old images' rows as the
    current ones ("nothing was run")."""
    from siamese_bench.commands import UserError
    from siamese_bench.protocols import folder

    root = digit_folder(tmp_path / "mine")
    out = tmp_path / "out"
    argv = ["--protocols", f"folder:{root}@16", "--heads", "koch", "--train-pairs", "128", "--episodes", "20"]
    argv += ["--out", str(out), "--devices", "cpu", "--quiet", "--no-throughput"]
    runner.run(runner.config_from_args(_args(*argv)))
    before = (out / "accuracy.csv").read_text()
    change(root)
    folder.folder_protocol.cache_clear()  # a new process would list the folder again
    # another head alone: no cell of it is recorded, but its rows would sit beside the old images' ones
    # and the same folder written another way (its rows are found by the resolved folder and size)
    other_spelling = ["--protocols", f"folder:{root}/../{root.name}@16"]
    for more in ([], ["--heads", "koch,contrastive"], ["--heads", "contrastive"], other_spelling):
        with pytest.raises(UserError, match="changed since"):
            runner.run(runner.config_from_args(_args(*argv, *more)))
    assert (out / "accuracy.csv").read_text() == before


def test_a_run_stops_with_one_message_on_an_unreadable_image(tmp_path, digit_folder):
    """A file that is not an image stops `run` before any training, like missing data: exit 2, one message
    that names the file, no traceback and no error rows (which a resume would skip)."""
    root = digit_folder(tmp_path / "mine")
    bad = root / "seven" / "bad.png"
    bad.write_text("not an image")
    out = tmp_path / "out"
    r = subprocess.run(
        [sys.executable, "-m", "siamese_bench", "run", "--protocols", f"folder:{root}", "--heads", "koch"]
        + ["--train-pairs", "64", "--episodes", "10", "--no-throughput", "--quiet", "--out", str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, "SIAMESE_BENCH_DEBUG": "0"},
        timeout=300,
    )
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and str(bad) in r.stderr
    assert not (out / "accuracy.csv").exists() or not read_csv(out / "accuracy.csv")


def test_evaluate_says_when_your_images_changed_since_the_checkpoint(tmp_path, digit_folder):
    root = digit_folder(tmp_path / "mine")
    out = tmp_path / "out"
    argv = [
        "--protocols",
        f"folder:{root}",
        "--heads",
        "contrastive",
        "--train-pairs",
        "64",
        "--episodes",
        "10",
    ]
    runner.run(
        runner.config_from_args(
            _args(*argv, "--out", str(out), "--quiet", "--no-throughput", "--checkpoints")
        )
    )
    (ckpt,) = (out / "checkpoints").iterdir()
    (row,) = read_csv(out / "accuracy.csv")

    def evaluate(*more):
        return subprocess.run(
            [sys.executable, "-m", "siamese_bench", "evaluate", "--checkpoint", str(ckpt), *more],
            capture_output=True,
            text=True,
            timeout=300,
        )

    # the folder written another way is still the one trained on: the run's episodes, the run's accuracy
    r = evaluate("--protocol", f"folder:{root}/../{root.name}/")
    assert r.returncode == 0, r.stderr
    assert f"accuracy {100 * float(row['accuracy']):.2f}%" in r.stdout and "(10 episodes, hash" in r.stdout
    # a checkpoint of a relative path evaluates from another directory (it used to look for the path there)
    rel = subprocess.run(
        [sys.executable, "-m", "siamese_bench", "run", *argv[:1], "folder:mine", *argv[2:], "--out", "rel"]
        + ["--quiet", "--no-throughput", "--checkpoints"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert rel.returncode == 0, rel.stderr
    (rel_ckpt,) = (tmp_path / "rel" / "checkpoints").iterdir()
    (rel_row,) = read_csv(tmp_path / "rel" / "accuracy.csv")
    r = subprocess.run(
        [sys.executable, "-m", "siamese_bench", "evaluate", "--checkpoint", str(rel_ckpt)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd="/",
    )
    assert r.returncode == 0, r.stderr
    assert f"accuracy {100 * float(rel_row['accuracy']):.2f}%" in r.stdout
    (root / "zeta").mkdir()  # a class added since training: another split
    for i, src in enumerate(sorted((root / "one").iterdir())):
        Image.open(src).point(lambda v: 255 - v).save(root / "zeta" / f"{i}.png")
    r = evaluate("--episodes", "5")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"the images of folder:{root}" in r.stderr and "changed since" in r.stderr
    r = evaluate("--episodes", "5", "--protocol", f"folder:{root}/../{root.name}")
    assert r.returncode == 2 and "changed since" in r.stderr, r.stdout  # used to score the new split


def test_each_command_of_one_process_lists_your_images_afresh(tmp_path, digit_folder):
    """A script that calls cli.main() again after editing the folder: the second command used to be served the
    protocol (split, checks) of the images as they were, and resumed over changed images."""
    from siamese_bench.cli import main

    root = digit_folder(tmp_path / "mine")
    argv = ["run", "--protocols", f"folder:{root}@16", "--heads", "koch", "--train-pairs", "64"]
    argv += ["--episodes", "10", "--out", str(tmp_path / "out"), "--quiet", "--no-throughput"]
    assert main(argv) == 0
    (root / "nine").rename(root / "ten")
    assert main(argv) == 2  # refused: the images changed since the folder was written


def _tiny_folder(root, classes: dict[str, int], per_class: int):
    """root/<class>/<i>.png (8x8, distinct pixels), `classes` mapping a class path (maybe group/class) to
    a value (< 256; per_class <= 256)."""
    for name, v in classes.items():
        for i in range(per_class):
            path = root / name / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            im = Image.new("L", (8, 8), (v * 7 + i) % 256)
            im.putpixel((0, 0), v)
            im.putpixel((1, 0), i)  # (v, i) in two pixels: no two images alike
            im.save(path)
    return root


def test_a_large_folder_gets_the_documented_episode_caps(tmp_path):
    """30 classes of 8 images: 5-way (of 6 test classes), 5 queries (of 7 possible), 1000 episodes,
    5-way validation."""
    root = _tiny_folder(tmp_path / "big", {f"c{i:02d}": i for i in range(30)}, per_class=8)
    proto = folder_protocol(f"folder:{root}")
    split = proto.split({}, None)
    assert [len(split.part(k).classes) for k in ("test", "val", "train")] == [6, 6, 18]
    assert (proto.ways, proto.n_query, proto.episodes, proto.val_way) == ((5,), 5, 1000, 5)


def test_validation_ways_follow_the_val_part_and_small_folders_split_two_each(tmp_path):
    sizes = {"g0": 2, "g1": 3, "g2": 4, "g3": 6}  # whole groups per part: every part a different size
    classes = {f"{g}/c{i}": 10 * int(g[1]) + i for g, n in sizes.items() for i in range(n)}
    proto = folder_protocol(f"folder:{_tiny_folder(tmp_path / 'grouped', classes, per_class=3)}")
    split = proto.split({}, None)
    n_test, n_val = (len(split.part(k).classes) for k in ("test", "val"))
    assert n_test != n_val and proto.ways == (min(5, n_test),) and proto.val_way == min(5, n_val)
    six = folder_protocol(
        f"folder:{_tiny_folder(tmp_path / 'six', {c: i for i, c in enumerate('abcdef')}, 3)}"
    )
    assert [len(six.split({}, None).part(k).classes) for k in ("test", "val", "train")] == [2, 2, 2]


def test_a_group_split_with_a_one_class_part_is_refused():
    classes = {"g0/a": "g0", "g1/b": "g1", "g1/c": "g1", "g2/d": "g2", "g2/e": "g2"}
    with pytest.raises(ValueError, match="part got 1 class"):
        build_split("s", "folder:/x", classes)


def test_the_image_digest_covers_the_class_of_each_image(tmp_path):
    from siamese_bench.protocols.folder import images_digest

    f = tmp_path / "x.png"
    Image.new("L", (2, 2), 5).save(f)
    assert images_digest([("all", "a", f)]) != images_digest([("all", "b", f)])
    assert images_digest([("g1", "a", f)]) != images_digest([("g2", "a", f)])


def test_folder_copied_between_unicode_forms_keeps_its_split(tmp_path, digit_folder):
    """macOS writes accented names decomposed (NFD), Linux as typed: the same folder gives the same split hash,
    classes and episodes shape either way, and the same images in the same order."""
    src = digit_folder(tmp_path / "src", per_class=3)
    protocols = []
    for form in ("NFC", "NFD"):
        root = tmp_path / form / unicodedata.normalize(form, "chiffres-écrits")
        for cls in sorted(src.iterdir()):
            dst = root / unicodedata.normalize(form, f"{cls.name}-é")
            dst.mkdir(parents=True)
            for f in sorted(cls.iterdir()):
                shutil.copy(f, dst / unicodedata.normalize(form, f"Ê{f.name}"))
        protocols.append(folder_protocol(f"folder:{root}"))
    a, b = (p.split({}, None) for p in protocols)
    assert a.hash == b.hash and a == b
    assert "zero-é" in a.part("train").classes + a.part("val").classes + a.part("test").classes
    x, y = (load_own(p.dataset, p.image_size) for p in protocols)
    assert (
        x.class_names == y.class_names and torch.equal(x.images, y.images) and torch.equal(x.labels, y.labels)
    )


@pytest.mark.parametrize("other_class", [False, True], ids=["same-class", "other-class"])
def test_byte_identical_copies_are_refused(tmp_path, digit_folder, other_class):
    root = digit_folder(tmp_path / "mine")
    src = sorted((root / "one").iterdir())[0]
    dst = root / ("two" if other_class else "one") / "copy.png"
    dst.write_bytes(src.read_bytes())
    where = "classes 'one' and 'two'" if other_class else "both in class 'one'"
    with pytest.raises(ValueError, match="1 image file\\(s\\) are byte-identical copies of another") as err:
        folder_protocol(f"folder:{root}")
    assert f"{src} and {dst} ({where})" in str(err.value)
    r = _cli_verify(f"folder:{root}", tmp_path / "cache")
    assert r.returncode == 1 and "FAILED" in r.stdout and "byte-identical" in r.stdout
