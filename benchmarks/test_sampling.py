"""Sampling throughput, vectorised samplers side by side with per-sample Python-loop references.

Groups (one pytest-benchmark table each; "indices only" groups split the sampling cost from the image copy):
  pairs   batch of 128 verification pairs on MNIST-sized data, up to float images in [0, 1]:
          `tutorial_pair_generator` (the classic per-pair loop) vs `PairStream` + `gather` (what `train`
          does: the batches of `sample_pairs`, drawn 512 at a time; one call of the benchmark takes the 512
          batches of one draw, so the draw's cost is in every timing), on one torch thread and on all cores
          (target: >= 10x); and `sample_pairs` + `gather` called batch by batch (`per-call`).
  pairs: interleaved   the same tutorial / PairStream comparison in alternating rounds (64 tutorial batches,
          then one draw of PairStream batches), the ratio taken per round: a shared machine's speed drifts
          between the separate tests above, while the two halves of a round run within a fraction of a second.
          `gather-ceiling`: the image half alone (indices drawn beforehand): 256 uint8 rows gathered and
          converted to float32 / 255, the floor of any sampler that hands out float images this way.
  episodes 20-way 1-shot episodes (1 or 5 queries per class) on an Omniglot-sized set (964 classes x 20
          images, 105x105), indices and images: a per-episode Python loop vs `sample_episodes` (all episodes
          at once) + `gather` per episode. Both make the same per-episode float arrays; copying and converting
          the 105x105 images (44 KB of float each) dominates both sides, so the ratio stays small.

Both sides run with the allocator setting that `run` applies (`siamese_bench.allocator.keep_freed_memory`):
without it, glibc returns each batch's freed float buffer to the kernel and the next batch page-faults it in
again (about 30-50 faults per 128-pair batch here), and a whole `pytest benchmarks` run would measure this
suite with or without it depending on whether an earlier suite had set it (it cannot be undone in a process).

Real data is used when SIAMESE_BENCH_DATA is set and `siamese_bench.datasets.load_dataset` exists; otherwise
synthetic uint8 tensors of the same sizes (which one is printed and stored in extra_info).
Run: pytest benchmarks/test_sampling.py --benchmark-only -q
"""

from __future__ import annotations

import os
import random
import statistics
import time

import numpy as np
import pytest
import torch

from siamese_bench import allocator
from siamese_bench.datasets.imageset import ImageSet
from siamese_bench.episodes import ClassIndex, PairStream, gather, sample_episodes, sample_pairs

PAIR_BATCH = 128
ALL_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
EPISODES_PER_CALL = 100
ALTERNATIONS = 15  # rounds of the interleaved comparison
RESULTS: dict[str, float] = {}  # benchmark name -> items per second
NOTES: list[str] = []  # what data each group used, for the summary


def tutorial_pair_generator(
    images_np: np.ndarray,
    labels_np: np.ndarray,
    batch_size: int,
    rng: random.Random,
    copy_images: bool = True,
):
    """The classic tutorial pair generator (reference only, not part of the package).

    Yields (a (B,1,H,W) float32, b (B,1,H,W) float32, y (B,) float32) forever: a Python loop per pair picks a
    class, picks images with random.choice and copies them one at a time, alternating positive / negative.
    copy_images=False skips the images (a and b are None): the loop's index-picking cost alone.
    """
    classes = sorted(set(labels_np.tolist()))
    by_class = {c: list(np.flatnonzero(labels_np == c)) for c in classes}
    shape = (batch_size, 1, *images_np.shape[-2:])
    while True:
        a = np.zeros(shape, dtype=np.float32) if copy_images else None
        b = np.zeros(shape, dtype=np.float32) if copy_images else None
        y = np.zeros(batch_size, dtype=np.float32)
        for k in range(batch_size):
            c = rng.choice(classes)
            i = rng.choice(by_class[c])
            if k % 2 == 0:  # positive
                j = rng.choice(by_class[c])
                while j == i:
                    j = rng.choice(by_class[c])
                y[k] = 1.0
            else:  # negative
                c2 = rng.choice(classes)
                while c2 == c:
                    c2 = rng.choice(classes)
                j = rng.choice(by_class[c2])
            if copy_images:
                a[k] = images_np[i].astype(np.float32) / 255.0
                b[k] = images_np[j].astype(np.float32) / 255.0
        yield a, b, y


