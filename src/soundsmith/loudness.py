"""Loudness: ITU-R BS.1770-4 integrated loudness and true peak, and normalisation to a target loudness under a
true-peak ceiling.

- `integrated_loudness(waveform, sample_rate)`: gated programme loudness in LUFS (BS.1770-4 §2: K-weighting, 400 ms
  blocks every 100 ms, an absolute gate at -70 LUFS, then a relative gate 10 LU below the loudness of the blocks that
  pass it). The K-weighting filters are the standard's two biquads re-derived for every sample rate from their analog
  prototypes (the derivation of libebur128, which pyloudnorm calls "DeMan"): a 48 kHz file reads the standard's
  coefficients, a 16 kHz one the same response at its own rate.
- `true_peak(waveform, sample_rate)`: BS.1770-4 Annex 2: the largest |value| after oversampling, in dBTP. Annex 2
  oversamples 48 kHz audio 4×, to 192 kHz; the family's 16 and 22.05 kHz audio is oversampled to the same rate or
  more (TRUE_PEAK_RATE: 12× at 16 kHz, 9× at 22.05 kHz; never under 4×), so a crest between samples reads at most
  20·log10(cos(π·f/192 kHz)) dB low: 0.06 dB for a 7.2 kHz tone, where 4× at 16 kHz would miss 0.6 dB. The
  interpolator is a Kaiser-windowed sinc cut at the input's Nyquist frequency: it passes through every sample and
  keeps the whole band (an anti-aliasing resampler, cut lower, would smooth away the peaks of broadband content).
- `normalize_loudness(waveform, sample_rate, target_lufs=-16, true_peak_dbtp=-1)`: one gain per row to the target,
  then a look-ahead true-peak limiter where the gain would push peaks over the ceiling, repeated until the limited
  result is within LOUDNESS_TOLERANCE_LU of the target. Rows quieter than the floor (-70 LUFS, the absolute gate:
  nothing in them counts as programme to BS.1770) are returned untouched rather than amplified into noise.
  Returns the waveform and a `LoudnessRecord` per row of what was measured and applied.

Shapes: waveforms are (samples,) or (B, samples), each row one mono programme at sample_rate Hz, numpy or torch;
the result has the input's type, shape and dtype.
"""

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from .errors import InvalidArgument

# K-weighting (BS.1770-4 Table 1 and 2, as analog prototypes: libebur128's derivation), blocks and gates
K_SHELF_HZ, K_SHELF_DB, K_SHELF_Q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
K_SHELF_VB_EXPONENT = 0.4996667741545416  # the shelf's mid-band gain is its high-band gain to this power
K_HIGHPASS_HZ, K_HIGHPASS_Q = 38.13547087602444, 0.5003270373238773
LOUDNESS_OFFSET = -0.691  # LUFS of a mean square of 1 after K-weighting (BS.1770-4 eq. 2)
BLOCK_S, STEP_S = 0.4, 0.1  # gating blocks of 400 ms, overlapping by 75 %
ABSOLUTE_GATE_LUFS, RELATIVE_GATE_LU = -70.0, -10.0

# true peak (BS.1770-4 Annex 2: 4× at 48 kHz)
TRUE_PEAK_RATE = 192000  # Hz: the oversampled rate of Annex 2's meter
TRUE_PEAK_MIN_OVERSAMPLING = 4
INTERPOLATION_ZERO_CROSSINGS, INTERPOLATION_BETA = 24, 8.0  # Kaiser-windowed sinc: ±24 samples, 0.003 dB ripple

