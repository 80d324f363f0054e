"""resnet18 / resnet34 / resnet50: torchvision ResNets (He et al. 2016) as embedding backbones.

Always built with weights=None: nothing is ever downloaded. Adaptations:
- conv1 takes `in_channels` inputs (1 for MNIST/Omniglot);
- image_size <= 64: conv1 becomes 3x3 stride 1 padding 1 and the stem maxpool is removed (nn.Identity), the
  usual CIFAR-style stem, so 28x28 inputs keep a 28 -> 28 -> 14 -> 7 -> 4 spatial path; larger images keep
  the ImageNet stem (7x7 stride 2 padding 3 + maxpool);
- fc is nn.Identity: the output is the global-average-pooled feature, out_dim 512 (18/34) or 2048 (50).

Any spatial size works at forward time (adaptive average pooling); only the channel count is checked.

`weights` is an optional local path to a state dict saved from the same backbone (`torch.save(m.state_dict(),
path)`); it is loaded strictly (missing/unexpected keys or shape mismatches raise a ValueError naming the
file). A plain torchvision ResNet state dict (keys without the "net." prefix) is accepted too; keys
"fc.weight"/"fc.bias" in the file are ignored, since fc is replaced by nn.Identity.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

import torch
from torch import nn
from torchvision import models

from siamese_bench.backbones import BACKBONES, check_args, check_images
from siamese_bench.backbones.maxpool import MaxPool2d

SMALL_STEM_MAX_SIZE = 64
MAX_KEYS_SHOWN = 10


class ResNetBackbone(nn.Module):
    """(B, in_channels, H, W) float -> (B, out_dim); wraps a torchvision ResNet with fc = Identity."""

    def __init__(
        self,
        arch: str,
        build: Callable[..., models.ResNet],
        out_dim: int,
        in_channels: int = 1,
        image_size: int = 28,
        weights: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__()
        check_args(arch, in_channels, image_size, 1)
        self.arch = arch
        self.in_channels = in_channels
        self.image_size = image_size
        self.small_stem = image_size <= SMALL_STEM_MAX_SIZE
        net = build(weights=None)
        if self.small_stem:
            net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
            net.maxpool = nn.Identity()
        else:
            net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
            # torchvision's stem pool, as the package's MaxPool2d: bit-identical, faster on CPU
            net.maxpool = MaxPool2d(kernel_size=3, stride=2, padding=1)
        nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
        net.fc = nn.Identity()
        self.net = net
        self.out_dim = out_dim
        if weights is not None:
            self.load_weights(weights)

    def load_weights(self, path: str | os.PathLike[str]) -> None:
        """Load a local state dict strictly; raise FileNotFoundError / ValueError naming the file."""
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"{self.arch}: weights file {path!r} does not exist (nothing is downloaded)"
            )
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # corrupt or non-torch file
            raise ValueError(f"{self.arch}: cannot read weights file {path!r} with torch.load: {e}") from e
        if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise ValueError(
                f"{self.arch}: weights file {path!r} is not a state dict (a mapping of name -> tensor); "
                "save it with torch.save(backbone.state_dict(), path)"
            )
        if not any(k.startswith("net.") for k in state):  # a plain torchvision ResNet state dict
            state = {f"net.{k}": v for k, v in state.items()}
        state = {k: v for k, v in state.items() if k not in ("net.fc.weight", "net.fc.bias")}
        own = self.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        wrong_shape = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
        if missing or unexpected or wrong_shape:
            parts = []
            for label, keys in (("missing keys", missing), ("unexpected keys", unexpected)):
                if keys:
                    more = f" ... (+{len(keys) - MAX_KEYS_SHOWN} more)" if len(keys) > MAX_KEYS_SHOWN else ""
                    parts.append(f"{label} ({len(keys)}): {', '.join(keys[:MAX_KEYS_SHOWN])}{more}")
            if wrong_shape:
                shown = [
                    f"{k} file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                    for k in wrong_shape[:MAX_KEYS_SHOWN]
                ]
                parts.append(f"shape mismatches ({len(wrong_shape)}): {'; '.join(shown)}")
            raise ValueError(
                f"{self.arch}(in_channels={self.in_channels}, image_size={self.image_size}): weights file "
                f"{path!r} does not match the model: {' | '.join(parts)}; save the file from a backbone "
                "built with the same name, in_channels and image_size (<= 64 vs > 64 changes the stem)"
            )
        self.load_state_dict(state, strict=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(self, x, self.in_channels, None)
        return self.net(x)


@BACKBONES.register("resnet18")
def resnet18(
    in_channels: int = 1, image_size: int = 28, weights: str | os.PathLike[str] | None = None
) -> ResNetBackbone:
    """torchvision ResNet-18, stem adapted to in_channels and small images, no fc; out_dim 512."""
    return ResNetBackbone("resnet18", models.resnet18, 512, in_channels, image_size, weights)


@BACKBONES.register("resnet34")
def resnet34(
    in_channels: int = 1, image_size: int = 28, weights: str | os.PathLike[str] | None = None
) -> ResNetBackbone:
    """torchvision ResNet-34, stem adapted to in_channels and small images, no fc; out_dim 512."""
    return ResNetBackbone("resnet34", models.resnet34, 512, in_channels, image_size, weights)


@BACKBONES.register("resnet50")
def resnet50(
    in_channels: int = 1, image_size: int = 28, weights: str | os.PathLike[str] | None = None
) -> ResNetBackbone:
    """torchvision ResNet-50 (bottlenecks), stem adapted to in_channels and small images, no fc; out_dim 2048."""
    return ResNetBackbone("resnet50", models.resnet50, 2048, in_channels, image_size, weights)
