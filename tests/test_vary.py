"""Variations (the original AudioLDM CLI's `--mode generation -f FILE`): new audio conditioned on the CLAP audio
embedding of an input, from Python and the CLI; the CLAP it needs and the families that cannot."""

import shutil

import numpy as np
import pytest
import soundfile
import torch

import soundsmith
from soundsmith import Request, audio, edit, variation
from soundsmith.audio import read_metadata
from soundsmith.cli import main
from soundsmith.errors import InvalidArgument
from soundsmith.models.conditioning import clap_text_embeds

ARGS = dict(num_inference_steps=2, audio_length_in_s=0.1)


@pytest.fixture(scope="module")
def musicldm(tiny_musicldm):
    return soundsmith.load(tiny_musicldm, device="cpu")


@pytest.fixture(scope="module")
def audioldm(tiny_audioldm):
    return soundsmith.load(tiny_audioldm, device="cpu")


def clip(seconds=0.2, seed=0, rate=16000):
    t = torch.arange(int(seconds * rate)) / rate
    noise = torch.randn(len(t), generator=torch.Generator().manual_seed(seed))
    return (0.3 * torch.sin(2 * torch.pi * 440 * t) + 0.05 * noise + 0.1).float()


def clap_folder(tiny_audioldm, path, *, same_text_tower: bool):
    """A ClapModel folder (tokenizer, feature extractor) whose text tower is the tiny AudioLDM's own (the CLAP the
    checkpoint was trained with) or a random one."""
    from checkpoints import _clap_model, clap_feature_extractor
    from transformers import ClapTextModelWithProjection

    torch.manual_seed(1)
    clap = _clap_model(dict(hidden_size=8, num_attention_heads=1, num_hidden_layers=1),
                       dict(spec_size=64, num_mel_bins=64, depths=[2, 2], num_attention_heads=[2, 2],
                            num_hidden_layers=2), projection_dim=8)
    if same_text_tower:
        text = ClapTextModelWithProjection.from_pretrained(tiny_audioldm / "text_encoder")
        clap.text_model.load_state_dict(text.text_model.state_dict())
        clap.text_projection.load_state_dict(text.text_projection.state_dict())
    clap.save_pretrained(path)
    for file in (tiny_audioldm / "tokenizer").iterdir():
        shutil.copy(file, path / file.name)
    clap_feature_extractor(feature_size=64).save_pretrained(path)
    return path


# --------------------------------------------------------------------------------------------------- conditioning


def test_the_unet_is_conditioned_on_the_clap_audio_embedding_of_the_input(musicldm, monkeypatch):
    from transformers import ClapModel

    x = clip()
    # the embedding, computed directly with transformers: the input normalised as the original (mean removed, peak
    # 0.5), at CLAP's 48 kHz, through the feature extractor and ClapModel.get_audio_features, unit length
    normalised = (x - x.mean()) * 0.5 / ((x - x.mean()).abs().max() + 1e-8)
    at_48k = audio.resample(normalised, 16000, 48000).numpy()
    features = musicldm.feature_extractor([at_48k], sampling_rate=48000, return_tensors="pt").input_features
    clap = ClapModel.from_pretrained(musicldm.folder / "text_encoder")
    direct = clap.get_audio_features(input_features=features)
    direct = torch.nn.functional.normalize(getattr(direct, "pooler_output", direct), dim=-1)
    ours = variation.audio_embedding(musicldm, variation.clap_for(musicldm), x)
    torch.testing.assert_close(ours, direct, atol=1e-5, rtol=1e-5)

    seen = []
    original = musicldm.conditioning

    def spy(*args, **kwargs):
        out = original(*args, **kwargs)
        seen.append(out[0]["class_labels"])
        return out

    monkeypatch.setattr(musicldm, "conditioning", spy)
    edit.vary(musicldm, x, seed=0, **ARGS)
    uncond, cond = seen[0]  # guidance 2.0: [unconditional; conditional]
    torch.testing.assert_close(cond, direct[0], atol=1e-5, rtol=1e-5)
    empty = clap_text_embeds(musicldm.text_encoder, musicldm.tokenizer, [""], 32)[0]
    torch.testing.assert_close(uncond, empty, atol=1e-6, rtol=1e-6)  # the original's: CLAP text of ""


def test_variations_have_the_requested_length_ranked_by_similarity_and_repeat_with_a_seed(musicldm):
    x = clip()
    out = edit.vary(musicldm, x, num_waveforms_per_prompt=3, seed=7, **ARGS)
    assert out.audios.shape == (3, 1600) and np.isfinite(out.audios).all()
    assert list(out.scores) == sorted(out.scores, reverse=True)
    clap = variation.clap_for(musicldm)
    target = variation.audio_embedding(musicldm, clap, x)
    similarity = (clap.audio_embeds(torch.from_numpy(out.audios), 16000) * target).sum(-1)
    torch.testing.assert_close(similarity, out.scores, atol=1e-5, rtol=0)
    again = edit.vary(musicldm, x, num_waveforms_per_prompt=3, seed=7, **ARGS)
    assert np.array_equal(again.audios, out.audios)
    other = edit.vary(musicldm, x, num_waveforms_per_prompt=3, seed=8, **ARGS)
    assert not np.allclose(other.audios, out.audios)
    assert out.request.task == "vary" and out.request.duration == 0.1 and out.request.candidates == 3
    default = edit.vary(musicldm, x, num_inference_steps=1, seed=0)
    assert default.audios.shape[-1] == round(musicldm.default_seconds * 16000)


