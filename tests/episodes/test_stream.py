"""PairStream: the batches (and generator states) of repeated sample_pairs calls, on the fast path and on the
per-call fallback; the mapping check that picks between them; argument errors."""

import numpy as np
import pytest
import torch

from siamese_bench.episodes import ClassIndex, PairStream, sample_pairs
from siamese_bench.episodes import stream as stream_mod

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _same_as_sample_pairs(ix, batch_size, seed, n, ahead=None, **kw):
    """Draw n batches both ways from one seed; assert batches and generator states agree after each."""
    g_ref, g_stream = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
    stream = PairStream(ix, batch_size, g_stream, ahead=ahead, **kw)
    for i in range(n):
        want, got = sample_pairs(ix, batch_size, g_ref, **kw), next(stream)
        for field in ("a", "b", "same"):
            x, y = getattr(want, field), getattr(got, field)
            assert x.dtype == y.dtype and x.shape == y.shape and y.is_contiguous(), (i, field)
            assert torch.equal(x, y), (i, field)
        joined = got.ab()  # what train gathers: a fast stream's own (2B,) copy, no torch.cat per step
        assert (got.joined is joined) == stream.fast and joined.is_contiguous(), i
        assert torch.equal(joined, torch.cat([want.a, want.b])), i
        assert torch.equal(stream.generator_state(), g_ref.get_state()), i
    return stream


@pytest.mark.parametrize("batch_size,ahead", [(2, 3), (8, 5), (64, 4), (128, None), (512, 2)])
@pytest.mark.parametrize("seed", [0, 12345])
def test_fast_path_gives_sample_pairs_batches(ds, batch_size, ahead, seed):
    stream = _same_as_sample_pairs(ClassIndex.build(ds), batch_size, seed, 11, ahead=ahead)
    assert stream.fast


def test_fast_path_on_unbalanced_small_classes(make_set):
    # classes of 2..10 images: the shifted "other image" draw and class-size modulo are exercised
    ix = ClassIndex.build(make_set(n_classes=7, counts=[2, 3, 2, 10, 5, 2, 4]))
    assert _same_as_sample_pairs(ix, 16, 3, 40, ahead=6).fast


def test_fast_path_on_a_generator_mid_stream(ds):
    """A generator that already drew an odd number of 32-bit outputs (randperm of 6: 5 swaps) and crossed a
    Mersenne Twister refill (624 outputs)."""
    ix = ClassIndex.build(ds)
    g_ref, g_stream = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    for g in (g_ref, g_stream):
        torch.randint(2**62, (400,), generator=g)
        torch.randperm(6, generator=g)
    stream = PairStream(ix, 32, g_stream, ahead=9)
    assert stream.fast
    for _ in range(25):
        assert torch.equal(sample_pairs(ix, 32, g_ref).b, next(stream).b)
    assert torch.equal(stream.generator_state(), g_ref.get_state())


def test_generator_state_mid_chunk_continues_the_stream(ds):
    """A snapshot taken between refills (generator_state) resumes with the batches that would have come."""
    ix = ClassIndex.build(ds)
    g = torch.Generator().manual_seed(1)
    stream = PairStream(ix, 16, g, ahead=10)
    for _ in range(4):
        next(stream)
    assert not torch.equal(stream.generator_state(), g.get_state())  # g is 6 batches further on
    resumed = PairStream(ix, 16, torch.Generator().set_state(stream.generator_state()), ahead=10)
    for _ in range(15):
        assert torch.equal(next(stream).a, next(resumed).a)


@pytest.mark.parametrize(
    "kw",
    [
        {"strategy": "proportional"},
        {"strategy": "custom", "class_probs": [1.0] * 30},
        {"hard_negatives": 0.5},
    ],
    ids=["proportional", "custom", "hard-negatives"],
)
def test_other_sampling_options_fall_back_to_sample_pairs(ds, kw):
    stream = _same_as_sample_pairs(ClassIndex.build(ds), 16, 0, 6, ahead=4, **kw)
    assert not stream.fast


