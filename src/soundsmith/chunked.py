"""Decoding audio of any length in chunks whose seams are exact: the vocoder and both halves of the VAE.

Decoding, exactly (equal to unchunked decoding up to float rounding):
- the vocoder is convolutional: each chunk of frames is vocoded with a halo of its receptive field and trimmed;
- the VAE is convolutional except for its GroupNorms (statistics over the whole length) and the single-head
  self-attention of its mid block (over all positions). `vae_decode` / `vae_encode` split the network at each
  GroupNorm; before a GroupNorm is applied, a sweep over chunks (each with a halo) computes its input's mean and
  variance over the whole length (Chan et al.'s pairwise combination, float64); with all statistics known, the
  network up to the next GroupNorm is local. An intermediate is kept whole when it fits `budget_mb`, and later sweeps
  start from it; otherwise sweeps recompute from the last one kept, so memory stays bounded and compute grows
  instead. The attention runs whole at latent resolution, without ever forming keys or values: with
  n = a ⊙ x + b the GroupNorm, q·k = (q W_kᵀ ⊙ a)·x + (terms constant along keys), and softmax rows sum to one, so
  attention(n) = ((P x) ⊙ a + b) W_vᵀ + b_v with P = softmax((q W_k ⊙ a) xᵀ / √C) — flash attention over x itself.
  Its cost is quadratic in length (it always was); its memory is linear and small (two latent-resolution tensors).
Shapes: latents (B, C, rows, W), mel (B, T, M), waveforms (B, samples).
"""

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .errors import InvalidArgument
from .models.layers import conv_add
from .models.vae import dtype_of

# ----------------------------------------------------------------------------------------- chunked vocoder


def vocoder_halo(cfg) -> int:
    """Mel frames either side that one output sample of the HiFi-GAN depends on (its receptive field), rounded up."""
    frames, rate = 3.0, 1  # conv_pre: kernel 7
    for u, k in zip(cfg.upsample_rates, cfg.upsample_kernel_sizes):
        frames += math.ceil(k / u) / rate  # transposed conv: inputs within k / u of an output
        rate *= u
        frames += max(sum((kr - 1) // 2 * d + (kr - 1) // 2 for d in ds)
                      for kr, ds in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes)) / rate
    return math.ceil(frames + 3 / rate) + 1  # conv_post: kernel 7


def vocode_chunked(vocoder: nn.Module, mel: torch.Tensor, chunk: int) -> torch.Tensor:
    """HiFi-GAN on (B, T, M) in chunks of `chunk` frames with a receptive-field halo each side → (B, samples), equal
    to vocoder(mel). A chunk starting at frame a0 puts its sample m at a0·hop + m (every layer is affine in length)."""
    hop, halo, frames = vocoder.config.hop_length, vocoder_halo(vocoder.config), mel.shape[1]
    pieces = []
    for a in range(0, frames, chunk):
        b = min(a + chunk, frames)
        a0, b0 = max(a - halo, 0), min(b + halo, frames)
        y = vocoder(mel[:, a0:b0])
        pieces.append(y[:, (a - a0) * hop:(b - a0) * hop if b < frames else None])
    return torch.cat(pieces, dim=-1)


# -------------------------------------------------------------------------------------- exact chunked VAE


@dataclass
class _Stage:
    """A piece of the VAE between GroupNorms, run on a chunk: fn(state, norm) → state, a state being a tuple of
    (B, C, rows, W) tensors at one resolution and norm(module, x) a GroupNorm with whole-length statistics."""

    fn: Callable | None
    norm: nn.GroupNorm | None = None  # applied first, to state[pick]: its statistics must be known beforehand
    pick: int = 0
    scale: float = 1.0  # output rows per input row
    radius: float = 1.0  # input rows either side that an output row depends on
    attention: nn.Module | None = None  # a global stage (mid-block attention): run on the whole state


def _resnet(block) -> list[_Stage]:
    # ResnetBlock without a time embedding: x + conv2(silu(norm2(conv1(silu(norm1(x)))))), split at norm2; in the
    # block's own dtype, as the decoder runs it (vae.Decoder.forward)
    dtype = dtype_of(block)

    def first(state, norm):
        x = state[0].to(dtype)
        return x, block.conv1(F.silu(norm(block.norm1, x)))

    def second(state, norm):
        x, h = state
        h = F.silu(norm(block.norm2, h))
        return (conv_add(block.conv2, h, x if block.conv_shortcut is None else block.conv_shortcut(x)),)

    return [_Stage(first, block.norm1, 0), _Stage(second, block.norm2, 1)]


def _mid(mid) -> list[_Stage]:
    stages = _resnet(mid.resnets[0])
    if mid.attentions is not None:
        attention = mid.attentions[0]
        stages.append(_Stage(None, attention.group_norm, attention=attention))
    return stages + _resnet(mid.resnets[1])


