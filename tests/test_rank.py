"""Best-of-n ranking: scores are CLAP cosine similarities computed directly; order is per prompt; deterministic."""

import pytest
import torch
import torch.nn.functional as F

import soundsmith
from soundsmith import audio as audio_lib
from soundsmith.rank import Ranker, rank


@pytest.fixture(scope="module")
def ranker(tiny_musicldm):
    return Ranker.from_folder(tiny_musicldm)


def direct_scores(ranker, waveforms, sample_rate, texts):
    """Straight transformers CLAP: tokenizer (longest padding), extractor on 48 kHz audio, the two feature heads."""
    clap = ranker.clap
    tokens = ranker.tokenizer(texts, padding=True, return_tensors="pt")
    text = clap.get_text_features(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask)
    text = getattr(text, "pooler_output", text)
    rate = ranker.feature_extractor.sampling_rate
    resampled = audio_lib.resample(waveforms, sample_rate, rate)
    features = ranker.feature_extractor([w.numpy() for w in resampled], sampling_rate=rate, return_tensors="pt")
    audio = clap.get_audio_features(input_features=features.input_features)
    audio = getattr(audio, "pooler_output", audio)
    return (F.normalize(text, dim=-1) * F.normalize(audio, dim=-1)).sum(-1)


def test_scores_equal_a_direct_clap_computation(ranker):
    waveforms = torch.randn(4, 4000, generator=torch.Generator().manual_seed(0)) * 0.3
    texts = ["a dog barking", "a dog barking", "piano melody", "rain on a roof"]
    with torch.no_grad():
        expected = direct_scores(ranker, waveforms, 16000, texts)
        got = ranker.scores(waveforms, 16000, texts)
    assert torch.allclose(got, expected, atol=1e-5), (got, expected)


def test_each_prompt_ranks_only_its_own_candidates_best_first(ranker):
    waveforms = torch.randn(6, 3000, generator=torch.Generator().manual_seed(1)) * 0.3
    prompts = ["a dog barking", "piano melody"]
    ordered, scores = rank(ranker, waveforms, 16000, prompts, 3)
    raw = ranker.scores(waveforms, 16000, [p for p in prompts for _ in range(3)])
    for group in range(2):
        part = slice(3 * group, 3 * group + 3)
        assert torch.all(scores[part][:-1] >= scores[part][1:])
        assert sorted(scores[part].tolist()) == sorted(raw[part].tolist())
        # every waveform in the group comes from the same prompt's candidates
        for w in ordered[part]:
            assert any(torch.equal(w, original) for original in waveforms[part])


def test_audio_longer_than_the_clap_window_scores_deterministically(ranker):
    seconds = ranker.feature_extractor.nb_max_samples / ranker.feature_extractor.sampling_rate + 3
    waveforms = torch.randn(2, int(seconds * 16000), generator=torch.Generator().manual_seed(2)) * 0.1
    first = ranker.scores(waveforms, 16000, ["rain", "rain"])
    second = ranker.scores(waveforms, 16000, ["rain", "rain"])
    assert torch.equal(first, second)


def test_musicldm_returns_ranked_candidates_with_scores(tiny_musicldm):
    pipe = soundsmith.load(tiny_musicldm, device="cpu")
    kwargs = dict(prompt=["a dog barking", "piano melody"], num_waveforms_per_prompt=3, num_inference_steps=2, seed=0)
    ranked = pipe(**kwargs)
    plain = pipe(**kwargs, rank=False)
    assert plain.scores is None
    assert ranked.scores.shape == (6,)
    for group in range(2):
        part = slice(3 * group, 3 * group + 3)
        assert torch.all(ranked.scores[part][:-1] >= ranked.scores[part][1:])
        assert sorted(map(tuple, ranked.audios[part].round(6).tolist())) == \
            sorted(map(tuple, plain.audios[part].round(6).tolist()))


def test_audioldm2_ranks_with_its_own_clap(tiny_audioldm2):
    pipe = soundsmith.load(tiny_audioldm2, device="cpu")
    out = pipe("a dog barking", num_waveforms_per_prompt=2, num_inference_steps=2, seed=0)
    assert out.scores.shape == (2,) and out.scores[0] >= out.scores[1]


def test_audioldm_without_an_audio_tower_says_so_and_accepts_a_ranker(tiny_audioldm, tiny_musicldm):
    pipe = soundsmith.load(tiny_audioldm, device="cpu")
    with pytest.warns(UserWarning, match="no audio tower; pass ranker="):
        unranked = pipe("a dog barking", num_waveforms_per_prompt=2, num_inference_steps=2, seed=0)
    assert unranked.scores is None
    ranked = pipe("a dog barking", num_waveforms_per_prompt=2, num_inference_steps=2, seed=0, ranker=tiny_musicldm)
    assert ranked.scores.shape == (2,) and ranked.scores[0] >= ranked.scores[1]


def test_a_ranker_without_an_audio_tower_is_refused(tiny_audioldm):
    with pytest.raises(soundsmith.CheckpointError, match="not a ClapModel"):
        Ranker.from_folder(tiny_audioldm)
