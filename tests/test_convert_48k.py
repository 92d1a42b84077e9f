"""AudioLDM 48 kHz (`haoheliu/audioldm_48k`, an original-format checkpoint of the AudioLDM 2 repository): converted
into an AudioLDM pipeline whose UNet step, VAE decode, vocoder and CLAP text tower compute what the original
modules (pip `audioldm2`, tests/original.py) compute on the same inputs, with the 48 kHz HiFi-GAN and mel recipe of
its published config; `-m audioldm-48k` downloads the file and converts it once.

The default run uses a tiny model in the 48k layout (two self-attention transformers per layer, CLAP FiLM, a
four-level VAE, a four-kernel HiFi-GAN; attention heads of 32 channels as published, so the original head count,
1 or 2 per block here, differs from diffusers' fixed 8 and the test sees it); the slow test builds the full-size model from the published config.
"""

from __future__ import annotations

import json

import pytest
import torch

import soundsmith
from soundsmith import checkpoints, convert

original = pytest.importorskip("original")
if not original.available():
    pytest.skip("the original model code is not installed: pip install --no-deps audioldm==0.1.1 audioldm2==0.1.0",
                allow_module_level=True)
diffusers = pytest.importorskip("diffusers")

from checkpoints import build_audioldm  # noqa: E402
from parity import compare, rel_err  # noqa: E402

TINY_48K_VOCODER = dict(original.TINY_VOCODER, upsample_rates=[3, 2], upsample_kernel_sizes=[6, 4],
                        resblock_kernel_sizes=[3, 5, 7, 9], resblock_dilation_sizes=[[1, 3, 5]] * 4,
                        sampling_rate=48000)
TINY_48K = dict(unet_kwargs=dict(num_head_channels=32), vocoder=TINY_48K_VOCODER,
                ddconfig=dict(original.TINY_DDCONFIG, ch_mult=[1, 2, 2, 2]))


def _vocoder_config(vocoder: dict) -> dict:
    keys = ("num_mels", "upsample_rates", "upsample_kernel_sizes", "upsample_initial_channel",
            "resblock_kernel_sizes", "resblock_dilation_sizes", "sampling_rate")
    return {"model": {"params": {"vocoder_config": {"params": {k: vocoder[k] for k in keys}}}}}


