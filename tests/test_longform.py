"""Audio longer than the training window: windowed denoising (MultiDiffusion) and exact chunked decoding."""


import pytest
import torch

import soundsmith
from soundsmith import chunked, longform
from soundsmith.errors import InvalidArgument
from soundsmith.engine import guided


def relative_error(a, b):
    return float((a - b).norm() / b.norm())


# ------------------------------------------------------------------------------------------------ generation


def test_a_60_s_generation_has_exactly_the_requested_length(tiny_10ms):
    pipe = soundsmith.load(tiny_10ms, device="cpu")
    assert pipe.long_form.window_rows(pipe.row_seconds, pipe.unet_sample_size) == 32 and pipe.is_long(3000)
    out = pipe("a dog barking in the rain", audio_length_in_s=60, num_inference_steps=2, seed=0)
    assert out.audios.shape == (1, 60 * 16000)
    assert bool(torch.isfinite(torch.from_numpy(out.audios)).all())


def spectral_flux_at_seams(pipe, latents, window: int, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame-to-frame change of the decoded mel, ‖mel[t+1] − mel[t]‖, at window edges (the changes into, across and
    out of an edge frame; the sequence's own ends excluded) and everywhere else."""
    mel = pipe.latents_to_mel(latents)[0]
    flux = (mel[1:] - mel[:-1]).norm(dim=-1)
    rows = latents.shape[-2]
    starts = longform.window_starts(rows, window, stride)
    seam = torch.zeros(len(flux), dtype=torch.bool)
    for edge in ({s for s in starts} | {s + window for s in starts}) - {0, rows}:
        frame = edge * pipe.vae_scale_factor
        seam[frame - 2:frame + 1] = True
    return flux[seam], flux[~seam]


def test_window_seams_change_the_spectrum_no_more_than_inside_windows(tiny_10ms):
    pipe = soundsmith.load(tiny_10ms, device="cpu")
    pipe.long_form = longform.LongForm(above_seconds=5.0)
    latents = pipe("a piano melody", audio_length_in_s=12, num_inference_steps=2, seed=1, output_type="latent").audios
    at_seams, inside = spectral_flux_at_seams(pipe, latents, 32, 16)
    assert len(at_seams) > 100
    # a seam would put most seam frames above the inside range; here they are spread like the inside ones
    assert float((at_seams > inside.quantile(0.99)).float().mean()) <= 0.03
    assert at_seams.mean() <= 1.1 * inside.mean()


def test_the_window_blend_is_a_partition_of_unity():
    # a model that acts row by row is unchanged by windowing: the taper weights normalise exactly everywhere
    x = torch.randn(2, 4, 203, 4)
    model = lambda x, t: 3 * x + t  # noqa: E731
    for window, stride, per_call in [(32, 16, 1), (32, 8, 5), (32, 32, 2), (50, 13, 100)]:
        blended = longform.windowed(model, 203, window, stride, per_call)(x, 0.5)
        torch.testing.assert_close(blended, model(x, 0.5), rtol=1e-6, atol=1e-6)
    assert longform.window_starts(203, 32, 16)[-1] == 203 - 32
    assert longform.window_starts(20, 32, 16) == [0]


def test_tapered_blending_removes_the_jumps_of_a_window_edge_artifact():
    # a model whose output drifts across each window (0 at its first row, ~1 at its last): cut windows jump by ~1 at
    # every seam, tapered ones change by no more than the drift's own slope between any two rows
    rows, window = 400, 32
    x = torch.zeros(1, 1, rows, 1)

    def drifting(x, t):
        return x + torch.arange(window, dtype=x.dtype)[:, None] / window

    for stride, largest_step in [(window, 0.9), (window // 2, 2.0 / window), (window // 4, 2.0 / window)]:
        out = longform.windowed(drifting, rows, window, stride)(x, 0)[0, 0, :, 0]
        step = (out[1:] - out[:-1]).abs().max()
        assert step >= largest_step if stride == window else step <= largest_step


def test_guided_model_on_stacked_windows_equals_one_call_per_window(tiny_audioldm2):
    # the engine.guided change long-form relies on: conditioning (states, masks) repeated for k stacked copies
    pipe = soundsmith.load(tiny_audioldm2, device="cpu")
    conditioning, _ = pipe.conditioning(["a dog", "rain"], None, 1, True, embeds={}, labels={})
    model = guided(pipe.unet, conditioning, 3.5)
    windows = [torch.randn(2, 4, 16, 4, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    t = torch.tensor(500)
    stacked = model(torch.cat(windows), t)
    one_by_one = torch.cat([model(w, t) for w in windows])
    torch.testing.assert_close(stacked, one_by_one, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("family", ["tiny_audioldm", "tiny_musicldm", "tiny_audioldm2"])
def test_every_family_generates_long_form(family, request):
    pipe = soundsmith.load(request.getfixturevalue(family), device="cpu")
    pipe.long_form = longform.LongForm(above_seconds=0.05)  # long-form from 100 latent rows on (0.05 s at hop 4)
    seconds = 0.08  # 160 rows: 9 windows of 32
    out = pipe("a drum kit playing a fast beat", audio_length_in_s=seconds, num_inference_steps=2, seed=0)
    assert out.audios.shape == (1, round(seconds * 16000))
    # a length that fits one window is a plain single pass, whatever above_seconds says
    single = pipe("a drum kit", audio_length_in_s=0.016, num_inference_steps=2, seed=0).audios
    pipe.long_form = longform.LongForm()
    torch.testing.assert_close(torch.from_numpy(single), torch.from_numpy(
        pipe("a drum kit", audio_length_in_s=0.016, num_inference_steps=2, seed=0).audios))


def test_long_form_progress_names_the_windows_and_counts_steps(tiny_10ms, capsys):
    pipe = soundsmith.load(tiny_10ms, device="cpu")
    pipe("a bell", audio_length_in_s=21, num_inference_steps=2, seed=0, progress=True)
    err = capsys.readouterr().err
    assert "soundsmith: denoising in 65 windows of 0.64 s 2/2 steps" in err


def test_long_form_options_are_checked(tiny_10ms):
    with pytest.raises(InvalidArgument, match="overlap=1.0"):
        longform.LongForm(overlap=1.0)
    pipe = soundsmith.load(tiny_10ms, device="cpu")
    pipe.long_form = longform.LongForm(window_seconds=0.01)
    with pytest.raises(InvalidArgument, match="window_seconds=0.01"):
        pipe("a bell", audio_length_in_s=25, num_inference_steps=1)


# ------------------------------------------------------------------------------------------------- decoding


@pytest.mark.parametrize("family", ["tiny_audioldm", "tiny_musicldm"])
@pytest.mark.parametrize("chunk, budget_mb", [(5, 0.0), (5, 1e3), (8, 1e-3), (1000, 0.0)],
                         ids=["recompute", "keep-all", "keep-some", "one-chunk"])
def test_chunked_vae_equals_unchunked(family, chunk, budget_mb, request):
    pipe = soundsmith.load(request.getfixturevalue(family), device="cpu")
    vae, g = pipe.vae, torch.Generator().manual_seed(0)
    z = torch.randn(1, vae.config.latent_channels, 37, 4, generator=g)
    with torch.no_grad():
        assert relative_error(chunked.vae_decode(vae, z, chunk, budget_mb), vae.decode(z)) < 1e-5
        mel = torch.randn(1, 1, 37 * vae.config.scale_factor, 8, generator=g)
        assert relative_error(chunked.vae_encode(vae, mel, chunk, budget_mb), vae.encode(mel)[0]) < 1e-5


@pytest.mark.parametrize("frames, chunk", [(301, 40), (64, 1000)])
def test_chunked_vocoder_equals_unchunked(tiny_audioldm, tiny_10ms, frames, chunk):
    for folder in (tiny_audioldm, tiny_10ms):
        vocoder = soundsmith.load(folder, device="cpu").vocoder
        mel = torch.randn(2, frames, 8, generator=torch.Generator().manual_seed(frames))
        with torch.no_grad():
            whole, pieces = vocoder(mel), chunked.vocode_chunked(vocoder, mel, chunk)
        assert pieces.shape == whole.shape
        assert relative_error(pieces, whole) < 1e-5


def test_long_generation_decodes_in_chunks_equal_to_one_piece(tiny_10ms):
    pipe = soundsmith.load(tiny_10ms, device="cpu")
    latents = torch.randn(1, 4, 1030, 4, generator=torch.Generator().manual_seed(3))  # 20.6 s: long-form
    pipe.long_form = longform.LongForm(decode_rows=256, budget_mb=0.5, vocoder_frames=300)
    mel = pipe.latents_to_mel(latents)
    with torch.no_grad():
        whole = pipe.vae.decode(latents / pipe.vae.config.scaling_factor).squeeze(1)
        assert relative_error(mel, whole) < 1e-4
        assert relative_error(pipe.mel_to_waveform(mel), pipe.vocoder(whole)) < 1e-4
