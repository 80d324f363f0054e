"""The Vinyals et al. (2016) Omniglot split (Matching / Prototypical Networks): 1623 characters x 4 rotations.

Inside:
- `ALPHABETS`: the 50 alphabets in official character-id order with their character counts.
- `SPLIT_FILES` (jakesnell/prototypical-networks at a pinned commit) and `SPLIT_SHA256` (the official files).
- `builtin_lines(part)`: the split written out from its definition (val: Hebrew, Mkhedruli_(Georgian),
  Armenian, Early_Aramaic, Bengali; test: Gurmukhi character42-45 and the 12 evaluation alphabets after it;
  trainval: all other characters; train = trainval - val). test and val reproduce the official files byte for
  byte; train and trainval hold the official files' lines in another order. Used only when a file is missing.
- `read_split_lines(data_dir)`: {part: lines}, from `<data dir>/omniglot/splits/vinyals/<part>.txt` when
  present (sha256 checked) else the built-in definition; counts checked (train 4112, val 688, test 1692,
  trainval 4800).
- `vinyals_split(data_dir=None, download=False)` -> ClassSplit "vinyals" (dataset "omniglot-vinyals", subset
  "vinyals", disjoint "classes"; classes sorted by name).
- `load_vinyals(data_dir=None, image_size=28, download=False)` -> {"vinyals": ImageSet (129840, 1, S, S)}:
  every character's 20 drawings at rotations 0/90/180/270 (torch.rot90 counter-clockwise on resized images),
  class "Alphabet/characterNN/rotDDD" = 4 * (Omniglot class, background then evaluation) + rotation,
  images class-major; extra {"drawer", "char_id", "rotation" (0..3)}. Cached.
- `verify(data_dir)`: the split files, and the rotated sets that have a cache file, built afresh from the zips
  (a damaged cache file is rewritten and the report says so).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from siamese_bench.datasets import store
from siamese_bench.datasets.imageset import ImageSet
from siamese_bench.datasets.omniglot import OMNIGLOT_FILES, load_omniglot
from siamese_bench.splits import ClassSplit, SplitPart

ALPHABETS = {
    "background": (
        ("Arcadian", 26), ("Armenian", 41), ("Asomtavruli_(Georgian)", 40), ("Balinese", 24), ("Bengali", 46),
        ("Blackfoot_(Canadian_Aboriginal_Syllabics)", 14), ("Braille", 26), ("Cyrillic", 33),
        ("Early_Aramaic", 22), ("Syriac_(Estrangelo)", 23), ("Anglo-Saxon_Futhorc", 29), ("Futurama", 26),
        ("Grantha", 43), ("Greek", 24), ("Gujarati", 48), ("Hebrew", 22), ("Japanese_(hiragana)", 52),
        ("Inuktitut_(Canadian_Aboriginal_Syllabics)", 16), ("Malay_(Jawi_-_Arabic)", 40),
        ("Japanese_(katakana)", 47), ("Korean", 40), ("Latin", 26), ("Alphabet_of_the_Magi", 20),
        ("Mkhedruli_(Georgian)", 41), ("Burmese_(Myanmar)", 34), ("N_Ko", 33),
        ("Ojibwe_(Canadian_Aboriginal_Syllabics)", 14), ("Sanskrit", 42), ("Tagalog", 17), ("Tifinagh", 55),
    ),
    "evaluation": (
        ("Angelic", 20), ("Atemayar_Qelisayer", 26), ("Atlantean", 26), ("Aurek-Besh", 26), ("Avesta", 26),
        ("Ge_ez", 26), ("Glagolitic", 45), ("Gurmukhi", 45), ("Kannada", 41), ("Keble", 26),
        ("Malayalam", 47), ("Manipuri", 40), ("Mongolian", 30), ("Old_Church_Slavonic_(Cyrillic)", 45),
        ("Oriya", 46), ("Syriac_(Serto)", 23), ("Sylheti", 28), ("Tengwar", 25), ("Tibetan", 42),
        ("ULOG", 26),
    ),
}  # fmt: skip

ROTATIONS = (0, 90, 180, 270)
PARTS = ("train", "val", "test", "trainval")
EXPECTED_CLASSES = {"train": 4112, "val": 688, "test": 1692, "trainval": 4800}
VAL_ALPHABETS = ("Hebrew", "Mkhedruli_(Georgian)", "Armenian", "Early_Aramaic", "Bengali")
TEST_FIRST = ("Gurmukhi", 42)  # test = evaluation characters from Gurmukhi/character42 on, in id order

_COMMIT = "c9bb4d258267c11cb6e23f0a19242d24ca98ad8a"
_URL = f"https://raw.githubusercontent.com/jakesnell/prototypical-networks/{_COMMIT}/data/omniglot/splits/vinyals/"
SPLIT_SHA256 = {
    "train": "984522c194c30fb678ce53304a160a42faf5403ad4f9a67010f32dd3a35738e0",
    "val": "11f99e54faee3e26f53d3231c1cceac5bf7b8730e9be31cb6dab256551dc0c1a",
    "test": "845264cc5c156180828ccf17915668b17ee21424d0170df6e7d81676aa5d1204",
    "trainval": "5276ae50c755596d0bff7f2284e85625695549a85ee6e36b6491ad1e5d1cc26a",
}
SPLIT_FILES = tuple(
    store.RemoteFile(f"splits/vinyals/{p}.txt", (_URL + f"{p}.txt",), sha256=SPLIT_SHA256[p]) for p in PARTS
)


def _characters() -> list[tuple[str, int]]:
    """All 1623 (alphabet, character number) in official id order (background then evaluation)."""
    return [
        (a, c)
        for subset in ("background", "evaluation")
        for a, n in ALPHABETS[subset]
        for c in range(1, n + 1)
    ]


def _lines(chars: list[tuple[str, int]]) -> list[str]:
    return [f"{a}/character{c:02d}/rot{r:03d}" for a, c in chars for r in ROTATIONS]


def builtin_lines(part: str) -> list[str]:
    """The lines of `<part>.txt` from the split's definition (test and val in the official file order)."""
    if part not in PARTS:
        raise ValueError(f"unknown Vinyals part {part!r}; parts: {', '.join(PARTS)}")
    evaluation = [(a, c) for a, n in ALPHABETS["evaluation"] for c in range(1, n + 1)]
    test = evaluation[evaluation.index(TEST_FIRST) :]
    if part == "test":
        return _lines(test)
    sizes = dict(ALPHABETS["background"])
    val = [(a, c) for a in VAL_ALPHABETS for c in range(1, sizes[a] + 1)]
    if part == "val":
        return _lines(val)
    test_set, val_set = set(test), set(val)
    trainval = [ch for ch in _characters() if ch not in test_set]
    if part == "trainval":
        return _lines(trainval)
    return _lines([ch for ch in trainval if ch not in val_set])


