"""Lake et al.'s official 20-way within-alphabet one-shot runs (all_runs.zip), as tensors and as episodes.

Inside: `ALL_RUNS` (official URL and md5), `LakeRuns` (train (20, 20, 1, H, W), test (20, 20, 1, H, W) uint8
with ink 255, answer (20, 20) int64), `load_lake_runs(data_dir=None, image_size=None, download=False)`,
`match_images(needles, haystack)` (exact pixel matching, vectorised),
`lake_runs_as_episodes(evaluation, runs)` (the 20 runs as 20 `Episodes` of indices into the Omniglot
evaluation ImageSet) and `verify(data_dir)`.

all_runs.zip layout: runNN/training/classMM.png (20), runNN/test/itemMM.png (20) and runNN/class_labels.txt
with lines "runNN/test/itemMM.png runNN/training/classKK.png" (the correct training image of each test image).
"""

from __future__ import annotations

import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from siamese_bench.datasets import store
from siamese_bench.datasets.imageset import ImageSet
from siamese_bench.datasets.omniglot import decode_png
from siamese_bench.splits import LAKE_RUN_ALPHABETS

if TYPE_CHECKING:
    from siamese_bench.episodes.episodes import Episodes

N_RUNS = 20
N_WAY = 20
ALL_RUNS = store.RemoteFile(
    "all_runs.zip",
    (
        "https://raw.githubusercontent.com/brendenlake/omniglot/master/python/one-shot-classification/all_runs.zip",
    ),
    md5="e8996daecdf12afeeb4a53a179f06b19",
)
_LINE = re.compile(r"^run(\d+)/test/item(\d+)\.png\s+run(\d+)/training/class(\d+)\.png$")


@dataclass(frozen=True)
class LakeRuns:
    """train[r, c]: training image of class c in run r; test[r, i]: test image i; answer[r, i]: its class c.

    train, test: (20, 20, 1, H, W) uint8 (ink 255, as Omniglot loads); answer: (20, 20) int64 in [0, 20).
    """

    train: torch.Tensor
    test: torch.Tensor
    answer: torch.Tensor


def read_all_runs(path: str | os.PathLike) -> LakeRuns:
    """Decode all_runs.zip at its native 105x105; errors name the entry at fault."""
    path = Path(path)
    try:
        zf = zipfile.ZipFile(path)
    except PermissionError as e:
        raise ValueError(store.cannot_read(path, e)) from e
    except (zipfile.BadZipFile, OSError) as e:
        raise ValueError(
            f"{path}: not a readable zip archive ({e}); replace it (`{store.FETCH_HINT} omniglot-runs`)"
        ) from e
    with zf:
        names = set(zf.namelist())

        def image(name: str) -> np.ndarray:
            if name not in names:
                raise ValueError(f"{path}: missing entry {name}")
            data = store.read_zip_entry(zf, path, name, "omniglot-runs")
            return decode_png(data, f"{path}:{name}", fetch_name="omniglot-runs")

        train = np.stack(
            [
                np.stack([image(f"run{r:02d}/training/class{c:02d}.png") for c in range(1, 21)])
                for r in range(1, 21)
            ]
        )
        test = np.stack(
            [
                np.stack([image(f"run{r:02d}/test/item{c:02d}.png") for c in range(1, 21)])
                for r in range(1, 21)
            ]
        )
        answer = np.full((N_RUNS, N_WAY), -1, dtype=np.int64)
        for r in range(1, N_RUNS + 1):
            labels = f"run{r:02d}/class_labels.txt"
            if labels not in names:
                raise ValueError(f"{path}: missing entry {labels}")
            for line in store.read_zip_entry(zf, path, labels, "omniglot-runs").decode().splitlines():
                if not line.strip():
                    continue
                m = _LINE.match(line.strip())
                run_a, item, run_b, cls = map(int, m.groups()) if m else (0, 0, 0, 0)
                if run_a != r or run_b != r or not (1 <= item <= N_WAY and 1 <= cls <= N_WAY):
                    raise ValueError(f"{path}:{labels}: unexpected line {line!r}")
                if answer[r - 1, item - 1] >= 0:
                    raise ValueError(f"{path}:{labels}: a second answer for test item{item:02d}: {line!r}")
                if (answer[r - 1] == cls - 1).any():  # the answers must be a permutation of the classes
                    raise ValueError(
                        f"{path}:{labels}: a second test item answered by training class{cls:02d}: {line!r}"
                    )
                answer[r - 1, item - 1] = cls - 1
    if (answer < 0).any():
        r, i = np.argwhere(answer < 0)[0]
        raise ValueError(f"{path}: run{r + 1:02d}/class_labels.txt has no answer for test item{i + 1:02d}")
    return LakeRuns(
        torch.from_numpy(train).unsqueeze(2), torch.from_numpy(test).unsqueeze(2), torch.from_numpy(answer)
    )


