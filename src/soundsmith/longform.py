"""Audio longer than the model's training window: windowed denoising, and decoding in chunks with exact seams.

Denoising (MultiDiffusion, Bar-Tal et al. 2023, arXiv:2302.08113): the latents (B, C, rows, W) are covered by
overlapping windows of the UNet's training length; every model call runs the guided UNet on each window (several
windows stacked along the batch) and blends the predictions with weights that taper towards each window's edges,
ε(x) = Σ_w taper_w · ε(x_w) / Σ_w taper_w. ε is linear in the denoised estimate D = x − σ·ε, so this is
MultiDiffusion's per-step least-squares blend, and every sampler (first- or higher-order, ancestral or not) runs
unchanged on the whole sequence: one coherent piece with no seams, the UNet's memory set by the window.

Decoding in chunks with exact seams lives in chunked.py.

When: a pipeline holds a `LongForm` (`pipe.long_form`). Up to `above_seconds` (20.48 s: twice the 10.24 s clips the
family was trained on) generation runs in one pass over the whole length, exactly as diffusers does, whatever the
window; longer audio is denoised in windows and decoded in chunks. The engine decides once per call (`is_long`) and
hands the answer to each stage. Everything here takes numbers (rows, seconds per row) and the networks, never the
pipeline. Shapes: latents (B, C, rows, W), mel (B, T, M), waveforms (B, samples).
"""

from dataclasses import dataclass
from typing import Callable

import torch

from .chunked import vae_decode, vocode_chunked
from .errors import InvalidArgument

LONG_SECONDS = 20.48  # one pass up to here (2 × the family's 10.24 s training clips); windows and chunks above


