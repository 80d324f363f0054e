"""omniglot-mnist: Omniglot's two subsets and MNIST's test images at ONE image size (28 by default), without
the real files (the two loaders are stubbed: only the sizes asked of them matter here)."""

from __future__ import annotations

import pytest
import torch

import siamese_bench.datasets.omniglot_mnist as om
from siamese_bench.datasets.imageset import ImageSet


def _stub(name: str, size: int) -> ImageSet:
    return ImageSet(
        name,
        torch.zeros(2, 1, size, size, dtype=torch.uint8),
        torch.arange(2),
        ("a", "b"),
        torch.zeros(2),
        ("g",),
    )


@pytest.fixture
def stubbed_loaders(monkeypatch):
    def omniglot(data_dir=None, image_size=None, download=False):
        size = 105 if image_size is None else image_size  # Omniglot's native size
        return {s: _stub(s, size) for s in ("background", "evaluation")}

    def mnist(data_dir=None, image_size=None, download=False):
        size = 28 if image_size is None else image_size  # MNIST's native size
        return {s: _stub(s, size) for s in ("train", "test")}

    monkeypatch.setattr(om, "load_omniglot", omniglot)
    monkeypatch.setattr(om, "load_mnist", mnist)


@pytest.mark.parametrize(("image_size", "expected"), [(None, 28), (28, 28), (14, 14), (105, 105)])
def test_all_three_subsets_share_one_image_size(stubbed_loaders, image_size, expected):
    sets = om.load_omniglot_mnist(image_size=image_size)
    assert sorted(sets) == ["background", "evaluation", "mnist-test"]
    assert {s.image_shape for s in sets.values()} == {(1, expected, expected)}
    assert sets["mnist-test"].name == "test"
