"""Training data: a manifest of (wav, caption, category) → fixed-length log-mel crops, computed once and cached.

A clip becomes `frames` log-mel frames (B, frames, n_mels) with the demo vocoder's recipe (vocoder.DEMO_MEL,
HiFi-GAN framing): read at the mel's sample rate, keep the first frames·hop samples, remove the mean and scale the
peak to 0.5 (AudioLDM's normalize_wav) — or, with `loudness`, scale it to that integrated loudness (LUFS), so that
a model trained on them generates one level whatever the sound — zero-pad, log-mel. 256 frames at hop 256 / 22,050 Hz = 2.97 s.
The cache (float16) is keyed by the manifest's path, size and time and by the recipe, so every stage (CLAP, VAE,
UNet) reads the clips once.
"""

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .. import audio
from ..errors import InvalidArgument
from ..loudness import integrated_loudness
from .vocoder import CENTER, DEMO_MEL

from ..data.manifest import load_audio, read_manifest

FRAMES = 256  # training window in mel frames: 2.97 s at hop 256 / 22,050 Hz
CACHE = Path(os.environ.get("SOUNDSMITH_CACHE", Path.home() / ".cache" / "soundsmith")) / "features"


@dataclass
class Clips:
    """mels (N, frames, n_mels) float16; captions, categories: N strings each."""

    mels: torch.Tensor
    captions: list[str]
    categories: list[str]

    def __len__(self) -> int:
        return len(self.captions)


LOUDNESS_PEAK = 0.95  # a loudness-normalised clip is turned down where its peak would pass this


def level(waveform: torch.Tensor, sample_rate: int, lufs: float | None) -> torch.Tensor:
    """(1, samples) → mean removed, then peak 0.5 (AudioLDM's normalize_wav) when `lufs` is None, else scaled to an
    integrated loudness of `lufs` LUFS (ITU-R BS.1770) with the peak held to ≤ LOUDNESS_PEAK."""
    if lufs is None:
        return audio.normalize_waveform(waveform)
    waveform = waveform - waveform.mean(dim=-1, keepdim=True)
    gain_db = lufs - float(integrated_loudness(waveform, sample_rate).reshape(-1)[0])
    if math.isfinite(gain_db):  # a silent clip stays silent
        waveform = waveform * 10 ** (gain_db / 20)
    peak = float(waveform.abs().max())
    return waveform * (LOUDNESS_PEAK / peak) if peak > LOUDNESS_PEAK else waveform


QUIET_FRAME_S = 0.05
QUIET_BELOW_PEAK_DB = 44.0  # a 50 ms frame this far below the clip's peak is silence (−50 dBFS at peak 0.5)


