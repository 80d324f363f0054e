"""Tests for heads/concat.py against naive per-example float64 loops; asymmetry; closed-form score."""

import math

import pytest
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
    total, log_odds, probs = 0.0, [], []
    for i in range(7):
        z0, z1 = _naive_logits(h, ea[i], eb[i])
        lse = math.log(math.exp(z0) + math.exp(z1))
        total += lse - (z1 if same[i] else z0)
        log_odds.append(z1 - z0)
        probs.append(math.exp(z1 - lse))
    torch.testing.assert_close(h.loss(ea, eb, same), torch.tensor(total / 7, dtype=torch.float64))
    # similarity is the log-odds of same class (z1 - z0); its sigmoid is softmax[:, 1], the loss's P(same)
    torch.testing.assert_close(h.similarity(ea, eb), torch.tensor(log_odds, dtype=torch.float64))
    torch.testing.assert_close(torch.sigmoid(h.similarity(ea, eb)), torch.tensor(probs, dtype=torch.float64))


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


@pytest.mark.parametrize("c", [100.0, -100.0])
def test_score_ranks_correctly_when_softmax_saturates(c):
    # float32 head wired so the hidden layer is (relu(q - s), relu(s - q)) and logits = (-c, c - |q - s|_1):
    # log-odds = 2c - |q - s|_1 around +-200, where the float32 softmax of "same" is exactly 1.0 / 0.0. The
    # log-odds must still rank the nearest support first.
    d = 8
    h = ConcatHead(d, hidden=2 * d)
    eye = torch.eye(d)
    with torch.no_grad():
        h.fc1.weight.copy_(torch.cat([torch.cat([eye, -eye], 1), torch.cat([-eye, eye], 1)]))
        h.fc1.bias.zero_()
        h.fc2.weight.copy_(torch.stack([torch.zeros(2 * d), -torch.ones(2 * d)]))
        h.fc2.bias.copy_(torch.tensor([-c, c]))
    g = torch.Generator().manual_seed(4)
    E, Q, S = 3, 4, 5
    s = torch.randn(E, S, d, generator=g)
    target = torch.randint(0, S, (E, Q), generator=g)
    q = s[torch.arange(E)[:, None], target] + 0.01 * torch.randn(E, Q, d, generator=g)
    with torch.no_grad():
        out = h.score(q, s)
        qq = q[:, :, None].expand(E, Q, S, d).reshape(-1, d)
        ss = s[:, None].expand(E, Q, S, d).reshape(-1, d)
        softmax_same = torch.softmax(h.logits(qq, ss), -1)[:, 1]
    assert out.dtype == torch.float32
    assert bool((softmax_same == (1.0 if c > 0 else 0.0)).all())  # saturated: ties as probabilities
    expected = torch.tensor(
        [
            [
                [(lambda z: z[1] - z[0])(_naive_logits(h, q[e, i], s[e, j])) for j in range(S)]
                for i in range(Q)
            ]
            for e in range(E)
        ],
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
    h = ConcatHead(4)
    ea = torch.randn(3, 4, requires_grad=True)
    h.loss(ea, ea, torch.tensor([True, False, True])).backward()
    assert torch.isfinite(ea.grad).all()


def test_hidden_must_be_positive():
    with pytest.raises(ValueError, match="hidden must be >= 1, got 0"):
        ConcatHead(4, hidden=0)


def test_score_of_no_episodes_is_empty():
    assert _head().score(torch.zeros(0, 3, 4).double(), torch.zeros(0, 5, 4).double()).shape == (0, 3, 5)


def test_score_keeps_the_hidden_activations_within_the_chunk_budget():
    """Whole episodes per chunk, as many as fit in score_chunk_elements (at least one): the (e, Q, S, H)
    hidden activations reaching fc2 never exceed the budget when one episode fits."""
    h = _head()  # hidden 6
    seen = []
    h.fc2.register_forward_hook(lambda m, args, out: seen.append(args[0].shape[0]))
    q, s = torch.randn(5, 3, 4).double(), torch.randn(5, 2, 4).double()
    expected = h.score(q, s)  # default budget: all 5 episodes at once
    assert seen == [5]
    for budget, chunks in ((3 * 2 * 6, [1] * 5), (2 * 3 * 2 * 6 + 1, [2, 2, 1]), (1, [1] * 5)):
        seen.clear()
        h.score_chunk_elements = budget
        torch.testing.assert_close(h.score(q, s), expected)
        assert seen == chunks, (budget, seen)
