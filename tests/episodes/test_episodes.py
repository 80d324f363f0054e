"""sample_episodes and Episodes: structure, uniformity, within-group episodes, determinism, save/load,
errors."""

import os

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from siamese_bench.episodes import ClassIndex, Episodes, episodes_fingerprint, gather, sample_episodes
from siamese_bench.episodes.episodes import FORMAT_VERSION

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _check_structure(ds, ep, n, k, q):
    e = len(ep)
    assert ep.support.shape == (e, n * k) and ep.query.shape == (e, n * q) and ep.classes.shape == (e, n)
    assert ep.support.dtype == ep.query.dtype == ep.classes.dtype == torch.int64
    assert torch.equal(ep.support_labels(), torch.arange(n).repeat_interleave(k))
    assert torch.equal(ep.query_labels(), torch.arange(n).repeat_interleave(q))
    # class-major: column j of the support belongs to classes[:, support_labels[j]]
    assert torch.equal(ds.labels[ep.support], ep.classes[:, ep.support_labels()])
    assert torch.equal(ds.labels[ep.query], ep.classes[:, ep.query_labels()])
    # classes distinct within an episode
    s = ep.classes.sort(1).values
    assert bool((s[:, 1:] != s[:, :-1]).all())
    # no image twice in an episode: support and query disjoint, no repeats inside either
    imgs = torch.cat([ep.support, ep.query], 1).sort(1).values
    assert bool((imgs[:, 1:] != imgs[:, :-1]).all())


@pytest.mark.parametrize(("n", "k", "q"), [(5, 1, 1), (20, 1, 1), (3, 1, 1), (2, 1, 1)])
def test_structure(ds, n, k, q):
    ep = sample_episodes(ClassIndex.build(ds), n, k, q, 300, seed=0)
    assert len(ep) == 300 and (ep.n_way, ep.k_shot, ep.n_query, ep.seed) == (n, k, q, 0)
    _check_structure(ds, ep, n, k, q)


def test_structure_many_shots(make_set):
    ds = make_set(counts=[10 + c % 5 for c in range(30)])
    ep = sample_episodes(ClassIndex.build(ds), 5, 5, 5, 200, seed=1)
    _check_structure(ds, ep, 5, 5, 5)


def test_images_match_gather(ds, decode):
    ep = sample_episodes(ClassIndex.build(ds), 4, 1, 1, 10, seed=3)
    imgs = gather(ds.images, ep.support)
    assert imgs.shape == (10, 4, 1, 4, 4)
    assert torch.equal(decode(imgs), ep.support)


def test_classes_and_images_uniform(make_set):
    ds = make_set(counts=[6] * 30)
    ix = ClassIndex.build(ds)
    ep = sample_episodes(ix, 5, 1, 2, 2000, seed=11)
    freq = torch.bincount(ep.classes.flatten(), minlength=30).numpy()
    assert chisquare(freq).pvalue > 1e-3
    # images of class 0: each of its 6 images equally often, in support and in query
    ids = ix.images_of(0)
    for part in (ep.support, ep.query):
        hits = np.array([int((part == i).sum()) for i in ids])
        assert chisquare(hits).pvalue > 1e-3
    # order of classes within an episode is random: class 0 appears at every position
    pos = (ep.classes == 0).float().sum(0).numpy()
    assert chisquare(pos).pvalue > 1e-3
    # can fail: a skewed expectation is rejected
    skew = np.linspace(1, 2, 30)
    assert chisquare(freq, skew / skew.sum() * freq.sum()).pvalue < 1e-10


def test_subset_index_uses_only_its_classes(ds):
    keep = [1, 4, 7, 10, 13, 16, 19]
    ep = sample_episodes(ClassIndex.build(ds, keep), 5, 1, 1, 200, seed=0)
    assert set(ep.classes.flatten().tolist()) == set(keep)
    _check_structure(ds, ep, 5, 1, 1)


