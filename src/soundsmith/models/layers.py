"""Building blocks shared by the UNet and the VAE: residual blocks, resampling, the timestep embedding.

Module and parameter names follow the diffusers state-dict layout (`norm1`, `conv1`, `time_emb_proj`, …) so
checkpoints load without renaming.
"""

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from .. import kernels, runtime, winograd

MIN_ONEDNN_ROWS = 64  # below this many rows a product is too small for the path choice to matter
MEASURE_ROWS = 64  # rows of a layer's input its forms are timed on (small slices favour the direct forms)


class Linear(nn.Linear):
    """nn.Linear (same parameters, same state-dict names) whose float32 CPU products of many rows take the faster
    of MKL and oneDNN on this machine (runtime.linear_path)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """F.linear, through oneDNN for float32 CPU products of many rows where runtime.linear_path says it is faster."""
    if (x.dtype == torch.float32 and x.device.type == "cpu" and x.numel() >= MIN_ONEDNN_ROWS * x.shape[-1]
            and weight.dtype == torch.float32 and runtime.linear_path() == "onednn"):
        return runtime.onednn_linear(x, weight, bias)
    return F.linear(x, weight, bias)


def timestep_embedding(t: torch.Tensor, dim: int, flip_sin_to_cos: bool = True, shift: float = 0.0) -> torch.Tensor:
    """Sinusoidal embedding of diffusion timesteps, (B,) → (B, dim), as in DDPM / diffusers `get_timestep_embedding`.

    Frequencies are exp(−ln(10000)·k / (dim/2 − shift)); the halves are ordered [cos, sin] when flip_sin_to_cos.
    """
    half = dim // 2
    exponent = -math.log(10000) * torch.arange(half, dtype=torch.float32, device=t.device) / (half - shift)
    angles = t[:, None].float() * torch.exp(exponent)[None, :]
    emb = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


def input_layout(conv: nn.Conv2d) -> torch.memory_format:
    """The memory format a network's first convolution holds its weights in. Pipelines convert some networks to
    channels-last (oneDNN's convolutions run faster on it here); inputs follow, so no convolution reorders them."""
    weight = conv.weight
    if weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


class TimestepMLP(nn.Module):
    """linear_1 → SiLU → linear_2 over the sinusoidal embedding (diffusers `TimestepEmbedding`)."""

    def __init__(self, in_dim: int, dim: int):
        super().__init__()
        self.linear_1 = Linear(in_dim, dim)
        self.linear_2 = Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.silu(self.linear_1(x)))


