"""Tests for siamese_bench.evaluate on toy problems with known answers.

A `LookupBackbone` decodes each image's index from its two pixels and returns a fixed embedding from a table,
so episodes can be built whose answer is known exactly (and a random table gives chance accuracy).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from siamese_bench import evaluate as ev
from siamese_bench import stats
from siamese_bench.episodes.episodes import Episodes
from siamese_bench.episodes.pairs import PairBatch
from siamese_bench.evaluate import best_threshold, embed_all, evaluate_episodes, verification
from siamese_bench.heads import HEADS
from siamese_bench.model import SiameseModel


def index_images(n: int) -> torch.Tensor:
    """(n, 1, 1, 2) uint8 images whose two pixels spell the image index in base 256."""
    i = torch.arange(n)
    return torch.stack([i // 256, i % 256], -1).to(torch.uint8).view(n, 1, 1, 2)


class LookupBackbone(nn.Module):
    """(B, 1, 1, 2) float image -> table[image index] (B, D); optional BatchNorm1d after the lookup."""

    def __init__(self, table: torch.Tensor, batchnorm: bool = False) -> None:
        super().__init__()
        self.register_buffer("table", table.float())
        self.out_dim = table.shape[1]
        self.bn = nn.BatchNorm1d(self.out_dim) if batchnorm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        px = (x * 255).round().long().view(x.shape[0], 2)
        return self.bn(self.table[px[:, 0] * 256 + px[:, 1]])


def lookup_model(table: torch.Tensor, head: str = "contrastive", batchnorm: bool = False) -> SiameseModel:
    return SiameseModel(LookupBackbone(table, batchnorm), HEADS.get(head)(table.shape[1]))


def episodes(support, query, n_way, k_shot, n_query) -> Episodes:
    support = torch.as_tensor(support, dtype=torch.int64).view(-1, n_way * k_shot)
    query = torch.as_tensor(query, dtype=torch.int64).view(-1, n_way * n_query)
    classes = torch.arange(n_way).expand(support.shape[0], n_way).contiguous()
    return Episodes(support, query, classes, n_way, k_shot, n_query, seed=-1)


def naive_correct(model: SiameseModel, images: torch.Tensor, eps: Episodes) -> torch.Tensor:
    """Brute force: per episode, per query, head.similarity against every shot, mean over the K shots."""
    n, k, q = eps.n_way, eps.k_shot, eps.n_query
    out = torch.zeros(eps.support.shape[0], n * q, dtype=torch.bool)
    model.eval()
    with torch.no_grad():
        for e in range(eps.support.shape[0]):
            for i in range(n * q):
                qi = images[eps.query[e, i]].float().div(255)[None]
                scores = []
                for c in range(n):
                    shots = images[eps.support[e, c * k : (c + 1) * k]].float().div(255)
                    eq = model.embed(qi).expand(k, -1)
                    scores.append(model.head.similarity(eq, model.embed(shots)).mean())
                out[e, i] = int(torch.stack(scores).argmax()) == i // q
    return out


def test_identical_support_and_query_gives_full_accuracy_with_real_backbone():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (60, 1, 16, 16), dtype=torch.uint8)
    model = SiameseModel.build("conv4", "contrastive", in_channels=1, image_size=16)
    idx = torch.randperm(60, generator=torch.Generator().manual_seed(1))[:50].view(10, 5)
    res = evaluate_episodes(model, images, episodes(idx, idx, 5, 1, 1))
    assert res.accuracy == 1.0
    assert res.per_episode.shape == (10,) and res.aggregation == "prototype"


def test_random_embeddings_give_chance_accuracy_within_ci():
    n_img, n_way = 2000, 5
    table = torch.randn(n_img, 16, generator=torch.Generator().manual_seed(0))
    model = lookup_model(table)
    g = torch.Generator().manual_seed(1)
    idx = torch.randint(0, n_img, (600, 2 * n_way), generator=g)
    res = evaluate_episodes(model, index_images(n_img), episodes(idx[:, :n_way], idx[:, n_way:], n_way, 1, 1))
    assert abs(res.accuracy - 1 / n_way) <= res.ci95
    assert 0 < res.ci95 < 0.05


def test_prototype_and_mean_score_differ_where_expected():
    # 1-D embeddings: class 0 shots at 0 and 2 (prototype 1), class 1 shots at 1.5 and 1.5 (prototype 1.5);
    # query of class 0 at 1.2, query of class 1 at 1.6.
    table = torch.tensor([[0.0], [2.0], [1.5], [1.5], [1.2], [1.6]])
    model = lookup_model(table)
    images = index_images(6)
    eps = episodes([0, 1, 2, 3], [4, 5], n_way=2, k_shot=2, n_query=1)
    proto = evaluate_episodes(model, images, eps, aggregation="prototype", return_correct=True)
    mean = evaluate_episodes(model, images, eps, aggregation="mean-score", return_correct=True)
    auto = evaluate_episodes(model, images, eps)
    assert proto.accuracy == 1.0 and proto.aggregation == "prototype"
    # mean-score: class 0 scores -(1.2 + 0.8) / 2 = -1.0 < -0.3 of class 1 -> query 0 wrong
    assert mean.accuracy == 0.5 and mean.correct.tolist() == [[False, True]]
    assert auto.aggregation == "prototype" and auto.accuracy == 1.0


def test_prototype_refused_for_probability_heads_and_auto_uses_mean_score():
    model = lookup_model(torch.randn(8, 4), head="koch")
    eps = episodes([0, 1, 2, 3], [4, 5], n_way=2, k_shot=2, n_query=1)
    with pytest.raises(ValueError, match="metric head"):
        evaluate_episodes(model, index_images(8), eps, aggregation="prototype")
    assert evaluate_episodes(model, index_images(8), eps).aggregation == "mean-score"
    with pytest.raises(ValueError, match="unknown aggregation"):
        evaluate_episodes(model, index_images(8), eps, aggregation="vote")


@pytest.mark.parametrize("head", ["koch", "contrastive", "triplet"])
def test_matches_naive_per_pair_loop_and_chunking(head, monkeypatch):
    torch.manual_seed(0)
    images = torch.randint(0, 256, (80, 1, 8, 8), dtype=torch.uint8)
    model = SiameseModel.build("small-cnn", head, in_channels=1, image_size=8)
    g = torch.Generator().manual_seed(2)
    idx = torch.stack([torch.randperm(80, generator=g)[:12] for _ in range(6)])  # 3-way 2-shot 2-query
    eps = episodes(idx[:, :6], idx[:, 6:], n_way=3, k_shot=2, n_query=2)
    res = evaluate_episodes(model, images, eps, aggregation="mean-score", return_correct=True, batch_size=7)
    assert torch.equal(res.correct, naive_correct(model, images, eps))
    monkeypatch.setattr(ev, "SCORE_CHUNK_ELEMENTS", 1)  # one episode per score call
    again = evaluate_episodes(model, images, eps, aggregation="mean-score", return_correct=True)
    assert torch.equal(again.correct, res.correct)
    assert res.accuracy == pytest.approx(res.correct.double().mean().item())


def test_evaluation_restores_mode_and_leaves_batchnorm_statistics_alone():
    model = lookup_model(torch.randn(20, 4, generator=torch.Generator().manual_seed(0)), batchnorm=True)
    model.train()
    before = {k: v.clone() for k, v in model.backbone.bn.state_dict().items()}
    eps = episodes(torch.arange(10).view(2, 5), torch.arange(10, 20).view(2, 5), 5, 1, 1)
    evaluate_episodes(model, index_images(20), eps)
    embed_all(model, index_images(20), torch.arange(20))
    assert model.training and all(m.training for m in model.modules())
    for k, v in model.backbone.bn.state_dict().items():
        assert torch.equal(v, before[k]), k
    model.eval()
    evaluate_episodes(model, index_images(20), eps)
    assert not model.training


def test_embed_all_shape_values_and_no_grad():
    table = torch.randn(30, 3)
    model = lookup_model(table)
    idx = torch.tensor([5, 0, 29])
    emb = embed_all(model, index_images(30), idx, batch_size=2)
    assert emb.shape == (3, 3) and not emb.requires_grad
    torch.testing.assert_close(emb, table[idx])


def test_bad_inputs_raise():
    model = lookup_model(torch.randn(10, 3))
    eps = episodes([0, 11], [2, 3], 2, 1, 1)
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        evaluate_episodes(model, index_images(10), eps)
    with pytest.raises(ValueError, match="uint8"):
        evaluate_episodes(model, index_images(10).float(), episodes([0, 1], [2, 3], 2, 1, 1))
    with pytest.raises(ValueError, match="1-D"):
        embed_all(model, index_images(10), torch.zeros(2, 2, dtype=torch.int64))


def test_best_threshold_picks_the_accuracy_maximising_cut():
    s = torch.tensor([0.1, 0.4, 0.35, 0.8])
    y = torch.tensor([False, True, False, True])
    assert best_threshold(s, y) == pytest.approx(0.375)
    # ties cannot be split: equal values must fall on the same side
    assert best_threshold(torch.tensor([0.0, 1.0, 1.0]), torch.tensor([False, True, False])) == pytest.approx(
        0.5
    )
    # all same -> a threshold below every value
    assert best_threshold(torch.tensor([0.3, 0.2]), torch.tensor([True, True])) < 0.2


def test_verification_metric_head_uses_threshold_pairs_not_test_pairs():
    # 1-D embeddings: image i sits at 3 * (i // 2): pairs (2j, 2j+1) are "same" (distance 0), others >= 3
    table = (torch.arange(40) // 2).float()[:, None] * 3
    model = lookup_model(table)
    images = index_images(40)
    a = torch.arange(0, 20, 2)
    pairs = PairBatch(torch.cat([a, a]), torch.cat([a + 1, a + 2]), torch.arange(20) < 10)
    thr_pairs = PairBatch(
        torch.cat([a + 20, a + 20]), torch.cat([a + 21, (a + 22) % 40]), torch.arange(20) < 10
    )
    acc, auc = verification(model, images, pairs, threshold_pairs=thr_pairs)
    assert acc == 1.0 and auc == 1.0
    with pytest.raises(ValueError, match="threshold_pairs"):
        verification(model, images, pairs)


def test_verification_probability_head_uses_log_odds_zero_and_sklearn_auc():
    from sklearn.metrics import roc_auc_score

    torch.manual_seed(0)
    table = torch.randn(40, 6)
    model = lookup_model(table, head="koch")
    images = index_images(40)
    g = torch.Generator().manual_seed(0)
    pairs = PairBatch(
        torch.randint(0, 40, (30,), generator=g),
        torch.randint(0, 40, (30,), generator=g),
        torch.arange(30) % 2 == 0,
    )
    acc, auc = verification(model, images, pairs)
    with torch.no_grad():
        sim = model.head.similarity(table[pairs.a], table[pairs.b])
    # similarity is the log-odds of same class: threshold 0 (= probability 0.5)
    assert acc == pytest.approx(((sim > 0) == pairs.same).float().mean().item())
    assert acc == pytest.approx(((torch.sigmoid(sim.double()) > 0.5) == pairs.same).float().mean().item())
    assert auc == pytest.approx(roc_auc_score(pairs.same.numpy(), sim.numpy()))


def saturated_koch_model(table: torch.Tensor, bias: float = 200.0) -> SiameseModel:
    """A koch head with logit = bias - |ea - eb|_1: float32 sigmoid is exactly 1.0 for any logit > ~17."""
    model = lookup_model(table, head="koch")
    with torch.no_grad():
        model.head.fc.weight.fill_(-1.0)
        model.head.fc.bias.fill_(bias)
    return model


@pytest.mark.parametrize("k_shot", [1, 2])
def test_saturated_but_distinct_logits_still_rank_correctly(k_shot):
    # Regression: with probabilities as scores, every support of a confident head scored exactly 1.0 in float32,
    # the argmax always picked class 0 and accuracy fell to chance. The log-odds keep the ranking.
    n_way, n_query, n_ep, d = 5, 2, 8, 8
    g = torch.Generator().manual_seed(0)
    per_class = k_shot + n_query
    protos = torch.randn(n_ep, n_way, 1, d, generator=g)
    table = (protos + 0.01 * torch.randn(n_ep, n_way, per_class, d, generator=g)).reshape(-1, d)
    model = saturated_koch_model(table)
    idx = torch.arange(table.shape[0]).view(n_ep, n_way, per_class)
    eps = episodes(idx[:, :, :k_shot].contiguous(), idx[:, :, k_shot:].contiguous(), n_way, k_shot, n_query)
    # premise: every (query, support) logit is saturated (> 30, sigmoid exactly 1.0) yet the true class wins
    with torch.no_grad():
        logits = model.head.score(table[eps.query], table[eps.support])  # (E, N*Q, N*K)
    assert bool((logits > 30).all()) and bool((torch.sigmoid(logits) == 1.0).all())
    per_class_score = logits.view(n_ep, n_way * n_query, n_way, k_shot).mean(3)
    labels = torch.arange(n_way).repeat_interleave(n_query)
    assert torch.equal(per_class_score.argmax(-1), labels.expand(n_ep, -1))
    top2 = per_class_score.topk(2, dim=-1).values
    assert bool((top2[..., 0] > top2[..., 1]).all())  # distinct: no ties
    res = evaluate_episodes(model, index_images(table.shape[0]), eps, return_correct=True)
    assert res.aggregation == "mean-score"
    assert res.accuracy == 1.0 and bool(res.correct.all())


def test_verification_auc_uses_saturated_log_odds():
    # all logits > 30 (sigmoid exactly 1.0): threshold 0 calls every pair "same", but the AUC still sees the
    # ranking of the log-odds (same pairs are closer), which probabilities would have flattened into ties.
    g = torch.Generator().manual_seed(0)
    table = torch.randn(20, 8, generator=g)
    table[1::2] = table[0::2] + 0.01 * torch.randn(10, 8, generator=g)  # (2j, 2j+1) are near-duplicates
    model = saturated_koch_model(table)
    a = torch.arange(0, 20, 2)
    pairs = PairBatch(torch.cat([a, a]), torch.cat([a + 1, (a + 2) % 20]), torch.arange(20) < 10)
    with torch.no_grad():
        sim = model.head.similarity(table[pairs.a], table[pairs.b])
    assert bool((sim > 30).all()) and bool((torch.sigmoid(sim) == 1.0).all())
    acc, auc = verification(model, index_images(20), pairs)
    assert acc == 0.5 and auc == 1.0


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("head", ["contrastive", "koch"])
def test_cuda_scores_the_same_episodes_as_cpu(head):
    """Model and images on CUDA: every query gets the same prediction as on CPU (well-separated random
    embeddings, so rounding cannot flip an argmax)."""
    n_img, n_way = 500, 5
    table = torch.randn(n_img, 32, generator=torch.Generator().manual_seed(0))
    model = lookup_model(table, head)
    g = torch.Generator().manual_seed(1)
    idx = torch.randint(0, n_img, (200, 2 * n_way), generator=g)
    eps = episodes(idx[:, :n_way], idx[:, n_way:], n_way, 1, 1)
    cpu = evaluate_episodes(model, index_images(n_img), eps, return_correct=True)
    gpu = evaluate_episodes(model.cuda(), index_images(n_img).cuda(), eps, return_correct=True)
    assert gpu.accuracy == cpu.accuracy and torch.equal(gpu.correct.cpu(), cpu.correct)


def test_verification_threshold_is_chosen_on_threshold_pairs_when_the_two_sets_disagree():
    # 1-D contrastive embeddings (similarity = -|ea - eb|). The threshold pairs separate at distance 0.5
    # (same pairs at distance 0, different at 1): threshold -0.5. The test pairs have same pairs at distance
    # 0 and 2 and different pairs at 4: the threshold chosen on them (-3) would score 1.0; the one chosen on
    # the threshold pairs calls the distance-2 "same" pair different: accuracy 3/4.
    pos = [0, 0, 10, 10, 1, 11, 20, 20, 30, 32, 24, 26]
    model = lookup_model(torch.tensor(pos, dtype=torch.float32)[:, None])
    images = index_images(len(pos))
    same = torch.tensor([True, True, False, False])
    thr_pairs = PairBatch(torch.tensor([0, 2, 0, 2]), torch.tensor([1, 3, 4, 5]), same)
    pairs = PairBatch(torch.tensor([6, 8, 6, 8]), torch.tensor([7, 9, 10, 11]), same)
    assert verification(model, images, thr_pairs, threshold_pairs=thr_pairs) == (1.0, 1.0)
    assert verification(model, images, pairs, threshold_pairs=pairs) == (1.0, 1.0)  # in-sample: optimistic
    acc, auc = verification(model, images, pairs, threshold_pairs=thr_pairs)
    assert acc == 0.75 and auc == 1.0


def test_verification_predicts_same_only_strictly_above_the_threshold():
    # the rule is `similarity > threshold`: a similarity exactly at the threshold counts as "different"
    # probability head: logit = -|ea - eb| + 0 is exactly 0 for identical embeddings -> P(same) = 0.5, not > 0.5
    table = torch.tensor([[0.0], [0.0], [0.0], [3.0]])
    model = saturated_koch_model(table, bias=0.0)
    images = index_images(4)
    pairs = PairBatch(torch.tensor([0, 2]), torch.tensor([1, 3]), torch.tensor([True, False]))
    with torch.no_grad():
        assert model.head.similarity(table[:1], table[1:2]).item() == 0.0
    acc, auc = verification(model, images, pairs)
    assert acc == 0.5 and auc == 1.0  # the logit-0 "same" pair is called different
    # metric head: threshold pairs give threshold -0.5 (midpoint of -1 and 0); a test pair at distance 0.5
    # has similarity exactly -0.5 and is called different
    pos = [0, 0, 1, 5, 5.5, 9]
    metric = lookup_model(torch.tensor(pos)[:, None])
    images = index_images(len(pos))
    thr_pairs = PairBatch(torch.tensor([0, 0]), torch.tensor([1, 2]), torch.tensor([True, False]))
    assert best_threshold(torch.tensor([0.0, -1.0]), thr_pairs.same) == -0.5
    pairs = PairBatch(torch.tensor([3, 3]), torch.tensor([4, 5]), torch.tensor([True, False]))
    acc, auc = verification(metric, images, pairs, threshold_pairs=thr_pairs)
    assert acc == 0.5 and auc == 1.0


def test_verification_applies_the_threshold_at_the_precision_it_was_chosen_in():
    # same pair at distance 1, different pair at the next float32 distance: the float64 midpoint of their
    # similarities separates them, but rounded to float32 it lands on -1.0 (ties to even), and a float32
    # comparison called the same pair different (accuracy 0.5)
    d = float(np.nextafter(np.float32(1), np.float32(2)))
    table = torch.tensor([0.0, 1.0, d])[:, None]
    model = lookup_model(table)
    pairs = PairBatch(torch.tensor([0, 0]), torch.tensor([1, 2]), torch.tensor([True, False]))
    with torch.no_grad():
        sim = model.head.similarity(table[[0, 0]], table[[1, 2]])
    assert (
        sim.dtype == torch.float32 and sim[0] > sim[1] and float(sim[1]) == np.nextafter(sim[0].numpy(), -2)
    )
    assert verification(model, index_images(3), pairs, threshold_pairs=pairs) == (1.0, 1.0)


@pytest.mark.parametrize("flip", [False, True])
def test_best_threshold_never_splits_equal_similarities(flip):
    # sorted values 0, 1, 1, 2 with labels F, {F, T}, T: splitting between the two 1s would classify all four
    # correctly, but equal values must fall on the same side, so the best valid cuts (3 of 4 right) are 0.5
    # and 1.5, and the tie in accuracy goes to the lower one. Both input orders of the tied pair are tried, so
    # the check does not depend on how argsort orders equal values.
    s = torch.tensor([0.0, 1.0, 1.0, 2.0])
    y = torch.tensor([False, True, False, True]) if flip else torch.tensor([False, False, True, True])
    t = best_threshold(s, y)
    assert t == 0.5
    assert ((s > t) == y).float().mean().item() == 0.75
    # all values equal: the only valid cuts are below or above all of them
    t = best_threshold(torch.full((4,), 2.0), torch.tensor([True, False, True, True]))
    assert t < 2.0


def test_ci95_is_over_per_episode_accuracies_not_over_queries():
    # 2-way 1-shot 2-query on 1-D embeddings: support of class 0 at 0, of class 1 at 10; image 2 (at 1) is
    # always predicted class 0 and image 3 (at 9) class 1, so each query's correctness is set by its image.
    model = lookup_model(torch.tensor([[0.0], [10.0], [1.0], [9.0]]))
    queries = [
        [2, 2, 3, 3],  # 1.0
        [2, 3, 3, 3],  # 0.75
        [3, 3, 3, 2],  # 0.25
        [2, 3, 2, 3],  # 0.5
        [2, 2, 3, 3],  # 1.0
        [3, 3, 2, 2],  # 0.0
    ]
    eps = episodes([[0, 1]] * len(queries), queries, n_way=2, k_shot=1, n_query=2)
    res = evaluate_episodes(model, index_images(4), eps, return_correct=True)
    per_ep = torch.tensor([1.0, 0.75, 0.25, 0.5, 1.0, 0.0], dtype=torch.float64)
    assert torch.equal(res.per_episode, per_ep)
    assert res.accuracy == pytest.approx(per_ep.mean().item())
    expected = 1.96 * per_ep.std().item() / len(queries) ** 0.5  # torch std is ddof=1
    assert res.ci95 == stats.mean_ci95(per_ep)[1]
    assert res.ci95 == pytest.approx(expected, rel=1e-12)
    # premise: the (wrong) CI over the 24 flattened queries is a different number
    flat = stats.mean_ci95(res.correct.double().flatten())[1]
    assert abs(flat - res.ci95) > 0.05


@pytest.mark.parametrize(
    ("head", "aggregation"),
    [("contrastive", "prototype"), ("contrastive", "mean-score"), ("koch", "mean-score")],
)
def test_exact_ties_between_classes_go_to_the_lowest_class_index(head, aggregation):
    # 3-way 1-shot 2-query. Episode 0: all three supports share one embedding, every query ties across all
    # classes -> class 0. Episode 1: classes 1 and 2 share the embedding closest to every query, class 0 is far
    # away -> class 1.
    table = torch.tensor([[0.0, 0.0], [5.0, 5.0], [5.0, 5.0], [5.0, 5.0], [4.0, 4.0]])
    model = lookup_model(table, head)
    if head == "koch":
        with torch.no_grad():  # logit = -|ea - eb|_1: higher for closer embeddings, exact on these integers
            model.head.fc.weight.fill_(-1.0)
            model.head.fc.bias.fill_(0.0)
    support = [[1, 2, 3], [0, 2, 3]]
    query = [[4, 4, 4, 4, 4, 4], [4, 4, 4, 4, 4, 4]]
    eps = episodes(support, query, n_way=3, k_shot=1, n_query=2)
    res = evaluate_episodes(model, index_images(5), eps, aggregation=aggregation, return_correct=True)
    assert res.correct.tolist() == [
        [True, True, False, False, False, False],
        [False, False, True, True, False, False],
    ]


def test_an_index_equal_to_the_image_count_is_named():
    with pytest.raises(ValueError, match=r"must lie in \[0, 3\)"):
        ev._check_indices(torch.tensor([0, 3]), 3, "episodes")
    ev._check_indices(torch.tensor([0, 2]), 3, "episodes")


def test_common_mistakes_raise_clear_errors():
    """An ImageSet for images, a PairBatch for episodes, batch_size 0 or a float, a model on another device:
    each raised an AttributeError, a bare range()/TypeError, or failed deep inside torch."""
    from siamese_bench.datasets.imageset import ImageSet

    model = lookup_model(torch.randn(10, 3))
    images = index_images(10)
    eps = episodes([0, 1], [2, 3], 2, 1, 1)
    imageset = ImageSet(
        "tiny", images, torch.zeros(10, dtype=torch.int64), ("a",), torch.zeros(1, dtype=torch.int64), ("g",)
    )
    with pytest.raises(TypeError, match=r"pass imageset\.images"):
        evaluate_episodes(model, imageset, eps)
    pairs = PairBatch(torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([True, False]))
    with pytest.raises(TypeError, match="episodes must be an Episodes.*PairBatch"):
        evaluate_episodes(model, images, pairs)
    for bad in (0, 64.0, True):
        with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
            evaluate_episodes(model, images, eps, batch_size=bad)
        with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
            embed_all(model, images, torch.arange(4), batch_size=bad)
    meta = lookup_model(torch.randn(10, 3)).to("meta")
    with pytest.raises(ValueError, match="model is on meta but images are on cpu"):
        evaluate_episodes(meta, images, eps)
    with pytest.raises(ValueError, match="model is on meta but images are on cpu"):
        embed_all(meta, images, torch.arange(4))