def test_within_group(make_set):
    # group sizes 10, 8, 6, 4, 2
    groups = [0] * 10 + [1] * 8 + [2] * 6 + [3] * 4 + [4] * 2
    ds = make_set(counts=[4] * 30, groups=groups)
    ep = sample_episodes(ClassIndex.build(ds), 5, 1, 1, 1500, seed=2, within_group=True)
    assert ep.within_group
    _check_structure(ds, ep, 5, 1, 1)
    g = ds.groups[ep.classes]
    assert bool((g == g[:, :1]).all())  # every episode inside one group
    per_group = torch.bincount(g[:, 0], minlength=5).numpy()
    assert per_group[3] == per_group[4] == 0  # groups with < 5 classes are never used
    assert chisquare(per_group[:3]).pvalue > 1e-3  # uniform over the eligible groups
    free = sample_episodes(ClassIndex.build(ds), 5, 1, 1, 200, seed=2)
    fg = ds.groups[free.classes]
    assert not bool((fg == fg[:, :1]).all())  # without the flag episodes mix groups


def test_determinism_and_fingerprint(ds):
    ix = ClassIndex.build(ds)
    a = sample_episodes(ix, 5, 1, 1, 100, seed=4)
    b = sample_episodes(ix, 5, 1, 1, 100, seed=4)
    c = sample_episodes(ix, 5, 1, 1, 100, seed=5)
    assert (
        torch.equal(a.support, b.support)
        and torch.equal(a.query, b.query)
        and torch.equal(a.classes, b.classes)
    )
    assert episodes_fingerprint(a) == episodes_fingerprint(b) != episodes_fingerprint(c)
    assert len(episodes_fingerprint(a)) == 64
    # provenance is not part of the fingerprint; content is
    relabelled = Episodes(a.support, a.query, a.classes, 5, 1, 1, seed=99, split_hash="x")
    assert episodes_fingerprint(relabelled) == episodes_fingerprint(a)
    changed = Episodes(a.support.flip(0), a.query, a.classes, 5, 1, 1, seed=4)
    assert episodes_fingerprint(changed) != episodes_fingerprint(a)


def test_large_classes_chunked(make_set):
    """Classes much larger than the key budget per episode still work (chunks of episodes)."""
    ds = make_set(n_classes=3, n_groups=1, counts=[3000, 2500, 2000], size=4)
    ep = sample_episodes(ClassIndex.build(ds), 3, 2, 3, 1000, seed=0)
    _check_structure(ds, ep, 3, 2, 3)


def test_save_load_round_trip(ds, tmp_path):
    ep = sample_episodes(ClassIndex.build(ds), 5, 1, 1, 50, seed=8, within_group=True, split_hash="abc123")
    path = tmp_path / "sub" / "episodes.pt"
    ep.save(path)
    assert path.stat().st_mode & 0o777 == 0o644  # readable by collaborators (mkstemp alone gives 0600)
    assert [p.name for p in path.parent.iterdir()] == ["episodes.pt"]  # no temp file left
    back = Episodes.load(path)
    for f in ("support", "query", "classes"):
        assert torch.equal(getattr(back, f), getattr(ep, f))
    assert (back.n_way, back.k_shot, back.n_query, back.seed, back.split_hash, back.within_group) == (
        5,
        1,
        1,
        8,
        "abc123",
        True,
    )
    assert episodes_fingerprint(back) == episodes_fingerprint(ep)
    assert os.listdir(path.parent) == ["episodes.pt"]  # no temp file left behind
    other = sample_episodes(ClassIndex.build(ds), 3, 1, 1, 5, seed=1)
    other.save(path)  # overwrite in place
    assert episodes_fingerprint(Episodes.load(path)) == episodes_fingerprint(other)


