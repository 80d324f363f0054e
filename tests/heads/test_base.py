"""Tests for heads/base.py: the generic chunked score and the shared input checks."""

import pytest
import torch

from siamese_bench.heads import HEADS, Head


class DotHead(Head):
    """A minimal head for testing the generic score: similarity = dot product."""

    def similarity(self, ea, eb):
        return (ea * eb).sum(-1)


def test_registry_lists_all_heads():
    assert HEADS.names() == ["concat", "contrastive", "cosine", "koch", "l2", "product", "triplet"]


@pytest.mark.parametrize("chunk", [1, 7, 1 << 24])
def test_generic_score_matches_pairwise_loop(chunk):
    g = torch.Generator().manual_seed(0)
    head = DotHead(5)
    head.score_chunk_elements = chunk  # instance override: forces many chunks
    q = torch.randn(3, 4, 5, generator=g, dtype=torch.float64)
    s = torch.randn(3, 6, 5, generator=g, dtype=torch.float64)
    out = head.score(q, s)
    assert out.shape == (3, 4, 6)
    expected = torch.tensor(
        [[[float(q[e, i] @ s[e, j]) for j in range(6)] for i in range(4)] for e in range(3)],
        dtype=torch.float64,
    )
    torch.testing.assert_close(out, expected)


def test_generic_score_empty_episode_set():
    head = DotHead(5)
    assert head.score(torch.zeros(0, 2, 5), torch.zeros(0, 3, 5)).shape == (0, 2, 3)


def test_bad_dim_raises():
    with pytest.raises(ValueError, match="dim must be a positive int"):
        DotHead(0)


def test_score_shape_checks():
    head = DotHead(4)
    with pytest.raises(ValueError, match="same number of episodes"):
        head.score(torch.zeros(2, 3, 4), torch.zeros(3, 3, 4))
    with pytest.raises(ValueError, match=r"\(E, n, 4\)"):
        head.score(torch.zeros(2, 3, 5), torch.zeros(2, 3, 5))


def test_pair_checks():
    head = DotHead(4)
    a = torch.zeros(3, 4)
    with pytest.raises(TypeError, match="bool"):
        head.check_pair(a, a, torch.ones(3))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        head.check_pair(a, a, torch.ones(2, dtype=torch.bool))
    with pytest.raises(ValueError, match="dim=backbone.out_dim"):
        head.check_pair(torch.zeros(3, 5), torch.zeros(3, 5), torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="differ in shape"):
        head.check_pair(a, torch.zeros(2, 4), torch.ones(3, dtype=torch.bool))


def test_triplet_checks():
    head = DotHead(4)
    a = torch.zeros(2, 4)
    with pytest.raises(ValueError, match="negative of the anchor's class"):
        head.check_triplet(a, a, a, torch.tensor([0, 1]), torch.tensor([2, 1]))
    with pytest.raises(TypeError, match="integer"):
        head.check_triplet(a, a, a, torch.tensor([0.0, 1.0]), torch.tensor([2, 3]))


def test_generic_score_gathers_at_most_the_chunk_budget_per_call():
    """score_chunk_elements bounds the gathered elements per operand: each similarity call sees at most
    budget // D pairs (and at least one)."""
    sizes = []

    class Recording(DotHead):
        def similarity(self, ea, eb):
            sizes.append(ea.numel())
            return super().similarity(ea, eb)

    head = Recording(5)
    q, s = torch.randn(2, 3, 5), torch.randn(2, 4, 5)
    for budget in (7, 12, 24):
        sizes.clear()
        head.score_chunk_elements = budget
        head.score(q, s)
        assert sum(sizes) == 2 * 3 * 4 * 5 and max(sizes) <= budget, (budget, sizes)
    sizes.clear()
    head.score_chunk_elements = 3  # less than one embedding: one pair per call
    head.score(q, s)
    assert sizes == [5] * 24


def test_embeddings_must_be_float_matrices():
    head = DotHead(4)
    with pytest.raises(ValueError, match="float embeddings of shape"):
        head.check_embeddings(torch.zeros(3, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match="float embeddings of shape"):
        head.check_embeddings(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match=r"must be float \(E, n, 4\)"):
        head.score(torch.zeros(2, 3, 4, dtype=torch.int64), torch.zeros(2, 3, 4, dtype=torch.int64))


def test_labels_must_be_one_integer_per_row():
    head = DotHead(4)
    a = torch.zeros(2, 4)
    with pytest.raises(TypeError, match="la must be an integer class-label tensor"):
        head.check_triplet(a, a, a, torch.tensor([True, False]), torch.tensor([2, 3]))
    with pytest.raises(ValueError, match=r"ln must have shape \(2,\)"):
        head.check_triplet(a, a, a, torch.tensor([0, 1]), torch.tensor([[2], [3]]))
    with pytest.raises(ValueError, match=r"`same` must have shape \(2,\)"):
        head.check_pair(a, a, torch.ones(2, 1, dtype=torch.bool))