# normalisation
TARGET_LUFS = -16.0  # what soundsmith's CLI writes by default (the streaming / podcast level of AES TD1004)
CEILING_DBTP = -1.0  # true-peak ceiling (EBU R128 s1, AES TD1004)
FLOOR_LUFS = ABSOLUTE_GATE_LUFS  # quieter rows are left as they are: BS.1770 finds no programme in them
LOUDNESS_TOLERANCE_LU = 0.05  # the limiter passes stop when the result is this close to the target
LIMITER_PASSES = 10
LIMITER_MAX_MAKEUP_DB = 12.0  # at most this much gain on top of the static gain to win back what the limiter takes
LIMITER_WINDOW_S = 0.005  # look-ahead and hold of the limiter; its gain ramps over twice this
LIMITER_MARGIN_DB = 0.05  # the limiter aims this far under the ceiling, so smoothing never crosses it
TARGET_RANGE_LUFS = (-70.0, 0.0)  # as request.LOUDNESS_RANGE
CEILING_RANGE_DBTP = (-20.0, 0.0)


@dataclass(frozen=True)
class LoudnessRecord:
    """What normalize_loudness measured and did to one row. Levels in LUFS / dBTP, gain in dB; -inf = silence."""

    target_lufs: float
    ceiling_dbtp: float
    measured_lufs: float  # integrated loudness of the input
    gain_db: float  # the gain applied before the limiter (0 when not applied)
    limited: bool  # whether the true-peak limiter lowered any part of the row
    output_lufs: float  # integrated loudness of the result
    true_peak_dbtp: float  # true peak of the result
    applied: bool  # False when the input was under the floor and was returned untouched

    def as_metadata(self) -> dict:
        """JSON-safe fields for a file's metadata (audio.write): rounded, with -inf written as None."""
        def level(x):
            return round(float(x), 2) if math.isfinite(x) else None

        return {"loudness_target_lufs": level(self.target_lufs), "loudness_ceiling_dbtp": level(self.ceiling_dbtp),
                "loudness_measured_lufs": level(self.measured_lufs), "loudness_gain_db": level(self.gain_db),
                "loudness_limited": self.limited, "loudness_output_lufs": level(self.output_lufs),
                "true_peak_dbtp": level(self.true_peak_dbtp), "loudness_applied": self.applied}


# ----------------------------------------------------------------------------------------------------- measuring


def _biquad_response(b: list, a: list, n: int) -> np.ndarray:
    z = np.exp(-2j * np.pi * np.arange(n // 2 + 1) / n)  # z^-1 on the n-point FFT grid
    return (b[0] + b[1] * z + b[2] * z * z) / (a[0] + a[1] * z + a[2] * z * z)


@lru_cache(maxsize=8)
def _k_weighting(n: int, sample_rate: int) -> torch.Tensor:
    # the two BS.1770 biquads (high shelf, then RLB high-pass) by the bilinear transform at this sample rate,
    # as their frequency response on an n-point FFT grid
    k = math.tan(math.pi * K_SHELF_HZ / sample_rate)
    vh = 10 ** (K_SHELF_DB / 20)
    vb = vh**K_SHELF_VB_EXPONENT
    a0 = 1 + k / K_SHELF_Q + k * k
    shelf_b = [(vh + vb * k / K_SHELF_Q + k * k) / a0, 2 * (k * k - vh) / a0, (vh - vb * k / K_SHELF_Q + k * k) / a0]
    shelf_a = [1.0, 2 * (k * k - 1) / a0, (1 - k / K_SHELF_Q + k * k) / a0]
    k = math.tan(math.pi * K_HIGHPASS_HZ / sample_rate)
    a0 = 1 + k / K_HIGHPASS_Q + k * k
    highpass_a = [1.0, 2 * (k * k - 1) / a0, (1 - k / K_HIGHPASS_Q + k * k) / a0]
    return torch.from_numpy(_biquad_response(shelf_b, shelf_a, n) * _biquad_response([1.0, -2.0, 1.0], highpass_a, n))


def _rows(waveform, name: str = "waveform") -> torch.Tensor:
    x = torch.as_tensor(np.asarray(waveform) if not torch.is_tensor(waveform) else waveform)
    x = x.detach().to("cpu", torch.float64)
    if x.dim() == 0 or x.shape[-1] == 0:
        raise InvalidArgument(f"{name} of shape {tuple(x.shape)}: needs at least one sample")
    if not torch.isfinite(x).all():
        raise InvalidArgument(f"{name} contains NaN or infinite values: loudness needs finite samples")
    return x


def _check_rate(sample_rate) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float, np.number)) \
            or not math.isfinite(sample_rate) or sample_rate <= 0 or sample_rate % 1:
        raise InvalidArgument(f"sample_rate={sample_rate!r}: must be a positive integer (Hz)")
    return int(sample_rate)


