"""soundsmith.audio: the AudioLDM log-mel recipe against direct numpy references, resampling, levels, and atomic
WAV/FLAC files with metadata and one-line errors."""

import json
import math
import os
import threading

import numpy as np
import pytest
import soundfile
import torch

from soundsmith import audio
from soundsmith.audio import MelConfig
from soundsmith.errors import AudioFileError, InvalidArgument

HIFIGAN_22K = MelConfig(sample_rate=22050, n_fft=1024, hop_length=256, win_length=1024, n_mels=80, fmin=0, fmax=8000)


# ------------------------------------------------------------------------------------ independent references


def slaney_filterbank_reference(sr, n_fft, n_mels, fmin, fmax):
    """The Slaney mel filterbank straight from its definition, one filter and one FFT bin at a time."""

    def hz_to_mel(f):
        return 3 * f / 200 if f < 1000 else 15 + 27 * math.log(f / 1000) / math.log(6.4)

    def mel_to_hz(m):
        return 200 * m / 3 if m < 15 else 1000 * math.exp((m - 15) * math.log(6.4) / 27)

    lo, hi = hz_to_mel(fmin), hz_to_mel(fmax)
    edges = [mel_to_hz(lo + (hi - lo) * i / (n_mels + 1)) for i in range(n_mels + 2)]
    weights = np.zeros((n_mels, n_fft // 2 + 1))
    for m in range(n_mels):
        left, centre, right = edges[m : m + 3]
        for k in range(n_fft // 2 + 1):
            f = k * sr / n_fft
            if left < f <= centre:
                weights[m, k] = (f - left) / (centre - left)
            elif centre < f < right:
                weights[m, k] = (right - f) / (right - centre)
            weights[m, k] *= 2 / (right - left)  # slaney: unit area in Hz
    return weights


def log_mel_reference(x, cfg, pad):
    """TacotronSTFT in numpy: clip, reflect-pad, Hann-windowed frames, |rfft|, mel, log(max(., 1e-5))."""
    x = np.pad(np.clip(np.asarray(x, dtype=np.float64), -1, 1), pad, mode="reflect")
    n = np.arange(cfg.win_length)
    window = np.zeros(cfg.n_fft)
    start = (cfg.n_fft - cfg.win_length) // 2
    window[start : start + cfg.win_length] = 0.5 - 0.5 * np.cos(2 * np.pi * n / cfg.win_length)  # periodic Hann
    frames = 1 + (len(x) - cfg.n_fft) // cfg.hop_length
    starts = [i * cfg.hop_length for i in range(frames)]
    magnitude = np.abs(np.stack([np.fft.rfft(x[s : s + cfg.n_fft] * window) for s in starts]))
    fb = slaney_filterbank_reference(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.fmax)
    return np.log(np.maximum(magnitude @ fb.T, 1e-5))  # (frames, n_mels)


def tone(freq, seconds, sr, amplitude=0.5):
    t = torch.arange(round(seconds * sr), dtype=torch.float64) / sr
    return amplitude * torch.sin(2 * math.pi * freq * t)


def rich_signal(seconds, sr, seed=0):
    """A tone, a chirp and some noise: every mel bin well above the log floor."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(round(seconds * sr), dtype=torch.float64) / sr
    chirp = torch.sin(2 * math.pi * (100 * t + 0.5 * (sr / 2 - 100) / seconds * t**2))
    return 0.4 * torch.sin(2 * math.pi * 440 * t) + 0.2 * chirp + 0.05 * torch.randn(len(t), generator=g)


# ------------------------------------------------------------------------------------------- mel filterbank


@pytest.mark.parametrize("cfg", [MelConfig(), HIFIGAN_22K], ids=["audioldm_16k_64", "hifigan_22k_80"])
def test_mel_filterbank_equals_the_slaney_formula_computed_directly(cfg):
    fb = audio.mel_filterbank(cfg)
    assert fb.shape == (cfg.n_mels, cfg.n_fft // 2 + 1) and fb.dtype == torch.float32
    ref = slaney_filterbank_reference(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.fmax)
    np.testing.assert_allclose(fb.numpy(), ref, rtol=2e-6, atol=1e-9)


def test_mel_filterbank_matches_published_librosa_values():
    # huggingface/transformers tests/utils/test_audio_utils.py::test_mel_filter_bank_slaney_norm, checked there
    # against librosa: 16 FFT bins from 0 to 2000 Hz (sr 4000, n_fft 30), 4 mels, fmin 0, fmax 2000, slaney
    expected = np.array([
        [0.0, 1.19217795e-03, 2.38435591e-03, 2.40387905e-03, 1.21170110e-03, 1.95231437e-05, 0.0, 0.0, 0.0, 0.0,
         0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 5.86232616e-04, 1.77821783e-03, 2.97020305e-03, 1.81763684e-03, 6.26036972e-04, 0.0, 0.0,
         0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.04857612e-03, 2.11460963e-03, 2.26505954e-03, 1.40202503e-03,
         5.38990521e-04, 0.0, 0.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.07332945e-04, 9.54861093e-04, 1.60238924e-03, 1.83458185e-03,
         1.37593638e-03, 9.17290923e-04, 4.58645462e-04, 0.0],
    ])  # fmt: skip
    cfg = MelConfig(sample_rate=4000, n_fft=30, hop_length=10, win_length=30, n_mels=4, fmin=0, fmax=2000)
    np.testing.assert_allclose(audio.mel_filterbank(cfg).numpy(), expected, rtol=1e-6, atol=1e-10)


# ------------------------------------------------------------------------------------------------- log-mel


@pytest.mark.parametrize(
    "cfg, center",
    [(MelConfig(), True), (MelConfig(), False), (HIFIGAN_22K, False)],
    ids=["audioldm_tacotron_framing", "audioldm_hifigan_framing", "hifigan_22k"],
)
def test_log_mel_equals_a_numpy_reference_of_the_recipe(cfg, center):
    x = rich_signal(1.0, cfg.sample_rate)
    pad = cfg.n_fft // 2 if center else (cfg.n_fft - cfg.hop_length) // 2
    ref = log_mel_reference(x.numpy(), cfg, pad)
    mel64 = audio.log_mel(x[None], cfg, center=center)[0]
    np.testing.assert_allclose(mel64.numpy(), ref, atol=1e-6)  # float64 in; the filters are float32 like librosa's
    mel32 = audio.log_mel(x.float()[None], cfg, center=center)[0]
    assert mel32.dtype == torch.float32
    np.testing.assert_allclose(mel32.numpy(), ref, atol=2e-4)


def test_log_mel_clips_the_waveform_and_floors_the_log():
    x = rich_signal(0.5, 16000)
    np.testing.assert_array_equal(audio.log_mel(3 * x), audio.log_mel((3 * x).clamp(-1, 1)))
    silence = audio.log_mel(torch.zeros(1, 8000))
    assert torch.all(silence == math.log(1e-5))


def test_log_mel_puts_a_tone_in_the_mel_bin_whose_centre_is_nearest():
    cfg = MelConfig()
    centres = audio.mel_to_hz(np.linspace(audio.hz_to_mel(cfg.fmin), audio.hz_to_mel(cfg.fmax), cfg.n_mels + 2))[1:-1]
    for freq in (250.0, 1000.0, 3000.0, 6000.0):
        mel = audio.log_mel(tone(freq, 1.0, cfg.sample_rate).float())
        loudest = mel[10:-10].mean(0).argmax().item()
        assert loudest == np.abs(centres - freq).argmin(), (freq, loudest)


def test_log_mel_frame_counts_follow_the_padding():
    x = torch.zeros(2, audio.TARGET_SAMPLES)
    assert audio.log_mel(x).shape == (2, audio.TARGET_FRAMES + 1, 64)  # n_fft/2 padding: samples // hop + 1
    assert audio.log_mel(x, center=False).shape == (2, audio.TARGET_FRAMES, 64)  # (n_fft - hop)/2: samples // hop
    assert audio.log_mel(x[0]).shape == (audio.TARGET_FRAMES + 1, 64)


def test_waveform_to_mel_of_10_24_s_at_16k_gives_1024_frames_like_audioldm():
    assert audio.TARGET_SAMPLES == 163840 and audio.TARGET_SAMPLES / audio.SAMPLE_RATE == 10.24
    for seconds in (3.0, 10.24, 12.0):  # shorter (zero-padded), exact, longer (cropped)
        x = rich_signal(seconds, 16000, seed=1).float()
        mel = audio.waveform_to_mel(x[None], audio.TARGET_FRAMES)
        assert mel.shape == (1, 1024, 64)
    # the recipe step by step in numpy: crop, remove mean, peak 0.5, zero-pad, TacotronSTFT, keep 1024 frames
    x = rich_signal(3.0, 16000, seed=2).numpy() + 0.1
    segment = x - x.mean()
    segment = 0.5 * segment / (np.abs(segment).max() + 1e-8)
    segment = np.concatenate([segment, np.zeros(audio.TARGET_SAMPLES - len(segment))])
    ref = log_mel_reference(segment, MelConfig(), pad=512)[:1024]
    mel = audio.waveform_to_mel(torch.from_numpy(x)[None], audio.TARGET_FRAMES)[0]
    np.testing.assert_allclose(mel.numpy(), ref, atol=1e-6)


def test_waveform_to_mel_follows_the_vocoder_config_at_22k():
    x = rich_signal(2.0, 22050).float()
    mel = audio.waveform_to_mel(x, cfg=HIFIGAN_22K)
    assert mel.shape == (22050 * 2 // 256, 80)


def test_normalize_waveform_removes_the_mean_and_sets_the_peak_to_half():
    x = torch.stack([tone(100, 0.1, 16000) + 0.3, torch.zeros(1600, dtype=torch.float64)])
    y = audio.normalize_waveform(x)
    assert torch.allclose(y[0].mean(), torch.tensor(0.0, dtype=torch.float64), atol=1e-12)
    assert abs(y[0].abs().max().item() - 0.5) < 1e-7
    assert torch.all(y[1] == 0)  # silence stays silence, no NaN


def test_mel_config_from_vocoder_configs():
    diffusers_speecht5 = {"model_in_dim": 64, "sampling_rate": 16000, "upsample_rates": [5, 4, 2, 2, 2]}
    assert MelConfig.from_vocoder_config(diffusers_speecht5) == MelConfig()
    hifigan_v1 = {"num_mels": 80, "sampling_rate": 22050, "upsample_rates": [8, 8, 2, 2], "n_fft": 1024,
                  "hop_size": 256, "win_size": 1024, "fmin": 0, "fmax": 8000}  # fmt: skip
    assert MelConfig.from_vocoder_config(hifigan_v1) == HIFIGAN_22K
    no_fft_keys = {"model_in_dim": 80, "sampling_rate": 22050, "upsample_rates": [8, 8, 2, 2]}
    assert MelConfig.from_vocoder_config(no_fft_keys) == MelConfig(22050, 1024, 256, 1024, 80, 0.0, 11025.0)
    with pytest.raises(InvalidArgument, match="sampling_rate"):
        MelConfig.from_vocoder_config({"model_in_dim": 64, "upsample_rates": [5, 4, 2, 2, 2]})
    with pytest.raises(InvalidArgument, match="hop_size"):
        MelConfig.from_vocoder_config({**hifigan_v1, "hop_size": 160})
    with pytest.raises(InvalidArgument, match="fmax"):
        MelConfig(fmax=9000)


# ------------------------------------------------------------------------------------------------ resample


def dominant_frequency(x, sr):
    spectrum = np.abs(np.fft.rfft(x.double().numpy() * np.hanning(len(x))))
    return np.fft.rfftfreq(len(x), 1 / sr)[spectrum.argmax()]


@pytest.mark.parametrize("orig_sr", [48000, 44100, 22050, 8000])
def test_resample_keeps_a_sines_frequency_and_amplitude(orig_sr):
    y = audio.resample(tone(1000, 2.0, orig_sr, amplitude=0.5).float(), orig_sr, 16000)
    assert y.shape == (32000,) and y.dtype == torch.float32
    expected = tone(1000, 2.0, 16000, amplitude=0.5)
    inner = slice(1600, -1600)  # the edges see zeros beyond the signal
    assert (y[inner].double() - expected[inner]).abs().max() < 1e-5
    assert dominant_frequency(y, 16000) == 1000


def test_resample_to_the_same_rate_is_the_identity():
    x = torch.randn(3, 1000)
    assert audio.resample(x, 16000, 16000) is x


def test_resample_removes_content_above_the_new_nyquist():
    for orig_sr, freq in [(48000, 12000), (48000, 8300), (22050, 10000)]:
        wanted = tone(1000, 1.0, orig_sr, amplitude=0.3)
        y = audio.resample((wanted + tone(freq, 1.0, orig_sr, amplitude=0.5)).float(), orig_sr, 16000)
        leaked = y - audio.resample(wanted.float(), orig_sr, 16000)
        assert leaked[800:-800].abs().max() < 1e-4, (orig_sr, freq)  # below -74 dBFS; aliases would be ~0.5


def test_resample_batches_and_lengths():
    x = torch.randn(2, 3, 44100)
    assert audio.resample(x, 44100, 16000).shape == (2, 3, 16000)
    assert audio.resample(torch.randn(1001), 16000, 48000).shape == (3003,)
    assert audio.resample(torch.randn(1001), 48000, 16000).shape == (334,)  # ceil


@pytest.mark.parametrize("orig_sr, new_sr", [(7919, 16000), (16000, 7919), (7919, 22050), (48001, 16000)])
def test_resample_handles_co_prime_rates(orig_sr, new_sr):
    """Rates whose polyphase bank would be huge (7919 → 16000: 16,000 phases) go through the direct evaluation:
    a sine below both Nyquists keeps its frequency and amplitude, a sine above the new Nyquist is removed."""
    y = audio.resample(tone(1000, 1.0, orig_sr, amplitude=0.5).float(), orig_sr, new_sr)
    assert y.shape == (new_sr,) and y.dtype == torch.float32
    expected = tone(1000, 1.0, new_sr, amplitude=0.5)
    inner = slice(new_sr // 10, -new_sr // 10)
    assert (y[inner].double() - expected[inner]).abs().max() < 1e-5
    above = 0.6 * new_sr if orig_sr > new_sr else None  # 1.2 × the new Nyquist, below the old one
    if above:
        leaked = audio.resample(tone(above, 1.0, orig_sr, amplitude=0.5).float(), orig_sr, new_sr)
        assert leaked[inner].abs().max() < 1e-4


@pytest.mark.parametrize("bank", [100_000, 0])
def test_direct_resampling_equals_the_polyphase_convolution(monkeypatch, bank):
    """The direct path (with a bank of phases, and computing taps per output) is the same filter as the conv1d
    path: forced on a rate pair the conv1d path handles, it gives the same samples to float32 rounding."""
    x = torch.randn(2, 3, 4410, generator=torch.Generator().manual_seed(0))
    reference = audio.resample(x, 44100, 16000)
    monkeypatch.setattr(audio, "RESAMPLE_MAX_TAPS", bank)  # 44100:16000 has a 130,400-tap bank
    monkeypatch.setattr(audio, "RESAMPLE_CHUNK", 5000)  # several chunks
    direct = audio.resample(x, 44100, 16000)
    assert direct.shape == reference.shape == (2, 3, 1600)
    assert (direct - reference).abs().max() < 1e-5 * reference.abs().max()


def test_resample_refuses_rates_that_are_not_positive_whole_numbers():
    for orig, new in [(0, 16000), (16000, -1), (16000.5, 16000), (float("nan"), 16000), (True, 16000)]:
        with pytest.raises(InvalidArgument, match="rates must be positive integers"):
            audio.resample(torch.zeros(10), orig, new)


# -------------------------------------------------------------------------------------------------- levels


def test_peak_normalize_sets_each_rows_peak_and_keeps_silence():
    x = torch.stack([0.1 * torch.randn(1000), torch.zeros(1000)])
    y = audio.peak_normalize(x, peak_dbfs=-6.0)
    assert abs(y[0].abs().max().item() - 10 ** (-6 / 20)) < 1e-6
    assert torch.all(y[1] == 0)


# ---------------------------------------------------------------------------------------------------- files

METADATA = {
    "prompt": "a dog barking in the rain, é ü 雨 🐕",
    "negative_prompt": None,
    "model": "cvssp/audioldm2",
    "seed": 1234,
    "steps": 200,
    "guidance": 3.5,
    "sampler": "ddim",
    "tags": ["dog", "rain"],
    "nested": {"eta": 0.0, "ok": True},
}


@pytest.mark.parametrize("extension", [".wav", ".flac"])
def test_write_then_read_round_trips_samples_and_metadata(tmp_path, extension):
    x = 0.9 * rich_signal(1.0, 16000).float() / 1.1
    path = tmp_path / f"dog{extension}"
    audio.write(path, x, 16000, METADATA)
    assert soundfile.info(str(path)).subtype == "PCM_16"
    assert soundfile.info(str(path)).format == extension[1:].upper()
    y = audio.read(path, 16000)
    assert y.shape == x.shape and y.dtype == torch.float32
    assert (y - x).abs().max() <= 0.5 / 32768 + 1e-7  # 16-bit quantisation, no gain error
    assert audio.read_metadata(path) == METADATA
    assert os.listdir(tmp_path) == [path.name]


def test_write_clips_to_full_scale_and_accepts_numpy(tmp_path):
    path = tmp_path / "loud.wav"
    audio.write(path, np.array([2.0, -2.0, 0.5, 1.0, -1.0]), 16000)
    y = audio.read(path, 16000)
    np.testing.assert_allclose(y.numpy(), [32767 / 32768, -1.0, 0.5, 32767 / 32768, -1.0])
    assert audio.read_metadata(path) == {}


def test_read_downmixes_to_mono_and_resamples(tmp_path):
    left, right = tone(1000, 1.0, 48000, 0.4), tone(1000, 1.0, 48000, 0.2)
    path = tmp_path / "stereo.flac"
    audio.write(path, torch.stack([left, right]), 48000)
    assert soundfile.info(str(path)).channels == 2
    y = audio.read(path, 16000)
    assert y.shape == (16000,)
    assert abs(y[1600:-1600].abs().max().item() - 0.3) < 1e-3
    assert dominant_frequency(y, 16000) == 1000


@pytest.mark.parametrize("fmt, extension", [("OGG", ".ogg"), ("MP3", ".mp3")])
def test_read_decodes_ogg_and_mp3(tmp_path, fmt, extension):
    if fmt not in soundfile.available_formats():
        pytest.skip(f"this libsndfile ({soundfile.__libsndfile_version__}) has no {fmt}")
    path = tmp_path / f"tone{extension}"
    soundfile.write(str(path), tone(440, 1.0, 44100, 0.5).numpy(), 44100, format=fmt)
    y = audio.read(path, 16000)
    assert abs(len(y) - 16000) < 1200  # lossy codecs add a little padding
    assert abs(dominant_frequency(y, 16000) - 440) < 2


class Boom(OSError):
    pass


@pytest.mark.parametrize("extension", [".wav", ".flac"])
def test_a_failing_write_leaves_no_file_and_no_temp_file(tmp_path, monkeypatch, extension):
    real_write = soundfile.SoundFile.write

    def write_half_then_fail(self, data):
        real_write(self, data[: len(data) // 2])
        raise Boom(28, "No space left on device")

    monkeypatch.setattr(soundfile.SoundFile, "write", write_half_then_fail)
    path = tmp_path / f"out{extension}"
    with pytest.raises(AudioFileError, match=f"out{extension}.*No space left"):
        audio.write(path, torch.zeros(16000), 16000, {"prompt": "x"})
    assert os.listdir(tmp_path) == []


def test_an_interrupted_write_leaves_no_temp_file_and_keeps_the_interrupt(tmp_path, monkeypatch):
    def interrupt(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        audio.write(tmp_path / "out.wav", torch.zeros(16000), 16000)
    assert os.listdir(tmp_path) == []


def test_a_failed_overwrite_keeps_the_existing_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "keep.flac"
    audio.write(path, tone(440, 0.5, 16000).float(), 16000, {"prompt": "original"})
    before = path.read_bytes()

    def fail(*args, **kwargs):
        raise Boom(5, "Input/output error")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(AudioFileError, match="keep.flac"):
        audio.write(path, torch.zeros(16000), 16000, {"prompt": "replacement"}, overwrite=True)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["keep.flac"]
    assert audio.read_metadata(path) == {"prompt": "original"}


def assert_one_line_naming(error, name):
    message = str(error.value)
    assert name in message and "\n" not in message, message


def test_read_errors_name_the_file_and_the_problem(tmp_path):
    with pytest.raises(AudioFileError, match="no such file") as e:
        audio.read(tmp_path / "missing.wav")
    assert_one_line_naming(e, "missing.wav")

    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage" + os.urandom(64))
    with pytest.raises(AudioFileError, match="unreadable or corrupt") as e:
        audio.read(corrupt)
    assert_one_line_naming(e, "corrupt.wav")

    not_audio = tmp_path / "notes.flac"
    not_audio.write_text("this is not audio")
    with pytest.raises(AudioFileError, match="unreadable or corrupt") as e:
        audio.read(not_audio)
    assert_one_line_naming(e, "notes.flac")

    empty = tmp_path / "empty.wav"
    soundfile.write(str(empty), np.zeros(0, dtype=np.int16), 16000)
    with pytest.raises(AudioFileError, match="no audio") as e:
        audio.read(empty)
    assert_one_line_naming(e, "empty.wav")

    zero_bytes = tmp_path / "zero.wav"
    zero_bytes.write_bytes(b"")
    with pytest.raises(AudioFileError, match="unreadable or corrupt") as e:
        audio.read(zero_bytes)
    assert_one_line_naming(e, "zero.wav")

    with pytest.raises(AudioFileError, match="folder") as e:
        audio.read(tmp_path)
    assert_one_line_naming(e, tmp_path.name)

    with pytest.raises(AudioFileError, match="no such file") as e:
        audio.read_metadata(tmp_path / "gone.flac")
    assert_one_line_naming(e, "gone.flac")


def test_a_prime_rate_file_is_read_at_the_models_rate(tmp_path):
    path = tmp_path / "odd.wav"
    soundfile.write(str(path), tone(440, 0.5, 7919).numpy(), 7919)
    y = audio.read(path, 16000)
    assert y.shape == (math.ceil(3960 * 16000 / 7919),)  # 3960 samples in
    assert abs(dominant_frequency(y, 16000) - 440) < 2  # within a bin of 2 Hz


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_fifo_or_device_input_is_refused_without_blocking(tmp_path, kind):
    """Opening a FIFO for reading waits for a writer, and /dev/zero never ends: both are refused at once."""
    if kind == "fifo":
        if not hasattr(os, "mkfifo"):
            pytest.skip("no FIFOs on this platform")
        path = tmp_path / "pipe.wav"
        os.mkfifo(path)
    else:
        path = "/dev/zero"
        if not os.path.exists(path):
            pytest.skip("no /dev/zero here")
    outcome = []

    def attempt():
        for reader in (audio.read, audio.read_metadata):
            try:
                reader(path)
                outcome.append("read")
            except AudioFileError as e:
                outcome.append(str(e))

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive(), "reading blocked"
    assert len(outcome) == 2
    for message in outcome:
        assert "not an audio file" in message and str(path) in message and "\n" not in message
        assert ("FIFO" if kind == "fifo" else "device") in message


def test_a_header_claiming_hours_of_audio_is_refused_before_decoding(tmp_path):
    path = tmp_path / "one-hertz.wav"  # 20,000 samples at 1 Hz: 5.6 hours, 320 million samples at 16 kHz
    soundfile.write(str(path), np.zeros(20000, dtype=np.int16), 1)
    with pytest.raises(AudioFileError, match="longer than the 14400 s") as e:
        audio.read(path)
    assert_one_line_naming(e, "one-hertz.wav")


def test_write_errors_name_the_file_and_the_problem(tmp_path, monkeypatch):
    x = torch.zeros(1600)
    with pytest.raises(AudioFileError, match=r"'\.mp3'.*\.wav or \.flac") as e:
        audio.write(tmp_path / "song.mp3", x, 16000)
    assert_one_line_naming(e, "song.mp3")

    with pytest.raises(AudioFileError, match="does not exist") as e:
        audio.write(tmp_path / "no_such_folder" / "a.wav", x, 16000)
    assert_one_line_naming(e, "no_such_folder")

    (tmp_path / "plain_file").write_text("")
    with pytest.raises(AudioFileError, match="is not a folder") as e:
        audio.write(tmp_path / "plain_file" / "a.wav", x, 16000)
    assert_one_line_naming(e, "plain_file")

    with pytest.raises(AudioFileError, match="empty|nothing to write") as e:
        audio.write(tmp_path / "empty.wav", torch.zeros(0), 16000)
    assert_one_line_naming(e, "empty.wav")

    with pytest.raises(AudioFileError, match="NaN") as e:
        audio.write(tmp_path / "nan.wav", torch.full((10,), float("nan")), 16000)
    assert_one_line_naming(e, "nan.wav")

    real_open = os.open

    def deny_temp_files(path, *args, **kwargs):  # root ignores folder permissions, so deny like a read-only folder
        if str(path).endswith(".tmp"):
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", deny_temp_files)
    with pytest.raises(AudioFileError, match="permission denied") as e:
        audio.write(tmp_path / "locked.wav", x, 16000)
    assert_one_line_naming(e, "locked.wav")
    assert sorted(os.listdir(tmp_path)) == ["plain_file"]


def test_wav_metadata_longer_than_a_riff_comment_is_refused_and_flac_keeps_it(tmp_path):
    metadata = {"prompt": "rain on a tin roof, " * 150}
    assert len(json.dumps(metadata)) > audio.WAV_COMMENT_LIMIT
    with pytest.raises(AudioFileError, match="write .flac") as e:
        audio.write(tmp_path / "long.wav", torch.zeros(1600), 16000, metadata)
    assert_one_line_naming(e, "long.wav")
    assert os.listdir(tmp_path) == []
    audio.write(tmp_path / "long.flac", torch.zeros(1600), 16000, metadata)
    assert audio.read_metadata(tmp_path / "long.flac") == metadata


def test_metadata_accepts_numpy_and_torch_scalars(tmp_path):
    path = tmp_path / "seeded.wav"
    audio.write(path, torch.zeros(1600), 16000, {"seed": np.int64(7), "guidance": torch.tensor(2.5)})
    assert audio.read_metadata(path) == {"seed": 7, "guidance": 2.5}
