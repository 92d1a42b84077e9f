"""soundsmith's AudioLDM gives diffusers' AudioLDMPipeline output (mel and waveform, relative error ≤ 1e-4)."""

import pytest
import torch

from parity import TOLERANCE, compare

pytest.importorskip("diffusers")

PROMPT = "A hammer hitting a wooden surface"


def assert_parity(result):
    assert result["mel"] <= TOLERANCE, result["mel"]
    assert result["waveform"] <= TOLERANCE, result["waveform"]


def test_audioldm_matches_diffusers_with_default_settings(tiny_audioldm):
    result = compare(tiny_audioldm, prompt=PROMPT, num_inference_steps=2, latents_shape=(1, 4, 32, 4))
    assert result["ours"].shape == (1, 256)
    assert_parity(result)


def test_audioldm_matches_diffusers_with_its_own_latent_draw(tiny_audioldm):
    result = compare(tiny_audioldm, prompt=PROMPT, num_inference_steps=3, generator=torch.Generator().manual_seed(0))
    assert_parity(result)


def test_audioldm_matches_diffusers_with_negative_prompt(tiny_audioldm):
    result = compare(tiny_audioldm, prompt=PROMPT, negative_prompt="egg cracking", num_inference_steps=2,
                     latents_shape=(1, 4, 32, 4))
    assert_parity(result)


def test_audioldm_matches_diffusers_with_two_prompts_and_two_waveforms_each(tiny_audioldm):
    result = compare(tiny_audioldm, prompt=[PROMPT, "a dog barking in the rain"], negative_prompt=["egg cracking", ""],
                     num_waveforms_per_prompt=2, num_inference_steps=2, generator=torch.Generator().manual_seed(3))
    assert result["ours"].shape == (4, 256)
    assert_parity(result)


def test_audioldm_matches_diffusers_with_prompt_embeds_given(tiny_audioldm):
    embeds = torch.nn.functional.normalize(torch.randn(2, 8, generator=torch.Generator().manual_seed(5)), dim=-1)
    negative = torch.nn.functional.normalize(torch.randn(2, 8, generator=torch.Generator().manual_seed(6)), dim=-1)
    result = compare(tiny_audioldm, prompt_embeds=embeds, negative_prompt_embeds=negative, num_inference_steps=2,
                     latents_shape=(2, 4, 32, 4))
    assert_parity(result)


def test_audioldm_matches_diffusers_with_ddim_eta_and_generator(tiny_audioldm):
    result = compare(tiny_audioldm, prompt=PROMPT, eta=0.7, num_inference_steps=4,
                     generator=torch.Generator().manual_seed(11))
    assert_parity(result)


@pytest.mark.parametrize("seconds,samples", [(2.5, 40000), (3.3, 52800)])
def test_audioldm_matches_diffusers_at_lengths_that_need_rounding(tiny_audioldm, seconds, samples):
    result = compare(tiny_audioldm, prompt=PROMPT, audio_length_in_s=seconds, num_inference_steps=2,
                     generator=torch.Generator().manual_seed(2))
    assert result["ours"].shape == (1, samples)
    assert_parity(result)


def test_audioldm_matches_diffusers_with_dpm_solver_plus_plus_2m(tiny_audioldm):
    from diffusers import DPMSolverMultistepScheduler

    result = compare(tiny_audioldm, prompt=PROMPT, num_inference_steps=5, latents_shape=(1, 4, 32, 4),
                     reference_scheduler=DPMSolverMultistepScheduler, sampler="dpmpp-2m")
    assert_parity(result)


def test_audioldm_matches_diffusers_with_old_style_vae_key_names(tiny_audioldm_legacy_vae):
    result = compare(tiny_audioldm_legacy_vae, prompt=PROMPT, num_inference_steps=2, latents_shape=(1, 4, 32, 4))
    assert_parity(result)


def test_audioldm_real_tokenizer_length_matches_diffusers(tmp_path):
    """With the real checkpoints' 512-token CLAP tokenizer, negative prompts pad to the embedding width."""
    from checkpoints import build_audioldm

    folder = build_audioldm(tmp_path / "a512", clap_max_length=512)
    result = compare(folder, prompt=[PROMPT, "egg"], negative_prompt=["low quality", "noise"],
                     num_inference_steps=2, generator=torch.Generator().manual_seed(9))
    assert_parity(result)


def test_audioldm_callback_sees_diffusers_steps_and_latents(tiny_audioldm):
    from checkpoints import load_reference

    import soundsmith

    seen_ref, seen_ours = [], []
    latents = torch.randn(1, 4, 16, 4, generator=torch.Generator().manual_seed(0))
    load_reference(tiny_audioldm)(PROMPT, num_inference_steps=3, latents=latents.clone(), callback_steps=2,
                                  callback=lambda i, t, x: seen_ref.append((i, int(t), x.clone())))
    soundsmith.load(tiny_audioldm, device="cpu")(PROMPT, num_inference_steps=3, latents=latents.clone(),
                                                 callback_steps=2,
                                                 callback=lambda i, t, x: seen_ours.append((i, int(t), x.clone())))
    assert [(i, t) for i, t, _ in seen_ours] == [(i, t) for i, t, _ in seen_ref]
    for (_, _, a), (_, _, b) in zip(seen_ours, seen_ref):
        assert ((a - b).norm() / b.norm()) < TOLERANCE
