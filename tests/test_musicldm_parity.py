"""soundsmith's MusicLDM gives diffusers' MusicLDMPipeline output (mel and waveform, relative error ≤ 1e-4) — on
transformers 5, where the reference itself has to be patched (see checkpoints.load_reference)."""

import pytest
import torch

from parity import TOLERANCE, compare

pytest.importorskip("diffusers")

PROMPT = "Techno music with a strong, upbeat tempo and high melodic riffs."


@pytest.mark.parametrize("negative", [None, "egg cracking"])
def test_musicldm_matches_diffusers(tiny_musicldm, negative):
    result = compare(tiny_musicldm, prompt=PROMPT, negative_prompt=negative, num_inference_steps=2,
                     generator=torch.Generator().manual_seed(0))
    assert result["mel"] <= TOLERANCE and result["waveform"] <= TOLERANCE, result


def test_musicldm_matches_diffusers_with_two_prompts_and_two_waveforms_each(tiny_musicldm):
    result = compare(tiny_musicldm, prompt=[PROMPT, "a slow piano melody"], num_waveforms_per_prompt=2,
                     num_inference_steps=2, generator=torch.Generator().manual_seed(1), ours_kwargs={"rank": False})
    assert result["ours"].shape == (4, 256)
    assert result["mel"] <= TOLERANCE and result["waveform"] <= TOLERANCE, result


def test_musicldm_defaults_are_the_reference_defaults(tiny_musicldm):
    import inspect

    import soundsmith
    from diffusers import MusicLDMPipeline

    pipe = soundsmith.load(tiny_musicldm, device="cpu")
    ref = inspect.signature(MusicLDMPipeline.__call__).parameters
    assert pipe.default_steps == ref["num_inference_steps"].default == 200
    assert pipe.default_guidance == ref["guidance_scale"].default == 2.0