def naive_episode_sampler(
    images_np, by_class, n_way, k_shot, n_query, n_episodes, rng: random.Random, copy_images: bool = True
):
    """Reference: a Python loop per episode and class, copying images one at a time (copy_images=False:
    index lists only)."""
    classes = list(by_class)
    out = []
    for _ in range(n_episodes):
        support, query = [], []
        for c in rng.sample(classes, n_way):
            picked = rng.sample(by_class[c], k_shot + n_query)
            support += picked[:k_shot]
            query += picked[k_shot:]
        if not copy_images:
            out.append((support, query))
            continue
        s = np.stack([images_np[i].astype(np.float32) / 255.0 for i in support])
        q = np.stack([images_np[i].astype(np.float32) / 255.0 for i in query])
        out.append((s, q))
    return out


def _real(name: str, subset: str) -> ImageSet | None:
    root = os.environ.get("SIAMESE_BENCH_DATA")
    if not root:
        return None
    try:
        from siamese_bench.datasets import load_dataset  # type: ignore[attr-defined]
    except ImportError:
        return None
    try:
        try:
            sets = load_dataset(name, root=root)
        except TypeError:
            sets = load_dataset(name)
        return sets[subset]
    except Exception as err:  # missing files etc.: fall back to synthetic, but say so
        _say(f"[sampling benchmark] could not load real {name}: {err!r}; using synthetic data")
        return None


def _say(line: str) -> None:
    print(line)
    NOTES.append(line)


@pytest.fixture(scope="module")
def mnist() -> tuple[ImageSet, str]:
    ds = _real("mnist", "train")
    if ds is not None:
        what = f"real MNIST train ({len(ds)} images)"
    else:
        gen = torch.Generator().manual_seed(0)
        n = 60000
        ds = ImageSet(
            "synthetic-mnist",
            torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=gen),
            torch.randint(0, 10, (n,), generator=gen),
            tuple(str(i) for i in range(10)),
            torch.zeros(10, dtype=torch.int64),
            ("digits",),
        )
        what = "synthetic MNIST-sized (60000, 1, 28, 28) uint8, 10 classes"
    _say(f"[sampling benchmark] pairs data: {what}")
    return ds, what


@pytest.fixture(scope="module")
def omniglot() -> tuple[ImageSet, str]:
    ds = _real("omniglot", "background")
    if ds is not None:
        what = f"real Omniglot background ({ds.num_classes} classes, {len(ds)} images)"
    else:
        classes, per, size = 964, 20, 105
        gen = torch.Generator().manual_seed(0)
        ds = ImageSet(
            "synthetic-omniglot",
            torch.randint(0, 256, (classes * per, 1, size, size), dtype=torch.uint8, generator=gen),
            torch.arange(classes).repeat_interleave(per),
            tuple(f"Alphabet{c % 30:02d}/character{c:03d}" for c in range(classes)),
            torch.arange(classes) % 30,
            tuple(f"Alphabet{g:02d}" for g in range(30)),
        )
        what = "synthetic Omniglot-sized (964 classes x 20, 1x105x105 uint8)"
    _say(f"[sampling benchmark] episodes data: {what}")
    return ds, what


