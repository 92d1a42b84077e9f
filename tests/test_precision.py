"""bfloat16 pipelines keep their text stage in float32 (pipelines.base.network_dtype): the UNet's conditioning is the
float32 pipeline's, rounded once to bfloat16."""

import pytest
import torch

import soundsmith

TEXT = ("text_encoder", "text_encoder_2", "projection_model", "language_model")


def conditioning(pipe) -> dict:
    with torch.no_grad():
        cond = pipe.conditioning(["a dog barking"], None, 1, True, embeds={}, labels={})[0]
    return {k: v for k, v in cond.items() if v is not None}


@pytest.mark.parametrize("family", ["tiny_audioldm", "tiny_musicldm", "tiny_audioldm2"])
def test_bfloat16_pipeline_conditions_the_unet_as_float32_rounded_once(family, request):
    folder = request.getfixturevalue(family)
    full = soundsmith.load(folder, device="cpu", progress=False)
    low = soundsmith.load(folder, device="cpu", dtype="bfloat16", progress=False)
    text = [name for name in TEXT if getattr(low, name, None) is not None]
    assert text and all(p.dtype == torch.float32 for name in text for p in getattr(low, name).parameters())
    assert low.unet.conv_in.weight.dtype == torch.bfloat16 and low.vocoder.conv_pre.weight.dtype == torch.bfloat16
    expected, got = conditioning(full), conditioning(low)
    assert got.keys() == expected.keys()
    for name, value in got.items():
        rounded = expected[name].to(torch.bfloat16) if expected[name].is_floating_point() else expected[name]
        assert value.dtype == rounded.dtype and torch.equal(value, rounded), name
    audio = low("a dog barking", audio_length_in_s=0.256, num_inference_steps=2, seed=0).audios
    assert audio.shape[-1] > 0 and torch.isfinite(torch.from_numpy(audio)).all()


def test_casting_a_float32_pipeline_to_bfloat16_keeps_the_same_parts_in_float32(tiny_audioldm2):
    pipe = soundsmith.load(tiny_audioldm2, device="cpu", progress=False).to(torch.bfloat16)
    assert pipe.dtype == torch.bfloat16 and pipe.unet.conv_in.weight.dtype == torch.bfloat16
    assert pipe.language_model.dtype == torch.float32 and pipe.vae.decoder.mid_block is not None
    assert next(pipe.vae.decoder.mid_block.parameters()).dtype == torch.float32
    assert pipe.to(torch.float32).language_model.dtype == torch.float32
