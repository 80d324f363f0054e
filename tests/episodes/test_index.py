"""ClassIndex construction (grouping, restriction, errors) and gather."""

import pytest
import torch

from siamese_bench.datasets.imageset import ImageSet
from siamese_bench.episodes import ClassIndex, gather

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _check_grouped(ds, ix):
    labels = ds.labels[ix.order]
    for c in range(ix.num_classes):
        part = ix.order[ix.offsets[c] : ix.offsets[c] + ix.counts[c]]
        assert torch.equal(part, ix.images_of(c))
        assert bool((ds.labels[part] == ix.class_ids[c]).all())
        assert bool((part[1:] > part[:-1]).all())  # increasing image index within a class
    assert labels.numel() == int(ix.counts.sum())


def test_build_all_classes(ds):
    ix = ClassIndex.build(ds)
    assert ix.num_classes == ds.num_classes and ix.num_images == len(ds)
    assert torch.equal(ix.class_ids, torch.arange(ds.num_classes))
    assert torch.equal(ix.counts, torch.bincount(ds.labels, minlength=ds.num_classes))
    assert torch.equal(ix.offsets, torch.cumsum(ix.counts, 0) - ix.counts)
    assert torch.equal(ix.order.sort().values, torch.arange(len(ds)))  # every image exactly once
    assert torch.equal(ix.groups, ds.groups)
    assert ix.class_names == ds.class_names and ix.name == "synthetic"
    assert ix.min_count == 2
    _check_grouped(ds, ix)


@pytest.mark.parametrize("kind", ["names", "ids", "tensor"])
def test_build_subset_keeps_given_order(ds, kind):
    ids = [17, 3, 25, 8]
    classes = {
        "names": [ds.class_names[i] for i in ids],
        "ids": ids,
        "tensor": torch.tensor(ids),
    }[kind]
    ix = ClassIndex.build(ds, classes, name="part-val")
    assert ix.class_ids.tolist() == ids
    assert ix.class_names == tuple(ds.class_names[i] for i in ids)
    assert ix.groups.tolist() == [ds.groups[i].item() for i in ids]
    assert ix.counts.tolist() == [int((ds.labels == i).sum()) for i in ids]
    assert ix.name == "part-val"
    _check_grouped(ds, ix)


def test_build_errors(make_set, ds):
    with pytest.raises(ValueError, match=r"unknown class names \['nope'\]"):
        ClassIndex.build(ds, ["G0/c00", "nope"])
    with pytest.raises(ValueError, match="out of range"):
        ClassIndex.build(ds, [0, 30])
    with pytest.raises(ValueError, match="more than once"):
        ClassIndex.build(ds, [1, 2, 1])
    with pytest.raises(ValueError, match="no classes selected"):
        ClassIndex.build(ds, [])
    with pytest.raises(ValueError, match="all names"):
        ClassIndex.build(ds, ["G0/c00", 1])
    with pytest.raises(ValueError, match="integer tensor"):
        ClassIndex.build(ds, torch.tensor([1.0, 2.0]))
    empty = make_set(n_classes=4, n_groups=1, counts=[3, 0, 2, 5])
    with pytest.raises(ValueError, match="class 'G0/c01' has no images"):
        ClassIndex.build(empty)
    ix = ClassIndex.build(empty, [0, 2, 3])  # without the empty class it is fine
    assert ix.counts.tolist() == [3, 2, 5]


def test_to_keeps_content(ds):
    ix = ClassIndex.build(ds, [4, 2])
    moved = ix.to("cpu")
    for f in ("order", "offsets", "counts", "class_ids", "groups"):
        assert torch.equal(getattr(moved, f), getattr(ix, f))
    assert moved.class_names == ix.class_names and moved.device == torch.device("cpu")


