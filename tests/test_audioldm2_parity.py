"""soundsmith's AudioLDM 2 gives diffusers' AudioLDM2Pipeline output (mel and waveform, relative error ≤ 1e-4), for
every checkpoint layout: base, large-style UNet, a language model saved as GPT2Model, and text-to-speech."""

import pytest
import torch

from parity import TOLERANCE, compare

pytest.importorskip("diffusers")

PROMPT = "A hammer hitting a wooden surface"


def assert_parity(result):
    assert result["mel"] <= TOLERANCE, result["mel"]
    assert result["waveform"] <= TOLERANCE, result["waveform"]


@pytest.mark.parametrize("fixture", ["tiny_audioldm2", "tiny_audioldm2_large", "tiny_audioldm2_gpt2model"])
def test_audioldm2_matches_diffusers(request, fixture):
    assert_parity(compare(request.getfixturevalue(fixture), prompt=PROMPT, num_inference_steps=2,
                          generator=torch.Generator().manual_seed(0)))


@pytest.mark.parametrize("fixture", ["tiny_audioldm2", "tiny_audioldm2_large"])
def test_audioldm2_matches_diffusers_with_negative_prompt(request, fixture):
    assert_parity(compare(request.getfixturevalue(fixture), prompt=PROMPT, negative_prompt="egg cracking",
                          num_inference_steps=2, generator=torch.Generator().manual_seed(1)))


@pytest.mark.parametrize("fixture", ["tiny_audioldm2", "tiny_audioldm2_large"])
def test_audioldm2_matches_diffusers_with_two_prompts_and_two_waveforms_each(request, fixture):
    # prompts of different T5 lengths: padding, the negative branch's truncation to the positive length, and the
    # GPT-2 positions over padded slots all matter here. Ranking is compared separately (the reference cannot
    # rank without librosa), so generation order is compared.
    result = compare(request.getfixturevalue(fixture), prompt=[PROMPT, "a dog barks"],
                     negative_prompt=["egg cracking", "Low quality."], num_waveforms_per_prompt=2,
                     num_inference_steps=2, generator=torch.Generator().manual_seed(2), ours_kwargs={"rank": False})
    assert result["ours"].shape == (4, 256)
    assert_parity(result)


def test_audioldm2_matches_diffusers_with_precomputed_embeddings(tiny_audioldm2):
    from checkpoints import load_reference

    ref = load_reference(tiny_audioldm2)
    embeds, mask, generated = ref.encode_prompt([PROMPT, "rain"], "cpu", 1, True, negative_prompt=["x", "y"])
    half = embeds.shape[0] // 2
    result = compare(tiny_audioldm2, prompt_embeds=embeds[half:], attention_mask=mask[half:],
                     generated_prompt_embeds=generated[half:], negative_prompt_embeds=embeds[:half],
                     negative_attention_mask=mask[:half], negative_generated_prompt_embeds=generated[:half],
                     num_inference_steps=2, generator=torch.Generator().manual_seed(3))
    assert_parity(result)


def test_audioldm2_matches_diffusers_with_max_new_tokens(tiny_audioldm2):
    assert_parity(compare(tiny_audioldm2, prompt=PROMPT, max_new_tokens=3, num_inference_steps=2,
                          generator=torch.Generator().manual_seed(4)))


@pytest.mark.parametrize("negative", [None, "egg cracking"])
def test_audioldm2_speech_matches_diffusers(tiny_audioldm2_tts, negative):
    assert_parity(compare(tiny_audioldm2_tts, prompt="A men saying", transcription="hello my name is john",
                          negative_prompt=negative, num_inference_steps=2, generator=torch.Generator().manual_seed(5)))


def test_audioldm2_speech_needs_a_transcription(tiny_audioldm2_tts):
    import soundsmith

    pipe = soundsmith.load(tiny_audioldm2_tts, device="cpu")
    with pytest.raises(soundsmith.InvalidArgument, match="text-to-speech checkpoint: give transcription="):
        pipe("A men saying", num_inference_steps=1)


def test_transcription_on_a_non_speech_checkpoint_is_refused(tiny_audioldm2):
    import soundsmith

    pipe = soundsmith.load(tiny_audioldm2, device="cpu")
    with pytest.raises(soundsmith.InvalidArgument, match="transcription= needs a text-to-speech checkpoint"):
        pipe(PROMPT, transcription="hello", num_inference_steps=1)