def read_split_lines(
    data_dir: str | os.PathLike | None = None, download: bool = False
) -> tuple[dict[str, list[str]], dict[str, str]]:
    """({part: class names}, {part: where it came from}). Files found are sha256-checked (ValueError when not
    the official file); missing parts use `builtin_lines` (or are downloaded when `download`)."""
    data_dir, reason = store.resolve_data_dir(data_dir)
    if download:
        store.require_files(
            "omniglot",
            data_dir,
            SPLIT_FILES,
            allow_download=True,
            reason=reason,
            fetch_name="omniglot-vinyals",
        )
    lines, source = {}, {}
    for part, rf in zip(PARTS, SPLIT_FILES, strict=True):
        path = next(
            (d / rf.name for d in store.dataset_dirs("omniglot", data_dir) if (d / rf.name).is_file()), None
        )
        if path is None:
            lines[part], source[part] = builtin_lines(part), "built-in definition"
            continue
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != rf.sha256:
            raise ValueError(
                f"{path}: sha256 {digest} is not the official {SPLIT_SHA256[part]}; this is not the Vinyals "
                "split file — delete it (the built-in definition is then used) or replace it "
                f"(`{store.FETCH_HINT} omniglot-vinyals`)"
            )
        lines[part], source[part] = data.decode().split(), f"{path} (official sha256)"
    for part, n in EXPECTED_CLASSES.items():
        if len(lines[part]) != n or len(set(lines[part])) != n:
            raise ValueError(
                f"Vinyals split part {part}: {len(set(lines[part]))} distinct classes, expected {n}"
            )
    if set(lines["trainval"]) != set(lines["train"]) | set(lines["val"]):
        raise ValueError("Vinyals split: trainval is not train + val")
    return lines, source


def vinyals_split(data_dir: str | os.PathLike | None = None, download: bool = False) -> ClassSplit:
    """ClassSplit "vinyals": parts train (4112 classes) / val (688) / test (1692) / trainval (4800) of subset
    "vinyals" of dataset "omniglot-vinyals"; classes ("Alphabet/characterNN/rotDDD") sorted; disjoint by
    character (rotations of one character never straddle two parts)."""
    lines, _ = read_split_lines(data_dir, download)
    parts = tuple((p, SplitPart("vinyals", tuple(sorted(lines[p])))) for p in PARTS)
    return ClassSplit("vinyals", "omniglot-vinyals", parts, "classes")


