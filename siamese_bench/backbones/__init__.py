"""Backbones: image encoders mapping float images (B, C, H, W) in [0, 1] to embeddings (B, D).

Registry `BACKBONES` maps a name to a factory
`(in_channels: int = 1, image_size: int = 28, ...) -> nn.Module`; every module has an `out_dim`
attribute (D). Registered names:

    small-cnn   classic 2-conv MNIST Siamese CNN (small_cnn.py), D = 84
    koch        Koch, Zemel & Salakhutdinov 2015 Omniglot Siamese network (koch.py), D = 4096
    conv4       4 x [conv 3x3 64, BN, ReLU, maxpool 2] (conv4.py), D = 64 * (image_size // 16) ** 2
    resnet18/34/50  torchvision ResNets adapted to in_channels and small images (resnet.py), D = 512 / 2048
    pixels      flattened raw pixels, no parameters (pixels.py), D = in_channels * image_size ** 2

Images are assumed square (image_size x image_size).

Block order: where a design reads "ReLU, then max-pool" (small-cnn, koch, conv4) the modules apply max-pool
first and ReLU second. ReLU is monotone, so max(relu(a), relu(b)) == relu(max(a, b)) exactly: the output and
the gradients are bit-identical (tests/backbones/test_block_order.py), ReLU touches 4x fewer values, and
the parameter names (state_dict keys) are those of the textbook order.

Max-pooling uses `maxpool.MaxPool2d`, an `nn.MaxPool2d` whose CPU path for NCHW tensors goes through
PyTorch's channels-last kernel (several times faster) with bit-identical outputs and gradients.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from siamese_bench.registry import Registry

BACKBONES: Registry[Callable[..., nn.Module]] = Registry("backbone")


def check_images(owner: nn.Module, x: torch.Tensor, in_channels: int, image_size: int | None) -> None:
    """Raise ValueError unless x is a float (B, in_channels, image_size, image_size) batch.

    image_size None accepts any spatial size (backbones that end in adaptive pooling).
    """
    name = type(owner).__name__
    if x.dim() != 4 or not x.is_floating_point():
        raise ValueError(
            f"{name} expects a float image batch (B, C, H, W); got dtype {x.dtype} shape {tuple(x.shape)} "
            "(convert uint8 images with images.float().div_(255))"
        )
    if x.shape[1] != in_channels:
        raise ValueError(
            f"{name} was built for in_channels={in_channels} but got {x.shape[1]} channels; "
            "build the backbone with the dataset's channel count"
        )
    if image_size is not None and tuple(x.shape[2:]) != (image_size, image_size):
        raise ValueError(
            f"{name} was built for {image_size}x{image_size} images but got "
            f"{x.shape[2]}x{x.shape[3]}; build it with image_size={x.shape[2]} (square images only)"
        )


def check_args(name: str, in_channels: int, image_size: int, min_size: int) -> None:
    """Raise ValueError for a non-positive in_channels or an image_size below the backbone's minimum."""
    if in_channels < 1:
        raise ValueError(f"{name}: in_channels must be >= 1, got {in_channels}")
    if image_size < min_size:
        raise ValueError(
            f"{name}: image_size must be >= {min_size}, got {image_size}; resize the images (your own: "
            f"folder:PATH@{min_size} or larger) or use another backbone"
        )


from siamese_bench.backbones import conv4, koch, pixels, resnet, small_cnn  # noqa: E402  (they register themselves)

__all__ = ["BACKBONES", "check_args", "check_images", "conv4", "koch", "pixels", "resnet", "small_cnn"]
