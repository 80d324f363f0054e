"""Tests for heads/triplet.py: each mining strategy against a brute-force float64 loop."""

import pytest
import torch

from siamese_bench.heads import HEADS
from siamese_bench.heads.triplet import TripletHead


def _batch(seed, B=6, D=5, n_classes=4):
    g = torch.Generator().manual_seed(seed)
    ea, ep, en = (torch.randn(B, D, generator=g, dtype=torch.float64) for _ in range(3))
    la = torch.randint(0, n_classes, (B,), generator=g)
    ln = (la + torch.randint(1, n_classes, (B,), generator=g)) % n_classes
    return ea, ep, en, la, ln


def _prep(x, normalize):
    return [(v / v.norm()) if normalize else v for v in x]


def _d(a, b):
    return float(((a - b) ** 2).sum())


def _brute_random(ea, ep, en, margin, normalize):
    a, p, n = _prep(ea, normalize), _prep(ep, normalize), _prep(en, normalize)
    return sum(max(_d(a[i], p[i]) - _d(a[i], n[i]) + margin, 0.0) for i in range(len(a))) / len(a)


def _brute_semihard(x, y, margin):
    losses = []
    for i in range(len(x)):
        for j in range(len(x)):
            if i == j or y[i] != y[j]:
                continue
            d_ap = _d(x[i], x[j])
            negs = [_d(x[i], x[k]) for k in range(len(x)) if y[k] != y[i]]
            farther = [dn for dn in negs if dn > d_ap]
            d_an = min(farther) if farther else max(negs)
            losses.append(max(d_ap - d_an + margin, 0.0))
    return sum(losses) / len(losses)


def _brute_batchhard(x, y, margin):
    losses = []
    for i in range(len(x)):
        pos = [_d(x[i], x[j]) for j in range(len(x)) if j != i and y[j] == y[i]]
        if not pos:
            continue
        neg = [_d(x[i], x[k]) for k in range(len(x)) if y[k] != y[i]]
        losses.append(max(max(pos) - min(neg) + margin, 0.0))
    return sum(losses) / len(losses)


def test_registered_and_flags():
    h = HEADS.get("triplet")(8)
    assert isinstance(h, TripletHead)
    assert h.objective == "triplet" and h.metric is True
    assert (h.margin, h.normalize, h.mining) == (0.2, True, "random")


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_mining_matches_loop(seed, normalize):
    ea, ep, en, la, ln = _batch(seed)
    margin = 0.3 if normalize else 4.0
    expected = _brute_random(ea, ep, en, margin, normalize)
    got = TripletHead(5, margin=margin, normalize=normalize, mining="random").loss(ea, ep, en, la, ln)
    torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float64))


@pytest.mark.parametrize("mining", ["semi-hard", "batch-hard"])
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_mining_matches_brute_force(mining, normalize, seed):
    ea, ep, en, la, ln = _batch(seed, B=7, n_classes=3)
    margin = 0.5 if normalize else 3.0
    x = _prep(torch.cat([ea, ep, en]), normalize)
    y = torch.cat([la, la, ln]).tolist()
    brute = _brute_semihard if mining == "semi-hard" else _brute_batchhard
    expected = brute(x, y, margin)
    got = TripletHead(5, margin=margin, normalize=normalize, mining=mining).loss(ea, ep, en, la, ln)
    torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float64))


@pytest.mark.parametrize(
    ("positive", "negatives", "expected"),
    [
        # 1-D, margin 1, anchors at 0 (class 0), positives at `positive` (class 0), negatives of classes
        # 1, 2, 3. Mining batch: three 0s, three `positive`s, the negatives: 30 ordered anchor-positive pairs.
        # positive 1: pairs 0->0 pick d=0.25 (loss .75, x6), 0->1 pick the semi-hard 1.44 over the hardest
        # 0.25 (loss .56, x9), 1->0 pick 4 (loss 0, x9), 1->1 pick 0.04 (loss .96, x6): 15.3 / 30.
        (1.0, [0.5, 1.2, 3.0], 0.51),
        # positive 2 (d_ap = 4): no negative is farther than the positive, so the easiest (2.25) is used for
        # 0->2 and 2->0 (loss 2.75, x18); 0->0 and 2->2 pick 0.25 (loss .75, x12): 58.5 / 30.
        (2.0, [0.5, 1.2, 1.5], 1.95),
    ],
)
def test_semihard_hand_computed(positive, negatives, expected):
    h = TripletHead(1, margin=1.0, normalize=False, mining="semi-hard")
    ea = torch.zeros(3, 1, dtype=torch.float64)
    ep = torch.full((3, 1), positive, dtype=torch.float64)
    en = torch.tensor(negatives, dtype=torch.float64)[:, None]
    got = h.loss(ea, ep, en, torch.zeros(3, dtype=torch.int64), torch.tensor([1, 2, 3]))
    torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float64))