def rotate_set(base: list[ImageSet], name: str = "omniglot-vinyals") -> ImageSet:
    """Concatenate `base` sets (disjoint class and group names) and add 4 rotations of every class.

    Output class 4 * c + k is base class c rotated by k * 90 degrees counter-clockwise (torch.rot90 on
    (H, W)); images (4N, C, H, W) in class-major order (stable: drawers keep their order).
    """
    images = torch.cat([s.images for s in base])
    offsets = torch.tensor([0] + [s.num_classes for s in base]).cumsum(0)
    goffsets = torch.tensor([0] + [len(s.group_names) for s in base]).cumsum(0)
    labels = torch.cat([s.labels + offsets[i] for i, s in enumerate(base)])
    groups = torch.cat([s.groups + goffsets[i] for i, s in enumerate(base)])
    names = [c for s in base for c in s.class_names]
    rot = torch.stack([torch.rot90(images, k, dims=(2, 3)) for k in range(4)], dim=1)  # (N, 4, C, H, W)
    k = torch.arange(4).expand(len(images), 4)
    new_labels = (labels[:, None] * 4 + k).flatten()
    order = torch.sort(new_labels, stable=True).indices
    extra = {}
    for key in base[0].extra:
        if all(key in s.extra for s in base):
            extra[key] = torch.cat([s.extra[key] for s in base])[:, None].expand(-1, 4).flatten()[order]
    extra["rotation"] = k.flatten()[order]
    return ImageSet(
        name,
        rot.flatten(0, 1)[order],
        new_labels[order],
        tuple(f"{c}/rot{r:03d}" for c in names for r in ROTATIONS),
        groups.repeat_interleave(4),
        tuple(g for s in base for g in s.group_names),
        extra,
    )


def load_vinyals(
    data_dir: str | os.PathLike | None = None, image_size: int | None = 28, download: bool = False
) -> dict[str, ImageSet]:
    """{"vinyals": ImageSet} of 1623 x 4 = 6492 classes, 129,840 images (N, 1, S, S), S = image_size
    (None: 28).

    Built from `load_omniglot(data_dir, image_size)` (background then evaluation), rotated, and cached.
    """
    size = 28 if image_size is None else store.check_image_size(image_size)
    paths = store.require_files("omniglot", data_dir, OMNIGLOT_FILES, allow_download=download)
    key = {**store.sources_key("omniglot-vinyals", paths), "image_size": size}

    def build() -> dict[str, ImageSet]:
        omni = load_omniglot(data_dir, size, download)
        return {"vinyals": rotate_set([omni["background"], omni["evaluation"]])}

    return store.cached(key, build, name=f"vinyals{size}")


def verify(data_dir: str | os.PathLike | None = None) -> store.VerifyReport:
    """Check the split files that are present (official sha256) and the part sizes; says what was used. The
    rotated sets that have a cache file (`store.cached_sizes`) are built again from the Omniglot zips (when
    they are there; the omniglot check reports them) and compared with it: a cache file that differs is
    rewritten and the detail says so."""
    data_dir, reason = store.resolve_data_dir(data_dir)
    folder = Path(data_dir) / "omniglot" / "splits" / "vinyals"
    try:
        lines, source = read_split_lines(data_dir)
    except ValueError as e:
        return store.VerifyReport("omniglot-vinyals", True, False, folder, detail=str(e))
    files = [p for p in PARTS if source[p] != "built-in definition"]
    builtin = [p for p in PARTS if p not in files]
    check = f"split sizes {', '.join(f'{p} {len(lines[p])}' for p in PARTS)}"
    if files:
        check += f"; official sha256 of {', '.join(p + '.txt' for p in files)}"
    detail = ""
    if builtin:
        detail = (
            f"{', '.join(p + '.txt' for p in builtin)} not found: built-in definition used (its test and val "
            "reproduce the official files' sha256)"
        )
    counts = {f"{p} classes": len(lines[p]) for p in PARTS}
    try:
        paths = store.require_files("omniglot", data_dir, OMNIGLOT_FILES, reason=reason)
    except store.DatasetMissingError:
        paths = None  # no zips, no rotated sets to check
    if paths is not None:
        try:
            with store.from_source() as rebuilt:
                for size in store.cached_sizes("vinyals", store.sources_key("omniglot-vinyals", paths)):
                    load_vinyals(data_dir, size)
        except ValueError as e:
            return store.VerifyReport("omniglot-vinyals", True, False, folder, counts, detail=str(e))
        detail = "; ".join(d for d in (detail, store.rebuilt_note(rebuilt)) if d)
    return store.VerifyReport("omniglot-vinyals", True, True, folder, counts, check, detail)
