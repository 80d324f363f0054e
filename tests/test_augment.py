"""Tests for siamese_bench.augment: identity, shape/device, determinism, exact shifts, parameter ranges."""

from __future__ import annotations

import math

import pytest
import torch

from siamese_bench.augment import AffineDistortion, warp


def _images(b=6, c=1, h=12, w=16, seed=0) -> torch.Tensor:
    return torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed))


def test_zero_ranges_are_the_identity():
    x = _images()
    aug = AffineDistortion(rotation=0, shear=0, scale=(1, 1), shift=0, p=1.0)
    out = aug(x, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)


def test_p_zero_is_the_identity_even_with_ranges():
    x = _images()
    out = AffineDistortion(p=0.0)(x, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)


def test_shape_dtype_device_preserved_and_images_change():
    x = _images(c=3)
    out = AffineDistortion(p=1.0)(x, torch.Generator().manual_seed(1))
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    assert not torch.allclose(out, x, atol=1e-3)


def test_same_seed_same_output_different_seed_different_output():
    x = _images()
    aug = AffineDistortion()
    a = aug(x, torch.Generator().manual_seed(5))
    b = aug(x, torch.Generator().manual_seed(5))
    c = aug(x, torch.Generator().manual_seed(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_integer_shift_moves_content_exactly():
    x = torch.zeros(1, 1, 10, 12)
    x[0, 0, 3, 4] = 1.0
    x[0, 0, 5, 6] = 0.5
    fwd = torch.tensor([[[1.0, 0.0, 2.0], [0.0, 1.0, -1.0]]])  # +2 px in x, -1 px in y
    out = warp(x, fwd)
    expected = torch.zeros_like(x)
    expected[0, 0, 2, 6] = 1.0
    expected[0, 0, 4, 8] = 0.5
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


def test_random_pure_shift_moves_centre_of_mass_by_sampled_pixels():
    b, h, w = 64, 20, 20
    x = torch.zeros(b, 1, h, w)
    x[:, :, 8:12, 7:13] = 1.0  # a blob away from the border, so nothing is cut off
    aug = AffineDistortion(rotation=0, shear=0, scale=(1, 1), shift=2, p=0.5)
    out = aug(x, torch.Generator().manual_seed(3))
    fwd = aug.sample(b, torch.Generator().manual_seed(3))
    t = fwd[:, :, 2]
    assert (t.abs() <= 2).all() and (t == 0).any() and (t != 0).any()
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij"
    )

    def com(img):
        m = img.sum((-1, -2))
        return torch.stack([(img * xs).sum((-1, -2)) / m, (img * ys).sum((-1, -2)) / m], -1)[:, 0]

    torch.testing.assert_close(com(out) - com(x), t, atol=1e-4, rtol=0)


def test_sampled_parameters_respect_ranges_and_probability():
    aug = AffineDistortion()
    fwd = aug.sample(4000, torch.Generator().manual_seed(0))
    lin = fwd[:, :, :2]
    # the determinant is s_x * s_y * (1 - rho_x * rho_y) with |rho_x * rho_y| <= 0.09
    det = torch.linalg.det(lin)
    assert det.min() >= 0.8**2 * (1 - 0.09) - 1e-5 and det.max() <= 1.2**2 * (1 + 0.09) + 1e-5
    t = fwd[:, :, 2]
    assert t.abs().max() <= 2.0
    frac_shifted = (t[:, 0] != 0).float().mean().item()
    assert abs(frac_shifted - 0.5) < 0.05
    # rotation only: angles within +-10 degrees
    rot = AffineDistortion(shear=0, scale=(1, 1), shift=0, p=1.0).sample(
        1000, torch.Generator().manual_seed(0)
    )
    angles = torch.atan2(rot[:, 1, 0], rot[:, 0, 0])
    assert angles.abs().max() <= math.radians(10) + 1e-6
    assert angles.abs().max() > math.radians(9)


def test_rotation_by_90_degrees_about_centre():
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 2, 4] = 1.0  # right of centre
    fwd = torch.tensor([[[0.0, -1.0, 0.0], [1.0, 0.0, 0.0]]])  # (x, y) -> (-y, x): right -> down (y grows)
    out = warp(x, fwd)
    expected = torch.zeros_like(x)
    expected[0, 0, 4, 2] = 1.0
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rotation": -1},
        {"shear": 1.0},
        {"scale": (1.2, 0.8)},
        {"scale": (0.0, 1.0)},
        {"p": 1.5},
        {"shift": -2},
    ],
)
def test_bad_parameters_raise(kwargs):
    with pytest.raises(ValueError, match="AffineDistortion"):
        AffineDistortion(**kwargs)


def test_bad_images_raise():
    with pytest.raises(ValueError, match="float"):
        AffineDistortion()(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.Generator())
    with pytest.raises(ValueError, match="one"):
        warp(torch.zeros(2, 1, 4, 4), torch.zeros(3, 2, 3))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_runs_on_cuda_with_cuda_generator():
    x = _images().cuda()
    out = AffineDistortion()(x, torch.Generator(device="cuda").manual_seed(0))
    assert out.device == x.device and out.shape == x.shape