def _block_stages(blocks, resampler: str, scale: float, radius: float) -> list[_Stage]:
    """The resnets of each up or down block, then its resampler (`upsamplers` / `downsamplers`) when it has one,
    which changes the row count by `scale`."""
    stages = []
    for block in blocks:
        for resnet in block.resnets:
            stages += _resnet(resnet)
        if getattr(block, resampler) is not None:
            step = getattr(block, resampler)[0]
            stages.append(_Stage(lambda state, norm, step=step: (step(state[0].to(dtype_of(step))),), scale=scale,
                                 radius=radius))
    return stages


def _decoder_stages(vae) -> list[_Stage]:
    d = vae.decoder

    def first(state, norm):
        z = state[0]
        if vae.post_quant_conv is not None:
            z = vae.post_quant_conv(z.to(dtype_of(vae.post_quant_conv)))
        return (d.conv_in(z.to(dtype_of(d.conv_in))),)

    stages = [_Stage(first)] + _mid(d.mid_block) + _block_stages(d.up_blocks, "upsamplers", 2.0, 0.5)
    stages.append(_Stage(lambda state, norm: (d.conv_out(F.silu(norm(d.conv_norm_out,
                                                                     state[0].to(dtype_of(d.conv_norm_out))))),),
                         d.conv_norm_out))
    return stages


def _encoder_stages(vae) -> list[_Stage]:
    e = vae.encoder
    stages = [_Stage(lambda state, norm: (e.conv_in(state[0]),))]
    stages += _block_stages(e.down_blocks, "downsamplers", 0.5, 2.0) + _mid(e.mid_block)

    def last(state, norm):
        moments = e.conv_out(F.silu(norm(e.conv_norm_out, state[0])))
        moments = moments if vae.quant_conv is None else vae.quant_conv(moments)
        return (moments[:, :vae.config.latent_channels],)

    return stages + [_Stage(last, e.conv_norm_out)]