@pytest.fixture(scope="module", autouse=True)
def summary(show):
    allocator.keep_freed_memory()  # what `run` applies, for both sides
    _say(f"[sampling benchmark] allocator (both sides): {allocator.state()}")
    # one intra-op thread: the references are single-threaded, and on a shared machine OpenMP threads that
    # wait for a busy core turn microsecond ops into scheduler time slices
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    lines = list(NOTES) + [
        "[sampling benchmark] torch intra-op threads: 1 (references are single-threaded), except the "
        f"'all-cores' step ({ALL_CORES})"
    ]
    for key, ref, new, what in (
        ("pairs", "tutorial", "vectorised", "pairs/s, batch 128 + float images (target >= 10x)"),
        (
            "pairs",
            "tutorial",
            "vectorised-all-cores",
            f"pairs/s, batch 128 + float images, ours on {ALL_CORES} threads (target >= 10x)",
        ),
        ("pairs", "tutorial", "per-call", "pairs/s, batch 128 + float images, sample_pairs batch by batch"),
        (
            "pairs",
            "tutorial",
            "per-call-all-cores",
            f"pairs/s, batch 128 + float images, sample_pairs batch by batch on {ALL_CORES} threads",
        ),
        (
            "pairs",
            "tutorial",
            "gather-ceiling",
            "pairs/s, batch 128, images of pre-drawn indices alone (one thread; the ceiling of the ratio)",
        ),
        (
            "pairs",
            "tutorial",
            "gather-ceiling-all-cores",
            f"pairs/s, batch 128, images of pre-drawn indices alone ({ALL_CORES} threads; the ceiling)",
        ),
        ("pairs-idx", "tutorial", "vectorised", "pairs/s, batch 128, indices only (PairStream)"),
        ("pairs-idx", "tutorial", "per-call", "pairs/s, batch 128, indices only (sample_pairs per batch)"),
        ("episodes-q1", "naive", "vectorised", "20-way 1-shot 1-query episodes/s + float images"),
        ("episodes-q5", "naive", "vectorised", "20-way 1-shot 5-query episodes/s + float images"),
        ("episodes-idx", "naive", "vectorised", "20-way 1-shot 1-query episodes/s, indices only"),
    ):
        r, v = RESULTS.get(f"{key}/{ref}"), RESULTS.get(f"{key}/{new}")
        if r and v:
            verdict = ""
            if "target" in what:
                verdict = " (meets the 10x target)" if v >= 10 * r else " (MISSES the 10x target)"
            lines.append(f"{what}: {ref} {r:,.0f}, {new} {v:,.0f} (median times): {v / r:.1f}x{verdict}")
    show(lines)


def _on_threads(threads: int, benchmark, step):
    """benchmark(step) with `threads` torch intra-op threads (back to one afterwards)."""
    torch.set_num_threads(threads)
    try:
        return benchmark(step)
    finally:
        torch.set_num_threads(1)


def _record(benchmark, key: str, items: int, data: str) -> None:
    RESULTS[key] = items / benchmark.stats.stats.median  # median: robust to a shared machine's hiccups
    benchmark.extra_info.update({"data": data, "items_per_call": items, "items_per_s": RESULTS[key]})


def test_pairs_tutorial(benchmark, mnist):
    ds, what = mnist
    benchmark.group = "pairs: batch 128, MNIST-sized, to float images"
    gen = tutorial_pair_generator(ds.images.numpy(), ds.labels.numpy(), PAIR_BATCH, random.Random(0))
    a, b, y = benchmark(next, gen)
    assert a.shape == (PAIR_BATCH, 1, 28, 28) and y.sum() == PAIR_BATCH // 2
    _record(benchmark, "pairs/tutorial", PAIR_BATCH, what)


@pytest.mark.parametrize("threads", [1, ALL_CORES], ids=["one-thread", "all-cores"])
def test_pairs_vectorised(benchmark, mnist, threads):
    """What `train` does: `PairStream` batches, one gather of both sides each. One call takes all the batches
    of one draw (stream.ahead), so every timing includes a draw. One thread (like for like with the
    single-threaded tutorial), and every core as torch intra-op threads (what `run` does by default: the
    float conversion of the 256 gathered images is split across threads; the tutorial loop cannot use them)."""
    ds, what = mnist
    benchmark.group = "pairs: batch 128, MNIST-sized, to float images"
    stream = PairStream(ClassIndex.build(ds), PAIR_BATCH, torch.Generator().manual_seed(0))
    assert stream.fast, "PairStream fell back to per-call sampling: its mapping check failed on this torch"

    def step():
        for _ in range(stream.ahead):
            batch = next(stream)
            x = gather(ds.images, batch.ab())  # (2B, 1, H, W): a's images, then b's
            y = batch.same.float()
        return x, y

    x, y = _on_threads(threads, benchmark, step)
    a, b = x.chunk(2)
    assert a.shape == (PAIR_BATCH, 1, 28, 28) and int(y.sum()) == PAIR_BATCH // 2
    benchmark.extra_info.update({"torch_threads": threads, "batches_per_call": stream.ahead})
    key = "pairs/vectorised" if threads == 1 else "pairs/vectorised-all-cores"
    _record(benchmark, key, PAIR_BATCH * stream.ahead, what)


