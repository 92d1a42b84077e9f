"""Every cheaper form of a convolution (kernels.py, winograd.py) computes what the direct form computes, on random
shapes, strides, dilations and lengths that are not a multiple of the tile; and the networks give the same output
whichever form each layer takes."""

import json

import pytest
import torch
import torch.nn.functional as F

from soundsmith import kernels, runtime, winograd
from soundsmith.errors import InvalidArgument
from soundsmith.models.layers import Upsample
from soundsmith.models.vocoder import HifiGan, VocoderConfig


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


@pytest.fixture
def forms_in(tmp_path, monkeypatch):
    """Measured choices go to a temporary file and are forgotten afterwards."""
    monkeypatch.setenv("SOUNDSMITH_CACHE", str(tmp_path))
    runtime.forget_forms()
    yield tmp_path
    runtime.forget_forms()


@pytest.fixture
def force_form(monkeypatch):
    """Make every layer take the named form (or the only non-direct one it offers) instead of measuring."""
    offered = {}  # key → the forms its layer offers (building the candidates is the slow part)

    def force(name):
        def fastest(key, candidates):
            if key not in offered:
                offered[key] = list(candidates())
            names = offered[key]
            if name in names:
                return name
            others = [n for n in names if n != "direct"]
            return others[0] if name != "direct" and others else "direct"
        monkeypatch.setattr(runtime, "fastest", fastest)
    return force


CONV1D_CASES = [  # (batch, C_in, C_out, length, kernel, dilation, tile n, bias)
    (1, 16, 24, 100, 11, 1, 32, True), (2, 16, 8, 77, 7, 3, 16, True), (3, 5, 9, 50, 3, 5, 8, False),
    (1, 8, 8, 5, 11, 5, 24, True), (2, 4, 4, 1, 3, 1, 8, True), (1, 12, 12, 333, 7, 1, 24, False),
    (2, 6, 10, 129, 11, 3, 48, True), (1, 3, 5, 64, 5, 2, 10, True),
]


@pytest.mark.parametrize("batch,c_in,c_out,length,kernel,dilation,n,bias", CONV1D_CASES)
def test_dft_conv1d_matches_direct_convolution(batch, c_in, c_out, length, kernel, dilation, n, bias):
    g = torch.Generator().manual_seed(length)
    w = torch.randn(c_out, c_in, kernel, generator=g)
    b = torch.randn(c_out, generator=g) if bias else None
    x = torch.randn(batch, c_in, length, generator=g)
    padding = (kernel - 1) * dilation // 2
    expected = F.conv1d(x, w, b, padding=padding, dilation=dilation)
    plan = kernels.dft_conv_plan(w, b, dilation, padding, n)
    got = kernels.dft_conv1d(x.transpose(1, 2).contiguous(), plan).transpose(1, 2)
    assert got.shape == expected.shape
    assert rel_err(got, expected) < 1e-5


def test_dft_conv1d_without_padding_gives_the_valid_outputs():
    g = torch.Generator().manual_seed(1)
    w, x = torch.randn(4, 3, 7, generator=g), torch.randn(2, 3, 40, generator=g)
    expected = F.conv1d(x, w, dilation=2)  # 40 − 12 = 28 outputs
    got = kernels.dft_conv1d(x.transpose(1, 2).contiguous(), kernels.dft_conv_plan(w, None, 2, 0, 16))
    assert got.shape == (2, 28, 4) and rel_err(got.transpose(1, 2), expected) < 1e-5


def test_dft_tile_must_be_even_and_longer_than_the_kernel():
    w = torch.randn(2, 2, 7)
    for n in (7, 15):
        with pytest.raises(ValueError, match=f"n={n}"):
            kernels.dft_conv_plan(w, None, 1, 3, n)
    assert kernels.dft_slices(32) == 47 and kernels.dft_speedup(11, 32) == pytest.approx(11 * 22 / 47)


