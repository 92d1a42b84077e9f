"""int8 mode (`soundsmith.load(..., dtype="int8")`, CPU only): the UNet's token-wise linear layers — attention
projections, feed-forward and transformer projections — with int8 weights (symmetric, one scale per output
channel) and activations quantised on every call (dynamic: uint8 with one scale and zero point per call, from the
call's own range), multiplied by torch's quantized engine (fbgemm / x86, AVX-512 VNNI where the CPU has it),
accumulated in int32 and returned in float32. Everything else runs in float32.

Convolutions stay float32: oneDNN's int8 convolution (onednn::qconv2d_pointwise) measured no faster than its
float32 convolution on the AMD EPYC this project benchmarks on, before counting the two passes that quantise each
activation (a development measurement, not yet a bench/RESULTS.md run), so an int8 convolution would only add
error. The time and class embeddings (two rows) stay float32 too: quantising them saves nothing and costs accuracy.
"""

import functools
import warnings

import torch
from torch import nn

from .models.attention import SpatialTransformer
from .models.layers import Linear


class Int8Linear(nn.Module):
    """A Linear with int8 weights (per output channel) and dynamically quantised uint8 activations: (…, K) float32 →
    (…, N) float32. Holds only the packed weights: it cannot be trained or saved."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        weight = linear.weight.detach().float()
        scale = weight.abs().amax(dim=1).clamp_min(1e-12) / 127.0
        zero = torch.zeros(weight.shape[0], dtype=torch.long)
        with warnings.catch_warnings():  # torch's deprecation of quantized tensors is ours to act on, not the user's
            warnings.filterwarnings("ignore", message="torch.quantize_per_tensor", category=UserWarning)
            qweight = torch.quantize_per_channel(weight, scale.double(), zero, 0, torch.qint8)
        bias = None if linear.bias is None else linear.bias.detach().float()
        self.packed = torch.ops.quantized.linear_prepack(qweight, bias)
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).float().contiguous()
        y = torch.ops.quantized.linear_dynamic(rows, self.packed, _reduce_range())
        return y.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


@functools.cache
def _reduce_range() -> bool:
    """Activations quantised to 7 bits instead of 8 where the CPU lacks VNNI: AVX2's u8 × s8 multiply (vpmaddubsw)
    saturates its 16-bit pair sums with full-range activations (measured on an AVX2-only AMD EPYC: 11–17 % relative
    error against float32 with 8 bits); VNNI multiplies without that overflow, so it keeps all 8 bits."""
    is_vnni = getattr(torch.cpu, "_is_vnni_supported", None)
    return not (is_vnni is not None and is_vnni())


def available() -> bool:
    """Whether torch has a quantized engine for dynamic int8 linear layers here (fbgemm / x86 / onednn)."""
    return any(e in torch.backends.quantized.supported_engines for e in ("x86", "fbgemm", "onednn"))


def quantize_unet(unet: nn.Module) -> int:
    """Replace the linear layers inside the UNet's transformers by Int8Linear, in place → how many were replaced."""
    count = 0
    for transformer in [m for m in unet.modules() if isinstance(m, SpatialTransformer)]:
        for parent in list(transformer.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, Linear):
                    setattr(parent, name, Int8Linear(child))
                    count += 1
    return count
