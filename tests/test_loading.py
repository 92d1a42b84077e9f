"""Model names, hub downloads (what is fetched), and loading details."""

import inspect

import numpy as np
import pytest

import soundsmith
import torch
from soundsmith.checkpoints import MODELS, files_to_fetch

HUB_LISTING = [  # shaped like cvssp/audioldm2's file list
    ".gitattributes", "README.md", "model_index.json", "audioldm2.ckpt",
    "feature_extractor/preprocessor_config.json",
    "language_model/config.json", "language_model/model.safetensors", "language_model/pytorch_model.bin",
    "projection_model/config.json", "projection_model/diffusion_pytorch_model.safetensors",
    "projection_model/diffusion_pytorch_model.bin", "scheduler/scheduler_config.json",
    "text_encoder/config.json", "text_encoder/model.safetensors", "text_encoder/model.fp16.safetensors",
    "text_encoder_2/config.json", "text_encoder_2/pytorch_model.bin",
    "tokenizer/merges.txt", "tokenizer/special_tokens_map.json", "tokenizer/tokenizer.json",
    "tokenizer/tokenizer_config.json", "tokenizer/vocab.json",
    "tokenizer_2/special_tokens_map.json", "tokenizer_2/spiece.model", "tokenizer_2/tokenizer.json",
    "tokenizer_2/tokenizer_config.json",
    "unet/config.json", "unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.fp16.safetensors",
    "vae/config.json", "vae/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.bin",
    "vocoder/config.json", "vocoder/model.safetensors", "flax_model.msgpack", "unet/model.onnx",
]


def test_only_the_files_a_pipeline_needs_are_fetched():
    chosen = set(files_to_fetch(HUB_LISTING))
    assert "model_index.json" in chosen and "unet/config.json" in chosen and "tokenizer_2/spiece.model" in chosen
    assert "language_model/model.safetensors" in chosen and "language_model/pytorch_model.bin" not in chosen
    assert "text_encoder_2/pytorch_model.bin" in chosen  # no safetensors there: the .bin is the weights
    for skipped in ("audioldm2.ckpt", "README.md", "text_encoder/model.fp16.safetensors", "flax_model.msgpack",
                    "unet/model.onnx", "unet/diffusion_pytorch_model.fp16.safetensors", "vae/diffusion_pytorch_model.bin"):
        assert skipped not in chosen


def test_every_alias_names_a_hub_repository():
    for name, spec in MODELS.items():
        owner, _, repo = spec.repo.partition("/")
        assert owner and repo, name


def test_pytorch_bin_weights_load(tiny_audioldm, tmp_path):
    """A folder whose weights are .bin files (torch.load with weights_only) loads and matches the safetensors one."""
    import shutil

    import torch
    from safetensors.torch import load_file

    folder = shutil.copytree(tiny_audioldm, tmp_path / "bin")
    for sub, stem in [("unet", "diffusion_pytorch_model"), ("vae", "diffusion_pytorch_model"), ("vocoder", "model")]:
        file = folder / sub / f"{stem}.safetensors"
        torch.save(load_file(file), folder / sub / f"{stem}.bin")
        file.unlink()
    a = soundsmith.load(tiny_audioldm, device="cpu")("a dog", num_inference_steps=2, seed=0).audios
    b = soundsmith.load(folder, device="cpu")("a dog", num_inference_steps=2, seed=0).audios
    assert (a == b).all()


def test_audioldm2_defaults_are_the_reference_defaults(tiny_audioldm2):
    diffusers = pytest.importorskip("diffusers")

    pipe = soundsmith.load(tiny_audioldm2, device="cpu")
    ref = inspect.signature(diffusers.AudioLDM2Pipeline.__call__).parameters
    assert pipe.default_steps == ref["num_inference_steps"].default == 200
    assert pipe.default_guidance == ref["guidance_scale"].default == 3.5
    ours = inspect.signature(type(pipe).__call__).parameters
    assert ours["num_inference_steps"].default == 200 and ours["guidance_scale"].default == 3.5
    assert pipe.language_model.config.max_new_tokens == 8


