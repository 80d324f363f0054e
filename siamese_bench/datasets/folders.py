"""Users' own images as an ImageSet: a folder tree or a pandas DataFrame of paths and labels.

Inside:
- `load_folder(root, image_size=None, channels=None, invert=False)`: `root/<class>/<image>` or, detected when
  every subfolder holds only folders, `root/<group>/<class>/<image>` (class names "group/class").
- `list_folder(root)`: the same tree as (group, class, path) items, checked but not decoded.
- `load_dataframe(df, path_col="path", label_col="label", group_col=None, image_size=None, channels=None,
  invert=False, root=None, source=None)`: one row per image; relative paths are taken from `root` (default: the
  cwd); `source` (the CSV it came from) is named in errors.
- `list_dataframe(df, ...)`: its rows as (group, class, path) items, checked but not decoded.
- `load_images(paths, ...)`: decode files into (N, C, H, W) uint8.

Images are kept as they are (no ink inversion unless `invert=True`), upright: a JPEG's (or TIFF's, PNG's, WebP's)
EXIF Orientation tag is applied, as image viewers do (phone photos are stored sideways plus that tag). Each file
becomes 8-bit pixels, one file open at a time, by its PIL mode:
- "1", "L": grayscale as is ("1" as 0/255); "RGB": colour as is.
- "I;16*" (16-bit PNG/TIFF): grayscale, value >> 8 (65535 -> 255, v * 257 -> v). "I" (32-bit int): clipped to
  0..65535, then >> 8. "F" (float): grayscale; values scaled by 255 when every pixel is within 0..1, else
  clipped to 0..255; rounded. NaN or infinite pixels are an error naming the file.
- "LA", "RGBA", "PA", and "P", "1", "L", "I;16*", "I" or "RGB" with a transparent colour (a PNG's tRNS key:
  alpha 0 where a pixel's stored value is the key, else 255): composited onto a white background (alpha 0 ->
  255, out = (c * a + 255 * (255 - a)) / 255 rounded); "LA", "1", "L", "I;16*" and "I" are grayscale, "RGBA"
  and "RGB" colour, but for a 16-bit grayscale + alpha PNG (which PIL opens as "RGBA"): grayscale.
- "P" (every GIF) and "PA": grayscale when every pixel's palette colour is gray (R == G == B), else colour.
- any other mode ("CMYK", "YCbCr", ...): PIL's convert("RGB"), colour.
channels: 1 when every image is grayscale by that rule, else 3 (grayscale images repeated on R, G, B), or
forced with `channels=1|3` (colour to gray with PIL's convert("L")). image_size resizes every image
to (image_size, image_size) (antialiased bilinear, aspect not kept); without it all images must share a size.
It is None or an int >= 1, as in every loader (store.py `check_image_size`: 14.5, True or "14" are refused).
Group, class and file names are read in Unicode NFC (`nfc`): the same folder written by macOS (names
decomposed) or Linux gives the same classes in the same order; two names in one folder that differ only in
that form are an error. A DataFrame's label and group cells are read stripped of surrounding white space and in
NFC, so cells that print alike ("c0" and "c0 ", an accent composed or not) are one class.
Hidden files (".DS_Store", ...) are skipped, and so is OS junk by exactly these names: "__MACOSX" (macOS zip
archives), "@eaDir" (Synology thumbnails), "Thumbs.db" and "desktop.ini" (Windows; in any case). Any other file
that is not an image is an error naming it, and so are broken links and two links to one file.
DataFrame (and CSV) cells that are blank in the path, label or group column are an error giving the rows, and so
is a path that is a folder; in a DataFrame, a float label or group column whose values are all whole numbers is
read as int (class "3", not "3.0"); a CSV's cells are text (own.py: "01" and "1" are two classes).
"""

from __future__ import annotations

import itertools
import os
import unicodedata
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from siamese_bench.datasets import store
from siamese_bench.datasets.imageset import ImageSet

GRAY_MODES = ("L", "1")  # grayscale by mode; see the module docstring for every other mode
_WHITE = 255


