"""SiameseModel refuses heads that do not follow the Head interface (siamese_bench.heads)."""

from __future__ import annotations

import pytest
from torch import nn

from siamese_bench.backbones import BACKBONES
from siamese_bench.model import SiameseModel

INTERFACE = ("objective", "metric", "loss", "similarity", "score")


class FakeHead(nn.Module):
    objective = "pair"
    metric = False

    def loss(self, *a):
        raise NotImplementedError

    def similarity(self, *a):
        raise NotImplementedError

    def score(self, *a):
        raise NotImplementedError


def _backbone():
    return BACKBONES.get("pixels")(1, 4)


def test_a_complete_fake_head_is_accepted():
    assert SiameseModel(_backbone(), FakeHead()).objective == "pair"


@pytest.mark.parametrize("missing", INTERFACE)
def test_every_part_of_the_head_interface_is_required(missing):
    head_type = type("Partial", (nn.Module,), {a: getattr(FakeHead, a) for a in INTERFACE if a != missing})
    with pytest.raises(ValueError, match=f"lacks `{missing}`"):
        SiameseModel(_backbone(), head_type())


def test_unknown_objective_is_refused():
    head = FakeHead()
    head.objective = "quadruplet"
    with pytest.raises(ValueError, match="expected 'pair' or 'triplet'"):
        SiameseModel(_backbone(), head)