def test_a_different_input_gives_a_different_variation(musicldm):
    a = edit.vary(musicldm, clip(seed=0), seed=0, **ARGS).audios
    b = edit.vary(musicldm, torch.randn(3200, generator=torch.Generator().manual_seed(5)) * 0.3, seed=0, **ARGS).audios
    assert not np.allclose(a, b)


# ---------------------------------------------------------------------------------------------- which CLAP


def test_audioldm_needs_a_clap_folder_and_takes_only_its_own_clap(audioldm, tiny_audioldm, tmp_path):
    x = clip()
    with pytest.raises(InvalidArgument, match="has only its text tower: give clap= a CLAP folder"):
        edit.vary(audioldm, x, seed=0, **ARGS)
    own = clap_folder(tiny_audioldm, tmp_path / "own-clap", same_text_tower=True)
    out = edit.vary(audioldm, x, clap=own, num_waveforms_per_prompt=2, seed=0, **ARGS)
    assert out.audios.shape == (2, 1600) and out.request.clap == str(own)
    foreign = clap_folder(tiny_audioldm, tmp_path / "other-clap", same_text_tower=False)
    with pytest.raises(InvalidArgument, match="is not .*'s CLAP: its text embedding of .* has cosine") as caught:
        edit.vary(audioldm, x, clap=foreign, seed=0, **ARGS)
    assert "\n" not in str(caught.value)


def test_audioldm2_is_refused_in_one_line(tiny_audioldm2):
    pipe = soundsmith.load(tiny_audioldm2, device="cpu")
    with pytest.raises(InvalidArgument, match="vary needs an AudioLDM or MusicLDM checkpoint.*AudioLDM 2") as caught:
        edit.vary(pipe, clip(), seed=0, **ARGS)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("silence", [torch.zeros(1600), torch.full((1600,), 0.25)], ids=["zeros", "dc-offset"])
def test_a_silent_input_is_refused_in_one_line(musicldm, silence):
    with pytest.raises(InvalidArgument, match="the input is silent .* vary makes audio like its input") as caught:
        edit.vary(musicldm, silence, seed=0, **ARGS)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("fields, fragment", [
    (dict(prompt="a dog"), "prompt= does not apply to vary: vary is conditioned on the input audio"),
    (dict(strength=0.5), "strength= does not apply to vary"),
    (dict(ranker="x"), "ranker= does not apply to vary"),
    (dict(clap=""), "clap='' is not allowed"),
])
def test_vary_requests_refuse_what_does_not_apply(fields, fragment):
    from soundsmith.request import PYTHON_LABELS

    with pytest.raises(InvalidArgument, match=fragment):
        Request(task="vary", input="in.wav", _labels=PYTHON_LABELS, **fields)
    with pytest.raises(InvalidArgument, match="clap= does not apply to generate"):
        Request(prompt="rain", clap="folder", _labels=PYTHON_LABELS)


# ---------------------------------------------------------------------------------------------------------- CLI


def test_cli_vary_writes_ranked_candidates_that_generate_from_makes_again(capsys, tiny_musicldm, tmp_path):
    source = tmp_path / "loop.wav"
    soundfile.write(source, clip().numpy(), 16000)
    out = tmp_path / "var.wav"
    code = main([str(a) for a in ("vary", source, "-m", tiny_musicldm, "-n", 2, "--steps", 2, "-d", 0.1,
                                  "--seed", 3, "-o", out)])
    printed = capsys.readouterr().out.split()
    assert code == 0 and printed == [str(tmp_path / "var_1.wav"), str(tmp_path / "var_2.wav")]
    meta = read_metadata(tmp_path / "var_1.wav")
    assert (meta["task"], meta["input"], meta["candidates"], meta["seed"]) == ("vary", str(source), 2, 3)
    assert soundfile.info(tmp_path / "var_1.wav").frames == 1600
    assert main(["generate", "--from", str(tmp_path / "var_1.wav"), "-o", str(tmp_path / "again.wav")]) == 0
    assert np.array_equal(soundfile.read(tmp_path / "again_1.wav")[0], soundfile.read(tmp_path / "var_1.wav")[0])


def test_cli_vary_on_audioldm_without_clap_is_one_line_naming_the_flag(capsys, tiny_audioldm, tmp_path):
    source = tmp_path / "loop.wav"
    soundfile.write(source, clip().numpy(), 16000)
    code = main(["vary", str(source), "-m", str(tiny_audioldm), "--steps", "1", "-o", str(tmp_path / "v.wav")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("soundsmith: error: ") and "give --clap a CLAP folder" in err[-1]
    assert not (tmp_path / "v.wav").exists()


def test_cli_vary_with_a_clap_folder_that_is_not_one_names_the_flag(capsys, tiny_audioldm, tmp_path):
    source = tmp_path / "loop.wav"
    soundfile.write(source, clip().numpy(), 16000)
    for clap, fragment in ((tmp_path / "missing", "does not exist"), (tmp_path, "config.json is missing")):
        code = main(["vary", str(source), "-m", str(tiny_audioldm), "--clap", str(clap), "--steps", "1", "-d", "0.1",
                     "-o", str(tmp_path / "v.wav")])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and err[-1].startswith(f"soundsmith: error: --clap {clap}: ") and fragment in err[-1]
