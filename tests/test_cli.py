"""The `soundsmith` command: files, metadata that reproduces the sound, candidates, prompt lists, speech."""

import json

import numpy as np
import pytest
import soundfile

from soundsmith.audio import read_metadata
from soundsmith.cli import main


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_generate_writes_16_bit_wav_with_reproducible_metadata(capsys, tiny_audioldm, tmp_path):
    out = tmp_path / "dog.wav"
    code, stdout, stderr = run(capsys, "generate", "a dog barking", "-m", tiny_audioldm, "--steps", "3", "-o", out)
    assert code == 0
    assert stdout.strip() == str(out)
    assert "soundsmith: denoising 3/3 steps" in stderr  # progress went to stderr
    info = soundfile.info(out)
    assert info.subtype == "PCM_16" and info.samplerate == 16000 and info.frames == 256
    meta = read_metadata(out)
    assert meta["prompt"] == "a dog barking" and meta["model"] == str(tiny_audioldm)
    assert meta["steps"] == 3 and meta["guidance"] == 2.5 and meta["sampler"] == "default"
    assert isinstance(meta["seed"], int)

    again = tmp_path / "again.wav"
    assert run(capsys, "generate", meta["prompt"], "-m", meta["model"], "--steps", meta["steps"], "--guidance",
               meta["guidance"], "--seed", meta["seed"], "-o", again)[0] == 0
    assert np.array_equal(soundfile.read(out)[0], soundfile.read(again)[0])


def test_generate_writes_flac_by_extension(capsys, tiny_audioldm, tmp_path):
    out = tmp_path / "dog.flac"
    assert run(capsys, "generate", "a dog", "-m", tiny_audioldm, "--steps", "1", "--seed", "4", "-o", out)[0] == 0
    assert soundfile.info(out).format == "FLAC"
    assert read_metadata(out)["seed"] == 4