def test_audioldm_call_accepts_every_argument_diffusers_documents(tiny_audioldm):
    diffusers = pytest.importorskip("diffusers")

    pipe = soundsmith.load(tiny_audioldm, device="cpu")
    ours = inspect.signature(type(pipe).__call__).parameters
    for name in inspect.signature(diffusers.AudioLDMPipeline.__call__).parameters:
        assert name in ours, name


def test_audioldm2_call_accepts_every_argument_diffusers_documents(tiny_audioldm2):
    diffusers = pytest.importorskip("diffusers")

    ours = inspect.signature(soundsmith.AudioLDM2.__call__).parameters
    for name in inspect.signature(diffusers.AudioLDM2Pipeline.__call__).parameters:
        assert name in ours, name


@pytest.mark.parametrize("fixture, conditioning", [
    ("tiny_audioldm", ["text_encoder"]),
    ("tiny_musicldm", ["text_encoder"]),
    ("tiny_audioldm2", ["text_encoder", "text_encoder_2", "projection_model", "language_model"]),
])
def test_model_offload_runs_each_network_in_its_stage_and_changes_nothing(request, fixture, conditioning):
    """With offload each stage names its networks before it runs (they go to the device, the rest to the CPU); here
    device and CPU are the same, so what is checked is the staging order, where each network sits when it runs and
    that outputs are unchanged (the GPU run is in bench/RESULTS.md when a GPU is lent)."""
    folder = request.getfixturevalue(fixture)
    reference = soundsmith.load(folder, device="cpu")("a dog barking", num_inference_steps=2, seed=0, rank=False)
    pipe = soundsmith.load(folder, device="cpu").enable_model_cpu_offload()
    staged, ran = [], []
    stage = pipe.stage
    pipe.stage = lambda *names: (staged.append(names), stage(*names))
    for name, module in pipe.modules().items():
        for part in module.modules():  # the VAE runs through its decoder, not its forward
            part.register_forward_pre_hook(lambda m, a, name=name: ran.append((name, staged[-1] if staged else ())))
    out = pipe("a dog barking", num_inference_steps=2, seed=0, rank=False)
    assert staged == [tuple(conditioning), ("unet",), ("vae",), ("vocoder",)]
    assert {name for name, _ in ran} >= {*conditioning[:1], "unet", "vae", "vocoder"}
    assert all(name in names for name, names in ran)  # no network runs outside its stage
    np.testing.assert_array_equal(out.audios, reference.audios)
    with pytest.raises(soundsmith.InvalidArgument, match="offload=True needs a cuda or mps device"):
        soundsmith.load(folder, device="cpu", offload=True)


