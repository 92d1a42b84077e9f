"""The latent-diffusion UNet of the AudioLDM family, built from a diffusers `unet/config.json`.

One class serves both layouts:
- `UNet2DConditionModel` as AudioLDM and MusicLDM configure it: the CLAP vector enters as a class embedding
  (`simple_projection`) concatenated after the time embedding; every transformer's second attention is a
  self-attention because no encoder states are passed.
- `AudioLDM2UNet2DConditionModel`: each layer of a cross-attention block holds one transformer per entry of the
  block's `cross_attention_dim` list, applied in order. Entry j ≤ 1 attends to `encoder_hidden_states` (the GPT-2
  states), j ≥ 2 to `encoder_hidden_states_1` (T5 / VITS, with its padding mask); `None` entries are self-attention.

Shapes: sample (B, C_in, H, W) with H = time frames / 4 and W = mel bins / 4 → (B, C_out, H, W).
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import configs
from ..errors import CheckpointError
from .attention import SpatialTransformer
from .layers import Downsample, Linear, ResnetBlock, TimestepMLP, Upsample, timestep_embedding

# config keys whose non-default values select features this family never uses (and we do not implement)
_UNSUPPORTED = {
    "act_fn": "silu", "mid_block_type": "UNetMidBlock2DCrossAttn", "time_embedding_type": "positional",
    "resnet_time_scale_shift": "default", "only_cross_attention": False, "dual_cross_attention": False,
    "addition_embed_type": None, "encoder_hid_dim": None, "encoder_hid_dim_type": None, "num_class_embeds": None,
    "mid_block_scale_factor": 1, "resnet_out_scale_factor": 1.0, "time_cond_proj_dim": None,
    "timestep_post_act": None, "time_embedding_act_fn": None, "conv_in_kernel": 3, "conv_out_kernel": 3,
    "center_input_sample": False, "resnet_skip_time_act": False, "cross_attention_norm": None,
    "attention_type": "default", "mid_block_only_cross_attention": None, "class_embed_type": (None, "simple_projection"),
}


def _per_block(value, n: int, key: str, where: str) -> list[int]:
    """A per-block key: one whole number for every block, or a list of n of them."""
    values = list(value) if isinstance(value, (list, tuple)) else [value] * n
    if len(values) != n or not all(configs.is_whole(v) and 1 <= v <= configs.MAX_WIDTH for v in values):
        raise configs.refuse(where, key, value, f"give one whole number from 1 to {configs.MAX_WIDTH} per block "
                                                f"({n} blocks), or a single one for all")
    return [int(v) for v in values]


def _context_dims(value, n: int, where: str) -> tuple[tuple[int | None, ...], ...]:
    """cross_attention_dim: per block a width, null (self-attention) or a list of up to 4 of them (AudioLDM 2)."""
    blocks = list(value) if isinstance(value, (list, tuple)) else [value] * n
    if len(blocks) != n:
        raise configs.refuse(where, "cross_attention_dim", value, f"give one entry per block ({n} blocks)")
    dims = tuple(tuple(c) if isinstance(c, (list, tuple)) else (c,) for c in blocks)
    for entry in dims:
        if not 1 <= len(entry) <= 4 or not all(c is None or configs.is_whole(c) and 1 <= c <= configs.MAX_WIDTH
                                                for c in entry):
            raise configs.refuse(where, "cross_attention_dim", value, "give per block a width, null or a list of 1 "
                                                                      "to 4 of them")
    return tuple(tuple(None if c is None else int(c) for c in entry) for entry in dims)


@dataclass(frozen=True)
class UNetConfig:
    in_channels: int
    out_channels: int
    block_out_channels: tuple[int, ...]
    layers_per_block: tuple[int, ...]
    down_cross_attention: tuple[bool, ...]      # does down block i have transformers
    up_cross_attention: tuple[bool, ...]
    context_dims: tuple[tuple[int | None, ...], ...]  # per down block: one entry per transformer in a layer
    heads: tuple[int, ...]
    depth: tuple[int, ...]                      # transformer layers per down block
    up_depth: tuple[int, ...]                   # per up block (in up order)
    groups: int
    eps: float
    class_embed_dim: int | None                 # CLAP width for `simple_projection`, None without class embedding
    class_concat: bool
    flip_sin_to_cos: bool
    freq_shift: float
    linear_projection: bool
    downsample_padding: int
    time_embed_dim: int | None

    @classmethod
    def from_dict(cls, cfg: dict, where: str = "unet config") -> "UNetConfig":
        """The UNet a diffusers `unet/config.json` describes; a key of the wrong type or outside what this family
        uses raises CheckpointError naming `where` (the file)."""
        configs.config_object(cfg, where)
        for key, allowed in _UNSUPPORTED.items():
            choices = allowed if isinstance(allowed, tuple) else (allowed,)
            value = cfg.get(key, choices[0])
            if not any(value == a and isinstance(value, bool) == isinstance(a, bool) for a in choices):
                raise CheckpointError(f"{where}: {key}={configs.show(value)} is not supported (allowed: {allowed!r})")
        down = configs.strings(cfg, "down_block_types", where, ("DownBlock2D", "CrossAttnDownBlock2D"))
        up = configs.strings(cfg, "up_block_types", where, ("UpBlock2D", "CrossAttnUpBlock2D"))
        channels = configs.integers(cfg, "block_out_channels", where)
        n = len(down)
        if len(up) != n or len(channels) != n:
            raise CheckpointError(f"{where}: {n} down blocks, {len(up)} up blocks and {len(channels)} "
                                  f"block_out_channels: they must agree")
        if cfg.get("norm_num_groups", 32) is None:
            raise CheckpointError(f"{where}: norm_num_groups=None is not supported")
        groups = configs.integer(cfg, "norm_num_groups", where, 32)
        if any(c % groups for c in channels):
            raise CheckpointError(f"{where}: block_out_channels {list(channels)} are not all divisible by "
                                  f"norm_num_groups={groups}")
        context_dims = _context_dims(cfg.get("cross_attention_dim", 1280), n, where)
        heads_key = "num_attention_heads" if cfg.get("num_attention_heads") else "attention_head_dim"
        heads = _per_block(cfg.get(heads_key, 8), n, heads_key, where)
        depth_value = cfg.get("transformer_layers_per_block", 1)
        if isinstance(depth_value, (list, tuple)) and any(isinstance(d, (list, tuple)) for d in depth_value):
            raise CheckpointError(f"{where}: transformer_layers_per_block given per layer is not supported")
        depth = _per_block(depth_value, n, "transformer_layers_per_block", where)
        reverse = cfg.get("reverse_transformer_layers_per_block")
        up_depth = _per_block(reverse, n, "reverse_transformer_layers_per_block", where) if reverse is not None \
            else depth[::-1]
        layers = _per_block(cfg.get("layers_per_block", 2), n, "layers_per_block", where)
        if max(depth + up_depth + layers) > configs.MAX_REPEAT:
            raise CheckpointError(f"{where}: layers_per_block and transformer layers above {configs.MAX_REPEAT} "
                                  "per block are not supported")
        class_dim = None
        if cfg.get("class_embed_type") == "simple_projection":
            if not cfg.get("projection_class_embeddings_input_dim"):
                raise CheckpointError(f"{where}: class_embed_type 'simple_projection' needs "
                                      "projection_class_embeddings_input_dim")
            class_dim = configs.integer(cfg, "projection_class_embeddings_input_dim", where)
        configs.integer(cfg, "sample_size", where, None, nullable=True)  # the default length (Pipeline.default_seconds)
        return cls(
            in_channels=configs.integer(cfg, "in_channels", where, 4),
            out_channels=configs.integer(cfg, "out_channels", where, 4),
            block_out_channels=channels, layers_per_block=tuple(layers),
            down_cross_attention=tuple(t.startswith("CrossAttn") for t in down),
            up_cross_attention=tuple(t.startswith("CrossAttn") for t in up),
            context_dims=context_dims, heads=tuple(heads), depth=tuple(depth), up_depth=tuple(up_depth),
            groups=groups, eps=configs.number(cfg, "norm_eps", where, 1e-5, above=0.0),
            class_embed_dim=class_dim,
            class_concat=configs.boolean(cfg, "class_embeddings_concat", where, False),
            flip_sin_to_cos=configs.boolean(cfg, "flip_sin_to_cos", where, True),
            freq_shift=configs.number(cfg, "freq_shift", where, 0),
            linear_projection=configs.boolean(cfg, "use_linear_projection", where, False),
            downsample_padding=configs.integer(cfg, "downsample_padding", where, 1, low=0, high=8),
            time_embed_dim=configs.integer(cfg, "time_embedding_dim", where, None, nullable=True),
        )


def _transformers(cfg: UNetConfig, block: int, channels: int, layers: int, depth: int) -> nn.ModuleList:
    """The transformers of one block, `layers × len(context_dims)` of them, index = layer·entries + entry."""
    dims = cfg.context_dims[block]
    return nn.ModuleList(
        SpatialTransformer(channels, cfg.heads[block], dim, depth, cfg.groups, cfg.linear_projection)
        for _ in range(layers) for dim in dims
    )


class DownBlock(nn.Module):
    def __init__(self, cfg: UNetConfig, i: int, in_ch: int, temb_dim: int):
        super().__init__()
        out_ch, layers = cfg.block_out_channels[i], cfg.layers_per_block[i]
        self.resnets = nn.ModuleList(
            ResnetBlock(in_ch if j == 0 else out_ch, out_ch, temb_dim, cfg.groups, cfg.eps) for j in range(layers))
        self.attentions = _transformers(cfg, i, out_ch, layers, cfg.depth[i]) if cfg.down_cross_attention[i] else None
        last = i == len(cfg.block_out_channels) - 1
        self.downsamplers = None if last else nn.ModuleList([Downsample(out_ch, cfg.downsample_padding)])


class UpBlock(nn.Module):
    def __init__(self, cfg: UNetConfig, i: int, prev_ch: int, temb_dim: int):
        super().__init__()
        n = len(cfg.block_out_channels)
        rev = cfg.block_out_channels[::-1]
        out_ch, in_ch = rev[i], rev[min(i + 1, n - 1)]
        layers = cfg.layers_per_block[::-1][i] + 1
        self.resnets = nn.ModuleList(
            ResnetBlock((prev_ch if j == 0 else out_ch) + (in_ch if j == layers - 1 else out_ch), out_ch, temb_dim,
                        cfg.groups, cfg.eps)
            for j in range(layers))
        down_index = n - 1 - i
        self.attentions = (_transformers(cfg, down_index, out_ch, layers, cfg.up_depth[i])
                           if cfg.up_cross_attention[i] else None)
        self.upsamplers = None if i == n - 1 else nn.ModuleList([Upsample(out_ch)])


class MidBlock(nn.Module):
    def __init__(self, cfg: UNetConfig, temb_dim: int):
        super().__init__()
        ch = cfg.block_out_channels[-1]
        self.resnets = nn.ModuleList(ResnetBlock(ch, ch, temb_dim, cfg.groups, cfg.eps) for _ in range(2))
        self.attentions = _transformers(cfg, len(cfg.block_out_channels) - 1, ch, 1, cfg.depth[-1])


class UNet(nn.Module):
    """ε-prediction UNet. `forward(sample, t, …)` → tensor of the sample's shape."""

    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.config = cfg
        c0 = cfg.block_out_channels[0]
        temb_dim = cfg.time_embed_dim or c0 * 4
        self.conv_in = nn.Conv2d(cfg.in_channels, c0, 3, padding=1)
        self.time_embedding = TimestepMLP(c0, temb_dim)
        self.class_embedding = Linear(cfg.class_embed_dim, temb_dim) if cfg.class_embed_dim else None
        block_temb = temb_dim * 2 if (cfg.class_embed_dim and cfg.class_concat) else temb_dim
        chans = (c0,) + cfg.block_out_channels
        self.down_blocks = nn.ModuleList(DownBlock(cfg, i, chans[i], block_temb) for i in range(len(chans) - 1))
        self.mid_block = MidBlock(cfg, block_temb)
        rev = cfg.block_out_channels[::-1]
        self.up_blocks = nn.ModuleList(
            UpBlock(cfg, i, rev[max(i - 1, 0)], block_temb) for i in range(len(rev)))
        self.conv_norm_out = nn.GroupNorm(cfg.groups, c0, eps=cfg.eps)
        self.conv_out = nn.Conv2d(c0, cfg.out_channels, 3, padding=1)
        # memory format of the activations at each resolution level (runtime.use_fast_layouts sets it)
        self.layouts = [torch.contiguous_format] * len(cfg.block_out_channels)

    def embed(self, timestep: torch.Tensor, batch: int, dtype: torch.dtype, class_labels=None) -> torch.Tensor:
        """Time (and class) embedding, (B, block_temb)."""
        t = timestep if torch.is_tensor(timestep) else torch.tensor([timestep])
        t = t.reshape(-1).to(self.conv_in.weight.device).expand(batch)
        emb = self.time_embedding(timestep_embedding(
            t, self.config.block_out_channels[0], self.config.flip_sin_to_cos, self.config.freq_shift).to(dtype))
        if self.class_embedding is not None:
            if class_labels is None:
                raise ValueError("this UNet is conditioned on a class embedding: class_labels are required")
            class_emb = self.class_embedding(class_labels).to(dtype)
            emb = torch.cat([emb, class_emb], dim=-1) if self.config.class_concat else emb + class_emb
        return emb

    def _attend(self, block, layer: int, h, contexts):
        dims = self.config.context_dims[contexts[2]]
        for j, dim in enumerate(dims):
            if dim is None:
                context, mask = None, None
            elif j <= 1:
                context, mask = contexts[0]
            else:
                context, mask = contexts[1]
            h = block.attentions[layer * len(dims) + j](h, context, mask)
        return h

    def forward(self, sample: torch.Tensor, timestep, encoder_hidden_states: torch.Tensor | None = None,
                class_labels: torch.Tensor | None = None, encoder_attention_mask: torch.Tensor | None = None,
                encoder_hidden_states_1: torch.Tensor | None = None,
                encoder_attention_mask_1: torch.Tensor | None = None) -> torch.Tensor:
        """sample (B, C, H, W); timestep 0-dim or (B,); encoder states (B, S, D) with masks (B, S) of 1 = keep;
        class_labels (B, D_class)."""
        dtype = sample.dtype
        first = (encoder_hidden_states, _mask_bias(encoder_attention_mask, dtype))
        if encoder_hidden_states_1 is None:
            second = first
        else:
            second = (encoder_hidden_states_1, _mask_bias(encoder_attention_mask_1, dtype))
        emb = self.embed(timestep, sample.shape[0], dtype, class_labels)
        n_up = len(self.up_blocks) - 1
        odd = any(s % 2 ** n_up for s in sample.shape[-2:])

        layout = self.layouts
        h = self.conv_in(sample.contiguous(memory_format=layout[0]))
        skips = [h]
        for i, block in enumerate(self.down_blocks):
            h = h.contiguous(memory_format=layout[i])
            for layer, resnet in enumerate(block.resnets):
                h = resnet(h, emb)
                if block.attentions is not None:
                    h = self._attend(block, layer, h, (first, second, i))
                skips.append(h)
            if block.downsamplers is not None:
                h = block.downsamplers[0](h)
                skips.append(h)

        mid = self.mid_block
        h = mid.resnets[0](h.contiguous(memory_format=layout[-1]), emb)
        h = self._attend(mid, 0, h, (first, second, len(self.down_blocks) - 1))
        h = mid.resnets[1](h, emb)

        for i, block in enumerate(self.up_blocks):
            down_index = len(self.up_blocks) - 1 - i
            h = h.contiguous(memory_format=layout[down_index])
            for layer, resnet in enumerate(block.resnets):
                h = resnet(torch.cat([h, skips.pop().contiguous(memory_format=layout[down_index])], dim=1), emb)
                if block.attentions is not None:
                    h = self._attend(block, layer, h, (first, second, down_index))
            if block.upsamplers is not None:
                h = block.upsamplers[0](h, skips[-1].shape[2:] if odd else None)

        return self.conv_out(F.silu(self.conv_norm_out(h)))


def _mask_bias(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """Keep-mask (B, S) of 1/0 → additive bias (B, 1, S) of 0 / −10000, as diffusers does."""
    if mask is None:
        return None
    return ((1 - mask.to(dtype)) * -10000.0).unsqueeze(1)