def test_default_output_name_comes_from_the_prompt_and_never_overwrites(capsys, tiny_audioldm, tmp_path,
                                                                           monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_dog_barking.wav").write_bytes(b"keep me")
    code, stdout, _ = run(capsys, "generate", "A dog, barking!", "-m", tiny_audioldm, "--steps", "1")
    assert code == 0 and stdout.strip() == "a_dog_barking-2.wav"
    assert (tmp_path / "a_dog_barking.wav").read_bytes() == b"keep me"


def test_force_overwrites(capsys, tiny_audioldm, tmp_path):
    out = tmp_path / "x.wav"
    out.write_bytes(b"old")
    assert run(capsys, "generate", "a dog", "-m", tiny_audioldm, "--steps", "1", "-o", out, "--force")[0] == 0
    assert soundfile.info(out).frames == 256


def test_candidates_are_ranked_and_numbered_best_first(capsys, tiny_musicldm, tmp_path):
    out = tmp_path / "music.wav"
    code, stdout, _ = run(capsys, "generate", "a slow piano melody", "-m", tiny_musicldm, "--steps", "2", "-n", "3",
                          "-o", out)
    assert code == 0
    paths = stdout.split()
    assert paths == [str(tmp_path / f"music_{i}.wav") for i in (1, 2, 3)]
    scores = [read_metadata(p)["clap_score"] for p in paths]
    assert scores == sorted(scores, reverse=True)
    assert [read_metadata(p)["candidate"] for p in paths] == [1, 2, 3]


def test_prompt_list_text_file_names_outputs(capsys, tiny_audioldm, tmp_path):
    listing = tmp_path / "batch.lst"
    listing.write_text("# sounds for level 1\na dog barking|dog\n\nrain on a tin roof\n")
    code, stdout, _ = run(capsys, "generate", "--prompts", listing, "-m", tiny_audioldm, "--steps", "1",
                          "-o", tmp_path / "out")
    assert code == 0
    assert stdout.split() == [str(tmp_path / "out" / "dog.wav"), str(tmp_path / "out" / "rain_on_a_tin_roof.wav")]


def test_prompt_list_json_lines_carry_per_item_settings(capsys, tiny_audioldm, tmp_path):
    listing = tmp_path / "jobs.jsonl"
    listing.write_text(
        json.dumps({"prompt": "a dog barking", "seed": 7, "duration": 0.032, "name": "dog"}) + "\n"
        + json.dumps({"prompt": "a cat", "negative_prompt": "noise", "name": "cat"}) + "\n")
    code, stdout, _ = run(capsys, "generate", "--prompts", listing, "-m", tiny_audioldm, "--steps", "1",
                          "--format", "flac", "-o", tmp_path / "o")
    assert code == 0
    dog, cat = stdout.split()
    assert soundfile.info(dog).frames == 512 and read_metadata(dog)["seed"] == 7
    assert read_metadata(cat)["negative_prompt"] == "noise" and cat.endswith("cat.flac")


@pytest.mark.parametrize("content,fragment", [
    ('{"prompt": "ok"}\n{"prompt": "a", "sed": 3}\n', "line 2: unknown key 'sed'"),
    ('{"prompt": "ok"}\n\n{"prompt": \n', "line 3: not valid JSON"),
    ('{"prompt": "ok"}\n{"prompt": "", "name": "x"}\n', "line 2: \"prompt\" is missing or empty"),
    ('{"prompt": "a", "duration": -1}\n', "line 1: duration=-1"),
    ('{"prompt": "a", "name": "../up"}\n', "line 1: output name '../up'"),
    ('{"prompt": "a", "seed": "7"}\n', "line 1: seed='7' has the wrong type"),
    ('{"prompt": "a", "name": "x"}\n{"prompt": "b", "name": "x"}\n', "output name 'x' is used twice"),
    ("# only comments\n\n", "has no prompts"),
])
def test_bad_prompt_file_lines_are_named(capsys, tmp_path, content, fragment):
    listing = tmp_path / "jobs.jsonl"
    listing.write_text(content)
    code, _, stderr = run(capsys, "generate", "--prompts", listing, "-o", tmp_path / "o")
    assert code == 2 and fragment in stderr and "Traceback" not in stderr, stderr


def test_text_list_with_empty_prompt_before_name_is_refused(capsys, tmp_path):
    listing = tmp_path / "batch.txt"
    listing.write_text("a dog\n|name\n")
    code, _, stderr = run(capsys, "generate", "--prompts", listing)
    assert code == 2 and "line 2: the prompt before '|' is empty" in stderr


def test_prompt_and_prompt_file_together_are_refused(capsys, tmp_path):
    listing = tmp_path / "b.txt"
    listing.write_text("a\n")
    code, _, stderr = run(capsys, "generate", "a dog", "--prompts", listing)
    assert code == 2 and "PROMPT or --prompts" in stderr


def test_speech_checkpoint_speaks_the_transcription(capsys, tiny_audioldm2_tts, tmp_path):
    out = tmp_path / "speech.wav"
    code, _, _ = run(capsys, "generate", "A man speaking clearly", "--transcription", "hello world", "-m",
                     tiny_audioldm2_tts, "--steps", "1", "-o", out)
    assert code == 0 and read_metadata(out)["transcription"] == "hello world"


def test_transcription_on_a_model_without_speech_is_refused(capsys, tiny_audioldm, tmp_path):
    code, _, stderr = run(capsys, "generate", "a man", "--transcription", "hi", "-m", tiny_audioldm,
                          "-o", tmp_path / "a.wav")
    assert code == 2 and "--transcription needs an AudioLDM 2 checkpoint" in stderr


def test_models_lists_names_and_cache_state(capsys, tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    code, stdout, _ = run(capsys, "models")
    assert code == 0
    lines = stdout.splitlines()
    assert any(line.startswith("audioldm2-large ") and "cvssp/audioldm2-large" in line for line in lines)
    assert any(line.startswith("musicldm ") for line in lines)
    assert all(" cached " not in line for line in lines)


def test_cached_alias_resolves_from_hf_home(capsys, tiny_audioldm, tmp_path, monkeypatch):
    """An alias finds its snapshot in the huggingface cache (HF_HOME), offline."""
    import shutil

    from huggingface_hub import constants

    repo = tmp_path / "hub" / "models--cvssp--audioldm-s-full-v2"
    snapshot = repo / "snapshots" / ("0" * 40)
    shutil.copytree(tiny_audioldm, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    out = tmp_path / "a.wav"
    assert run(capsys, "generate", "a dog", "-m", "audioldm-s-full-v2", "--steps", "1", "-o", out)[0] == 0
    code, stdout, _ = run(capsys, "models")
    assert any(line.startswith("audioldm-s-full-v2 ") and " cached " in line for line in stdout.splitlines())


def test_quality_preset_picks_sampler_and_steps_and_flags_override(capsys, tiny_audioldm, tmp_path):
    from soundsmith.presets import preset

    out = tmp_path / "q.wav"
    assert run(capsys, "generate", "a dog", "-m", tiny_audioldm, "-q", "draft", "-o", out)[0] == 0
    sampler, steps = preset("AudioLDMPipeline", "draft")
    meta = read_metadata(out)
    assert (meta["sampler"], meta["steps"]) == (sampler, steps)
    out2 = tmp_path / "q2.wav"
    assert run(capsys, "generate", "a dog", "-m", tiny_audioldm, "-q", "draft", "--steps", "3", "-o", out2)[0] == 0
    assert (read_metadata(out2)["sampler"], read_metadata(out2)["steps"]) == (sampler, 3)


def test_unknown_quality_is_refused(capsys, tmp_path):
    with pytest.raises(SystemExit) as info:
        main(["generate", "a dog", "-q", "best", "-o", str(tmp_path / "a.wav")])
    assert info.value.code == 2
    assert "invalid choice: 'best'" in capsys.readouterr().err


def test_offload_on_cpu_is_one_line_and_exit_2(tiny_audioldm, tmp_path, capsys):
    from soundsmith.cli import main

    code = main(["generate", "a dog", "-m", str(tiny_audioldm), "--device", "cpu", "--offload",
                 "-o", str(tmp_path / "x.wav")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("soundsmith: error: offload=True needs a cuda or mps device")
    assert not (tmp_path / "x.wav").exists()


# ------------------------------------------------------------------------------------------------------- loudness

@pytest.fixture(scope="module", params=[("quiet", 0.03), ("loud", 30.0)], ids=lambda p: p[0])
def leveled_audioldm(request, tiny_audioldm, tmp_path_factory):
    """The tiny AudioLDM with its vocoder's last layer scaled: "quiet" makes about -53 LUFS, "loud" about -0.6 LUFS
    with true peaks near +6 dBTP (tanh driven into saturation)."""
    import shutil

    from safetensors.torch import load_file, save_file

    name, factor = request.param
    folder = tmp_path_factory.mktemp(name) / "model"
    shutil.copytree(tiny_audioldm, folder)
    weights = next((folder / "vocoder").glob("*.safetensors"))
    state = load_file(weights)
    state["conv_post.weight"] *= factor
    state["conv_post.bias"] *= factor
    save_file(state, weights)
    return folder


def test_cli_outputs_are_at_minus_16_lufs_under_minus_1_dbtp_with_the_record_in_metadata(capsys, leveled_audioldm,
                                                                                         tmp_path):
    from soundsmith import loudness

    code, stdout, _ = run(capsys, "generate", "a dog", "-m", leveled_audioldm, "--steps", "2", "-d", "1", "-n", "2",
                          "--seed", "0", "-o", tmp_path / "dog.wav")
    assert code == 0
    levels = []
    for path in stdout.split():
        samples, rate = soundfile.read(path)
        levels.append(loudness.integrated_loudness(samples, rate).item())
        assert abs(levels[-1] + 16.0) <= 0.5, levels
        assert loudness.true_peak(samples, rate).item() <= -1.0
        meta = read_metadata(path)
        assert meta["loudness"] == -16.0 and meta["loudness_applied"] is True
        assert meta["loudness_target_lufs"] == -16.0 and meta["loudness_ceiling_dbtp"] == -1.0
        assert abs(meta["loudness_output_lufs"] + 16.0) <= 0.05 and meta["true_peak_dbtp"] <= -1.0
    assert max(levels) - min(levels) < 0.2  # candidates of one prompt alike


def test_loudness_off_writes_the_raw_samples_and_a_stated_target_is_met(capsys, leveled_audioldm, tmp_path):
    import soundsmith
    from soundsmith import loudness

    raw = soundsmith.load(leveled_audioldm, progress=False)("a dog", audio_length_in_s=1.0, num_inference_steps=2,
                                                            seed=0, progress=False).audios[0]
    assert run(capsys, "generate", "a dog", "-m", leveled_audioldm, "--steps", "2", "-d", "1", "--seed", "0",
               "--loudness", "off", "-o", tmp_path / "raw.wav")[0] == 0
    written = soundfile.read(tmp_path / "raw.wav", dtype="float32")[0]
    assert np.abs(written - np.clip(raw, -1, 1)).max() <= 1 / 32768  # 16-bit rounding only
    meta = read_metadata(tmp_path / "raw.wav")
    assert "loudness" not in meta and "loudness_applied" not in meta

    assert run(capsys, "generate", "a dog", "-m", leveled_audioldm, "--steps", "2", "-d", "1", "--seed", "0",
               "--loudness", "-23", "-o", tmp_path / "quieter.wav")[0] == 0
    samples, rate = soundfile.read(tmp_path / "quieter.wav")
    assert abs(loudness.integrated_loudness(samples, rate).item() + 23.0) <= 0.5
    assert read_metadata(tmp_path / "quieter.wav")["loudness_target_lufs"] == -23.0


def test_from_makes_a_normalised_file_again_at_its_own_loudness(capsys, tiny_audioldm, tmp_path):
    first, again = tmp_path / "first.wav", tmp_path / "again.wav"
    assert run(capsys, "generate", "a dog", "-m", tiny_audioldm, "--steps", "2", "-d", "0.5", "--loudness", "-20",
               "-o", first)[0] == 0
    assert run(capsys, "generate", "--from", first, "-o", again)[0] == 0
    assert np.array_equal(soundfile.read(first)[0], soundfile.read(again)[0])
    assert read_metadata(again)["loudness_target_lufs"] == -20.0


def test_the_python_api_keeps_raw_outputs_and_normalises_on_request(tiny_audioldm):
    import soundsmith
    from soundsmith import loudness

    pipe = soundsmith.load(tiny_audioldm, progress=False)
    raw = pipe("a dog", audio_length_in_s=0.5, num_inference_steps=2, seed=0, progress=False)
    assert "loudness" not in raw.info and raw.request.loudness is None
    out = pipe("a dog", audio_length_in_s=0.5, num_inference_steps=2, seed=0, progress=False, loudness=-16)
    assert abs(loudness.integrated_loudness(out.audios, out.sample_rate).item() + 16.0) <= 0.05
    assert out.info["loudness"][0].applied and out.request.loudness == -16.0
    assert np.array_equal(out.audios, loudness.normalize_loudness(raw.audios, raw.sample_rate)[0])


def test_dtype_int8_makes_sound_and_its_file_makes_it_again(capsys, tiny_audioldm, tmp_path):
    from soundsmith import quantize

    if not quantize.available():
        pytest.skip("no quantized engine in this torch build")
    out, again = tmp_path / "dog.wav", tmp_path / "again.wav"
    assert run(capsys, "generate", "a dog", "-m", tiny_audioldm, "--dtype", "int8", "--steps", "2", "-o", out)[0] == 0
    samples = soundfile.read(out)[0]
    assert read_metadata(out)["dtype"] == "int8" and np.sqrt(np.mean(samples ** 2)) > 1e-3
    assert run(capsys, "generate", "--from", out, "-o", again)[0] == 0  # int8 again, from the file's metadata
    assert np.array_equal(soundfile.read(again)[0], samples)


def test_unknown_dtype_is_refused(capsys, tmp_path):
    with pytest.raises(SystemExit) as info:
        main(["generate", "a dog", "--dtype", "int4", "-o", str(tmp_path / "a.wav")])
    assert info.value.code == 2
    assert "invalid choice: 'int4'" in capsys.readouterr().err
