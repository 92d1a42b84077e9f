"""Audio in and out: the AudioLDM log-mel recipe, resampling, levels, and atomic WAV/FLAC files with metadata.
Loudness (BS.1770) is in loudness.py.

The log-mel is the one the AudioLDM family trains its VAE and HiFi-GAN on (AudioLDM, AudioLDM 2 and MusicLDM share
the 16 kHz recipe below). Sources, re-expressed here in torch and numpy:

- haoheliu/AudioLDM audioldm/audio/stft.py (TacotronSTFT: reflect padding by n_fft/2, Hann-windowed Fourier
  basis, magnitude, librosa mel basis, log of the clamped mel), audioldm/audio/audio_processing.py
  (dynamic_range_compression), audioldm/audio/tools.py (normalize_wav, pad_wav, _pad_spec, wav_to_fbank) and
  audioldm/hifigan/utilities.py (HIFIGAN_16K_64: the vocoder's n_fft, win, fmin, fmax);
- haoheliu/AudioLDM2 audioldm2/utilities/audio/stft.py (the same TacotronSTFT) and
  audioldm2/utilities/data/dataset.py (training order: crop, normalise, zero-pad, log-mel, pad_spec);
- librosa.filters.mel (htk=False, norm="slaney"), which both repos call for the mel basis.

Shapes: waveforms are (B, samples) or (samples,) float32 in [-1, 1]; log-mels are (B, frames, n_mels), as the VAE
and the vocoder take them.
"""

import json
import math
import os
import secrets
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import soundfile
import torch
import torch.nn.functional as F

from .errors import AudioFileError, InvalidArgument

# the 16 kHz recipe of AudioLDM, AudioLDM 2 and MusicLDM
SAMPLE_RATE = 16000
N_FFT = 1024
WIN_LENGTH = 1024
HOP_LENGTH = 160  # = product of the vocoder's upsample_rates [5, 4, 2, 2, 2]
N_MELS = 64
FMIN = 0.0
FMAX = 8000.0
# Slaney's mel scale (Auditory Toolbox; librosa htk=False): linear below BREAK_HZ, logarithmic above
HZ_PER_MEL = 200.0 / 3
BREAK_HZ = 1000.0
MEL_BREAK = BREAK_HZ / HZ_PER_MEL  # 15 mels
MEL_LOGSTEP = math.log(6.4) / 27.0  # 27 mels per factor 6.4 in Hz
LOG_FLOOR = 1e-5  # dynamic range compression: log(clamp(mel, LOG_FLOOR))
PEAK = 0.5  # AudioLDM scales every training waveform to this peak after removing its mean
PEAK_EPS = 1e-8
TARGET_FRAMES = 1024  # the training window
FRAMES_PER_SECOND = SAMPLE_RATE / HOP_LENGTH  # 100.0
TARGET_SAMPLES = TARGET_FRAMES * HOP_LENGTH  # 163840 samples = 10.24 s

# band-limited resampling: Kaiser-windowed sinc (the "kaiser_best" filter of bmcfee/resampy)
RESAMPLE_ZERO_CROSSINGS = 64
RESAMPLE_ROLLOFF = 0.9475937
RESAMPLE_BETA = 14.769656
RESAMPLE_MAX_TAPS = 2**24  # polyphase bank size (phases x taps) above which a rate pair is refused

# files
FORMATS = {".wav": "WAV", ".flac": "FLAC"}
WAV_COMMENT_LIMIT = 2045  # longest RIFF INFO comment libsndfile writes and reads back; longer ones vanish silently