def test_x_and_y_scales_are_drawn_independently():
    """Rotation and shear off: the linear part is diag(s_x, s_y), and s_x, s_y are uncorrelated."""
    aug = AffineDistortion(rotation=0, shear=0, scale=(0.8, 1.2), shift=0, p=1.0)
    lin = aug.sample(4000, torch.Generator().manual_seed(0))[:, :, :2]
    assert torch.equal(lin[:, 0, 1], torch.zeros(4000)) and torch.equal(lin[:, 1, 0], torch.zeros(4000))
    s = torch.stack([lin[:, 0, 0], lin[:, 1, 1]])
    assert s.min() >= 0.8 and s.max() <= 1.2
    assert abs(torch.corrcoef(s)[0, 1].item()) < 0.05
    # with p = 0.5 as well (each scale on or off independently)
    lin = AffineDistortion(rotation=0, shear=0, shift=0).sample(4000, torch.Generator().manual_seed(1))
    s = torch.stack([lin[:, 0, 0], lin[:, 1, 1]])
    assert abs(torch.corrcoef(s)[0, 1].item()) < 0.05
    assert abs((s[0] == 1).float().mean().item() - 0.5) < 0.05
    assert abs(((s[0] == 1) & (s[1] == 1)).float().mean().item() - 0.25) < 0.05


def test_scale_is_applied_first_rotation_last():
    """M = R(theta) @ diag(s_x, s_y): the columns are orthogonal, with lengths s_x and s_y (diag(s) @ R would
    have orthogonal rows instead); with shear, M @ diag(s)^-1 = R @ Shear."""
    aug = AffineDistortion(shear=0, shift=0, p=1.0)
    m = aug.sample(500, torch.Generator().manual_seed(0))[:, :, :2].double()
    sx, sy = m[:, :, 0].norm(dim=1), m[:, :, 1].norm(dim=1)
    theta = torch.atan2(m[:, 1, 0], m[:, 0, 0])
    c, s = torch.cos(theta), torch.sin(theta)
    rot = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
    torch.testing.assert_close(m, rot @ torch.diag_embed(torch.stack([sx, sy], -1)), atol=1e-6, rtol=0)
    assert (sx - sy).abs().max() > 0.2  # the order matters only when the scales differ
    # with shear: probe the unit x vector; R @ Shear @ diag(s) @ e_x = s_x * R @ (1, rho_y)
    aug = AffineDistortion(rotation=10, shear=0.3, scale=(0.8, 1.2), shift=0, p=1.0)
    gen = torch.Generator().manual_seed(3)
    u = torch.rand(500, 7, generator=torch.Generator().manual_seed(3))  # the draws `sample` makes first
    m = aug.sample(500, gen)[:, :, :2].double()
    u = u.double()
    theta = (2 * u[:, 0] - 1) * math.radians(10)
    rho_x, rho_y = (2 * u[:, 1] - 1) * 0.3, (2 * u[:, 2] - 1) * 0.3
    s_x, s_y = 0.8 + 0.4 * u[:, 3], 0.8 + 0.4 * u[:, 4]
    c, s = torch.cos(theta), torch.sin(theta)
    rot = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
    one = torch.ones_like(rho_x)
    shear = torch.stack([torch.stack([one, rho_x], -1), torch.stack([rho_y, one], -1)], -2)
    want = rot @ shear @ torch.diag_embed(torch.stack([s_x, s_y], -1))
    torch.testing.assert_close(m, want, atol=1e-5, rtol=0)


def test_default_ranges_are_koch_et_al_section_4_2():
    """The defaults are the paper's ranges: each component alone (p=1) fills its whole range, rotation
    [-10, 10] degrees (checked above), shears [-0.3, 0.3], scales [0.8, 1.2], shifts [-2, 2] pixels."""
    import dataclasses

    aug = AffineDistortion()
    assert aug.p == 0.5
    none = dict(rotation=0.0, shear=0.0, scale=(1.0, 1.0), shift=0.0, p=1.0)
    g = torch.Generator().manual_seed(0)
    keep_shear = {k: v for k, v in none.items() if k != "shear"}
    fwd = dataclasses.replace(aug, **keep_shear).sample(2000, g)
    rho = torch.stack([fwd[:, 0, 1], fwd[:, 1, 0]])
    assert (
        rho.abs().max() <= 0.3 + 1e-6 and rho.min(1).values.max() < -0.29 and rho.max(1).values.min() > 0.29
    )
    keep_scale = {k: v for k, v in none.items() if k != "scale"}
    fwd = dataclasses.replace(aug, **keep_scale).sample(2000, g)
    s = torch.stack([fwd[:, 0, 0], fwd[:, 1, 1]])
    assert s.min() >= 0.8 - 1e-6 and s.max() <= 1.2 + 1e-6 and s.min() < 0.81 and s.max() > 1.19
    keep_shift = {k: v for k, v in none.items() if k != "shift"}
    t = dataclasses.replace(aug, **keep_shift).sample(2000, g)[:, :, 2]
    assert t.abs().max() <= 2.0 and t.min(0).values.max() < -1.95 and t.max(0).values.min() > 1.95


def test_each_component_is_switched_on_independently():
    """ "each of these components included with probability 0.5": the x and y shifts are not switched on
    together (about a quarter of the images shift in x only)."""
    t = AffineDistortion().sample(8000, torch.Generator().manual_seed(0))[:, :, 2]
    x_only = ((t[:, 0] != 0) & (t[:, 1] == 0)).float().mean().item()
    assert abs(x_only - 0.25) < 0.03


def test_pixels_shifted_in_from_outside_are_background_zero():
    """Zero padding: ink never smears in from the border (the background is 0)."""
    x = torch.ones(1, 1, 6, 8)
    out = warp(x, torch.tensor([[[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]]]))  # +2 px in x
    assert torch.equal(out[..., :2], torch.zeros(1, 1, 6, 2))
    torch.testing.assert_close(out[..., 2:], torch.ones(1, 1, 6, 6), atol=1e-5, rtol=0)


def test_float64_images_stay_float64():
    x = _images().double()
    out = AffineDistortion(p=1.0)(x, torch.Generator().manual_seed(0))
    assert out.dtype == torch.float64 and out.shape == x.shape
