"""Audio in, audio out: mel extraction, reconstruction, style transfer, inpainting, super-resolution, continuation,
for every family, from Python and from the CLI, and the bad-input errors."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile
import torch

import soundsmith
from soundsmith import audio, edit, longform
from soundsmith.audio import MelConfig, read_metadata
from soundsmith.cli import main
from soundsmith.errors import AudioFileError, InvalidArgument
from soundsmith.models.vocoder import VocoderConfig
from test_audio import log_mel_reference, rich_signal, tone

FAMILIES = ["tiny_audioldm", "tiny_musicldm", "tiny_audioldm2"]
SECONDS = 0.256  # 4096 samples: 1024 frames of the tiny 4-sample-hop vocoder, 512 latent rows
AUDIOLDM_S_VOCODER = dict(model_in_dim=64, sampling_rate=16000, upsample_initial_channel=1024,
                          upsample_rates=[5, 4, 2, 2, 2], upsample_kernel_sizes=[16, 16, 8, 4, 4],
                          resblock_kernel_sizes=[3, 7, 11], resblock_dilation_sizes=[[1, 3, 5]] * 3)


@pytest.fixture(scope="module", params=FAMILIES)
def pipe(request):
    return soundsmith.load(request.getfixturevalue(request.param), device="cpu")


@pytest.fixture(scope="module")
def audioldm(tiny_audioldm):
    return soundsmith.load(tiny_audioldm, device="cpu")


def signal(seconds=SECONDS, sr=16000):
    return rich_signal(seconds, sr).float()


def lowpassed(x, cutoff, sr=16000):
    spectrum = torch.fft.rfft(x.double())
    spectrum[torch.fft.rfftfreq(len(x), 1 / sr) > cutoff] = 0
    return torch.fft.irfft(spectrum, len(x)).float()


# --------------------------------------------------------------------------------------------- audio in


def test_input_mel_of_a_tone_file_equals_the_numpy_recipe(tmp_path):
    # the AudioLDM-S checkpoint's vocoder config gives the family recipe; a stereo 16 kHz tone file goes through
    # read (downmix), normalisation, padding and the TacotronSTFT log-mel, compared with test_audio's numpy reference
    checkpoint = SimpleNamespace(vocoder=SimpleNamespace(config=VocoderConfig.from_dict(AUDIOLDM_S_VOCODER)),
                                 vae_scale_factor=4, sample_rate=16000)
    assert edit.mel_config(checkpoint) == MelConfig()
    x = tone(440, 1.003, 16000, amplitude=0.3).numpy() + 0.05
    path = tmp_path / "tone.wav"
    soundfile.write(path, np.stack([x, x], axis=1), 16000, subtype="FLOAT")
    mel = edit.input_mel(checkpoint, audio.read(path, 16000))[0]
    frames = 104  # ceil(16048 samples / 160) = 101 frames, rounded up to the VAE factor 4
    segment = x - x.mean()
    segment = np.concatenate([0.5 * segment / (np.abs(segment).max() + 1e-8), np.zeros(frames * 160 - len(x))])
    reference = log_mel_reference(segment, MelConfig(), pad=512)[:frames]
    assert mel.shape == (frames, 64)
    strong = reference > -8  # float32 STFT against a float64 reference: bins ~90 dB under the tone differ by ~1e-3
    np.testing.assert_allclose(mel.numpy()[strong], reference[strong], atol=2e-4)
    np.testing.assert_allclose(mel.numpy(), reference, atol=3e-3)


def test_files_arrays_and_rates_all_arrive_as_mono_at_the_model_rate(audioldm, tmp_path):
    x = signal()
    path = tmp_path / "in.flac"
    soundfile.write(path, np.stack([x.numpy(), x.numpy()], axis=1), 16000)
    from_file = edit.load_waveform(audioldm, path)
    from_stereo_array = edit.load_waveform(audioldm, torch.stack([x, x]))
    torch.testing.assert_close(from_file, x, atol=1e-4, rtol=0)
    torch.testing.assert_close(from_stereo_array, x)
    at_48k = edit.load_waveform(audioldm, audio.resample(x, 16000, 48000).numpy(), sample_rate=48000)
    assert len(at_48k) == len(x)


@pytest.mark.parametrize("suffix, subtype, tolerance", [("ogg", "VORBIS", 0.1), ("mp3", "MPEG_LAYER_III", 0.2)])
def test_compressed_files_are_read(audioldm, tmp_path, suffix, subtype, tolerance):
    x = audio.resample(signal(1.0), 16000, 44100)
    path = tmp_path / f"in.{suffix}"
    soundfile.write(path, np.stack([x.numpy(), x.numpy()], axis=1), 44100, subtype=subtype)
    waveform = edit.load_waveform(audioldm, path)
    reference = audio.resample(x, 44100, 16000)
    n = min(len(waveform), len(reference))
    assert abs(len(waveform) - len(reference)) < 0.05 * 16000  # codecs pad a frame at most
    lag = max(range(-2000, 2001), key=lambda k: float((waveform[max(k, 0):n + min(k, 0)]
                                                      * reference[max(-k, 0):n - max(k, 0)]).sum()))
    a, b = waveform[max(lag, 0):n + min(lag, 0)], reference[max(-lag, 0):n - max(lag, 0)]
    error = float((a - b).norm() / b.norm())
    assert error < tolerance


def test_reconstruct_is_encode_decode_vocode_at_the_input_length(pipe):
    x = signal()
    out = edit.reconstruct(pipe, x)
    assert out.audios.shape == (1, len(x)) and out.sample_rate == 16000
    latents = edit.encode(pipe, x)
    assert latents.shape[-2] == 512
    direct = pipe.mel_to_waveform(pipe.latents_to_mel(latents))[:, :len(x)]
    np.testing.assert_array_equal(out.audios, direct.numpy())


# ------------------------------------------------------------------------------------------------ transfer


def test_transfer_strength_0_is_the_reconstruction(pipe):
    x = signal()
    out = edit.transfer(pipe, x, "a dog barking", strength=0.0, num_inference_steps=4, seed=0)
    np.testing.assert_array_equal(out.audios, edit.reconstruct(pipe, x).audios)


def test_transfer_strength_1_is_text_to_audio_with_the_same_noise(pipe):
    x = signal()
    out = edit.transfer(pipe, x, "a dog barking", strength=1.0, num_inference_steps=3, seed=7)
    reference = pipe("a dog barking", audio_length_in_s=SECONDS, num_inference_steps=3, seed=7)
    np.testing.assert_array_equal(out.audios, reference.audios)


def test_transfer_in_between_moves_away_from_the_input_with_strength(audioldm):
    x = signal()
    start = edit.encode(audioldm, x)
    distance = [float((edit.transfer(audioldm, x, "rain", strength=s, num_inference_steps=5, seed=0,
                                     output_type="latent").audios - start).norm()) for s in (0.0, 0.3, 0.7, 1.0)]
    assert distance[0] == 0.0 and distance == sorted(distance)


# ---------------------------------------------------------------------------------------------- inpainting


def test_inpainting_keeps_the_unmasked_latents_and_changes_the_masked_ones(pipe):
    x = signal()
    spans = [(0.05, 0.08), (0.2, 0.21)]  # rows 100-160 and 400-420 at 0.5 ms per row
    out = edit.inpaint(pipe, x, "a dog barking", spans, num_inference_steps=2, seed=0, output_type="latent").audios
    start = edit.encode(pipe, x)
    changed = (out - start).abs().amax(dim=(0, 1, 3)) > 0
    expected = torch.zeros(512, dtype=torch.bool)
    expected[100:160] = expected[400:420] = True
    assert torch.equal(changed, expected)
    assert out.shape == start.shape


def test_inpainting_seams_change_no_more_than_the_regenerated_audio_does(audioldm):
    # a click at a seam is a frame-to-frame change larger than any inside the regenerated spans; the kept region
    # (a reconstruction of a smooth tone) barely changes, the seams sit in between
    x, spans = signal(), [(0.0768, 0.1152), (0.1792, 0.2048)]  # rows 154-231 and 358-410
    latents = edit.inpaint(audioldm, x, "a dog barking", spans, num_inference_steps=2, seed=0,
                           output_type="latent").audios
    mel = audioldm.latents_to_mel(latents)[0]
    flux = (mel[1:] - mel[:-1]).norm(dim=-1)
    f, row = audioldm.vae_scale_factor, audioldm.row_seconds
    seam, regenerated = torch.zeros(len(flux), dtype=torch.bool), torch.zeros(len(flux), dtype=torch.bool)
    for start, end in spans:
        first, last = round(start / row), round(end / row)
        regenerated[first * f:last * f - 1] = True
        for edge in (first, last):
            seam[edge * f - 3:edge * f + 2] = True
    regenerated &= ~seam
    assert flux[seam].max() <= flux[regenerated].max()
    assert flux[seam].mean() <= flux[regenerated].mean()
    waveform = audioldm.mel_to_waveform(mel[None])[0]
    step = (waveform[1:] - waveform[:-1]).abs()
    near = torch.zeros(len(step), dtype=torch.bool)
    for start, end in spans:
        for edge in (round(start * 16000), round(end * 16000)):
            near[edge - 8:edge + 8] = True
    assert step[near].max() <= step[~near].max()


# -------------------------------------------------------------------------------------------- super-resolution


def test_upscale_keeps_the_low_band_and_generates_the_high_band(pipe):
    x = lowpassed(signal(), 3800.0)
    assert abs(edit.detect_cutoff(x, 16000) - 3800) <= 50
    out = torch.from_numpy(edit.upscale(pipe, x, "a piano melody", num_inference_steps=2, seed=0).audios[0])
    assert out.shape == x.shape
    cfg = MelConfig()  # analysed with the family's 64-bin recipe
    mel_out = audio.log_mel(out.double(), cfg)
    mel_in = audio.log_mel(audio.normalize_waveform(x[None])[0].double(), cfg)
    edges = audio.mel_to_hz(np.linspace(audio.hz_to_mel(cfg.fmin), audio.hz_to_mel(cfg.fmax), cfg.n_mels + 2))
    low, high = edges[2:] <= 3200, edges[:-2] >= 4200
    mel_out, mel_in = mel_out[4:-4], mel_in[4:-4]  # the STFT's reflect padding smears the high band at the ends
    assert float((mel_out[:, low] - mel_in[:, low]).abs().max()) < 0.01
    assert float(mel_in[:, high].mean()) < -9  # nothing there: the log floor is -11.5
    assert float(mel_out[:, high].mean()) > float(mel_in[:, high].mean()) + 3


def test_upscale_regenerates_the_latent_columns_above_the_cutoff(audioldm):
    x = lowpassed(signal(), 4000.0)
    out = edit.upscale(audioldm, x, num_inference_steps=2, seed=0, cutoff=4010, output_type="latent").audios
    changed = (out - edit.encode(audioldm, x)).abs().amax(dim=(0, 1, 2)) > 0
    assert changed.tolist() == [False, False, False, True]  # the tiny 8-bin mel: columns end at 1006, 2008, 4008 Hz


# ---------------------------------------------------------------------------------------------- continuation


def test_extend_continues_the_clip_and_keeps_its_latents(pipe):
    x = signal()
    out = edit.extend(pipe, x, "a dog barking", 0.1, num_inference_steps=2, seed=0)
    assert out.audios.shape == (1, len(x) + 1600)
    latents = edit.extend(pipe, x, "a dog barking", 0.1, num_inference_steps=2, seed=0, output_type="latent").audios
    assert latents.shape[-2] == 712
    torch.testing.assert_close(latents[:, :, :512], edit.encode(pipe, x), rtol=0, atol=0)


def test_extend_of_long_audio_denoises_only_the_tail(tiny_10ms):
    pipe = soundsmith.load(tiny_10ms, device="cpu")
    x = signal(21.0)
    latents = edit.extend(pipe, x, "a dog barking", 1.0, num_inference_steps=2, seed=0, output_type="latent").audios
    assert latents.shape[-2] == 1100  # 22 s at 20 ms per row
    torch.testing.assert_close(latents[:, :, :1050], edit.encode(pipe, x), rtol=0, atol=0)
    assert bool((latents[:, :, 1050:] != 0).all())


# ------------------------------------------------------------------------------------------------------ CLI


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def input_wav(tmp_path):
    path = tmp_path / "in.wav"
    soundfile.write(path, signal().numpy(), 16000)
    return path


@pytest.mark.parametrize("command, extra, samples", [
    ("reconstruct", [], 4096),
    ("transfer", ["a dog barking", "--strength", "0.6"], 4096),
    ("inpaint", ["a dog barking", "--mask", "0.05-0.08", "--mask", "0.2-0.21"], 4096),
    ("upscale", ["--cutoff", "3000"], 4096),
    ("extend", ["rain on a roof", "--seconds", "0.1"], 5696),
])
def test_cli_round_trip(capsys, tiny_audioldm, input_wav, tmp_path, command, extra, samples):
    out = tmp_path / f"{command}.wav"
    steps = ["--steps", "2", "--seed", "3"] if command != "reconstruct" else []
    code, stdout, stderr = run(capsys, command, input_wav, *extra, "-m", tiny_audioldm, *steps, "-o", out)
    assert code == 0, stderr
    assert stdout.strip() == str(out)
    assert soundfile.info(out).frames == samples
    meta = read_metadata(out)
    assert meta["command"] == command and meta["input"] == str(input_wav) and meta["model"] == str(tiny_audioldm)
    if command != "reconstruct":
        assert meta["seed"] == 3 and meta["steps"] == 2
        again = tmp_path / f"{command}-again.wav"
        assert run(capsys, command, input_wav, *extra, "-m", tiny_audioldm, *steps, "-o", again)[0] == 0
        np.testing.assert_array_equal(soundfile.read(out)[0], soundfile.read(again)[0])


@pytest.mark.parametrize("family", ["tiny_musicldm", "tiny_audioldm2"])
def test_cli_edits_with_every_family(capsys, request, input_wav, tmp_path, family):
    folder = request.getfixturevalue(family)
    for command, extra in [("transfer", ["a dog barking", "--strength", "0.5"]),
                           ("inpaint", ["a dog barking", "--mask", "0.05-0.1"])]:
        out = tmp_path / f"{family}-{command}.wav"
        code, stdout, stderr = run(capsys, command, input_wav, *extra, "-m", folder, "--steps", "2", "--seed", "1",
                                   "-o", out)
        assert code == 0, stderr
        assert soundfile.info(out).frames == 4096 and read_metadata(out)["model"] == str(folder)


def test_cli_edit_commands_take_the_quality_presets(capsys, tiny_audioldm, input_wav, tmp_path):
    from soundsmith.presets import preset

    out = tmp_path / "draft.wav"
    code, _, stderr = run(capsys, "transfer", input_wav, "a dog barking", "-m", tiny_audioldm, "-q", "draft",
                          "--seed", "1", "-o", out)
    assert code == 0, stderr
    sampler, steps = preset("AudioLDMPipeline", "draft")
    meta = read_metadata(out)
    assert (meta["sampler"], meta["steps"]) == (sampler, steps)


def test_cli_default_output_name_comes_from_the_input(capsys, tiny_audioldm, input_wav, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, stdout, _ = run(capsys, "reconstruct", input_wav, "-m", tiny_audioldm)
    assert code == 0 and stdout.strip() == "in_reconstruct.wav"


def test_cli_generate_long_form_shows_windows(capsys, tiny_10ms, tmp_path):
    out = tmp_path / "long.wav"
    code, _, stderr = run(capsys, "generate", "a river flowing", "-m", tiny_10ms, "-d", "21", "--steps", "1",
                          "--seed", "0", "-o", out)
    assert code == 0
    assert soundfile.info(out).frames == 21 * 16000
    assert "65 windows of 0.64 s" in stderr


# ------------------------------------------------------------------------------------------------ bad input


def one_line_error(capsys, *argv) -> str:
    code, _, stderr = run(capsys, *argv)
    assert code == 2
    lines = stderr.strip().splitlines()
    assert lines[-1].startswith("soundsmith: error: ")
    return lines[-1]


@pytest.mark.parametrize("argv, named", [
    (["transfer", "{in}", "a dog", "--strength", "1.5"], "--strength 1.5"),
    (["transfer", "{in}", "a dog", "--strength", "-0.1"], "--strength -0.1"),
    (["transfer", "{in}", "a dog", "-d", "5"], "-d/--duration"),
    (["inpaint", "{in}", "a dog", "--mask", "0.1-9"], "mask 0.1-9 ends after the audio (0.256 s)"),
    (["inpaint", "{in}", "a dog", "--mask", "0.2-0.1"], "mask 0.2-0.1"),
    (["inpaint", "{in}", "a dog", "--mask", "0.1-0.2", "--mask", "0.15-0.25"], "masks 0.1-0.2 and 0.15-0.25 overlap"),
    (["inpaint", "{in}", "a dog", "--mask", "soon"], "--mask 'soon'"),
    (["upscale", "{in}", "--cutoff", "9000"], "cutoff=9000.0 Hz"),
    (["upscale", "{in}", "--cutoff", "0"], "cutoff=0.0 Hz"),
    (["upscale", "{in}"], "nothing to regenerate"),
    (["extend", "{in}", "a dog", "--seconds", "0"], "--seconds=0.0"),
    (["transfer", "{missing}", "a dog"], "no such file"),
    (["transfer", "{empty}", "a dog"], "contains no audio samples"),
    (["transfer", "{garbage}", "a dog"], "unreadable or corrupt audio"),
])
def test_cli_bad_input_is_one_line_naming_the_value(capsys, tiny_audioldm, input_wav, tmp_path, argv, named):
    empty, garbage = tmp_path / "empty.wav", tmp_path / "garbage.wav"
    soundfile.write(empty, np.zeros(0, dtype=np.float32), 16000)
    garbage.write_bytes(b"not audio at all" * 10)
    paths = {"in": input_wav, "missing": tmp_path / "missing.wav", "empty": empty, "garbage": garbage}
    argv = [a.format(**paths) for a in argv]
    error = one_line_error(capsys, *argv, "-m", tiny_audioldm, "--steps", "1", "-o", tmp_path / "o.wav")
    assert named in error


def test_python_bad_input_is_named(audioldm):
    x = signal()
    with pytest.raises(InvalidArgument, match="strength=2"):
        edit.transfer(audioldm, x, "a dog", strength=2)
    with pytest.raises(InvalidArgument, match=r"mask \(1, 2, 3\)"):
        edit.inpaint(audioldm, x, "a dog", [(1, 2, 3)])
    with pytest.raises(InvalidArgument, match="ends after the audio"):
        edit.inpaint(audioldm, x, "a dog", (0.1, 0.3))
    with pytest.raises(InvalidArgument, match=r"is 6.25e-05 s long: the model needs at least 0.0005 s"):
        edit.reconstruct(audioldm, torch.zeros(16) + 0.1, sample_rate=256000)
    with pytest.raises(InvalidArgument, match="NaN"):
        edit.reconstruct(audioldm, torch.full((4096,), math.nan))
    with pytest.raises(InvalidArgument, match="seconds=-1"):
        edit.extend(audioldm, x, "a dog", -1)
    with pytest.raises(InvalidArgument, match="transcription="):
        edit.transfer(audioldm, x, "a dog", transcription="hello")
    with pytest.raises(AudioFileError, match="no such file"):
        edit.reconstruct(audioldm, "/nonexistent/in.wav")
