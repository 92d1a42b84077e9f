"""HiFi-GAN generator (Kong et al. 2020, "HiFi-GAN", V1 topology) as transformers' `SpeechT5HifiGan` lays it out.

log-mel (B, T, M) → waveform (B, T·hop + extra) with hop = ∏ upsample_rates (160 at 16 kHz → 10 ms frames; the
published checkpoints give 160·T + 32 samples). Parameter names match the checkpoints' `vocoder/` folder.

Speed: activations are kept as (B, C, 1, T) in channels-last memory — time-major, which is also the mel's own
layout — and every 1-D convolution runs as a 2-D one on that layout. oneDNN's 1-D kernels on (B, C, T) run at a
third to a half of its 2-D channels-last rate here once channels drop below 512, and its transposed 1-D
convolution at a fifth; the arithmetic is the same (the outputs match the 1-D formulation bit for bit or to float
rounding).
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
    n_fft: int | None = None  # the mel recipe's own keys, when the config gives them (audio.MelConfig reads them)
    win_length: int | None = None
    fmin: float | None = None
    fmax: float | None = None

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
            n_fft=cfg.get("n_fft"), win_length=cfg.get("win_size") or cfg.get("win_length"), fmin=cfg.get("fmin"),
            fmax=cfg.get("fmax"),
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
        """x (B, C, 1, T) channels-last → same shape."""
        for i, (c1, c2) in enumerate(zip(self.convs1, self.convs2)):
            h = F.leaky_relu_(conv2d(c1, F.leaky_relu(x, self.slope)), self.slope)
            h = conv2d(c2, h)
            x = x + h if i == 0 else x.add_(h)  # the block's input is shared with its siblings: never write into it
        return x


def conv2d(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """A Conv1d applied to (B, C, 1, T) channels-last activations."""
    return F.conv2d(x, conv.weight.unsqueeze(2), conv.bias, padding=(0, conv.padding[0]),
                    dilation=(1, conv.dilation[0]))


def conv_transpose2d(conv: nn.ConvTranspose1d, x: torch.Tensor) -> torch.Tensor:
    return F.conv_transpose2d(x, conv.weight.unsqueeze(2), conv.bias, stride=(1, conv.stride[0]),
                              padding=(0, conv.padding[0]))


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
        # (B, T, M) is already (B, M, 1, T) in channels-last memory
        x = conv2d(self.conv_pre, mel.transpose(1, 2).unsqueeze(2).contiguous(memory_format=torch.channels_last))
        kernels = len(self.config.resblock_kernel_sizes)
        for i, up in enumerate(self.upsampler):
            x = conv_transpose2d(up, F.leaky_relu(x, self.config.leaky_relu_slope))
            blocks = self.resblocks[i * kernels:(i + 1) * kernels]
            y = blocks[0](x)
            for block in blocks[1:]:
                y.add_(block(x))
            x = y.div_(kernels)
        x = conv2d(self.conv_post, F.leaky_relu(x))  # default slope 0.01 here, as the reference does
        return torch.tanh(x).reshape(x.shape[0], -1)