def test_batchhard_hand_computed():
    # anchors 0 (class 0), positives 1 (class 0), negatives 0.5, 3 (classes 1, 2; no other sample of
    # their class -> skipped as anchors). Anchor 0: hardest pos 1, hardest neg .25 -> 1.75;
    # anchor 1: hardest pos 1, hardest neg .25 -> 1.75.
    h = TripletHead(1, margin=1.0, normalize=False, mining="batch-hard")
    ea, ep = torch.zeros(2, 1, dtype=torch.float64), torch.ones(2, 1, dtype=torch.float64)
    en = torch.tensor([[0.5], [3.0]], dtype=torch.float64)
    got = h.loss(ea, ep, en, torch.zeros(2, dtype=torch.int64), torch.tensor([1, 2]))
    torch.testing.assert_close(got, torch.tensor(1.75, dtype=torch.float64))


def test_similarity_and_score():
    g = torch.Generator().manual_seed(5)
    for normalize in (True, False):
        h = TripletHead(6, normalize=normalize)
        ea, eb = torch.randn(4, 6, generator=g).double(), torch.randn(4, 6, generator=g).double()
        a, b = (
            (ea, eb)
            if not normalize
            else (ea / ea.norm(dim=1, keepdim=True), eb / eb.norm(dim=1, keepdim=True))
        )
        torch.testing.assert_close(h.similarity(ea, eb), -((a - b) ** 2).sum(-1))
        q, s = torch.randn(2, 3, 6, generator=g).double(), torch.randn(2, 4, 6, generator=g).double()
        out = h.score(q, s)
        assert out.shape == (2, 3, 4)
        for e in range(2):
            for i in range(3):
                for j in range(4):
                    torch.testing.assert_close(
                        out[e, i, j], h.similarity(q[e, i : i + 1], s[e, j : j + 1])[0]
                    )


@pytest.mark.parametrize("mining", ["random", "semi-hard", "batch-hard"])
@pytest.mark.parametrize("normalize", [True, False])
def test_gradients_finite_at_identical_embeddings(mining, normalize):
    e = torch.randn(1, 4).repeat(4, 1)
    e[0] = 0  # also an all-zero embedding (normalisation must stay finite)
    ea = e.clone().requires_grad_(True)
    loss = TripletHead(4, mining=mining, normalize=normalize).loss(
        ea, e.clone(), e.clone(), torch.tensor([0, 0, 1, 2]), torch.tensor([1, 2, 0, 0])
    )
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(ea.grad).all()


def test_bad_options():
    with pytest.raises(ValueError, match="unknown mining"):
        TripletHead(3, mining="hardest")
    with pytest.raises(ValueError, match="margin"):
        TripletHead(3, margin=-1)


def test_semihard_negative_at_the_positives_distance_is_not_farther():
    """Semi-hard means strictly farther than the positive: a negative exactly at d(a, p) is not picked when
    a farther one exists. 1-D, margin 1: anchors 0, positives 1, negatives -1 (a tie with d_ap = 1 for the
    anchors) and 3."""
    h = TripletHead(1, margin=1.0, normalize=False, mining="semi-hard")
    ea, ep = torch.zeros(2, 1, dtype=torch.float64), torch.ones(2, 1, dtype=torch.float64)
    en = torch.tensor([[-1.0], [3.0]], dtype=torch.float64)
    la, ln = torch.zeros(2, dtype=torch.int64), torch.tensor([1, 2])
    x = list(torch.cat([ea, ep, en]))
    expected = _brute_semihard(x, torch.cat([la, la, ln]).tolist(), 1.0)
    torch.testing.assert_close(h.loss(ea, ep, en, la, ln), torch.tensor(expected, dtype=torch.float64))


def test_squared_distances_are_never_negative():
    """xx + yy - 2xy cancels to slightly below 0 for (near-)identical float32 rows: clamped at 0, so a
    query's distance to itself is 0 and its score never above 0."""
    from siamese_bench.heads.triplet import pairwise_sq_dist

    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 32, generator=g) * 10 + 3
    assert bool((pairwise_sq_dist(x, x) >= 0).all())
    q = torch.randn(1, 16, 32, generator=g)
    assert bool((TripletHead(32).score(q, q) <= 0).all())


def test_margin_must_be_positive():
    with pytest.raises(ValueError, match="margin must be > 0, got 0"):
        TripletHead(3, margin=0)