@pytest.mark.parametrize("batch,c_in,c_out,length,kernel,stride", [
    (1, 16, 8, 37, 16, 5), (2, 8, 4, 20, 16, 4), (1, 4, 6, 9, 8, 2), (3, 4, 4, 11, 4, 2), (1, 3, 3, 7, 7, 3),
    (2, 5, 7, 1, 5, 5)])
def test_polyphase_transposed_conv_matches_conv_transpose1d(batch, c_in, c_out, length, kernel, stride):
    g = torch.Generator().manual_seed(kernel * stride)
    w, b = torch.randn(c_in, c_out, kernel, generator=g), torch.randn(c_out, generator=g)
    x = torch.randn(batch, c_in, length, generator=g)
    padding = (kernel - stride) // 2
    expected = F.conv_transpose1d(x, w, b, stride=stride, padding=padding)
    xc = x.unsqueeze(2).contiguous(memory_format=torch.channels_last)
    got = kernels.conv_transpose1d_polyphase(xc, kernels.polyphase_weight(w, stride), b, stride, padding, kernel)
    assert got.shape == (batch, c_out, 1, expected.shape[-1])
    assert got.is_contiguous(memory_format=torch.channels_last)
    assert rel_err(got.squeeze(2), expected) < 1e-5


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("batch,c_in,c_out,height,width,bias", [(1, 8, 16, 5, 7, True), (2, 4, 4, 6, 3, False),
                                                               (1, 3, 5, 1, 1, True)])
def test_fused_upsample_conv_matches_interpolate_then_conv(layout, batch, c_in, c_out, height, width, bias):
    g = torch.Generator().manual_seed(height * width)
    w = torch.randn(c_out, c_in, 3, 3, generator=g)
    b = torch.randn(c_out, generator=g) if bias else None
    x = torch.randn(batch, c_in, height, width, generator=g).contiguous(memory_format=layout)
    expected = F.conv2d(F.interpolate(x, scale_factor=2.0, mode="nearest"), w, b, padding=1)
    got = kernels.upsample_conv2d(x, kernels.upsample_conv_weight(w), b)
    assert got.shape == expected.shape and rel_err(got, expected) < 1e-5


@pytest.mark.parametrize("batch,c_in,c_out,height,width,bias", [(1, 8, 16, 6, 10, True), (2, 4, 4, 4, 2, False),
                                                               (1, 32, 8, 2, 2, True), (3, 5, 7, 8, 14, True)])
def test_winograd_matches_conv2d(batch, c_in, c_out, height, width, bias):
    g = torch.Generator().manual_seed(c_in * height)
    w = torch.randn(c_out, c_in, 3, 3, generator=g)
    b = torch.randn(c_out, generator=g) if bias else None
    x = torch.randn(batch, c_in, height, width, generator=g).contiguous(memory_format=torch.channels_last)
    assert winograd.applies(x) and not winograd.applies(x[:, :, 1:])
    expected = F.conv2d(x, w, b, padding=1)
    got = winograd.winograd_conv2d(x, winograd.winograd_weight(w), b)
    assert got.shape == expected.shape and rel_err(got, expected) < 1e-5


def _vocoder(seed: int = 0) -> HifiGan:
    # channels ≥ kernels' DFT threshold at the first level, so the DFT form is offered there
    cfg = VocoderConfig.from_dict(dict(model_in_dim=8, upsample_initial_channel=512, upsample_rates=[5, 2],
                                       upsample_kernel_sizes=[11, 4], resblock_kernel_sizes=[3, 7, 11]))
    torch.manual_seed(seed)
    vocoder = HifiGan(cfg).eval().requires_grad_(False)
    for p in vocoder.parameters():
        p.data.normal_(0, 0.02)
    return vocoder