def test_large_batches_fall_back(ds):
    assert not _same_as_sample_pairs(ClassIndex.build(ds), 1024, 0, 2).fast


def test_broken_mapping_is_detected_and_falls_back(ds, monkeypatch):
    """If torch's randperm were not the Fisher-Yates shuffle assumed here, the check must see it."""

    def wrong(u, n):  # no shuffle at all
        return np.tile(np.arange(n) < n // 2, (u.shape[0], 1))

    monkeypatch.setattr(stream_mod, "_first_half_places", wrong)
    stream = _same_as_sample_pairs(ClassIndex.build(ds), 8, 0, 5, ahead=3)
    assert not stream.fast


def test_wrong_state_update_is_detected(ds, monkeypatch):
    """Right batches but a wrong generator state afterwards (one output short) must fail the check too."""
    real = stream_mod._mt_outputs

    def short(state, n):
        out, _ = real(state, n)
        return out, real(state, n - 1)[1]

    monkeypatch.setattr(stream_mod, "_mt_outputs", short)
    assert not PairStream(ClassIndex.build(ds), 8, torch.Generator().manual_seed(0)).fast


def test_unreadable_generator_state_falls_back(ds, monkeypatch):
    monkeypatch.setattr(stream_mod, "_STATE_BYTES", 1)
    assert not PairStream(ClassIndex.build(ds), 8, torch.Generator().manual_seed(0)).fast


def test_argument_errors(ds):
    ix = ClassIndex.build(ds)
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="batch_size must be even"):
        PairStream(ix, 7, g)
    with pytest.raises(ValueError, match="generator must be a torch.Generator"):
        PairStream(ix, 8, np.random.default_rng(0))
    with pytest.raises(ValueError, match="unknown sampling strategy"):
        PairStream(ix, 8, g, strategy="random")
    for ahead in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="ahead must be a positive int"):
            PairStream(ix, 8, g, ahead=ahead)
    assert torch.equal(g.get_state(), torch.Generator().manual_seed(0).get_state())  # nothing drawn


def test_default_ahead_draws_about_65536_pairs(ds):
    ix = ClassIndex.build(ds)
    assert PairStream(ix, 128, torch.Generator()).ahead == 512
    assert PairStream(ix, 2, torch.Generator()).ahead == 32768


@pytest.mark.cuda
@needs_cuda
def test_cuda_index_gives_the_cpu_batches_on_the_device(ds):
    ix = ClassIndex.build(ds)
    ref = PairStream(ix, 32, torch.Generator().manual_seed(0), ahead=3)
    dev = PairStream(ix.to("cuda"), 32, torch.Generator().manual_seed(0), ahead=3)
    assert dev.fast
    for _ in range(7):
        x, y = next(ref), next(dev)
        assert y.a.device.type == "cuda" and torch.equal(x.a, y.a.cpu()) and torch.equal(x.same, y.same.cpu())
        assert y.ab().device.type == "cuda" and torch.equal(x.ab(), y.ab().cpu())


@pytest.mark.cuda
@needs_cuda
def test_cuda_generator_falls_back(ds):
    ix = ClassIndex.build(ds).to("cuda")
    g_ref, g = (torch.Generator(device="cuda").manual_seed(0) for _ in range(2))
    stream = PairStream(ix, 16, g)
    assert not stream.fast
    assert torch.equal(sample_pairs(ix, 16, g_ref).a, next(stream).a)


def test_numpy_integer_batch_size_and_ahead(ds):
    ix = ClassIndex.build(ds)
    stream = _same_as_sample_pairs(ix, np.int64(8), 4, 5, ahead=np.int64(2))
    assert type(stream.batch_size) is int and type(stream.ahead) is int
    with pytest.raises(ValueError, match="ahead must be a positive int .*, got True"):
        PairStream(ix, 8, torch.Generator().manual_seed(0), ahead=True)
