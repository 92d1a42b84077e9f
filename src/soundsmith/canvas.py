"""Where denoising starts: the latent canvas of a request.

generate: fresh noise over the requested length. The audio tasks start from an input:

audio ─ read, mono, resample ─ waveform_to_mel (the checkpoint's recipe) ─ VAE encoder mean · scaling_factor ─► x0
x0 ─ noised to the strength's level (SDEdit: Meng et al. 2022, arXiv:2108.01073) ─► sampler ─► decode ─► waveform
    with known latents re-imposed in every denoised estimate D(x; σ) ← x0 where known (the sampler's state there
    stays x0 + σ·noise, the known content at the current noise level: inpainting as in RePaint / SDEdit, without
    resampling), and pasted back exactly at the end.

- reconstruct: x0 decoded as it is (no steps): the codec's ceiling.
- transfer: all of x0, noised to the last int(steps · strength) steps.
- inpaint: the rows overlapping the masked spans generated, the others known.
- upscale: the latent columns of mel bins below the cutoff known, the rest generated; the output keeps the input
  below the cutoff (an FFT crossover).
- extend: the input's complete rows known, the rows after them generated (only the last window before them is
  denoised again when the result is long-form).
- vary: fresh noise over the requested length, as generate; the input is the `reference` whose CLAP audio
  embedding conditions the run (variation.py).

The input is normalised as in training (mean removed, peak 0.5), so the output has the model's level, not the
input's. Shapes: waveforms (samples,), latents (1, C, rows, W).
"""

import math
import os
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch

from . import audio, chunked
from .checks import check_cutoff, check_duration, check_spans
from .errors import InvalidArgument

NYQUIST_MARGIN = 0.95  # a detected cutoff above this fraction of Nyquist leaves nothing to regenerate
CUTOFF_FLOOR_DB = -60.0  # the highest frequency within this of the long-term spectrum's peak is the cutoff
CROSSOVER_HZ = 200.0  # width of the ramp from the input's band to the generated band
SILENCE_DBFS = -90.0  # an input whose peak is below this has no band to detect


@dataclass
class Canvas:
    """rows: latent rows to make; keep: waveform samples to return; long: windows and chunks (decided once).
    For audio tasks: x0 the input's latents (1, C, rows, W), known (bool, broadcastable to x0) what is re-imposed,
    strength where denoising starts, first_row the rows before it that stay x0, finish(waveforms) the last touch."""

    rows: int
    keep: int
    long: bool
    x0: torch.Tensor | None = None
    known: torch.Tensor | None = None
    strength: float = 1.0
    first_row: int = 0
    finish: Callable | None = None
    decode_only: bool = False
    reference: torch.Tensor | None = None  # vary: the input (samples,) at the model's rate, for its CLAP embedding


def build(pipe, request, waveform: torch.Tensor | None = None, sample_rate: int | None = None,
          labels: dict | None = None) -> Canvas:
    """The canvas of a (resolved) request; audio tasks read request.input, or take `waveform` (samples,) /
    (channels, samples) at `sample_rate` Hz (default: the model's) when given."""
    labels = labels or {}
    if request.task == "generate":
        return _fresh(pipe, request, labels)
    if waveform is None and request.input is None:
        raise InvalidArgument(f"{request.task} needs input audio: a file path or samples")
    waveform = load_waveform(pipe, request.input if waveform is None else waveform, sample_rate)
    return _TASKS[request.task](pipe, request, waveform, labels)


def _fresh(pipe, request, labels) -> Canvas:
    """Fresh noise over the request's duration (the model's training length when None)."""
    seconds = pipe.default_seconds if request.duration is None else request.duration
    rows, keep = pipe.latent_length(check_duration(seconds, pipe.min_seconds, labels.get("duration",
                                                                                          "audio_length_in_s")))
    return Canvas(rows, keep, pipe.is_long(rows))


def _vary(pipe, request, waveform, labels) -> Canvas:
    if float((waveform - waveform.mean()).abs().max()) < 10 ** (SILENCE_DBFS / 20):  # silent once the mean is removed
        where = f"{request.input}: " if request.input else ""
        raise InvalidArgument(f"{where}the input is silent (below {SILENCE_DBFS:g} dBFS once its DC offset is "
                              f"removed): vary makes audio like its input, so give audio with sound in it")
    start = _fresh(pipe, request, labels)
    start.reference = waveform
    return start


def _reconstruct(pipe, request, waveform, labels) -> Canvas:
    x0 = encode(pipe, waveform)
    return Canvas(x0.shape[-2], len(waveform), pipe.is_long(x0.shape[-2]), x0=x0, decode_only=True)