@pytest.mark.parametrize("batch,frames", [(1, 23), (2, 9)])
def test_vocoder_gives_the_same_waveform_in_every_form(batch, frames, force_form):
    vocoder = _vocoder()
    mel = torch.randn(batch, frames, 8, generator=torch.Generator().manual_seed(frames))
    force_form("direct")
    expected = vocoder(mel)
    force_form("fast")  # DFT where offered, polyphase upsamplers
    assert vocoder.resblocks[1].convs1[0].form(torch.randn(1, 256, 1, 9).contiguous(
        memory_format=torch.channels_last)) == 16  # the DFT form runs (kernel 7 at 256 channels)
    assert rel_err(vocoder(mel), expected) < 1e-5


def test_vocoder_prepared_weights_follow_the_weights(force_form):
    vocoder = _vocoder()
    mel = torch.randn(1, 12, 8, generator=torch.Generator().manual_seed(0))
    force_form("fast")
    before = vocoder(mel)
    vocoder.load_state_dict(_vocoder(seed=1).state_dict())  # in place: the DFT weights must be rebuilt
    after = vocoder(mel)
    force_form("direct")
    assert rel_err(after, vocoder(mel)) < 1e-5 and rel_err(after, before) > 1e-2


def test_layers_with_gradients_take_the_direct_form(force_form):
    vocoder = _vocoder().requires_grad_(True)
    force_form("fast")
    conv, up = vocoder.resblocks[2].convs1[0], vocoder.upsampler[0]
    x = torch.randn(1, 256, 1, 40).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        assert conv.form(x) > 0
    assert conv.form(x) == 0 and up.form(torch.randn(1, 512, 1, 8).contiguous(memory_format=torch.channels_last)) == "direct"
    conv(x).square().sum().backward()
    assert conv.weight.grad is not None


@pytest.mark.parametrize("size", [None, (10, 12), (9, 12)])
def test_upsample_fused_or_not_matches_interpolate_then_conv(size, force_form):
    torch.manual_seed(0)
    up = Upsample(6).eval().requires_grad_(False)
    x = torch.randn(2, 6, 5, 6).contiguous(memory_format=torch.channels_last)
    expected = up.conv(F.interpolate(x, size=size or (10, 12), mode="nearest"))
    force_form("fused")
    assert rel_err(up(x, size), expected) < 1e-5


def test_fastest_measures_once_keeps_the_choice_on_disk_and_prefers_direct(forms_in, monkeypatch):
    import time

    calls = {"direct": 0, "quick": 0}

    def candidates():
        def direct():
            calls["direct"] += 1
            time.sleep(0.004)

        def quick():
            calls["quick"] += 1

        return {"direct": direct, "quick": quick}

    assert runtime.fastest("test key", candidates) == "quick"
    assert calls["direct"] == calls["quick"] == 6  # a warm-up and 5 rounds each
    assert runtime.fastest("test key", candidates) == "quick" and calls["quick"] == 6  # remembered
    runtime.forget_forms()
    assert runtime.fastest("test key", candidates) == "quick" and calls["quick"] == 6  # from the file
    table = json.loads(runtime.forms_file().read_text())
    assert list(table.values()) == [{"test key": "quick"}]
    monkeypatch.setenv("SOUNDSMITH_FORMS", "direct")
    assert runtime.fastest("test key", candidates) == "direct"
    monkeypatch.setenv("SOUNDSMITH_FORMS", "measure")
    runtime.forget_forms()
    slower = {"direct": lambda: None, "slower": lambda: time.sleep(0.002)}
    assert runtime.fastest("test key", lambda: slower) == "direct"  # measured again, and the reference won
    monkeypatch.setenv("SOUNDSMITH_FORMS", "fastest")
    with pytest.raises(InvalidArgument, match="SOUNDSMITH_FORMS='fastest'.*auto, direct, measure"):
        runtime.fastest("test key", candidates)


