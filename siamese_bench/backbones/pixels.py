"""pixels: the identity encoder, for pixel-space baselines (no parameters, nothing to train).

    (B, C, H, W) float in [0, 1] -> flatten -> (B, C * H * W)

Paired with the parameter-free `l2` / `cosine` heads (heads/nearest.py) it gives the pixel-space
1-nearest-neighbour baseline for K = 1 and, since those heads are metric heads, the prototype (mean image)
method for K > 1. out_dim = in_channels * image_size ** 2 (784 at 28x28, 11025 at 105x105).
"""

from __future__ import annotations

import torch
from torch import nn

from siamese_bench.backbones import BACKBONES, check_args, check_images

MIN_SIZE = 1


class Pixels(nn.Module):
    """(B, in_channels, image_size, image_size) float -> (B, in_channels * image_size ** 2); no parameters."""

    def __init__(self, in_channels: int = 1, image_size: int = 28) -> None:
        super().__init__()
        check_args("pixels", in_channels, image_size, MIN_SIZE)
        self.in_channels = in_channels
        self.image_size = image_size
        self.out_dim = in_channels * image_size * image_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(self, x, self.in_channels, self.image_size)
        return x.flatten(1)  # logical (C, H, W) order, whatever the memory format

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, image_size={self.image_size}, out_dim={self.out_dim}"


@BACKBONES.register("pixels")
def pixels(in_channels: int = 1, image_size: int = 28) -> Pixels:
    """Flattened raw pixels; out_dim in_channels * image_size ** 2; no parameters (with l2 / cosine: the pixel 1-NN baseline)."""
    return Pixels(in_channels, image_size)
