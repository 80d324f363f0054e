"""backbones/maxpool.py: the CPU NCHW fast path is bit-identical to nn.MaxPool2d (outputs, gradients, ties,
NaN, odd sizes, every pooling option the backbones use), is really taken, and leaves the other cases to
nn.MaxPool2d."""

import pytest
import torch
from torch import nn

from siamese_bench.backbones import BACKBONES
from siamese_bench.backbones.maxpool import MaxPool2d, _PoolViaChannelsLast, with_nn_maxpool

OPTIONS = [  # (kernel_size, stride, padding, ceil_mode)
    (2, None, 0, False),  # small-cnn, koch, conv4
    (3, 2, 1, False),  # the ResNet stem
    (2, 2, 0, True),
    ((3, 2), (2, 1), (1, 0), False),
]


def _inputs(kind: str, shape: tuple[int, ...]) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    if kind == "ties":  # three values: most windows hold several maxima, the first one must win
        return torch.randint(0, 3, shape, generator=g).float()
    x = torch.randn(shape, generator=g)
    if kind == "nan":
        x.view(-1)[torch.randperm(x.numel(), generator=g)[: x.numel() // 10]] = float("nan")
    return x


def _both(pool_args, x):
    ours = MaxPool2d(*pool_args[:3], ceil_mode=pool_args[3])
    ref = nn.MaxPool2d(*pool_args[:3], ceil_mode=pool_args[3])
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    out, out_ref = ours(a), ref(b)
    grad = torch.randn(out_ref.shape, generator=torch.Generator().manual_seed(1))
    out.backward(grad)
    out_ref.backward(grad)
    return out, out_ref, a.grad, b.grad


@pytest.mark.parametrize("options", OPTIONS)
@pytest.mark.parametrize("kind", ["random", "ties", "nan"])
@pytest.mark.parametrize("shape", [(4, 3, 26, 26), (2, 5, 11, 13), (3, 64, 7, 7)])
def test_bit_identical_to_nn_maxpool(options, kind, shape):
    out, out_ref, grad, grad_ref = _both(options, _inputs(kind, shape))
    assert out.shape == out_ref.shape and out.is_contiguous()
    assert torch.equal(out, out_ref) or (kind == "nan" and torch.equal(out.isnan(), out_ref.isnan()))
    if kind == "nan":
        assert torch.equal(torch.nan_to_num(out, 7.0), torch.nan_to_num(out_ref, 7.0))
    assert grad.is_contiguous()
    assert torch.equal(grad, grad_ref)


def test_fast_path_is_taken_for_cpu_nchw_with_grad():
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    out = MaxPool2d(2)(x)
    assert out.grad_fn is not None and "_PoolViaChannelsLast" in type(out.grad_fn).__name__
    assert type(out.grad_fn).__name__ == f"{_PoolViaChannelsLast.__name__}Backward"


@pytest.mark.parametrize(
    "make",
    [
        lambda: torch.randn(2, 4, 8, 8).contiguous(
            memory_format=torch.channels_last
        ),  # already fast natively
        lambda: torch.randn(2, 1, 8, 8),  # C == 1: both layouts at once
        lambda: torch.randn(2, 4, 8, 16)[..., ::2],  # not contiguous
        lambda: torch.randn(4, 8, 8),  # 3-D (C, H, W)
    ],
    ids=["channels-last", "one-channel", "strided", "3d"],
)
def test_other_inputs_use_nn_maxpool(make):
    x = make().requires_grad_()
    out = MaxPool2d(2)(x)
    assert "_PoolViaChannelsLast" not in type(out.grad_fn).__name__
    assert torch.equal(out, nn.MaxPool2d(2)(x))


def test_no_grad_and_return_indices():
    x = torch.randn(2, 4, 9, 9)
    with torch.no_grad():
        assert torch.equal(MaxPool2d(2)(x), nn.MaxPool2d(2)(x))
    out, idx = MaxPool2d(2, return_indices=True)(x)
    ref, ref_idx = nn.MaxPool2d(2, return_indices=True)(x)
    assert torch.equal(out, ref) and torch.equal(idx, ref_idx)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.float16])
def test_other_float_dtypes(dtype):
    x = torch.randn(2, 3, 10, 10).to(dtype)
    out, out_ref, grad, grad_ref = _both(OPTIONS[0], x)
    assert out.dtype == dtype and torch.equal(out, out_ref) and torch.equal(grad, grad_ref)


@pytest.mark.parametrize(
    ("name", "size", "pools"),
    [("small-cnn", 28, 2), ("conv4", 28, 4), ("koch", 105, 3), ("resnet18", 105, 1)],
)
def test_backbones_train_to_the_same_weights(name, size, pools):
    """Three Adam steps with the package's pools and with nn.MaxPool2d give bit-identical weights."""
    torch.manual_seed(0)
    ours = BACKBONES.get(name)(in_channels=1, image_size=size)
    ref, replaced = with_nn_maxpool(ours)
    assert replaced == pools
    assert list(ours.state_dict()) == list(ref.state_dict())
    x = torch.rand(4, 1, size, size, generator=torch.Generator().manual_seed(2))
    for model in (ours, ref):
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(3):
            opt.zero_grad()
            (model(x) * torch.linspace(-1, 1, model.out_dim)).sum().backward()
            opt.step()
    for (n, p), (_, q) in zip(ours.named_parameters(), ref.named_parameters(), strict=True):
        assert torch.equal(p, q), n


