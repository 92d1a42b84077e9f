"""soundsmith.loudness: BS.1770-4 integrated loudness against pyloudnorm, true peak against scipy's polyphase
oversampling and analytic sines, and normalisation: every row at the target within 0.5 LU (by pyloudnorm), true peaks
under the ceiling, silence left alone, one-line errors."""

import json
import math

import numpy as np
import pytest
import torch

from soundsmith import InvalidArgument, loudness

pyloudnorm = pytest.importorskip("pyloudnorm")
signal = pytest.importorskip("scipy.signal")


def reference_loudness(x: np.ndarray, sr: int) -> float:
    """pyloudnorm's BS.1770-4 meter with the K-weighting derived per sample rate as the standard's analog prototypes
    ("DeMan", libebur128's derivation, which soundsmith uses), on the samples that fill complete gating blocks:
    pyloudnorm counts a last, partial block (divided by the full block length), BS.1770 does not."""
    block, step = round(0.4 * sr), round(0.1 * sr)
    complete = block + (len(x) - block) // step * step
    return pyloudnorm.Meter(sr, filter_class="DeMan").integrated_loudness(np.asarray(x[:complete], np.float64))


def reference_true_peak(x: np.ndarray, factor: int = 4) -> float:
    """dBTP by scipy's polyphase oversampling (a Kaiser-windowed FIR of its own design), as BS.1770 Annex 2 meters."""
    return 20 * math.log10(np.abs(signal.resample_poly(np.asarray(x, np.float64), factor, 1)).max())


