"""scikit-learn's bundled handwritten digits (offline): 1797 images of 8x8, values 0..16 scaled to 0..255.

Inside: `load_digits(data_dir=None, image_size=None, download=False)` -> {"all": ImageSet (1797, 1, S, S)}
(S = image_size or 8; class names "0".."9", one group "digits"; ink is already bright on dark) and `verify()`.
`data_dir` and `download` are accepted for the common loader signature and ignored (the data ships with
scikit-learn).
"""

from __future__ import annotations

import os

import numpy as np
import torch

from siamese_bench.datasets import store
from siamese_bench.datasets.imageset import ImageSet

CLASS_NAMES = tuple(str(d) for d in range(10))


def load_digits(
    data_dir: str | os.PathLike | None = None, image_size: int | None = None, download: bool = False
) -> dict[str, ImageSet]:
    """{"all": ImageSet (1797, 1, S, S) uint8}: round(value * 255 / 16); resized when image_size is given."""
    from sklearn.datasets import load_digits as sk_load_digits

    d = sk_load_digits()
    images = torch.from_numpy(np.rint(d.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)).unsqueeze(1)
    s = ImageSet(
        "digits",
        images,
        torch.from_numpy(d.target.astype(np.int64)),
        CLASS_NAMES,
        torch.zeros(10, dtype=torch.int64),
        ("digits",),
    )
    return {"all": store.resize_set(s, image_size)}


def verify(data_dir: str | os.PathLike | None = None) -> store.VerifyReport:
    """The bundled set: 1797 images of 8x8 in 10 classes."""
    s = load_digits()["all"]
    ok = len(s) == 1797 and s.image_shape == (1, 8, 8) and s.num_classes == 10
    return store.VerifyReport(
        "digits",
        True,
        ok,
        None,
        {"all": len(s)},
        "bundled with scikit-learn: 1797 images, 8x8, 10 classes" if ok else "",
    )
