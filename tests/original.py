"""The research repositories' own model code as a test-only oracle.

The PyPI packages `audioldm` 0.1.1 (haoheliu/AudioLDM) and `audioldm2` 0.1.0 (haoheliu/AudioLDM2) carry the original
UNet, VAE, HiFi-GAN and CLAP modules. They pin an old stack (transformers 4.30, numpy ≤ 1.23, librosa 0.9, torchaudio),
so they are installed with `pip install --no-deps` and imported here with the missing pieces patched in:

- their package `__init__` files import the whole inference pipeline (torchaudio, the hub): the packages are
  registered without running them, and only the model modules are imported;
- `torchlibrosa` (the CLAP audio tower's STFT front end), `torchaudio`, `progressbar`, `torchvision.ops.misc`:
  small stand-ins with the same parameter names; the STFT and log-mel stand-ins pass their input through, so the
  audio tower can be fed a log-mel directly;
- the CLAP text branch is `RobertaModel(RobertaConfig.from_pretrained("roberta-base"))` (the hub): the config is
  replaced by a one-layer RoBERTa of the real width (the projection after it is hard-coded to 768 inputs).

Nothing here is copied into soundsmith: tests build original-layout state dicts from these modules (so key names and
shapes are the original code's own) and compare the original modules' forward passes with soundsmith's converted ones.
MusicLDM (RetroCirce/MusicLDM, not on PyPI) uses AudioLDM's UNet, VAE, HiFi-GAN and CLAP code; its checkpoints are
built from the `audioldm` modules with MusicLDM's key prefixes.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path

import torch
from torch import nn


# ------------------------------------------------------------------------------------------------- importing


class _PassThrough(nn.Module):
    """Stand-in for torchlibrosa's front end: keeps the real modules' parameter names, returns its input."""

    def __init__(self, **names):
        super().__init__()
        for name, shape in names.items():
            owner = self
            *path, leaf = name.split(".")
            for part in path:
                if not hasattr(owner, part):
                    owner.add_module(part, nn.Module())
                owner = getattr(owner, part)
            owner.register_parameter(leaf, nn.Parameter(torch.zeros(shape), requires_grad=False))

    def forward(self, x, *args, **kwargs):
        return x


def _stand_ins() -> dict[str, types.ModuleType]:
    """Modules the original code imports at load time but never uses in the paths tested here."""
    stft = types.ModuleType("torchlibrosa.stft")
    stft.Spectrogram = lambda **kw: _PassThrough(**{"stft.conv_real.weight": (3, 1, 4),
                                                    "stft.conv_imag.weight": (3, 1, 4)})
    stft.LogmelFilterBank = lambda **kw: _PassThrough(melW=(3, 2))
    augmentation = types.ModuleType("torchlibrosa.augmentation")
    augmentation.SpecAugmentation = lambda **kw: _PassThrough()
    tools = types.ModuleType("audioldm2.utilities.tools")  # plotting helpers (matplotlib), for training logs
    tools.synth_one_sample = None
    misc = types.ModuleType("torchvision.ops.misc")
    misc.FrozenBatchNorm2d = nn.BatchNorm2d
    return {"torchlibrosa": types.ModuleType("torchlibrosa"), "torchlibrosa.stft": stft,
            "torchlibrosa.augmentation": augmentation, "torchaudio": types.ModuleType("torchaudio"),
            "progressbar": types.ModuleType("progressbar"), "torchvision": types.ModuleType("torchvision"),
            "torchvision.ops": types.ModuleType("torchvision.ops"), "torchvision.ops.misc": misc,
            "audioldm2.utilities.tools": tools}


def _register_bare(package: str) -> None:
    """Register `package` (and its sub-packages on demand) without executing its __init__."""
    if package in sys.modules:
        return
    parts = package.split(".")
    if parts[0] in sys.modules:
        root = Path(sys.modules[parts[0]].__path__[0])
    else:
        spec = importlib.util.find_spec(parts[0])
        if spec is None:
            raise ImportError(f"{package} is not installed (pip install --no-deps audioldm==0.1.1 audioldm2==0.1.0)")
        root = Path(spec.submodule_search_locations[0])
    for i in range(1, len(parts) + 1):
        name = ".".join(parts[:i])
        if name not in sys.modules:
            module = types.ModuleType(name)
            module.__path__ = [str(root.joinpath(*parts[1:i]))]
            sys.modules[name] = module


def original(module: str):
    """Import `audioldm.…` / `audioldm2.…` model code with the stand-ins above."""
    import transformers  # noqa: F401  (before the stand-ins: its availability checks must not see them)
    from transformers import BartModel, BertModel, RobertaModel  # noqa: F401  (what the CLAP module imports)

    top = module.split(".")[0]
    for package in (top, f"{top}.clap", f"{top}.clap.open_clip", f"{top}.utilities"):
        _register_bare(package)
    if module in sys.modules:
        return sys.modules[module]
    added = {name: m for name, m in _stand_ins().items() if name not in sys.modules}
    sys.modules.update(added)
    try:
        return importlib.import_module(module)
    finally:  # the original modules keep what they imported; nothing else should see the stand-ins
        for name in added:
            sys.modules.pop(name, None)


def available() -> bool:
    return all(importlib.util.find_spec(p) is not None for p in ("audioldm", "audioldm2", "einops"))


# ------------------------------------------------------------------------------------------ tiny originals


def _roberta_config(layers: int = 1, vocab_size: int = 1000, intermediate_size: int = 64):
    """RoBERTa-base's config (768 wide, 12 heads, 514 positions, LayerNorm eps 1e-5), with fewer layers, a smaller
    vocabulary and FFN by default (roberta-base: 12 layers, 50265 tokens, 3072)."""
    from transformers import RobertaConfig

    return RobertaConfig(vocab_size=vocab_size, hidden_size=768, num_hidden_layers=layers, num_attention_heads=12,
                         intermediate_size=intermediate_size, max_position_embeddings=514, type_vocab_size=1,
                         pad_token_id=1, bos_token_id=0, eos_token_id=2, layer_norm_eps=1e-5)


def clap(package: str = "audioldm2", *, embed_dim: int = 16, depths=(2, 1), heads=(1, 2), window: int = 4,
         spec_size: int = 64, joint: int = 16, roberta: dict | None = None) -> nn.Module:
    """The original open_clip CLAP (RoBERTa text branch, HTSAT audio branch) at a tiny size: HTSAT patch width
    `embed_dim`, `depths` / `heads` per stage, window `window`, 64 mel bins; joint embedding `joint`; `roberta`:
    keyword arguments of `_roberta_config`."""
    model = original(f"{package}.clap.open_clip.model")
    htsat = original(f"{package}.clap.open_clip.htsat")

    def tiny_htsat(audio_cfg, enable_fusion=False, fusion_type="None"):
        with torch.device("cpu"):  # its drop-path schedule calls .item(): not on the meta device
            return htsat.HTSAT_Swin_Transformer(
                spec_size=spec_size, patch_size=4, patch_stride=(4, 4), num_classes=audio_cfg.class_num,
                embed_dim=embed_dim, depths=list(depths), num_heads=list(heads), window_size=window,
                config=audio_cfg, enable_fusion=enable_fusion, fusion_type=fusion_type)

    class RobertaConfig:
        @staticmethod
        def from_pretrained(name):
            return _roberta_config(**(roberta or {}))

    saved = model.create_htsat_model, getattr(model, "RobertaConfig", None)
    model.create_htsat_model = tiny_htsat
    model.RobertaConfig = RobertaConfig
    if package == "audioldm":  # AudioLDM's copy loads the pretrained weights itself: build an untrained one instead
        from transformers import RobertaModel
        saved_roberta = model.RobertaModel
        model.RobertaModel = types.SimpleNamespace(
            from_pretrained=lambda name: RobertaModel(_roberta_config(**(roberta or {}))))
    try:
        audio_cfg = dict(model_type="HTSAT", model_name="base", sample_rate=48000, audio_length=1024,
                         window_size=1024, hop_size=480, fmin=50, fmax=14000, class_num=527, mel_bins=64,
                         clip_samples=480000)
        text_cfg = dict(context_length=77, vocab_size=49408, width=512, heads=8, layers=12, model_type="roberta")
        width = int(embed_dim * 2 ** (len(depths) - 1))
        return model.CLAP(embed_dim=width, audio_cfg=audio_cfg, text_cfg=text_cfg, joint_embed_shape=joint).eval()
    finally:
        model.create_htsat_model = saved[0]
        if saved[1] is not None:
            model.RobertaConfig = saved[1]
        if package == "audioldm":
            model.RobertaModel = saved_roberta


# ------------------------------------------------------------------------------ original-layout checkpoints

# A tiny HiFi-GAN in the repositories' config format (their hifigan/models.py `Generator`); rates are not stored in
# the weights, so conversions of it are given TINY_CONFIG (the diffusers scripts' `vocoder_config` form)
TINY_VOCODER = dict(resblock="1", num_mels=16, upsample_rates=[2, 2], upsample_kernel_sizes=[4, 4],
                    upsample_initial_channel=32, resblock_kernel_sizes=[3, 7],
                    resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5]], sampling_rate=16000)
TINY_CONFIG = {"model": {"params": {"vocoder_config": {"params": {
    k: TINY_VOCODER[k] for k in ("num_mels", "upsample_rates", "upsample_kernel_sizes", "upsample_initial_channel",
                                 "resblock_kernel_sizes", "resblock_dilation_sizes", "sampling_rate")}}}}}

# UNets: 32-channel levels (the original GroupNorm has 32 groups), attention at the two lower resolutions, whose
# 64 channels / num_head_channels 8 = 8 heads, diffusers' fixed count: so the original and the converted UNet
# compute the same function and their outputs can be compared
TINY_UNET = dict(image_size=32, in_channels=4, out_channels=4, model_channels=32, num_res_blocks=2,
                 attention_resolutions=[2, 4], channel_mult=[1, 2, 2], num_head_channels=8)
TINY_DDCONFIG = dict(double_z=True, z_channels=4, resolution=256, downsample_time=False, in_channels=1, out_ch=1,
                     ch=32, ch_mult=[1, 2, 2], num_res_blocks=1, attn_resolutions=[], dropout=0.0, mel_bins=16)
CLAP_JOINT = 16   # CLAP embedding width (512 real); the UNet's FiLM input
T5_WIDTH = 32     # Flan-T5 d_model (1024 real)
GPT2_WIDTH = 768  # the original sequence generator hard-codes 768 (its SOS/EOS tables and input projections)


def _attr(config: dict):
    hifigan = original("audioldm2.hifigan.models")
    return hifigan, type("AttrDict", (dict,), {"__getattr__": dict.__getitem__})(config)


def hifigan(config: dict = TINY_VOCODER) -> nn.Module:
    """The original HiFi-GAN generator, weight norm removed as the repositories do before saving."""
    models, h = _attr(config)
    generator = models.Generator(h).eval()
    generator.remove_weight_norm()
    return generator


def vae(package: str = "audioldm2", ddconfig: dict = TINY_DDCONFIG, embed_dim: int | None = None,
        vocoder: dict = TINY_VOCODER) -> nn.Module:
    """The original KL autoencoder (with its vocoder submodule, as the checkpoints hold it)."""
    embed_dim = embed_dim or ddconfig["z_channels"]
    if package == "audioldm":
        module = original("audioldm.variational_autoencoder.autoencoder")
        ddconfig = {k: v for k, v in ddconfig.items() if k != "mel_bins"}
    else:
        module = original("audioldm2.latent_encoder.autoencoder")
    saved = module.get_vocoder
    module.get_vocoder = lambda *args, **kwargs: hifigan(vocoder)
    try:
        return module.AutoencoderKL(ddconfig=ddconfig, embed_dim=embed_dim).eval()
    finally:
        module.get_vocoder = saved


def unet(package: str = "audioldm2", **kwargs) -> nn.Module:
    module = original(f"{package}.latent_diffusion.openaimodel" if package == "audioldm"
                      else "audioldm2.latent_diffusion.modules.diffusionmodules.openaimodel")
    return module.UNetModel(**{**TINY_UNET, **kwargs}).eval()


class SequenceGenerator(nn.Module):
    """The parameters of AudioLDM 2's `Sequence2AudioMAE` (audiomae_gen/sequence_input.py) under their names: 32-row
    SOS / EOS tables and one projection per input sequence into GPT-2's 768 wide states, and the GPT-2 model."""

    def __init__(self, input_dims=(CLAP_JOINT, T5_WIDTH), gpt2_layers: int = 1, gpt2_vocab: int = 1000):
        super().__init__()
        from transformers import GPT2Config, GPT2Model

        self.start_of_sequence_tokens = nn.Embedding(32, GPT2_WIDTH)
        self.end_of_sequence_tokens = nn.Embedding(32, GPT2_WIDTH)
        self.input_sequence_embed_linear = nn.ModuleList(nn.Linear(d, GPT2_WIDTH) for d in input_dims)
        self.model = GPT2Model(GPT2Config(n_embd=GPT2_WIDTH, n_layer=gpt2_layers, n_head=12, vocab_size=gpt2_vocab,
                                          n_positions=99))