@pytest.mark.parametrize("threads", [1, ALL_CORES], ids=["one-thread", "all-cores"])
def test_pairs_per_call(benchmark, mnist, threads):
    """`sample_pairs` + gather, one batch per call: the per-call overhead that `PairStream` spreads out."""
    ds, what = mnist
    benchmark.group = "pairs: batch 128, MNIST-sized, to float images"
    index = ClassIndex.build(ds)
    generator = torch.Generator().manual_seed(0)

    def step():
        batch = sample_pairs(index, PAIR_BATCH, generator)
        return gather(ds.images, batch.ab()), batch.same.float()

    x, y = _on_threads(threads, benchmark, step)
    a, b = x.chunk(2)
    assert a.shape == (PAIR_BATCH, 1, 28, 28) and int(y.sum()) == PAIR_BATCH // 2
    benchmark.extra_info["torch_threads"] = threads
    _record(benchmark, "pairs/per-call" if threads == 1 else "pairs/per-call-all-cores", PAIR_BATCH, what)


@pytest.mark.parametrize("threads", [1, ALL_CORES], ids=["one-thread", "all-cores"])
def test_pairs_gather_ceiling(benchmark, mnist, threads):
    """`gather` alone on indices that `sample_pairs` drew beforehand (a fresh batch per call, as in training):
    what the vectorised step costs without its index sampling, so tutorial / this is the most that step can
    reach."""
    ds, what = mnist
    benchmark.group = "pairs: batch 128, MNIST-sized, to float images"
    index = ClassIndex.build(ds)
    generator = torch.Generator().manual_seed(0)
    drawn = []
    for _ in range(1024):
        batch = sample_pairs(index, PAIR_BATCH, generator)
        drawn.append(batch.ab())
    calls = iter(range(10**9))

    def step():
        return gather(ds.images, drawn[next(calls) % len(drawn)])

    x = _on_threads(threads, benchmark, step)
    assert x.shape == (2 * PAIR_BATCH, 1, 28, 28) and x.dtype == torch.float32
    benchmark.extra_info["torch_threads"] = threads
    _record(benchmark, "pairs/gather-ceiling" + ("" if threads == 1 else "-all-cores"), PAIR_BATCH, what)


@pytest.mark.parametrize("threads", [1, ALL_CORES], ids=["one-thread", "all-cores"])
def test_pairs_interleaved(benchmark, mnist, threads):
    """Tutorial and PairStream + gather timed in alternation, ALTERNATIONS rounds; each round's ratio of
    pairs/s (the summary gives the median and the range)."""
    ds, what = mnist
    benchmark.group = "pairs: interleaved rounds (tutorial, then PairStream), batch 128, to float images"
    tutorial = tutorial_pair_generator(ds.images.numpy(), ds.labels.numpy(), PAIR_BATCH, random.Random(0))
    stream = PairStream(ClassIndex.build(ds), PAIR_BATCH, torch.Generator().manual_seed(0))
    assert stream.fast
    ratios = []

    def rounds():
        for _ in range(ALTERNATIONS):
            t0 = time.perf_counter()
            for _ in range(64):
                next(tutorial)
            t1 = time.perf_counter()
            for _ in range(stream.ahead):
                batch = next(stream)
                gather(ds.images, batch.ab())
                batch.same.float()
            t2 = time.perf_counter()
            ratios.append(((t1 - t0) / 64) / ((t2 - t1) / stream.ahead))

    torch.set_num_threads(threads)
    try:
        benchmark.pedantic(rounds, rounds=1, iterations=1, warmup_rounds=0)
    finally:
        torch.set_num_threads(1)
    median = statistics.median(ratios)
    benchmark.extra_info.update({"data": what, "torch_threads": threads, "ratios": ratios})
    _say(
        f"pairs/s, batch 128 + float images, interleaved on {threads} thread(s) (target >= 10x): PairStream "
        f"/ tutorial per round: median {median:.1f}x, range {min(ratios):.1f}-{max(ratios):.1f}x over "
        f"{ALTERNATIONS} rounds" + (" (meets the 10x target)" if median >= 10 else " (MISSES the 10x target)")
    )


