"""Tests for siamese_bench/backbones: output shapes, size rules, paper init, resnet stems, weights files."""

import importlib
import sys

import pytest
import torch
from torch import nn

import siamese_bench.backbones
from siamese_bench.backbones import BACKBONES
from siamese_bench.backbones.koch import KochNet


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Single intra-op thread: these small convs gain nothing from threads, and on a shared CPU
    oversubscribed OpenMP threads make them several times slower. Restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _out(model, batch, in_channels, size):
    model.eval()
    with torch.no_grad():
        return model(torch.rand(batch, in_channels, size, size))


def test_registry_names():
    assert BACKBONES.names() == ["conv4", "koch", "pixels", "resnet18", "resnet34", "resnet50", "small-cnn"]


@pytest.mark.parametrize(
    ("size", "flat"), [(8, 64 * 2 * 2), (9, 64 * 2 * 2), (10, 64 * 1 * 1), (28, 64 * 5 * 5)]
)
def test_small_cnn_shapes(size, flat):
    m = BACKBONES.get("small-cnn")(1, size)
    assert m.flat_dim == flat and m.out_dim == 84
    assert _out(m, 3, 1, size).shape == (3, 84)


def test_small_cnn_105_and_rgb():
    m = BACKBONES.get("small-cnn")(3, 105)
    assert _out(m, 2, 3, 105).shape == (2, 84)


@pytest.mark.parametrize(("size", "out_dim"), [(16, 64), (28, 64), (84, 64 * 25), (105, 64 * 36)])
def test_conv4_shapes(size, out_dim):
    m = BACKBONES.get("conv4")(1, size)
    assert m.out_dim == out_dim
    assert _out(m, 2, 1, size).shape == (2, out_dim)


@pytest.mark.parametrize(
    ("size", "same_padding", "flat"), [(105, False, 256 * 6 * 6), (28, True, 256 * 5 * 5)]
)
def test_koch_shapes(size, same_padding, flat):
    m = BACKBONES.get("koch")(1, size)
    assert m.same_padding is same_padding and m.flat_dim == flat and m.out_dim == 4096
    y = _out(m, 2, 1, size)
    assert y.shape == (2, 4096)
    assert ((y >= 0) & (y <= 1)).all()  # sigmoid output (the paper init saturates many units)
    convs = [c for c in m.modules() if isinstance(c, nn.Conv2d)]
    assert [c.padding[0] for c in convs] == ([5, 3, 2, 2] if same_padding else [0, 0, 0, 0])


def test_koch_paper_init_statistics():
    torch.manual_seed(0)
    m = KochNet(1, 28)
    conv = m.features[3]  # conv 128@7x7: 64*128*49 weights
    assert abs(conv.weight.std().item() - 1e-2) < 1e-3 and abs(conv.weight.mean().item()) < 1e-3
    assert abs(conv.bias.mean().item() - 0.5) < 5e-3
    assert abs(m.fc.weight.std().item() - 0.2) < 5e-3
    assert abs(m.fc.bias.mean().item() - 0.5) < 2e-3
    plain = KochNet(1, 28, paper_init=False)
    assert abs(plain.fc.bias.mean().item() - 0.5) > 0.1


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50"])
def test_resnet_shapes_small_stem(name):
    m = BACKBONES.get(name)(1, 28)
    assert m.out_dim == (2048 if name == "resnet50" else 512)
    assert m.net.conv1.kernel_size == (3, 3) and m.net.conv1.stride == (1, 1)
    assert isinstance(m.net.maxpool, nn.Identity) and isinstance(m.net.fc, nn.Identity)
    assert _out(m, 2, 1, 28).shape == (2, m.out_dim)


@pytest.mark.parametrize("in_channels", [1, 3])
def test_resnet18_imagenet_stem_at_105(in_channels):
    m = BACKBONES.get("resnet18")(in_channels, 105)
    assert m.net.conv1.in_channels == in_channels
    assert m.net.conv1.kernel_size == (7, 7) and m.net.conv1.stride == (2, 2)
    assert isinstance(m.net.maxpool, nn.MaxPool2d)
    assert _out(m, 2, in_channels, 105).shape == (2, 512)