def t5_encoder():
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(vocab_size=32100, d_model=T5_WIDTH, d_ff=37, d_kv=8, num_heads=2, num_layers=1,
                                   feed_forward_proj="gated-gelu")).eval()


def diffusion_buffers(timesteps: int = 1000) -> dict[str, torch.Tensor]:
    """The DDPM schedule buffers every original LatentDiffusion saves (ignored by conversion)."""
    betas = torch.linspace(0.0015 ** 0.5, 0.0195 ** 0.5, timesteps, dtype=torch.float64) ** 2
    alphas = torch.cumprod(1 - betas, 0)
    return {"betas": betas.float(), "alphas_cumprod": alphas.float(), "sqrt_alphas_cumprod": alphas.sqrt().float(),
            "logvar": torch.zeros(timesteps)}


def prefixed(prefix: str, module: nn.Module) -> dict[str, torch.Tensor]:
    return {prefix + k: v for k, v in module.state_dict().items()}


def _seeded(modules: dict[str, nn.Module], seed: int) -> None:
    """Redraw every parameter with seeded noise about the size of a unit-gain init (embeddings N(0, 1), weights
    N(0, 1/fan_in), norm gains 1 + N(0, 0.1), biases N(0, 0.02)): the original code zero-initialises its output
    projections and several biases, and a constant weight would hide a misplaced tensor."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name in sorted(modules):
            for module in modules[name].modules():
                for _, p in module.named_parameters(recurse=False):
                    if isinstance(module, nn.Embedding):
                        p.copy_(torch.randn(p.shape, generator=generator))
                    elif p.ndim >= 2:
                        fan_in = p.shape[0] * p[0, 0].numel() if isinstance(module, nn.ConvTranspose1d) \
                            else p[0].numel()
                        p.copy_(torch.randn(p.shape, generator=generator) * fan_in ** -0.5)
                    else:
                        base = 1.0 if bool((p == 1).all()) and p.numel() > 1 else 0.0
                        p.copy_(base + torch.randn(p.shape, generator=generator) * (0.1 if base else 0.02))


def audioldm_checkpoint(family: str = "audioldm", seed: int = 0) -> tuple[dict[str, torch.Tensor], dict]:
    """A tiny AudioLDM (or MusicLDM: same code, same names) checkpoint built from the `audioldm` package's modules:
    `model.diffusion_model.` UNet with CLAP FiLM, `first_stage_model.` VAE + HiFi-GAN, `cond_stage_model.model.`
    CLAP, the DDPM buffers, `scale_factor`, and the `position_ids` buffer transformers 4.30 saved with RoBERTa.
    Returns (state dict, the original modules by name)."""
    modules = {
        "unet": unet("audioldm", extra_film_condition_dim=CLAP_JOINT, extra_film_use_concat=True,
                     use_spatial_transformer=True),
        "vae": vae("audioldm"),
        "clap": clap("audioldm", joint=CLAP_JOINT),
    }
    _seeded(modules, seed)
    state = {**prefixed("model.diffusion_model.", modules["unet"]), **prefixed("first_stage_model.", modules["vae"]),
             **prefixed("cond_stage_model.model.", modules["clap"]), **diffusion_buffers(),
             "scale_factor": torch.tensor(0.9227914214134216),
             "cond_stage_model.model.text_branch.embeddings.position_ids": torch.arange(514).expand((1, -1))}
    return state, modules


def audioldm2_checkpoint(seed: int = 0) -> tuple[dict[str, torch.Tensor], dict]:
    """A tiny AudioLDM 2 checkpoint from the `audioldm2` package's UNet (extra self-attention transformer, then
    one per context: GPT-2 states, T5 states), VAE, HiFi-GAN and CLAP; GPT-2, SOS/EOS and projections under
    `cond_stage_models.0.`, Flan-T5 under `cond_stage_models.1.model.` (and the copies the sequence generator keeps of
    its CLAP and T5), the ranking CLAP at `clap.model.`."""
    modules = {
        "unet": unet("audioldm2", context_dim=[GPT2_WIDTH, T5_WIDTH], transformer_depth=1),
        "vae": vae("audioldm2"),
        "clap": clap("audioldm2", joint=CLAP_JOINT),
        "sequence": SequenceGenerator(),
        "t5": t5_encoder(),
    }
    _seeded(modules, seed)
    state = {**prefixed("model.diffusion_model.", modules["unet"]), **prefixed("first_stage_model.", modules["vae"]),
             **prefixed("clap.model.", modules["clap"]), **prefixed("cond_stage_models.0.", modules["sequence"]),
             **prefixed("cond_stage_models.0.cond_stage_models.0.model.", modules["clap"]),
             **prefixed("cond_stage_models.0.cond_stage_models.1.model.", modules["t5"]),
             **prefixed("cond_stage_models.1.model.", modules["t5"]), **diffusion_buffers(),
             "scale_factor": torch.tensor(0.4110932946205139),
             "clap.model.text_branch.embeddings.position_ids": torch.arange(514).expand((1, -1))}
    return state, modules


def film_checkpoint(seed: int = 0, *, unet_kwargs: dict | None = None, ddconfig: dict = TINY_DDCONFIG,
                    vocoder: dict = TINY_VOCODER, clap_kwargs: dict | None = None) -> tuple[dict, dict]:
    """A CLAP-FiLM model trained with the AudioLDM 2 code, laid out as `audioldm_48k` is: the `audioldm2` UNet with
    `extra_film_condition_dim` and `context_dim [None]` (so two self-attention transformers per layer), VAE +
    vocoder, the conditioning CLAP at `cond_stage_models.0.model.` and the ranking one at `clap.model.`.
    The defaults are tiny; the published configuration is `full_48k_kwargs()`."""
    modules = {
        "unet": unet("audioldm2", **{"extra_film_condition_dim": CLAP_JOINT, "context_dim": [None],
                                      **(unet_kwargs or {})}),
        "vae": vae("audioldm2", ddconfig=ddconfig, vocoder=vocoder),
        "clap": clap("audioldm2", **{"joint": CLAP_JOINT, **(clap_kwargs or {})}),
    }
    _seeded(modules, seed)
    state = {**prefixed("model.diffusion_model.", modules["unet"]), **prefixed("first_stage_model.", modules["vae"]),
             **prefixed("cond_stage_models.0.model.", modules["clap"]), **prefixed("clap.model.", modules["clap"]),
             **diffusion_buffers(), "scale_factor": torch.tensor(0.8)}
    return state, modules