@pytest.mark.filterwarnings(
    "ignore:`torch.jit.trace:FutureWarning"
)  # deprecated, still used by old exporters
def test_traced_and_exported_models_record_the_standard_op():
    """torch.jit.trace (and the ONNX exporter built on it) and torch.export see plain max_pool2d, not the
    Python Function."""
    net = nn.Sequential(nn.Conv2d(1, 4, 3), MaxPool2d(2))
    x = torch.randn(2, 1, 10, 10)
    traced = torch.jit.trace(net, x)
    graph = str(traced.inlined_graph)
    assert "max_pool2d" in graph and "PythonOp" not in graph
    assert torch.equal(traced(x), net(x))
    exported = torch.export.export(net, (x,))
    assert "max_pool2d" in str(exported.graph) and torch.equal(exported.module()(x), net(x))


@pytest.mark.parametrize("mode", ["no_grad", "input_without_grad", "grad"])
def test_fast_path_output_is_nchw_contiguous(mode):
    """The fast path pools channels-last but hands back NCHW-contiguous outputs, as nn.MaxPool2d does."""
    x = torch.randn(2, 4, 10, 10, requires_grad=mode != "input_without_grad")
    with torch.set_grad_enabled(mode != "no_grad"):
        out = MaxPool2d(2)(x)
    ref = nn.MaxPool2d(2)(x)
    assert out.is_contiguous() and not out.is_contiguous(memory_format=torch.channels_last)
    assert out.stride() == ref.stride() and torch.equal(out, ref)


@pytest.mark.parametrize("kind", ["random", "ties"])
def test_dilation_is_honoured_bit_identically(kind):
    """No backbone dilates its pools, but MaxPool2d takes nn.MaxPool2d's dilation and must apply it."""
    x = _inputs(kind, (2, 3, 13, 11))
    ours, ref = MaxPool2d(3, 2, 1, dilation=(2, 3)), nn.MaxPool2d(3, 2, 1, dilation=(2, 3))
    with torch.no_grad():
        assert torch.equal(ours(x), ref(x))
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    out, out_ref = ours(a), ref(b)
    assert type(out.grad_fn).__name__ == f"{_PoolViaChannelsLast.__name__}Backward"
    assert torch.equal(out, out_ref)
    grad = torch.randn(out_ref.shape, generator=torch.Generator().manual_seed(1))
    out.backward(grad)
    out_ref.backward(grad)
    assert torch.equal(a.grad, b.grad)


def test_non_cpu_tensors_use_nn_maxpool():
    x = torch.randn(
        2, 4, 8, 8, device="meta", requires_grad=True
    )  # NCHW, float, with grad: only the device differs
    out = MaxPool2d(2)(x)
    assert out.shape == (2, 4, 4, 4) and "_PoolViaChannelsLast" not in type(out.grad_fn).__name__


def test_with_nn_maxpool_swaps_only_package_pools_in_a_copy_keeping_every_option():
    inner = nn.Sequential(MaxPool2d((3, 2), (2, 1), (1, 0), dilation=(2, 1), ceil_mode=True))
    net = nn.Sequential(MaxPool2d(2), inner, nn.MaxPool2d(3))
    twin, swapped = with_nn_maxpool(net)
    assert swapped == 2 and twin is not net
    # the original is left as it was, the twin holds plain nn.MaxPool2d only, with the same options (repr)
    assert [type(m) for m in net.modules() if isinstance(m, nn.MaxPool2d)] == [
        MaxPool2d,
        MaxPool2d,
        nn.MaxPool2d,
    ]
    assert [type(m) for m in twin.modules() if isinstance(m, nn.MaxPool2d)] == [nn.MaxPool2d] * 3
    assert repr(twin) == repr(net)
    x = torch.randn(1, 2, 40, 40)
    assert torch.equal(twin(x), net(x))
    # return_indices is not in the repr: the twin keeps it too (values and indices)
    pool = MaxPool2d(2, return_indices=True)
    twin_pool, _ = with_nn_maxpool(nn.Sequential(pool))
    assert twin_pool[0].return_indices
    for a, b in zip(twin_pool(x), pool(x), strict=True):
        assert torch.equal(a, b)


@pytest.mark.skipif(not torch._dynamo.is_dynamo_supported(), reason="torch.compile unsupported here")
def test_torch_compile_traces_the_standard_op():
    """torch.compile (dynamo) sees nn.MaxPool2d's plain max_pool2d, not the channels-last Function."""
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(str(gm.graph))
        return gm.forward

    net = nn.Sequential(nn.Conv2d(1, 4, 3), MaxPool2d(2))
    x = torch.randn(2, 1, 10, 10)
    compiled = torch.compile(net, backend=backend, fullgraph=True)
    assert torch.equal(compiled(x), net(x))
    assert len(graphs) == 1 and "max_pool2d" in graphs[0] and "with_indices" not in graphs[0], graphs
