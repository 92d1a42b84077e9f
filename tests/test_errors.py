"""Bad input gives one line that names the value and what is allowed: exit status 2 in the CLI, no traceback;
a SoundsmithError (ValueError for arguments) from Python."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import soundsmith
from soundsmith import CheckpointError, InvalidArgument, ModelNotFound
from soundsmith.cli import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(capsys, argv, *fragments):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2, (code, err)
    errors = [line for line in err.strip().splitlines() if line.startswith("soundsmith: error: ")]
    assert len(errors) == 1 and err.strip().splitlines()[-1] == errors[0], err  # progress notes may precede it
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    assert "Traceback" not in err


@pytest.fixture
def folder(tiny_audioldm, tmp_path):
    """A private copy of the tiny AudioLDM folder, safe to damage."""
    return shutil.copytree(tiny_audioldm, tmp_path / "model")


# ---- generation arguments, checked before any model is loaded ------------------------------------------------

def test_empty_prompt_is_refused(capsys, tmp_path):
    assert_one_line_error(capsys, ["generate", "   ", "-o", str(tmp_path / "a.wav")], "prompt", "empty")


@pytest.mark.parametrize("duration", ["0", "-2", "nan", "100000"])
def test_non_positive_or_absurd_duration_is_refused(capsys, folder, tmp_path, duration):
    assert_one_line_error(capsys, ["generate", "a dog", "-m", str(folder), "-d", duration,
                                   "-o", str(tmp_path / "a.wav")], duration.replace("100000", "100000"))


def test_zero_steps_is_refused(capsys, tmp_path):
    assert_one_line_error(capsys, ["generate", "a dog", "--steps", "0", "-o", str(tmp_path / "a.wav")],
                          "steps=0", "≥ 1")


def test_negative_guidance_is_refused(capsys, tmp_path):
    assert_one_line_error(capsys, ["generate", "a dog", "--guidance", "-1", "-o", str(tmp_path / "a.wav")],
                          "guidance_scale=-1.0", "≥ 0")


def test_negative_prompt_list_of_wrong_length_is_refused(tiny_audioldm):
    pipe = soundsmith.load(tiny_audioldm, device="cpu")
    with pytest.raises(InvalidArgument, match="negative_prompt has 1 entries but there are 2 prompts"):
        pipe(["a dog", "a cat"], negative_prompt=["noise"], num_inference_steps=1)


@pytest.mark.parametrize("kwargs,fragment", [
    ({"prompt": ""}, "prompt=''"),
    ({"prompt": "a", "audio_length_in_s": -1.0}, "audio_length_in_s=-1.0"),
    ({"prompt": "a", "audio_length_in_s": 0.0001}, "between 0.0005 and 3600"),
    ({"prompt": "a", "num_inference_steps": 0}, "num_inference_steps=0"),
    ({"prompt": "a", "guidance_scale": -3}, "guidance_scale=-3"),
    ({"prompt": "a", "num_waveforms_per_prompt": 0}, "num_waveforms_per_prompt=0"),
    ({"prompt": "a", "callback_steps": 0}, "callback_steps=0"),
    ({"prompt": "a", "output_type": "pil"}, "output_type='pil'"),
    ({"prompt": "a", "seed": -1}, "seed=-1"),
    ({"prompt": "a", "eta": -0.5}, "eta=-0.5"),
    ({}, "prompt= or prompt_embeds="),
])
def test_python_api_refuses_bad_arguments_with_a_value_error(tiny_audioldm, kwargs, fragment):
    pipe = soundsmith.load(tiny_audioldm, device="cpu")
    with pytest.raises(ValueError) as info:
        pipe(**kwargs)
    assert isinstance(info.value, InvalidArgument)
    assert fragment in str(info.value) and "\n" not in str(info.value)


# ---- models and folders ----------------------------------------------------------------------------------------

def test_unknown_model_name_suggests_close_names(capsys, tmp_path):
    assert_one_line_error(capsys, ["generate", "a dog", "-m", "audioldm2-lrge", "-o", str(tmp_path / "a.wav")],
                          "unknown model 'audioldm2-lrge'", "Did you mean audioldm2-large")


def test_missing_folder_is_named(capsys, tmp_path):
    missing = str(tmp_path / "nowhere" / "model")
    assert_one_line_error(capsys, ["generate", "a dog", "-m", missing, "-o", str(tmp_path / "a.wav")],
                          missing, "does not exist")


def test_uncached_model_offline_says_how_to_get_it(capsys, tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ModelNotFound, match="'audioldm2' .cvssp/audioldm2. is not in the local cache.*soundsmith "
                                            "download audioldm2"):
        soundsmith.load("audioldm2", device="cpu")


def test_folder_of_another_pipeline_type_is_refused(capsys, folder, tmp_path):
    index = json.loads((folder / "model_index.json").read_text())
    index["_class_name"] = "StableDiffusionPipeline"
    (folder / "model_index.json").write_text(json.dumps(index))
    assert_one_line_error(capsys, ["generate", "a dog", "-m", str(folder), "-o", str(tmp_path / "a.wav")],
                          "StableDiffusionPipeline", "AudioLDMPipeline")


def test_folder_without_model_index_is_refused(folder):
    (folder / "model_index.json").unlink()
    with pytest.raises(CheckpointError, match="model_index.json is missing"):
        soundsmith.load(folder, device="cpu")


@pytest.mark.parametrize("component,file", [
    ("unet", "diffusion_pytorch_model.safetensors"),
    ("vocoder", "model.safetensors"),
    ("text_encoder", "model.safetensors"),
])
def test_truncated_weights_file_is_refused(capsys, folder, tmp_path, component, file):
    weights = folder / component / file
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    assert_one_line_error(capsys, ["generate", "a dog", "-m", str(folder), "-o", str(tmp_path / "a.wav")],
                          str(folder / component), "truncated or corrupted")


def test_corrupted_weights_file_is_refused(folder):
    weights = folder / "vae" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        soundsmith.load(folder, device="cpu")


def test_weights_that_do_not_match_the_config_list_the_keys(folder):
    from safetensors.torch import load_file, save_file

    file = folder / "unet" / "diffusion_pytorch_model.safetensors"
    state = load_file(file)
    state["extra.weight"] = state.pop("conv_in.weight")
    save_file(state, file)
    with pytest.raises(CheckpointError, match=r"missing keys: conv_in.weight; unexpected keys: extra.weight"):
        soundsmith.load(folder, device="cpu")


# ---- output ----------------------------------------------------------------------------------------------------

def test_unwritable_output_path_is_refused(capsys, tmp_path):
    if os.geteuid() == 0:  # root writes through permission bits: use a file system nobody can write
        locked = Path("/proc/self")
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
    assert_one_line_error(capsys, ["generate", "a dog", "-o", str(locked / "a.wav")], str(locked), "not writable")


def test_output_under_a_file_is_refused(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_one_line_error(capsys, ["generate", "a dog", "-o", str(blocker / "a.wav")], str(blocker), "cannot be created")


def test_unsupported_output_extension_is_refused(capsys, tmp_path):
    assert_one_line_error(capsys, ["generate", "a dog", "-o", str(tmp_path / "a.mp4")], "a.mp4", ".wav, .flac")


def test_existing_output_is_not_overwritten_without_force(capsys, tmp_path):
    target = tmp_path / "a.wav"
    target.write_bytes(b"precious")
    assert_one_line_error(capsys, ["generate", "a dog", "-o", str(target)], "already exists", "--force")
    assert target.read_bytes() == b"precious"


def test_bad_device_and_dtype_are_refused():
    with pytest.raises(InvalidArgument, match="device='tpu'"):
        soundsmith.load("whatever", device="tpu")
    with pytest.raises(InvalidArgument, match="dtype='int4'"):
        soundsmith.load("whatever", dtype="int4")


def test_console_script_exits_2_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "soundsmith.cli", "generate", "", "-o", str(tmp_path / "a.wav")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("soundsmith: error: ") and "Traceback" not in proc.stderr
