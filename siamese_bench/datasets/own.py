"""Your own images as a dataset name: "folder:PATH" (class folders) or "csv:FILE" (path,label[,group] rows).

    parse("folder:imgs@64") -> ("folder", Path("imgs"), 64)
    list_images("csv", Path("labels.csv"))  -> [(group, class, file), ...]  (checked, not decoded)
    load_own("folder:/abs/imgs", 28)        -> ImageSet (decoded once, then from the tensor cache)

folder: PATH/<class>/<image> or PATH/<group>/<class>/<image> (folders.py `list_folder`). csv: the columns `path`
and `label` and optionally `group` (one group per class), one row per image; relative paths are taken from the
CSV's folder (folders.py `list_dataframe`); cells are text, so labels "01" and "1" are two classes and "3.0" is
class "3.0" (labels all written as plain integers keep their numeric order: 2 before 10). Images are resized to
SIZE x SIZE (default 28), grayscale when every image is, else RGB. The cache key holds every file's path and
sha256 (and the CSV's), so a changed, added or removed image rebuilds it, also one rewritten with its old size
and modification time (`cp -p`, `rsync -t`); the checksums are the ones the split's `images_digest` computes.
protocols/folder.py builds the one-shot protocol on top.
"""

from __future__ import annotations

from pathlib import Path

from siamese_bench.datasets import store
from siamese_bench.datasets.folders import list_dataframe, list_folder, load_dataframe, load_folder
from siamese_bench.datasets.imageset import ImageSet
from siamese_bench.results import file_stem

PREFIX = "folder:"
CSV_PREFIX = "csv:"
PREFIXES = (PREFIX, CSV_PREFIX)
DEFAULT_SIZE = 28


def is_own(name: str) -> bool:
    """True for 'folder:...' and 'csv:...' protocol names."""
    return name.startswith(PREFIXES)


def parse(spec: str) -> tuple[str, Path, int]:
    """'folder:PATH[@SIZE]' or 'csv:FILE[@SIZE]' -> (kind "folder" | "csv", path, size). A trailing
    '@digits' is the size; any other '@' belongs to the path."""
    kind, colon, body = spec.partition(":")
    if not colon or f"{kind}:" not in PREFIXES or not body:
        raise ValueError(
            f"{spec!r}: your own images are written folder:PATH[@SIZE] (class folders) or csv:FILE[@SIZE] "
            "(a CSV of path,label[,group])"
        )
    path, at, size = body.rpartition("@")
    if at and size.isascii() and size.isdigit():
        if int(size) < 4:
            raise ValueError(f"{spec!r}: image size {size} is too small; use @4 or more (the default is 28)")
        return kind, Path(path).expanduser(), int(size)
    return kind, Path(body).expanduser(), DEFAULT_SIZE


def list_images(kind: str, path: Path) -> list[tuple[str, str, Path]]:
    """(group, class, file) items of a folder tree or a CSV file, checked but not decoded."""
    if kind == "folder":
        return list_folder(path)
    df, group = _read_csv(path)
    return list_dataframe(df, "path", "label", group, root=path.parent, source=path)


def _read_csv(path: Path):
    """(DataFrame, "group" or None): the CSV's rows and whether it has a group column. An empty, malformed or
    non-UTF-8 file is a ValueError naming it."""
    if path.is_dir():
        raise ValueError(f"CSV file {path} is a folder; a folder of class folders is written folder:PATH")
    if not path.is_file():
        raise FileNotFoundError(f"CSV file {path} does not exist")
    import pandas as pd

    try:
        # only an empty cell is blank: a class named "NA", "None" or "null" stays a class; cells are read as
        # text, not numbers: labels "01" and "1" (or groups) are two, and a file named 007 is not 7
        df = pd.read_csv(
            path, keep_default_na=False, na_values=[""], dtype=dict.fromkeys(("path", "label", "group"), str)
        )
    except pd.errors.EmptyDataError as e:
        raise ValueError(
            f"CSV file {path} is empty; it needs a header line (path,label[,group]) and one row per image"
        ) from e
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise ValueError(
            f"CSV file {path} cannot be read as CSV ({type(e).__name__}: {e}); it needs comma-separated "
            "UTF-8 text with a header line (path,label[,group]) and one row per image"
        ) from e
    if "label" in df.columns:
        df["label"] = _plain_ints_as_int(df["label"])
    return df, "group" if "group" in df.columns else None


def _plain_ints_as_int(column):
    """Labels all written as plain integers ("3", "-12"; not "03", "+3" or "3.0") as ints, so that classes keep
    their numeric order (2 before 10); else the text as is."""
    text = column.str.strip()
    if column.notna().all() and text.str.fullmatch(r"0|-?[1-9][0-9]*").all():
        return text.map(int)
    return column


# bump when folders.py decodes some image (or names some class) differently: cached folders are then decoded
# again, and the split hash of every folder changes (protocols/folder.py `images_digest`), so that a resume does
# not mix cells of two decodings (2: 16-bit, float, transparent and palette images; before, they were clipped or
# lost their alpha; 3: EXIF orientation applied, names in Unicode NFC (folders.py `nfc`), cache keyed by sha256;
# 4: grayscale and RGB images with a transparent colour key laid onto white, as palette images were; 5: a 16-bit
# grayscale + alpha PNG is grayscale, not RGB)
DECODER_VERSION = 5


def load_own(dataset: str, image_size: int | None) -> ImageSet:
    """The ImageSet of 'folder:PATH' or 'csv:FILE', decoded once, then read from the decoded-tensor cache
    (store.py `cached`)."""
    kind, _, name = dataset.partition(":")
    path = Path(name)
    items = list_images(kind, path)
    key = {
        "decoder": DECODER_VERSION,
        "source": dataset,
        "image_size": image_size,
        "files": [[str(f), store.sha256_file(f)] for _, _, f in items],
    }
    if kind == "csv":
        key["csv_sha256"] = store.sha256_file(path)

    def build() -> dict[str, ImageSet]:
        if kind == "folder":
            return {"all": load_folder(path, image_size=image_size)}
        df, group = _read_csv(path)
        return {
            "all": load_dataframe(
                df, group_col=group, image_size=image_size, root=path.parent, name=path.stem, source=path
            )
        }

    return store.cached(key, build, name=file_stem(f"{kind}-{path.stem}"))["all"]
