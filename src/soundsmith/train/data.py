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
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .. import audio
from ..errors import InvalidArgument
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
    waveform = audio.loudness_normalize(waveform, sample_rate, lufs)
    peak = float(waveform.abs().max())
    return waveform * (LOUDNESS_PEAK / peak) if peak > LOUDNESS_PEAK else waveform


def clip_mel(waveform: torch.Tensor, frames: int = FRAMES, cfg: audio.MelConfig = DEMO_MEL,
             center: bool = CENTER, loudness: float | None = None) -> torch.Tensor:
    """(samples,) at cfg.sample_rate → (frames, n_mels) log-mel (the recipe in the module docstring; center=True
    is the AudioLDM 16 kHz framing). loudness: LUFS to normalise the window to instead of the peak (level())."""
    samples = frames * cfg.hop_length
    waveform = audio.pad_or_trim(level(waveform[None, :samples], cfg.sample_rate, loudness), samples)
    return audio.pad_or_trim(audio.log_mel(waveform, cfg, center=center), frames, dim=-2)[0]


def load_clips(manifest, frames: int = FRAMES, cfg: audio.MelConfig = DEMO_MEL, cache: Path | bool = True,
               progress: bool = True, center: bool = CENTER, loudness: float | None = None) -> Clips:
    """Read every clip of a manifest into log-mel crops, cached in the folder `cache` (True: CACHE, False: none).
    loudness: normalise each crop to this many LUFS instead of its peak to 0.5."""
    cache = CACHE if cache is True else (Path(cache) if cache else None)
    manifest = Path(manifest)
    items = read_manifest(manifest)
    stat = manifest.stat()
    key = json.dumps([str(manifest.resolve()), stat.st_size, stat.st_mtime_ns, frames, center, asdict(cfg)]
                     + ([loudness] if loudness is not None else []))
    file = cache / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt" if cache is not None else None
    if file is not None and file.exists():
        saved = torch.load(file, weights_only=True)
        return Clips(saved["mels"], saved["captions"], saved["categories"])
    from tqdm import tqdm

    mels = torch.empty(len(items), frames, cfg.n_mels, dtype=torch.float16)
    for i, item in enumerate(tqdm(items, desc="reading clips", disable=not progress, mininterval=2)):
        waveform = load_audio(item, cfg.sample_rate)  # ManifestError naming the manifest line
        if waveform.numel() <= cfg.n_fft:
            raise InvalidArgument(f"{item.where}: audio file {item.wav} is too short ({waveform.numel()} samples; "
                                  f"a log-mel needs more than {cfg.n_fft})")
        mels[i] = clip_mel(waveform, frames, cfg, center, loudness).half()
    clips = Clips(mels, [item.caption for item in items], [str(item.category or "") for item in items])
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        from .loop import atomic_save

        atomic_save({"mels": clips.mels, "captions": clips.captions, "categories": clips.categories}, file)
    return clips
