"""`omniglot-mnist`: Omniglot's two subsets plus MNIST's test images, at one image size, for transfer.

{"background", "evaluation"} from `load_omniglot` and {"mnist-test"} from `load_mnist`'s test set, all
(N, 1, S, S) uint8 with bright ink on a dark background (Omniglot is inverted on load to match MNIST).
Used by the `mnist-transfer` protocol (train on Omniglot, test one-shot on MNIST, Koch et al. 2015 Table 3).
"""

from __future__ import annotations

import os

from siamese_bench.datasets import store
from siamese_bench.datasets.imageset import ImageSet
from siamese_bench.datasets.mnist import load_mnist
from siamese_bench.datasets.omniglot import load_omniglot


def load_omniglot_mnist(
    data_dir: str | os.PathLike | None = None, image_size: int | None = 28, download: bool = False
) -> dict[str, ImageSet]:
    size = 28 if image_size is None else store.check_image_size(image_size)
    omni = load_omniglot(data_dir, image_size=size, download=download)
    mnist = load_mnist(data_dir, image_size=None if size == 28 else size, download=download)
    return {**omni, "mnist-test": mnist["test"]}
