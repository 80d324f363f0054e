"""Backbones apply max-pool before ReLU where the designs read "ReLU, then max-pool": the same function. Checked
here bit for bit (outputs and every parameter gradient) against a copy rebuilt in the textbook order."""

import copy

import pytest
import torch
from torch import nn

from siamese_bench.backbones import BACKBONES


def _textbook(module: nn.Module) -> tuple[nn.Module, int]:
    """A deep copy with every (MaxPool2d, ReLU) pair of a Sequential put back to (ReLU, MaxPool2d), and how
    many pairs were swapped."""
    twin, swapped = copy.deepcopy(module), 0
    for seq in [m for m in twin.modules() if isinstance(m, nn.Sequential)]:
        layers = list(seq)
        for i in range(len(layers) - 1):
            if isinstance(layers[i], nn.MaxPool2d) and isinstance(layers[i + 1], nn.ReLU):
                layers[i], layers[i + 1] = layers[i + 1], layers[i]
                swapped += 1
        for i, layer in enumerate(layers):
            seq._modules[str(i)] = layer
    return twin, swapped


@pytest.mark.parametrize(
    ("name", "size", "pairs"), [("small-cnn", 28, 2), ("koch", 28, 3), ("koch", 105, 3), ("conv4", 28, 4)]
)
def test_pool_then_relu_is_bit_identical_to_relu_then_pool(name, size, pairs):
    torch.manual_seed(0)
    ours = BACKBONES.get(name)(in_channels=1, image_size=size)
    ref, swapped = _textbook(ours)
    assert swapped == pairs  # the reorder is really there (and the helper found it)
    assert list(ours.state_dict()) == list(ref.state_dict())  # checkpoints are unaffected
    x = torch.rand(3, 1, size, size) - 0.5  # negative inputs too: windows whose max is <= 0
    out, out_ref = ours(x), ref(x)
    assert torch.equal(out, out_ref)
    (out * torch.linspace(-1, 1, out.shape[1])).sum().backward()
    (out_ref * torch.linspace(-1, 1, out.shape[1])).sum().backward()
    for (n, p), (_, q) in zip(ours.named_parameters(), ref.named_parameters(), strict=True):
        assert torch.equal(p.grad, q.grad), n
