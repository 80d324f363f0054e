"""Tests for heads/concat.py against naive per-example float64 loops; asymmetry; closed-form score."""

import math

import torch

from siamese_bench.heads import HEADS
from siamese_bench.heads.concat import ConcatHead


def _head(dim=4, hidden=6):
    torch.manual_seed(0)
    return ConcatHead(dim, hidden=hidden).double()


def _naive_logits(h, a, b):
    x = a.tolist() + b.tolist()
    hid = [
        max(sum(w * xi for w, xi in zip(row, x, strict=True)) + bb, 0.0)
        for row, bb in zip(h.fc1.weight.tolist(), h.fc1.bias.tolist(), strict=True)
    ]
    return [
        sum(w * hv for w, hv in zip(row, hid, strict=True)) + bb
        for row, bb in zip(h.fc2.weight.tolist(), h.fc2.bias.tolist(), strict=True)
    ]


def test_registered_and_flags():
    h = HEADS.get("concat")(8)
    assert isinstance(h, ConcatHead) and h.hidden == 128
    assert h.objective == "pair" and h.metric is False


def test_loss_and_similarity_match_naive_loop():
    h = _head()
    g = torch.Generator().manual_seed(1)
    ea, eb = torch.randn(7, 4, generator=g).double(), torch.randn(7, 4, generator=g).double()
    same = torch.rand(7, generator=g) < 0.5
    total, probs = 0.0, []
    for i in range(7):
        z0, z1 = _naive_logits(h, ea[i], eb[i])
        lse = math.log(math.exp(z0) + math.exp(z1))
        total += lse - (z1 if same[i] else z0)
        probs.append(math.exp(z1 - lse))
    torch.testing.assert_close(h.loss(ea, eb, same), torch.tensor(total / 7, dtype=torch.float64))
    torch.testing.assert_close(h.similarity(ea, eb), torch.tensor(probs, dtype=torch.float64))


def test_not_symmetric():
    h = _head()
    g = torch.Generator().manual_seed(2)
    ea, eb = torch.randn(5, 4, generator=g).double(), torch.randn(5, 4, generator=g).double()
    assert not torch.allclose(h.similarity(ea, eb), h.similarity(eb, ea))


def test_score_equals_similarity_pairwise_query_first():
    h = _head()
    h.score_chunk_elements = 3 * 5 * 6  # one episode per chunk
    g = torch.Generator().manual_seed(3)
    q, s = torch.randn(3, 3, 4, generator=g).double(), torch.randn(3, 5, 4, generator=g).double()
    out = h.score(q, s)
    assert out.shape == (3, 3, 5)
    for e in range(3):
        for i in range(3):
            for j in range(5):
                torch.testing.assert_close(out[e, i, j], h.similarity(q[e, i : i + 1], s[e, j : j + 1])[0])


def test_gradients_finite_at_identical_embeddings():
    h = ConcatHead(4)
    ea = torch.randn(3, 4, requires_grad=True)
    h.loss(ea, ea, torch.tensor([True, False, True])).backward()
    assert torch.isfinite(ea.grad).all()
