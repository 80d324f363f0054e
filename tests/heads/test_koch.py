"""Tests for heads/koch.py against naive per-example float64 loops."""

import math

import pytest
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


def test_similarity_is_log_odds_and_symmetric():
    h = _head()
    g = torch.Generator().manual_seed(2)
    ea, eb = (
        torch.randn(5, 6, generator=g, dtype=torch.float64),
        torch.randn(5, 6, generator=g, dtype=torch.float64),
    )
    sim = h.similarity(ea, eb)
    expected = torch.tensor([_naive_logit(h, ea[i], eb[i]) for i in range(5)], dtype=torch.float64)
    torch.testing.assert_close(sim, expected)
    # sigmoid of the log-odds is P(same), the probability the BCE loss is computed on
    probs = torch.tensor([1 / (1 + math.exp(-_naive_logit(h, ea[i], eb[i]))) for i in range(5)]).double()
    torch.testing.assert_close(torch.sigmoid(sim), probs)
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


@pytest.mark.parametrize("bias", [200.0, -200.0])
def test_score_ranks_correctly_when_sigmoid_saturates(bias):
    # float32 head with logits = bias - w . |q - s| around +-200, where float32 sigmoid is exactly 1.0 / 0.0:
    # a probability score would make every support tie; the log-odds must still rank the nearest support first.
    h = KochHead(8)
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        h.fc.weight.copy_(-(0.5 + torch.rand(1, 8, generator=g)))  # negative: smaller distance, larger logit
        h.fc.bias.fill_(bias)
    E, Q, S = 3, 4, 5
    s = torch.randn(E, S, 8, generator=g)
    target = torch.randint(0, S, (E, Q), generator=g)
    q = s[torch.arange(E)[:, None], target] + 0.01 * torch.randn(E, Q, 8, generator=g)
    with torch.no_grad():
        out = h.score(q, s)
        pairwise = h.similarity(
            q[:, :, None].expand(E, Q, S, 8).reshape(-1, 8), s[:, None].expand(E, Q, S, 8).reshape(-1, 8)
        ).view(E, Q, S)
    assert out.dtype == torch.float32
    assert bool((torch.sigmoid(out) == (1.0 if bias > 0 else 0.0)).all())  # saturated: ties as probabilities
    torch.testing.assert_close(out, pairwise)
    expected = torch.tensor(
        [[[_naive_logit(h, q[e, i], s[e, j]) for j in range(S)] for i in range(Q)] for e in range(E)],
        dtype=torch.float32,
    )
    torch.testing.assert_close(out, expected)
    assert torch.equal(out.argmax(-1), target)
    top2 = out.topk(2, dim=-1).values
    assert bool((top2[..., 0] > top2[..., 1]).all())  # no ties


def test_gradients_finite_at_identical_embeddings():
    h = KochHead(4)
    ea = torch.randn(3, 4, requires_grad=True)
    loss = h.loss(ea, ea.detach().clone(), torch.tensor([True, False, True]))
    loss.backward()
    assert torch.isfinite(ea.grad).all() and torch.isfinite(h.fc.weight.grad).all()
