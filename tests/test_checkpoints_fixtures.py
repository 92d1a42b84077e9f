"""The tiny checkpoint folders are deterministic, have the hub layout, and the diffusers oracle runs on each."""

from __future__ import annotations

import json

import numpy as np
import pytest

diffusers = pytest.importorskip("diffusers")

from checkpoints import (  # noqa: E402
    build_audioldm,
    build_audioldm2,
    build_musicldm,
    folder_digest,
    load_reference,
    run_reference,
)

FIXTURES = {
    "tiny_audioldm": (build_audioldm, {}),
    "tiny_audioldm_legacy_vae": (build_audioldm, {"legacy_vae_keys": True}),
    "tiny_musicldm": (build_musicldm, {}),
    "tiny_audioldm2": (build_audioldm2, {"variant": "base"}),
    "tiny_audioldm2_large": (build_audioldm2, {"variant": "large"}),
    "tiny_audioldm2_gpt2model": (build_audioldm2, {"variant": "gpt2model"}),
    "tiny_audioldm2_tts": (build_audioldm2, {"variant": "tts"}),
}

# model_index.json as on the hub (cvssp/audioldm2, anhnct/audioldm2_gigaspeech): fast tokenizer names.
EXPECTED_CLASSES = {
    "tiny_audioldm": {"_class_name": "AudioLDMPipeline", "text_encoder": "ClapTextModelWithProjection",
                      "tokenizer": "RobertaTokenizerFast", "unet": "UNet2DConditionModel",
                      "vocoder": "SpeechT5HifiGan"},
    "tiny_musicldm": {"_class_name": "MusicLDMPipeline", "text_encoder": "ClapModel",
                      "feature_extractor": "ClapFeatureExtractor", "tokenizer": "RobertaTokenizerFast"},
    "tiny_audioldm2": {"_class_name": "AudioLDM2Pipeline", "language_model": "GPT2LMHeadModel",
                       "text_encoder_2": "T5EncoderModel", "tokenizer_2": "T5TokenizerFast",
                       "unet": "AudioLDM2UNet2DConditionModel", "projection_model": "AudioLDM2ProjectionModel"},
    "tiny_audioldm2_gpt2model": {"language_model": "GPT2Model", "text_encoder_2": "T5EncoderModel"},
    "tiny_audioldm2_tts": {"language_model": "GPT2Model", "text_encoder_2": "VitsModel",
                           "tokenizer_2": "VitsTokenizer"},
}


def _config(folder, component: str) -> dict:
    name = "scheduler_config.json" if component == "scheduler" else "config.json"
    return json.loads((folder / component / name).read_text())


@pytest.mark.parametrize("fixture", sorted(FIXTURES))
def test_rebuilding_a_checkpoint_gives_byte_identical_files(fixture, request, tmp_path):
    builder, kwargs = FIXTURES[fixture]
    first = request.getfixturevalue(fixture)
    assert folder_digest(builder(tmp_path / "again", **kwargs)) == folder_digest(first)


@pytest.mark.parametrize("fixture", sorted(EXPECTED_CLASSES))
def test_model_index_names_the_hub_classes(fixture, request):
    index = json.loads((request.getfixturevalue(fixture) / "model_index.json").read_text())
    for component, class_name in EXPECTED_CLASSES[fixture].items():
        assert (index[component] if component == "_class_name" else index[component][1]) == class_name


def test_legacy_vae_keys_are_written_only_when_asked(tiny_audioldm, tiny_audioldm_legacy_vae):
    from safetensors import safe_open

    def attention_keys(folder):
        with safe_open(folder / "vae" / "diffusion_pytorch_model.safetensors", "pt") as f:
            return {k.split("attentions.0.")[1] for k in f.keys() if "mid_block.attentions.0." in k}

    legacy, current = attention_keys(tiny_audioldm_legacy_vae), attention_keys(tiny_audioldm)
    assert {"query.weight", "key.bias", "value.weight", "proj_attn.weight", "group_norm.weight"} <= legacy
    assert not any(k.startswith(("to_q", "to_k", "to_v", "to_out")) for k in legacy)
    assert {"to_q.weight", "to_out.0.bias"} <= current and "query.weight" not in current


