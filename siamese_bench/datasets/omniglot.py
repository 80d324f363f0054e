"""Omniglot, read straight from images_background.zip / images_evaluation.zip (no extraction).

Inside: `OMNIGLOT_FILES` (official URLs and md5s), `EXPECTED` (alphabet / character / image counts),
`decode_png(data)` (PNG bytes -> (H, W) uint8 with ink 255, background 0), `read_omniglot_zip(path, subset)`
(any zip in the official layout `images_<subset>/<Alphabet>/characterNN/XXXX_YY.png` -> ImageSet),
`check_structure(s, subset)`, `load_omniglot(data_dir=None, image_size=None, download=False)` ->
{"background": ImageSet (19280, 1, S, S), "evaluation": ImageSet (13180, 1, S, S)} (decoded once, then
cached),
and `verify(data_dir)` (official md5, else the structure check on a fresh decode; says which passed, and
when the tensor cache, full-size or resized, was damaged and rebuilt).

Class names are "Alphabet/characterNN", groups are alphabets, extra = {"drawer": YY-1, "char_id": XXXX};
images are sorted by (alphabet, character, drawer).
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from siamese_bench.datasets import store
from siamese_bench.datasets.imageset import ImageSet

BASE_URL = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python/"
OFFICIAL_MD5 = {
    "images_background.zip": "68d2efa1b9178cc56df9314c21c6e718",
    "images_evaluation.zip": "6b91aef0f799c5bb55b94e3f2daec811",
}
SUBSETS = ("background", "evaluation")
OMNIGLOT_FILES = tuple(store.RemoteFile(n, (BASE_URL + n,), md5=m) for n, m in OFFICIAL_MD5.items())

# subset -> (alphabets, characters, images); every character has 20 drawings of 105x105
EXPECTED = {"background": (30, 964, 19280), "evaluation": (20, 659, 13180)}
DRAWERS = 20
SIZE = 105

_ADDRESS = re.compile(r" ?<[^<>]* at 0x[0-9a-fA-F]+>")
_PATH = re.compile(
    r"^images_(?P<subset>\w+)/(?P<alphabet>[^/]+)/character(?P<char>\d+)/(?P<id>\d+)_(?P<drawer>\d+)\.png$"
)


def decode_png(data: bytes, source: str, invert: bool = True, fetch_name: str = "omniglot") -> np.ndarray:
    """PNG bytes -> (H, W) uint8 grayscale; `invert` makes dark ink bright (255 - L). Errors name `source`
    and say to replace the archive (`data fetch <fetch_name>`)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            gray = np.asarray(im.convert("L"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        why = _ADDRESS.sub("", str(e))  # PIL names the BytesIO by its memory address: noise to the user
        raise ValueError(
            f"{source}: not a readable PNG ({why}); replace the archive (`{store.FETCH_HINT} {fetch_name}`, "
            "or copy it again)"
        ) from e
    return 255 - gray if invert else gray


def _macos_metadata(name: str) -> bool:
    """True for what macOS adds to a zip it writes: `__MACOSX/...` and `._<name>` (AppleDouble) entries."""
    return name.startswith("__MACOSX/") or name.rpartition("/")[2].startswith("._")


def read_omniglot_zip(path: str | os.PathLike, subset: str) -> ImageSet:
    """Decode every `images_<subset>/<Alphabet>/characterNN/XXXX_YY.png` in the zip into one ImageSet.

    images (N, 1, H, W) uint8 inverted (ink 255); order sorted by (alphabet, character, drawer). Entries that
    are not PNG files are skipped, and so is the metadata macOS adds when it re-zips the archive (`__MACOSX/`,
    `._<name>` AppleDouble files). Raises ValueError naming the first file that is off-pattern, unreadable or
    of a different size than the rest.
    """
    path = Path(path)
    entries = []
    try:
        zf = zipfile.ZipFile(path)
    except PermissionError as e:
        raise ValueError(store.cannot_read(path, e)) from e
    except (zipfile.BadZipFile, OSError) as e:
        raise ValueError(
            f"{path}: not a readable zip archive ({e}); replace it (`{store.FETCH_HINT} omniglot`)"
        ) from e
    with zf:
        for info in zf.infolist():
            if info.is_dir() or not info.filename.endswith(".png") or _macos_metadata(info.filename):
                continue
            m = _PATH.match(info.filename)
            if m is None or m["subset"] != subset:
                raise ValueError(
                    f"{path}: unexpected entry {info.filename!r}; expected "
                    f"images_{subset}/<Alphabet>/characterNN/XXXX_YY.png"
                )
            entries.append((m["alphabet"], int(m["char"]), int(m["drawer"]), int(m["id"]), info.filename))
        if not entries:
            raise ValueError(f"{path}: no images_{subset}/.../*.png entries")
        entries.sort()

        def read(name: str) -> bytes:
            return store.read_zip_entry(zf, path, name, "omniglot")

        first = decode_png(read(entries[0][4]), f"{path}:{entries[0][4]}")
        images = np.empty((len(entries), 1, *first.shape), dtype=np.uint8)
        for i, e in enumerate(entries):
            img = first if i == 0 else decode_png(read(e[4]), f"{path}:{e[4]}")
            if img.shape != first.shape:
                raise ValueError(
                    f"{path}:{e[4]}: size {img.shape} differs from {first.shape} of {entries[0][4]}"
                )
            images[i, 0] = img
    class_keys = sorted({(a, c) for a, c, *_ in entries})
    class_of = {k: i for i, k in enumerate(class_keys)}
    alphabets = sorted({a for a, _ in class_keys})
    alpha_of = {a: i for i, a in enumerate(alphabets)}
    return ImageSet(
        f"omniglot-{subset}",
        torch.from_numpy(images),
        torch.tensor([class_of[(a, c)] for a, c, *_ in entries], dtype=torch.int64),
        tuple(f"{a}/character{c:02d}" for a, c in class_keys),
        torch.tensor([alpha_of[a] for a, _ in class_keys], dtype=torch.int64),
        tuple(alphabets),
        {
            "drawer": torch.tensor([d - 1 for _, _, d, _, _ in entries], dtype=torch.int64),
            "char_id": torch.tensor([i for _, _, _, i, _ in entries], dtype=torch.int64),
        },
    )


def check_structure(s: ImageSet, subset: str) -> str | None:
    """None when `s` has the official structure of `subset`, else what differs."""
    n_alpha, n_char, n_img = EXPECTED[subset]
    problems = []
    if (len(s.group_names), s.num_classes, len(s)) != (n_alpha, n_char, n_img):
        problems.append(
            f"{len(s.group_names)} alphabets / {s.num_classes} characters / {len(s)} images, "
            f"expected {n_alpha} / {n_char} / {n_img}"
        )
    per_class = torch.bincount(s.labels, minlength=s.num_classes)
    if s.num_classes and not bool((per_class == DRAWERS).all()):
        bad = int((per_class != DRAWERS).nonzero()[0])
        problems.append(f"{s.class_names[bad]} has {int(per_class[bad])} drawings, expected {DRAWERS}")
    if s.image_shape != (1, SIZE, SIZE):
        problems.append(f"image shape {s.image_shape}, expected (1, {SIZE}, {SIZE})")
    return "; ".join(problems) or None


def _structure_label(subset: str) -> str:
    a, c, n = EXPECTED[subset]
    return f"structure: {a} alphabets, {c} characters, {DRAWERS} drawings each ({n:,} images), {SIZE}x{SIZE}"


def _build(paths: dict[str, Path]) -> dict[str, ImageSet]:
    out = {}
    for subset in SUBSETS:
        s = read_omniglot_zip(paths[f"images_{subset}.zip"], subset)
        problem = check_structure(s, subset)
        if problem is not None:
            raise ValueError(
                f"{paths[f'images_{subset}.zip']}: not the official Omniglot {subset} set: {problem}. "
                f"Replace it with the official archive (`{store.FETCH_HINT} omniglot`)"
            )
        out[subset] = s
    return out


def load_omniglot(
    data_dir: str | os.PathLike | None = None, image_size: int | None = None, download: bool = False
) -> dict[str, ImageSet]:
    """{"background": (19280, 1, S, S), "evaluation": (13180, 1, S, S)} uint8 ImageSets, S = image_size
    or 105.

    Decodes the 32,460 PNGs once (a few seconds) and caches the tensors (store.cached); later loads are
    memory-mapped reads. Raises DatasetMissingError when the zips are missing (unless `download`).
    """
    size = store.check_image_size(image_size)
    paths = store.require_files("omniglot", data_dir, OMNIGLOT_FILES, allow_download=download)
    key = store.sources_key("omniglot", paths)
    full = store.cached(key, lambda: _build(paths), name="omniglot")
    if size is None or size == SIZE:
        return full
    return store.cached(
        {**key, "image_size": size},
        lambda: {k: store.resize_set(s, size) for k, s in full.items()},
        name=f"omniglot{size}",
    )


def verify(data_dir: str | os.PathLike | None = None) -> store.VerifyReport:
    """Official md5 of both zips, else the structure check on the sets decoded from the zips (not read from
    the tensor cache); the resized sets that have a cache file (`store.cached_sizes`) are resized from them: a
    cache file that differs is rewritten and the detail says so."""
    data_dir, reason = store.resolve_data_dir(data_dir)
    try:
        paths = store.require_files("omniglot", data_dir, OMNIGLOT_FILES, reason=reason)
    except store.DatasetMissingError as e:
        return store.VerifyReport("omniglot", False, False, data_dir / "omniglot", detail=str(e))
    folder = paths["images_background.zip"].parent
    try:
        with store.from_source() as rebuilt:
            sets = load_omniglot(data_dir)
            for size in store.cached_sizes("omniglot", store.sources_key("omniglot", paths)):
                load_omniglot(data_dir, size)  # resized from the sets just decoded, compared with its file
    except ValueError as e:
        return store.VerifyReport("omniglot", True, False, folder, detail=str(e))
    counts = {}
    for k, s in sets.items():
        counts.update(
            {f"{k} alphabets": len(s.group_names), f"{k} characters": s.num_classes, f"{k} images": len(s)}
        )
    if all(store.md5_file(p) == OFFICIAL_MD5[n] for n, p in paths.items()):
        check = "official md5 of images_background.zip and images_evaluation.zip"
    else:
        check = (
            "; ".join(_structure_label(k) for k in SUBSETS)
            + " (archives re-packed: md5 is not the official one)"
        )
    return store.VerifyReport("omniglot", True, True, folder, counts, check, store.rebuilt_note(rebuilt))
