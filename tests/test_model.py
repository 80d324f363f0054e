"""SiameseModel refuses heads that do not follow the Head interface (siamese_bench.heads)."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from siamese_bench.backbones import BACKBONES
from siamese_bench.heads import HEADS
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


def test_unknown_objective_message_names_the_objective():
    head = FakeHead()
    head.objective = "quadruplet"
    with pytest.raises(ValueError, match=r"FakeHead has objective 'quadruplet'"):
        SiameseModel(_backbone(), head)


def test_a_triplet_head_is_accepted():
    head = FakeHead()
    head.objective = "triplet"
    model = SiameseModel(_backbone(), head)
    assert model.objective == "triplet"


@pytest.mark.parametrize(("value", "expected"), [(1, True), (0, False), (True, True), (False, False)])
def test_metric_is_the_heads_flag_as_a_bool(value, expected):
    head = FakeHead()
    head.metric = value
    assert SiameseModel(_backbone(), head).metric is expected


def test_build_passes_sizes_to_the_backbone_and_options_to_the_head():
    model = SiameseModel.build("pixels", "contrastive", in_channels=3, image_size=4, margin=2.5)
    assert type(model.backbone).__name__ == "Pixels" and type(model.head).__name__ == "ContrastiveHead"
    assert (model.backbone.in_channels, model.backbone.image_size, model.backbone.out_dim) == (3, 4, 48)
    assert model.head.dim == 48 and model.head.margin == 2.5
    assert (model.objective, model.metric) == ("pair", True)
    triplet = SiameseModel.build("pixels", "triplet", image_size=2)
    assert (triplet.objective, triplet.metric, triplet.head.dim) == ("triplet", True, 4)


def test_build_defaults_to_one_channel_28x28_images():
    model = SiameseModel.build("pixels", "koch")
    assert (model.backbone.in_channels, model.backbone.image_size, model.head.dim) == (1, 28, 784)


def test_build_on_a_subclass_returns_the_subclass():
    class Sub(SiameseModel):
        pass

    assert type(Sub.build("pixels", "l2", image_size=2)) is Sub


def test_embed_and_forward_run_the_backbone_and_keep_the_graph():
    model = SiameseModel.build("pixels", "koch", in_channels=2, image_size=3)
    x = torch.rand(5, 2, 3, 3, requires_grad=True)
    out = model(x)
    assert out.shape == (5, 18)
    torch.testing.assert_close(out, x.reshape(5, 18), rtol=0, atol=0)
    torch.testing.assert_close(model.embed(x), out, rtol=0, atol=0)
    out.sum().backward()
    torch.testing.assert_close(x.grad, torch.ones_like(x), rtol=0, atol=0)


def test_a_new_model_is_in_training_mode_with_trainable_head():
    backbone = nn.Sequential(nn.Flatten(), nn.BatchNorm1d(4))
    backbone.out_dim = 4
    model = SiameseModel(backbone, HEADS.get("koch")(4))
    assert all(m.training for m in model.modules())
    params = list(model.parameters())
    assert len(params) == 4 and all(p.requires_grad for p in params)  # BN weight/bias, head fc weight/bias


def _mlp(out_dim=64, **kw):
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 64))
    if out_dim is not None:
        net.out_dim = out_dim
    return net


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (
            lambda: _mlp(),
            "backbone 'yours': its factory must take the keyword arguments in_channels and image_size",
        ),
        (
            lambda in_channels, image_size: _mlp(None),
            "backbone 'yours' (Sequential) has out_dim None; a backbone",
        ),
        (lambda in_channels, image_size: _mlp(64.0), "has out_dim 64.0; a backbone states the size D"),
        (lambda in_channels, image_size: _mlp(True), "has out_dim True; a backbone states the size D"),
    ],
)
def test_a_registered_backbone_of_ones_own_that_breaks_the_contract_is_named(monkeypatch, factory, message):
    """A backbone registered by a user (the README's Python API) without in_channels/image_size or out_dim
    gave a TypeError/AttributeError traceback per cell; now a ValueError naming it and the fix."""
    monkeypatch.setitem(BACKBONES._items, "yours", factory)
    with pytest.raises(ValueError, match=re.escape(message)):
        SiameseModel.build("yours", "contrastive", in_channels=1, image_size=8)


def test_a_backbone_whose_output_is_not_flat_is_told_to_flatten_it(monkeypatch):
    def conv(in_channels, image_size):
        net = nn.Conv2d(in_channels, 8, 3)
        net.out_dim = 8
        return net

    monkeypatch.setitem(BACKBONES._items, "yours", conv)
    model = SiameseModel.build("yours", "contrastive", in_channels=1, image_size=8)
    e = model.embed(torch.rand(4, 1, 8, 8))
    with pytest.raises(
        ValueError, match=r"got dtype torch.float32 shape \(2, 8, 6, 6\) .*flatten its output"
    ):
        model.head.loss(e[:2], e[2:], torch.tensor([True, False]))