class ResnetBlock(nn.Module):
    """GroupNorm → SiLU → conv, plus the projected time embedding, GroupNorm → SiLU → conv, residual (1×1 conv when
    the channel count changes). (B, C_in, H, W) → (B, C_out, H, W); `temb_dim=None` for the VAE (no time input)."""

    def __init__(self, in_ch: int, out_ch: int, temb_dim: int | None, groups: int, eps: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_ch, eps=eps)
        self.conv1 = Conv3x3(in_ch, out_ch, 3, padding=1)
        self.time_emb_proj = Linear(temb_dim, out_ch) if temb_dim else None
        self.norm2 = nn.GroupNorm(groups, out_ch, eps=eps)
        self.conv2 = Conv3x3(out_ch, out_ch, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else None

    def forward(self, x: torch.Tensor, temb: torch.Tensor | None = None) -> torch.Tensor:
        inference = not torch.is_grad_enabled()  # in place on fresh tensors only when autograd keeps nothing
        h = self.conv1(F.silu(self.norm1(x), inplace=inference))
        if self.time_emb_proj is not None:
            t = self.time_emb_proj(F.silu(temb))[:, :, None, None]
            h = h.add_(t) if inference else h + t
        h = F.silu(self.norm2(h), inplace=inference)
        return conv_add(self.conv2, h, x if self.conv_shortcut is None else self.conv_shortcut(x))


class Conv3x3(nn.Conv2d):
    """nn.Conv2d (3×3, padding 1; same parameters) that runs by Winograd F(2×2, 3×3) (winograd.py: 16 products per
    2×2 outputs instead of 36) where that measures faster than the direct form for its shape (runtime.fastest) —
    channels-last activations of even height and width, inference on the CPU."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.form(x) == "winograd":
            return winograd.winograd_conv2d(x, self.winograd_weight(), self.bias)
        return super().forward(x)

    def form(self, x: torch.Tensor) -> str:
        if not (kernels.fast_forms_apply(self, x) and winograd.applies(x)):
            return "direct"
        b, c, h, w = x.shape

        def candidates():  # on the input's first rows: the cost per row does not depend on the row count
            sample = x[:, :, :min(h, MEASURE_ROWS)].contiguous(memory_format=torch.channels_last)
            u = self.winograd_weight()
            return {"direct": lambda: nn.Conv2d.forward(self, sample),
                    "winograd": lambda: winograd.winograd_conv2d(sample, u, self.bias)}

        key = f"conv3x3 {c}->{self.out_channels} b{b} w{w} {str(x.dtype).removeprefix('torch.')} channels-last"
        return runtime.fastest(key, candidates)

    def winograd_weight(self) -> torch.Tensor:
        return kernels.prepared(self, "winograd", lambda conv: winograd.winograd_weight(conv.weight))


def conv_add(conv: nn.Conv2d, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """residual + conv(x). On the CPU without gradients, one oneDNN call adds the residual as the convolution's
    post-op, saving a pass over the output (the same sums: bit-identical here); elsewhere two operations."""
    if isinstance(conv, Conv3x3) and conv.form(x) == "winograd":
        return conv(x).add_(residual)
    if (x.device.type == "cpu" and not torch.is_grad_enabled() and not torch.compiler.is_compiling()
            and (x.dtype == torch.float32 or x.dtype == torch.bfloat16 and _onednn_bf16())
            and residual.dtype == x.dtype
            and conv.weight.dtype == x.dtype and conv.padding_mode == "zeros" and isinstance(conv.padding, tuple)
            and torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled
            and residual.is_contiguous(memory_format=_layout(x))):
        return torch.ops.mkldnn._convolution_pointwise.binary(
            x, residual, conv.weight, conv.bias, list(conv.padding), list(conv.stride), list(conv.dilation),
            conv.groups, "add", None, None, [], None)
    return residual + conv(x)


@functools.cache
def _onednn_bf16() -> bool:
    """Whether oneDNN runs bfloat16 on this CPU (AVX-512 BW/VL/DQ or AVX-NE-CONVERT); without them its fused
    bfloat16 convolution refuses to run (an AVX2-only CPU such as AMD Zen 3), and the unfused path is taken."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def _layout(x: torch.Tensor) -> torch.memory_format:
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


class Downsample(nn.Module):
    """3×3 convolution with stride 2. padding=1 pads symmetrically (UNet); padding=0 pads right/bottom by one (VAE
    encoder), as the original LDM code does."""

    def __init__(self, ch: int, padding: int):
        super().__init__()
        self.padding = padding
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding == 0:
            x = F.pad(x, (0, 1, 0, 1))
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour ×2 (or to an explicit `size`, for odd skip shapes) then a 3×3 convolution. At exactly ×2 the
    pair may run fused, on the low-resolution input (kernels.upsample_conv2d: 4/9 of the products), where that
    measures faster."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        doubling = size is None or tuple(size) == (2 * x.shape[-2], 2 * x.shape[-1])
        if doubling and self.form(x) == "fused":
            return kernels.upsample_conv2d(x, self.fused_weight(), self.conv.bias)
        if size is None:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        else:
            x = F.interpolate(x, size=size, mode="nearest")
        return self.conv(x)

    def form(self, x: torch.Tensor) -> str:
        if not kernels.fast_forms_apply(self.conv, x):
            return "direct"
        layout = "channels-last" if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous() \
            else "channels-first"
        b, c, h, w = x.shape

        def candidates():  # on the input's first rows: the cost per row does not depend on the row count
            sample = x[:, :, :min(h, MEASURE_ROWS)].contiguous(memory_format=torch.channels_last if layout == "channels-last"
                                                      else torch.contiguous_format)
            weight = self.fused_weight()
            return {"direct": lambda: self.conv(F.interpolate(sample, scale_factor=2.0, mode="nearest")),
                    "fused": lambda: kernels.upsample_conv2d(sample, weight, self.conv.bias)}

        key = f"upsample_conv {c}->{self.conv.out_channels} b{b} w{w} {str(x.dtype).removeprefix('torch.')} {layout}"
        return runtime.fastest(key, candidates)

    def fused_weight(self) -> torch.Tensor:
        return kernels.prepared(self.conv, "upsample", lambda conv: kernels.upsample_conv_weight(conv.weight))
