"""Tests for heads/product.py against naive per-example float64 loops."""

import math

import torch

from siamese_bench.heads import HEADS
from siamese_bench.heads.product import ProductHead


def _head(dim=6, hidden=5):
    torch.manual_seed(0)
    return ProductHead(dim, hidden=hidden).double()


def _naive_logit(h, a, b):
    l1, l2 = h.mlp[0], h.mlp[2]
    x = [ai * bi for ai, bi in zip(a.tolist(), b.tolist(), strict=True)]
    hid = [
        max(sum(w * xi for w, xi in zip(row, x, strict=True)) + bb, 0.0)
        for row, bb in zip(l1.weight.tolist(), l1.bias.tolist(), strict=True)
    ]
    return sum(w * hv for w, hv in zip(l2.weight[0].tolist(), hid, strict=True)) + float(l2.bias.detach())


def test_registered_and_flags():
    h = HEADS.get("product")(8)
    assert isinstance(h, ProductHead) and h.hidden == 128
    assert h.objective == "pair" and h.metric is False


def test_loss_and_similarity_match_naive_loop():
    h = _head()
    g = torch.Generator().manual_seed(1)
    ea, eb = torch.randn(8, 6, generator=g).double(), torch.randn(8, 6, generator=g).double()
    same = torch.rand(8, generator=g) < 0.5
    probs = [1 / (1 + math.exp(-_naive_logit(h, ea[i], eb[i]))) for i in range(8)]
    total = sum(-math.log(p) if same[i] else -math.log(1 - p) for i, p in enumerate(probs))
    torch.testing.assert_close(h.loss(ea, eb, same), torch.tensor(total / 8, dtype=torch.float64))
    torch.testing.assert_close(h.similarity(ea, eb), torch.tensor(probs, dtype=torch.float64))
    torch.testing.assert_close(h.similarity(eb, ea), h.similarity(ea, eb))  # symmetric


def test_score_equals_similarity_pairwise():
    h = _head()
    h.score_chunk_elements = 6 * 5  # 5 pairs per chunk: several chunks, one partial
    g = torch.Generator().manual_seed(2)
    q, s = torch.randn(2, 3, 6, generator=g).double(), torch.randn(2, 4, 6, generator=g).double()
    out = h.score(q, s)
    assert out.shape == (2, 3, 4)
    for e in range(2):
        for i in range(3):
            for j in range(4):
                torch.testing.assert_close(out[e, i, j], h.similarity(q[e, i : i + 1], s[e, j : j + 1])[0])


def test_gradients_finite_at_identical_embeddings():
    h = ProductHead(4)
    ea = torch.randn(3, 4, requires_grad=True)
    h.loss(ea, ea, torch.tensor([True, False, True])).backward()
    assert torch.isfinite(ea.grad).all()
