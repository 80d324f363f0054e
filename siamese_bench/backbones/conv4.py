"""conv4: the standard few-shot "Conv-4" encoder (Vinyals et al. 2016; Snell et al. 2017).

    4 x [conv 3x3 64 padding 1 -> BatchNorm2d -> ReLU -> maxpool 2] -> flatten

Each block halves the spatial size with floor, so the output is 64 * (image_size // 16) ** 2 wide:
28 -> 14 -> 7 -> 3 -> 1 gives 64; 84 -> 5x5 gives 1600; 105 -> 6x6 gives 2304. image_size must be >= 16.
"""

from __future__ import annotations

import torch
from torch import nn

from siamese_bench.backbones import BACKBONES, check_args, check_images
from siamese_bench.backbones.maxpool import MaxPool2d

MIN_SIZE = 16
WIDTH = 64


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        # pool, then ReLU: the same function as ReLU, then pool (see backbones/__init__.py)
        nn.Conv2d(cin, cout, 3, padding=1),
        nn.BatchNorm2d(cout),
        MaxPool2d(2),
        nn.ReLU(inplace=True),
    )


class Conv4(nn.Module):
    """(B, in_channels, image_size, image_size) float -> (B, 64 * (image_size // 16) ** 2)."""

    def __init__(self, in_channels: int = 1, image_size: int = 28) -> None:
        super().__init__()
        check_args("conv4", in_channels, image_size, MIN_SIZE)
        self.in_channels = in_channels
        self.image_size = image_size
        self.net = nn.Sequential(
            _block(in_channels, WIDTH),
            _block(WIDTH, WIDTH),
            _block(WIDTH, WIDTH),
            _block(WIDTH, WIDTH),
            nn.Flatten(),
        )
        self.out_dim = WIDTH * (image_size // 16) ** 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(self, x, self.in_channels, self.image_size)
        return self.net(x)


@BACKBONES.register("conv4")
def conv4(in_channels: int = 1, image_size: int = 28) -> Conv4:
    """Conv-4: 4 x [conv 3x3 64, BN, ReLU, max-pool 2]; out_dim 64 * (image_size // 16) ** 2; image_size >= 16."""
    return Conv4(in_channels, image_size)