@pytest.fixture(scope="module")
def tiny_48k(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-48k")
    state, modules = original.film_checkpoint(**TINY_48K)
    torch.save({"state_dict": state}, root / "audioldm_48k.pth")
    (root / "config.json").write_text(json.dumps(_vocoder_config(TINY_48K_VOCODER)))
    tokenizers = build_audioldm(root / "tokenizers")
    folder = convert.convert(root / "audioldm_48k.pth", root / "converted", config=root / "config.json",
                             tokenizers_from=tokenizers)
    return state, modules, folder, root


def test_48k_layout_becomes_an_audioldm_pipeline_with_the_original_heads(tiny_48k):
    _, _, folder, _ = tiny_48k
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "AudioLDMPipeline"
    assert index["unet"] == ["audioldm2", "AudioLDM2UNet2DConditionModel"]
    unet = json.loads((folder / "unet" / "config.json").read_text())
    assert unet["cross_attention_dim"] == [[None, None]] * 3  # the extra self-attention + context_dim [None]
    assert unet["attention_head_dim"] == [1, 2, 2]  # channels (32, 64, 64) / num_head_channels 32 (diffusers: 8)
    assert unet["class_embed_type"] == "simple_projection" and unet["class_embeddings_concat"] is True
    assert unet["sample_size"] == 1024 // 8  # 10.24 s, the latent_t_size of its config
    assert json.loads((folder / "soundsmith.json").read_text()) == {"num_inference_steps": 200,
                                                                    "guidance_scale": 3.5}


def test_48k_unet_step_vae_decode_and_vocoder_match_the_original_modules(tiny_48k):
    _, modules, folder, _ = tiny_48k
    pipe = soundsmith.load(folder, device="cpu")
    reference = diffusers.AudioLDM2UNet2DConditionModel.from_pretrained(folder / "unet").eval()
    g = torch.Generator().manual_seed(0)
    x, t = torch.randn(2, 4, 24, 16, generator=g), torch.tensor([3, 901])
    film = torch.randn(2, original.CLAP_JOINT, generator=g)
    z = torch.randn(2, 4, 5, 4, generator=g)
    mel = torch.randn(2, 30, TINY_48K_VOCODER["num_mels"], generator=g)
    with torch.no_grad():
        expected = modules["unet"](x, t, y=film, context_list=[], context_attn_mask_list=[])
        assert rel_err(pipe.unet(x, t, class_labels=film), expected) < 1e-5
        assert rel_err(reference(x, t, encoder_hidden_states=None, class_labels=film).sample, expected) < 1e-5
        assert rel_err(pipe.vae.decode(z), modules["vae"].decode(z)) < 1e-5
        assert rel_err(pipe.vocoder(mel), modules["vae"].vocoder(mel.transpose(1, 2)).squeeze(1)) < 1e-5


def test_48k_clap_text_tower_matches_the_conditioning_clap(tiny_48k):
    _, modules, folder, _ = tiny_48k
    from transformers import ClapTextModelWithProjection

    clap = ClapTextModelWithProjection.from_pretrained(folder / "text_encoder").eval()
    ids = torch.tensor([[0, 311, 12, 2, 1], [0, 5, 2, 1, 1]])
    mask = (ids != 1).long()
    with torch.no_grad():
        expected = modules["clap"].get_text_embedding({"input_ids": ids.clone(), "attention_mask": mask.clone()})
        got = torch.nn.functional.normalize(clap(ids, attention_mask=mask).text_embeds, dim=-1)
    assert rel_err(got, expected) < 1e-6  # RoBERTa's own LayerNorm eps (1e-5) is kept for this model


def test_48k_generates_with_diffusers_and_soundsmith_alike(tiny_48k):
    _, _, folder, _ = tiny_48k
    errors = compare(folder, latents_shape=(1, 4, 20, 2), prompt="rain on a tin roof", num_inference_steps=3,
                     audio_length_in_s=0.02, guidance_scale=3.5)
    assert errors["waveform"] < 1e-4 and errors["mel"] < 1e-4, errors


def test_48k_vocoder_and_mel_recipe_come_from_the_published_config():
    """The published 48 kHz HiFi-GAN (built on the meta device: shapes only) is recognised, and the converted
    vocoder config gives soundsmith the mel recipe of the model's published preprocessing config."""
    from soundsmith import convert_configs, convert_keys
    from soundsmith.audio import MelConfig

    model = original.original("audioldm2.utilities.model")
    published = original.original("audioldm2.utils").get_audioldm_48k_config()
    with torch.device("meta"):
        generator = original.hifigan(model.get_vocoder_config_48k())
    described = convert_configs.Original(family="audioldm", layout="audioldm2-film")
    config = convert_configs.vocoder_config(convert_keys.fold_weight_norm(generator.state_dict()), described)
    assert config["upsample_rates"] == [6, 5, 4, 2, 2] and config["sampling_rate"] == 48000
    stft, mel = published["preprocessing"]["stft"], published["preprocessing"]["mel"]
    assert MelConfig.from_vocoder_config(config) == MelConfig(
        sample_rate=published["preprocessing"]["audio"]["sampling_rate"], n_fft=stft["filter_length"],
        hop_length=stft["hop_length"], win_length=stft["win_length"], n_mels=mel["n_mel_channels"],
        fmin=mel["mel_fmin"], fmax=mel["mel_fmax"])


def test_model_name_audioldm_48k_downloads_the_original_file_and_converts_it_once(tiny_48k, tmp_path, monkeypatch):
    import huggingface_hub

    state, _, folder, root = tiny_48k
    spec = checkpoints.MODELS["audioldm-48k"]
    assert (spec.repo, spec.file) == ("haoheliu/audioldm_48k", "audioldm_48k.pth")
    fetched = []

    def hf_hub_download(repo, filename, local_files_only=False):
        fetched.append((repo, filename, local_files_only))
        return str(root / "audioldm_48k.pth")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)
    monkeypatch.setattr(convert, "CACHE", tmp_path / "converted")
    monkeypatch.setattr(convert, "CLAP_TOKENIZER", str(root / "tokenizers" / "tokenizer"))
    monkeypatch.setattr(convert.configs, "KNOWN_VOCODERS", {  # the tiny HiFi-GAN as if it were the published one
        (16, 32, (6, 4), (3, 5, 7, 9)): _vocoder_config(TINY_48K_VOCODER)["model"]["params"]["vocoder_config"]["params"]})
    pipe = soundsmith.load("audioldm-48k", device="cpu")
    assert pipe.folder == tmp_path / "converted" / "audioldm-48k" and pipe.sample_rate == 48000
    assert fetched == [("haoheliu/audioldm_48k", "audioldm_48k.pth", True)]
    assert (pipe.default_steps, pipe.default_guidance) == (200, 3.5)
    out = pipe("rain", num_inference_steps=2, seed=0, audio_length_in_s=0.02)
    expected = soundsmith.load(folder, device="cpu")("rain", num_inference_steps=2, seed=0, audio_length_in_s=0.02)
    assert out.sample_rate == 48000 and out.audios.shape == (1, 960)
    assert (out.audios == expected.audios).all()
    monkeypatch.setattr(convert, "convert", lambda *a, **k: pytest.fail("converted twice"))
    assert checkpoints.resolve("audioldm-48k") == pipe.folder