def test_files_store_int32_and_version_1_int64_files_still_load(ds, tmp_path):
    ep = sample_episodes(ClassIndex.build(ds), 3, 1, 1, 7, seed=4)
    path = tmp_path / "ep.pt"
    ep.save(path)
    blob = torch.load(path, weights_only=True)
    assert blob["version"] == FORMAT_VERSION == 2
    assert all(blob[k].dtype == torch.int32 for k in ("support", "query", "classes"))
    back = Episodes.load(path)
    assert back.support.dtype == torch.int64 and episodes_fingerprint(back) == episodes_fingerprint(ep)
    for k in ("support", "query", "classes"):
        assert torch.equal(getattr(back, k), getattr(ep, k))
    old = {**blob, "version": 1, **{k: getattr(ep, k) for k in ("support", "query", "classes")}}
    torch.save(old, tmp_path / "v1.pt")  # as version 1 wrote it: int64 tensors
    assert episodes_fingerprint(Episodes.load(tmp_path / "v1.pt")) == episodes_fingerprint(ep)


def test_load_errors(ds, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pt does not exist"):
        Episodes.load(tmp_path / "missing.pt")
    bad = tmp_path / "garbage.pt"
    bad.write_bytes(b"not a torch file at all")
    with pytest.raises(ValueError, match="garbage.pt: not a readable episodes file"):
        Episodes.load(bad)
    ep = sample_episodes(ClassIndex.build(ds), 3, 1, 1, 5, seed=1)
    good = tmp_path / "good.pt"
    ep.save(good)
    blob = torch.load(good, weights_only=True)
    for change, pattern in (
        ({"version": FORMAT_VERSION + 1}, f"version {FORMAT_VERSION + 1}"),
        ({"format": "something-else"}, "not a siamese_bench episodes file"),
        ({"support": blob["support"] + 1}, "does not match its stored fingerprint"),
        ({"n_way": 4}, "corrupt episodes file"),
    ):
        path = tmp_path / "changed.pt"
        torch.save({**blob, **change}, path)
        with pytest.raises(ValueError, match=pattern):
            Episodes.load(path)
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="not a siamese_bench episodes file"):
        Episodes.load(tmp_path / "list.pt")


def test_episodes_shape_validation():
    with pytest.raises(ValueError, match=r"Episodes.support must be int64 of shape \(2, 6\)"):
        Episodes(
            torch.zeros(2, 5, dtype=torch.long),
            torch.zeros(2, 3, dtype=torch.long),
            torch.zeros(2, 3, dtype=torch.long),
            3,
            2,
            1,
            seed=0,
        )


def test_errors(make_set, ds):
    ix = ClassIndex.build(ds, name="val")
    with pytest.raises(ValueError, match="n_way=31 but val has only 30 classes"):
        sample_episodes(ix, 31, 1, 1, 10, seed=0)
    with pytest.raises(ValueError, match="n_way must be an int >= 2, got 1"):
        sample_episodes(ix, 1, 1, 1, 10, seed=0)
    with pytest.raises(ValueError, match="k_shot must be an int >= 1, got 0"):
        sample_episodes(ix, 5, 0, 1, 10, seed=0)
    with pytest.raises(ValueError, match="n_query must be an int >= 1, got 0"):
        sample_episodes(ix, 5, 1, 0, 10, seed=0)
    with pytest.raises(ValueError, match="n_episodes must be an int >= 1, got 0"):
        sample_episodes(ix, 5, 1, 1, 0, seed=0)
    # K + Q above the smallest class: named with its count
    with pytest.raises(
        ValueError, match="k_shot \\+ n_query = 3 but class 'G0/c00' of val has only 2 images"
    ):
        sample_episodes(ix, 5, 1, 2, 10, seed=0)
    groups = [0] * 4 + [1] * 3 + [2] * 2
    small = make_set(n_classes=9, counts=[3] * 9, groups=groups)
    with pytest.raises(ValueError, match="largest group of synthetic \\('G0'\\) has 4"):
        sample_episodes(ClassIndex.build(small), 5, 1, 1, 10, seed=0, within_group=True)
    ep = sample_episodes(ClassIndex.build(small), 4, 1, 1, 10, seed=0, within_group=True)
    assert bool((ep.classes < 4).all())  # only group 0 has 4 classes


