"""Tests for heads/product.py against naive per-example float64 loops."""

import math

import pytest
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
    logits = [_naive_logit(h, ea[i], eb[i]) for i in range(8)]
    probs = [1 / (1 + math.exp(-z)) for z in logits]
    total = sum(-math.log(p) if same[i] else -math.log(1 - p) for i, p in enumerate(probs))
    torch.testing.assert_close(h.loss(ea, eb, same), torch.tensor(total / 8, dtype=torch.float64))
    # similarity is the log-odds of same class; its sigmoid is the probability the loss uses
    torch.testing.assert_close(h.similarity(ea, eb), torch.tensor(logits, dtype=torch.float64))
    torch.testing.assert_close(torch.sigmoid(h.similarity(ea, eb)), torch.tensor(probs, dtype=torch.float64))
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


@pytest.mark.parametrize("bias", [200.0, -200.0])
def test_score_ranks_correctly_when_sigmoid_saturates(bias):
    # float32 head wired so logit = q . s + 10 + bias (hidden unit = relu(q . s + 10), always active for unit
    # vectors): logits around +-200, where float32 sigmoid is exactly 1.0 / 0.0. The log-odds must still
    # rank the support equal to the query (dot 1) above the others (dot < 1).
    h = ProductHead(8, hidden=1)
    with torch.no_grad():
        h.mlp[0].weight.fill_(1.0)
        h.mlp[0].bias.fill_(10.0)
        h.mlp[2].weight.fill_(1.0)
        h.mlp[2].bias.fill_(bias)
    g = torch.Generator().manual_seed(4)
    E, Q, S = 3, 4, 5
    s = torch.nn.functional.normalize(torch.randn(E, S, 8, generator=g), dim=-1)
    target = torch.randint(0, S, (E, Q), generator=g)
    q = s[torch.arange(E)[:, None], target]
    with torch.no_grad():
        out = h.score(q, s)
    assert out.dtype == torch.float32
    assert bool((torch.sigmoid(out) == (1.0 if bias > 0 else 0.0)).all())  # saturated: ties as probabilities
    expected = torch.tensor(
        [[[_naive_logit(h, q[e, i], s[e, j]) for j in range(S)] for i in range(Q)] for e in range(E)],
        dtype=torch.float32,
    )
    torch.testing.assert_close(out, expected)
    for e in range(E):
        for i in range(Q):
            for j in range(S):
                torch.testing.assert_close(out[e, i, j], h.similarity(q[e, i : i + 1], s[e, j : j + 1])[0])
    assert torch.equal(out.argmax(-1), target)
    top2 = out.topk(2, dim=-1).values
    assert bool((top2[..., 0] > top2[..., 1]).all())  # no ties


def test_gradients_finite_at_identical_embeddings():
    h = ProductHead(4)
    ea = torch.randn(3, 4, requires_grad=True)
    h.loss(ea, ea, torch.tensor([True, False, True])).backward()
    assert torch.isfinite(ea.grad).all()


def test_hidden_must_be_positive():
    with pytest.raises(ValueError, match="hidden must be >= 1, got 0"):
        ProductHead(4, hidden=0)
