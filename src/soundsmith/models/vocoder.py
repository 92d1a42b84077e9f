"""HiFi-GAN generator (Kong et al. 2020, "HiFi-GAN", V1 topology) as transformers' `SpeechT5HifiGan` lays it out.

log-mel (B, T, M) → waveform (B, T·hop + extra) with hop = ∏ upsample_rates (160 at 16 kHz → 10 ms frames; the
published checkpoints give 160·T + 32 samples). Parameter names match the checkpoints' `vocoder/` folder.
"""

from dataclasses import dataclass
from math import prod

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError


@dataclass(frozen=True)
class VocoderConfig:
    model_in_dim: int
    sampling_rate: int
    upsample_initial_channel: int
    upsample_rates: tuple[int, ...]
    upsample_kernel_sizes: tuple[int, ...]
    resblock_kernel_sizes: tuple[int, ...]
    resblock_dilation_sizes: tuple[tuple[int, ...], ...]
    leaky_relu_slope: float
    normalize_before: bool

    @property
    def hop_length(self) -> int:
        """Waveform samples per mel frame."""
        return prod(self.upsample_rates)

    @classmethod
    def from_dict(cls, cfg: dict) -> "VocoderConfig":
        rates, kernels = cfg.get("upsample_rates", (4, 4, 4, 4)), cfg.get("upsample_kernel_sizes", (8, 8, 8, 8))
        if len(rates) != len(kernels):
            raise CheckpointError(f"vocoder upsample_rates {rates} and upsample_kernel_sizes {kernels} differ in length")
        res_k = cfg.get("resblock_kernel_sizes", (3, 7, 11))
        res_d = cfg.get("resblock_dilation_sizes", ((1, 3, 5),) * 3)
        if len(res_k) != len(res_d):
            raise CheckpointError(f"vocoder resblock_kernel_sizes {res_k} and dilation sizes {res_d} differ in length")
        return cls(
            model_in_dim=cfg.get("model_in_dim", 80), sampling_rate=cfg.get("sampling_rate", 16000),
            upsample_initial_channel=cfg.get("upsample_initial_channel", 512), upsample_rates=tuple(rates),
            upsample_kernel_sizes=tuple(kernels), resblock_kernel_sizes=tuple(res_k),
            resblock_dilation_sizes=tuple(tuple(d) for d in res_d),
            leaky_relu_slope=cfg.get("leaky_relu_slope", 0.1), normalize_before=cfg.get("normalize_before", True),
        )


class ResBlock(nn.Module):
    """Per dilation d: x + conv(lrelu(conv_d(lrelu(x)))) — the multi-receptive-field fusion unit."""

    def __init__(self, ch: int, kernel: int, dilations: tuple[int, ...], slope: float):
        super().__init__()
        self.slope = slope
        self.convs1 = nn.ModuleList(nn.Conv1d(ch, ch, kernel, dilation=d, padding=(kernel * d - d) // 2)
                                    for d in dilations)
        self.convs2 = nn.ModuleList(nn.Conv1d(ch, ch, kernel, padding=(kernel - 1) // 2) for _ in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2):
            x = x + c2(F.leaky_relu(c1(F.leaky_relu(x, self.slope)), self.slope))
        return x


class HifiGan(nn.Module):
    def __init__(self, cfg: VocoderConfig):
        super().__init__()
        self.config = cfg
        ch = cfg.upsample_initial_channel
        self.conv_pre = nn.Conv1d(cfg.model_in_dim, ch, 7, padding=3)
        self.upsampler = nn.ModuleList(
            nn.ConvTranspose1d(ch // 2 ** i, ch // 2 ** (i + 1), k, stride=u, padding=(k - u) // 2)
            for i, (u, k) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes)))
        self.resblocks = nn.ModuleList(
            ResBlock(ch // 2 ** (i + 1), k, d, cfg.leaky_relu_slope)
            for i in range(len(cfg.upsample_rates))
            for k, d in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes))
        self.conv_post = nn.Conv1d(ch // 2 ** len(cfg.upsample_rates), 1, 7, padding=3)
        self.register_buffer("mean", torch.zeros(cfg.model_in_dim))
        self.register_buffer("scale", torch.ones(cfg.model_in_dim))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """mel (B, T, M) → waveform (B, samples), in [−1, 1]."""
        if self.config.normalize_before:
            mel = (mel - self.mean) / self.scale
        x = self.conv_pre(mel.transpose(1, 2))
        kernels = len(self.config.resblock_kernel_sizes)
        for i, up in enumerate(self.upsampler):
            x = up(F.leaky_relu(x, self.config.leaky_relu_slope))
            blocks = self.resblocks[i * kernels:(i + 1) * kernels]
            y = blocks[0](x)
            for block in blocks[1:]:
                y = y + block(x)
            x = y / kernels
        x = self.conv_post(F.leaky_relu(x))  # default slope 0.01 here, as the reference does
        return torch.tanh(x).squeeze(1)