class _Moments:
    """Mean and variance per (batch, group) of a GroupNorm's input, accumulated chunk by chunk in float64 with the
    pairwise update of Chan, Golub & LeVeque (1979)."""

    def __init__(self, groups: int):
        self.groups, self.n, self.mean, self.m2 = groups, 0, 0.0, 0.0

    def add(self, x: torch.Tensor) -> None:
        b, c = x.shape[:2]
        var, mean = torch.var_mean(x.unflatten(1, (self.groups, c // self.groups)), dim=(2, 3, 4), correction=0)
        n = x[0, :c // self.groups].numel()
        mean, m2 = mean.double(), var.double() * n
        total = self.n + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2 + delta ** 2 * (self.n * n / total)
        self.n = total

    def finish(self, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, 1 / sqrt(var + eps)), each (B, G) float64."""
        return self.mean, (self.m2 / self.n + eps).rsqrt()


def _affine(module: nn.GroupNorm, stats, channels: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The GroupNorm as a per-channel x·a + b, each (B, C) in x's dtype (computed in float64)."""
    mean, rstd = stats
    per = channels // module.num_groups
    a = rstd.repeat_interleave(per, dim=1) * module.weight.double()
    b = module.bias.double() - mean.repeat_interleave(per, dim=1) * a
    return a.to(like), b.to(like)


def _normalizer(stats: dict) -> Callable:
    def norm(module: nn.GroupNorm, x: torch.Tensor) -> torch.Tensor:
        mean, rstd = stats[module]
        per = x.shape[1] // module.num_groups
        shift = mean.repeat_interleave(per, dim=1).to(x)[:, :, None, None]
        scale = (rstd.repeat_interleave(per, dim=1) * module.weight.double()).to(x)[:, :, None, None]
        return (x - shift).mul_(scale).add_(module.bias.to(x)[None, :, None, None])
    return norm


def _attend(attention: nn.Module, x: torch.Tensor, stats, block: int) -> torch.Tensor:
    """x + attention(GroupNorm(x)) for (B, C, H, W) x, as vae.MidAttention computes it (one head over all H·W
    positions), in query blocks of `block` positions with keys and values never formed (module docstring)."""
    x = x.to(dtype_of(attention))
    b_, c, h, w = x.shape
    a, b = _affine(attention.group_norm, stats, c, x)
    a, b = a[:, None], b[:, None]  # (B, 1, C): over tokens
    tokens = x.flatten(2).transpose(1, 2).contiguous()  # (B, N, C)
    del x
    wq, bq = attention.to_q.weight, attention.to_q.bias
    wk, wv, bv = attention.to_k.weight, attention.to_v.weight, attention.to_v.bias
    out_proj = attention.to_out[0]
    y = torch.empty(b_, c, h * w, dtype=tokens.dtype, device=tokens.device)
    keys = tokens[:, None]
    for q0 in range(0, h * w, block):
        t = tokens[:, q0:q0 + block]
        q = F.linear(t * a + b, wq, bq)
        q = (q @ wk) * a  # (q W_k) ⊙ a: scores against x itself
        u = F.scaled_dot_product_attention(q[:, None], keys, keys, scale=c ** -0.5)[:, 0]  # P x
        out = out_proj(F.linear(u * a + b, wv, bv))
        y[:, :, q0:q0 + block] = (t + out).transpose(1, 2)
    return y.view(b_, c, h, w)


def _sweep(stages, state, scale: float, rows: int, chunk: int, norm: Callable, stat=None, budget: float = 0.0):
    """Run `stages` over `state` (full tensors, `scale` rows per unit row) chunk by chunk, each chunk of `chunk`
    unit rows with a halo covering the stages' receptive field. Returns (the output state kept whole if it fits
    `budget` bytes, else None; the _Moments of output[stat[1]] for the GroupNorm stat[0], or None)."""
    scales = [scale]
    for stage in stages:
        scales.append(scales[-1] * stage.scale)
    halo = math.ceil(sum(st.radius / s for st, s in zip(stages, scales))) + 1
    out_scale = scales[-1]
    moments = _Moments(stat[0].num_groups) if stat is not None else None
    keep = None
    for a in range(0, rows, chunk):
        b = min(a + chunk, rows)
        a0, b0 = max(a - halo, 0), min(b + halo, rows)
        part = tuple(t[:, :, round(a0 * scale):round(b0 * scale)] for t in state)
        for stage in stages:
            part = stage.fn(part, norm)
        lo, hi = round((a - a0) * out_scale), round((b - a0) * out_scale)
        part = tuple(t[:, :, lo:hi] for t in part)
        if moments is not None:  # on the tensor the GroupNorm will see: in its block's dtype
            moments.add(part[stat[1]].to(stat[0].weight.dtype))
        if stages and a == 0:
            shapes = [(t.shape[0], t.shape[1], round(rows * out_scale), t.shape[3]) for t in part]
            size = sum(math.prod(s) * t.element_size() for s, t in zip(shapes, part))
            keep = [torch.empty(s, dtype=t.dtype, device=t.device) for s, t in zip(shapes, part)] \
                if size <= budget else None
        if keep is not None:
            for whole, t in zip(keep, part):
                whole[:, :, round(a * out_scale):round(b * out_scale)] = t
    return (tuple(keep) if keep is not None else None), moments


def _run_exact(stages: list[_Stage], x: torch.Tensor, scale: float, rows: int, chunk: int,
               budget_mb: float) -> torch.Tensor:
    """The stages on x (scale rows per unit row, `rows` unit rows) in chunks: equal to running them whole."""
    budget = budget_mb * 2 ** 20
    scales = [scale]
    for stage in stages:
        scales.append(scales[-1] * stage.scale)
    stats: dict = {}
    norm = _normalizer(stats)
    state, start = (x,), 0  # `state` is the input of stages[start], kept whole
    for i, stage in enumerate(stages):
        if stage.norm is None:
            continue
        global_ = stage.attention is not None
        kept, moments = _sweep(stages[start:i], state, scales[start], rows, chunk, norm, (stage.norm, stage.pick),
                               math.inf if global_ else budget)
        stats[stage.norm] = moments.finish(stage.norm.eps)
        if kept is not None:
            state, start = kept, i
        if global_:
            (x,), state = state, None
            positions = x.shape[-1] * max(1, round(chunk * scales[i]))
            state, start = (_attend(stage.attention, x, stats[stage.norm], positions),), i + 1
            del x
    out, _ = _sweep(stages[start:], state, scales[start], rows, chunk, norm, None, math.inf)
    return out[0] if out is not None else state[0]


@torch.no_grad()
def vae_decode(vae, latents: torch.Tensor, chunk_rows: int = 128, budget_mb: float = 256.0) -> torch.Tensor:
    """vae.decode(latents) for (B, z, rows, W) latents (already divided by scaling_factor) → (B, 1, f·rows, f·W),
    in chunks of `chunk_rows` latent rows, keeping intermediates whole only up to `budget_mb` (module docstring)."""
    return _run_exact(_decoder_stages(vae), latents, 1.0, latents.shape[-2], chunk_rows, budget_mb)


@torch.no_grad()
def vae_encode(vae, mel: torch.Tensor, chunk_rows: int = 128, budget_mb: float = 256.0) -> torch.Tensor:
    """The mean of vae.encode(mel) for (B, 1, T, M) mel, T a multiple of the VAE factor f → (B, z, T/f, M/f), in
    chunks of `chunk_rows` latent rows (see vae_decode)."""
    f = vae.config.scale_factor
    if mel.shape[-2] % f:
        raise InvalidArgument(f"mel of {mel.shape[-2]} frames: the VAE needs a multiple of {f}")
    return _run_exact(_encoder_stages(vae), mel, float(f), mel.shape[-2] // f, chunk_rows, budget_mb)
