"""Tests for heads/nearest.py: l2 and cosine against float64 loops, no parameters, loss refusal, and the
pixels + l2/cosine baseline recognising an identical query perfectly (1-shot and prototypes)."""

import math

import pytest
import torch

from siamese_bench.episodes.episodes import Episodes
from siamese_bench.evaluate import evaluate_episodes
from siamese_bench.heads import HEADS
from siamese_bench.heads.nearest import CosineHead, L2Head
from siamese_bench.model import SiameseModel


def _naive_l2(a, b):
    return -sum((x - y) ** 2 for x, y in zip(a.tolist(), b.tolist(), strict=True))


def _naive_cosine(a, b):
    a, b = a.tolist(), b.tolist()
    na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(x * x for x in b))
    if na == 0 or nb == 0:
        return 0.0
    return sum(x * y for x, y in zip(a, b, strict=True)) / (na * nb)


NAIVE = {"l2": _naive_l2, "cosine": _naive_cosine}


@pytest.mark.parametrize(("name", "cls"), [("l2", L2Head), ("cosine", CosineHead)])
def test_registered_flags_no_parameters(name, cls):
    h = HEADS.get(name)(7)
    assert isinstance(h, cls) and h.objective == "pair" and h.metric is True
    assert list(h.parameters()) == []


@pytest.mark.parametrize("name", ["l2", "cosine"])
def test_score_and_similarity_match_float64_loop(name):
    g = torch.Generator().manual_seed(0)
    q = torch.randn(3, 4, 6, generator=g, dtype=torch.float64)
    s = torch.randn(3, 5, 6, generator=g, dtype=torch.float64)
    s[1, 2] = 0.0  # a zero vector: cosine similarity 0 by convention
    h = HEADS.get(name)(6)
    expected = torch.tensor(
        [[[NAIVE[name](q[e, i], s[e, j]) for j in range(5)] for i in range(4)] for e in range(3)],
        dtype=torch.float64,
    )
    out = h.score(q, s)
    assert out.shape == (3, 4, 5) and out.dtype == torch.float64
    torch.testing.assert_close(out, expected)
    sim = h.similarity(q[:, 0], s[:, 2])  # (3,)
    torch.testing.assert_close(sim, expected[:, 0, 2])


@pytest.mark.parametrize("name", ["l2", "cosine"])
def test_loss_refuses_to_train(name):
    h = HEADS.get(name)(4)
    with pytest.raises(ValueError, match="no parameters to train; use train_pairs 0"):
        h.loss(torch.zeros(2, 4), torch.ones(2, 4), torch.tensor([True, False]))


@pytest.mark.parametrize("name", ["l2", "cosine"])
def test_shape_errors(name):
    h = HEADS.get(name)(4)
    with pytest.raises(ValueError, match="dim=backbone.out_dim"):
        h.similarity(torch.zeros(2, 3), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="same number of episodes"):
        h.score(torch.zeros(2, 1, 4), torch.zeros(3, 1, 4))


@pytest.mark.parametrize("head", ["l2", "cosine"])
@pytest.mark.parametrize("k_shot", [1, 3])
def test_pixels_baseline_identical_query_is_always_right(head, k_shot):
    """K = 1: every query IS its support image. K = 3: the shots are base + 1, base - 1, base, and the query
    is base, the class mean image (prototype), itself never a support image."""
    g = torch.Generator().manual_seed(1)
    n, e, size = 5, 4, 12
    base = torch.randint(1, 255, (e, n, 1, size, size), generator=g, dtype=torch.int64)  # [1, 254]
    if k_shot == 1:
        images = base.flatten(0, 1).to(torch.uint8)  # (E*N, 1, H, W)
        support = torch.arange(e * n).view(e, n)
        query = support.clone()
    else:
        shots = torch.stack([base + 1, base - 1, base], 2)  # (E, N, 3, 1, H, W), mean == base exactly
        images = torch.cat([shots.flatten(0, 2), base.flatten(0, 1)]).to(torch.uint8)
        support = torch.arange(e * n * k_shot).view(e, n * k_shot)
        query = (e * n * k_shot + torch.arange(e * n)).view(e, n)
    ep = Episodes(support, query, torch.arange(e * n).view(e, n), n, k_shot, 1, seed=0)
    model = SiameseModel.build("pixels", head, in_channels=1, image_size=size)
    assert list(model.parameters()) == []
    result = evaluate_episodes(model, images, ep)
    assert result.aggregation == "prototype"  # metric head: the mean embedding for K > 1
    assert result.accuracy == 1.0
