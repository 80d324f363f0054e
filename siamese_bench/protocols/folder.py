"""`folder:PATH[@SIZE]` and `csv:FILE[@SIZE]`: one-shot protocols over your own images.

    python -m siamese_bench run --protocols folder:path/to/images
    python -m siamese_bench run --protocols folder:path/to/images@64 --backbones conv4 --heads triplet
    python -m siamese_bench run --protocols csv:labels.csv

The images: datasets/own.py (class folders, or a CSV of path,label[,group] rows; resized to SIZE x SIZE,
default 28; decoded once, then cached).

Split, pinned without a random generator: the classes are ordered by the sha256 of their names and cut 20 / 20 /
60 into test / val / train (at least 2 classes in each). With groups (at least 3 of them), the groups are cut
the same way instead, so that no group is in two parts (like Omniglot's alphabets). The order depends only on
the names (in Unicode NFC: folders.py `nfc`), not on the file system or the machine, and the split hash goes
into every result row. Adding, removing or renaming a class can move other classes between parts. The hash also
covers a digest of the images (names and contents, `images_digest`) and the decoder's version, so adding,
removing, renaming or editing any image, or a siamese_bench that decodes images differently, changes it: a
resume into results made before such a change is refused (resume.py `_check_own_images_unchanged`), and so is
`evaluate` of a checkpoint trained on other images.

Two files with the same content (a copy in its own class could be its own query's support; in another class
it contradicts its label) are an error naming them.

Episodes: N-way 1-shot with N = 5 (or every test class, when there are fewer), Q = min(5, smallest class - 1)
queries per class, 1,000 episodes; model selection on `val_way`-way 1-shot episodes of the val part.
Rows name the protocol as written on the command line (`folder:PATH@SIZE`, `csv:FILE`); run it from the same
working directory to resume or reproduce.
"""

from __future__ import annotations

import functools
import hashlib
from collections import Counter
from pathlib import Path

from siamese_bench.datasets import store
from siamese_bench.datasets.folders import nfc
from siamese_bench.datasets.own import DECODER_VERSION, list_images, load_own, parse
from siamese_bench.protocols.base import Protocol
from siamese_bench.splits import ClassSplit, SplitPart

FRACTIONS = (("test", 0.2), ("val", 0.2))  # the rest is train
MAX_WAYS = 5
MAX_QUERY = 5


def _by_hash(names) -> list[str]:
    return sorted(names, key=lambda n: hashlib.sha256(n.encode()).hexdigest())


def _cut(units: list[str], minimum: int) -> dict[str, list[str]]:
    """units (hash-ordered) -> {"test": [...], "val": [...], "train": rest}, each of at least `minimum`."""
    parts, start = {}, 0
    for key, fraction in FRACTIONS:
        n = max(minimum, round(fraction * len(units)))
        parts[key] = units[start : start + n]
        start += n
    parts["train"] = units[start:]
    return parts


def images_digest(items) -> str:
    """sha256 (16 hex digits) over every (group, class, file) item's group, class, file name and file content,
    in a fixed order, and the decoder's version (own.py `DECODER_VERSION`): it changes when an image is added,
    removed, renamed or edited, or decoded differently by another siamese_bench, not when the folder moves."""
    lines = sorted(f"{g}\0{c}\0{nfc(f.name)}\0{store.sha256_file(f)}\n" for g, c, f in items)
    return hashlib.sha256(f"decoder {DECODER_VERSION}\n{''.join(lines)}".encode()).hexdigest()[:16]


def _no_copies(root, items) -> None:
    """ValueError when two image files have the same content: a copy in its own class can be its own query's
    support, and one in another class contradicts its label (links to one file: folders.py refuses them)."""
    first: dict[str, tuple[str, object]] = {}
    copies = []
    for _, c, f in items:
        seen = first.setdefault(store.sha256_file(f), (c, f))
        if seen[1] != f:
            copies.append((seen, (c, f)))
    if copies:
        (c1, f1), (c2, f2) = copies[0]
        where = f"both in class {c1!r}" if c1 == c2 else f"classes {c1!r} and {c2!r}"
        raise ValueError(
            f"{root}: {len(copies)} image file(s) are byte-identical copies of another, e.g. {f1} and {f2} "
            f"({where}); a copy can be its own query's support, or contradict its label: keep each image once"
        )


