"""Tests for backbones/pixels.py: flattening order, no parameters, size checks."""

import pytest
import torch

from siamese_bench.backbones import BACKBONES
from siamese_bench.backbones.pixels import Pixels


@pytest.mark.parametrize(("channels", "size"), [(1, 28), (3, 8), (1, 105)])
def test_flattens_in_chw_order(channels, size):
    m = BACKBONES.get("pixels")(channels, size)
    assert isinstance(m, Pixels) and m.out_dim == channels * size * size
    assert list(m.parameters()) == [] and list(m.buffers()) == []
    x = torch.rand(2, channels, size, size)
    torch.testing.assert_close(m(x), x.reshape(2, -1), rtol=0, atol=0)
    cl = x.contiguous(memory_format=torch.channels_last)  # same logical order whatever the memory format
    torch.testing.assert_close(m(cl), x.reshape(2, -1), rtol=0, atol=0)


def test_rejects_wrong_input():
    m = BACKBONES.get("pixels")(1, 28)
    with pytest.raises(ValueError, match="image_size=8"):
        m(torch.rand(2, 1, 8, 8))
    with pytest.raises(ValueError, match="float image batch"):
        m(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match="in_channels must be >= 1"):
        BACKBONES.get("pixels")(0, 28)


def test_sizes_down_to_one_pixel_and_messages():
    m = BACKBONES.get("pixels")(2, 1)  # MIN_SIZE is 1: a single pixel per channel is a valid image
    assert m.out_dim == 2
    x = torch.rand(3, 2, 1, 1)
    torch.testing.assert_close(m(x), x.reshape(3, 2), rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"^pixels: image_size must be >= 1, got 0;"):
        BACKBONES.get("pixels")(1, 0)
    with pytest.raises(ValueError, match=r"^pixels: in_channels must be >= 1, got 0$"):
        BACKBONES.get("pixels")(0, 1)


def test_defaults_are_one_channel_28x28():
    for m in (BACKBONES.get("pixels")(), Pixels()):
        assert (m.in_channels, m.image_size, m.out_dim) == (1, 28, 784)


def test_repr_shows_the_sizes():
    assert repr(Pixels(3, 4)) == "Pixels(in_channels=3, image_size=4, out_dim=48)"


def test_keeps_dtype_gradient_and_empty_batches():
    m = Pixels(2, 3)
    x = torch.rand(4, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    out = m(x)
    assert out.dtype == torch.float64 and out.shape == (4, 18)
    out.sum().backward()
    torch.testing.assert_close(x.grad, torch.ones_like(x), rtol=0, atol=0)
    assert m(torch.rand(0, 2, 3, 3)).shape == (0, 18)
