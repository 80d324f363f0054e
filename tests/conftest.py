"""Shared fixtures: where the real MNIST/Omniglot files are, and Omniglot loaded once per test session.

`real_data_dir`: $SIAMESE_BENCH_DATA, else the checkout's data/, when it holds the MNIST and Omniglot files.
Missing: the test fails when $CI == "true" (CI must run the real-data tests), else it is skipped.
`omniglot`, `omniglot28`: load_omniglot(real_data_dir) at 105x105 / 28x28, through the normal tensor cache, so
the PNGs are decoded once per cache (not per run, not per test).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MNIST_NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
OMNIGLOT_NAMES = ("images_background.zip", "images_evaluation.zip", "all_runs.zip")


def has_real_data(d: Path) -> bool:
    """True when `d` holds the four MNIST files (gzipped or not) and the three Omniglot zips."""
    mnist = all((d / "mnist" / n).is_file() or (d / "mnist" / f"{n}.gz").is_file() for n in MNIST_NAMES)
    return mnist and all((d / "omniglot" / n).is_file() for n in OMNIGLOT_NAMES)


def find_real_data() -> Path | None:
    """$SIAMESE_BENCH_DATA when it holds the files, else the checkout's data/ when it does, else None."""
    env = os.environ.get("SIAMESE_BENCH_DATA", "")
    for d in ([Path(env)] if env else []) + [REPO / "data"]:
        if has_real_data(d):
            return d
    return None


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    d = find_real_data()
    if d is None:
        msg = (
            "real MNIST/Omniglot files not found (looked in $SIAMESE_BENCH_DATA and "
            f"{REPO / 'data'}): set SIAMESE_BENCH_DATA=/path/to/data or run "
            "python -m siamese_bench data fetch"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return d


@pytest.fixture(scope="session")
def omniglot(real_data_dir):
    from siamese_bench.datasets.omniglot import load_omniglot

    return load_omniglot(real_data_dir)


@pytest.fixture(scope="session")
def omniglot28(real_data_dir, omniglot):
    from siamese_bench.datasets.omniglot import load_omniglot

    return load_omniglot(real_data_dir, image_size=28)


DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@pytest.fixture
def digit_folder():
    """make(root, per_class=6, classes=10) -> root: root/<digit name>/<i>.png, scikit-learn's 8x8 digits as
    a user's folder of class folders (`per_class` images of each of `classes` digits)."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()

    def make(root: Path, per_class: int = 6, classes: int = 10) -> Path:
        for c in range(classes):
            (root / DIGIT_NAMES[c]).mkdir(parents=True)
            for i in np.flatnonzero(d.target == c)[:per_class]:
                image = Image.fromarray((d.images[i] * 255 / 16).astype(np.uint8))
                image.save(root / DIGIT_NAMES[c] / f"{i}.png")
        return root

    return make


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    """Decoded test images go to a temporary tensor cache, not the checkout's data/cache."""
    monkeypatch.setenv("SIAMESE_BENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def interrupt_savefig(monkeypatch):
    """patch(folder) -> temps: from then on matplotlib's Figure.savefig writes half a PNG into the one
    dot-named temp file being written in `folder`, appends its name to `temps` and raises KeyboardInterrupt
    (Ctrl-C in the middle of writing a picture)."""
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    def patch(folder: Path) -> list[str]:
        temps = []

        def interrupted(self, target, **kwargs):
            (written,) = [p for p in folder.iterdir() if p.name.startswith(".")]
            temps.append(written.name)
            written.write_bytes(b"\x89PNG half")
            raise KeyboardInterrupt

        monkeypatch.setattr(Figure, "savefig", interrupted)
        return temps

    return patch
