"""Broken model folders (issue 20's probes): each raises CheckpointError with one line naming the file, never
another exception, and a shard index cannot make the loader open a file outside the component folder."""

import json
import shutil

import pytest

import soundsmith
from soundsmith import CheckpointError


@pytest.fixture
def folder(tiny_audioldm, tmp_path):
    """A private copy of the tiny AudioLDM folder, safe to damage."""
    return shutil.copytree(tiny_audioldm, tmp_path / "model")


def edit(folder, file, change):
    """Apply `change` to the parsed JSON of folder/file (its return value replaces the whole file when not None)."""
    path = folder / file
    data = json.loads(path.read_text())
    replaced = change(data)
    path.write_text(json.dumps(data if replaced is None else replaced))
    return path


def assert_refused(folder, *fragments):
    with pytest.raises(CheckpointError) as e:
        soundsmith.load(folder, device="cpu")
    message = str(e.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


@pytest.mark.parametrize("content, kind", [([], "a list"), (None, "null"), ("AudioLDMPipeline", "a string"),
                                           (3, "a number")])
def test_a_model_index_that_is_not_an_object_is_refused(folder, content, kind):
    edit(folder, "model_index.json", lambda data: content if content is not None else "null-marker")
    if content is None:
        (folder / "model_index.json").write_text("null")
    assert_refused(folder, "model_index.json", kind)


@pytest.mark.parametrize("content, kind", [([], "a list"), (None, "null")])
@pytest.mark.parametrize("component", ["unet", "vae", "vocoder"])
def test_a_component_config_that_is_not_an_object_is_refused(folder, component, content, kind):
    (folder / component / "config.json").write_text(json.dumps(content))
    assert_refused(folder, f"{component}/config.json", kind)


@pytest.mark.parametrize("file, key, value, fragments", [
    ("unet/config.json", "block_out_channels", "abc", ["block_out_channels='abc'", "whole numbers"]),
    ("unet/config.json", "block_out_channels", [8, "16"], ["block_out_channels=[8, '16']"]),
    ("unet/config.json", "norm_num_groups", 3, ["not all divisible by norm_num_groups=3"]),
    ("unet/config.json", "layers_per_block", 10**18, ["layers_per_block=1000000000000000000"]),
    ("unet/config.json", "flip_sin_to_cos", "yes", ["flip_sin_to_cos='yes'", "true or false"]),
    ("unet/config.json", "norm_eps", float("nan"), ["norm_eps=nan"]),
    ("unet/config.json", "cross_attention_dim", {"a": 1}, ["cross_attention_dim"]),
    ("vae/config.json", "scaling_factor", 0, ["scaling_factor=0", "greater than 0"]),
    ("vae/config.json", "block_out_channels", None, ["block_out_channels=None"]),
    ("vae/config.json", "down_block_types", "DownEncoderBlock2D", ["down_block_types"]),
    ("vocoder/config.json", "sampling_rate", 0, ["sampling_rate=0", "from 1 to 768000"]),
    ("vocoder/config.json", "sampling_rate", 2**40, ["sampling_rate=1099511627776"]),
    ("vocoder/config.json", "upsample_rates", [2, "2"], ["upsample_rates"]),
    ("vocoder/config.json", "resblock_kernel_sizes", [4, 7], ["must be odd"]),
    ("vocoder/config.json", "fmax", 1e9, ["fmax"]),
    ("vocoder/config.json", "n_fft", "1024", ["n_fft"]),
    ("scheduler/scheduler_config.json", "beta_start", -0.001, ["beta_start=-0.001", "greater than 0"]),
    ("scheduler/scheduler_config.json", "num_train_timesteps", "1000", ["num_train_timesteps='1000'"]),
    ("scheduler/scheduler_config.json", "trained_betas", [0.1, 0.2], ["trained_betas", "1000 numbers"]),
    ("scheduler/scheduler_config.json", "steps_offset", 1.5, ["steps_offset=1.5"]),
    ("text_encoder/config.json", "num_hidden_layers", 10**9, ["num_hidden_layers=1000000000", "at most 256"]),
])
def test_a_config_value_of_the_wrong_type_or_range_is_refused(folder, file, key, value, fragments):
    edit(folder, file, lambda data: data.__setitem__(key, value))
    assert_refused(folder, file, *fragments)


@pytest.mark.parametrize("entry, fragment", [
    ("s", "unet='s' is not a component entry"),
    (["diffusers"], "unet=['diffusers'] is not a component entry"),
    ([None, None], "has no 'unet' component"),
    (["diffusers", "UNet3DConditionModel"], "unet is 'UNet3DConditionModel', expected UNet2DConditionModel"),
])
def test_a_broken_component_entry_is_named_as_it_is(folder, entry, fragment):
    edit(folder, "model_index.json", lambda data: data.__setitem__("unet", entry))
    message = assert_refused(folder, "model_index.json" if "entry" in fragment or "has no" in fragment else "",
                             fragment)
    assert "is a s" not in message


@pytest.mark.parametrize("key", ["text_encoder", "tokenizer"])
def test_a_conditioning_entry_that_is_a_string_is_refused(folder, key):
    edit(folder, "model_index.json", lambda data: data.__setitem__(key, "ClapTextModelWithProjection"))
    assert_refused(folder, f"{key}='ClapTextModelWithProjection' is not a component entry")


def test_a_soundsmith_json_with_non_finite_or_boolean_defaults_is_refused(folder):
    for content in ('{"guidance_scale": Infinity}', '{"num_inference_steps": true}', "[]"):
        (folder / "soundsmith.json").write_text(content)
        assert_refused(folder, "soundsmith.json")


@pytest.mark.parametrize("shard", ["../outside.safetensors", "/tmp/outside.safetensors", "sub/../../x.safetensors",
                                   "model.bin", 5])
def test_a_shard_index_naming_files_outside_the_component_is_refused_before_opening_them(folder, shard, monkeypatch):
    """The unet's weights become a one-shard index; a shard outside the folder (or of another kind) must be refused
    before anything opens it: here any opened file outside the unet folder fails the test."""
    import safetensors.torch

    unet = folder / "unet"
    weights = unet / "diffusion_pytorch_model.safetensors"
    weights.rename(unet / "part-1.safetensors")
    (unet / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {"conv_in.weight": "part-1.safetensors", "conv_in.bias": shard}}))
    shutil.copy(unet / "part-1.safetensors", folder / "outside.safetensors")
    opened = []
    real_load = safetensors.torch.load_file
    monkeypatch.setattr(safetensors.torch, "load_file", lambda file, *a, **k: (opened.append(str(file)),
                                                                                real_load(file, *a, **k))[1])
    assert_refused(folder, "diffusion_pytorch_model.safetensors.index.json", "shard")
    assert opened == []


def test_a_shard_index_inside_the_component_still_loads(folder):
    unet = folder / "unet"
    (unet / "diffusion_pytorch_model.safetensors").rename(unet / "part-1.safetensors")
    from safetensors.torch import load_file

    keys = list(load_file(unet / "part-1.safetensors"))
    (unet / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {key: "part-1.safetensors" for key in keys}}))
    assert soundsmith.load(folder, device="cpu").unet is not None


@pytest.mark.parametrize("file", ["unet/config.json", "scheduler/scheduler_config.json"])
def test_json_nested_too_deep_is_refused(folder, file):
    (folder / file).write_text("[" * 100_000 + "]" * 100_000)
    assert_refused(folder, file, "not valid JSON")
