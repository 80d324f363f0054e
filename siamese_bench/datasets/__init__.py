"""Dataset loaders, by name, and the data checks behind `python -m siamese_bench data verify|fetch`.

    DATASETS.get("omniglot")(data_dir=None, image_size=None, download=False) -> dict[str, ImageSet]
    load_dataset("mnist", image_size=32)
    image_shape("mnist", 32) -> (1, 32): (channels, size) of those images, without reading a file

Names: "mnist" -> {"train", "test"}; "omniglot" -> {"background", "evaluation"}; "omniglot-vinyals" ->
{"vinyals"} (rotated set; image_size None means 28); "digits" -> {"all"}; "omniglot-mnist" ->
{"background", "evaluation", "mnist-test"} (for transfer; image_size None means 28); your own images
"folder:PATH" / "csv:FILE" -> {"all"} (own.py).
`verify(name, data_dir)`, `verify_all(data_dir, names)` -> list[VerifyReport], `fetch(names, data_dir)`
(downloads what is missing, then verifies) and `format_report(reports)`. verify_all and fetch take any name of
ABOUT (what `ls` lists) and run the file checks it needs (VERIFY_NAMES: one per group of files).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from siamese_bench.datasets import digits, lake_runs, mnist, omniglot, omniglot_mnist, own, vinyals
from siamese_bench.datasets.imageset import ImageSet
from siamese_bench.datasets.own import is_own
from siamese_bench.datasets.store import (
    DatasetMissingError,
    DownloadError,
    FetchError,
    VerifyReport,
    cache_dir,
    cannot_read,
    check_data_dir,
    check_image_size,
    download,
    format_report,
    mismatched,
    require_files,
    resolve_data_dir,
)
from siamese_bench.registry import Registry

Loader = Callable[..., dict[str, ImageSet]]
DATASETS: Registry[Loader] = Registry("dataset")
DATASETS.register("mnist")(mnist.load_mnist)
DATASETS.register("omniglot")(omniglot.load_omniglot)
DATASETS.register("omniglot-vinyals")(vinyals.load_vinyals)
DATASETS.register("digits")(digits.load_digits)
DATASETS.register("omniglot-mnist")(omniglot_mnist.load_omniglot_mnist)

# verify/fetch names -> (module with verify(data_dir), files to fetch under <data dir>/<folder>)
_CHECKS = {
    "mnist": (mnist, "mnist", mnist.MNIST_FILES),
    "omniglot": (omniglot, "omniglot", omniglot.OMNIGLOT_FILES),
    "omniglot-runs": (lake_runs, "omniglot", (lake_runs.ALL_RUNS,)),
    "omniglot-vinyals": (vinyals, "omniglot", vinyals.SPLIT_FILES),
    "digits": (digits, "", ()),
}
VERIFY_NAMES = tuple(_CHECKS)
# size (square, grayscale) of each loader's images when image_size is None: what `image_shape` says without
# loading (a test checks it against the loaded sets)
_NATIVE_SIZE = {
    "mnist": 28,
    "omniglot": omniglot.SIZE,
    "omniglot-vinyals": 28,
    "omniglot-mnist": 28,
    "digits": 8,
}
# Every dataset name that `ls`, `data verify|fetch` and `run --datasets` take: the loaders above, plus
# omniglot-runs (Lake's runs, read by the lake-runs protocols) -> (what it is, the checks of its files).
ABOUT: dict[str, tuple[str, tuple[str, ...]]] = {
    "mnist": ("MNIST: 60,000 train and 10,000 test digits, 28x28 (four IDX files)", ("mnist",)),
    "omniglot": (
        "Omniglot: background (30 alphabets, 964 characters) and evaluation (20, 659), 20 drawings each, "
        "105x105 (two zip archives)",
        ("omniglot",),
    ),
    "omniglot-runs": (
        "Lake et al.'s 20 official 20-way one-shot runs (all_runs.zip), scored by the lake-runs protocols; "
        "not a load_dataset name: load it with siamese_bench.datasets.lake_runs.load_lake_runs()",
        ("omniglot-runs",),
    ),
    "omniglot-vinyals": (
        "Omniglot at 28x28 with 90-degree rotations as classes, Vinyals et al.'s split files",
        ("omniglot", "omniglot-vinyals"),
    ),
    "omniglot-mnist": ("Omniglot at 28x28 and the MNIST test digits (transfer)", ("omniglot", "mnist")),
    "digits": ("scikit-learn's bundled 8x8 digits (1,797 images; works offline)", ("digits",)),
}

__all__ = [
    "DATASETS",
    "ABOUT",
    "VERIFY_NAMES",
    "DatasetMissingError",
    "FetchError",
    "ImageSet",
    "VerifyReport",
    "cache_dir",
    "fetch",
    "format_report",
    "image_shape",
    "load_dataset",
    "resolve_data_dir",
    "verify",
    "verify_all",
]


def load_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    image_size: int | None = None,
    download: bool = False,
) -> dict[str, ImageSet]:
    """`DATASETS.get(name)(data_dir, image_size, download)`; an unknown name lists the valid ones, an
    image_size that is not None or an int >= 1 raises ValueError.

    "folder:PATH" (a folder of class folders) and "csv:FILE" (path,label[,group] rows) load your own images
    as {"all": ImageSet} (own.py). "omniglot-runs" (listed by `ls`) raises ValueError naming its loader,
    lake_runs.load_lake_runs.
    """
    image_size = check_image_size(image_size)  # 14.5, True, "14": refused, not truncated to 14 or 1
    if is_own(name):
        return {"all": own.load_own(name, image_size)}
    if name == "omniglot-runs":  # listed by `ls`, but runs (LakeRuns), not ImageSets
        raise ValueError(
            "omniglot-runs is Lake et al.'s 20 one-shot runs, not a set of ImageSets: load it with "
            "siamese_bench.datasets.lake_runs.load_lake_runs(data_dir, image_size), or score a model on it "
            "with `python -m siamese_bench run --datasets omniglot-runs`"
        )
    return DATASETS.get(name)(data_dir=data_dir, image_size=image_size, download=download)


def image_shape(name: str, image_size: int | None = None) -> tuple[int, int] | None:
    """(channels, size) of the images that `load_dataset(name, image_size=image_size)` returns, without reading
    any file (a finished run needs the shape alone, for its throughput rows); None for your own images, whose
    channels only their files tell. An unknown name raises as load_dataset does."""
    image_size = check_image_size(image_size)
    if is_own(name):
        return None
    DATASETS.get(name)  # an unknown name: the registry's error, with the valid names
    return 1, (_NATIVE_SIZE[name] if image_size is None else image_size)


def _names(names: Sequence[str] | None) -> list[str]:
    """The checks to run for dataset `names` (default: every check), each once, in order."""
    names = list(names if names else VERIFY_NAMES)
    unknown = [n for n in names if n not in ABOUT and not is_own(n)]
    if unknown:
        raise ValueError(
            f"unknown dataset(s) {unknown}; valid: {', '.join(ABOUT)}, or your own images as "
            "folder:PATH / csv:FILE"
        )
    checks = [c for n in names for c in ((n,) if is_own(n) else ABOUT[n][1])]
    return list(dict.fromkeys(checks))


def _checked_data_dir(checks: Sequence[str], data_dir: str | os.PathLike | None):
    """(data directory, reason) as resolve_data_dir; raises DatasetMissingError, once, when it is a file and
    one of `checks` reads files from it (digits and your own images do not)."""
    data_dir, reason = resolve_data_dir(data_dir)
    if any(c in _CHECKS and _CHECKS[c][2] for c in checks):
        check_data_dir(data_dir, reason)
    return data_dir, reason


def verify(name: str, data_dir: str | os.PathLike | None = None) -> VerifyReport:
    """Check one file check's files (see VERIFY_NAMES; or your own images, folder:PATH[@SIZE] /
    csv:FILE[@SIZE]); never raises for missing, bad or unreadable files, reports them."""
    if name not in _CHECKS and not is_own(name):
        checks = _names([name])  # raises for an unknown name
        raise ValueError(
            f"{name} needs several checks ({', '.join(checks)}): use verify_all(names=[{name!r}])"
        )
    if is_own(name):
        from siamese_bench.protocols.folder import verify_own

        return verify_own(name)
    try:
        return _CHECKS[name][0].verify(data_dir)
    except DatasetMissingError:  # the data directory is a file: verify_all says so once
        raise
    except OSError as e:  # e.g. a file without read permission, met while checksumming or decoding
        where = resolve_data_dir(data_dir)[0] / _CHECKS[name][1]
        return VerifyReport(name, True, False, where, detail=cannot_read(e.filename, e))


def verify_all(
    data_dir: str | os.PathLike | None = None, names: Sequence[str] | None = None
) -> list[VerifyReport]:
    """verify() for each check that `names` need (any name of ABOUT or your own images; default: all of
    VERIFY_NAMES), each check once. A data directory that is a file raises DatasetMissingError."""
    checks = _names(names)
    _checked_data_dir(checks, data_dir)
    return [verify(n, data_dir) for n in checks]


def fetch(
    names: Sequence[str] | None = None, data_dir: str | os.PathLike | None = None
) -> list[VerifyReport]:
    """Download the missing files of `names` (default all) from the official URLs, then verify them; a file
    that is there but fails verification and is not the official download (checksum) is downloaded again and
    replaced (atomically, once the new copy's checksum matched). When such downloads fail, the dataset's
    error has the verification failure, every file that is not the official download and every failed
    download.

    Needs internet access and a writable data directory (a file there raises DatasetMissingError at once).
    Every dataset is tried; when the files of some could not be had, FetchError (a store.DownloadError)
    names them after the last, its message has each one's error (the files and URLs) and its `reports`
    every dataset's outcome.
    """
    checks = _names(names)
    data_dir, reason = _checked_data_dir(checks, data_dir)
    reports, failed = [], []
    for n in checks:
        if is_own(n):  # your own images: nothing to download, only to check
            reports.append(verify(n))
            continue
        module, folder, files = _CHECKS[n]
        try:
            if files:
                found = require_files(
                    folder, data_dir, files, allow_download=True, reason=reason, fetch_name=n
                )
            report = module.verify(data_dir)
            if files and not report.ok:
                stale = mismatched(found, files)
                errors = []
                for rf in stale:  # try each one: a failed download does not hide the others
                    try:
                        download(rf.urls, found[rf.name], md5=rf.md5, sha256=rf.sha256)
                    except DownloadError as e:
                        errors.append(str(e))
                if errors:
                    raise DownloadError(
                        f"{n}: verification failed: {report.detail}\n"
                        + "".join(f"not the official download: {found[rf.name]}\n" for rf in stale)
                        + "\n".join(errors)
                    )
                if stale:
                    report = module.verify(data_dir)
        except (DatasetMissingError, DownloadError) as e:
            failed.append((n, str(e)))  # found: a file was there, its official copy could not be had
            found_any = not isinstance(e, DatasetMissingError)
            report = VerifyReport(n, found_any, False, data_dir / folder, detail=str(e))
        reports.append(report)
    if failed:
        raise FetchError(
            f"could not fetch {', '.join(n for n, _ in failed)}:\n" + "\n".join(e for _, e in failed),
            [n for n, _ in failed],
            reports,
        )
    return reports