def integrated_loudness(waveform, sample_rate: int) -> torch.Tensor:
    """Integrated loudness in LUFS (ITU-R BS.1770-4) of each row of (..., samples), each row one mono programme
    → (...,) float64 tensor; -inf when no block passes the absolute gate (silence). A full-scale 1 kHz sine reads
    -3.01 LUFS. The K-weighting is applied in the frequency domain over a zero-padded FFT, which equals running the
    two biquads from rest. Blocks are the complete 400 ms windows every 100 ms; a row shorter than 400 ms is one
    block of its own length (BS.1770 defines no loudness for it; this is the mean-square loudness of the whole clip,
    gated like any block)."""
    sample_rate = _check_rate(sample_rate)
    x = _rows(waveform)
    length = x.shape[-1]
    n = 2 ** math.ceil(math.log2(length + sample_rate))  # one second of room for the filters' decay
    weighted = torch.fft.irfft(torch.fft.rfft(x, n) * _k_weighting(n, sample_rate), n)[..., :length]
    block, step = round(BLOCK_S * sample_rate), round(STEP_S * sample_rate)
    power = weighted**2
    blocks = power.unfold(-1, block, step).mean(-1) if length >= block else power.mean(-1, keepdim=True)
    blocks = blocks.reshape(-1, blocks.shape[-1])

    def lufs(mean_square):
        return LOUDNESS_OFFSET + 10 * torch.log10(mean_square)

    result = []
    for z in blocks:
        z = z[lufs(z) > ABSOLUTE_GATE_LUFS]
        z = z[lufs(z) > lufs(z.mean()) + RELATIVE_GATE_LU] if len(z) else z
        result.append(lufs(z.mean()) if len(z) else torch.tensor(-math.inf, dtype=torch.float64))
    return torch.stack(result).reshape(x.shape[:-1])


def oversampling(sample_rate: int) -> int:
    """The true-peak meter's oversampling factor at sample_rate Hz: enough to reach TRUE_PEAK_RATE, at least 4."""
    return max(TRUE_PEAK_MIN_OVERSAMPLING, math.ceil(TRUE_PEAK_RATE / sample_rate))