def test_model_name_audioldm_48k_offline_and_not_cached_fails_with_one_line(monkeypatch):
    import huggingface_hub
    from huggingface_hub import constants

    def not_cached(*args, **kwargs):
        raise FileNotFoundError("not in cache")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", not_cached)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(soundsmith.ModelNotFound, match="audioldm-48k.*audioldm_48k.pth.*HF_HUB_OFFLINE") as info:
        checkpoints.resolve("audioldm-48k")
    assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------------------------- full size


@pytest.mark.slow
def test_full_size_48k_from_the_published_config_matches_the_original_and_generates_48khz(tmp_path):
    """The published audioldm_48k configuration (AudioLDM 2 repository, audioldm2/utils.py) at full size with random
    weights: UNet 16→16 channels with CLAP FiLM 512, VAE ch 128 × [1, 2, 4, 8] with z 16 over 256 mels, the 48 kHz
    HiFi-GAN, HTSAT-base + RoBERTa-base CLAP. Converted without a config (everything from the shapes and the
    published defaults), its modules match the original ones and it generates 48 kHz audio."""
    published = original.original("audioldm2.utils").get_audioldm_48k_config()["model"]["params"]
    unet = {k: v for k, v in published["unet_config"]["params"].items() if k != "use_spatial_transformer"}
    ddconfig = published["first_stage_config"]["params"]["ddconfig"]
    vocoder = original.original("audioldm2.utilities.model").get_vocoder_config_48k()
    state, modules = original.film_checkpoint(
        unet_kwargs=unet, ddconfig=ddconfig, vocoder=vocoder,
        clap_kwargs=dict(embed_dim=128, depths=(2, 2, 12, 2), heads=(4, 8, 16, 32), window=8, spec_size=256,
                         joint=512, roberta=dict(layers=12, vocab_size=50265, intermediate_size=3072)))
    torch.save({"state_dict": state}, tmp_path / "audioldm_48k.pth")
    del state
    tokenizers = build_audioldm(tmp_path / "tokenizers", clap_max_length=512)
    folder = convert.convert(tmp_path / "audioldm_48k.pth", tmp_path / "converted", tokenizers_from=tokenizers)
    pipe = soundsmith.load(folder, device="cpu")
    assert pipe.sample_rate == 48000 and pipe.default_seconds == pytest.approx(10.24)
    g = torch.Generator().manual_seed(0)
    x, t, film = torch.randn(1, 16, 32, 32, generator=g), torch.tensor([500]), torch.randn(1, 512, generator=g)
    z, mel = torch.randn(1, 16, 8, 32, generator=g), torch.randn(1, 40, 256, generator=g) - 5
    with torch.no_grad():
        expected = modules["unet"](x, t, y=film, context_list=[], context_attn_mask_list=[])
        assert rel_err(pipe.unet(x, t, class_labels=film), expected) < 1e-4
        assert rel_err(pipe.vae.decode(z), modules["vae"].decode(z)) < 1e-4
        assert rel_err(pipe.vocoder(mel), modules["vae"].vocoder(mel.transpose(1, 2)).squeeze(1)) < 1e-4
    out = pipe("a dog barking", num_inference_steps=2, seed=0, audio_length_in_s=0.5)
    assert out.sample_rate == 48000 and out.audios.shape == (1, 24000)


def test_published_48k_unet_converts_with_heads_of_32_channels():
    """The published audioldm_48k UNet (shapes only, meta device): four levels 128·[1, 2, 3, 5], 16 latent channels,
    CLAP FiLM 512 concatenated, two self-attention transformers per layer, heads of 32 channels."""
    from soundsmith import convert_configs, convert_keys
    from soundsmith.models.unet import UNet, UNetConfig

    published = original.original("audioldm2.utils").default_audioldm_config("audioldm_48k")
    with torch.device("meta"):
        module = original.unet("audioldm2", **published["model"]["params"]["unet_config"]["params"])
    weights = module.state_dict()
    described = convert_configs.describe(
        {"model.diffusion_model.input_blocks.0.0.weight": weights["input_blocks.0.0.weight"],
         "cond_stage_models.0.model.text_branch.embeddings.word_embeddings.weight": torch.zeros(1)},
        published, None, "audioldm_48k.pth")
    shape = convert_configs.unet_shape(weights, described.layout)
    config = convert_configs.unet_config(shape, described, 8, "original")
    assert config["attention_head_dim"] == [4, 8, 12, 20]
    assert config["cross_attention_dim"] == [[None, None]] * 4 and config["in_channels"] == 16
    assert (config["projection_class_embeddings_input_dim"], config["class_embeddings_concat"]) == (512, True)
    assert config["sample_size"] == 128
    converted = convert_keys.unet(weights, shape.num_res_blocks, len(shape.contexts))
    with torch.device("meta"):
        ours = UNet(UNetConfig.from_dict(config)).state_dict()
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in converted.items()}