def quiet_frames(waveform: torch.Tensor, sample_rate: int, peak: float | None = None) -> torch.Tensor:
    """(samples,) → (frames,) bool: 50 ms frames whose RMS lies more than QUIET_BELOW_PEAK_DB below `peak`
    (default: the waveform's own peak)."""
    n = max(1, int(QUIET_FRAME_S * sample_rate))
    x = waveform[: waveform.numel() // n * n].reshape(-1, n).double()
    peak = float(waveform.abs().max()) if peak is None else peak
    return x.pow(2).mean(dim=1).sqrt() < peak * 10 ** (-QUIET_BELOW_PEAK_DB / 20) + 1e-12


def active_start(waveform: torch.Tensor, samples: int, sample_rate: int, hop_s: float = 0.25) -> int:
    """The start (in samples, a multiple of hop_s) of the `samples`-long window of `waveform` with the fewest quiet
    frames; the earliest among equals. 0 when the waveform is no longer than the window."""
    if waveform.numel() <= samples:
        return 0
    quiet = quiet_frames(waveform, sample_rate).float()
    n, per_hop = samples // int(QUIET_FRAME_S * sample_rate), max(1, round(hop_s / QUIET_FRAME_S))
    starts = range(0, max(1, len(quiet) - n + 1), per_hop)
    best = min(starts, key=lambda s: (float(quiet[s:s + n].sum()), s))
    return min(best * int(QUIET_FRAME_S * sample_rate), waveform.numel() - samples)


def clip_mel(waveform: torch.Tensor, frames: int = FRAMES, cfg: audio.MelConfig = DEMO_MEL,
             center: bool = CENTER, loudness: float | None = None) -> torch.Tensor:
    """(samples,) at cfg.sample_rate → (frames, n_mels) log-mel (the recipe in the module docstring; center=True
    is the AudioLDM 16 kHz framing). loudness: LUFS to normalise the window to instead of the peak (level())."""
    samples = frames * cfg.hop_length
    waveform = audio.pad_or_trim(level(waveform[None, :samples], cfg.sample_rate, loudness), samples)
    return audio.pad_or_trim(audio.log_mel(waveform, cfg, center=center), frames, dim=-2)[0]


def load_clips(manifest, frames: int = FRAMES, cfg: audio.MelConfig = DEMO_MEL, cache: Path | bool = True,
               progress: bool = True, center: bool = CENTER, loudness: float | None = None, window: str = "first",
               max_quiet: float | None = None) -> Clips:
    """Read every clip of a manifest into log-mel crops, cached in the folder `cache` (True: CACHE, False: none).
    loudness: normalise each crop to this many LUFS instead of its peak to 0.5. window: "first" (the clip's first
    frames) or "active" (its window with the fewest quiet frames, active_start). max_quiet: leave out clips whose
    window has more than this share of quiet 50 ms frames (a model trained on them learns silence)."""
    key = [frames, center, asdict(cfg)] + ([loudness] if loudness is not None else [])
    return _read(manifest, key, frames * cfg.hop_length, cfg.sample_rate, cfg.n_fft, cache, progress, window,
                 max_quiet, lambda waveform: clip_mel(waveform, frames, cfg, center, loudness))


def load_waves(manifest, samples: int, sample_rate: int = DEMO_MEL.sample_rate, every: int = 1,
               cache: Path | bool = True, progress: bool = True, loudness: float | None = None,
               window: str = "first", max_quiet: float | None = None) -> Clips:
    """Every `every`-th clip of a manifest as a waveform window (samples,) at sample_rate, levelled as load_clips
    levels it (level()), zero-padded: Clips whose `mels` are these waveforms (N, samples) float16 (the vocoder's
    training data, train/vocoder.py). Cached like load_clips."""
    def wave(waveform: torch.Tensor) -> torch.Tensor:
        return audio.pad_or_trim(level(waveform[None, :samples], sample_rate, loudness), samples)[0]

    key = ["waves", samples, sample_rate, every, loudness]
    return _read(manifest, key, samples, sample_rate, 0, cache, progress, window, max_quiet, wave, every)


def _read(manifest, recipe: list, samples: int, sample_rate: int, min_samples: int, cache: Path | bool,
          progress: bool, window: str, max_quiet: float | None, make, every: int = 1) -> Clips:
    """The reading loop of load_clips / load_waves: each kept clip's window (at most `samples` long, from its start
    or its active stretch) → make(waveform) → one row of the result, cached under the manifest's identity + recipe."""
    if window not in ("first", "active"):
        raise InvalidArgument(f"window {window!r}: must be 'first' or 'active'")
    cache = CACHE if cache is True else (Path(cache) if cache else None)
    manifest = Path(manifest)
    items = read_manifest(manifest)[::every]
    stat = manifest.stat()
    key = json.dumps([str(manifest.resolve()), stat.st_size, stat.st_mtime_ns] + recipe
                     + ([window, max_quiet] if (window, max_quiet) != ("first", None) else []))
    file = cache / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt" if cache is not None else None
    if file is not None and file.exists():
        saved = torch.load(file, weights_only=True)
        return Clips(saved["mels"], saved["captions"], saved["categories"])
    from tqdm import tqdm

    rows, kept = None, []
    for item in tqdm(items, desc="reading clips", disable=not progress, mininterval=2):
        waveform = load_audio(item, sample_rate)  # ManifestError naming the manifest line
        if waveform.numel() <= min_samples:
            raise InvalidArgument(f"{item.where}: audio file {item.wav} is too short ({waveform.numel()} samples; "
                                  f"a log-mel needs more than {min_samples})")
        if window == "active":
            waveform = waveform[active_start(waveform, samples, sample_rate):]
        if max_quiet is not None:
            piece = waveform[:samples]
            if float(quiet_frames(piece, sample_rate, float(waveform.abs().max())).float().mean()) > max_quiet:
                continue
        row = make(waveform).half()
        if rows is None:
            rows = torch.empty(len(items), *row.shape, dtype=torch.float16)
        rows[len(kept)] = row
        kept.append(item)
    if not kept:
        raise InvalidArgument(f"{manifest}: every clip is more than {max_quiet:g} quiet; nothing to train on")
    clips = Clips(rows[:len(kept)].clone(), [item.caption for item in kept],
                  [str(item.category or "") for item in kept])
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        from .loop import atomic_save

        atomic_save({"mels": clips.mels, "captions": clips.captions, "categories": clips.categories}, file)
    return clips
