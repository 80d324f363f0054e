"""koch: the Siamese encoder of Koch, Zemel & Salakhutdinov, "Siamese Neural Networks for One-shot Image
Recognition" (ICML Deep Learning Workshop 2015), built for 105x105 Omniglot.

    conv 64@10x10 -> ReLU -> maxpool 2 -> conv 128@7x7 -> ReLU -> maxpool 2
    -> conv 128@4x4 -> ReLU -> maxpool 2 -> conv 256@4x4 -> ReLU -> flatten -> FC 4096 -> sigmoid

Padding rule: image_size >= 105 uses valid convolutions as in the paper (105 -> 96 -> 48 -> 42 -> 21 -> 18
-> 9 -> 6, flatten 256*6*6 = 9216); image_size < 105 (e.g. 28x28 MNIST) pads every conv with kernel // 2
so small images survive (28 -> 29 -> 14 -> 14 -> 7 -> 8 -> 4 -> 5, flatten 6400). Minimum image_size 8.

Initialisation (paper_init=True, the default) follows the paper: conv weights N(0, 1e-2), all biases
N(0.5, 1e-2), FC weights N(0, 0.2). With that FC std the 4096 sigmoid units start largely saturated
(pre-activations of order +-10 on [0, 1] images); paper_init=False keeps PyTorch's default init instead.
"""

from __future__ import annotations

import torch
from torch import nn

from siamese_bench.backbones import BACKBONES, check_args, check_images
from siamese_bench.backbones.maxpool import MaxPool2d

PAPER_SIZE = 105
MIN_SIZE = 8
# (out_channels, kernel, followed by maxpool 2)
LAYERS = ((64, 10, True), (128, 7, True), (128, 4, True), (256, 4, False))


class KochNet(nn.Module):
    """(B, in_channels, image_size, image_size) float -> (B, 4096) in (0, 1)."""

    def __init__(self, in_channels: int = 1, image_size: int = PAPER_SIZE, paper_init: bool = True) -> None:
        super().__init__()
        check_args("koch", in_channels, image_size, MIN_SIZE)
        self.in_channels = in_channels
        self.image_size = image_size
        self.same_padding = image_size < PAPER_SIZE
        layers: list[nn.Module] = []
        cin, s = in_channels, image_size
        for cout, k, pool in LAYERS:
            p = k // 2 if self.same_padding else 0
            layers.append(nn.Conv2d(cin, cout, k, padding=p))
            s = s + 2 * p - k + 1
            if pool:  # pool, then ReLU: the same function as ReLU, then pool (see backbones/__init__.py)
                layers.append(MaxPool2d(2))
                s //= 2
            layers.append(nn.ReLU(inplace=True))
            cin = cout
        layers.append(nn.Flatten())
        self.features = nn.Sequential(*layers)
        self.flat_dim = cin * s * s
        self.fc = nn.Linear(self.flat_dim, 4096)
        self.out_dim = 4096
        if paper_init:
            self.reset_parameters_paper()

    @torch.no_grad()
    def reset_parameters_paper(self) -> None:
        """Koch et al. 2015 init: conv W ~ N(0, 1e-2), biases ~ N(0.5, 1e-2), FC W ~ N(0, 0.2)."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.normal_(0.0, 1e-2 if isinstance(m, nn.Conv2d) else 0.2)
                m.bias.normal_(0.5, 1e-2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(self, x, self.in_channels, self.image_size)
        return torch.sigmoid(self.fc(self.features(x)))


@BACKBONES.register("koch")
def koch(in_channels: int = 1, image_size: int = 28, paper_init: bool = True) -> KochNet:
    """Koch et al. 2015 convnet (4 convs, FC 4096 + sigmoid); out_dim 4096; valid convs at size >= 105, padded below; size >= 8."""
    return KochNet(in_channels, image_size, paper_init)