def test_resnet_weights_round_trip(tmp_path):
    torch.manual_seed(0)
    src = BACKBONES.get("resnet18")(1, 28)
    x = torch.rand(2, 1, 28, 28)
    path = tmp_path / "r18.pt"
    torch.save(src.state_dict(), path)
    torch.manual_seed(1)
    dst = BACKBONES.get("resnet18")(1, 28, weights=str(path))
    src.eval(), dst.eval()
    with torch.no_grad():
        torch.testing.assert_close(dst(x), src(x), rtol=0, atol=0)
    # a plain torchvision-style state dict (no "net." prefix, with an fc) is accepted too
    plain = {k.removeprefix("net."): v for k, v in src.state_dict().items()}
    plain["fc.weight"], plain["fc.bias"] = torch.zeros(10, 512), torch.zeros(10)
    torch.save(plain, tmp_path / "plain.pt")
    dst2 = BACKBONES.get("resnet18")(1, 28, weights=tmp_path / "plain.pt").eval()
    with torch.no_grad():
        torch.testing.assert_close(dst2(x), src(x), rtol=0, atol=0)


def test_resnet_wrong_weights_files(tmp_path):
    r18 = tmp_path / "r18.pt"
    torch.save(BACKBONES.get("resnet18")(1, 28).state_dict(), r18)
    with pytest.raises(ValueError, match=r"r18\.pt.*missing keys"):
        BACKBONES.get("resnet34")(1, 28, weights=r18)
    with pytest.raises(ValueError, match=r"shape mismatches.*net\.conv1\.weight"):
        BACKBONES.get("resnet18")(3, 28, weights=r18)  # 3 input channels vs a 1-channel file
    extra = tmp_path / "extra.pt"
    torch.save({**BACKBONES.get("resnet18")(1, 28).state_dict(), "net.bogus": torch.zeros(1)}, extra)
    with pytest.raises(ValueError, match=r"unexpected keys \(1\): net\.bogus"):
        BACKBONES.get("resnet18")(1, 28, weights=extra)
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        BACKBONES.get("resnet18")(1, 28, weights=tmp_path / "absent.pt")
    junk = tmp_path / "junk.pt"
    junk.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="cannot read weights file"):
        BACKBONES.get("resnet18")(1, 28, weights=junk)
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="not a state dict"):
        BACKBONES.get("resnet18")(1, 28, weights=tmp_path / "list.pt")


@pytest.mark.parametrize(("name", "size"), [("small-cnn", 3), ("conv4", 15), ("koch", 7)])
def test_too_small_image_size_raises(name, size):
    with pytest.raises(ValueError, match=r"image_size must be >= \d+"):
        BACKBONES.get(name)(1, size)


def test_bad_in_channels_raises():
    with pytest.raises(ValueError, match="in_channels must be >= 1"):
        BACKBONES.get("conv4")(0, 28)


@pytest.mark.parametrize("name", ["small-cnn", "conv4"])
def test_wrong_input_raises(name):
    m = BACKBONES.get(name)(1, 28)
    with pytest.raises(ValueError, match="built for 28x28"):
        m(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match="in_channels=1"):
        m(torch.rand(2, 3, 28, 28))
    with pytest.raises(ValueError, match="float image batch"):
        m(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))


def test_resnet_accepts_other_sizes_but_checks_channels():
    m = BACKBONES.get("resnet18")(1, 28).eval()
    assert _out(m, 1, 1, 20).shape == (1, 512)
    with pytest.raises(ValueError, match="in_channels=1"):
        m(torch.rand(1, 3, 28, 28))


def test_koch_layers_are_the_papers():
    """Koch et al. 2015 Fig. 4: conv 64@10x10, 128@7x7, 128@4x4, 256@4x4, then FC 4096; max-pooling after
    the first three convolutions only."""
    m = BACKBONES.get("koch")(1, 105)
    convs = [c for c in m.modules() if isinstance(c, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size) for c in convs] == [
        (64, (10, 10)),
        (128, (7, 7)),
        (128, (4, 4)),
        (256, (4, 4)),
    ]
    assert [c.in_channels for c in convs] == [1, 64, 128, 128]
    assert (m.fc.in_features, m.fc.out_features) == (9216, 4096)


def test_koch_pads_every_size_below_105():
    """Only the paper's 105x105 (or larger) uses valid convolutions; 104 is padded like 28."""
    assert BACKBONES.get("koch")(1, 104).same_padding is True
    assert BACKBONES.get("koch")().image_size == 28  # the factory's default size, as for the other backbones