def test_to_device_keeps_content(ds):
    ep = sample_episodes(ClassIndex.build(ds), 5, 1, 1, 10, seed=0)
    moved = ep.to("cpu")
    assert episodes_fingerprint(moved) == episodes_fingerprint(ep) and moved.device.type == "cpu"


def test_digits_episodes(digits):
    ep = sample_episodes(ClassIndex.build(digits), 10, 5, 15, 100, seed=0)
    _check_structure(digits, ep, 10, 5, 15)
    assert sorted(ep.classes[0].tolist()) == list(range(10))


@pytest.mark.cuda
@needs_cuda
def test_cuda_index_same_episodes(ds):
    ix = ClassIndex.build(ds)
    cpu = sample_episodes(ix, 5, 1, 1, 100, seed=6, within_group=True)
    gpu = sample_episodes(ix.to("cuda"), 5, 1, 1, 100, seed=6, within_group=True)
    assert gpu.support.device.type == "cuda" and gpu.support_labels().device.type == "cuda"
    assert episodes_fingerprint(gpu) == episodes_fingerprint(cpu)


@pytest.mark.parametrize(("n", "m"), [(5, 3), (4, 4), (6, 1)])
def test_sample_distinct_uniform_over_ordered_draws(n, m):
    """Floyd + shuffle: every ordered m-tuple of distinct values in [0, n) equally likely."""
    from itertools import permutations

    from siamese_bench.episodes.episodes import _sample_distinct

    rows = 20000
    sizes = torch.full((rows,), n)
    sizes[::2] = n + 3  # rows of another size in the same call
    out = _sample_distinct(sizes, m, torch.Generator().manual_seed(0))
    assert out.shape == (rows, m)
    srt = out.sort(1).values
    assert (
        bool((srt[:, 1:] != srt[:, :-1]).all())
        and bool((out >= 0).all())
        and bool((out < sizes[:, None]).all())
    )
    cells = {p: i for i, p in enumerate(permutations(range(n), m))}
    sub = out[1::2]  # the rows of size n
    hits = np.bincount([cells[tuple(row)] for row in sub.tolist()], minlength=len(cells))
    assert hits.min() > 0
    assert chisquare(hits).pvalue > 1e-3


def test_images_uniform_within_classes_of_unequal_size(make_set):
    """Every image of a large class is drawn, equally often, next to classes of three images."""
    ds = make_set(n_classes=10, n_groups=1, counts=[3] * 9 + [40])
    ix = ClassIndex.build(ds)
    ep = sample_episodes(ix, 5, 1, 2, 3000, seed=5)
    ids = ix.images_of(9)
    drawn = torch.cat([ep.support.flatten(), ep.query.flatten()])
    hits = np.array([int((drawn == i).sum()) for i in ids])
    assert hits.min() > 0 and chisquare(hits).pvalue > 1e-3
    small = ix.images_of(0)
    small_hits = np.array([int((drawn == i).sum()) for i in small])
    assert chisquare(small_hits).pvalue > 1e-3


def test_within_group_with_interleaved_groups(make_set):
    """Groups whose classes are not contiguous in class order (as in any real dataset's ids)."""
    groups = [(7 * c) % 3 for c in range(30)]  # 0, 1, 2, 0, ... permuted: never sorted
    ds = make_set(counts=[4] * 30, groups=groups)
    ep = sample_episodes(ClassIndex.build(ds), 5, 1, 1, 900, seed=3, within_group=True)
    _check_structure(ds, ep, 5, 1, 1)
    g = ds.groups[ep.classes]
    assert bool((g == g[:, :1]).all())
    assert chisquare(torch.bincount(g[:, 0], minlength=3).numpy()).pvalue > 1e-3
    freq = torch.bincount(ep.classes.flatten(), minlength=30).numpy()
    assert chisquare(freq).pvalue > 1e-3  # every class of every group as often