def test_gather_values_and_shapes(ds, decode):
    idx = torch.tensor([5, 0, 77, 5])
    out = gather(ds.images, idx)
    assert out.shape == (4, 1, 4, 4) and out.dtype == torch.float32
    assert torch.equal(out, ds.images[idx].float() / 255)
    assert torch.equal(decode(out), idx)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    grid = torch.tensor([[1, 2, 3], [4, 5, 6]])
    out2 = gather(ds.images, grid)
    assert out2.shape == (2, 3, 1, 4, 4)
    assert torch.equal(decode(out2), grid)


def test_digits_index(digits):
    ix = ClassIndex.build(digits)
    assert ix.counts.tolist() == torch.bincount(digits.labels).tolist()
    _check_grouped(digits, ix)
    img = gather(digits.images, ix.images_of(7)[:3])
    assert img.shape == (3, 1, 8, 8) and float(img.max()) == 1.0


@pytest.mark.cuda
@needs_cuda
def test_build_on_cuda_matches_cpu(ds, decode):
    ix = ClassIndex.build(ds, [3, 1, 7])
    ixc = ClassIndex.build(ds.to("cuda"), [3, 1, 7])
    assert ixc.device.type == "cuda"
    for f in ("order", "offsets", "counts", "class_ids", "groups"):
        assert torch.equal(getattr(ixc, f).cpu(), getattr(ix, f))
    idx = torch.tensor([9, 8, 1])
    assert torch.equal(decode(gather(ds.images.cuda(), idx)).cpu(), idx)


def test_build_rejects_bad_class_ids(ds):
    """Negative ids (which would wrap around), bools (int subclasses) and bool / 2-D tensors are refused."""
    with pytest.raises(ValueError, match=r"class ids \[-1\] out of range"):
        ClassIndex.build(ds, [0, -1])
    with pytest.raises(ValueError, match="all names"):
        ClassIndex.build(ds, [True, False])
    with pytest.raises(ValueError, match="integer tensor, got torch.bool"):
        ClassIndex.build(ds, torch.tensor([True, False]))
    with pytest.raises(ValueError, match=r"integer tensor, got torch.int64 \(2, 2\)"):
        ClassIndex.build(ds, torch.tensor([[1, 2], [3, 4]]))


def test_build_empty_class_error_names_the_selected_class(make_set):
    """The empty class is found at any position of the selection (also last, past every image's label) and
    reported by its own name, not by its local position."""
    empty = make_set(n_classes=4, n_groups=1, counts=[3, 0, 2, 5])
    with pytest.raises(ValueError, match="class 'G0/c01' has no images"):
        ClassIndex.build(empty, [1, 0])
    last = make_set(n_classes=4, n_groups=1, counts=[3, 2, 5, 0])
    with pytest.raises(ValueError, match=r"class 'G0/c03' has no images \(1 empty"):
        ClassIndex.build(last)


def test_to_keeps_groups_apart_from_class_ids(ds):
    ix = ClassIndex.build(ds, [7, 13, 2])  # groups 2, 3, 2 (c % 5): differ from the class ids
    moved = ix.to("cpu")
    assert moved.groups.tolist() == [2, 3, 2] and moved.class_ids.tolist() == [7, 13, 2]
    assert moved.name == ix.name and moved.group_names == ix.group_names


def _relabel(ds, labels=None, groups=None):
    return ImageSet(
        ds.name,
        ds.images,
        ds.labels if labels is None else labels,
        ds.class_names,
        ds.groups if groups is None else groups,
        ds.group_names,
    )