@dataclass(frozen=True)
class MelConfig:
    """The STFT and mel parameters of one vocoder: Hz for rates and frequencies, samples for lengths."""

    sample_rate: int = SAMPLE_RATE
    n_fft: int = N_FFT
    hop_length: int = HOP_LENGTH
    win_length: int = WIN_LENGTH
    n_mels: int = N_MELS
    fmin: float = FMIN
    fmax: float = FMAX

    def __post_init__(self):
        for name in ("sample_rate", "n_fft", "hop_length", "win_length", "n_mels"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value <= 0:
                raise InvalidArgument(f"MelConfig {name}={value!r}: must be a positive integer")
        if self.win_length > self.n_fft:
            raise InvalidArgument(f"MelConfig win_length={self.win_length}: must not exceed n_fft={self.n_fft}")
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            raise InvalidArgument(
                f"MelConfig fmin={self.fmin}, fmax={self.fmax}: need 0 <= fmin < fmax <= {self.sample_rate / 2} "
                f"(half of sample_rate={self.sample_rate})"
            )

    @property
    def n_freqs(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate / self.hop_length

    @classmethod
    def from_vocoder_config(cls, cfg: dict) -> "MelConfig":
        """The mel a vocoder expects, from its config.json: diffusers' SpeechT5HifiGan (model_in_dim,
        sampling_rate, upsample_rates) or a HiFi-GAN training config (num_mels, sampling_rate, hop_size, n_fft,
        win_size, fmin, fmax). The hop is the product of upsample_rates; n_fft, when absent, is the smallest power of
        two >= 4 hops (1024 at hop 160 and 256, 2048 at hop 480: the AudioLDM 16/48 kHz and HiFi-GAN recipes);
        win_length defaults to n_fft, fmin to 0 and fmax to half the sample rate (8000 Hz at 16 kHz)."""
        n_mels = cfg.get("model_in_dim", cfg.get("num_mels"))
        if n_mels is None or "sampling_rate" not in cfg or not ("upsample_rates" in cfg or "hop_size" in cfg):
            raise InvalidArgument(
                f"vocoder config with keys {sorted(cfg)}: needs model_in_dim (or num_mels), sampling_rate "
                "and upsample_rates (or hop_size)"
            )
        hop = math.prod(cfg["upsample_rates"]) if "upsample_rates" in cfg else cfg["hop_size"]
        if cfg.get("hop_size", hop) != hop:
            raise InvalidArgument(
                f"vocoder config hop_size={cfg['hop_size']}: differs from the product of upsample_rates={hop}"
            )
        n_fft = cfg.get("n_fft") or 2 ** math.ceil(math.log2(4 * hop))
        fmax = cfg.get("fmax")
        return cls(
            sample_rate=int(cfg["sampling_rate"]),
            n_fft=int(n_fft),
            hop_length=int(hop),
            win_length=int(cfg.get("win_size") or cfg.get("win_length") or n_fft),
            n_mels=int(n_mels),
            fmin=float(cfg.get("fmin") or 0.0),
            fmax=float(fmax) if fmax is not None else cfg["sampling_rate"] / 2,
        )


# ---------------------------------------------------------------------------------------------------------- mel


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa htk=False): linear, 3 mels per 200 Hz, below 1 kHz; logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    log_part = MEL_BREAK + np.log(np.maximum(hz, 1e-10) / BREAK_HZ) / MEL_LOGSTEP
    return np.where(hz >= BREAK_HZ, log_part, hz / HZ_PER_MEL)


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    """Inverse of hz_to_mel."""
    mel = np.asarray(mel, dtype=np.float64)
    return np.where(mel >= MEL_BREAK, BREAK_HZ * np.exp(MEL_LOGSTEP * (mel - MEL_BREAK)), HZ_PER_MEL * mel)


@lru_cache(maxsize=16)
def _mel_basis(cfg: MelConfig) -> np.ndarray:
    # librosa.filters.mel step by step, with its float32 rounding of the triangles before the slaney scaling
    edges = mel_to_hz(np.linspace(hz_to_mel(cfg.fmin), hz_to_mel(cfg.fmax), cfg.n_mels + 2))  # Hz, (n_mels+2,)
    bins = np.fft.rfftfreq(cfg.n_fft, 1.0 / cfg.sample_rate)  # Hz, (n_freqs,)
    widths = np.diff(edges)
    distance = edges[:, None] - bins[None, :]  # (n_mels+2, n_freqs)
    rising = -distance[:-2] / widths[:-1, None]
    falling = distance[2:] / widths[1:, None]
    triangles = np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)
    area = 2.0 / (edges[2:] - edges[:-2])  # slaney: every filter has unit area in Hz
    return (triangles * area[:, None]).astype(np.float32)


def mel_filterbank(cfg: MelConfig = MelConfig()) -> torch.Tensor:
    """Slaney-normalised triangular mel filters, (n_mels, n_fft // 2 + 1) float32: librosa.filters.mel(sr, n_fft,
    n_mels, fmin, fmax) with htk=False and norm="slaney", as TacotronSTFT builds its mel_basis."""
    return torch.tensor(_mel_basis(cfg))