PINNED_EPISODES = {  # change only on purpose: every committed result's test episodes come from this stream
    False: "e650720f2a794ac742e5f41e142642907f5a274475948be4eddacce2113f6a1f",
    True: "f7706134e9fa57c888ddef5e34de10c297b38069dcffdb84913dd4568cab8297",
}


@pytest.mark.parametrize("within_group", [False, True])
def test_episode_stream_is_pinned(make_set, within_group):
    ep = sample_episodes(ClassIndex.build(make_set()), 5, 1, 1, 50, seed=7, within_group=within_group)
    assert episodes_fingerprint(ep) == PINNED_EPISODES[within_group]


def test_episodes_validation_checks_dtype_and_query_width():
    def make(support, query, classes, k=1, q=1):
        return Episodes(support, query, classes, 3, k, q, seed=0)

    ok = torch.zeros(2, 3, dtype=torch.long)
    make(ok, ok, ok)
    with pytest.raises(
        ValueError, match=r"Episodes.support must be int64 of shape \(2, 3\).*got torch.int32"
    ):
        make(ok.int(), ok, ok)
    with pytest.raises(ValueError, match=r"Episodes.query must be int64 of shape \(2, 6\)"):
        make(ok, ok, ok, q=2)


def test_to_keeps_provenance(ds):
    ep = sample_episodes(ClassIndex.build(ds), 5, 1, 1, 4, seed=3, within_group=True, split_hash="h")
    moved = ep.to("cpu")
    assert (moved.seed, moved.split_hash, moved.within_group) == (3, "h", True)
    assert (moved.n_way, moved.k_shot, moved.n_query) == (5, 1, 1)


def test_bool_sizes_are_rejected(ds):
    ix = ClassIndex.build(ds)
    with pytest.raises(ValueError, match="k_shot must be an int >= 1, got True"):
        sample_episodes(ix, 5, True, 1, 10, seed=0)
    with pytest.raises(ValueError, match="n_episodes must be an int >= 1, got True"):
        sample_episodes(ix, 5, 1, 1, True, seed=0)


def test_files_keep_int64_values_outside_int32(tmp_path):
    """Values that int32 cannot hold are stored as int64 (no silent wrap-around), the int32 bounds
    themselves as int32; an empty record saves too."""
    big = torch.tensor([[2**31 - 1, -(2**31)], [2**31, 0]])
    low = torch.tensor([[0, 1], [-(2**31) - 1, 2]])
    fits = torch.tensor([[2**31 - 1, -(2**31)], [5, 0]])
    ep = Episodes(big, low, fits, 2, 1, 1, seed=0)
    ep.save(tmp_path / "big.pt")
    blob = torch.load(tmp_path / "big.pt", weights_only=True)
    assert [blob[k].dtype for k in ("support", "query", "classes")] == [torch.int64, torch.int64, torch.int32]
    back = Episodes.load(tmp_path / "big.pt")
    for k in ("support", "query", "classes"):
        assert torch.equal(getattr(back, k), getattr(ep, k))
    none = torch.zeros(0, 2, dtype=torch.long)
    Episodes(none, none, none, 2, 1, 1, seed=0).save(tmp_path / "empty.pt")
    assert len(Episodes.load(tmp_path / "empty.pt")) == 0