# OS junk skipped like hidden files (module docstring): macOS archives' and Synology's folders, Windows' files
_JUNK = ("__MACOSX", "@eaDir")
_WINDOWS_JUNK = ("thumbs.db", "desktop.ini")  # any case


def nfc(name: str) -> str:
    """`name` in Unicode normalization form C (accents composed). macOS writes file names decomposed (NFD), Linux
    and Windows as typed (mostly composed): one image folder copied between them keeps its class names, their
    order and its split hash."""
    return unicodedata.normalize("NFC", name)


def _visible(folder: Path) -> list[Path]:
    """The entries of `folder` but hidden files and OS junk, sorted by their names in NFC; two names that
    differ only in their Unicode form are an error (they would be one class, or have no stable order)."""
    entries = sorted(
        (
            p
            for p in folder.iterdir()
            if not (p.name.startswith(".") or p.name in _JUNK or p.name.lower() in _WINDOWS_JUNK)
        ),
        key=lambda p: (nfc(p.name), p.name),
    )
    for a, b in itertools.pairwise(entries):
        if nfc(a.name) == nfc(b.name):
            raise ValueError(
                f"{folder}: {ascii(a.name)} and {ascii(b.name)} are one name written in two Unicode forms (accents "
                "composed and decomposed); rename one of them"
            )
    return entries


class _BadPixels(ValueError):
    """A readable image whose pixels cannot be turned into 8 bits; the message names the file."""