def programme(kind: str, sr: int, seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * sr)) / sr
    if kind.startswith("sine"):
        return 0.5 * np.sin(2 * np.pi * float(kind[4:]) * t + 0.3) * fades(len(t), sr)
    if kind == "noise":
        return 0.1 * rng.standard_normal(len(t))
    if kind == "speech":  # syllable-rate bursts of shaped noise with pauses: the relative gate drops the pauses
        syllables = (np.sin(2 * np.pi * 3.7 * t) > 0.2) * (np.sin(2 * np.pi * 0.45 * t) > -0.3)
        voiced = np.convolve(rng.standard_normal(len(t)), np.hanning(9), "same")
        return 0.2 * voiced * syllables * (1 + 0.5 * np.sin(2 * np.pi * 140 * t))
    if kind == "near-silence":  # -60 LUFS noise with a -75 dB stretch: the absolute gate drops that stretch
        return 1e-3 * rng.standard_normal(len(t)) * np.where(t < seconds / 2, 1.0, 0.18)
    if kind == "drums":  # noise hits decaying in 40 ms, twice a second: a peak-to-loudness ratio over 20 dB
        hits = np.zeros(len(t))
        for start in range(0, len(t), sr // 2):
            n = min(len(t) - start, sr // 5)
            hits[start:start + n] = rng.standard_normal(n) * np.exp(-np.arange(n) / (0.04 * sr))
        return 0.9 * hits / np.abs(hits).max()
    if kind == "hum":
        return 0.02 * np.sin(2 * np.pi * 60 * t) + 0.01 * np.sin(2 * np.pi * 180 * t)
    raise ValueError(kind)


def fades(n: int, sr: int) -> np.ndarray:
    """10 ms raised-cosine fade-in and fade-out: a tone that starts at full amplitude overshoots by band-limited
    ringing (Gibbs) at its first sample, which a true-peak meter rightly reports."""
    ramp = np.sin(np.linspace(0, np.pi / 2, round(0.01 * sr))) ** 2
    envelope = np.ones(n)
    envelope[:len(ramp)], envelope[n - len(ramp):] = ramp, ramp[::-1]
    return envelope


KINDS = ["sine100", "sine997", "sine5000", "noise", "speech", "near-silence", "drums"]


# ------------------------------------------------------------------------------------------------- integrated


@pytest.mark.parametrize("sr", [16000, 22050, 44100, 48000])
@pytest.mark.parametrize("kind", KINDS)
def test_integrated_loudness_matches_pyloudnorm(kind, sr):
    for seconds in (4.0, 2.37):  # a whole number of 100 ms steps, and not
        x = programme(kind, sr, seconds)
        ours = loudness.integrated_loudness(torch.tensor(x), sr).item()
        assert abs(ours - reference_loudness(x, sr)) < 0.01, (kind, sr, seconds)


@pytest.mark.parametrize("sr", [48000, 16000])
def test_a_full_scale_997_hz_sine_reads_minus_3_01_lufs(sr):
    # BS.1770-4: a 0 dBFS 997 Hz sine in one channel reads -3.01 LUFS; 20 dB down reads -23.01; silence has none
    # (at 16 kHz the bilinear transform bends the K-weighting at 1 kHz by 0.04 dB)
    x = torch.sin(2 * math.pi * 997 * torch.arange(5 * sr, dtype=torch.float64) / sr)
    assert abs(loudness.integrated_loudness(x, sr).item() + 3.01) < 0.05
    assert abs(loudness.integrated_loudness(0.1 * x, sr).item() + 23.01) < 0.05
    assert loudness.integrated_loudness(torch.zeros(sr), sr).item() == -math.inf


@pytest.mark.parametrize("kind", ["sine997", "noise", "speech"])
def test_a_clip_shorter_than_the_400_ms_block_is_one_block_of_its_own_length(kind):
    sr = 16000
    x = programme(kind, sr, 0.25)
    reference = pyloudnorm.Meter(sr, filter_class="DeMan", block_size=len(x) / sr).integrated_loudness(x)
    assert abs(loudness.integrated_loudness(torch.tensor(x), sr).item() - reference) < 0.05


def test_rows_are_measured_independently():
    sr = 16000
    x = np.stack([programme("noise", sr, 2.0), 0.1 * programme("noise", sr, 2.0), np.zeros(2 * sr)])
    lufs = loudness.integrated_loudness(x, sr)
    assert lufs.shape == (3,)
    assert abs((lufs[0] - lufs[1]).item() - 20.0) < 1e-6 and lufs[2].item() == -math.inf


# -------------------------------------------------------------------------------------------------- true peak


def test_true_peak_finds_the_crest_between_samples():
    # a full-scale sine at fs/4 sampled 45° off its crests: every sample is ±0.707 (-3.01 dB), the crest is 0 dBTP
    sr = 16000
    x = np.sin(2 * np.pi * (sr / 4) * np.arange(sr) / sr + np.pi / 4) * fades(sr, sr)
    assert abs(20 * math.log10(np.abs(x).max()) + 3.01) < 0.01
    assert abs(loudness.true_peak(x, sr).item()) < 0.02


@pytest.mark.parametrize("sr", [16000, 22050, 48000])
def test_true_peak_of_sines_up_to_0_45_fs_is_their_amplitude_within_the_oversampling_bound(sr):
    # oversampled k×, a sine of frequency f can have its crest at most half an oversampled step from the nearest
    # point, which reads 20·log10(cos(π·f / (k·fs))) dB under: 0.06 dB at 7.2 kHz of 16 kHz (12×), 0.55 dB at
    # 21.6 kHz of 48 kHz (4×, as in BS.1770 Annex 2)
    n, k = np.arange(sr // 2), loudness.oversampling(sr)
    for f in np.linspace(0.01, 0.45, 23) * sr:
        x = 0.5 * np.sin(2 * np.pi * f * n / sr + 1.0) * fades(len(n), sr)
        tp = loudness.true_peak(x[None], sr)[0].item()
        bound = 20 * math.log10(math.cos(math.pi * f / (k * sr)))
        assert 20 * math.log10(0.5) + bound - 0.02 < tp < 20 * math.log10(0.5) + 0.02, f


@pytest.mark.parametrize("kind", ["noise", "speech", "drums", "sine5000"])
def test_true_peak_agrees_with_scipy_polyphase_oversampling(kind):
    sr = 16000
    x = programme(kind, sr, 2.0)
    assert abs(loudness.true_peak(x, sr).item() - reference_true_peak(x, 16)) < 0.25
    assert loudness.true_peak(x, sr).item() >= 20 * math.log10(np.abs(x).max())  # never under the sample peak


def test_oversampling_reaches_192_khz_and_never_less_than_4x():
    assert [loudness.oversampling(sr) for sr in (16000, 22050, 44100, 48000, 96000)] == [12, 9, 5, 4, 4]


def test_the_limiter_gain_keeps_every_oversampled_peak_under_the_ceiling():
    sr = 16000
    x = torch.tensor(programme("drums", sr, 2.0))[None] * 4.0  # peaks near +11 dBFS
    gain = loudness.limiter_gain(x, sr, -1.0)
    assert 0 < gain.min() < 1 and gain.max() <= 1
    assert loudness.true_peak(x * gain, sr).item() <= -1.0 + 1e-6
    assert (gain[0, 1:] - gain[0, :-1]).abs().max() < 0.05  # ramps, not steps


# ------------------------------------------------------------------------------------------------ normalising


@pytest.mark.parametrize("sr", [16000, 22050])
def test_candidates_at_different_levels_all_land_on_the_target_under_the_ceiling(sr):
    # one prompt's candidates can differ by 26 dB and in crest factor; each must come out at -16 LUFS, ≤ -1 dBTP
    kinds = [("sine997", 0.003), ("noise", 4.0), ("drums", 1.0), ("speech", 0.05), ("hum", 1.0), ("noise", 0.01)]
    x = np.stack([programme(kind, sr, 4.0, seed=i) * scale for i, (kind, scale) in enumerate(kinds)]).astype(np.float32)
    y, records = loudness.normalize_loudness(x, sr)
    assert y.shape == x.shape and y.dtype == np.float32 and len(records) == len(kinds)
    for row, record, (kind, _) in zip(y, records, kinds):
        assert abs(reference_loudness(row, sr) + 16.0) < 0.5, kind
        assert abs(record.output_lufs + 16.0) <= loudness.LOUDNESS_TOLERANCE_LU, kind
        assert loudness.true_peak(row, sr).item() <= -1.0 and record.true_peak_dbtp <= -1.0 and record.applied
        # another meter's interpolator reads limited peaks a little differently: the limiter presses thousands of
        # drum-hit samples against the ceiling, and scipy's shorter filter finds some up to 0.2 dB higher
        assert reference_true_peak(row) <= -1.0 + 0.25, kind
    assert records[2].limited and not records[0].limited  # the drums needed the limiter, the sine did not


@pytest.mark.parametrize("kind, target, ceiling", [("speech", -23.0, -1.0), ("speech", -16.0, -1.0),
                                                   ("hum", -14.0, -2.0), ("drums", -18.0, -3.0)])
def test_normalize_loudness_honours_the_target_and_ceiling_it_is_given(kind, target, ceiling):
    sr = 16000
    x = torch.tensor(programme(kind, sr, 3.0), dtype=torch.float32)
    y, record = loudness.normalize_loudness(x, sr, target_lufs=target, true_peak_dbtp=ceiling)
    assert torch.is_tensor(y) and y.dtype == torch.float32 and y.shape == x.shape
    assert abs(reference_loudness(y.numpy(), sr) - target) < 0.5
    assert loudness.true_peak(y, sr).item() <= ceiling + 1e-6
    assert abs(record.gain_db - (record.output_lufs - record.measured_lufs)) < 1.0 or record.limited


def test_without_limiting_the_gain_is_one_exact_scale_factor():
    sr = 16000
    x = programme("noise", sr, 3.0) * 0.01
    y, record = loudness.normalize_loudness(x, sr)
    assert not record.limited
    assert np.allclose(y, x * 10 ** (record.gain_db / 20), rtol=1e-6, atol=0)
    assert abs(record.gain_db - (-16.0 - record.measured_lufs)) < 1e-9


@pytest.mark.parametrize("amplitude", [0.0, 1e-6, 2e-5])
def test_silence_and_near_silence_are_not_amplified(amplitude):
    # below the -70 LUFS floor (BS.1770's absolute gate) there is no programme: the row is returned as it was
    sr = 16000
    x = (amplitude * np.random.default_rng(0).standard_normal(3 * sr)).astype(np.float32)
    y, record = loudness.normalize_loudness(x, sr)
    assert np.array_equal(y, x)
    assert not record.applied and record.gain_db == 0.0 and record.measured_lufs <= loudness.FLOOR_LUFS
    assert json.dumps(record.as_metadata())  # -inf is written as null


def test_a_lone_click_over_silence_stays_under_the_ceiling_and_says_it_fell_short():
    # all of its loudness is one sample: no gain reaches -16 LUFS without the click passing the ceiling, and the
    # limiter's make-up is bounded, so the record tells the truth instead of the target
    sr = 16000
    x = np.zeros(3 * sr)
    x[sr] = 0.5
    x += 1e-3 * np.sin(2 * np.pi * 300 * np.arange(3 * sr) / sr)
    y, record = loudness.normalize_loudness(x, sr)
    assert record.limited and record.applied
    assert record.output_lufs < -16.0 - loudness.LOUDNESS_TOLERANCE_LU
    assert abs(reference_loudness(y, sr) - record.output_lufs) < 0.01
    assert loudness.true_peak(y, sr).item() <= -1.0


def test_the_record_is_metadata_ready():
    sr = 16000
    _, record = loudness.normalize_loudness(programme("speech", sr, 2.0), sr)
    meta = record.as_metadata()
    assert json.loads(json.dumps(meta)) == meta
    assert meta["loudness_target_lufs"] == -16.0 and meta["loudness_ceiling_dbtp"] == -1.0
    assert meta["loudness_applied"] is True and isinstance(meta["loudness_limited"], bool)
    assert abs(meta["loudness_output_lufs"] + 16.0) <= 0.05


@pytest.mark.parametrize("call, match", [
    (lambda: loudness.normalize_loudness(np.ones(100), 16000, target_lufs=5.0), "target_lufs=5.0"),
    (lambda: loudness.normalize_loudness(np.ones(100), 16000, true_peak_dbtp=1.0), "true_peak_dbtp=1.0"),
    (lambda: loudness.normalize_loudness(np.ones(100), 16000, target_lufs=float("nan")), "target_lufs=nan"),
    (lambda: loudness.normalize_loudness(np.array([0.1, float("nan")]), 16000), "NaN"),
    (lambda: loudness.normalize_loudness(np.ones((2, 2, 100)), 16000), r"\(2, 2, 100\)"),
    (lambda: loudness.normalize_loudness(np.ones(100), 0), "sample_rate=0"),
    (lambda: loudness.integrated_loudness(np.zeros(0), 16000), "at least one sample"),
    (lambda: loudness.true_peak(np.ones(10), 44100.5), "sample_rate=44100.5"),
    (lambda: loudness.parse_target("loud"), "'loud'"),
])
def test_bad_input_raises_one_line_naming_the_value(call, match):
    with pytest.raises(InvalidArgument, match=match) as info:
        call()
    assert "\n" not in str(info.value)


def test_parse_target_reads_lufs_or_off():
    assert loudness.parse_target("-14") == -14.0 and loudness.parse_target(" -16.5 ") == -16.5
    assert loudness.parse_target("off") is None and loudness.parse_target("OFF") is None
    with pytest.raises(InvalidArgument, match="-80"):
        loudness.parse_target("-80")


def test_the_demo_models_candidates_of_one_prompt_come_out_at_one_loudness():
    # the case: the bundled demo's candidates of one prompt span many dB raw; normalised they are all at
    # -16 LUFS (pyloudnorm) and under -1 dBTP
    import soundsmith

    pipe = soundsmith.load("demo")
    out = pipe("a dog barking in the rain", num_waveforms_per_prompt=3, num_inference_steps=8, seed=3, rank=False,
               progress=False)
    y, records = loudness.normalize_loudness(out.audios, out.sample_rate)
    assert y.shape == out.audios.shape and len(records) == 3
    for row, record in zip(y, records):
        assert record.applied and abs(reference_loudness(row, out.sample_rate) + 16.0) < 0.5
        assert loudness.true_peak(row, out.sample_rate).item() <= -1.0
        assert reference_true_peak(row) <= -1.0 + 0.1
    outputs = [reference_loudness(row, out.sample_rate) for row in y]
    assert max(outputs) - min(outputs) < 0.5