def test_build_rejects_labels_and_groups_that_do_not_index_the_names(make_set):
    """A label -1 would wrap to the last class (its images silently joining it); labels past the classes, float
    labels and group ids past group_names get a clear error naming the id and the limit."""
    ds = make_set(n_classes=6, n_groups=2)
    last = ds.labels == 5
    with pytest.raises(
        ValueError, match=r"synthetic: label -1 of synthetic is out of range for its 6 class_names"
    ):
        ClassIndex.build(_relabel(ds, torch.where(last, -1, ds.labels)))
    with pytest.raises(
        ValueError, match=r"label 6 of synthetic is out of range for its 6 class_names \(valid: 0..5\)"
    ):
        ClassIndex.build(_relabel(ds, torch.where(last, 6, ds.labels)))
    with pytest.raises(
        ValueError, match="labels of synthetic must be integers indexing its class_names, got torch.float32"
    ):
        ClassIndex.build(_relabel(ds, ds.labels.float()))
    with pytest.raises(ValueError, match=r"group id 2 of synthetic is out of range for its 2 group_names"):
        ClassIndex.build(_relabel(ds, groups=torch.tensor([0, 1, 2, 0, 1, 0])))
    with pytest.raises(ValueError, match=r"group id -1 of synthetic is out of range"):
        ClassIndex.build(_relabel(ds, groups=torch.tensor([0, 1, -1, 0, 1, 0])))


def test_build_accepts_int32_labels_and_groups(make_set):
    ds = make_set(n_classes=6, n_groups=2)
    ix = ClassIndex.build(ds)
    ix32 = ClassIndex.build(_relabel(ds, ds.labels.int(), ds.groups.int()))
    for f in ("order", "offsets", "counts", "class_ids", "groups"):
        assert torch.equal(getattr(ix32, f), getattr(ix, f)) and getattr(ix32, f).dtype == torch.int64


def test_build_refuses_a_single_string_for_classes(ds):
    """A bare name was iterated as characters and reported as unknown names ['G', '0', '/', ...]."""
    with pytest.raises(ValueError, match=r"single string 'G0/c00'; pass \['G0/c00'\]"):
        ClassIndex.build(ds, "G0/c00")
    assert ClassIndex.build(ds, ["G0/c00"]).class_ids.tolist() == [0]


def test_numpy_integer_class_ids_are_ids(ds):
    """Was: ClassIndex.build(ds, np.arange(5)) -> "classes must be all names (str) or all global ids (int)"."""
    import numpy as np

    want = ClassIndex.build(ds, [0, 1, 2, 3, 4])
    for ids in (np.arange(5), list(np.arange(5, dtype=np.int32))):
        got = ClassIndex.build(ds, ids)
        assert torch.equal(got.order, want.order) and torch.equal(got.class_ids, want.class_ids)
    with pytest.raises(ValueError, match=r"all global ids \(integers, not bools\), got \['bool'\]"):
        ClassIndex.build(ds, [True, False])


def test_gather_refuses_what_would_be_wrong_or_a_torch_internal_error(ds):
    """Float images would be divided by 255 a second time (silently); bad indices raised torch's bare
    IndexError / RuntimeError; a list or an ImageSet raised AttributeError."""
    idx = torch.tensor([0, 1])
    with pytest.raises(TypeError, match="uint8"):
        gather(ds.images.float() / 255, idx)
    n = len(ds)
    with pytest.raises(ValueError, match=rf"index {n} out of range for {n} images \(valid: 0\.\.{n - 1}\)"):
        gather(ds.images, torch.tensor([0, len(ds)]))
    with pytest.raises(ValueError, match="index -1 out of range"):
        gather(ds.images, torch.tensor([-1]))
    with pytest.raises(TypeError, match="int64"):
        gather(ds.images, idx.float())
    with pytest.raises(TypeError, match="pass imageset.images"):
        gather(ds, idx)
    with pytest.raises(TypeError, match="list"):
        gather(ds.images, [0, 1])
    assert torch.equal(gather(ds.images, idx.int()), gather(ds.images, idx))  # int32 indices still work


def test_build_refuses_an_unordered_set_of_classes(ds):
    """A set's order (local class c = classes[c]) changes with PYTHONHASHSEED: episodes would differ per run."""
    with pytest.raises(ValueError, match=r"ordered list.*sorted\(classes\)"):
        ClassIndex.build(ds, {ds.class_names[0], ds.class_names[1]})
    with pytest.raises(ValueError, match="frozenset"):
        ClassIndex.build(ds, frozenset([0, 1]))