def _transfer(pipe, request, waveform, labels) -> Canvas:
    x0 = encode(pipe, waveform)
    strength = 0.5 if request.strength is None else request.strength
    return Canvas(x0.shape[-2], len(waveform), pipe.is_long(x0.shape[-2]), x0=x0, strength=strength)


def _inpaint(pipe, request, waveform, labels) -> Canvas:
    spans = check_spans(request.masks, len(waveform) / pipe.sample_rate)
    x0 = encode(pipe, waveform)
    known = torch.ones(1, 1, x0.shape[-2], 1, dtype=torch.bool, device=x0.device)
    for start, end in spans:
        known[:, :, math.floor(start / pipe.row_seconds + 1e-9):math.ceil(end / pipe.row_seconds - 1e-9)] = False
    return Canvas(x0.shape[-2], len(waveform), pipe.is_long(x0.shape[-2]), x0=x0, known=known)


def _upscale(pipe, request, waveform, labels) -> Canvas:
    nyquist = pipe.sample_rate / 2
    cutoff = request.cutoff
    if cutoff is None:
        if float(waveform.abs().max()) < 10 ** (SILENCE_DBFS / 20):
            raise InvalidArgument("the input is silent: there is no band to keep (give cutoff= / --cutoff, or other "
                                  "audio)")
        cutoff = detect_cutoff(waveform, pipe.sample_rate)
        if cutoff >= NYQUIST_MARGIN * nyquist:
            raise InvalidArgument(f"the input has content up to {cutoff:.0f} Hz, next to the model's Nyquist "
                                  f"frequency ({nyquist:g} Hz): nothing to regenerate (give cutoff= / --cutoff)")
    check_cutoff(cutoff, nyquist, labels.get("cutoff", "cutoff"))
    cfg = mel_config(pipe)
    upper = audio.mel_to_hz(np.linspace(audio.hz_to_mel(cfg.fmin), audio.hz_to_mel(cfg.fmax), cfg.n_mels + 2))[2:]
    f = pipe.vae_scale_factor
    columns = int(np.sum(upper[f - 1::f] <= cutoff + 1e-6))  # latent columns whose mel bins all lie below
    if columns == 0:
        raise InvalidArgument(f"cutoff={cutoff:g} Hz is below the first latent column's band ({upper[f - 1]:.0f} Hz):"
                              f" nothing to keep")
    x0 = encode(pipe, waveform)
    known = torch.zeros(1, 1, 1, x0.shape[-1], dtype=torch.bool, device=x0.device)
    known[..., :columns] = True
    low = audio.normalize_waveform(waveform[None])[0]  # the level the model saw

    def keep_low_band(waveforms):
        return crossover(low, waveforms, cutoff, pipe.sample_rate)

    return Canvas(x0.shape[-2], len(waveform), pipe.is_long(x0.shape[-2]), x0=x0, known=known, finish=keep_low_band)


def _extend(pipe, request, waveform, labels) -> Canvas:
    seconds = check_duration(request.seconds, pipe.min_seconds, labels.get("seconds", "seconds"))
    keep = len(waveform) + round(seconds * pipe.sample_rate)
    check_duration(keep / pipe.sample_rate, 0.0, "input + seconds")
    x0 = encode(pipe, waveform)
    rows = latent_rows(pipe, keep)
    known_rows = len(waveform) // (pipe.vocoder.config.hop_length * pipe.vae_scale_factor)
    x0 = torch.cat([x0[:, :, :known_rows], x0.new_zeros(*x0.shape[:2], rows - known_rows, x0.shape[-1])], dim=2)
    known = torch.zeros(1, 1, rows, 1, dtype=torch.bool, device=x0.device)
    known[:, :, :known_rows] = True
    long = pipe.is_long(rows)
    first = max(0, known_rows - pipe.long_form.window_rows(pipe.row_seconds, pipe.unet_sample_size)) if long else 0
    return Canvas(rows, keep, long, x0=x0, known=known, first_row=first)


_TASKS = {"reconstruct": _reconstruct, "transfer": _transfer, "inpaint": _inpaint, "upscale": _upscale,
          "extend": _extend, "vary": _vary}


# ------------------------------------------------------------------------------------------------ audio → latents