def test_load_refuses_malformed_fields(ds, tmp_path):
    """A float index tensor, a scalar `classes`, a missing field or a field of another type (within_group
    "False" read as True) is a corrupt file (ValueError), even where the fingerprint would still match."""
    ep = sample_episodes(ClassIndex.build(ds), 3, 1, 1, 5, seed=1)
    ep.save(tmp_path / "good.pt")
    blob = torch.load(tmp_path / "good.pt", weights_only=True)
    without = {k: v for k, v in blob.items() if k != "within_group"}
    edited = [  # hand edits the fingerprint does not cover, which int() / bool() would have accepted
        {**blob, "within_group": "False"},
        {**blob, "within_group": 0},
        {**blob, "n_way": 3.0},
        {**blob, "seed": True},
        {**blob, "split_hash": None},
    ]
    for bad in (
        {**blob, "support": blob["support"].double()},
        {**blob, "classes": torch.tensor(3)},
        without,
        *edited,
    ):
        torch.save(bad, tmp_path / "bad.pt")
        with pytest.raises(ValueError, match="corrupt episodes file"):
            Episodes.load(tmp_path / "bad.pt")


@pytest.mark.parametrize("seed", [-1, 2**64, np.float64(3.0), 3.0, True, None])
def test_bad_seeds_are_rejected(ds, seed):
    """-1 marks episodes not sampled here; 2**64 overflows; floats and bools reached torch (numpy ints are
    converted to Python ints: test_numpy_integers_are_ints_and_give_the_same_episodes)."""
    with pytest.raises(ValueError, match=r"seed must be an int in \[0, 2\*\*64\)"):
        sample_episodes(ClassIndex.build(ds), 5, 1, 1, 3, seed)


def test_seed_range_ends_are_accepted(ds):
    ix = ClassIndex.build(ds)
    assert sample_episodes(ix, 5, 1, 1, 3, 2**64 - 1).seed == 2**64 - 1
    assert len(sample_episodes(ix, 5, 1, 1, 3, 0)) == 3


@pytest.mark.parametrize("within_group", ["no", 1, None])
def test_within_group_must_be_a_bool(ds, within_group):
    """within_group='no' (truthy) drew within-group episodes and recorded 'no' as their provenance."""
    with pytest.raises(ValueError, match="within_group must be True or False"):
        sample_episodes(ClassIndex.build(ds), 2, 1, 1, 3, 0, within_group=within_group)
    with pytest.raises(ValueError, match="same_positions must be True or False"):
        sample_episodes(ClassIndex.build(ds), 2, 1, 1, 3, 0, same_positions=within_group)


def _positions(index: ClassIndex) -> torch.Tensor:
    """(num images,) the position of each image in its class's list (-1 for images outside the index)."""
    pos = torch.full((int(index.order.max()) + 1,), -1)
    local = torch.arange(index.order.numel()) - index.offsets.repeat_interleave(index.counts)
    pos[index.order] = local
    return pos


@pytest.mark.parametrize(
    ("n", "k", "q", "within_group"), [(5, 1, 1, False), (4, 2, 3, False), (3, 1, 1, True)]
)
def test_same_positions_episodes(make_set, n, k, q, within_group):
    """Every class of an episode takes its K + Q images at the same K + Q distinct positions of its class
    list, below the smallest class's count (classes of 5 to 13 images here); the episodes are otherwise
    ordinary ones (classes distinct, support and query disjoint, within one group when asked)."""
    ds = make_set(counts=[5 + (3 * c) % 9 for c in range(30)])
    index = ClassIndex.build(ds)
    ep = sample_episodes(index, n, k, q, 400, seed=4, within_group=within_group, same_positions=True)
    _check_structure(ds, ep, n, k, q)
    assert ep.same_positions and ep.within_group == within_group
    pos = _positions(index)
    s = pos[ep.support].view(len(ep), n, k)
    qp = pos[ep.query].view(len(ep), n, q)
    assert bool((s == s[:, :1]).all()) and bool((qp == qp[:, :1]).all())  # shared by the episode's classes
    shared = torch.cat([s[:, 0], qp[:, 0]], 1)  # (E, K+Q) the positions of the episode, supports first
    both = shared.sort(1).values
    assert bool((both[:, 1:] != both[:, :-1]).all()) and int(both.max()) < 5  # distinct, below the smallest
    assert len(set(map(tuple, shared.tolist()))) > 1  # drawn per episode, not one fixed order
    if within_group:
        assert bool((ds.groups[ep.classes] == ds.groups[ep.classes[:, :1]]).all())
    other = sample_episodes(index, n, k, q, 400, seed=4, within_group=within_group)
    assert not other.same_positions
    assert not bool(
        (pos[other.support].view(len(ep), n, k) == pos[other.support].view(len(ep), n, k)[:, :1]).all()
    )


