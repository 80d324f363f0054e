"""Koch et al. (2015) affine distortions, applied to a whole batch on its device in one `grid_sample`.

The paper (Section 4.2) augments each training pair with a random affine transform made of a rotation
theta in [-10, 10] degrees, shears rho_x, rho_y in [-0.3, 0.3], scales s_x, s_y in [0.8, 1.2] and shifts
t_x, t_y in [-2, 2] pixels, "each of these components included with probability 0.5". `AffineDistortion`
draws those parameters for every image of a batch at once (one `torch.rand` call, no Python loop per
image), builds a batch of forward 2x3 pixel-space matrices, converts them to the normalised inverse maps
that `F.affine_grid` expects and resamples with bilinear interpolation and zero padding (the background
is 0: bright ink on a dark background).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AffineDistortion:
    """Random Koch-style affine distortion.

    rotation: max |angle| in degrees (uniform in [-rotation, rotation]).
    shear: max |rho| for the x and y shear, each drawn independently.
    scale: (low, high) range of the x and y scale factors, each drawn independently.
    shift: max |t| in pixels of the input image, for x and y independently.
    p: probability that each component (rotation, shear x, shear y, scale x, scale y, shift x, shift y)
       is applied; a component not applied is the identity (0 angle, 0 shear, scale 1, shift 0).

    The transform maps input pixel coordinates u (relative to the image centre) to output coordinates
    R(theta) @ Shear(rho_x, rho_y) @ diag(s_x, s_y) @ u + t, with Shear = [[1, rho_x], [rho_y, 1]].
    """

    rotation: float = 10.0
    shear: float = 0.3
    scale: tuple[float, float] = (0.8, 1.2)
    shift: float = 2.0
    p: float = 0.5

    def __post_init__(self) -> None:
        lo, hi = self.scale
        if self.rotation < 0 or self.shear < 0 or self.shift < 0:
            raise ValueError(
                f"AffineDistortion: rotation, shear and shift are half-ranges and must be >= 0, got "
                f"rotation={self.rotation}, shear={self.shear}, shift={self.shift}"
            )
        if self.shear >= 1:
            raise ValueError(
                f"AffineDistortion: shear must be < 1 (keeps the map invertible), got {self.shear}"
            )
        if not 0 < lo <= hi:
            raise ValueError(
                f"AffineDistortion: scale must be (low, high) with 0 < low <= high, got {self.scale}"
            )
        if not 0 <= self.p <= 1:
            raise ValueError(f"AffineDistortion: p must be a probability in [0, 1], got {self.p}")

    def sample(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """(batch, 2, 3) float32 forward maps in pixels about the image centre, on the generator's device.

        Row-vector form: out = M[:, :, :2] @ u + M[:, :, 2] for u = (x, y) pixel offsets from the centre.
        """
        dev = generator.device
        u = torch.rand(batch, 7, generator=generator, device=dev)  # uniform draws for the 7 components
        on = torch.rand(batch, 7, generator=generator, device=dev) < self.p  # which components apply
        lo, hi = self.scale
        theta = torch.where(on[:, 0], (2 * u[:, 0] - 1) * math.radians(self.rotation), 0.0)
        rho_x = torch.where(on[:, 1], (2 * u[:, 1] - 1) * self.shear, 0.0)
        rho_y = torch.where(on[:, 2], (2 * u[:, 2] - 1) * self.shear, 0.0)
        s_x = torch.where(on[:, 3], lo + (hi - lo) * u[:, 3], 1.0)
        s_y = torch.where(on[:, 4], lo + (hi - lo) * u[:, 4], 1.0)
        t_x = torch.where(on[:, 5], (2 * u[:, 5] - 1) * self.shift, 0.0)
        t_y = torch.where(on[:, 6], (2 * u[:, 6] - 1) * self.shift, 0.0)
        cos, sin = torch.cos(theta), torch.sin(theta)
        rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
        one = torch.ones_like(rho_x)
        shear = torch.stack([torch.stack([one, rho_x], -1), torch.stack([rho_y, one], -1)], -2)
        linear = rot @ shear * torch.stack([s_x, s_y], -1)[:, None, :]  # right-multiply by diag(s_x, s_y)
        return torch.cat([linear, torch.stack([t_x, t_y], -1)[:, :, None]], dim=2)

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """images (B, C, H, W) float in [0, 1] -> distorted (B, C, H, W), same dtype and device."""
        if images.ndim != 4 or not images.is_floating_point():
            raise ValueError(
                f"AffineDistortion: images must be float (B, C, H, W) in [0, 1], got {images.dtype} "
                f"{tuple(images.shape)}"
            )
        return warp(images, self.sample(images.shape[0], generator))


def warp(images: torch.Tensor, forward: torch.Tensor) -> torch.Tensor:
    """Apply forward pixel-space affine maps (B, 2, 3) (see `AffineDistortion.sample`) to images (B, C, H, W).

    Output pixel v takes the (bilinear) input value at M^-1 (v - t); outside the image it is 0.
    """
    b, _, h, w = images.shape
    if forward.shape != (b, 2, 3):
        raise ValueError(f"warp: need one (2, 3) map per image, got {tuple(forward.shape)} for batch {b}")
    forward = forward.to(images.device, torch.float32)
    a, bb = forward[:, 0, 0], forward[:, 0, 1]
    c, d = forward[:, 1, 0], forward[:, 1, 1]
    det = a * d - bb * c
    inv = torch.stack([torch.stack([d, -bb], -1), torch.stack([-c, a], -1)], -2) / det[:, None, None]
    inv_t = -(inv @ forward[:, :, 2:])  # (B, 2, 1)
    # pixel offsets -> affine_grid's normalised coordinates (align_corners=False): x_n = x_px * 2 / W
    to_norm = torch.tensor([2.0 / w, 2.0 / h], device=images.device)
    lin_n = inv * to_norm[None, :, None] / to_norm[None, None, :]
    t_n = inv_t * to_norm[None, :, None]
    theta = torch.cat([lin_n, t_n], dim=2).to(images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
