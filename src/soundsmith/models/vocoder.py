"""HiFi-GAN generator (Kong et al. 2020, "HiFi-GAN", V1 topology) as transformers' `SpeechT5HifiGan` lays it out.

log-mel (B, T, M) → waveform (B, T·hop + extra) with hop = ∏ upsample_rates (160 at 16 kHz → 10 ms frames; the
published checkpoints give 160·T + 32 samples). Parameter names match the checkpoints' `vocoder/` folder.

Speed: activations are kept as (B, C, 1, T) in channels-last memory — time-major, which is also the mel's own
layout — and every 1-D convolution runs as a 2-D one on that layout. oneDNN's 1-D kernels on (B, C, T) run at a
third to a half of its 2-D channels-last rate here once channels drop below 512, and its transposed 1-D
convolution at a fifth; the arithmetic is the same (the outputs match the 1-D formulation bit for bit or to float
rounding). Beyond layout, the residual blocks' wide convolutions may run by DFT and the upsamplers as polyphase
convolutions (kernels.py: fewer products, the same sums); which form each layer takes is measured once per machine
(`Conv.form`, runtime.fastest). Training (gradients) always takes the direct form.
"""

from dataclasses import asdict, dataclass, replace
from math import prod

import torch
import torch.nn.functional as F
from torch import nn

from .. import configs, kernels, runtime
from ..errors import CheckpointError, InvalidArgument


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
    def from_dict(cls, cfg: dict, where: str = "vocoder config") -> "VocoderConfig":
        """The HiFi-GAN a `vocoder/config.json` (SpeechT5HifiGan) describes, and its mel recipe (audio.MelConfig);
        a key of the wrong type or a recipe that cannot work raises CheckpointError naming `where` (the file)."""
        from ..audio import MAX_WRITE_RATE, MelConfig

        configs.config_object(cfg, where)
        rates = configs.integers(cfg, "upsample_rates", where, (4, 4, 4, 4), high=1024)
        up_k = configs.integers(cfg, "upsample_kernel_sizes", where, (8, 8, 8, 8), length=len(rates), high=4096)
        if any(k < u for u, k in zip(rates, up_k)):
            raise CheckpointError(f"{where}: upsample_kernel_sizes {list(up_k)} must each be at least its "
                                  f"upsample_rates {list(rates)}")
        res_k = configs.integers(cfg, "resblock_kernel_sizes", where, (3, 7, 11), high=1025)
        if any(k % 2 == 0 for k in res_k):
            raise CheckpointError(f"{where}: resblock_kernel_sizes {list(res_k)} must be odd")
        res_d = cfg.get("resblock_dilation_sizes", ((1, 3, 5),) * 3)
        if not (isinstance(res_d, (list, tuple)) and len(res_d) == len(res_k) and all(
                isinstance(d, (list, tuple)) and 1 <= len(d) <= configs.MAX_REPEAT
                and all(configs.is_whole(x) and 1 <= x <= 1024 for x in d) for d in res_d)):
            raise configs.refuse(where, "resblock_dilation_sizes", res_d,
                                 f"give {len(res_k)} lists of dilations (whole numbers), one per resblock kernel")
        channels = configs.integer(cfg, "upsample_initial_channel", where, 512)
        if channels >> len(rates) < 1:
            raise CheckpointError(f"{where}: upsample_initial_channel={channels} halves {len(rates)} times to nothing")
        config = cls(
            model_in_dim=configs.integer(cfg, "model_in_dim", where, 80),
            sampling_rate=configs.integer(cfg, "sampling_rate", where, 16000, high=MAX_WRITE_RATE[".wav"]),
            upsample_initial_channel=channels, upsample_rates=rates, upsample_kernel_sizes=up_k,
            resblock_kernel_sizes=res_k, resblock_dilation_sizes=tuple(tuple(int(x) for x in d) for d in res_d),
            leaky_relu_slope=configs.number(cfg, "leaky_relu_slope", where, 0.1),
            normalize_before=configs.boolean(cfg, "normalize_before", where, True),
        )
        try:  # the recipe editing and training compute mels with: a broken one fails here, not at the first edit
            mel = MelConfig.from_vocoder_config({**asdict(config), **cfg})
        except InvalidArgument as e:
            raise CheckpointError(f"{where}: {e}") from None
        def given(*keys):  # the recipe's keys the file sets, as the recipe read them
            return any(cfg.get(key) is not None for key in keys)

        return replace(config, n_fft=mel.n_fft if given("n_fft") else None,
                       win_length=mel.win_length if given("win_size", "win_length") else None,
                       fmin=mel.fmin if given("fmin") else None, fmax=mel.fmax if given("fmax") else None)