def test_pairs_indices_tutorial(benchmark, mnist):
    ds, what = mnist
    benchmark.group = "pairs: batch 128, indices only"
    gen = tutorial_pair_generator(ds.images.numpy(), ds.labels.numpy(), PAIR_BATCH, random.Random(0), False)
    benchmark(next, gen)
    _record(benchmark, "pairs-idx/tutorial", PAIR_BATCH, what)


def test_pairs_indices_vectorised(benchmark, mnist):
    ds, what = mnist
    benchmark.group = "pairs: batch 128, indices only"
    stream = PairStream(ClassIndex.build(ds), PAIR_BATCH, torch.Generator().manual_seed(0))

    def step():
        for _ in range(stream.ahead):
            batch = next(stream)
        return batch

    batch = benchmark(step)
    assert int(batch.same.sum()) == PAIR_BATCH // 2
    _record(benchmark, "pairs-idx/vectorised", PAIR_BATCH * stream.ahead, what)


def test_pairs_indices_per_call(benchmark, mnist):
    ds, what = mnist
    benchmark.group = "pairs: batch 128, indices only"
    index = ClassIndex.build(ds)
    generator = torch.Generator().manual_seed(0)
    batch = benchmark(sample_pairs, index, PAIR_BATCH, generator)
    assert int(batch.same.sum()) == PAIR_BATCH // 2
    _record(benchmark, "pairs-idx/per-call", PAIR_BATCH, what)


def _by_class(ds: ImageSet) -> dict[int, list[int]]:
    labels = ds.labels.numpy()
    order = np.argsort(labels, kind="stable")
    bounds = np.cumsum(np.bincount(labels, minlength=ds.num_classes))
    return {c: part.tolist() for c, part in enumerate(np.split(order, bounds[:-1]))}


def test_episodes_indices_naive(benchmark, omniglot):
    ds, what = omniglot
    benchmark.group = f"episodes: 20-way 1-shot 1-query, indices only, {EPISODES_PER_CALL} per call"
    by_class, rng = _by_class(ds), random.Random(0)
    benchmark(naive_episode_sampler, None, by_class, 20, 1, 1, EPISODES_PER_CALL, rng, False)
    _record(benchmark, "episodes-idx/naive", EPISODES_PER_CALL, what)


def test_episodes_indices_vectorised(benchmark, omniglot):
    ds, what = omniglot
    benchmark.group = f"episodes: 20-way 1-shot 1-query, indices only, {EPISODES_PER_CALL} per call"
    index = ClassIndex.build(ds)
    seeds = iter(range(10**9))
    benchmark(lambda: sample_episodes(index, 20, 1, 1, EPISODES_PER_CALL, seed=next(seeds)))
    _record(benchmark, "episodes-idx/vectorised", EPISODES_PER_CALL, what)


@pytest.mark.parametrize("n_query", [1, 5])
def test_episodes_naive(benchmark, omniglot, n_query):
    ds, what = omniglot
    benchmark.group = f"episodes: 20-way 1-shot {n_query}-query, Omniglot-sized, {EPISODES_PER_CALL} per call"
    by_class, rng = _by_class(ds), random.Random(0)
    out = benchmark(
        naive_episode_sampler, ds.images.numpy(), by_class, 20, 1, n_query, EPISODES_PER_CALL, rng
    )
    assert out[0][1].shape == (20 * n_query, 1, 105, 105)
    _record(benchmark, f"episodes-q{n_query}/naive", EPISODES_PER_CALL, what)


@pytest.mark.parametrize("n_query", [1, 5])
def test_episodes_vectorised(benchmark, omniglot, n_query):
    ds, what = omniglot
    benchmark.group = f"episodes: 20-way 1-shot {n_query}-query, Omniglot-sized, {EPISODES_PER_CALL} per call"
    index = ClassIndex.build(ds)
    seeds = iter(range(10**9))

    def step():  # episodes drawn at once, images gathered episode by episode (as a consumer takes them)
        ep = sample_episodes(index, 20, 1, n_query, EPISODES_PER_CALL, seed=next(seeds))
        return [
            (gather(ds.images, s), gather(ds.images, q)) for s, q in zip(ep.support, ep.query, strict=True)
        ]

    out = benchmark(step)
    assert len(out) == EPISODES_PER_CALL and out[0][1].shape == (20 * n_query, 1, 105, 105)
    _record(benchmark, f"episodes-q{n_query}/vectorised", EPISODES_PER_CALL, what)