def test_conv4_blocks_are_the_standard_conv4():
    """Vinyals et al. 2016 / Snell et al. 2017: 4 x [conv 3x3 64 (padding 1) -> BatchNorm -> ReLU -> pool 2]."""
    m = BACKBONES.get("conv4")(1, 28)
    convs = [c for c in m.modules() if isinstance(c, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.padding) for c in convs] == [
        (1, 64, (3, 3), (1, 1)),
        *[(64, 64, (3, 3), (1, 1))] * 3,
    ]
    assert [b.num_features for b in m.modules() if isinstance(b, nn.BatchNorm2d)] == [64] * 4


def test_small_cnn_layers_are_the_documented_lenet_style_encoder():
    """conv 3x3 32 -> pool -> conv 3x3 64 -> pool -> FC 120 -> ReLU -> FC 84."""
    m = BACKBONES.get("small-cnn")(1, 28)
    convs = [c for c in m.modules() if isinstance(c, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size) for c in convs] == [(32, (3, 3)), (64, (3, 3))]
    assert [type(x) for x in m.fc] == [nn.Linear, nn.ReLU, nn.Linear]
    assert [(x.in_features, x.out_features) for x in m.fc if isinstance(x, nn.Linear)] == [
        (1600, 120),
        (120, 84),
    ]


def test_resnet_small_stem_up_to_64_then_imagenet_stem():
    small, large = BACKBONES.get("resnet18")(1, 64), BACKBONES.get("resnet18")(1, 65)
    assert (
        small.small_stem and small.net.conv1.stride == (1, 1) and isinstance(small.net.maxpool, nn.Identity)
    )
    assert not large.small_stem and large.net.conv1.kernel_size == (7, 7) and large.net.conv1.stride == (2, 2)


def test_resnet_new_stem_gets_torchvisions_kaiming_init():
    """The replaced conv1 is initialised like torchvision's convs: kaiming normal, fan_out, ReLU gain, i.e.
    std sqrt(2 / (64 * 3 * 3)) for the small stem (PyTorch's default conv init would be about 0.19 here)."""
    torch.manual_seed(0)
    w = BACKBONES.get("resnet18")(1, 28).net.conv1.weight
    assert abs(w.std().item() / (2 / (64 * 9)) ** 0.5 - 1) < 0.1


def test_check_images_messages_name_the_module_and_the_mismatch():
    m = BACKBONES.get("pixels")(3, 28)
    with pytest.raises(
        ValueError,
        match=r"^Pixels expects a float image batch .* got dtype torch.uint8 shape \(2, 3, 28, 28\)",
    ):
        m(torch.zeros(2, 3, 28, 28, dtype=torch.uint8))
    for shape in [(3, 28, 28), (2, 3, 1, 28, 28)]:  # unbatched or 5-D: not a (B, C, H, W) batch
        with pytest.raises(ValueError, match="expects a float image batch"):
            m(torch.rand(shape))
    with pytest.raises(ValueError, match=r"^Pixels was built for in_channels=3 but got 1 channels"):
        m(torch.rand(2, 1, 28, 28))  # fewer channels than built for
    for h, w in [(28, 32), (32, 28)]:  # non-square images are refused whichever side differs
        with pytest.raises(ValueError, match=rf"^Pixels was built for 28x28 images but got {h}x{w}; "):
            m(torch.rand(2, 3, h, w))


def test_check_args_reports_the_backbones_minimum():
    with pytest.raises(
        ValueError, match=r"^small-cnn: image_size must be >= 4, got 3; .*folder:PATH@4 or larger"
    ):
        BACKBONES.get("small-cnn")(1, 3)
    with pytest.raises(ValueError, match=r"^conv4: in_channels must be >= 1, got -1$"):
        BACKBONES.get("conv4")(-1, 28)


def test_importing_the_package_alone_registers_every_backbone(monkeypatch):
    """A fresh import of siamese_bench.backbones (every backbone module unloaded first: the test files import
    some of them directly, which registers them anyway) must register all of them, pixels included."""
    for name in [
        n for n in sys.modules if n == "siamese_bench.backbones" or n.startswith("siamese_bench.backbones.")
    ]:
        monkeypatch.delitem(sys.modules, name)  # restored after the test, with the package attribute
    monkeypatch.setattr(siamese_bench, "backbones", siamese_bench.backbones)
    fresh = importlib.import_module("siamese_bench.backbones")
    assert fresh.BACKBONES is not BACKBONES
    assert fresh.BACKBONES.names() == [
        "conv4",
        "koch",
        "pixels",
        "resnet18",
        "resnet34",
        "resnet50",
        "small-cnn",
    ]