def build_split(name: str, dataset: str, class_groups: dict[str, str], images: str = "") -> ClassSplit:
    """The pinned split of `class_groups` ({class name: group name}), its hash covering `images` (a digest of
    the images, `images_digest`); ValueError when a part would have fewer than 2 classes."""
    groups = sorted(set(class_groups.values()))
    by_group = len(groups) >= 3
    units = _by_hash(groups if by_group else class_groups)
    need = 1 if by_group else 2
    if len(units) < need * 3:
        what = "groups" if by_group else "classes"
        raise ValueError(
            f"{name}: {len(units)} {what}; a one-shot protocol needs at least {need * 3} (train, val and test "
            f"each need {need}) with at least 2 classes per part"
        )
    cut = _cut(units, need)
    parts = []
    for key in ("train", "val", "test"):
        chosen = set(cut[key])
        classes = tuple(sorted(c for c, g in class_groups.items() if (g if by_group else c) in chosen))
        if len(classes) < 2:
            raise ValueError(
                f"{name}: the {key} part got {len(classes)} class(es) (groups {sorted(chosen)}); each part "
                "needs at least 2 classes: add classes, or "
                + (
                    "leave out the CSV's group column (each class is then split on its own)"
                    if dataset.startswith("csv:")
                    else "use one level of class folders"
                )
            )
        parts.append((key, SplitPart("all", classes)))
    # "groups": no group in two parts; when the cut is by class, each class is its own group
    pairs = tuple(sorted((c, g if by_group else c) for c, g in class_groups.items()))
    return ClassSplit(name, dataset, tuple(parts), "groups", pairs, images)


@functools.cache
def folder_protocol(spec: str) -> Protocol:
    """The Protocol for 'folder:PATH[@SIZE]' or 'csv:FILE[@SIZE]': lists (does not decode) the images and
    pins the split."""
    kind, path, size = parse(spec)
    root = path.resolve()
    try:
        items = list_images(kind, root)  # FileNotFoundError / ValueError name the problem
    except FileNotFoundError as e:
        sized = Path(f"{path}@{size}")
        if not root.exists() and spec.endswith(f"@{size}") and sized.exists():
            raise FileNotFoundError(
                f"{e}; '@{size}' was read as the image size, and {sized} exists: to use it, give the size "
                f"after its name, e.g. {kind}:{sized}@28"
            ) from None
        raise
    class_groups = {c: g for g, c, _ in items}
    counts = Counter(c for _, c, _ in items)
    smallest, fewest = min((n, c) for c, n in counts.items())
    if smallest < 2:
        raise ValueError(
            f"{root}: class {fewest!r} has 1 image; one-shot episodes need at least 2 images per class (1 "
            "support + 1 query) and positive pairs need 2; add images or remove the class"
        )
    _no_copies(root, items)
    dataset = f"{kind}:{root}"
    # the split names the folder (file) and digests its images, not its location: the same images elsewhere
    # give the same split hash; changed images give another (a resume or `evaluate` then refuses)
    split = build_split(
        f"{kind}-{nfc(root.stem)}", f"{kind}:{nfc(root.name)}", class_groups, images_digest(items)
    )
    n_test, n_val = (len(split.part(k).classes) for k in ("test", "val"))
    return Protocol(
        name=spec,
        version=1,
        dataset=dataset,
        image_size=size,
        split=lambda data, data_dir: split,
        description=(
            f"your images in {root}: {len(counts)} classes, {len(items)} images at {size}x{size}; "
            f"test {n_test} / val {n_val} / train {len(split.part('train').classes)} classes"
        ),
        ways=(min(MAX_WAYS, n_test),),
        shots=(1,),
        n_query=min(MAX_QUERY, smallest - 1),
        episodes=1000,
        val_way=min(MAX_WAYS, n_val),
    )


def verify_own(spec: str) -> store.VerifyReport:
    """`data verify folder:PATH[@SIZE]` / `csv:FILE[@SIZE]`: list the images, pin the split, decode every image
    file at SIZE (not read from the tensor cache: a cache file that differs is rewritten and the detail says
    so; a missing one is written) and report counts; never raises for bad input, reports it."""
    try:
        kind, path, size = parse(spec)
    except ValueError as e:
        return store.VerifyReport(spec, False, False, None, detail=str(e))
    root = path.resolve()
    if not root.exists():
        return store.VerifyReport(spec, False, False, root, detail=f"{root} does not exist")
    try:
        proto = folder_protocol(spec)
        with store.from_source() as rebuilt:
            images = load_own(proto.dataset, size)
    except (OSError, ValueError) as e:
        return store.VerifyReport(spec, True, False, root, detail=f"{type(e).__name__}: {e}")
    split = proto.split({}, None)
    parts = {f"{k} classes": len(split.part(k).classes) for k in ("train", "val", "test")}
    channels = "grayscale" if images.images.shape[1] == 1 else "RGB"
    return store.VerifyReport(
        spec,
        True,
        True,
        root,
        counts={"classes": images.num_classes, "images": len(images), **parts},
        check=(
            f"every image decodes ({channels}, {size}x{size}); split {split.hash}; test episodes "
            f"{proto.ways[0]}-way 1-shot, {proto.n_query} quer{'y' if proto.n_query == 1 else 'ies'} per class"
        ),
        detail=store.rebuilt_note(rebuilt),
    )