def interpolate(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Band-limited interpolation of (..., L) by an integer factor → (..., factor·L), output i at input time
    i / factor: a Kaiser-windowed sinc cut at the input's Nyquist frequency, one filter per phase. Phase 0 returns the
    samples themselves (the sinc is 0 at every other integer); samples outside the input count as 0. float32."""
    zc = INTERPOLATION_ZERO_CROSSINGS
    offsets = torch.arange(-zc, zc + 1, dtype=torch.float64)  # input sample n + d for d in offsets
    phases = torch.arange(factor, dtype=torch.float64)[:, None] / factor
    t = phases - offsets  # (factor, taps): time from each input sample to the output sample n + phase
    window = torch.special.i0(INTERPOLATION_BETA * torch.sqrt((1 - (t / (zc + 1)) ** 2).clamp(min=0)))
    taps = torch.sinc(t) * window / torch.special.i0(torch.tensor(INTERPOLATION_BETA, dtype=torch.float64))
    rows = F.pad(x.reshape(-1, 1, x.shape[-1]).float(), (zc, zc))
    out = F.conv1d(rows, taps.float()[:, None])  # (R, factor, L): phase-major
    return out.transpose(1, 2).reshape(*x.shape[:-1], -1)


def _oversampled_peaks(x: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """(R, L) float64 → (R, L) float64: the largest |value| of the oversampled signal over each input sample's
    interval [n, n + 1), and of the sample itself. The interpolation runs in float32 (peaks to ~1e-7 relative)."""
    k = oversampling(sample_rate)
    peaks = interpolate(x, k).double().abs().reshape(*x.shape, k).amax(-1)
    return torch.maximum(peaks, x.abs())


def true_peak(waveform, sample_rate: int) -> torch.Tensor:
    """True peak in dBTP (ITU-R BS.1770-4 Annex 2: the largest |value| after oversampling(), dB re full scale) of
    each row of (..., samples) → (...,) float64 tensor; -inf for silence. A full-scale sine whose samples miss its
    crests (fs/4 at 45°: samples at ±0.707) reads about 0 dBTP where its sample peak reads -3 dB."""
    sample_rate = _check_rate(sample_rate)
    x = _rows(waveform)
    peak = _oversampled_peaks(x.reshape(-1, x.shape[-1]), sample_rate).amax(-1)
    return (20 * torch.log10(peak)).reshape(x.shape[:-1])


# --------------------------------------------------------------------------------------------------- normalising


def limiter_gain(x: torch.Tensor, sample_rate: int, ceiling_dbtp: float) -> torch.Tensor:
    """The gain (R, L) in (0, 1] that keeps the oversampled peaks of x (R, L) under ceiling_dbtp: per sample the
    gain its own peak needs, then the minimum over ±LIMITER_WINDOW_S (look-ahead and hold), then the mean over the
    same span (smooth ramps, no steps). Every averaged value is a minimum over a span that contains the sample, so
    the smoothed gain never exceeds what the sample needs: the ceiling holds at every sample; between samples it
    holds to within the gain's change over a fraction of a sample (LIMITER_MARGIN_DB covers it). 1 where nothing is
    over."""
    ceiling = 10 ** ((ceiling_dbtp - LIMITER_MARGIN_DB) / 20)
    need = (ceiling / _oversampled_peaks(x, sample_rate).clamp(min=1e-300)).clamp(max=1.0)
    if bool((need >= 1.0).all()):
        return need
    half = max(1, round(LIMITER_WINDOW_S * sample_rate))
    span = 2 * half + 1
    held = -F.max_pool1d(-need[:, None], span, stride=1, padding=half)  # running minimum
    return F.avg_pool1d(held, span, stride=1, padding=half, count_include_pad=False)[:, 0].clamp(max=1.0)


def _normalize_row(x: torch.Tensor, sample_rate: int, target: float, ceiling: float,
                   floor: float) -> tuple[torch.Tensor, LoudnessRecord]:
    measured = float(integrated_loudness(x, sample_rate))
    if not measured > floor:  # silence or near-silence: nothing to bring up but noise
        peak = float(true_peak(x, sample_rate))
        return x, LoudnessRecord(target, ceiling, measured, 0.0, False, measured, peak, applied=False)
    static = gain_db = target - measured
    tried = []  # (gain_db, output loudness) of each pass
    for _ in range(LIMITER_PASSES):
        y = x[None] * 10 ** (gain_db / 20)
        gain = limiter_gain(y, sample_rate, ceiling)
        limited = bool((gain < 1.0).any())
        y = (y * gain)[0]
        output = float(integrated_loudness(y, sample_rate))
        tried.append((gain_db, output))
        if not limited or abs(output - target) <= LOUDNESS_TOLERANCE_LU:
            break
        # the limiter took some loudness away: give it back (secant step on loudness against gain) and limit again
        slope = 1.0
        if len(tried) > 1 and tried[-1][0] != tried[-2][0]:
            slope = min(1.0, max(0.1, (tried[-1][1] - tried[-2][1]) / (tried[-1][0] - tried[-2][0])))
        step = (target - output) / slope
        gain_db = min(gain_db + step, static + LIMITER_MAX_MAKEUP_DB)
        if gain_db == tried[-1][0]:
            break  # the make-up limit is reached: this row stays under the target
    gain_db = tried[-1][0]  # the gain y was made with
    peak = float(true_peak(y, sample_rate))
    if peak > ceiling:  # a hair over between samples: trim the whole row
        y = y * 10 ** ((ceiling - peak) / 20)
        gain_db += ceiling - peak
        output, peak = float(integrated_loudness(y, sample_rate)), float(true_peak(y, sample_rate))
    return y, LoudnessRecord(target, ceiling, measured, gain_db, limited, output, peak, applied=True)


def check_target(target_lufs, true_peak_dbtp=CEILING_DBTP, floor_lufs=FLOOR_LUFS) -> tuple[float, float, float]:
    """Validate a loudness target, true-peak ceiling and floor → floats (InvalidArgument otherwise)."""
    def number(name, value, low, high, unit):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not math.isfinite(value) \
                or not low <= value <= high:
            raise InvalidArgument(f"{name}={value!r}: must be a number from {low:g} to {high:g} {unit}")
        return float(value)

    target = number("target_lufs", target_lufs, *TARGET_RANGE_LUFS, "LUFS")
    ceiling = number("true_peak_dbtp", true_peak_dbtp, *CEILING_RANGE_DBTP, "dBTP")
    floor = number("floor_lufs", floor_lufs, -200.0, target, "LUFS (at most the target)")
    return target, ceiling, floor


def parse_target(text: str) -> float | None:
    """A CLI value `LUFS|off` → the target in LUFS, or None for "off" (e.g. `--loudness -14`, `--loudness off`)."""
    value = str(text).strip()
    if value.lower() in ("off", "none", "raw"):
        return None
    try:
        target = float(value)
    except ValueError:
        raise InvalidArgument(f"loudness {text!r}: give a target in LUFS from {TARGET_RANGE_LUFS[0]:g} to "
                              f"{TARGET_RANGE_LUFS[1]:g} (e.g. -16) or 'off'") from None
    return check_target(target)[0]


def normalize_loudness(waveform, sample_rate: int, target_lufs: float = TARGET_LUFS,
                       true_peak_dbtp: float = CEILING_DBTP, floor_lufs: float = FLOOR_LUFS):
    """Bring each row of (samples,) or (B, samples) to target_lufs integrated loudness (BS.1770-4) with its true peak
    at or under true_peak_dbtp → (waveform, record): same type, shape and dtype as the input; record is a
    LoudnessRecord for a 1-D input and a list of them, one per row, for a 2-D one.

    Each row gets one gain to the target; where that would put a true peak over the ceiling, a look-ahead limiter
    (limiter_gain) lowers the gain around those peaks only, and the row's gain is raised again by what the limiter
    took, until the result is within LOUDNESS_TOLERANCE_LU (0.05 LU) of the target (at most LIMITER_PASSES passes:
    a row made of isolated clicks may end under the target, which its record shows). Candidates of one prompt thus
    come out at the same loudness. A row whose loudness is at or under floor_lufs (default -70 LUFS, BS.1770's
    absolute gate: no 400 ms block of it is loud enough to count, so it is silence or the model's residual noise)
    is returned unchanged, with applied=False in its record."""
    sample_rate = _check_rate(sample_rate)
    target, ceiling, floor = check_target(target_lufs, true_peak_dbtp, floor_lufs)
    x = _rows(waveform)
    if x.dim() > 2:
        raise InvalidArgument(f"waveform of shape {tuple(x.shape)}: give (samples,) or (batch, samples)")
    rows, records = [], []
    for row in x.reshape(-1, x.shape[-1]):
        y, record = _normalize_row(row, sample_rate, target, ceiling, floor)
        rows.append(y)
        records.append(record)
    out = torch.stack(rows).reshape(x.shape)
    if torch.is_tensor(waveform):
        out = out.to(device=waveform.device, dtype=waveform.dtype if waveform.is_floating_point() else torch.float32)
    else:
        dtype = np.asarray(waveform).dtype
        out = out.numpy().astype(dtype if np.issubdtype(dtype, np.floating) else np.float32)
    return out, (records[0] if x.dim() == 1 else records)