def normalize_waveform(waveform: torch.Tensor) -> torch.Tensor:
    """AudioLDM's normalize_wav per row: remove the mean, then scale the peak to PEAK (0.5).
    (B, samples) -> (B, samples); a silent row stays silent (the peak gets PEAK_EPS added)."""
    waveform = waveform - waveform.mean(dim=-1, keepdim=True)
    return PEAK * waveform / (waveform.abs().amax(dim=-1, keepdim=True) + PEAK_EPS)


def pad_or_trim(x: torch.Tensor, length: int, dim: int = -1) -> torch.Tensor:
    """Cut `x` to `length` along `dim`, or zero-pad it at the end (AudioLDM's pad_wav and _pad_spec)."""
    if x.shape[dim] >= length:
        return x.narrow(dim, 0, length)
    pad = [0, 0] * (x.dim() - 1 - dim % x.dim()) + [0, length - x.shape[dim]]
    return F.pad(x, pad)


def log_mel(waveform: torch.Tensor, cfg: MelConfig = MelConfig(), *, center: bool = True) -> torch.Tensor:
    """Log-mel of (B, samples) or (samples,) in [-1, 1] at cfg.sample_rate → (B, frames, n_mels) or (frames, n_mels).

    TacotronSTFT.mel_spectrogram (haoheliu/AudioLDM audioldm/audio/stft.py): clip to [-1, 1], reflect-pad n_fft/2
    on both sides, STFT with a periodic Hann window of win_length centred in n_fft, magnitude |X| (not power),
    mel filters, natural log of max(mel, 1e-5). frames = samples // hop + 1.
    center=False pads (n_fft - hop) / 2 instead, giving samples // hop frames half a hop later: the framing of
    HiFi-GAN's meldataset.py and of haoheliu/AudioLDM-training-finetuning (mel_spectrogram_train)."""
    x = waveform.clamp(-1.0, 1.0)
    squeeze = x.dim() == 1
    x = x.reshape(1, -1) if squeeze else x
    pad = cfg.n_fft // 2 if center else (cfg.n_fft - cfg.hop_length) // 2
    if x.shape[-1] <= pad:
        raise InvalidArgument(f"waveform of {x.shape[-1]} samples: a log-mel needs more than {pad}")
    x = F.pad(x[:, None], (pad, pad), mode="reflect")[:, 0]
    window = torch.hann_window(cfg.win_length, periodic=True, dtype=x.dtype, device=x.device)
    spectrum = torch.stft(x, cfg.n_fft, cfg.hop_length, cfg.win_length, window, center=False, return_complex=True)
    mel = mel_filterbank(cfg).to(x) @ spectrum.abs()  # (B, n_mels, frames)
    mel = torch.log(mel.clamp(min=LOG_FLOOR)).transpose(1, 2)
    return mel[0] if squeeze else mel


def waveform_to_mel(waveform: torch.Tensor, frames: int | None = None, cfg: MelConfig = MelConfig()) -> torch.Tensor:
    """The AudioLDM training preprocessing, (B, samples) at cfg.sample_rate → (B, frames, n_mels) for the VAE:
    keep the first frames·hop samples, normalize_waveform, zero-pad to frames·hop samples, log_mel (which gives
    frames + 1 frames) and keep `frames` frames. Order from haoheliu/AudioLDM2 audioldm2/utilities/data/dataset.py
    (read_wav_file, wav_feature_extraction, pad_spec) with the crop at sample 0. frames defaults to samples // hop;
    TARGET_FRAMES (1024) is the training window: 10.24 s at 16 kHz."""
    frames = waveform.shape[-1] // cfg.hop_length if frames is None else frames
    samples = frames * cfg.hop_length
    waveform = pad_or_trim(normalize_waveform(waveform[..., :samples]), samples)
    return pad_or_trim(log_mel(waveform, cfg), frames, dim=-2)


# ------------------------------------------------------------------------------------------ resampling, levels