def test_same_positions_are_uniform_ordered_pairs(make_set):
    """1-shot 1-query: the (support, query) position pair of an episode is uniform over the 6 * 5 ordered pairs
    of distinct positions; the classes stay uniform."""
    ds = make_set(counts=[6] * 30)
    index = ClassIndex.build(ds)
    ep = sample_episodes(index, 5, 1, 1, 3000, seed=9, same_positions=True)
    pos = _positions(index)
    pairs = pos[ep.support[:, 0]] * 6 + pos[ep.query[:, 0]]
    freq = torch.bincount(pairs, minlength=36).view(6, 6)
    assert int(freq.diagonal().sum()) == 0
    off = freq[~torch.eye(6, dtype=torch.bool)].numpy()
    assert chisquare(off).pvalue > 1e-3
    assert chisquare(torch.bincount(ep.classes.flatten(), minlength=30).numpy()).pvalue > 1e-3


def test_same_positions_stream_is_pinned(make_set):
    """lake-drawers' test episodes come from this stream: change only on purpose (with a version bump)."""
    ep = sample_episodes(
        ClassIndex.build(make_set()), 5, 1, 1, 50, seed=7, within_group=True, same_positions=True
    )
    assert episodes_fingerprint(ep) == "25dd72e0cd3977943f5c44c17ba3cf183ab105d964585fef992ef231517ce871"


def test_same_positions_is_saved_and_older_files_read_as_false(ds, tmp_path):
    ep = sample_episodes(ClassIndex.build(ds), 3, 1, 1, 5, seed=1, same_positions=True, split_hash="h")
    assert ep.to("cpu").same_positions
    ep.save(tmp_path / "e.pt")
    assert Episodes.load(tmp_path / "e.pt").same_positions
    blob = torch.load(tmp_path / "e.pt", weights_only=True)
    torch.save({k: v for k, v in blob.items() if k != "same_positions"}, tmp_path / "old.pt")
    assert Episodes.load(tmp_path / "old.pt").same_positions is False  # written before the field existed
    torch.save({**blob, "same_positions": "True"}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="corrupt episodes file"):
        Episodes.load(tmp_path / "bad.pt")


def test_numpy_integers_are_ints_and_give_the_same_episodes(ds):
    """Was: "seed must be an int in [0, 2**64), got np.int64(3)" (likewise n_way etc.)."""
    ix = ClassIndex.build(ds)
    want = sample_episodes(ix, 5, 1, 1, 10, seed=3)
    got = sample_episodes(ix, np.int64(5), np.int32(1), np.int64(1), np.uint16(10), seed=np.uint64(3))
    assert episodes_fingerprint(got) == episodes_fingerprint(want)
    assert type(got.seed) is int and type(got.n_way) is int and got.seed == 3
    with pytest.raises(ValueError, match="seed must be an int in"):
        sample_episodes(ix, 5, 1, 1, 10, seed=np.float64(3))
    with pytest.raises(ValueError, match="n_way must be an int >= 2, got True"):
        sample_episodes(ix, True, 1, 1, 10, seed=3)


def test_a_single_class_index_says_episodes_need_two_classes(make_set):
    """It said 'use n_way <= 1', a value n_way's own check refuses."""
    one = ClassIndex.build(make_set(n_classes=1, n_groups=1, counts=[5]), name="mine")
    with pytest.raises(ValueError, match="mine has only 1 class; episodes need at least 2 classes") as err:
        sample_episodes(one, 2, 1, 1, 10, seed=0)
    assert "n_way <= 1" not in str(err.value)
