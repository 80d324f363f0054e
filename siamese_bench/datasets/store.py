"""Where dataset files live, how they are fetched and checked, and the decoded-tensor cache.

Inside:
- `resolve_data_dir(data_dir)` -> (Path, reason): the explicit argument, else $SIAMESE_BENCH_DATA, else the
  checkout's `data/` folder (when imported from a source tree with a pyproject.toml), else
  ~/.cache/siamese_bench/data. `reason` says which rule chose it (printed by `data verify`);
  `check_data_dir(data_dir, reason)` refuses one that is a file.
- `cache_dir()`: $SIAMESE_BENCH_CACHE, else `<default data dir>/cache` (kept apart from the data dir, which
  may be read-only).
- `sha256_file`, `md5_file` (memoised per process on path, size, mtime, inode and ctime),
  `atomic_write_bytes`, `atomic_torch_save` (temp file in the same folder, fsync, os.replace).
- `RemoteFile`, `download(url, dest, md5=..., sha256=...)`, `require_files(...)`, `DatasetMissingError`,
  `FetchError` (what `fetch` raises, with every dataset's outcome),
  `mismatched(found, files)` (files whose bytes are not the official download's), `read_zip_entry` and
  `cannot_read(path, error)` (the message for a file that cannot be read, e.g. permission denied).
- `cached(key_parts, build, name)`: decoded `ImageSet`s stored as uint8 tensors in one .pt file whose name
  is a hash of the key (source checksums, FORMAT_VERSION, parameters); loaded memory-mapped, memoised per
  process. A normal load checks only that the file loads and holds this key (else it is rebuilt with a
  warning), not the pixel bytes (hashing them would cost more than the load): damaged bytes in a file that
  still loads are served as they are. `from_source()` (used by `data verify`) builds from the source files
  instead, compares with the cache file and rewrites a damaged one (each key once per `from_source()`);
  `sources_key(dataset, paths)`: key parts from the source files' sha256;
  `cached_sizes(name, key_parts)`: the image sizes whose resized cache file is there (what verify checks too).
- `resize_images(images, size)`: (N, C, H, W) uint8 -> (N, C, size, size) uint8, antialiased bilinear;
  `check_image_size(image_size)`: None or an int >= 1 (what every loader takes), else ValueError.
- `VerifyReport` and `format_report(reports)` for `python -m siamese_bench data verify`.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import re
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from siamese_bench.datasets.imageset import ImageSet, as_int
from siamese_bench.results import atomic_write

FORMAT_VERSION = 1  # bump when decoding changes: every cache file keyed by the old value is ignored
ENV_DATA = "SIAMESE_BENCH_DATA"
ENV_CACHE = "SIAMESE_BENCH_CACHE"
FETCH_HINT = "python -m siamese_bench data fetch"


# ----------------------------------------------------------------------------------------------- locations


def default_data_dir() -> tuple[Path, str]:
    """The data directory used when neither an argument nor $SIAMESE_BENCH_DATA names one."""
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file():
        return root / "data", f"default: the checkout's data folder ({root / 'data'})"
    home = Path.home() / ".cache" / "siamese_bench" / "data"
    return home, f"default: the user cache ({home})"


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> tuple[Path, str]:
    """(data directory, which rule chose it): argument > $SIAMESE_BENCH_DATA > checkout data/ > ~/.cache."""
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser(), "given explicitly (--data-dir / data_dir argument)"
    env = os.environ.get(ENV_DATA, "")
    if env:
        return Path(env).expanduser(), f"environment variable {ENV_DATA}"
    return default_data_dir()


def check_data_dir(data_dir: Path, reason: str) -> None:
    """Raise DatasetMissingError when `data_dir` (or the closest of its parents that exists) is a file: no
    dataset can be found in it or downloaded into it."""
    there = next((p for p in (data_dir, *data_dir.parents) if p.exists()), None)
    if there is not None and not there.is_dir():
        raise DatasetMissingError(
            f"the data directory {data_dir} (chosen by: {reason}) "
            + ("is a file" if there == data_dir else f"is inside {there}, which is a file")
            + f", not a folder; point --data-dir or {ENV_DATA} at a folder (`{FETCH_HINT}` creates a missing "
            "one), or move the file away"
        )


def cache_dir() -> Path:
    """Folder for decoded-tensor caches: $SIAMESE_BENCH_CACHE, else `<default data dir>/cache`."""
    env = os.environ.get(ENV_CACHE, "")
    if env:
        return Path(env).expanduser()
    return default_data_dir()[0] / "cache"


# ----------------------------------------------------------------------------------------------- checksums

_DIGESTS: dict[tuple[str, str, int, int, int, int], str] = {}


def _digest(path: Path, algo: str) -> str:
    """Hex digest of the file, memoised on (path, size, mtime, inode, ctime): a rewrite that keeps the size
    and sets the mtime back (`cp -p`, `rsync -t`) still changes the ctime (no user can set it) or inode."""
    path = Path(path)
    st = path.stat()
    key = (algo, str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)
    if key not in _DIGESTS:
        h = hashlib.new(algo)
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file (computed once per process for an unchanged file)."""
    return _digest(Path(path), "sha256")