def resample(waveform: torch.Tensor, orig_sr: int, new_sr: int) -> torch.Tensor:
    """Band-limited resampling of (..., samples) from orig_sr to new_sr Hz → (..., ceil(samples·new/orig)).

    Polyphase Kaiser-windowed sinc: the rates are reduced by their gcd to orig:new, each of the `new` output
    phases gets its own filter, and one strided conv1d computes them all. The low-pass sits at RESAMPLE_ROLLOFF of
    the lower Nyquist, so content above the new Nyquist is removed (about -100 dB) rather than folded back.
    Same rates return the input itself."""
    if orig_sr <= 0 or new_sr <= 0 or orig_sr % 1 or new_sr % 1:
        raise InvalidArgument(f"resample from {orig_sr} Hz to {new_sr} Hz: rates must be positive integers")
    if orig_sr == new_sr:
        return waveform
    g = math.gcd(int(orig_sr), int(new_sr))
    orig, new = int(orig_sr) // g, int(new_sr) // g
    cutoff = RESAMPLE_ROLLOFF * min(orig, new) / 2  # cycles per time unit; input sample n sits at time n / orig
    half_width = RESAMPLE_ZERO_CROSSINGS / (2 * cutoff)  # time units either side of an output sample
    reach = math.ceil(half_width * orig)  # input samples either side
    if new * (2 * reach + orig) > RESAMPLE_MAX_TAPS:
        raise InvalidArgument(
            f"resample from {orig_sr} Hz to {new_sr} Hz: the ratio {orig}:{new} needs too large a filter bank; "
            "go through a common rate such as 48000 Hz"
        )
    offsets = torch.arange(-reach, reach + orig, dtype=torch.float64)  # input sample relative to orig·k
    phases = torch.arange(new, dtype=torch.float64)[:, None]  # output sample new·k + phase
    t = phases / new - offsets / orig  # (new, taps) time from each input to each output sample
    u = (t / half_width).clamp(-1.0, 1.0)
    beta = torch.tensor(RESAMPLE_BETA, dtype=torch.float64)
    kaiser = torch.special.i0(beta * torch.sqrt(1 - u**2)) / torch.special.i0(beta)
    taps = 2 * cutoff / orig * torch.sinc(2 * cutoff * t) * kaiser * (t.abs() <= half_width)

    shape, length = waveform.shape[:-1], waveform.shape[-1]
    x = F.pad(waveform.reshape(-1, 1, length), (reach, reach + orig))
    y = F.conv1d(x, taps.to(waveform.dtype).to(waveform.device)[:, None, :], stride=orig)  # (M, new, frames)
    y = y.transpose(1, 2).reshape(len(x), -1)[:, : math.ceil(length * new / orig)]
    return y.reshape(*shape, -1)


def peak_normalize(waveform: torch.Tensor, peak_dbfs: float = -1.0) -> torch.Tensor:
    """Scale each row of (..., samples) so that its largest |sample| is peak_dbfs (dB re full scale 1.0).
    Silent rows stay silent."""
    peak = waveform.abs().amax(dim=-1, keepdim=True)
    return waveform * (10 ** (peak_dbfs / 20) / peak.clamp(min=1e-12)) * (peak > 0)


# ------------------------------------------------------------------------------------------------------- files


