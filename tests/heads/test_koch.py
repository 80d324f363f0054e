"""Tests for heads/koch.py against naive per-example float64 loops."""

import math

import torch

from siamese_bench.heads import HEADS
from siamese_bench.heads.koch import KochHead


def _head(dim=6):
    torch.manual_seed(0)
    return KochHead(dim).double()


def test_registered_and_flags():
    assert HEADS.get("koch") is KochHead
    h = _head()
    assert h.objective == "pair" and h.metric is False


def _naive_logit(h, a, b):
    w, bias = h.fc.weight[0].tolist(), float(h.fc.bias.detach())
    return sum(wi * abs(x - y) for wi, x, y in zip(w, a.tolist(), b.tolist(), strict=True)) + bias


def test_loss_matches_naive_loop():
    h = _head()
    g = torch.Generator().manual_seed(1)
    ea, eb = (
        torch.randn(9, 6, generator=g, dtype=torch.float64),
        torch.randn(9, 6, generator=g, dtype=torch.float64),
    )
    same = torch.rand(9, generator=g) < 0.5
    total = 0.0
    for i in range(9):
        p = 1 / (1 + math.exp(-_naive_logit(h, ea[i], eb[i])))
        total += -math.log(p) if same[i] else -math.log(1 - p)
    torch.testing.assert_close(h.loss(ea, eb, same), torch.tensor(total / 9, dtype=torch.float64))


def test_similarity_is_probability_and_symmetric():
    h = _head()
    g = torch.Generator().manual_seed(2)
    ea, eb = (
        torch.randn(5, 6, generator=g, dtype=torch.float64),
        torch.randn(5, 6, generator=g, dtype=torch.float64),
    )
    sim = h.similarity(ea, eb)
    expected = torch.tensor([1 / (1 + math.exp(-_naive_logit(h, ea[i], eb[i]))) for i in range(5)]).double()
    torch.testing.assert_close(sim, expected)
    torch.testing.assert_close(h.similarity(eb, ea), sim)


def test_score_equals_similarity_pairwise():
    h = _head(16)
    with torch.no_grad():
        h.fc.weight.normal_()  # mixed-sign weights exercise the w+ / w- split
    g = torch.Generator().manual_seed(3)
    q, s = torch.randn(2, 3, 16, generator=g).double(), torch.randn(2, 4, 16, generator=g).double()
    out = h.score(q, s)
    assert out.shape == (2, 3, 4)
    for e in range(2):
        for i in range(3):
            for j in range(4):
                torch.testing.assert_close(out[e, i, j], h.similarity(q[e, i : i + 1], s[e, j : j + 1])[0])


def test_gradients_finite_at_identical_embeddings():
    h = KochHead(4)
    ea = torch.randn(3, 4, requires_grad=True)
    loss = h.loss(ea, ea.detach().clone(), torch.tensor([True, False, True]))
    loss.backward()
    assert torch.isfinite(ea.grad).all() and torch.isfinite(h.fc.weight.grad).all()