class ResBlock(nn.Module):
    """Per dilation d: x + conv(lrelu(conv_d(lrelu(x)))) — the multi-receptive-field fusion unit."""

    def __init__(self, ch: int, kernel: int, dilations: tuple[int, ...], slope: float):
        super().__init__()
        self.slope = slope
        self.convs1 = nn.ModuleList(Conv(ch, ch, kernel, dilation=d, padding=(kernel * d - d) // 2)
                                    for d in dilations)
        self.convs2 = nn.ModuleList(Conv(ch, ch, kernel, padding=(kernel - 1) // 2) for _ in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, 1, T) channels-last → same shape."""
        for i, (c1, c2) in enumerate(zip(self.convs1, self.convs2)):
            h = F.leaky_relu_(c1(F.leaky_relu(x, self.slope)), self.slope)
            h = c2(h)
            # the block's input is shared with its siblings: never write into it; nor, under autograd, into a sum
            # the next leaky_relu keeps for its gradient
            x = x + h if i == 0 or torch.is_grad_enabled() else x.add_(h)
        return x


# DFT tile length per kernel size: the fastest of 8–32 per level in bench/forms.py (AudioLDM-S, AMD EPYC); kernel 3
# saves too little (1.8× fewer products at best) to pay for the transforms
DFT_TILES = {7: (16,), 11: (32,)}
DFT_MIN_CHANNELS = 256  # at 128 channels and below the DFTs' memory traffic costs more than the products save
MEASURE_SAMPLES = 8192  # longest signal the forms are timed on (short ones understate the DFT's products)


class Conv(nn.Conv1d):
    """nn.Conv1d (same parameters) applied to (B, C, 1, T) channels-last activations, directly or by DFT
    (kernels.dft_conv1d), whichever runs faster here for its shape (measured once per process and shape)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.form(x)
        if n == 0:
            return conv2d(self, x)
        b, c, _, t = x.shape
        y = kernels.dft_conv1d(x.permute(0, 2, 3, 1).reshape(b, t, c), self.plan(n))
        return y.unsqueeze(1).permute(0, 3, 1, 2)  # (B, T, C) → (B, C, 1, T) channels-last, a view

    def form(self, x: torch.Tensor) -> int:
        """0 for the direct form, else the DFT tile length to use on x."""
        k, c_in, c_out = self.kernel_size[0], self.in_channels, self.out_channels
        tiles = [n for n in DFT_TILES.get(k, ()) if kernels.dft_speedup(k, n) >= 1.5]
        if not tiles or min(c_in, c_out) < DFT_MIN_CHANNELS or not _fast_forms_apply(self, x):
            return 0

        def candidates():  # the undilated layer on a random signal: dilation only splits the signal into phases
            length = min(x.shape[-1], MEASURE_SAMPLES)
            sample = _sample(c_in, length, x)
            flat = sample.permute(0, 2, 3, 1).reshape(1, length, c_in)
            weight, pad = self.weight.unsqueeze(2), (0, (k - 1) // 2)
            forms = {"direct": lambda: F.conv2d(sample, weight, self.bias, padding=pad)}
            for n in tiles:
                plan = kernels.dft_conv_plan(self.weight, self.bias, 1, (k - 1) // 2, n)
                forms[f"dft{n}"] = lambda plan=plan: kernels.dft_conv1d(flat, plan)
            return forms

        best = runtime.fastest(f"conv1d {c_in}->{c_out} k{k} {_dtype_name(x)}", candidates)
        return 0 if best == "direct" else int(best.removeprefix("dft"))

    def plan(self, n: int) -> kernels.DFTConv:
        """The weights transformed for tile length n (kept; rebuilt when the weights or their dtype change)."""
        return kernels.prepared(self, f"dft{n}", lambda conv: kernels.dft_conv_plan(
            conv.weight, conv.bias, conv.dilation[0], conv.padding[0], n))


class ConvTranspose(nn.ConvTranspose1d):
    """nn.ConvTranspose1d (same parameters) applied to (B, C, 1, T) channels-last activations, as one polyphase
    convolution that never multiplies the zeros a transposed convolution inserts (kernels.py), or directly,
    whichever runs faster here (measured once per process and shape)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.form(x) == "direct":
            return conv_transpose2d(self, x)
        return kernels.conv_transpose1d_polyphase(x, self.polyphase(), self.bias, self.stride[0], self.padding[0],
                                                  self.kernel_size[0])

    def form(self, x: torch.Tensor) -> str:
        if not _fast_forms_apply(self, x):
            return "direct"
        s, k, pad = self.stride[0], self.kernel_size[0], self.padding[0]

        def candidates():
            sample = _sample(self.in_channels, min(x.shape[-1], max(1, MEASURE_SAMPLES // s)), x)
            weight = self.polyphase()
            return {"direct": lambda: conv_transpose2d(self, sample),
                    "polyphase": lambda: kernels.conv_transpose1d_polyphase(sample, weight, self.bias, s, pad, k)}

        key = f"conv_transpose1d {self.in_channels}->{self.out_channels} k{k} s{s} {_dtype_name(x)}"
        return runtime.fastest(key, candidates)

    def polyphase(self) -> torch.Tensor:
        """The weight as kernels.polyphase_weight lays it out (kept; rebuilt when the weight changes)."""
        return kernels.prepared(self, "polyphase", lambda conv: kernels.polyphase_weight(conv.weight.detach(),
                                                                                         conv.stride[0]))


def _fast_forms_apply(conv: nn.Module, x: torch.Tensor) -> bool:
    """kernels.fast_forms_apply, on channels-last activations."""
    return kernels.fast_forms_apply(conv, x) and x.is_contiguous(memory_format=torch.channels_last)


def _sample(channels: int, length: int, like: torch.Tensor) -> torch.Tensor:
    """A random (1, C, 1, L) channels-last signal in like's dtype, to time the forms on."""
    x = torch.randn(1, channels, 1, length, generator=torch.Generator().manual_seed(0))
    return x.to(like.dtype).contiguous(memory_format=torch.channels_last)


def _dtype_name(x: torch.Tensor) -> str:
    return str(x.dtype).removeprefix("torch.")


def conv2d(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """A Conv1d applied to (B, C, 1, T) channels-last activations, directly."""
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
            ConvTranspose(ch // 2 ** i, ch // 2 ** (i + 1), k, stride=u, padding=(k - u) // 2)
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
        per_level = len(self.config.resblock_kernel_sizes)
        for i, up in enumerate(self.upsampler):
            x = up(F.leaky_relu(x, self.config.leaky_relu_slope))
            blocks = self.resblocks[i * per_level:(i + 1) * per_level]
            y = blocks[0](x)
            if torch.is_grad_enabled():  # training (train/vocoder.py): autograd keeps y, so no writing into it
                x = sum((block(x) for block in blocks[1:]), y) / per_level
                continue
            for block in blocks[1:]:
                y.add_(block(x))
            x = y.div_(per_level)
        x = conv2d(self.conv_post, F.leaky_relu(x))  # default slope 0.01 here, as the reference does
        return torch.tanh(x).reshape(x.shape[0], -1)
