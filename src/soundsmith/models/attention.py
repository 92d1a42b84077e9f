"""Attention and the spatial transformer used inside the UNet (diffusers `Attention`, `BasicTransformerBlock`,
`Transformer2DModel` with the default layer-norm block and GEGLU feed-forward).

Heads: the number of heads is what the checkpoint config calls `attention_head_dim` (diffusers' naming accident),
head width = channels / heads. Parameter names follow diffusers (`to_q`, `to_out.0`, `ff.net.0.proj`, …).
"""

import torch
import torch.nn.functional as F
from torch import nn

from .layers import Linear, conv_add, linear


class Attention(nn.Module):
    """Scaled dot-product multi-head attention: queries from x (B, N, query_dim), keys/values from `context`
    (B, M, context_dim) or from x itself; `mask` is an additive bias (B, 1, M) or None."""

    def __init__(self, query_dim: int, heads: int, dim_head: int, context_dim: int | None = None, bias: bool = False):
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.to_q = Linear(query_dim, inner, bias=bias)
        self.to_k = Linear(context_dim or query_dim, inner, bias=bias)
        self.to_v = Linear(context_dim or query_dim, inner, bias=bias)
        self.to_out = nn.ModuleList([Linear(inner, query_dim), nn.Dropout(0.0)])

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, mask: torch.Tensor | None = None):
        b, n, _ = x.shape
        if (context is None and not torch.is_grad_enabled() and isinstance(self.to_q, nn.Linear)
                and not torch.compiler.is_compiling()):  # (compiled graphs fuse the three themselves)
            # self-attention: one product for q, k and v
            q, k, v = linear(x, *self.qkv()).chunk(3, dim=-1)
        else:
            context = x if context is None else context
            q, k, v = self.to_q(x), self.to_k(context), self.to_v(context)
        q, k, v = (t.view(b, -1, self.heads, t.shape[-1] // self.heads).transpose(1, 2) for t in (q, k, v))
        if mask is not None:
            mask = mask.to(q.dtype)[:, None]  # (B, 1, 1, M): the same bias for every head and query
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        out = out.transpose(1, 2).reshape(b, n, -1)  # SDPA's output is (B, N, heads, d) in memory: a view
        return self.to_out[0](out)

    def qkv(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """to_q, to_k and to_v stacked into one (3·inner, dim) weight and bias (kept; rebuilt when any changes)."""
        layers = (self.to_q, self.to_k, self.to_v)
        stamp = tuple((p.data_ptr(), p._version, p.dtype, p.device) for m in layers for p in m.parameters())
        cached = self.__dict__.get("_qkv")
        if cached is None or cached[0] != stamp:
            weight = torch.cat([m.weight.detach() for m in layers])
            bias = None if self.to_q.bias is None else torch.cat([m.bias.detach() for m in layers])
            cached = self.__dict__["_qkv"] = (stamp, (weight, bias))
        return cached[1]


class GEGLU(nn.Module):
    """Linear to twice the width, split into (value, gate), value · GELU(gate) (Shazeer 2020, exact erf GELU)."""

    def __init__(self, dim: int, inner: int):
        super().__init__()
        self.proj = Linear(dim, inner * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        if torch.is_grad_enabled():
            return value * F.gelu(gate)
        return F.gelu(gate).mul_(value)  # in place on GELU's fresh output


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        self.net = nn.ModuleList([GEGLU(dim, dim * mult), nn.Dropout(0.0), Linear(dim * mult, dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net[2](self.net[0](x))


class TransformerBlock(nn.Module):
    """Pre-norm self-attention, second attention, feed-forward, each residual.

    The second attention attends to `context` when given; otherwise (AudioLDM, MusicLDM, and AudioLDM 2's `None`
    entries) it is another self-attention with its own weights.
    """

    def __init__(self, dim: int, heads: int, context_dim: int | None):
        super().__init__()
        dim_head = dim // heads
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads, dim_head)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(dim, heads, dim_head, context_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, mask: torch.Tensor | None = None):
        if torch.is_grad_enabled():
            x = x + self.attn1(self.norm1(x))
            x = x + self.attn2(self.norm2(x), context, mask)
            return x + self.ff(self.norm3(x))
        x = self.attn1(self.norm1(x)).add_(x)  # each branch's output is fresh: add the residual into it
        x = self.attn2(self.norm2(x), context, mask).add_(x)
        return self.ff(self.norm3(x)).add_(x)


class SpatialTransformer(nn.Module):
    """GroupNorm, 1×1 projection in, transformer blocks over the H·W tokens, projection out, residual.
    (B, C, H, W) → (B, C, H, W). `linear_projection` uses Linear projections on tokens instead of 1×1 convs."""

    def __init__(self, channels: int, heads: int, context_dim: int | None, depth: int, groups: int,
                 linear_projection: bool = False):
        super().__init__()
        self.linear_projection = linear_projection
        inner = heads * (channels // heads)
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        proj = Linear if linear_projection else (lambda i, o: nn.Conv2d(i, o, 1))
        self.proj_in = proj(channels, inner)
        self.transformer_blocks = nn.ModuleList(TransformerBlock(inner, heads, context_dim) for _ in range(depth))
        self.proj_out = proj(inner, channels)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, mask: torch.Tensor | None = None):
        b, _, h, w = x.shape
        y = self.norm(x)
        if not self.linear_projection:
            y = self.proj_in(y)
        y = y.permute(0, 2, 3, 1).reshape(b, h * w, y.shape[1])
        if self.linear_projection:
            y = self.proj_in(y)
        for block in self.transformer_blocks:
            y = block(y, context, mask)
        if self.linear_projection:
            y = self.proj_out(y)
        y = y.reshape(b, h, w, y.shape[-1]).permute(0, 3, 1, 2)  # a channels-last view: no copy
        if not self.linear_projection:
            return conv_add(self.proj_out, y, x)
        return x + y
