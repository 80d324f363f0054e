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
