"""Careless and hostile input at the request, CLI and engine layers: checked before any model loads, one line each,
nothing lost, no silent NaN audio, no traceback (issue 20)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import soundsmith
from soundsmith import InvalidArgument
from soundsmith.cli import main
from soundsmith.errors import NonFiniteError
from soundsmith.outputs import Planner


@pytest.fixture
def no_model_loads(monkeypatch):
    """Fails the test if anything tries to load a model."""
    import soundsmith.pipelines

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the arguments were checked")

    monkeypatch.setattr(soundsmith.pipelines, "load", refuse)


def one_line(capsys, argv) -> str:
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("soundsmith: error: "), err
    return err[0]


@pytest.mark.parametrize("argv, fragment", [
    (["generate", "a dog", "--seed", "-1"], "--seed -1"),
    (["generate", "a dog", "--eta", "1e6"], "--eta 1e+06"),
    (["generate", "a dog", "--guidance", "1e30"], "guidance_scale=1e+30"),
    (["generate", "a dog", "--sampler", "foo"], "--sampler 'foo' is not supported"),
    (["generate", "a dog", "-n", "10000"], "at most 32"),
    (["generate", "a dog", "--max-new-tokens", "0"], "--max-new-tokens=0"),
    (["generate", "a \udcff dog"], "not valid Unicode"),
    (["generate", "a dog", "--negative", "\ud800"], "--negative '\\ud800' is not valid Unicode"),
    (["generate", "a" * 3000], "prompt is 3000 characters long"),
    (["generate", "a dog", "-o", "{tmp}/" + "n" * 300 + ".wav"], "the file system allows 255 per name"),
    (["generate", "a dog", "-o", "{tmp}", "--force"], "unsupported extension"),
    (["generate", "a dog", "-o", "{tmp}/folder.wav", "--force"], "is a folder"),
    (["transfer", "{tmp}/in.wav", "x" * 1900], "too long to store in a WAV"),
    (["generate", "a dog", "--loudness", "-80"], "-80"),
    (["generate", "a dog", "--loudness", "loud"], "loudness 'loud': give a target in LUFS"),
    (["transfer", "{tmp}/in.wav", "drums", "--loudness", "5"], "5"),
    (["batch", "{tmp}/jobs.txt", "-o", "{tmp}/b", "--loudness", "nan"], "nan"),
])
def test_bad_input_is_refused_before_any_model_loads(capsys, tmp_path, no_model_loads, argv, fragment):
    (tmp_path / "folder.wav").mkdir()
    import numpy as np
    import soundfile

    soundfile.write(tmp_path / "in.wav", np.zeros(1600), 16000)
    (tmp_path / "jobs.txt").write_text("a dog\n")
    error = one_line(capsys, [a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert fragment in error, error


def test_a_prompt_file_line_with_a_lone_surrogate_is_named_before_any_work(capsys, tmp_path, no_model_loads):
    listing = tmp_path / "jobs.jsonl"
    listing.write_text(json.dumps({"prompt": "ok"}) + "\n" + '{"prompt": "a \\ud800 dog"}\n')
    error = one_line(capsys, ["generate", "--prompts", listing, "-o", tmp_path / "out"])
    assert "line 2: prompt 'a \\ud800 dog' is not valid Unicode" in error


def test_a_prompt_file_duration_error_names_its_line(capsys, tmp_path, no_model_loads):
    listing = tmp_path / "jobs.jsonl"
    listing.write_text(json.dumps({"prompt": "ok"}) + "\n" + json.dumps({"prompt": "x", "duration": 1e9}) + "\n")
    assert "line 2: duration=1000000000.0 is not allowed" in one_line(capsys, ["generate", "--prompts", listing])


def test_a_failed_run_leaves_no_folder_it_created(capsys, tmp_path):
    target = tmp_path / "new" / "deeper" / "x.wav"
    assert main(["generate", "a dog", "-m", str(tmp_path / "no-such-model"), "-o", str(target)]) == 2
    assert "does not exist" in capsys.readouterr().err.strip().splitlines()[-1]
    assert not (tmp_path / "new").exists()


def test_planning_names_is_linear_in_the_number_of_prompts(tmp_path, monkeypatch):
    calls = [0]
    exists = Path.exists

    def counted(self, *args, **kwargs):
        calls[0] += 1
        return exists(self, *args, **kwargs)

    monkeypatch.setattr(Path, "exists", counted)
    (tmp_path / "a_dog.wav").write_bytes(b"keep")
    planner = Planner()
    names = [planner.from_prompt("a dog", 1, tmp_path)[0].name for _ in range(3000)]
    assert names[:3] == ["a_dog-2.wav", "a_dog-3.wav", "a_dog-4.wav"] and len(set(names)) == 3000
    assert calls[0] < 3 * 3000  # a rescan per name would be ~4.5 million


def test_nan_latents_and_wrong_shapes_are_one_line(tiny_audioldm):
    pipe = soundsmith.load(tiny_audioldm, device="cpu")
    good = torch.zeros(pipe.latent_shape(1, 8))
    with pytest.raises(InvalidArgument, match="latents= must be a tensor of finite values"):
        pipe("a dog", audio_length_in_s=0.032, latents=torch.full_like(good, float("nan")))
    with pytest.raises(InvalidArgument, match=r"latents= has shape \(1, 8, 3, 2\); this call needs"):
        pipe("a dog", audio_length_in_s=0.032, latents=torch.zeros(1, 8, 3, 2))
    with pytest.raises(InvalidArgument, match=r"guidance_scale=1e\+30"):
        pipe("a dog", guidance_scale=1e30)
    with pytest.raises(InvalidArgument, match="eta=1000000.0"):
        pipe("a dog", eta=1e6)
    with pytest.raises(InvalidArgument, match=r"sampler_options=\[1\]"):
        pipe("a dog", sampler_options=[1])
    assert pipe("a dog", audio_length_in_s=0.032, num_inference_steps=__import__("numpy").int64(2)).audios.shape[0] == 1


def test_weights_that_produce_nan_stop_the_run_at_the_first_step(tiny_audioldm, tmp_path):
    pipe = soundsmith.load(tiny_audioldm, device="cpu")
    with torch.no_grad():
        pipe.unet.conv_out.bias.fill_(float("nan"))
    with pytest.raises(NonFiniteError, match="at evaluation 1 .*weights"):
        pipe("a dog", audio_length_in_s=0.032, num_inference_steps=3, seed=0)


def _cli(*argv, **kwargs):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(Path(soundsmith.__file__).parents[1])}
    return subprocess.Popen([sys.executable, "-m", "soundsmith.cli", *map(str, argv)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, **kwargs)


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@pytest.mark.parametrize("after", [0.5, 4.0])
def test_a_signal_at_any_moment_leaves_no_traceback_and_no_temporary_file(tiny_audioldm, tmp_path, signum, status,
                                                                           after):
    out = tmp_path / "o.wav"
    proc = _cli("generate", "a dog", "-m", tiny_audioldm, "--steps", "400", "-d", "2", "-o", out)
    time.sleep(after)
    proc.send_signal(signum)
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert "Traceback" not in err, err
    # 0: it finished first; -signum: it came before Python had started our code (nothing written, nothing shown)
    assert proc.returncode in (status, 0, -signum), (proc.returncode, err)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_file_that_appears_during_the_run_is_kept_and_the_sound_goes_beside_it(capsys, tiny_audioldm, tmp_path,
                                                                                   monkeypatch):
    from soundsmith import engine

    late = tmp_path / "late.wav"
    run = engine.run

    def user_writes_meanwhile(*args, **kwargs):
        out = run(*args, **kwargs)
        late.write_text("IMPORTANT")
        return out

    monkeypatch.setattr(engine, "run", user_writes_meanwhile)
    assert main(["generate", "a dog", "-m", str(tiny_audioldm), "--steps", "1", "-d", "0.032", "-o", str(late)]) == 0
    out, err = capsys.readouterr()
    assert late.read_text() == "IMPORTANT"
    assert out.strip() == str(tmp_path / "late-2.wav") and (tmp_path / "late-2.wav").exists()
    assert "soundsmith: warning: " in err and "appeared while this run was under way" in err


def test_upscaling_a_silent_input_says_it_is_silent(tiny_audioldm):
    from soundsmith import edit

    pipe = soundsmith.load(tiny_audioldm, device="cpu")
    with pytest.raises(InvalidArgument, match="the input is silent: there is no band to keep"):
        edit.upscale(pipe, torch.zeros(4096))
