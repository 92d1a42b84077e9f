"""The UNet through OpenVINO (soundsmith.openvino_unet): same audio as torch, converted once per shape and read
back from disk by a later pipeline, chosen by measurement with backend="fastest", clear errors where it cannot run."""

import json

import numpy as np
import pytest
import torch

import soundsmith
from soundsmith import openvino_unet
from soundsmith.errors import InvalidArgument

needs_openvino = pytest.mark.skipif(not openvino_unet.available(), reason="OpenVINO is not installed")
KWARGS = dict(audio_length_in_s=0.256, num_inference_steps=2, seed=0)


def rel_err(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SOUNDSMITH_CACHE", str(tmp_path))
    return tmp_path


@needs_openvino
@pytest.mark.parametrize("family", ["tiny_audioldm", "tiny_audioldm2"])
def test_openvino_unet_gives_torchs_audio_and_a_later_pipeline_reads_it_from_disk(family, request, cache,
                                                                                  monkeypatch):
    folder = request.getfixturevalue(family)
    eager = soundsmith.load(folder, device="cpu", progress=False)("a dog barking", **KWARGS).audios
    pipe = soundsmith.load(folder, device="cpu", backend="openvino", progress=False)
    assert isinstance(pipe.unet, openvino_unet.OpenVINOUNet)
    got = pipe("a dog barking", **KWARGS).audios
    assert got.shape == eager.shape and rel_err(got, eager) < 1e-4
    assert len(list((cache / "openvino").glob("unet-*.xml"))) == 1
    assert len(list((cache / "openvino").glob("unet-*.bin"))) == 1
    monkeypatch.setattr(openvino_unet, "convert", lambda *a, **k: pytest.fail("converted again"))
    again = soundsmith.load(folder, device="cpu", backend="openvino", progress=False)
    assert np.array_equal(again("a dog barking", **KWARGS).audios, got)


@needs_openvino
def test_changed_weights_name_another_model_file(tiny_audioldm, cache):
    """A later pipeline whose UNet weights differ (another checkpoint, a merged LoRA) never reads a stale model."""
    unet = soundsmith.load(tiny_audioldm, device="cpu", backend="openvino", progress=False).unet
    signature = (((2, 8, 8, 4), "torch.float32", "cpu"), ((), "torch.int64", "cpu"), ())
    before = unet.model_path(signature)
    assert before == unet.model_path(signature) and before.parent == cache / "openvino"
    with torch.no_grad():
        unet.module.conv_out.bias.add_(0.5)
    assert unet.model_path(signature) != before


@needs_openvino
def test_bfloat16_pipeline_runs_its_unet_through_openvino(tiny_audioldm, cache):
    full = soundsmith.load(tiny_audioldm, device="cpu", dtype="bfloat16", progress=False)("a dog", **KWARGS).audios
    pipe = soundsmith.load(tiny_audioldm, device="cpu", dtype="bfloat16", backend="openvino", progress=False)
    got = pipe("a dog", **KWARGS).audios
    assert got.shape == full.shape and np.isfinite(got).all() and rel_err(got, full) < 5e-2


@needs_openvino
def test_fastest_measures_once_per_machine_and_shape_then_remembers(tiny_audioldm, cache, monkeypatch):
    pipe = soundsmith.load(tiny_audioldm, device="cpu", backend="fastest", progress=False)
    first = pipe("a dog", **KWARGS).audios
    (verdict,) = pipe.unet.chosen.values()
    assert verdict in ("torch", "openvino")
    machine = json.loads((cache / "machine.json").read_text())
    (entry,) = machine.values()
    assert [v for k, v in entry.items() if k.startswith("unet backend ")] == [verdict]
    monkeypatch.setattr(openvino_unet.OpenVINOUNet, "_measure", lambda *a: pytest.fail("measured again"))
    again = soundsmith.load(tiny_audioldm, device="cpu", backend="fastest", progress=False)
    assert rel_err(again("a dog", **KWARGS).audios, first) < 1e-4 and list(again.unet.chosen.values()) == [verdict]


@needs_openvino
def test_fastest_takes_the_faster_backend(tiny_audioldm, cache, monkeypatch):
    """The verdict follows the timings: OpenVINO when it takes at most 97 % of torch's time."""
    pipe = soundsmith.load(tiny_audioldm, device="cpu", backend="fastest", progress=False)
    unet = pipe.unet
    sample, t = torch.randn(2, 8, 8, 4), torch.tensor(10)
    clock = iter(range(1000))
    monkeypatch.setattr(openvino_unet.time, "perf_counter", lambda: next(clock))  # every call takes 1 tick

    def slow(*a):
        next(clock)  # this one takes 2 ticks

    assert unet._measure(slow, lambda *a: None, sample, t, []) == "openvino"
    assert unet._measure(lambda *a: None, slow, sample, t, []) == "torch"


def test_backend_errors_name_the_value_and_what_is_allowed(tiny_audioldm, monkeypatch):
    with pytest.raises(InvalidArgument, match=r"backend='onnx' is not allowed \(allowed: torch, openvino, fastest\)"):
        soundsmith.load(tiny_audioldm, device="cpu", backend="onnx", progress=False)
    monkeypatch.setattr(openvino_unet, "available", lambda: False)
    with pytest.raises(InvalidArgument, match=r"needs OpenVINO: pip install 'soundsmith\[openvino\]'"):
        soundsmith.load(tiny_audioldm, device="cpu", backend="openvino", progress=False)
    monkeypatch.setattr(openvino_unet, "available", lambda: True)
    with pytest.raises(InvalidArgument, match="cannot be combined with compile"):
        soundsmith.load(tiny_audioldm, device="cpu", backend="fastest", compile=True, progress=False)
    with pytest.raises(InvalidArgument, match="not supported for int8"):
        soundsmith.load(tiny_audioldm, device="cpu", dtype="int8", backend="openvino", progress=False)
    with pytest.raises(InvalidArgument, match="runs the UNet on the cpu"):
        openvino_unet.check_backend("openvino", torch.device("cuda"))



@needs_openvino
def test_prompts_of_other_lengths_share_one_converted_model(tiny_audioldm2, cache):
    """AudioLDM 2's Flan-T5 states vary in length with the prompt: padded with masked zeros to a bucket, they share
    one model, and the audio is still torch's."""
    prompts = ("a dog", "a dog barking loudly in the rain next to a busy road")
    pipe = soundsmith.load(tiny_audioldm2, device="cpu", backend="openvino", progress=False)
    eager = soundsmith.load(tiny_audioldm2, device="cpu", progress=False)
    lengths = {eager.conditioning([p], None, 1, True, embeds={}, labels={})[0]["encoder_hidden_states_1"].shape[1]
               for p in prompts}
    assert len(lengths) == 2
    for prompt in prompts:
        got, expected = pipe(prompt, **KWARGS).audios, eager(prompt, **KWARGS).audios
        assert rel_err(got, expected) < 1e-4
    assert len(list((cache / "openvino").glob("unet-*.xml"))) == 1


def test_cli_backend_errors_are_one_line_with_exit_status_2(tiny_audioldm, tmp_path, monkeypatch, capsys):
    from soundsmith.cli import main

    with pytest.raises(SystemExit) as stopped:
        main(["generate", "a dog", "-m", str(tiny_audioldm), "--backend", "onnx", "-o", str(tmp_path / "x.wav")])
    assert stopped.value.code == 2 and "--backend: invalid choice: 'onnx'" in capsys.readouterr().err
    monkeypatch.setattr(openvino_unet, "available", lambda: False)
    code = main(["generate", "a dog", "-m", str(tiny_audioldm), "--backend", "openvino", "-o", str(tmp_path / "x.wav")])
    err = capsys.readouterr().err
    assert code == 2 and "needs OpenVINO: pip install 'soundsmith[openvino]'" in err and "Traceback" not in err
    assert not (tmp_path / "x.wav").exists()


@needs_openvino
def test_an_interrupted_conversion_leaves_no_model_behind(tiny_audioldm, cache, monkeypatch):
    """A conversion killed before its end leaves no .xml (the file a later process looks for) and no temporaries;
    the next sound converts again and runs."""
    import openvino

    pipe = soundsmith.load(tiny_audioldm, device="cpu", backend="openvino", progress=False)
    real_save = openvino.save_model

    def interrupted(model, path, **kwargs):
        real_save(model, path, **kwargs)
        raise KeyboardInterrupt  # after the files are written under their temporary names

    monkeypatch.setattr(openvino, "save_model", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pipe("a dog", **KWARGS)
    assert list((cache / "openvino").iterdir()) == []
    monkeypatch.setattr(openvino, "save_model", real_save)
    again = soundsmith.load(tiny_audioldm, device="cpu", backend="openvino", progress=False)
    assert np.isfinite(again("a dog", **KWARGS).audios).all()
    assert len(list((cache / "openvino").glob("unet-*.xml"))) == 1