def _tiny_vae():
    from soundsmith.models.vae import AutoencoderKL, VAEConfig

    cfg = VAEConfig.from_dict(dict(block_out_channels=[8, 16], in_channels=1, out_channels=1, norm_num_groups=4,
                                   latent_channels=4, layers_per_block=1,
                                   down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2))
    torch.manual_seed(0)
    vae = AutoencoderKL(cfg).eval().requires_grad_(False)
    for p in vae.parameters():
        p.data.normal_(0, 0.3)
    return vae


def test_vae_blocks_kept_in_float32_decode_closer_to_float32_and_chunk_exactly():
    from soundsmith import chunked
    from soundsmith.models.vae import LATENT_RESOLUTION

    full = _tiny_vae()
    z = torch.randn(1, 4, 20, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = full.decode(z)
        all_bf16 = _tiny_vae().to(torch.bfloat16).decode(z.bfloat16())
        low = _tiny_vae().cast(torch.bfloat16)
        for name in LATENT_RESOLUTION:  # unrounded: the float32 weights themselves
            for got, weight in zip(low.get_submodule(name).parameters(), full.get_submodule(name).parameters()):
                assert got.dtype == torch.float32 and torch.equal(got, weight)
        assert low.decoder.conv_out.weight.dtype == torch.bfloat16
        mixed = low.decode(z.bfloat16())
        assert mixed.dtype == torch.bfloat16
        assert rel_err(mixed, expected) < rel_err(all_bf16, expected)
        # the chunked decoder casts at the same places: equal to the one-piece decode up to bfloat16 rounding
        assert rel_err(chunked.vae_decode(low, z.bfloat16(), 3, 0.0), mixed) < 1e-2


@pytest.mark.parametrize("form", ["direct", "winograd"])
def test_resnet_block_gives_the_same_output_in_either_3x3_form(form, force_form):
    from soundsmith.models.layers import ResnetBlock

    torch.manual_seed(0)
    block = ResnetBlock(8, 16, 12, 4, 1e-5).eval().requires_grad_(False)
    x = torch.randn(2, 8, 6, 4).contiguous(memory_format=torch.channels_last)
    temb = torch.randn(2, 12)
    force_form("direct")
    expected = block(x, temb)
    force_form(form)
    assert block.conv1.form(x) == form
    assert rel_err(block(x, temb), expected) < 1e-5


def test_chunked_vocoding_in_the_cheaper_forms_keeps_exact_seams(force_form):
    from soundsmith import chunked

    vocoder = _vocoder()
    mel = torch.randn(1, 61, 8, generator=torch.Generator().manual_seed(5))
    force_form("direct")
    whole = vocoder(mel)
    force_form("fast")
    pieces = chunked.vocode_chunked(vocoder, mel, 16)
    assert pieces.shape == whole.shape and rel_err(pieces, whole) < 1e-5


@pytest.mark.slow
def test_ahead_of_time_unet_matches_eager_and_a_second_process_loads_it(tiny_audioldm, tmp_path, monkeypatch):
    """aot.compile_ahead_of_time: same audio as eager; a new pipeline finds the package and does not compile."""
    import numpy as np

    import soundsmith
    from soundsmith import aot

    kwargs = dict(audio_length_in_s=0.256, num_inference_steps=2, seed=0)
    eager = soundsmith.load(tiny_audioldm, device="cpu")("a dog", **kwargs).audios
    pipe = soundsmith.load(tiny_audioldm, device="cpu")
    aot.compile_ahead_of_time(pipe, tmp_path)
    compiled = pipe("a dog", **kwargs).audios
    assert np.linalg.norm(compiled - eager) / np.linalg.norm(eager) < 1e-4
    assert len(list(tmp_path.glob("unet-*.pt2"))) == 1
    monkeypatch.setattr(aot, "compile_package", lambda *a, **k: pytest.fail("compiled again"))
    again = soundsmith.load(tiny_audioldm, device="cpu")
    aot.compile_ahead_of_time(again, tmp_path)
    assert np.array_equal(again("a dog", **kwargs).audios, compiled)
