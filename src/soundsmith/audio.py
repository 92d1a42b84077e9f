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

import errno
import json
import math
import os
import secrets
import signal
import stat
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import soundfile
import torch
import torch.nn.functional as F

from .errors import AudioFileError, InvalidArgument, OutputExists, SoundsmithError

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
RESAMPLE_MAX_TAPS = 2**24  # polyphase bank size (phases x taps) above which the direct evaluation is used
RESAMPLE_CHUNK = 2**22  # direct evaluation: (rows x outputs x taps) elements gathered at a time
RESAMPLE_MAX_BANK = 2**25  # direct evaluation: phases x taps kept (128 MB float32); beyond, taps per output

# files
FORMATS = {".wav": "WAV", ".flac": "FLAC"}
MAX_WRITE_RATE = {".wav": 768000, ".flac": 655350}  # Hz: the fastest audio hardware (768 kHz); FLAC's own ceiling
MAX_READ_SECONDS = 4 * 3600.0  # longest input read (a header claiming 1 Hz must not become terabytes at 16 kHz)
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
            value, high = getattr(self, name), 2**24 if name == "sample_rate" else 2**16
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 < value <= high:
                raise InvalidArgument(f"MelConfig {name}={value!r}: must be a positive integer up to {high}")
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
        if not isinstance(cfg, dict):
            raise InvalidArgument(f"vocoder config {str(cfg)[:60]!r}: must be a dict")
        n_mels = cfg.get("model_in_dim", cfg.get("num_mels"))
        if n_mels is None or "sampling_rate" not in cfg or not ("upsample_rates" in cfg or "hop_size" in cfg):
            raise InvalidArgument(
                f"vocoder config with keys {sorted(cfg)}: needs model_in_dim (or num_mels), sampling_rate "
                "and upsample_rates (or hop_size)"
            )

        def whole(key, value):
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                    or not math.isfinite(value) or value % 1 or value < 1:
                raise InvalidArgument(f"vocoder config {key}={str(value)[:60]}: must be a positive whole number")
            return int(value)

        def hz(key, value):
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise InvalidArgument(f"vocoder config {key}={str(value)[:60]}: must be a frequency in Hz")
            return float(value)

        rates = cfg.get("upsample_rates")
        if rates is not None and not (isinstance(rates, (list, tuple)) and rates):
            raise InvalidArgument(f"vocoder config upsample_rates={str(rates)[:60]}: must be a list of whole numbers")
        hop = math.prod(whole("upsample_rates", r) for r in rates) if rates is not None \
            else whole("hop_size", cfg["hop_size"])
        if "hop_size" in cfg and cfg["hop_size"] != hop:
            raise InvalidArgument(
                f"vocoder config hop_size={cfg['hop_size']}: differs from the product of upsample_rates={hop}"
            )
        sample_rate = whole("sampling_rate", cfg["sampling_rate"])
        n_fft = whole("n_fft", cfg["n_fft"]) if cfg.get("n_fft") else 2 ** math.ceil(math.log2(4 * hop))
        win = cfg.get("win_size") or cfg.get("win_length")
        fmax = cfg.get("fmax")
        return cls(
            sample_rate=sample_rate,
            n_fft=n_fft,
            hop_length=hop,
            win_length=whole("win_size", win) if win else n_fft,
            n_mels=whole("model_in_dim", n_mels),
            fmin=hz("fmin", cfg.get("fmin") or 0.0),
            fmax=hz("fmax", fmax) if fmax is not None else sample_rate / 2,
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
    """Band-limited resampling of (..., samples) from orig_sr to new_sr Hz → (..., ceil(samples·new/orig)), for any
    two integer rates.

    Kaiser-windowed sinc: the rates are reduced by their gcd to orig:new; output sample n sits at time n / new and
    input sample i at i / orig (time units of gcd⁻¹ s), and n is the sum over the inputs within the filter's half
    width of x[i]·h(n / new − i / orig). The low-pass sits at RESAMPLE_ROLLOFF of the lower Nyquist, so content above
    the new Nyquist is removed (about -100 dB) rather than folded back. The filter of output n depends only on its
    phase n mod new: when the bank of every phase is small (common rates: 44100 → 16000 is 160 phases) one strided
    conv1d computes them all; otherwise (co-prime rates such as 7919 → 16000) each output's taps are gathered and
    weighted directly, in chunks, which costs about 2·RESAMPLE_ZERO_CROSSINGS multiply-adds per input or output
    sample, whichever rate is higher, whatever the ratio. Same rates return the input itself."""
    if isinstance(orig_sr, bool) or isinstance(new_sr, bool) or not all(
            isinstance(r, (int, float, np.integer, np.floating)) and math.isfinite(r) and r > 0 and r % 1 == 0
            for r in (orig_sr, new_sr)):
        raise InvalidArgument(f"resample from {orig_sr} Hz to {new_sr} Hz: rates must be positive integers")
    if orig_sr == new_sr:
        return waveform
    g = math.gcd(int(orig_sr), int(new_sr))
    orig, new = int(orig_sr) // g, int(new_sr) // g
    cutoff = RESAMPLE_ROLLOFF * min(orig, new) / 2  # cycles per time unit; input sample n sits at time n / orig
    half_width = RESAMPLE_ZERO_CROSSINGS / (2 * cutoff)  # time units either side of an output sample
    reach = math.ceil(half_width * orig)  # input samples either side
    shape, length = waveform.shape[:-1], waveform.shape[-1]
    outputs = math.ceil(length * new / orig)
    x = waveform.reshape(-1, length)
    if new * (2 * reach + orig) <= RESAMPLE_MAX_TAPS:
        offsets = torch.arange(-reach, reach + orig, dtype=torch.float64)  # input sample relative to orig·k
        taps = _sinc_taps(torch.arange(new, dtype=torch.float64)[:, None] / new - offsets / orig, cutoff, half_width,
                          orig)  # (new, taps): output sample new·k + phase
        y = F.conv1d(F.pad(x[:, None], (reach, reach + orig)), taps.to(x)[:, None, :], stride=orig)  # (M, new, k)
        y = y.transpose(1, 2).reshape(len(x), -1)[:, :outputs]
    else:
        y = _resample_direct(x, orig, new, outputs, cutoff, half_width, reach)
    return y.reshape(*shape, -1)


def _sinc_taps(t: torch.Tensor, cutoff: float, half_width: float, orig: int) -> torch.Tensor:
    """Kaiser-windowed sinc low-pass at `cutoff` (cycles per time unit) at time offsets t (float64, time units),
    scaled for an input of `orig` samples per time unit; 0 beyond half_width."""
    u = (t / half_width).clamp(-1.0, 1.0)
    beta = torch.tensor(RESAMPLE_BETA, dtype=torch.float64)
    kaiser = torch.special.i0(beta * torch.sqrt(1 - u**2)) / torch.special.i0(beta)
    return 2 * cutoff / orig * torch.sinc(2 * cutoff * t) * kaiser * (t.abs() <= half_width)


def _resample_direct(x: torch.Tensor, orig: int, new: int, outputs: int, cutoff: float, half_width: float,
                     reach: int) -> torch.Tensor:
    """resample() for rate pairs whose polyphase bank is too large: (M, samples) → (M, outputs). Output n gathers
    the 2·reach + 1 inputs around c = floor(n·orig / new); its taps are those of its phase n mod new (a bank of
    min(new, outputs) phases when it holds at most RESAMPLE_MAX_BANK taps, else computed per chunk of outputs):
    the same filter as the conv1d path, without its orig − 1 zero taps per phase."""
    width = 2 * reach + 1
    padded = F.pad(x, (reach, reach + 1))  # input i sits at padded index i + reach
    m = torch.arange(width)

    def taps(phases: torch.Tensor) -> torch.Tensor:  # (P,) int64 → (P, width) in x's dtype
        first = phases * orig // new - reach  # the input index of tap 0
        t = phases[:, None].double() / new - (first[:, None] + m).double() / orig
        return _sinc_taps(t, cutoff, half_width, orig).to(x)

    step = max(1, RESAMPLE_CHUNK // (width * len(x)))
    bank = None  # taps of every phase, when that costs less than computing them per output
    if min(new, outputs) * width <= RESAMPLE_MAX_BANK:
        phases = min(new, outputs)
        bank = torch.cat([taps(torch.arange(p, min(p + step, phases))) for p in range(0, phases, step)])
    y = x.new_empty(len(x), outputs)
    for start in range(0, outputs, step):
        n = torch.arange(start, min(start + step, outputs))
        centre = n * orig // new  # (n·orig) fits int64 for any hour of audio at any rate
        weights = bank[n % new] if bank is not None else taps(n % new)
        y[:, start:start + len(n)] = (padded[:, centre[:, None] + m] * weights).sum(-1)
    return y


def peak_normalize(waveform: torch.Tensor, peak_dbfs: float = -1.0) -> torch.Tensor:
    """Scale each row of (..., samples) so that its largest |sample| is peak_dbfs (dB re full scale 1.0).
    Silent rows stay silent."""
    peak = waveform.abs().amax(dim=-1, keepdim=True)
    return waveform * (10 ** (peak_dbfs / 20) / peak.clamp(min=1e-12)) * (peak > 0)


# ------------------------------------------------------------------------------------------------------- files


def read(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Decode an audio file (wav, flac, ogg, mp3, ... whatever libsndfile reads) → (samples,) float32 mono at
    sample_rate Hz: channels are averaged, then resampled with resample(). Only regular files are read: a FIFO,
    a device or a socket is refused at once (opening one could wait forever), and so is audio longer than
    MAX_READ_SECONDS."""
    path = os.fspath(path)
    with _open_regular(path) as f:
        try:
            with soundfile.SoundFile(f) as sound:
                seconds = sound.frames / sound.samplerate
                if seconds > MAX_READ_SECONDS:
                    raise AudioFileError(f"{path}: {seconds:.0f} s of audio ({sound.frames} samples at "
                                         f"{sound.samplerate} Hz), longer than the {MAX_READ_SECONDS:.0f} s soundsmith "
                                         "reads; cut it first")
                file_rate = sound.samplerate
                data = sound.read(dtype="float32", always_2d=True)
        except PermissionError:
            raise AudioFileError(f"{path}: permission denied") from None
        except (soundfile.LibsndfileError, RuntimeError, OSError, ValueError) as e:
            detail = getattr(e, "error_string", None) or str(e)
            raise AudioFileError(f"{path}: unreadable or corrupt audio ({' '.join(detail.split())})") from None
    if data.size == 0:
        raise AudioFileError(f"{path}: contains no audio samples")
    waveform = torch.from_numpy(data.mean(axis=1, dtype=np.float32))
    return resample(waveform, file_rate, sample_rate)


@contextmanager
def _open_regular(path: str):
    """The file at `path` opened for reading in binary, refused with one line unless it is a regular file. It is
    opened without blocking and checked on the open descriptor, so a FIFO swapped in after a check cannot hang."""
    if not os.path.lexists(path):
        raise AudioFileError(f"{path}: no such file")
    if os.path.isdir(path):
        raise AudioFileError(f"{path}: is a folder, not an audio file")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise AudioFileError(f"{path}: no such file (or a link to nothing)") from None
    except PermissionError:
        raise AudioFileError(f"{path}: permission denied") from None
    except OSError as e:
        raise AudioFileError(f"{path}: cannot be opened ({e.strerror})") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or
                    stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
            raise AudioFileError(f"{path}: is {kind}, not an audio file; save the audio to a file first")
        if getattr(os, "O_NONBLOCK", 0):
            os.set_blocking(fd, True)
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with f:
        yield f


def write(path: str | os.PathLike, waveform: torch.Tensor, sample_rate: int, metadata: dict | None = None, *,
          overwrite: bool = False) -> None:
    """Write (samples,) or (channels, samples) audio as 16-bit PCM: WAV or FLAC by the extension.

    Samples are clipped to [-1, 1] and quantised to round(x·32768) (clipped to int16), so reading the file back
    returns each sample within 2^-16 (1/32768 at +1.0). `metadata` (prompt, model, seed, steps, guidance, ...) is
    stored as JSON in the file's comment (RIFF INFO ICMT for WAV, at most WAV_COMMENT_LIMIT characters; Vorbis
    comment for FLAC) and read_metadata() gives it back.

    The file appears whole or not at all, and never replaces another: it is written to a temporary file in the same
    folder, fsync'ed, then linked to `path`, which fails if `path` exists by then, whoever made it (AudioFileError
    "already exists"; the check is the link itself, so no file created meanwhile is lost). overwrite=True renames
    the temporary over `path` instead. The temporary file is removed whatever happens: on any failure (an existing
    `path` is then left as it was), and on SIGINT, SIGTERM or SIGHUP, which are held while the temporary file
    exists and delivered as soon as it is gone (in the main thread; SIGKILL cannot be held)."""
    path = os.fspath(path)
    extension = os.path.splitext(path)[1].lower()
    if extension not in FORMATS:
        raise AudioFileError(f"{path}: cannot write '{extension or 'no extension'}' files; use .wav or .flac")
    check_write_rate(sample_rate, extension)
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
    if not overwrite and os.path.lexists(path):
        raise _already_exists(path)
    with signals_held():
        temporary = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
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
            _publish(temporary, path, overwrite)
        except BaseException as e:
            _remove(temporary)
            if isinstance(e, SoundsmithError):
                raise
            if isinstance(e, PermissionError):
                raise AudioFileError(f"{path}: permission denied") from None
            if isinstance(e, (OSError, soundfile.LibsndfileError)):
                detail = getattr(e, "strerror", None) or getattr(e, "error_string", None) or str(e)
                raise AudioFileError(f"{path}: write failed ({' '.join(str(detail).split())})") from None
            raise
        fsync_folder(folder)


def check_write_rate(sample_rate, extension: str = ".wav") -> int:
    """A sample rate write() can store: a whole number of Hz from 1 to MAX_WRITE_RATE of the format."""
    limit = MAX_WRITE_RATE.get(extension, MAX_WRITE_RATE[".wav"])
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float, np.integer, np.floating)) \
            or not math.isfinite(sample_rate) or sample_rate % 1 or not 1 <= sample_rate <= limit:
        raise InvalidArgument(f"sample_rate={sample_rate!r}: must be a whole number of Hz from 1 to {limit} "
                              f"({extension[1:].upper()})")
    return int(sample_rate)


# link(2) says "this file system has no hard links" with one of these
_NO_HARD_LINKS = {errno.EPERM, errno.EXDEV, errno.EMLINK, getattr(errno, "ENOTSUP", -1),
                  getattr(errno, "EOPNOTSUPP", -1), getattr(errno, "ENOSYS", -1)}


def _publish(temporary: str, path: str, overwrite: bool) -> None:
    """Give the finished temporary file its name: renamed over `path` with overwrite, else linked to `path` (which
    fails if it exists) and unlinked. Where the file system has no hard links (FAT, some network shares), `path` is
    claimed by an exclusive create and the temporary renamed over the claim."""
    if overwrite:
        os.replace(temporary, path)
        return
    try:
        os.link(temporary, path)
    except FileExistsError:
        raise _already_exists(path) from None
    except OSError as e:
        if e.errno not in _NO_HARD_LINKS:
            raise
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            raise _already_exists(path) from None
        try:
            os.replace(temporary, path)
        except BaseException:
            _remove(path)  # our empty claim
            raise
        return
    _remove(temporary)


def _already_exists(path: str) -> AudioFileError:
    return OutputExists(f"{path}: already exists; soundsmith does not replace files unless asked to "
                          "(overwrite=True, --force)")


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


# what a terminal, a service manager or a batch scheduler sends to stop a process
HELD_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextmanager
def signals_held():
    """Hold SIGINT, SIGTERM and SIGHUP during the block and deliver them, in the order they came, after it: to the
    handlers that were in place (KeyboardInterrupt for SIGINT, termination for SIGTERM, a program's own handler).
    What the block leaves behind (a temporary file) is then cleaned up before the process stops. Python runs signal
    handlers in the main thread only, so elsewhere the block runs as it is; a signal whose handler was not set from
    Python is left alone."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {}
    try:
        for signum in HELD_SIGNALS:
            handler = signal.getsignal(signum)
            if handler is not None:
                previous[signum] = signal.signal(signum, lambda signum, frame: received.append(signum))
    except ValueError:  # not the main interpreter
        pass
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in dict.fromkeys(received):
            signal.raise_signal(signum)


def read_metadata(path: str | os.PathLike) -> dict:
    """The metadata dict write() stored in `path`; {} when it has none, {"comment": text} for a foreign comment."""
    path = os.fspath(path)
    with _open_regular(path) as file:
        try:
            with soundfile.SoundFile(file) as f:
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


def fsync_folder(folder) -> None:
    """Make a rename or a new file in `folder` durable, where the platform allows opening a folder."""
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
