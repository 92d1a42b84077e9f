"""Our UNet, VAE and vocoder compute what diffusers' / transformers' modules compute, given the same weights."""

import pytest
import torch

from soundsmith import runtime
from soundsmith.models.layers import Linear
from soundsmith.models.unet import UNet, UNetConfig
from soundsmith.models.vae import AutoencoderKL, VAEConfig
from soundsmith.models.vocoder import HifiGan, VocoderConfig

diffusers = pytest.importorskip("diffusers")


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def _ours_from(reference, cls, cfg_cls):
    config = reference.config
    config = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    ours = cls(cfg_cls.from_dict(config)).eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    return ours


@pytest.fixture(params=["blas", "onednn"])
def linear_path(request):
    """Both ways float32 CPU linear layers can multiply (runtime.linear_path picks one per machine)."""
    runtime.set_linear_path(request.param)
    yield request.param
    runtime.set_linear_path(None)


@pytest.mark.parametrize("linear_path", ["onednn"], indirect=True)
@pytest.mark.parametrize("shape", [(300, 24), (2, 150, 24), (3, 5, 40, 24)])
@pytest.mark.parametrize("bias", [True, False])
def test_onednn_linear_matches_linear_with_gradients(shape, bias, linear_path):
    torch.manual_seed(0)
    reference = torch.nn.Linear(24, 40, bias=bias)
    ours = Linear(24, 40, bias=bias)
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(shape, requires_grad=True)
    got, expected = ours(x), reference(x)
    assert got.shape == expected.shape and rel_err(got, expected) < 1e-6
    (grad_got,) = torch.autograd.grad(got.square().sum(), x)
    (grad_expected,) = torch.autograd.grad(expected.square().sum(), x)
    assert rel_err(grad_got, grad_expected) < 1e-6
    xt = torch.randn(shape[-1], 200).T  # a transposed (non-contiguous) input takes the same path
    assert rel_err(ours(xt), reference(xt)) < 1e-6


def test_linear_path_is_measured_or_forced(monkeypatch):
    runtime.set_linear_path(None)
    monkeypatch.setenv("SOUNDSMITH_CPU_LINEAR", "blas")
    assert runtime.linear_path() == "blas"
    runtime.set_linear_path(None)
    monkeypatch.setenv("SOUNDSMITH_CPU_LINEAR", "auto")
    assert runtime.linear_path() in ("blas", "onednn")
    runtime.set_linear_path(None)
    monkeypatch.setenv("SOUNDSMITH_CPU_LINEAR", "fast")
    from soundsmith.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="SOUNDSMITH_CPU_LINEAR='fast'.*auto, onednn, blas"):
        runtime.linear_path()
    runtime.set_linear_path(None)


AUDIOLDM_UNET = dict(
    block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=8, sample_size=32, in_channels=4, out_channels=4,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    cross_attention_dim=(8, 16), class_embed_type="simple_projection", projection_class_embeddings_input_dim=8,
    class_embeddings_concat=True)


@pytest.mark.parametrize("height", [32, 25])  # 25 rows exercises the odd-size upsampling path
def test_audioldm_unet_matches_diffusers(height, linear_path):
    torch.manual_seed(0)
    ref = diffusers.UNet2DConditionModel(**AUDIOLDM_UNET).eval()
    for p in ref.parameters():  # random, not zero-initialised, so every path contributes
        p.data.normal_(0, 0.3)
    ours = _ours_from(ref, UNet, UNetConfig)
    x = torch.randn(2, 4, height, 8)
    t = torch.tensor(501)
    cls = torch.randn(2, 8)
    with torch.no_grad():
        expected = ref(x, t, encoder_hidden_states=None, class_labels=cls).sample
        got = ours(x, t, class_labels=cls)
    assert rel_err(got, expected) < 1e-5


@pytest.mark.parametrize("cross,depth", [
    ((8, 16), 1),  # diffusers' AudioLDM 2 test layout
    (([None, 12, 20], [None, 12, 20]), 1),  # base layout: self, GPT-2, T5
    (([None, 12, 20, None], [None, 12, 20, None]), 2),  # large layout
])
def test_audioldm2_unet_matches_diffusers(cross, depth, linear_path):
    from diffusers.pipelines.audioldm2.modeling_audioldm2 import AudioLDM2UNet2DConditionModel

    torch.manual_seed(0)
    ref = AudioLDM2UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=8, sample_size=32, in_channels=4,
        out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=cross,
        transformer_layers_per_block=depth).eval()
    for p in ref.parameters():
        p.data.normal_(0, 0.3)
    ours = _ours_from(ref, UNet, UNetConfig)
    x = torch.randn(2, 4, 16, 8)
    t = torch.tensor(77)
    flat = not isinstance(cross[0], list)
    d1 = 16 if flat else 12
    d2 = 16 if flat else 20
    gpt = torch.randn(2, 5, d1)
    t5 = torch.randn(2, 7, d2)
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[0, 4:] = 0
    with torch.no_grad():
        if flat:
            expected = ref(x, t, encoder_hidden_states=gpt).sample
            got = ours(x, t, encoder_hidden_states=gpt)
        else:
            expected = ref(x, t, encoder_hidden_states=gpt, encoder_hidden_states_1=t5,
                           encoder_attention_mask_1=mask).sample
            got = ours(x, t, encoder_hidden_states=gpt, encoder_hidden_states_1=t5, encoder_attention_mask_1=mask)
    assert rel_err(got, expected) < 1e-5


def test_vae_encode_and_decode_match_diffusers():
    torch.manual_seed(0)
    ref = diffusers.AutoencoderKL(
        block_out_channels=[8, 16], in_channels=1, out_channels=1, norm_num_groups=8,
        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2, latent_channels=4).eval()
    for p in ref.parameters():
        p.data.normal_(0, 0.3)
    ours = _ours_from(ref, AutoencoderKL, VAEConfig)
    mel = torch.randn(2, 1, 36, 8)
    z = torch.randn(2, 4, 9, 4)
    with torch.no_grad():
        dist = ref.encode(mel).latent_dist
        mean, logvar = ours.encode(mel)
        assert rel_err(mean, dist.mean) < 1e-5
        assert rel_err(logvar, dist.logvar) < 1e-5
        assert rel_err(ours.decode(z), ref.decode(z).sample) < 1e-5


def test_vocoder_matches_transformers_speecht5_hifigan():
    from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig

    torch.manual_seed(0)
    cfg = SpeechT5HifiGanConfig(model_in_dim=8, sampling_rate=16000, upsample_initial_channel=16,
                                upsample_rates=[2, 2], upsample_kernel_sizes=[4, 4], resblock_kernel_sizes=[3, 7],
                                resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5]], normalize_before=False)
    ref = SpeechT5HifiGan(cfg).eval()
    for p in ref.parameters():
        p.data.normal_(0, 0.3)
    ours = _ours_from(ref, HifiGan, VocoderConfig)
    mel = torch.randn(2, 20, 8)
    with torch.no_grad():
        expected, got = ref(mel), ours(mel)
    assert got.shape == expected.shape
    assert rel_err(got, expected) < 1e-5