def read(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Decode an audio file (wav, flac, ogg, mp3, ... whatever libsndfile reads) → (samples,) float32 mono at
    sample_rate Hz: channels are averaged, then resampled with resample()."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise AudioFileError(f"{path}: no such file")
    if os.path.isdir(path):
        raise AudioFileError(f"{path}: is a folder, not an audio file")
    if not os.access(path, os.R_OK):
        raise AudioFileError(f"{path}: permission denied")
    try:
        data, file_rate = soundfile.read(path, dtype="float32", always_2d=True)
    except PermissionError:
        raise AudioFileError(f"{path}: permission denied") from None
    except (soundfile.LibsndfileError, RuntimeError, OSError, ValueError) as e:
        detail = getattr(e, "error_string", None) or str(e)
        raise AudioFileError(f"{path}: unreadable or corrupt audio ({' '.join(detail.split())})") from None
    if data.size == 0:
        raise AudioFileError(f"{path}: contains no audio samples")
    waveform = torch.from_numpy(data.mean(axis=1, dtype=np.float32))
    return resample(waveform, file_rate, sample_rate)


def write(path: str | os.PathLike, waveform: torch.Tensor, sample_rate: int, metadata: dict | None = None) -> None:
    """Write (samples,) or (channels, samples) audio as 16-bit PCM: WAV or FLAC by the extension.

    Samples are clipped to [-1, 1] and quantised to round(x·32768) (clipped to int16), so reading the file back
    returns each sample within 2^-16 (1/32768 at +1.0). The file appears whole or not at all: it is written to a
    temporary file in the same folder, fsync'ed and renamed over `path`; on any failure the temporary file is
    removed and an existing `path` is left as it was. `metadata` (prompt, model, seed, steps, guidance, ...) is
    stored as JSON in the file's comment (RIFF INFO ICMT for WAV, at most WAV_COMMENT_LIMIT characters; Vorbis
    comment for FLAC) and read_metadata() gives it back."""
    path = os.fspath(path)
    extension = os.path.splitext(path)[1].lower()
    if extension not in FORMATS:
        raise AudioFileError(f"{path}: cannot write '{extension or 'no extension'}' files; use .wav or .flac")
    if not isinstance(sample_rate, (int, float, np.number)) or sample_rate <= 0 or sample_rate % 1:
        raise InvalidArgument(f"sample_rate={sample_rate!r}: must be a positive integer (Hz)")
    samples = torch.as_tensor(waveform).detach().to("cpu", torch.float64).numpy()
    if samples.ndim not in (1, 2) or samples.shape[-1] == 0:
        raise AudioFileError(f"{path}: nothing to write (waveform of shape {tuple(samples.shape)})")
    if samples.ndim == 2 and len(samples) > 8:
        raise AudioFileError(f"{path}: {len(samples)} channels; the waveform must be (samples,) or (channels, samples)")
    if not np.isfinite(samples).all():
        raise AudioFileError(f"{path}: the waveform contains NaN or infinite values")
    pcm = np.clip(np.round(np.clip(samples, -1.0, 1.0) * 32768), -32768, 32767).astype(np.int16)
    pcm = pcm.reshape(1, -1) if pcm.ndim == 1 else pcm
    if metadata is not None and not isinstance(metadata, dict):
        raise InvalidArgument(f"metadata={metadata!r}: must be a dict")
    comment = json.dumps(metadata, ensure_ascii=True, default=_json_scalar) if metadata is not None else None
    if comment is not None and extension == ".wav" and len(comment) > WAV_COMMENT_LIMIT:
        raise AudioFileError(
            f"{path}: metadata takes {len(comment)} characters as JSON, more than the {WAV_COMMENT_LIMIT} a WAV "
            "comment holds; write .flac or shorten it"
        )

    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        what = "is not a folder" if os.path.exists(folder) else "does not exist"
        raise AudioFileError(f"{path}: cannot write, folder {folder} {what}")
    if os.path.isdir(path):
        raise AudioFileError(f"{path}: is a folder")
    temporary = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except PermissionError:
        raise AudioFileError(f"{path}: permission denied writing to folder {folder}") from None
    except OSError as e:
        raise AudioFileError(f"{path}: cannot write to folder {folder} ({e.strerror})") from None
    try:
        try:
            with soundfile.SoundFile(
                fd, "w", int(sample_rate), len(pcm), "PCM_16", format=FORMATS[extension], closefd=False
            ) as f:
                if comment is not None:
                    f.comment = comment
                f.write(pcm.T)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except BaseException as e:
        try:
            os.remove(temporary)
        except OSError:
            pass
        if isinstance(e, PermissionError):
            raise AudioFileError(f"{path}: permission denied") from None
        if isinstance(e, (OSError, soundfile.LibsndfileError)):
            detail = getattr(e, "strerror", None) or getattr(e, "error_string", None) or str(e)
            raise AudioFileError(f"{path}: write failed ({' '.join(str(detail).split())})") from None
        raise
    _fsync_folder(folder)


def read_metadata(path: str | os.PathLike) -> dict:
    """The metadata dict write() stored in `path`; {} when it has none, {"comment": text} for a foreign comment."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise AudioFileError(f"{path}: no such file")
    try:
        with soundfile.SoundFile(path) as f:
            comment = f.comment
    except (soundfile.LibsndfileError, RuntimeError, OSError) as e:
        detail = getattr(e, "error_string", None) or str(e)
        raise AudioFileError(f"{path}: unreadable or corrupt audio ({' '.join(detail.split())})") from None
    if not comment:
        return {}
    try:
        metadata = json.loads(comment)
    except ValueError:
        return {"comment": comment}
    return metadata if isinstance(metadata, dict) else {"comment": comment}


def _json_scalar(value):
    # numpy and torch scalars/arrays (a seed from np.random, a guidance tensor) become plain JSON values
    if hasattr(value, "tolist"):
        return value.tolist()
    raise InvalidArgument(f"metadata value {value!r} of type {type(value).__name__}: not JSON-serialisable")


def _fsync_folder(folder: str) -> None:
    # make the rename itself durable where the platform allows opening a folder
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
