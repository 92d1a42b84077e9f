"""The KL autoencoder between log-mel spectrograms and latents (diffusers `AutoencoderKL`).

mel (B, 1, T, M) ─ encoder ─► mean, logvar (B, z, T/f, M/f) … latents (B, z, T/f, M/f) ─ decoder ─► mel (B, 1, T, M),
f = 2^(len(block_out_channels) − 1) (4 for every published checkpoint: T frames of 10 ms, M = 64 mel bins, z = 8).
The pipeline divides latents by `scaling_factor` before decoding; this module does not.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import configs
from ..errors import CheckpointError
from .attention import Attention
from .layers import Downsample, ResnetBlock, Upsample, input_layout


# the decoder's layers before its first upsampling (512 channels at latent resolution), which `cast` keeps in
# float32 in a bfloat16 pipeline. AudioLDM-S, 10 steps, mel error against the float32 pipeline: 2.88 % all bfloat16,
# 2.67 % with these in float32 (~ +6 % VAE time), 2.50 % adding the first up block (~ +30 %); the UNet alone: 1.92 %.
LATENT_RESOLUTION = ("post_quant_conv", "decoder.conv_in", "decoder.mid_block")


def dtype_of(module: nn.Module) -> torch.dtype:
    """The dtype a module computes in: its first parameter's."""
    return next(module.parameters()).dtype


@dataclass(frozen=True)
class VAEConfig:
    in_channels: int
    out_channels: int
    latent_channels: int
    block_out_channels: tuple[int, ...]
    layers_per_block: int
    groups: int
    scaling_factor: float
    mid_attention: bool
    quant_conv: bool
    post_quant_conv: bool

    @property
    def scale_factor(self) -> int:
        """Downsampling factor of both axes between mel and latents."""
        return 2 ** (len(self.block_out_channels) - 1)

    @classmethod
    def from_dict(cls, cfg: dict, where: str = "vae config") -> "VAEConfig":
        """The autoencoder a diffusers `vae/config.json` describes; a key of the wrong type or outside what this family
        uses raises CheckpointError naming `where` (the file)."""
        configs.config_object(cfg, where)
        channels = configs.integers(cfg, "block_out_channels", where, (64,))
        for key, allowed in (("down_block_types", "DownEncoderBlock2D"), ("up_block_types", "UpDecoderBlock2D")):
            types = cfg.get(key, [allowed] * len(channels))
            if not isinstance(types, list) or len(types) != len(channels):
                raise configs.refuse(where, key, types, f"give a list of {len(channels)} {allowed!r} "
                                                        "(one per block_out_channels)")
            bad = [t for t in types if t != allowed]
            if bad:
                raise CheckpointError(f"{where}: {key} contains {configs.show(bad[0])}, which is not supported")
        if cfg.get("act_fn", "silu") != "silu":
            raise CheckpointError(f"{where}: act_fn={configs.show(cfg['act_fn'])} is not supported (allowed: 'silu')")
        if not (cfg.get("shift_factor") is None or configs.is_number(cfg["shift_factor"]) and cfg["shift_factor"] == 0):
            raise CheckpointError(f"{where}: shift_factor={configs.show(cfg['shift_factor'])} is not supported")
        groups = configs.integer(cfg, "norm_num_groups", where, 32)
        if any(c % groups for c in channels):
            raise CheckpointError(f"{where}: block_out_channels {list(channels)} are not all divisible by "
                                  f"norm_num_groups={groups}")
        return cls(
            in_channels=configs.integer(cfg, "in_channels", where, 3),
            out_channels=configs.integer(cfg, "out_channels", where, 3),
            latent_channels=configs.integer(cfg, "latent_channels", where, 4),
            block_out_channels=channels,
            layers_per_block=configs.integer(cfg, "layers_per_block", where, 1, high=configs.MAX_REPEAT),
            groups=groups,
            scaling_factor=configs.number(cfg, "scaling_factor", where, 0.18215, above=0.0),
            mid_attention=configs.boolean(cfg, "mid_block_add_attention", where, True),
            quant_conv=configs.boolean(cfg, "use_quant_conv", where, True),
            post_quant_conv=configs.boolean(cfg, "use_post_quant_conv", where, True),
        )


class MidAttention(Attention):
    """Single-head self-attention over all T·M positions with its own GroupNorm and a residual (the LDM `AttnBlock`)."""

    def __init__(self, ch: int, groups: int):
        super().__init__(ch, heads=1, dim_head=ch, bias=True)
        self.group_norm = nn.GroupNorm(groups, ch, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        y = self.group_norm(x).permute(0, 2, 3, 1).reshape(b, h * w, c)
        y = super().forward(y)
        return x + y.reshape(b, h, w, c).permute(0, 3, 1, 2)


class MidBlock(nn.Module):
    def __init__(self, ch: int, groups: int, attention: bool):
        super().__init__()
        self.resnets = nn.ModuleList(ResnetBlock(ch, ch, None, groups, 1e-6) for _ in range(2))
        self.attentions = nn.ModuleList([MidAttention(ch, groups)]) if attention else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.resnets[0](x)
        if self.attentions is not None:
            x = self.attentions[0](x)
        return self.resnets[1](x)


class EncoderBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, layers: int, groups: int, downsample: bool):
        super().__init__()
        self.resnets = nn.ModuleList(ResnetBlock(in_ch if i == 0 else out_ch, out_ch, None, groups, 1e-6)
                                     for i in range(layers))
        self.downsamplers = nn.ModuleList([Downsample(out_ch, padding=0)]) if downsample else None


class DecoderBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, layers: int, groups: int, upsample: bool):
        super().__init__()
        self.resnets = nn.ModuleList(ResnetBlock(in_ch if i == 0 else out_ch, out_ch, None, groups, 1e-6)
                                     for i in range(layers))
        self.upsamplers = nn.ModuleList([Upsample(out_ch)]) if upsample else None


class Encoder(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        chans = cfg.block_out_channels
        self.conv_in = nn.Conv2d(cfg.in_channels, chans[0], 3, padding=1)
        self.down_blocks = nn.ModuleList(
            EncoderBlock(chans[max(i - 1, 0)], ch, cfg.layers_per_block, cfg.groups, i < len(chans) - 1)
            for i, ch in enumerate(chans))
        self.mid_block = MidBlock(chans[-1], cfg.groups, cfg.mid_attention)
        self.conv_norm_out = nn.GroupNorm(cfg.groups, chans[-1], eps=1e-6)
        self.conv_out = nn.Conv2d(chans[-1], 2 * cfg.latent_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_in(x)
        for block in self.down_blocks:
            for resnet in block.resnets:
                x = resnet(x)
            if block.downsamplers is not None:
                x = block.downsamplers[0](x)
        x = self.mid_block(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class Decoder(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        rev = cfg.block_out_channels[::-1]
        self.conv_in = nn.Conv2d(cfg.latent_channels, rev[0], 3, padding=1)
        self.mid_block = MidBlock(rev[0], cfg.groups, cfg.mid_attention)
        self.up_blocks = nn.ModuleList(
            DecoderBlock(rev[max(i - 1, 0)], ch, cfg.layers_per_block + 1, cfg.groups, i < len(rev) - 1)
            for i, ch in enumerate(rev))
        self.conv_norm_out = nn.GroupNorm(cfg.groups, rev[-1], eps=1e-6)
        self.conv_out = nn.Conv2d(rev[-1], cfg.out_channels, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Each block runs in its own parameters' dtype (see AutoencoderKL.cast); the input is cast on entry."""
        x = self.mid_block(self.conv_in(z.to(dtype_of(self.conv_in))).to(dtype_of(self.mid_block)))
        for block in self.up_blocks:
            x = x.to(dtype_of(block))
            for resnet in block.resnets:
                x = resnet(x)
            if block.upsamplers is not None:
                x = block.upsamplers[0](x)
        return self.conv_out(F.silu(self.conv_norm_out(x.to(dtype_of(self.conv_norm_out)))))


class AutoencoderKL(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        self.config = cfg
        z = cfg.latent_channels
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.quant_conv = nn.Conv2d(2 * z, 2 * z, 1) if cfg.quant_conv else None
        self.post_quant_conv = nn.Conv2d(z, z, 1) if cfg.post_quant_conv else None

    def encode(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """mel (B, 1, T, M) → (mean, logvar), each (B, z, T/f, M/f); logvar clamped to [−30, 20]."""
        moments = self.encoder(mel.contiguous(memory_format=input_layout(self.encoder.conv_in)))
        if self.quant_conv is not None:
            moments = self.quant_conv(moments)
        mean, logvar = moments.chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """latents (B, z, T/f, M/f), already divided by the scaling factor → mel (B, 1, T, M), in the dtype of the
        decoder's last layer."""
        latents = latents.contiguous(memory_format=input_layout(self.decoder.conv_in))
        if self.post_quant_conv is not None:
            latents = self.post_quant_conv(latents.to(dtype_of(self.post_quant_conv)))
        return self.decoder(latents)

    def cast(self, dtype: torch.dtype) -> "AutoencoderKL":
        """Cast to `dtype`; in bfloat16, the decoder's latent-resolution blocks (LATENT_RESOLUTION) stay in float32
        (the decoder casts between them): they carry a large share of its rounding error for a small share of its
        time. Each tensor is cast once from what it holds, so float32 weights reach those blocks unrounded."""
        keep = tuple(f"{name}." for name in LATENT_RESOLUTION) if dtype == torch.bfloat16 else ()
        for name, tensor in [*self.named_parameters(), *self.named_buffers()]:
            if tensor.is_floating_point():
                tensor.data = tensor.data.to(torch.float32 if name.startswith(keep) else dtype)
        return self