def load_lake_runs(
    data_dir: str | os.PathLike | None = None, image_size: int | None = None, download: bool = False
) -> LakeRuns:
    """The 20 runs from `<data dir>/omniglot/all_runs.zip`; images resized to image_size when given."""
    size = store.check_image_size(image_size)
    path = store.require_files(
        "omniglot", data_dir, (ALL_RUNS,), allow_download=download, fetch_name="omniglot-runs"
    )["all_runs.zip"]
    runs = read_all_runs(path)
    if size is None:
        return runs
    shape = runs.train.shape
    flat = store.resize_images(torch.cat([runs.train, runs.test]).flatten(0, 1), size)
    train, test = flat.view(2, *shape[:3], size, size).unbind(0)
    return LakeRuns(train, test, runs.answer)


def _fingerprint(images: torch.Tensor, weights: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
    """(N,) float64 dot product of each flattened image with integer weights < 2**20: every partial sum is an
    integer below 2**53, so the value is exact whatever the summation order (CPU or CUDA)."""
    flat = images.flatten(1)
    return torch.cat([flat[i : i + chunk].double() @ weights for i in range(0, len(flat), chunk)])


def match_images(needles: torch.Tensor, haystack: torch.Tensor) -> torch.Tensor:
    """(M,) int64: for each needle (M, C, H, W), the index of its pixel-identical image in haystack
    (N, C, H, W).

    Vectorised (exact integer fingerprints, sorted search, then exact comparison). Raises ValueError when a
    needle has no identical image, or more than one.
    """
    if needles.shape[1:] != haystack.shape[1:]:
        raise ValueError(
            f"match_images: needle shape {tuple(needles.shape[1:])} != haystack shape "
            f"{tuple(haystack.shape[1:])}; "
            "match at the native 105x105 resolution"
        )
    g = torch.Generator().manual_seed(0)
    weights = torch.randint(1, 1 << 20, (needles[0].numel(),), generator=g).double().to(haystack.device)
    fh = _fingerprint(haystack, weights)
    fn = _fingerprint(needles.to(haystack.device), weights)
    order = torch.argsort(fh)
    sorted_fh = fh[order]
    pos = torch.searchsorted(sorted_fh, fn).clamp_(max=len(fh) - 1)
    idx = order[pos]
    same = (haystack[idx] == needles.to(haystack.device)).flatten(1).all(1)
    if not bool(same.all()):
        raise ValueError(
            f"match_images: {int((~same).sum())} image(s) have no pixel-identical match, "
            f"e.g. #{int((~same).nonzero()[0])}"
        )
    nxt = (pos + 1).clamp_(max=len(fh) - 1)
    dup = (
        (nxt != pos)
        & (sorted_fh[nxt] == fn)
        & (haystack[order[nxt]] == needles.to(haystack.device)).flatten(1).all(1)
    )
    if bool(dup.any()):
        raise ValueError(f"match_images: image #{int(dup.nonzero()[0])} matches several haystack images")
    return idx


def lake_runs_as_episodes(
    evaluation: ImageSet, runs: LakeRuns, native: ImageSet | None = None, split_hash: str = ""
) -> Episodes:
    """The 20 runs as 20 episodes (n_way=20, k_shot=1, n_query=1) of indices into `evaluation`.

    Run images are matched to `native` (default: `evaluation`) by exact pixel equality; `native` must be the
    evaluation set at the runs' resolution (105x105) and in the same order as `evaluation`, which may be
    resized (the loaders keep the order). Queries are reordered so that query j's correct class is support j.

    Returns Episodes(support (20, 20), query (20, 20), classes (20, 20) int64 evaluation label ids, n_way=20,
    k_shot=1, n_query=1, seed=-1 (fixed, not sampled), split_hash, within_group=True). Checks that each run is
    within one alphabet of splits.LAKE_RUN_ALPHABETS and each test image's class is its answer's class.
    """
    from siamese_bench.episodes.episodes import Episodes  # here: episodes imports the datasets package

    native = evaluation if native is None else native
    if len(native) != len(evaluation) or not torch.equal(native.labels.cpu(), evaluation.labels.cpu()):
        raise ValueError(
            "lake_runs_as_episodes: `native` must be the same evaluation set (same labels, same order)"
        )
    found = match_images(torch.cat([runs.train, runs.test]).flatten(0, 1), native.images)
    support, test_idx = found.view(2, N_RUNS, N_WAY).unbind(0)
    answer = runs.answer.to(test_idx.device)
    if not bool((torch.sort(answer, dim=1).values == torch.arange(N_WAY, device=answer.device)).all()):
        raise ValueError("all_runs: each run's answers must be a permutation of its 20 training classes")
    query = torch.empty_like(test_idx).scatter_(1, answer, test_idx)  # query[r, answer[r, i]] = test[r, i]
    labels = native.labels.to(support.device)
    classes = labels[support]
    if not torch.equal(labels[query], classes):
        raise ValueError(
            "all_runs: a test image's class differs from the class of its correct training image"
        )
    if not bool((classes.sort(dim=1).values.diff(dim=1) > 0).all()):
        raise ValueError("all_runs: a run has two training images of one class")
    groups = native.groups.to(support.device)[classes]
    if not bool((groups == groups[:, :1]).all()):
        raise ValueError("all_runs: a run mixes alphabets (the official runs are within-alphabet)")
    outside = sorted({native.group_names[int(g)] for g in groups[:, 0]} - set(LAKE_RUN_ALPHABETS))
    if outside:
        raise ValueError(f"all_runs: alphabets {outside} are not among splits.LAKE_RUN_ALPHABETS")
    return Episodes(support, query, classes, N_WAY, 1, 1, seed=-1, split_hash=split_hash, within_group=True)


def verify(data_dir: str | os.PathLike | None = None) -> store.VerifyReport:
    """Official md5 of all_runs.zip (else the structure check: 20 runs x 20 training + 20 test, answers)."""
    data_dir, reason = store.resolve_data_dir(data_dir)
    try:
        path = store.require_files(
            "omniglot", data_dir, (ALL_RUNS,), reason=reason, fetch_name="omniglot-runs"
        )["all_runs.zip"]
    except store.DatasetMissingError as e:
        return store.VerifyReport("omniglot-runs", False, False, data_dir / "omniglot", detail=str(e))
    try:
        runs = read_all_runs(path)
    except ValueError as e:
        return store.VerifyReport("omniglot-runs", True, False, path, detail=str(e))
    counts = {
        "runs": N_RUNS,
        "training images": runs.train.shape[0] * runs.train.shape[1],
        "test images": runs.test.shape[0] * runs.test.shape[1],
    }
    if tuple(runs.train.shape[-2:]) != (105, 105) or tuple(runs.test.shape[-2:]) != (105, 105):
        detail = f"images are {tuple(runs.train.shape[-2:])}, expected (105, 105)"
        return store.VerifyReport("omniglot-runs", True, False, path, counts, detail=detail)
    if store.md5_file(path) == ALL_RUNS.md5:
        check = "official md5"
    else:
        check = (
            "structure: 20 runs x (20 training + 20 test) images, 105x105, answers for every test image, "
            "one per training class"
        )
    return store.VerifyReport("omniglot-runs", True, True, path, counts, check)
