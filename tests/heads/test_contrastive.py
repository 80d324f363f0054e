"""Tests for heads/contrastive.py: the loss against a float64 loop, the bool label convention, safe sqrt."""

import math

import pytest
import torch

from siamese_bench.heads import HEADS
from siamese_bench.heads.contrastive import ContrastiveHead


def test_registered_and_flags():
    h = HEADS.get("contrastive")(8)
    assert isinstance(h, ContrastiveHead)
    assert h.objective == "pair" and h.metric is True and h.margin == 1.0


@pytest.mark.parametrize("margin", [1.0, 2.5])
def test_loss_matches_naive_loop(margin):
    g = torch.Generator().manual_seed(0)
    ea = torch.randn(12, 5, generator=g, dtype=torch.float64) * 0.5
    eb = torch.randn(12, 5, generator=g, dtype=torch.float64) * 0.5
    same = torch.rand(12, generator=g) < 0.5
    total = 0.0
    for i in range(12):
        d = math.sqrt(sum((x - y) ** 2 for x, y in zip(ea[i].tolist(), eb[i].tolist(), strict=True)))
        total += d**2 if same[i] else max(margin - d, 0.0) ** 2
    expected = torch.tensor(total / 12 / 2, dtype=torch.float64)
    torch.testing.assert_close(ContrastiveHead(5, margin=margin).loss(ea, eb, same), expected)


@pytest.mark.parametrize(
    "labels", [torch.ones(2), torch.ones(2, dtype=torch.int64), torch.ones(2, dtype=torch.uint8)]
)
def test_non_bool_labels_raise(labels):
    h = ContrastiveHead(3)
    with pytest.raises(TypeError, match="True = same class"):
        h.loss(torch.zeros(2, 3), torch.ones(2, 3), labels)


def test_label_convention_at_distance_zero():
    h = ContrastiveHead(3, margin=1.5)
    e = torch.randn(1, 3)
    assert h.loss(e, e.clone(), torch.tensor([True])).item() == 0.0  # positive pair, d = 0: no loss
    torch.testing.assert_close(h.loss(e, e.clone(), torch.tensor([False])), torch.tensor(1.5**2 / 2))


def test_label_convention_far_pairs():
    h = ContrastiveHead(2, margin=1.0)
    a, b = torch.tensor([[0.0, 0.0]]), torch.tensor([[3.0, 4.0]])  # d = 5
    torch.testing.assert_close(h.loss(a, b, torch.tensor([True])), torch.tensor(25.0 / 2))
    assert h.loss(a, b, torch.tensor([False])).item() == 0.0


def test_gradients_finite_at_identical_embeddings():
    h = ContrastiveHead(4)
    ea = torch.randn(4, 4, requires_grad=True)
    eb = ea.detach().clone().requires_grad_(True)
    h.loss(ea, eb, torch.tensor([True, False, True, False])).backward()
    assert torch.isfinite(ea.grad).all() and torch.isfinite(eb.grad).all()
    x = torch.zeros(2, 4, requires_grad=True)
    h.similarity(x, torch.zeros(2, 4)).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_similarity_and_score():
    g = torch.Generator().manual_seed(1)
    h = ContrastiveHead(6)
    ea, eb = torch.randn(4, 6, generator=g).double(), torch.randn(4, 6, generator=g).double()
    torch.testing.assert_close(h.similarity(ea, eb), -(ea - eb).norm(dim=-1))
    q, s = torch.randn(2, 3, 6, generator=g).double(), torch.randn(2, 5, 6, generator=g).double()
    out = h.score(q, s)
    assert out.shape == (2, 3, 5)
    for e in range(2):
        for i in range(3):
            for j in range(5):
                torch.testing.assert_close(out[e, i, j], h.similarity(q[e, i : i + 1], s[e, j : j + 1])[0])


def test_bad_margin():
    with pytest.raises(ValueError, match="margin"):
        ContrastiveHead(3, margin=0)
