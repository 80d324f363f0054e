"""Synthetic ImageSets for the sampling tests.

`make_imageset` builds a small set whose image content encodes the image's own index (pixels 0-2: index in
base 256; pixel 3: label), so a gather can be checked by decoding the images it returns. Labels are shuffled
so that building a ClassIndex really has to group them. Also sklearn's 8x8 digits as an ImageSet.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest
import torch

from siamese_bench.datasets.imageset import ImageSet


def default_counts(n_classes: int) -> list[int]:
    """Unbalanced class sizes 2..10."""
    return [2 + (7 * c) % 9 for c in range(n_classes)]


def make_imageset(
    n_classes: int = 30,
    n_groups: int = 5,
    counts: Sequence[int] | None = None,
    groups: Sequence[int] | None = None,
    size: int = 4,
    seed: int = 0,
    name: str = "synthetic",
) -> ImageSet:
    """ImageSet with `n_classes` classes ("G<g>/c<cc>"), class c in group `groups[c]` (default
    c % n_groups), `counts[c]` images of class c (default 2..10, unbalanced), images (N, 1, size, size)
    encoding their own index."""
    counts = list(counts) if counts is not None else default_counts(n_classes)
    groups = list(groups) if groups is not None else [c % n_groups for c in range(n_classes)]
    n_groups = max(groups) + 1
    labels = torch.arange(n_classes).repeat_interleave(torch.tensor(counts, dtype=torch.int64))
    labels = labels[torch.randperm(labels.numel(), generator=torch.Generator().manual_seed(seed))]
    n = labels.numel()
    assert size * size >= 4 and n < 256**3
    ids = torch.arange(n)
    flat = torch.zeros(n, size * size, dtype=torch.uint8)
    flat[:, 0] = (ids % 256).to(torch.uint8)
    flat[:, 1] = (ids // 256 % 256).to(torch.uint8)
    flat[:, 2] = (ids // 65536).to(torch.uint8)
    flat[:, 3] = (labels % 256).to(torch.uint8)
    return ImageSet(
        name,
        flat.view(n, 1, size, size),
        labels,
        tuple(f"G{groups[c]}/c{c:02d}" for c in range(n_classes)),
        torch.tensor(groups, dtype=torch.int64),
        tuple(f"G{g}" for g in range(n_groups)),
    )


def decode_ids(images: torch.Tensor) -> torch.Tensor:
    """Image indices encoded by `make_imageset`, from float images in [0, 1] of shape (..., 1, H, W)."""
    px = (images.flatten(-3)[..., :3] * 255).round().long()
    return px[..., 0] + 256 * px[..., 1] + 65536 * px[..., 2]


def digits_imageset() -> ImageSet:
    """sklearn's 8x8 digits (values 0..16 scaled to 0..255), classes "0".."9", one group."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = torch.from_numpy(d.images).mul(255 / 16).round().to(torch.uint8).unsqueeze(1)
    return ImageSet(
        "digits",
        images,
        torch.from_numpy(d.target).long(),
        tuple(str(i) for i in range(10)),
        torch.zeros(10, dtype=torch.int64),
        ("digits",),
    )


def tensors_fingerprint(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().to(torch.int64).contiguous().numpy().tobytes())
    return h.hexdigest()


@pytest.fixture
def make_set():
    return make_imageset


@pytest.fixture
def ds() -> ImageSet:
    return make_imageset()


@pytest.fixture(scope="session")
def digits() -> ImageSet:
    return digits_imageset()


@pytest.fixture
def decode():
    return decode_ids


@pytest.fixture
def fingerprint():
    return tensors_fingerprint