def _on_white(a: np.ndarray) -> np.ndarray:
    """(H, W, C + 1) uint8 with alpha last -> (H, W, C) uint8 composited onto white, rounded."""
    c = a[..., :-1].astype(np.uint32)
    alpha = a[..., -1:].astype(np.uint32)
    return ((c * alpha + _WHITE * (255 - alpha) + 127) // 255).astype(np.uint8)


def _keyed_on_white(pixels: np.ndarray, stored: np.ndarray, key: object) -> np.ndarray:
    """`pixels` ((H, W) or (H, W, 3) uint8) composited onto white with alpha 0 where `stored` (the file's
    values, (H, W) or (H, W, 3)) equals the transparent colour `key` (an int, or (R, G, B)), else 255; as is
    when `key` is not one."""
    colour = stored.ndim == 3
    if colour and not (isinstance(key, tuple) and len(key) == 3 and all(isinstance(k, int) for k in key)):
        return pixels
    if not colour and not isinstance(key, int):
        return pixels
    clear = (stored == np.asarray(key)).all(axis=-1) if colour else stored == key
    alpha = np.where(clear, 0, 255).astype(np.uint8)
    return _on_white(np.dstack([pixels, alpha])).reshape(pixels.shape)


def _pixels(im: Image.Image, path: Path, gray_alpha: bool = False) -> tuple[np.ndarray, bool]:
    """(pixels, grayscale): (H, W) uint8 for a grayscale image, else (H, W, 3) uint8 RGB (rules: module
    docstring). gray_alpha: an "RGBA" image that the file stores as grayscale + alpha (16-bit PNG)."""
    mode = im.mode
    key = im.info.get("transparency")  # a transparent colour (palette images: handled below)
    if mode in GRAY_MODES:
        gray = np.asarray(im.convert("L"), dtype=np.uint8)  # "1" as 0/255, as its key
        return (gray if key is None else _keyed_on_white(gray, gray, key)), True
    if mode == "RGB":
        rgb = np.asarray(im, dtype=np.uint8)
        return (rgb if key is None else _keyed_on_white(rgb, rgb, key)), False
    if mode.startswith("I;16") or mode == "I":
        stored = np.asarray(im).astype(np.int64)
        gray = (np.clip(stored, 0, 65535) >> 8).astype(np.uint8)
        return (gray if key is None else _keyed_on_white(gray, stored, key)), True
    if mode == "F":
        a = np.asarray(im, dtype=np.float64)
        if not np.isfinite(a).all():
            raise _BadPixels(
                f"{path}: float image (mode F) has NaN or infinite pixels; save it as 8- or 16-bit instead"
            )
        if a.size and a.min() >= 0 and a.max() <= 1:
            a = a * 255
        return np.rint(np.clip(a, 0, 255)).astype(np.uint8), True
    if mode in ("LA", "La"):
        return _on_white(np.asarray(im.convert("LA"), dtype=np.uint8))[..., 0], True
    if mode in ("RGBA", "RGBa", "PA") or (mode == "P" and "transparency" in im.info):
        rgb = _on_white(np.asarray(im.convert("RGBA"), dtype=np.uint8))
        if gray_alpha:
            return np.ascontiguousarray(rgb[..., 0]), True
    else:
        rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
    if mode in ("P", "PA") and (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
        return np.ascontiguousarray(rgb[..., 0]), True
    return rgb, False


_ORIENTATION = 0x0112  # the EXIF Orientation tag: 1 = upright, 2-8 = mirrored and/or turned


def _upright(im: Image.Image) -> Image.Image:
    """`im` as image viewers show it: turned and mirrored as its EXIF Orientation tag says (phone cameras store
    the pixels as the sensor read them, plus this tag). An unreadable EXIF block counts as no tag, as in viewers."""
    try:
        orientation = im.getexif().get(_ORIENTATION, 1)
    except Exception:  # a damaged EXIF block: Pillow raises various errors; the pixels are still fine
        return im
    return im if orientation == 1 else ImageOps.exif_transpose(im)


def _decode(path: Path) -> tuple[np.ndarray, bool]:
    """`_pixels` of one file, opened and closed here (never more than one image file open)."""
    if not path.exists():
        raise ValueError(f"{path}: no such file")
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not an image file")
    try:
        with Image.open(path) as im:
            # PIL opens a 16-bit grayscale + alpha PNG as "RGBA" (R = G = B); its raw mode still says what it is
            gray_alpha = im.mode == "RGBA" and bool(im.tile) and str(im.tile[0][3]).startswith("LA")
            im.load()
            return _pixels(_upright(im), path, gray_alpha)
    except _BadPixels:
        raise
    except Image.DecompressionBombError as e:
        raise ValueError(f"{path}: too large to decode ({e}); make it smaller, or remove it") from e
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise ValueError(
            f"{path}: not a readable image ({type(e).__name__}: {e}); remove it or fix it"
        ) from e


def _to_gray(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb, "RGB").convert("L"), dtype=np.uint8)


def load_images(
    paths: Sequence[str | os.PathLike],
    image_size: int | None = None,
    channels: int | None = None,
    invert: bool = False,
) -> torch.Tensor:
    """(N, C, H, W) uint8 from image files, decoded one file at a time; errors name the file (unreadable)
    or two sizes (mixed sizes). Pixel and channel rules: module docstring."""
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1 (grayscale), 3 (RGB) or None (auto), got {channels!r}")
    size = store.check_image_size(image_size)  # 14.5, True, "14": refused, not truncated to 14 or 1
    paths = [Path(p) for p in paths]
    decoded = []  # (H, W) grayscale or (H, W, 3) colour
    for path in paths:
        a, gray = _decode(path)
        decoded.append(_to_gray(a) if channels == 1 and not gray else a)
    if channels is None:
        channels = 1 if all(a.ndim == 2 for a in decoded) else 3
    arrays = []
    for a in decoded:
        if a.ndim == 2:
            a = a[None] if channels == 1 else np.repeat(a[None], 3, axis=0)
        else:
            a = a.transpose(2, 0, 1)
        arrays.append(a)
    del decoded
    sizes: dict[tuple[int, int], Path] = {}
    for path, a in zip(paths, arrays, strict=True):
        sizes.setdefault(a.shape[1:], path)
    if size is None and len(sizes) > 1:
        (s1, p1), (s2, p2) = list(sizes.items())[:2]
        raise ValueError(
            f"images have different sizes, e.g. {s1[1]}x{s1[0]} ({p1}) and {s2[1]}x{s2[0]} ({p2}); "
            "pass image_size to resize them all to one square size"
        )
    if size is None:
        out = torch.from_numpy(np.stack(arrays))
    else:
        try:
            out = torch.empty((len(arrays), channels, size, size), dtype=torch.uint8)
            for shape in sizes:  # one batched resize per distinct source size
                idx = [i for i, a in enumerate(arrays) if a.shape[1:] == shape]
                out[idx] = store.resize_images(torch.from_numpy(np.stack([arrays[i] for i in idx])), size)
        except RuntimeError as e:  # the allocator: "can't allocate memory"
            raise ValueError(
                f"{len(arrays)} images at {size}x{size} do not fit in memory ({type(e).__name__}: {e}); use a "
                "smaller image_size (@SIZE)"
            ) from e
    return 255 - out if invert else out


def _build(name: str, items: list[tuple[str, str, Path]], image_size, channels, invert) -> ImageSet:
    """items: (group, class, path) sorted; classes named as given."""
    classes = sorted({(g, c) for g, c, _ in items})
    class_id = {k: i for i, k in enumerate(classes)}
    group_names = sorted({g for g, _ in classes})
    group_id = {g: i for i, g in enumerate(group_names)}
    images = load_images([p for _, _, p in items], image_size, channels, invert)
    return ImageSet(
        name,
        images,
        torch.tensor([class_id[(g, c)] for g, c, _ in items], dtype=torch.int64),
        tuple(c for _, c in classes),
        torch.tensor([group_id[g] for g, _ in classes], dtype=torch.int64),
        tuple(group_names),
    )


def load_folder(
    root: str | os.PathLike, image_size: int | None = None, channels: int | None = None, invert: bool = False
) -> ImageSet:
    """ImageSet of `root/<class>/*` (one group "all") or `root/<group>/<class>/*` (class "group/class").

    Raises FileNotFoundError for a missing root; ValueError for an empty root or class folder, a file where
    a class folder should be, folders mixing both layouts, unreadable images, mixed sizes without image_size.
    """
    root = Path(root)
    image_size = store.check_image_size(image_size)  # before listing the folder
    return _build(root.name, list_folder(root), image_size, channels, invert)


def list_folder(root: str | os.PathLike) -> list[tuple[str, str, Path]]:
    """The images of a class-folder tree, without decoding them: (group, class, path) sorted by class then
    file name; group "all" for root/<class>/<image>. The same checks and errors as `load_folder`."""
    root = Path(root)
    if not root.is_dir():
        if root.is_file():
            hint = (
                f"; a CSV of path,label rows is written csv:{root}" if root.suffix.lower() == ".csv" else ""
            )
            raise ValueError(f"{root} is a file; folder:PATH takes a folder of class folders{hint}")
        raise FileNotFoundError(f"image folder {root} does not exist (or is not a folder)")
    subs = _visible(root)
    if not subs:
        raise ValueError(f"{root} is empty; expected one folder per class (root/<class>/<image>)")
    _no_broken_links(subs)
    stray = [p for p in subs if not p.is_dir()]
    if stray:
        raise ValueError(f"{stray[0]} is a file; {root} must hold only class folders (root/<class>/<image>)")
    children = {p: _visible(p) for p in subs}
    for entries in children.values():
        _no_broken_links(entries)
    kinds = {p: {q.is_dir() for q in entries} for p, entries in children.items()}
    empty = [p for p, k in kinds.items() if not k]
    if empty:
        raise ValueError(f"class folder {empty[0]} is empty; add images or remove it")
    both = next((p for p, k in kinds.items() if k == {True, False}), None)
    if both is not None:
        folder = next(q for q in children[both] if q.is_dir())
        file = next(q for q in children[both] if not q.is_dir())
        raise ValueError(
            f"{both} holds both a folder ({folder.name}) and a file ({file.name}); a folder holds either class "
            "folders or images (root/<class>/<image> or root/<group>/<class>/<image>): move or remove one"
        )
    two_levels = all(k == {True} for k in kinds.values())
    if not two_levels and any(True in k for k in kinds.values()):
        nested = next(p for p, k in kinds.items() if True in k)
        raise ValueError(
            f"{nested} holds folders while other class folders hold images; use root/<class>/<image> or "
            "root/<group>/<class>/<image> throughout"
        )
    items: list[tuple[str, str, Path]] = []
    if two_levels:
        for g in subs:
            for c in children[g]:
                files = _visible(c) if c.is_dir() else None
                if files is None:
                    raise ValueError(f"{c} is a file; group folder {g} must hold only class folders")
                if not files:
                    raise ValueError(f"class folder {c} is empty; add images or remove it")
                deeper = [f for f in files if f.is_dir()]
                if deeper:
                    raise ValueError(
                        f"{deeper[0]} is a folder inside class folder {c}: three levels of folders; use "
                        "root/<class>/<image> or root/<group>/<class>/<image>"
                    )
                _no_broken_links(files)
                items += [(nfc(g.name), nfc(f"{g.name}/{c.name}"), f) for f in files]
    else:  # the class folders' files, listed and link-checked above
        items = [("all", nfc(c.name), f) for c in subs for f in children[c]]
    # links to one file: a copy would be its own query's support, or its class's twin
    first: dict[Path, Path] = {}
    for _, _, f in items:
        seen = first.setdefault(f.resolve(), f)
        if seen != f:
            raise ValueError(
                f"{seen} and {f} are one image file (through a link); keep each image once, in one class folder"
            )
    return items


def _no_broken_links(paths: list[Path]) -> None:
    broken = [p for p in paths if not p.exists()]
    if broken:
        raise ValueError(f"{broken[0]} is a broken link (to {os.readlink(broken[0])}); fix or remove it")


def load_dataframe(
    df,
    path_col: str = "path",
    label_col: str = "label",
    group_col: str | None = None,
    image_size: int | None = None,
    channels: int | None = None,
    invert: bool = False,
    root: str | os.PathLike | None = None,
    name: str = "dataframe",
    source: str | os.PathLike | None = None,
) -> ImageSet:
    """ImageSet from a DataFrame with one row per image: `path_col` (file), `label_col` (class; str() of it
    is the class name) and optionally `group_col` (one group per class). Classes sorted by label value.
    `source`: the CSV file the DataFrame was read from, named in errors. Blank path, label or group cells
    are a ValueError giving their rows (counted from 1, header not counted); anything but a DataFrame is a
    TypeError."""
    image_size = store.check_image_size(image_size)  # before checking the rows
    items, ordered = _dataframe_items(df, path_col, label_col, group_col, root, source)
    names = [str(v) for v in ordered]
    group_of = {c: g for g, c, _ in items}
    group_names = sorted(set(group_of.values()))
    rank = {n: i for i, n in enumerate(names)}
    images = load_images([p for _, _, p in items], image_size, channels, invert)
    return ImageSet(
        name,
        images,
        torch.tensor([rank[c] for _, c, _ in items], dtype=torch.int64),
        tuple(names),
        torch.tensor([group_names.index(group_of[n]) for n in names], dtype=torch.int64),
        tuple(group_names),
    )


def list_dataframe(
    df,
    path_col: str = "path",
    label_col: str = "label",
    group_col: str | None = None,
    root: str | os.PathLike | None = None,
    source: str | os.PathLike | None = None,
) -> list[tuple[str, str, Path]]:
    """The images of a DataFrame as (group, class name, path) items in row order, checked (columns, blank
    cells, files, one group per class) but not decoded; group "all" without `group_col`. The errors of
    `load_dataframe`."""
    return _dataframe_items(df, path_col, label_col, group_col, root, source)[0]


def _blank_rows(column) -> list[int]:
    """Rows (counted from 1) whose cell is missing (NaN, None) or an empty / whitespace-only string."""
    blank = column.isna() | column.map(lambda v: isinstance(v, str) and not v.strip()).astype(bool)
    return [i + 1 for i, b in enumerate(blank.tolist()) if b]


def _whole_floats_as_int(column):
    """A float column whose values are all whole numbers as int64 (labels 3.0 -> class "3"), else as is."""
    if column.dtype.kind != "f":
        return column
    values = column.to_numpy(dtype=float)
    if (values == np.round(values)).all() and (np.abs(values) < 2**53).all():
        return column.astype("int64")
    return column


def _names(values: list) -> list:
    """`values` with every string stripped of surrounding white space and in NFC (`nfc`): cells that print
    alike ("c0" and "c0 "; an accent composed or not) name one class or group."""
    return [nfc(v.strip()) if isinstance(v, str) else v for v in values]


def _dataframe_items(
    df, path_col, label_col, group_col, root, source=None
) -> tuple[list[tuple[str, str, Path]], list]:
    """(items in row order, labels sorted by value)."""
    import pandas as pd

    wanted = [c for c in (path_col, label_col, group_col) if c is not None]
    if not isinstance(df, pd.DataFrame):
        raise TypeError(
            f"expected a pandas DataFrame with columns {', '.join(map(repr, wanted))} (one row per image), got "
            f"a {type(df).__name__}; pandas.DataFrame(...) makes one"
        )
    where = f"CSV file {source}" if source is not None else "DataFrame"
    missing = [c for c in wanted if c not in df.columns]
    if missing:
        raise ValueError(f"{where} is missing column(s) {missing}; it has {list(df.columns)}")
    if len(df) == 0:
        raise ValueError(f"{where} has no rows")
    for col in wanted:
        rows = _blank_rows(df[col])
        if rows:
            shown = ", ".join(map(str, rows[:10])) + (
                f", ... ({len(rows)} rows in all)" if len(rows) > 10 else ""
            )
            raise ValueError(
                f"{where}: blank {col!r} in row(s) {shown} (data rows counted from 1, header not counted); "
                "fill them in or remove those rows"
            )
    base = Path(root) if root is not None else Path.cwd()
    paths = [Path(p) if Path(p).is_absolute() else base / p for p in df[path_col].astype(str)]
    dirs = [(row, p) for row, p in enumerate(paths, 1) if p.is_dir()]
    if dirs:
        more = f" ({len(dirs)} rows in all)" if len(dirs) > 1 else ""
        raise ValueError(
            f"{where}: row {dirs[0][0]} (data rows counted from 1): {dirs[0][1]} is a folder, not an image "
            f"file{more}; list one image file per row"
        )
    absent = [(row, p) for row, p in enumerate(paths, 1) if not p.is_file()]
    if absent:
        row, p = absent[0]
        raise FileNotFoundError(
            f"{where}: {len(absent)} image file(s) not found, e.g. row {row} (data rows counted from 1): "
            f"{str(p)!r}"
        )
    first: dict[Path, int] = {}
    for row, p in enumerate(paths, 1):
        seen = first.setdefault(p.resolve(), row)
        if seen != row:  # a copy would be its own query's support (or a class of its own twin)
            labels = df[label_col].tolist()
            raise ValueError(
                f"{where}: rows {seen} and {row} list the same image file {p} (labels {labels[seen - 1]!r} "
                f"and {labels[row - 1]!r}; data rows counted from 1); list each image once, under one label"
            )
    labels = _names(_whole_floats_as_int(df[label_col]).tolist())
    try:
        ordered = sorted(set(labels))
    except TypeError:
        ordered = sorted(set(labels), key=str)
    names = [str(v) for v in ordered]
    if len(set(names)) != len(names):
        raise ValueError(f"labels {ordered} collide as class names {names}")
    if group_col is None:
        groups = ["all"] * len(df)
    else:
        groups = _names([str(g) for g in _whole_floats_as_int(df[group_col]).tolist()])
        seen: dict[str, str] = {}
        for lab, g in zip(labels, groups, strict=True):
            if seen.setdefault(str(lab), g) != g:
                raise ValueError(
                    f"class {lab!r} is in two groups ({seen[str(lab)]!r} and {g!r}); a class needs one"
                )
    items = [(g, str(lab), p) for g, lab, p in zip(groups, labels, paths, strict=True)]
    return items, ordered