def test_a_model_can_ask_for_zero_mean_starting_noise(tiny_audioldm, tmp_path):
    import shutil

    from soundsmith import samplers

    folder = tmp_path / "zero-mean"
    shutil.copytree(tiny_audioldm, folder)
    plain = soundsmith.load(tiny_audioldm, device="cpu")
    (folder / "soundsmith.json").write_text('{"initial_noise": "zero-mean"}')
    pipe = soundsmith.load(folder, device="cpu")
    assert (plain.initial_noise, pipe.initial_noise) == ("gaussian", "zero-mean")
    drawn = plain.initial_latents(2, 8, torch.Generator().manual_seed(0), None)
    noise = pipe.initial_latents(2, 8, torch.Generator().manual_seed(0), None)
    assert noise.mean(dim=(2, 3)).abs().max() < 1e-6 < drawn.mean(dim=(2, 3)).abs().max()
    assert torch.allclose(noise, samplers.zero_mean_noise(drawn, pipe.unet_sample_size))
    given = torch.randn(1, *noise.shape[1:])
    assert torch.equal(pipe.initial_latents(1, 8, None, given), given)  # latents a caller passes are kept
    audio = pipe("a dog", audio_length_in_s=0.1, seed=0, num_inference_steps=1).audios[0]
    assert np.isfinite(audio).all() and not np.array_equal(audio, plain("a dog", audio_length_in_s=0.1, seed=0,
                                                                        num_inference_steps=1).audios[0])
    (folder / "soundsmith.json").write_text('{"initial_noise": "zero-mean-bands"}')
    bands = soundsmith.load(folder, device="cpu").initial_latents(2, 8, torch.Generator().manual_seed(0), None)
    assert bands.mean(dim=2).abs().max() < 1e-6 < noise.mean(dim=2).abs().max()
    assert torch.allclose(bands, samplers.zero_mean_noise(drawn, pipe.unet_sample_size, per_band=True))
    (folder / "soundsmith.json").write_text('{"initial_noise": "pink"}')
    with pytest.raises(soundsmith.CheckpointError,
                       match="initial_noise 'pink' is not one of gaussian, zero-mean, zero-mean-bands"):
        soundsmith.load(folder, device="cpu")


def test_zero_mean_noise_is_centred_per_window():
    from soundsmith import samplers

    noise = torch.randn(2, 4, 130, 16, generator=torch.Generator().manual_seed(1)) + 0.3
    out = samplers.zero_mean_noise(noise, 64)  # two windows of 65 rows
    for part in (out[:, :, :65], out[:, :, 65:]):
        assert part.mean(dim=(2, 3)).abs().max() < 1e-5
        assert float(part.var(dim=(2, 3)).mean()) == pytest.approx(float(noise.var(dim=(2, 3)).mean()), rel=0.05)
    assert samplers.zero_mean_noise(noise[:, :, :10], 64).mean(dim=(2, 3)).abs().max() < 1e-5  # shorter: one window


def test_zero_mean_bands_noise_centres_every_band_per_window():
    from soundsmith import samplers

    noise = torch.randn(2, 4, 130, 16, generator=torch.Generator().manual_seed(1)) + torch.linspace(-1, 1, 16)
    out = samplers.zero_mean_noise(noise, 64, per_band=True)  # two windows of 65 rows
    for part in (out[:, :, :65], out[:, :, 65:]):
        assert part.mean(dim=2).abs().max() < 1e-5  # every channel's every frequency column, over the window's rows
        assert torch.allclose(part.std(dim=(2, 3)), torch.ones(2, 4))  # the band offsets gone, each channel's std 1
    assert samplers.zero_mean_noise(noise[:, :, :10], 64, per_band=True).mean(dim=2).abs().max() < 1e-5
    one_row = samplers.zero_mean_noise(noise[:, :, :1], 64, per_band=True)  # one row: the channel rule, not zeros
    assert torch.equal(one_row, samplers.zero_mean_noise(noise[:, :, :1], 64)) and one_row.abs().sum() > 0


def test_a_models_own_defaults_come_from_soundsmith_json(tiny_audioldm, tmp_path):
    import shutil

    folder = tmp_path / "own-defaults"
    shutil.copytree(tiny_audioldm, folder)
    (folder / "soundsmith.json").write_text('{"num_inference_steps": 7, "guidance_scale": 4.5}')
    pipe = soundsmith.load(folder, device="cpu")
    assert (pipe.default_steps, pipe.default_guidance) == (7, 4.5)
    steps = []
    pipe("a dog", audio_length_in_s=0.1, seed=0, callback=lambda i, t, x: steps.append(i), callback_steps=1)
    assert len(steps) == 7
    (folder / "soundsmith.json").write_text('{"num_inference_steps": 0}')
    with pytest.raises(soundsmith.CheckpointError, match="soundsmith.json: num_inference_steps must be"):
        soundsmith.load(folder, device="cpu")