def md5_file(path: str | os.PathLike) -> str:
    """Hex md5 of a file (computed once per process for an unchanged file)."""
    return _digest(Path(path), "md5")


# ------------------------------------------------------------------------------------------ atomic writes


def _atomic_write(path: Path, write: Callable[[object], None]) -> None:
    atomic_write(path, write, mode=0o644)  # mkstemp makes 0600; a cache or download is not private


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` via a temp file in the same folder, fsync, os.replace (never half-written)."""
    _atomic_write(Path(path), lambda f: f.write(data))


def atomic_torch_save(obj: object, path: str | os.PathLike) -> None:
    """torch.save `obj` to `path` atomically (temp file in the same folder, fsync, os.replace)."""

    def save(f: object) -> None:
        try:
            torch.save(obj, f)
        except RuntimeError as e:
            # torch's zip writer hides a failed write (disk full, Ctrl-C) behind "unexpected pos": raise that
            if isinstance(e.__context__, (OSError, KeyboardInterrupt)):
                raise e.__context__ from None
            raise

    _atomic_write(Path(path), save)


# ------------------------------------------------------------------------------------------------ fetching


class DatasetMissingError(FileNotFoundError):
    """Dataset files are not in the data directory; the message names them, the folder and the fix."""


class DatasetError(ValueError):
    """Dataset files are there but cannot be used (corrupt, not images, wrong structure); the message names
    the file and the fix. `run` stops on it, like on missing files, instead of writing error rows."""


class DownloadError(OSError):
    """A download failed or its checksum did not match; the message names the URL and the expected value."""


class FetchError(DownloadError):
    """`fetch` could not get the files of some datasets (`failed`: their names) after trying every one;
    `reports` holds each requested dataset's outcome (a failed one: not ok, its error as the detail)."""

    def __init__(self, message: str, failed: Sequence[str], reports: Sequence[VerifyReport]):
        super().__init__(message)
        self.failed, self.reports = list(failed), list(reports)


@dataclass(frozen=True)
class RemoteFile:
    """A file a dataset needs: its name under `<data dir>/<dataset>/`, where to get it and its checksum.

    `alternatives` are other accepted local names (e.g. the decompressed IDX file for a .gz). `md5`/`sha256`
    check the downloaded bytes.
    """

    name: str
    urls: tuple[str, ...]
    md5: str | None = None
    sha256: str | None = None
    alternatives: tuple[str, ...] = ()


def download(
    url: str | Sequence[str],
    dest: str | os.PathLike,
    md5: str | None = None,
    sha256: str | None = None,
    timeout: float = 60.0,
) -> Path:
    """Download `url` (or the first of several mirrors that works) to `dest`, atomically.

    The checksum is verified on the temp file before the rename, so `dest` is either absent or correct.
    A mirror that fails (no connection, an HTTP error, a malformed or cut-off response, a wrong checksum) is
    followed by the next; DownloadError names every URL tried and why it failed.
    """
    dest = Path(dest)
    urls = [url] if isinstance(url, str) else list(url)
    errors = []
    for u in urls:
        try:
            _download_one(u, dest, md5, sha256, timeout)
            return dest
        except (OSError, urllib.error.URLError, ValueError) as e:
            errors.append(f"{u}: {e}")
        except http.client.HTTPException as e:  # IncompleteRead (cut off), BadStatusLine (not HTTP), ...
            errors.append(f"{u}: broken HTTP response ({e!r})")
    raise DownloadError(
        f"could not download {dest.name}:\n  "
        + "\n  ".join(errors)
        + f"\nWithout internet access, copy the file "
        f"to {dest} yourself (or point --data-dir / {ENV_DATA} at a folder that has it)."
    )


def _download_one(url: str, dest: Path, md5: str | None, sha256: str | None, timeout: float) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    h_md5, h_sha = hashlib.md5(), hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        req = urllib.request.Request(url, headers={"User-Agent": "siamese_bench"})
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(req, timeout=timeout) as r:
            got = 0
            for chunk in iter(lambda: r.read(1 << 20), b""):
                f.write(chunk)
                h_md5.update(chunk)
                h_sha.update(chunk)
                got += len(chunk)
            short = getattr(r, "length", None)  # HTTP: bytes of the Content-Length not received
            if short:  # read(n) ends quietly there, where read() raises IncompleteRead
                raise ValueError(f"cut off after {got:,} bytes, {short:,} short of its Content-Length")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        if md5 is not None and h_md5.hexdigest() != md5:
            raise ValueError(f"md5 {h_md5.hexdigest()} != expected {md5} (corrupt or changed download)")
        if sha256 is not None and h_sha.hexdigest() != sha256:
            raise ValueError(f"sha256 {h_sha.hexdigest()} != expected {sha256} (corrupt or changed download)")
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def dataset_dirs(dataset: str, data_dir: Path) -> list[Path]:
    """Folders searched for a dataset's files: `<data dir>/<dataset>/`, then `<data dir>` itself."""
    return [data_dir / dataset, data_dir]


def require_files(
    dataset: str,
    data_dir: str | os.PathLike | None,
    files: Sequence[RemoteFile],
    allow_download: bool = False,
    reason: str | None = None,
    fetch_name: str | None = None,
) -> dict[str, Path]:
    """Find every file of `files` (by name or an alternative name) in the folders of `dataset` (the folder
    name under the data directory); {name: local path}.

    Missing files are downloaded into `<data dir>/<dataset>/` from their URLs when `allow_download`; when a
    download fails (or downloads are not allowed), DatasetMissingError names every missing file, the folders
    searched, why each download failed, and the fix (`data fetch <fetch_name>`, default `dataset`); it
    starts with the name the user asked for (`fetch_name`, e.g. omniglot-runs, whose file is in omniglot/).
    """
    if data_dir is None or reason is None:
        data_dir, reason = resolve_data_dir(data_dir)
    data_dir = Path(data_dir)
    found: dict[str, Path] = {}
    missing: list[RemoteFile] = []
    for rf in files:
        hit = next(
            (
                d / n
                for d in dataset_dirs(dataset, data_dir)
                for n in (rf.name, *rf.alternatives)
                if (d / n).is_file()
            ),
            None,
        )
        if hit is None:
            missing.append(rf)
        else:
            found[rf.name] = hit
    if missing:
        check_data_dir(data_dir, reason)  # a file there: say so, rather than list the files or download
    failures = []
    if missing and allow_download:
        for rf in list(missing):
            try:
                found[rf.name] = download(rf.urls, data_dir / dataset / rf.name, md5=rf.md5, sha256=rf.sha256)
                missing.remove(rf)
            except DownloadError as e:
                failures.append(str(e).split("\nWithout internet access")[0])
    if missing:
        names = ", ".join(rf.name for rf in missing)
        searched = " and ".join(str(d) for d in dataset_dirs(dataset, data_dir))
        tried = ("\n" + "\n".join(failures) + "\n") if failures else " "
        raise DatasetMissingError(
            f"{fetch_name or dataset}: missing {names}; searched {searched} (data directory chosen by: {reason}).{tried}"
            f"Fix: point --data-dir or {ENV_DATA} at a folder holding {dataset}/{missing[0].name} etc., "
            f"or run `{FETCH_HINT} {fetch_name or dataset}` with internet access (downloads from "
            f"{missing[0].urls[0]} ...)."
        )
    return found


def mismatched(found: dict[str, Path], files: Sequence[RemoteFile]) -> list[RemoteFile]:
    """The files of `files` found (`require_files`'s result) under their own name whose bytes do not have
    the official checksum: what `data fetch` downloads again. A file found under an alternative name (e.g.
    a decompressed .gz) has no checksum of its own here and is not listed."""
    bad = []
    for rf in files:
        path = found.get(rf.name)
        if path is None or path.name != rf.name:
            continue
        if (rf.sha256 is not None and sha256_file(path) != rf.sha256) or (
            rf.md5 is not None and md5_file(path) != rf.md5
        ):
            bad.append(rf)
    return bad


def cannot_read(path: str | os.PathLike | None, e: OSError) -> str:
    """The message for a data file that could not be read: permission denied says to fix the permissions,
    not that the file is corrupt."""
    path = path if path is not None else (e.filename or "a data file")
    if isinstance(e, PermissionError):
        return f"cannot read {path} (permission denied): fix its permissions (e.g. `chmod a+r {path}`)"
    return f"cannot read {path} ({e.strerror or e}): check the disk, or copy the file again"


def read_zip_entry(zf: zipfile.ZipFile, path: Path, name: str, fetch_name: str) -> bytes:
    """The bytes of entry `name` of the open archive `zf` (the file `path`); a damaged entry (bad CRC,
    truncated or undecompressable data) raises ValueError naming the archive and the entry."""
    try:
        return zf.read(name)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as e:
        raise ValueError(
            f"{path}: entry {name} is damaged ({e}); replace the archive (`{FETCH_HINT} {fetch_name}`)"
        ) from e


# ------------------------------------------------------------------------------------------- tensor cache

_MEMO: dict[str, dict[str, ImageSet]] = {}


def clear_memory_cache() -> None:
    """Forget the per-process memo of loaded datasets and file checksums (the disk cache stays)."""
    _MEMO.clear()
    _DIGESTS.clear()


def cache_key(key_parts: dict) -> str:
    """sha256 hex of the canonical JSON of `key_parts` plus FORMAT_VERSION."""
    doc = {"format_version": FORMAT_VERSION, **key_parts}
    return hashlib.sha256(
        json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str).encode()
    ).hexdigest()


def _pack(sets: dict[str, ImageSet]) -> dict:
    return {
        k: {
            "name": s.name,
            "images": s.images.contiguous().cpu(),
            "labels": s.labels.cpu(),
            "class_names": list(s.class_names),
            "groups": s.groups.cpu(),
            "group_names": list(s.group_names),
            "extra": {n: v.cpu() for n, v in s.extra.items()},
        }
        for k, s in sets.items()
    }


def _unpack(packed: dict) -> dict[str, ImageSet]:
    return {
        k: ImageSet(
            d["name"],
            d["images"],
            d["labels"],
            tuple(d["class_names"]),
            d["groups"],
            tuple(d["group_names"]),
            dict(d["extra"]),
        )
        for k, d in packed.items()
    }


def cache_path(key_parts: dict, name: str = "dataset") -> Path:
    """The .pt file `cached` uses for these key parts."""
    return cache_dir() / f"{name}-{cache_key(key_parts)[:20]}.pt"


def sources_key(dataset: str, paths: dict[str, Path]) -> dict:
    """The cache key parts of a dataset decoded from the source files `paths` (name -> path): the dataset and
    each file's sha256 (a resized set's key adds "image_size")."""
    return {"dataset": dataset, "sources": {n: sha256_file(p) for n, p in sorted(paths.items())}}


def cached_sizes(name: str, key_parts: dict) -> list[int]:
    """The sizes S, ascending, for which the cache folder holds `<name>S-<hash>.pt`, the cache file of
    `{**key_parts, "image_size": S}` (`cached(..., name=f"{name}S")`): the resized sets that `data verify`
    checks besides the full-size one. Files of other source files or parameters are not listed."""
    folder = cache_dir()
    if not folder.is_dir():
        return []
    pattern = re.compile(rf"{re.escape(name)}([0-9]+)-[0-9a-f]{{20}}\.pt")
    sizes = {int(m[1]) for p in folder.iterdir() if (m := pattern.fullmatch(p.name))}
    return sorted(
        s for s in sizes if s >= 1 and cache_path({**key_parts, "image_size": s}, f"{name}{s}").is_file()
    )


_REBUILT: list[Path] | None = None  # inside from_source(): the damaged cache files rebuilt so far
_CHECKED: set[str] = set()  # inside from_source(): the keys built from source and compared so far


@contextlib.contextmanager
def from_source() -> Iterator[list[Path]]:
    """Within it, `cached` never serves the disk cache: it builds from the source files, compares the result
    with the cache file when there is one, and writes the file when it was absent or differed (damaged bytes,
    or a file that does not load); each key once (a key already checked within it comes from the memo, so a
    resized set is built from the full set checked just before). Yields the list of damaged cache files
    rebuilt (filled as `cached` runs): what `data verify` reports."""
    global _REBUILT, _CHECKED
    outer, _REBUILT = _REBUILT, []
    outer_checked, _CHECKED = _CHECKED, set()
    try:
        yield _REBUILT
    finally:
        if outer is not None:
            outer.extend(_REBUILT)
        _REBUILT, _CHECKED = outer, outer_checked


def _same_sets(a: dict[str, ImageSet], b: dict[str, ImageSet]) -> bool:
    """True when both hold the same ImageSets, tensor for tensor and name for name."""
    if a.keys() != b.keys():
        return False
    for k in a:
        x, y = a[k], b[k]
        if (x.name, x.class_names, x.group_names) != (y.name, y.class_names, y.group_names):
            return False
        tensors = [(x.images, y.images), (x.labels, y.labels), (x.groups, y.groups)]
        if x.extra.keys() != y.extra.keys():
            return False
        tensors += [(x.extra[n], y.extra[n]) for n in x.extra]
        if not all(u.dtype == v.dtype and torch.equal(u, v) for u, v in tensors):
            return False
    return True


def cached(
    key_parts: dict, build: Callable[[], dict[str, ImageSet]], name: str = "dataset"
) -> dict[str, ImageSet]:
    """`build()`'s result, from the per-process memo, else the disk cache, else built and written there.

    key_parts: everything the result depends on (source file checksums, parameters such as image_size);
    FORMAT_VERSION is added. The file is written atomically and loaded memory-mapped (fast, shared pages).
    A file that does not load or holds another key is rebuilt (with a warning), never trusted; damaged
    tensor bytes in a file that loads are NOT detected here (too slow to hash on every load): inside
    `from_source()` (what `data verify` uses) the result is built from the source, compared with the file,
    and a differing file is rewritten. An unwritable cache folder only costs the rebuild next time (warning).
    """
    key = cache_key(key_parts)
    if key in _MEMO and (_REBUILT is None or key in _CHECKED):
        return _MEMO[key]
    path = cache_path(key_parts, name)
    sets, damaged = None, False
    if path.is_file():
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            if blob.get("key") != key or blob.get("format_version") != FORMAT_VERSION:
                raise ValueError("key mismatch")
            sets = _unpack(blob["sets"])
        except Exception as e:  # a corrupt or foreign file: rebuild rather than crash
            damaged = True
            if _REBUILT is None:
                warnings.warn(
                    f"ignoring unreadable cache file {path} ({type(e).__name__}: {e}); rebuilding it",
                    stacklevel=2,
                )
    if _REBUILT is not None:
        built = build()
        if sets is not None and not _same_sets(sets, built):
            damaged, sets = True, None
        if damaged:
            _REBUILT.append(path)
        if sets is None:
            sets = _write(built, key, key_parts, path)
        _CHECKED.add(key)
    elif sets is None:
        sets = _write(build(), key, key_parts, path)
    _MEMO[key] = sets
    return sets


def _write(sets: dict[str, ImageSet], key: str, key_parts: dict, path: Path) -> dict[str, ImageSet]:
    """Save `sets` as the cache file `path` (a failed write only warns); returns `sets`."""
    try:
        atomic_torch_save(
            {"key": key, "format_version": FORMAT_VERSION, "parts": key_parts, "sets": _pack(sets)}, path
        )
    except OSError as e:
        warnings.warn(
            f"could not write cache file {path} ({e}); set {ENV_CACHE} to a writable folder", stacklevel=3
        )
    return sets


REBUILT_NOTE = "the decoded cache was damaged and has been rebuilt"


def rebuilt_note(paths: Sequence[Path]) -> str:
    """What `data verify` says about the damaged cache files `from_source()` rebuilt ("" when none)."""
    return f"{REBUILT_NOTE} ({', '.join(str(p) for p in paths)})" if paths else ""


# ---------------------------------------------------------------------------------------------- resizing


def check_image_size(image_size: object) -> int | None:
    """None, or `image_size` as a Python int >= 1 (a NumPy integer is fine); ValueError for anything else (a
    float such as 14.5 is not rounded, a bool is not a size)."""
    if image_size is None:
        return None
    size = as_int(image_size)
    if size is None or size < 1:
        raise ValueError(
            f"image_size must be a positive int, got {image_size!r} ({type(image_size).__name__}); give the "
            "side of the square images in pixels, e.g. 28, or None for the dataset's own size"
        )
    return size


def resize_images(images: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    """(N, C, H, W) uint8 -> (N, C, size, size) uint8: antialiased bilinear, rounded; same device.

    Works in chunks of `chunk` images to bound the float memory. A no-op (same tensor) when already that size.
    """
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(f"resize_images needs (N, C, H, W) uint8, got {images.dtype} {tuple(images.shape)}")
    if size < 1:
        raise ValueError(f"image_size must be a positive int, got {size}")
    if tuple(images.shape[2:]) == (size, size):
        return images
    out = torch.empty((images.shape[0], images.shape[1], size, size), dtype=torch.uint8, device=images.device)
    for i in range(0, images.shape[0], chunk):
        x = images[i : i + chunk].float()
        y = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[i : i + chunk] = y.round_().clamp_(0, 255).to(torch.uint8)
    return out


def resize_set(s: ImageSet, size: int | None) -> ImageSet:
    """The same ImageSet with images resized to (size, size) (None: unchanged)."""
    size = check_image_size(size)
    if size is None:
        return s
    return ImageSet(
        s.name, resize_images(s.images, size), s.labels, s.class_names, s.groups, s.group_names, s.extra
    )


# ------------------------------------------------------------------------------------------- verification


@dataclass(frozen=True)
class VerifyReport:
    """What `data verify` prints for one dataset.

    found: the files are there; ok: they passed `check` (e.g. "official md5" or a structure check);
    counts: e.g. {"train": 60000, "test": 10000}; detail: the problem when not ok (or extra facts).
    """

    name: str
    found: bool
    ok: bool
    path: Path | None
    counts: dict[str, int] = field(default_factory=dict)
    check: str = ""
    detail: str = ""


def format_report(reports: Sequence[VerifyReport], header: str | None = None) -> str:
    """A plain-text table of reports, one dataset per block."""
    lines = [header] if header else []
    for r in reports:
        status = "OK" if r.ok else ("FAILED" if r.found else "MISSING")
        lines.append(f"{r.name:<18} {status:<8} {r.path if r.path is not None else '-'}")
        if r.counts:
            lines.append(" " * 19 + "counts: " + ", ".join(f"{k} {v:,}" for k, v in r.counts.items()))
        if r.check:
            lines.append(" " * 19 + f"check passed: {r.check}")
        if r.detail:  # a fetch error's detail has several lines: each indented under its dataset
            lines.append(" " * 19 + r.detail.replace("\n", "\n" + " " * 19))
    return "\n".join(lines)