def test_legacy_vae_folder_loads_the_same_weights_in_diffusers(tiny_audioldm, tiny_audioldm_legacy_vae):
    from diffusers import AutoencoderKL

    current = AutoencoderKL.from_pretrained(tiny_audioldm / "vae").state_dict()
    legacy = AutoencoderKL.from_pretrained(tiny_audioldm_legacy_vae / "vae").state_dict()
    assert current.keys() == legacy.keys()
    assert all((current[k] == legacy[k]).all() for k in current)


def test_tokenizers_have_the_real_special_token_layout(tiny_audioldm2, tiny_audioldm2_tts):
    from transformers import AutoTokenizer, VitsTokenizer

    clap = AutoTokenizer.from_pretrained(tiny_audioldm2 / "tokenizer")
    assert [clap.bos_token_id, clap.pad_token_id, clap.eos_token_id, clap.unk_token_id] == [0, 1, 2, 3]
    assert clap("").input_ids == [0, 2] and clap.model_max_length == 77
    t5 = AutoTokenizer.from_pretrained(tiny_audioldm2 / "tokenizer_2")
    assert [t5.pad_token_id, t5.eos_token_id, t5.unk_token_id] == [0, 1, 2]
    assert t5.model_max_length == 128 and t5.convert_tokens_to_ids("<extra_id_0>") == len(t5) - 1
    assert (tiny_audioldm2 / "tokenizer_2" / "spiece.model").is_file()
    vits = VitsTokenizer.from_pretrained(tiny_audioldm2_tts / "tokenizer_2")
    assert vits.pad_token_id == 0 and vits.model_max_length == 32 and not vits.add_blank


def test_real_clap_tokenizer_length_is_one_argument_away(tmp_path):
    folder = build_audioldm(tmp_path / "a512", clap_max_length=512)
    assert json.loads((folder / "tokenizer" / "tokenizer_config.json").read_text())["model_max_length"] == 512


def test_audioldm2_variants_have_their_unet_and_projection_layouts(
    tiny_audioldm2, tiny_audioldm2_large, tiny_audioldm2_tts
):
    assert _config(tiny_audioldm2, "unet")["cross_attention_dim"] == [8, 16]
    large = _config(tiny_audioldm2_large, "unet")
    assert large["cross_attention_dim"] == [[None, 16, 32, None]] * 2
    assert large["transformer_layers_per_block"] == 2
    assert _config(tiny_audioldm2_tts, "unet")["cross_attention_dim"] == [[None, 16]] * 2
    projection = _config(tiny_audioldm2_tts, "projection_model")
    assert projection["use_learned_position_embedding"] and projection["max_seq_length"] == 32
    assert _config(tiny_audioldm2, "language_model")["max_new_tokens"] == 8


@pytest.mark.parametrize("fixture", sorted(FIXTURES))
def test_reference_pipeline_runs_end_to_end(fixture, request):
    pipe = load_reference(request.getfixturevalue(fixture))
    prompt = "A hammer hitting a wooden surface"
    single = run_reference(pipe, prompt)
    assert single.shape == (1, 256) and single.dtype == np.float32
    assert run_reference(pipe, prompt, negative_prompt="egg cracking").shape == (1, 256)
    batch = run_reference(pipe, [prompt, "a dog barking in the rain"], negative_prompt=["egg cracking", ""],
                          num_waveforms_per_prompt=2)
    assert batch.shape == (4, 256) and np.isfinite(batch).all()
    # unit-gain random weights: audible-size waveforms that depend on the prompt
    assert 1e-3 < np.abs(single).max() < 1.0
    assert not np.allclose(batch[0], batch[2], rtol=1e-3, atol=0)


def test_musicldm_reference_gets_tensors_from_get_text_features(tiny_musicldm):
    import torch

    pipe = load_reference(tiny_musicldm)
    ids = pipe.tokenizer(["a dog"], padding="max_length", max_length=77, return_tensors="pt")
    features = pipe.text_encoder.get_text_features(ids.input_ids, attention_mask=ids.attention_mask)
    assert isinstance(features, torch.Tensor) and features.shape == (1, 32)
    assert torch.allclose(features.norm(dim=-1), torch.ones(1))