def load_waveform(pipe, source, sample_rate: int | None = None) -> torch.Tensor:
    """A file path, or samples (samples,) / (channels, samples) at `sample_rate` Hz (default: the model's) →
    (samples,) float32 mono at pipe.sample_rate, at least one latent row (pipe.min_seconds) long."""
    if isinstance(source, (str, os.PathLike)):
        waveform = audio.read(source, pipe.sample_rate)
        name = os.fspath(source)
    else:
        waveform = torch.as_tensor(np.asarray(source) if not torch.is_tensor(source) else source)
        waveform = waveform.detach().to("cpu", torch.float32)
        name = f"audio of shape {tuple(waveform.shape)}"
        if waveform.dim() == 2:
            waveform = waveform.mean(dim=0)
        if waveform.dim() != 1 or waveform.numel() == 0:
            raise InvalidArgument(f"{name}: give samples (samples,) or (channels, samples), or a file path")
        if not torch.isfinite(waveform).all():
            raise InvalidArgument(f"{name}: contains NaN or infinite samples")
        waveform = audio.resample(waveform, sample_rate or pipe.sample_rate, pipe.sample_rate)
    if len(waveform) / pipe.sample_rate < pipe.min_seconds:
        raise InvalidArgument(f"{name} is {len(waveform) / pipe.sample_rate:g} s long: the model needs at least "
                              f"{pipe.min_seconds:g} s of audio")
    return waveform


def mel_config(pipe) -> audio.MelConfig:
    """The log-mel the checkpoint's VAE and vocoder were trained on, from its vocoder config: 16 kHz / 64 mels /
    hop 160 for the published checkpoints, 22,050 Hz / 80 mels / hop 256 / fmax 8000 for the bundled demo."""
    return audio.MelConfig.from_vocoder_config(asdict(pipe.vocoder.config))


def latent_rows(pipe, samples: int) -> int:
    """Latent rows covering `samples` samples: ceil(samples / hop) mel frames, rounded up to the VAE factor."""
    hop = pipe.vocoder.config.hop_length
    return math.ceil(math.ceil(samples / hop) / pipe.vae_scale_factor)


def input_mel(pipe, waveform: torch.Tensor) -> torch.Tensor:
    """(samples,) at the model's rate → (1, T, M) log-mel as the family trained on it (audio.waveform_to_mel: crop,
    remove the mean, peak 0.5, zero-pad to T·hop, TacotronSTFT log-mel), T = latent_rows · VAE factor."""
    frames = latent_rows(pipe, len(waveform)) * pipe.vae_scale_factor
    return audio.waveform_to_mel(waveform[None].float(), frames, mel_config(pipe))


@torch.no_grad()
def encode(pipe, waveform: torch.Tensor) -> torch.Tensor:
    """(samples,) at the model's rate → latents (1, C, rows, W): the VAE posterior mean × scaling_factor, the scale
    the pipelines' latents have. Chunked (exactly) when long."""
    mel = input_mel(pipe, waveform)[:, None].to(pipe.device, pipe.dtype)
    pipe.stage("vae")
    if pipe.is_long(mel.shape[-2] // pipe.vae_scale_factor):
        mean = chunked.vae_encode(pipe.vae, mel, pipe.long_form.decode_rows, pipe.long_form.budget_mb)
    else:
        mean = pipe.vae.encode(mel)[0]
    return mean * pipe.vae.config.scaling_factor


# --------------------------------------------------------------------------------------------------- upscale


def detect_cutoff(waveform: torch.Tensor, sample_rate: int, n_fft: int = 1024) -> float:
    """The highest frequency (Hz) with content in (samples,): the upper edge of the highest bin of the long-term
    spectrum (mean Hann-windowed |STFT|², n_fft) within CUTOFF_FLOOR_DB of its strongest bin."""
    x = waveform.double()
    if len(x) < n_fft:
        x = torch.nn.functional.pad(x, (0, n_fft - len(x)))
    spectrum = torch.stft(x, n_fft, n_fft // 4, window=torch.hann_window(n_fft, dtype=x.dtype), center=False,
                          return_complex=True).abs().pow(2).mean(dim=-1)
    level = 10 * torch.log10(spectrum + 1e-30)
    present = torch.nonzero(level > level.max() + CUTOFF_FLOOR_DB).flatten()
    return min(float(present[-1] + 1) * sample_rate / n_fft, sample_rate / 2)


def crossover(low: torch.Tensor, high: torch.Tensor, cutoff: float, sample_rate: int,
              width: float = CROSSOVER_HZ) -> torch.Tensor:
    """low (samples,) below cutoff − width, high (B, samples) above cutoff, a linear ramp between → (B, samples)."""
    n = high.shape[-1]
    low = audio.pad_or_trim(low.to(high), n)
    freqs = torch.fft.rfftfreq(n, 1.0 / sample_rate, dtype=torch.float64)
    gain = ((cutoff - freqs) / width).clamp(0.0, 1.0)
    spectrum = torch.fft.rfft(low.double(), n) * gain + torch.fft.rfft(high.double(), n) * (1 - gain)
    return torch.fft.irfft(spectrum, n).to(high.dtype)


def input_seconds(path) -> float:
    """Seconds of audio in a file, read before any model loads (unreadable, empty or non-regular files are refused
    with audio.read's one line)."""
    waveform = audio.read(path, audio.SAMPLE_RATE)
    return len(waveform) / audio.SAMPLE_RATE
