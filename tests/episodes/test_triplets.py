"""sample_triplets: validity, strategies, hard negatives, determinism, errors."""

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from siamese_bench.episodes import ClassIndex, TripletBatch, sample_triplets

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
FIELDS = ("anchor", "positive", "negative", "anchor_class", "negative_class")


def _many(ix, n_batches, batch_size=64, seed=0, **kw):
    g = torch.Generator().manual_seed(seed)
    batches = [sample_triplets(ix, batch_size, g, **kw) for _ in range(n_batches)]
    return TripletBatch(*(torch.cat([getattr(b, f) for b in batches]) for f in FIELDS))


def test_validity(ds):
    ix = ClassIndex.build(ds)
    t = _many(ix, 200)
    assert all(getattr(t, f).dtype == torch.int64 and getattr(t, f).shape == (12800,) for f in FIELDS)
    assert torch.equal(ds.labels[t.anchor], t.anchor_class)
    assert torch.equal(ds.labels[t.positive], t.anchor_class)
    assert torch.equal(ds.labels[t.negative], t.negative_class)
    assert not bool((t.anchor == t.positive).any())
    assert not bool((t.anchor_class == t.negative_class).any())
    assert torch.unique(torch.cat([t.anchor, t.positive, t.negative])).numel() == len(ds)


def test_odd_batch_size_allowed(ds):
    t = sample_triplets(ClassIndex.build(ds), 7, torch.Generator().manual_seed(0))
    assert len(t) == 7


def test_bool_batch_size_is_rejected(ds):
    """True is an int subclass equal to 1 (a valid odd triplet batch size), but not a batch size."""
    with pytest.raises(ValueError, match="positive int, got True"):
        sample_triplets(ClassIndex.build(ds), True, torch.Generator().manual_seed(0))


def test_global_class_ids_on_subset(ds):
    ix = ClassIndex.build(ds, [29, 4, 11])
    t = _many(ix, 20)
    assert set(t.anchor_class.tolist()) == {29, 4, 11}
    assert set(t.negative_class.tolist()) == {29, 4, 11}
    assert torch.equal(ds.labels[t.negative], t.negative_class)


def test_strategies_chi_square(ds):
    ix = ClassIndex.build(ds)
    uni = torch.bincount(_many(ix, 200).anchor_class, minlength=30).numpy()
    assert chisquare(uni).pvalue > 1e-3
    p = (ix.counts.double() / ix.counts.sum()).numpy()
    prop = torch.bincount(_many(ix, 200, strategy="proportional").anchor_class, minlength=30).numpy()
    assert chisquare(prop, p * prop.sum()).pvalue > 1e-3
    assert chisquare(uni, p * uni.sum()).pvalue < 1e-10  # the test can fail
    probs = np.zeros(30)
    probs[[2, 3]] = [1, 3]
    t = _many(ix, 50, strategy="custom", class_probs=probs)
    cus = torch.bincount(t.anchor_class, minlength=30).numpy()
    assert cus.sum() == cus[2] + cus[3]
    assert chisquare(cus[[2, 3]], np.array([0.25, 0.75]) * cus.sum()).pvalue > 1e-3
    # negatives by the same probabilities with the anchor masked: 2 <-> 3 only
    assert torch.equal(t.negative_class, 5 - t.anchor_class)


def test_hard_negatives(ds):
    ix = ClassIndex.build(ds)
    for frac, n_hard in ((1.0, 64), (0.5, 32)):
        g = torch.Generator().manual_seed(2)
        positions = torch.zeros(64)
        for _ in range(50):
            t = sample_triplets(ix, 64, g, hard_negatives=frac)
            same = ds.groups[t.anchor_class] == ds.groups[t.negative_class]
            assert int(same.sum()) >= n_hard
            assert not bool((t.anchor_class == t.negative_class).any())
            positions += same.float()
        if frac == 0.5:  # hard triplets are not parked at the front
            assert float(positions[:32].mean()) < 45 and float(positions[32:].mean()) > 20


def test_hard_fallback_single_class_group(make_set):
    groups = [0, 0, 1]
    ds = make_set(n_classes=3, counts=[3, 3, 3], groups=groups)
    t = _many(ClassIndex.build(ds), 30, hard_negatives=1.0)
    lone = t.anchor_class == 2
    assert int(lone.sum()) > 100
    assert set(t.negative_class[lone].tolist()) == {0, 1}
    assert torch.equal(t.negative_class[~lone], 1 - t.anchor_class[~lone])


def test_determinism(ds, fingerprint):
    ix = ClassIndex.build(ds)
    runs = [sample_triplets(ix, 64, torch.Generator().manual_seed(s), hard_negatives=0.3) for s in (9, 9, 10)]
    fps = [fingerprint(*(getattr(t, f) for f in FIELDS)) for t in runs]
    assert fps[0] == fps[1] != fps[2]


def test_errors(make_set, ds):
    g = torch.Generator().manual_seed(0)
    ix = ClassIndex.build(ds)
    with pytest.raises(ValueError, match="positive int"):
        sample_triplets(ix, 0, g)
    with pytest.raises(ValueError, match="unknown sampling strategy"):
        sample_triplets(ix, 4, g, strategy="hard")
    with pytest.raises(ValueError, match="non-negative"):
        sample_triplets(ix, 4, g, strategy="custom", class_probs=[-1.0] * 30)
    with pytest.raises(ValueError, match="hard_negatives"):
        sample_triplets(ix, 4, g, hard_negatives=-0.1)
    single = make_set(n_classes=3, n_groups=1, counts=[3, 2, 1])
    with pytest.raises(ValueError, match="class 'G0/c02' has a single image"):
        sample_triplets(ClassIndex.build(single), 4, g)


def test_digits_triplets(digits):
    t = _many(ClassIndex.build(digits), 10, batch_size=128)
    assert torch.equal(digits.labels[t.positive], digits.labels[t.anchor])
    assert not bool((digits.labels[t.negative] == digits.labels[t.anchor]).any())


@pytest.mark.cuda
@needs_cuda
def test_cuda_matches_cpu(ds):
    ix = ClassIndex.build(ds)
    cpu = sample_triplets(ix, 64, torch.Generator().manual_seed(4), hard_negatives=0.5)
    gpu = sample_triplets(ix.to("cuda"), 64, torch.Generator().manual_seed(4), hard_negatives=0.5)
    for f in FIELDS:
        assert getattr(gpu, f).device.type == "cuda"
        assert torch.equal(getattr(gpu, f).cpu(), getattr(cpu, f))
    g = torch.Generator(device="cuda").manual_seed(0)
    t = sample_triplets(ix.to("cuda"), 64, g)
    assert not bool((t.anchor_class == t.negative_class).any())


def test_positive_images_uniform_within_class(make_set):
    """Given the anchor, the positive is any other image of its class, each equally often."""
    ds = make_set(n_classes=2, n_groups=1, counts=[5, 5])
    ix = ClassIndex.build(ds)
    t = _many(ix, 300)
    imgs = ix.images_of(0)
    loc = {int(v): k for k, v in enumerate(imgs)}
    mask = t.anchor_class == 0
    cells = [loc[int(a)] * 5 + loc[int(p)] for a, p in zip(t.anchor[mask], t.positive[mask], strict=True)]
    counts = np.bincount(cells, minlength=25).reshape(5, 5)
    assert np.diag(counts).sum() == 0
    assert chisquare(counts[~np.eye(5, dtype=bool)]).pvalue > 1e-3
