"""MaxPool2d: `nn.MaxPool2d` with a faster exact path for NCHW float tensors on the CPU.

PyTorch's CPU max-pool kernel for NCHW (contiguous) tensors is several times slower than its channels-last
kernel: on a 2-core Xeon (one thread), pooling small-cnn's first activation (256, 32, 26, 26) takes ~27 ms
NCHW and ~2 ms channels-last, while the conversion to channels-last costs ~4 ms. The two kernels pick the
same maximum and the same index (the first maximum in scan order; NaN propagates), so this module pools a
CPU NCHW input through the channels-last kernel, converts the output (and the indices) back to NCHW, and
runs the backward pass with the NCHW backward kernel on those indices. Outputs and gradients are
bit-identical to `nn.MaxPool2d` (tests/backbones/test_maxpool.py), so a model trains to exactly the same
weights either way; only the time differs.

Anything else (CUDA, channels-last or non-contiguous input, return_indices=True, 3-D input, torch.compile or
torch.jit.trace tracing) uses `nn.MaxPool2d.forward` unchanged. Same constructor, attributes, repr and (empty) state_dict.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

_CL = torch.channels_last
_is_compiling = getattr(torch.compiler, "is_compiling", lambda: False)  # torch < 2.3 has no is_compiling


class MaxPool2d(nn.MaxPool2d):
    """Drop-in `nn.MaxPool2d`: (B, C, H, W) -> (B, C, H', W'), exact, faster on CPU NCHW tensors."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not _fast_path(x) or self.return_indices:
            return super().forward(x)
        args = _args(self)
        if not (torch.is_grad_enabled() and x.requires_grad):
            out = F.max_pool2d(x.contiguous(memory_format=_CL), *args)
            return out.contiguous()
        return _PoolViaChannelsLast.apply(x, args)


def with_nn_maxpool(module: nn.Module) -> tuple[nn.Module, int]:
    """(a deep copy of `module` with every MaxPool2d swapped for an `nn.MaxPool2d` of the same options, how many
    were swapped): the reference model the tests and benchmarks compare with."""
    twin, swapped = copy.deepcopy(module), 0
    for parent in list(twin.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, MaxPool2d):
                options = (child.kernel_size, child.stride, child.padding, child.dilation)
                plain = nn.MaxPool2d(*options, return_indices=child.return_indices, ceil_mode=child.ceil_mode)
                setattr(parent, name, plain)
                swapped += 1
    return twin, swapped


def _fast_path(x: torch.Tensor) -> bool:
    """CPU, 4-D, NCHW-contiguous and not also channels-last-contiguous (C == 1 or 1x1 images are both),
    floating point, and not being traced by torch.compile (which has its own pooling code)."""
    return (
        x.device.type == "cpu"
        and x.dim() == 4
        and x.is_floating_point()
        and x.is_contiguous()
        and not x.is_contiguous(memory_format=_CL)
        and not _is_compiling()
        and not torch.jit.is_tracing()  # torch.jit.trace / ONNX export record the standard op
    )


def _pair(v: int | tuple[int, ...]) -> list[int]:
    return [v, v] if isinstance(v, int) else list(v)


def _args(pool: nn.MaxPool2d) -> tuple[list[int], list[int], list[int], list[int], bool]:
    """(kernel_size, stride, padding, dilation, ceil_mode) as the aten ops take them."""
    stride = pool.stride if pool.stride is not None else pool.kernel_size
    return (
        _pair(pool.kernel_size),
        _pair(stride),
        _pair(pool.padding),
        _pair(pool.dilation),
        bool(pool.ceil_mode),
    )


class _PoolViaChannelsLast(torch.autograd.Function):
    """Forward with the channels-last kernel; backward with the NCHW kernel on the same indices."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, args: tuple) -> torch.Tensor:
        out, indices = torch.ops.aten.max_pool2d_with_indices(x.contiguous(memory_format=_CL), *args)
        indices = indices.contiguous()  # plane-local flat indices h * W + w: the same in either layout
        ctx.save_for_backward(x, indices)
        ctx.args = args
        return out.contiguous()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        x, indices = ctx.saved_tensors
        grad_x = torch.ops.aten.max_pool2d_with_indices_backward(grad.contiguous(), x, *ctx.args, indices)
        return grad_x, None
