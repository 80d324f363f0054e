"""sklearn digits: counts, value scaling, labels and resizing (bundled with scikit-learn: always offline)."""

from __future__ import annotations

import torch

from siamese_bench.datasets.digits import load_digits, verify
from siamese_bench.datasets.imageset import ImageSet


def test_digits_counts_and_scaling():
    s = load_digits()["all"]
    assert s.images.shape == (1797, 1, 8, 8) and s.images.dtype == torch.uint8
    assert s.class_names == tuple("0123456789") and s.group_names == ("digits",)
    assert torch.bincount(s.labels).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    assert int(s.images.min()) == 0 and int(s.images.max()) == 255
    # sklearn's first image: row 0 is [0, 0, 5, 13, 9, 1, 0, 0] -> round(v * 255 / 16)
    assert s.images[0, 0, 0].tolist() == [0, 0, 80, 207, 143, 16, 0, 0]


def test_digits_resize():
    s = load_digits(image_size=16)["all"]
    assert s.images.shape == (1797, 1, 16, 16)


def test_digits_verify():
    r = verify()
    assert r.ok and r.counts == {"all": 1797}


def test_digits_verify_fails_on_a_set_that_is_not_the_bundled_one(monkeypatch):
    """verify() checks the documented facts (1797 images, 8x8, 10 classes): a short set is not ok."""
    import siamese_bench.datasets.digits as digits

    full = load_digits()["all"]
    assert verify().check == "bundled with scikit-learn: 1797 images, 8x8, 10 classes"
    short = ImageSet(
        full.name, full.images[:1796], full.labels[:1796], full.class_names, full.groups, full.group_names
    )
    monkeypatch.setattr(digits, "load_digits", lambda *a, **k: {"all": short})
    r = verify()
    assert r.found and not r.ok and r.counts == {"all": 1796}