@dataclass
class LongForm:
    """How a pipeline makes audio longer than `above_seconds` (see the module docstring).

    window_seconds: the denoising window (None: the UNet's sample_size, its training length). overlap: the fraction
    of a window shared with the next (0.5: every row is seen by two windows; higher is smoother and slower).
    positions_per_call: latent positions (rows × width) per UNet call, windows stacked along the batch up to this
    (4096: one 10.24 s AudioLDM pass). decode_rows / budget_mb: latent rows per VAE chunk, and the largest
    intermediate (MB) the chunked VAE keeps whole. vocoder_frames: mel frames per vocoder chunk.
    chunked_decoding: decode in exact chunks at every length, not only long-form (diffusers' enable_vae_tiling);
    sliced_decoding: decode one waveform of a batch at a time (enable_vae_slicing). Both bound decoding memory and
    leave the output unchanged (to float rounding)."""

    above_seconds: float = LONG_SECONDS
    window_seconds: float | None = None
    overlap: float = 0.5
    positions_per_call: int = 4096
    decode_rows: int = 128
    budget_mb: float = 256.0
    vocoder_frames: int = 512
    chunked_decoding: bool = False
    sliced_decoding: bool = False

    def __post_init__(self):
        if not 0.0 <= self.overlap < 1.0:
            raise InvalidArgument(f"overlap={self.overlap!r} is not allowed: give a fraction in [0, 1)")
        if self.window_seconds is not None and not self.window_seconds > 0:
            raise InvalidArgument(f"window_seconds={self.window_seconds!r} is not allowed: give seconds > 0")
        for name in ("positions_per_call", "decode_rows", "vocoder_frames"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise InvalidArgument(f"{name}={getattr(self, name)!r} is not allowed: give a whole number ≥ 1")

    def is_long(self, rows: int, row_seconds: float) -> bool:
        """Whether `rows` latent rows of `row_seconds` each are long-form (windows and chunked decoding)."""
        return rows * row_seconds > self.above_seconds + 1e-9

    def window_rows(self, row_seconds: float, sample_size: int | None) -> int:
        """The denoising window in latent rows: window_seconds, or the UNet's sample_size (its training length)."""
        if self.window_seconds is None:
            return int(sample_size or round(10.24 / row_seconds))
        rows = round(self.window_seconds / row_seconds)
        if rows < 2:
            raise InvalidArgument(f"window_seconds={self.window_seconds!r} is shorter than two latent rows "
                                  f"({2 * row_seconds:g} s): give a longer window")
        return rows

    def windowed(self, model: Callable, rows: int, row_seconds: float, sample_size: int | None,
                 width: int) -> tuple[Callable, str | None]:
        """The windowed model over long latents (B, C, rows, width) and what it does in words ("65 windows of
        0.64 s", for the progress line); `model` itself and None when one window covers all."""
        window = self.window_rows(row_seconds, sample_size)
        if rows <= window:
            return model, None
        stride = max(1, round(window * (1 - self.overlap)))
        starts = window_starts(rows, window, stride)
        per_call = max(1, self.positions_per_call // (window * width))
        return windowed(model, rows, window, stride, per_call), f"{len(starts)} windows of {window * row_seconds:g} s"

    def decode_mel(self, vae, latents: torch.Tensor, long: bool) -> torch.Tensor:
        """(B, C, rows, W) latents already divided by scaling_factor → (B, T, M) mel, chunked when long."""
        def decode(x):
            chunked = long or self.chunked_decoding
            return vae_decode(vae, x, self.decode_rows, self.budget_mb) if chunked else vae.decode(x)

        return self._per_waveform(decode, latents).squeeze(1)

    def vocode(self, vocoder, mel: torch.Tensor, long: bool) -> torch.Tensor:
        """(B, T, M) mel → (B, samples) waveform, chunked when long."""
        def vocode(m):
            return vocode_chunked(vocoder, m, self.vocoder_frames) if long or self.chunked_decoding else vocoder(m)

        return self._per_waveform(vocode, mel)

    def _per_waveform(self, fn: Callable, x: torch.Tensor) -> torch.Tensor:
        """fn(x), or fn on each row of the batch in turn (sliced_decoding)."""
        if not self.sliced_decoding or x.shape[0] < 2:
            return fn(x)
        return torch.cat([fn(x[i:i + 1]) for i in range(x.shape[0])])


# --------------------------------------------------------------------------------------- windowed denoising


def window_starts(rows: int, window: int, stride: int) -> list[int]:
    """First rows of the windows covering [0, rows): every `stride` rows, the last one flush with the end."""
    if rows <= window:
        return [0]
    return list(range(0, rows - window, stride)) + [rows - window]


def taper(window: int, ramp: int) -> torch.Tensor:
    """(window,) blending weights: linear ramps of `ramp` rows up from each edge to 1 (a triangle at ramp =
    window / 2), never zero, so overlapping windows cross-fade and the sequence's own ends keep full weight."""
    r = torch.arange(window, dtype=torch.float64) + 0.5
    ramp = max(ramp, 1)
    return torch.minimum(torch.ones(window, dtype=torch.float64), torch.minimum(r, window - r) / ramp)


def windowed(model: Callable, rows: int, window: int, stride: int, per_call: int = 1) -> Callable:
    """MultiDiffusion: model(x, t) on (N, C, rows, W) as the taper-weighted mean of model(x_w, t) over windows,
    `per_call` windows stacked along the batch per call ((k·N, C, window, W): the model must accept a batch that is
    a multiple of its conditioning's, as `engine.guided` does)."""
    starts = window_starts(rows, window, stride)
    weight = taper(window, window - stride)
    total = torch.zeros(rows, dtype=torch.float64)
    for s in starts:
        total[s:s + window] += weight

    def model_(x: torch.Tensor, t) -> torch.Tensor:
        n = x.shape[0]
        out = torch.zeros(x.shape, dtype=torch.promote_types(x.dtype, torch.float32), device=x.device)
        w = weight.to(out)[:, None]
        for g in range(0, len(starts), per_call):
            group = starts[g:g + per_call]
            y = model(torch.cat([x[:, :, s:s + window] for s in group]), t)
            for j, s in enumerate(group):
                out[:, :, s:s + window] += y[j * n:(j + 1) * n] * w
        return (out / total.to(out)[:, None]).to(x.dtype)

    return model_
