"""small-cnn: the classic small MNIST Siamese CNN (a LeNet-style encoder, as in the common PyTorch/Keras
MNIST Siamese tutorials).

    conv 3x3 32 -> ReLU -> maxpool 2 -> conv 3x3 64 -> ReLU -> maxpool 2 -> flatten -> FC 120 -> ReLU -> FC 84

Convolutions are "valid" (no padding) when image_size >= 10 (e.g. 28 -> 26 -> 13 -> 11 -> 5, flatten 1600);
for 4 <= image_size < 10, where valid convolutions would leave nothing, they use padding 1 ("same"), e.g.
8 -> 8 -> 4 -> 4 -> 2, flatten 256. The flatten size is computed exactly from image_size.
"""

from __future__ import annotations

import torch
from torch import nn

from siamese_bench.backbones import BACKBONES, check_args, check_images
from siamese_bench.backbones.maxpool import MaxPool2d

MIN_SIZE = 4
VALID_MIN_SIZE = 10


class SmallCNN(nn.Module):
    """(B, in_channels, image_size, image_size) float -> (B, 84)."""

    def __init__(self, in_channels: int = 1, image_size: int = 28) -> None:
        super().__init__()
        check_args("small-cnn", in_channels, image_size, MIN_SIZE)
        self.in_channels = in_channels
        self.image_size = image_size
        self.padding = 0 if image_size >= VALID_MIN_SIZE else 1
        p = self.padding
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, padding=p),
            MaxPool2d(2),  # pool, then ReLU: the same function (see backbones/__init__.py), 4x less ReLU
            nn.ReLU(inplace=True),
            nn.Conv2d(32, 64, 3, padding=p),
            MaxPool2d(2),
            nn.ReLU(inplace=True),
            nn.Flatten(),
        )
        s = image_size
        for _ in range(2):
            s = (s + 2 * p - 2) // 2  # conv 3x3, then maxpool 2 (floor)
        self.flat_dim = 64 * s * s
        self.fc = nn.Sequential(nn.Linear(self.flat_dim, 120), nn.ReLU(inplace=True), nn.Linear(120, 84))
        self.out_dim = 84

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(self, x, self.in_channels, self.image_size)
        return self.fc(self.features(x))


@BACKBONES.register("small-cnn")
def small_cnn(in_channels: int = 1, image_size: int = 28) -> SmallCNN:
    """Classic small MNIST Siamese CNN (2 convs, FC 120, FC 84); out_dim 84; image_size >= 4."""
    return SmallCNN(in_channels, image_size)
