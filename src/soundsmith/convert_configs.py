"""What an original checkpoint is, and the diffusers configs of its converted components.

Architecture comes from the tensors' shapes (channels, levels, blocks, contexts, heads where a shape carries them);
an original YAML / JSON config (`--config`) supplies what no shape holds: the noise schedule, the vocoder's upsampling
rates and sample rate when it is not one of the two HiFi-GANs the repositories ship, GPT-2's generation length,
`num_head_channels`. Without a config, the values are those of the published checkpoints, as the diffusers
conversion scripts assume (their DEFAULT_CONFIG).

Layouts:
- "audioldm": AudioLDM / MusicLDM repositories — `cond_stage_model.model.` CLAP, one transformer per UNet layer.
- "audioldm2": AudioLDM 2 — CLAP at `clap.model.`, GPT-2 + projections at `cond_stage_models.0.`, Flan-T5 at
  `cond_stage_models.1.model.`, an extra self-attention transformer before the cross-attention ones.
- "audioldm2-film": a CLAP-FiLM model trained with the AudioLDM 2 code (`audioldm_48k`): CLAP at
  `cond_stage_models.0.model.`, two self-attention transformers per layer; converted to an AudioLDM pipeline.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import CheckpointError, InvalidArgument

FAMILIES = ("audioldm", "musicldm", "audioldm2")

# The two HiFi-GANs of the repositories (hifigan/models.py configs): 16 kHz / 64 mels (AudioLDM, AudioLDM 2,
# MusicLDM) and 48 kHz / 256 mels (audioldm_48k), keyed by what their weights' shapes show.
KNOWN_VOCODERS = {
    (64, 1024, (16, 16, 8, 4, 4), (3, 7, 11)): dict(
        upsample_rates=[5, 4, 2, 2, 2], sampling_rate=16000, resblock_dilation_sizes=[[1, 3, 5]] * 3),
    (256, 1536, (12, 10, 8, 4, 4), (3, 7, 11, 15)): dict(
        upsample_rates=[6, 5, 4, 2, 2], sampling_rate=48000, resblock_dilation_sizes=[[1, 3, 5]] * 4,
        n_fft=2048, win_size=2048, fmin=20, fmax=24000),
}


@dataclass
class Original:
    """The schedule and the non-architectural settings of an original model (its YAML, or the published
    defaults)."""

    family: str                       # "audioldm" | "musicldm" | "audioldm2"
    layout: str                       # "audioldm" | "audioldm2" | "audioldm2-film"
    timesteps: int = 1000
    linear_start: float = 0.0015
    linear_end: float = 0.0195
    prediction_type: str = "epsilon"
    scale_by_std: bool = True
    num_head_channels: int | None = None
    vocoder: dict = field(default_factory=dict)   # script-style vocoder_config params and mel recipe, if given
    sequence_gen_length: int = 8                  # AudioLDM 2: GPT-2 tokens generated
    evaluation: dict = field(default_factory=dict)  # unconditional_guidance_scale, ddim_sampling_steps

    @property
    def sample_size_frames(self) -> int:
        """Mel frames of the default generation length (the scripts' image_size): 512 (5.12 s) for AudioLDM,
        1024 (10.24 s) for AudioLDM 2, MusicLDM and the 48 kHz model."""
        return 512 if self.layout == "audioldm" and self.family == "audioldm" else 1024


def read_config(path) -> dict:
    """An original YAML or JSON config file → dict."""
    path = Path(path).expanduser()
    try:
        text = path.read_text()
    except OSError as exc:
        raise InvalidArgument(f"--config {str(path)!r} cannot be read ({exc.strerror or exc})") from None
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:
        raise InvalidArgument(f"--config {str(path)!r} is not valid YAML or JSON "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0][:100]})") from None
    if not isinstance(data, dict):
        raise InvalidArgument(f"--config {str(path)!r} holds a {type(data).__name__}, not a mapping of settings")
    return data


def _get(config: dict, *path, default=None):
    for key in path:
        if not isinstance(config, dict) or key not in config:
            return default
        config = config[key]
    return config


def describe(state: dict[str, torch.Tensor], config: dict | None, family: str | None, filename: str) -> Original:
    """Which family and layout `state` is (from its keys, `family` or the config's model target) and the settings
    its config gives."""
    config = config or {}
    if family is not None and family not in FAMILIES:
        raise InvalidArgument(f"family={family!r} is not allowed (allowed: {', '.join(FAMILIES)})")
    if "model.diffusion_model.input_blocks.0.0.weight" not in state:
        raise CheckpointError(f"{filename} holds no latent-diffusion UNet (no model.diffusion_model.* weights): "
                              "it is not an AudioLDM, AudioLDM 2 or MusicLDM checkpoint")
    if "cond_stage_models.0.start_of_sequence_tokens.weight" in state:
        layout = "audioldm2"
        if any(".text_encoder." in k and k.startswith("cond_stage_models.0.cond_stage_models.") for k in state):
            raise CheckpointError(f"{filename} is an AudioLDM 2 speech checkpoint (a VITS phoneme encoder conditions "
                                  "it): converting it is not supported yet; -m audioldm2-gigaspeech and "
                                  "audioldm2-ljspeech are the speech models already in the diffusers layout")
        detected = "audioldm2"
    elif "cond_stage_models.0.model.text_branch.embeddings.word_embeddings.weight" in state:
        layout, detected = "audioldm2-film", "audioldm"
    elif "cond_stage_model.model.text_branch.embeddings.word_embeddings.weight" in state:
        layout = "audioldm"
        target = str(_get(config, "model", "target", default="")).lower()
        detected = "musicldm" if "musicldm" in target or "musicldm" in filename.lower() else "audioldm"
    elif "cond_stage_models.0.model.shared.weight" in state:
        raise CheckpointError(f"{filename} is an AudioLDM conditioned by Flan-T5 cross-attention alone "
                              "(audioldm_16k_crossattn_t5): no diffusers pipeline runs that layout, so it is not "
                              "converted")
    else:
        raise CheckpointError(f"{filename}: no CLAP text branch under cond_stage_model.model., "
                              "cond_stage_models.0.model. or a GPT-2 sequence generator: not a checkpoint of the "
                              "AudioLDM family soundsmith converts (AudioLDM, AudioLDM 2, MusicLDM, audioldm_48k)")
    if family is not None and family != detected and not {family, detected} <= {"audioldm", "musicldm"}:
        raise InvalidArgument(f"--family {family} does not fit {filename}, whose weights are a {detected} model")
    params = _get(config, "model", "params", default={}) or {}
    unet = _get(params, "unet_config", "params", default={}) or {}
    original = Original(family=family or detected, layout=layout)
    original.timesteps = int(params.get("timesteps", original.timesteps))
    original.linear_start = float(params.get("linear_start", original.linear_start))
    original.linear_end = float(params.get("linear_end", original.linear_end))
    original.prediction_type = "v_prediction" if params.get("parameterization") == "v" else "epsilon"
    original.scale_by_std = bool(params.get("scale_by_std", True))
    original.num_head_channels = unet.get("num_head_channels")
    original.vocoder = _vocoder_settings(config)
    gen = _get(params, "cond_stage_config", "crossattn_audiomae_generated", "params", "sequence_gen_length")
    original.sequence_gen_length = int(gen) if gen is not None else 8
    evaluation = params.get("evaluation_params") or {}
    if layout == "audioldm2-film" and not evaluation:
        evaluation = {"unconditional_guidance_scale": 3.5, "ddim_sampling_steps": 200}  # the repository's defaults
    original.evaluation = evaluation
    return original


def _vocoder_settings(config: dict) -> dict:
    """The vocoder settings a config gives: the diffusers scripts' `model.params.vocoder_config.params`, or the
    AudioLDM 2 configs' `preprocessing` (sample rate, STFT and mel recipe)."""
    given = dict(_get(config, "model", "params", "vocoder_config", "params", default={}) or {})
    pre = config.get("preprocessing") or {}
    if _get(pre, "audio", "sampling_rate") is not None:
        given.setdefault("sampling_rate", int(pre["audio"]["sampling_rate"]))
    for ours, path in (("n_fft", ("stft", "filter_length")), ("hop_size", ("stft", "hop_length")),
                       ("win_size", ("stft", "win_length")), ("num_mels", ("mel", "n_mel_channels")),
                       ("fmin", ("mel", "mel_fmin")), ("fmax", ("mel", "mel_fmax"))):
        value = _get(pre, *path)
        if value is not None:
            given.setdefault(ours, value)
    return given


# ---------------------------------------------------------------------------------------------------------- UNet


@dataclass(frozen=True)
class UNetShape:
    """What the original UNet's weights show."""

    model_channels: int
    in_channels: int
    out_channels: int
    channel_mult: tuple[int, ...]
    num_res_blocks: int
    attention_levels: tuple[bool, ...]
    contexts: tuple[int | None, ...]  # per transformer of a layer: its attn2 key width, None = self-attention
    transformer_depth: int
    film_dim: int | None
    film_concat: bool


def unet_shape(unet: dict[str, torch.Tensor], layout: str) -> UNetShape:
    """Read the architecture off the UNet's weights (prefix removed)."""
    conv_in = unet["input_blocks.0.0.weight"]
    model_channels = conv_in.shape[0]
    inputs = sorted({int(k.split(".")[1]) for k in unet if k.startswith("input_blocks.")})
    downsamplers = [i for i in inputs if f"input_blocks.{i}.0.op.weight" in unet]
    levels = len(downsamplers) + 1
    num_res_blocks = (downsamplers[0] - 1) if downsamplers else len(inputs) - 1
    if len(inputs) != 1 + levels * num_res_blocks + (levels - 1):
        raise CheckpointError(f"the UNet's {len(inputs)} input blocks do not form {levels} levels of "
                              f"{num_res_blocks} residual blocks")
    mult, attention = [], []
    for level in range(levels):
        first = 1 + level * (num_res_blocks + 1)
        channels = unet[f"input_blocks.{first}.0.out_layers.3.weight"].shape[0]
        if channels % model_channels:
            raise CheckpointError(f"UNet level {level} has {channels} channels, not a multiple of {model_channels}")
        mult.append(channels // model_channels)
        attention.append(f"input_blocks.{first}.1.norm.weight" in unet)
    if not any(attention):
        raise CheckpointError("the UNet has no attention blocks: not an AudioLDM-family UNet")
    level = attention.index(True)
    first = 1 + level * (num_res_blocks + 1)
    contexts, channels = [], model_channels * mult[level]
    while f"input_blocks.{first}.{len(contexts) + 1}.norm.weight" in unet:
        width = unet[f"input_blocks.{first}.{len(contexts) + 1}.transformer_blocks.0.attn2.to_k.weight"].shape[1]
        contexts.append(None if width == channels else width)
    depth = len({k.split(".")[4] for k in unet if k.startswith(f"input_blocks.{first}.1.transformer_blocks.")})
    film = unet.get("film_emb.weight")
    time_dim = unet["time_embed.0.weight"].shape[0]
    emb_in = unet["input_blocks.1.0.emb_layers.1.weight"].shape[1]
    return UNetShape(
        model_channels=model_channels, in_channels=conv_in.shape[1], out_channels=unet["out.2.weight"].shape[0],
        channel_mult=tuple(mult), num_res_blocks=num_res_blocks, attention_levels=tuple(attention),
        contexts=tuple(contexts), transformer_depth=depth, film_dim=None if film is None else film.shape[1],
        film_concat=film is not None and emb_in == 2 * time_dim,
    )


def unet_config(shape: UNetShape, original: Original, vae_scale_factor: int, heads: str) -> dict:
    """The diffusers UNet config, as the conversion scripts build it: blocks with attention are CrossAttn blocks;
    AudioLDM / MusicLDM cross_attention_dim = block_out_channels (attn2 then attends to itself); AudioLDM 2 lists
    each transformer's context per block. heads "diffusers" leaves attention_head_dim at diffusers' default (8 heads
    in every block, what the scripts and every hub folder have); "original" gives each block channels /
    num_head_channels heads, as the original code computes them."""
    channels = [shape.model_channels * m for m in shape.channel_mult]
    down = ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in shape.attention_levels]
    up = ["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(shape.attention_levels)]
    config = {
        "_class_name": "UNet2DConditionModel",
        "sample_size": original.sample_size_frames // vae_scale_factor,
        "in_channels": shape.in_channels, "out_channels": shape.out_channels,
        "down_block_types": down, "up_block_types": up, "block_out_channels": channels,
        "layers_per_block": shape.num_res_blocks,
    }
    if original.layout == "audioldm":
        if len(shape.contexts) != 1 or shape.contexts[0] is not None:
            raise CheckpointError(f"an AudioLDM-layout UNet has one self-attending transformer per layer; "
                                  f"this one has contexts {list(shape.contexts)}")
        config["cross_attention_dim"] = channels
    else:
        config["_class_name"] = "AudioLDM2UNet2DConditionModel"
        config["cross_attention_dim"] = [list(shape.contexts)] * len(channels)
        config["transformer_layers_per_block"] = shape.transformer_depth
    if shape.film_dim is not None:
        config.update(class_embed_type="simple_projection", projection_class_embeddings_input_dim=shape.film_dim,
                      class_embeddings_concat=shape.film_concat)
    elif original.layout != "audioldm2":
        raise CheckpointError("the UNet has no film_emb: AudioLDM and MusicLDM checkpoints are CLAP-FiLM models")
    if shape.transformer_depth != 1 and original.layout == "audioldm":
        config["transformer_layers_per_block"] = shape.transformer_depth
    if heads == "original":
        head_channels = original.num_head_channels or (64 if shape.model_channels == 256 else 32)
        config["attention_head_dim"] = [max(c // head_channels, 1) for c in channels]
    elif heads != "diffusers":
        raise InvalidArgument(f"heads={heads!r} is not allowed (allowed: diffusers, original)")
    return config


# ----------------------------------------------------------------------------------------------------------- VAE


def vae_config(vae: dict[str, torch.Tensor], scale_factor: float | None, original: Original) -> dict:
    """The diffusers AutoencoderKL config of the original LDM autoencoder (prefix removed)."""
    ch = vae["encoder.conv_in.weight"].shape[0]
    levels = 1 + max(int(k.split(".")[2]) for k in vae if k.startswith("encoder.down."))
    mult = [vae[f"encoder.down.{i}.block.0.conv1.weight"].shape[0] // ch for i in range(levels)]
    blocks = 1 + max(int(k.split(".")[4]) for k in vae if k.startswith("encoder.down.0.block."))
    z = vae["decoder.conv_in.weight"].shape[1]
    embed = vae["post_quant_conv.weight"].shape[1]
    if embed != z:
        raise CheckpointError(f"VAE embed_dim {embed} differs from z_channels {z}: diffusers' AutoencoderKL "
                              "needs them equal")
    if scale_factor is None:
        if original.scale_by_std:
            raise CheckpointError("the checkpoint has no scale_factor (the latent scaling learnt with "
                                  "scale_by_std); give a --config whose model.params.scale_by_std is false")
        scale_factor = 0.18215
    return {
        "_class_name": "AutoencoderKL",
        "sample_size": original.sample_size_frames,
        "in_channels": vae["encoder.conv_in.weight"].shape[1], "out_channels": vae["decoder.conv_out.weight"].shape[0],
        "down_block_types": ["DownEncoderBlock2D"] * levels, "up_block_types": ["UpDecoderBlock2D"] * levels,
        "block_out_channels": [ch * m for m in mult], "latent_channels": z, "layers_per_block": blocks,
        "scaling_factor": float(scale_factor),
    }


# ------------------------------------------------------------------------------------------------------- vocoder


def vocoder_config(voc: dict[str, torch.Tensor], original: Original) -> dict:
    """transformers SpeechT5HifiGan config of the original HiFi-GAN (prefix removed, weight norm folded), plus the
    mel recipe keys (n_fft, win_size, fmin, fmax) soundsmith's audio.MelConfig reads, when it is not the 16 kHz one
    (MelConfig's defaults)."""
    mels, initial = voc["conv_pre.weight"].shape[1], voc["conv_pre.weight"].shape[0]
    stages = 1 + max(int(k.split(".")[1]) for k in voc if k.startswith(("ups.", "upsampler.")))
    kernels = tuple(voc[f"ups.{i}.weight"].shape[2] for i in range(stages))
    per_stage = (1 + max(int(k.split(".")[1]) for k in voc if k.startswith("resblocks."))) // stages
    res_kernels = tuple(voc[f"resblocks.{j}.convs1.0.weight"].shape[2] for j in range(per_stage))
    given = original.vocoder
    known = KNOWN_VOCODERS.get((mels, initial, kernels, res_kernels), {})
    settings = {**known, **{k: v for k, v in given.items() if k not in ("num_mels",)}}
    if "upsample_rates" not in settings or "sampling_rate" not in settings:
        raise CheckpointError(f"the vocoder ({mels} mels, upsampling kernels {list(kernels)}) is not one of the "
                              "repositories' HiFi-GANs: give a --config with model.params.vocoder_config.params "
                              "upsample_rates and sampling_rate")
    rates = [int(r) for r in settings["upsample_rates"]]
    if len(rates) != stages:
        raise CheckpointError(f"vocoder upsample_rates {rates} do not match its {stages} upsampling layers")
    if "hop_size" in settings and int(settings["hop_size"]) != math.prod(rates):
        raise CheckpointError(f"config hop_length {settings['hop_size']} differs from the vocoder's upsampling "
                              f"{math.prod(rates)} (product of {rates})")
    config = {
        "model_in_dim": mels, "sampling_rate": int(settings["sampling_rate"]), "upsample_initial_channel": initial,
        "upsample_rates": rates, "upsample_kernel_sizes": list(kernels), "resblock_kernel_sizes": list(res_kernels),
        "resblock_dilation_sizes": [list(d) for d in settings.get("resblock_dilation_sizes",
                                                                  [[1, 3, 5]] * len(res_kernels))],
        "normalize_before": False,
    }
    recipe = {k: settings[k] for k in ("n_fft", "win_size", "fmin", "fmax") if k in settings}
    n_fft = 2 ** math.ceil(math.log2(4 * math.prod(rates)))  # audio.MelConfig's defaults for a vocoder config
    defaults = {"n_fft": n_fft, "win_size": recipe.get("n_fft", n_fft), "fmin": 0, "fmax": config["sampling_rate"] / 2}
    if any(float(recipe[k]) != float(defaults[k]) for k in recipe):
        config.update(recipe)
    return config


# ---------------------------------------------------------------------------------------------------------- text


def _count(state: dict, pattern: str) -> int:
    regex = re.compile(pattern)
    found = {int(m.group(1)) for k in state for m in [regex.match(k)] if m}
    return 1 + max(found) if found else 0


def clap_text_config(text: dict[str, torch.Tensor], layer_norm_eps: float = 1e-12) -> dict:
    """ClapTextConfig of the RoBERTa text branch + projection (converted names). Heads: hidden / 64, RoBERTa's
    (no shape holds them). layer_norm_eps: 1e-12, the value of the laion/clap-htsat-unfused config the diffusers
    scripts load (the original RoBERTa-base used 1e-5)."""
    words = text["text_model.embeddings.word_embeddings.weight"]
    return {
        "vocab_size": words.shape[0], "hidden_size": words.shape[1],
        "num_hidden_layers": _count(text, r"text_model\.encoder\.layer\.(\d+)\."),
        "num_attention_heads": max(words.shape[1] // 64, 1),
        "intermediate_size": text["text_model.encoder.layer.0.intermediate.dense.weight"].shape[0],
        "max_position_embeddings": text["text_model.embeddings.position_embeddings.weight"].shape[0],
        "type_vocab_size": text["text_model.embeddings.token_type_embeddings.weight"].shape[0],
        "projection_dim": text["text_projection.linear2.weight"].shape[0],
        "layer_norm_eps": layer_norm_eps, "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2,
    }


def clap_audio_config(audio: dict[str, torch.Tensor], spec_size: int) -> dict:
    """ClapAudioConfig of the HTSAT branch (converted names): widths, depths, heads (the relative-position tables'
    columns), window (their rows are (2W − 1)²); spec_size from `htsat_spec_size`."""
    prefix = "audio_model.audio_encoder."
    stages = _count(audio, r"audio_model\.audio_encoder\.layers\.(\d+)\.")
    depths = [_count(audio, rf"audio_model\.audio_encoder\.layers\.{i}\.blocks\.(\d+)\.") for i in range(stages)]
    heads = [audio[f"{prefix}layers.{i}.blocks.0.attention.self.relative_position_bias_table"].shape[1]
             for i in range(stages)]
    table = audio[f"{prefix}layers.0.blocks.0.attention.self.relative_position_bias_table"].shape[0]
    window = (math.isqrt(table) + 1) // 2
    patch = audio[f"{prefix}patch_embed.proj.weight"]
    return {
        "patch_embeds_hidden_size": patch.shape[0], "patch_size": patch.shape[2], "patch_stride": [patch.shape[2]] * 2,
        "patch_embed_input_channels": patch.shape[1], "depths": depths, "num_attention_heads": heads,
        "window_size": window, "hidden_size": audio["audio_projection.linear1.weight"].shape[1],
        "num_mel_bins": audio[f"{prefix}batch_norm.weight"].shape[0], "num_hidden_layers": stages,
        "projection_dim": audio["audio_projection.linear2.weight"].shape[0], "spec_size": spec_size,
    }


def htsat_spec_size(original_audio: dict[str, torch.Tensor]) -> int:
    """HTSAT's spectrogram image size (256 in the published CLAPs), from the original audio branch (prefix
    `audio_branch.` kept): a shifted-window block's attn_mask buffer holds (patches / window)² windows of the first
    stage, patches = spec_size / patch_stride. Without one, the tscam_conv kernel height
    SF = spec // 2^(stages−1) // stride // (spec // mels) is matched, preferring the published 256 among sizes that
    fit."""
    window = (math.isqrt(original_audio["audio_branch.layers.0.blocks.0.attn.relative_position_bias_table"].shape[0])
              + 1) // 2
    stride = original_audio["audio_branch.patch_embed.proj.weight"].shape[2]
    masks = [v for k, v in original_audio.items() if re.match(r"audio_branch\.layers\.0\.blocks\.\d+\.attn_mask$", k)]
    if masks:
        return math.isqrt(masks[0].shape[0]) * window * stride
    stages = 1 + max(int(k.split(".")[2]) for k in original_audio if k.startswith("audio_branch.layers."))
    mels = original_audio["audio_branch.bn0.weight"].shape[0]
    height = original_audio["audio_branch.tscam_conv.weight"].shape[2]
    fits = [spec for spec in (2 ** p for p in range(5, 13))
            if spec >= mels and spec // 2 ** (stages - 1) // stride // (spec // mels) == height]
    if not fits:
        raise CheckpointError(f"the CLAP audio tower's tscam_conv kernel height {height} fits no spectrogram size")
    return 256 if 256 in fits else fits[0]


def t5_config(t5: dict[str, torch.Tensor]) -> dict:
    """T5Config of the Flan-T5 encoder: heads from the relative-attention table, gated-GELU when wi_0/wi_1 exist
    (flan-t5-large: d_model 1024, 24 layers, 16 heads, d_kv 64, d_ff 2816, vocab 32128)."""
    shared = t5["shared.weight"]
    bias = t5["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"]
    inner = t5["encoder.block.0.layer.0.SelfAttention.q.weight"].shape[0]
    gated = "encoder.block.0.layer.1.DenseReluDense.wi_0.weight" in t5
    d_ff = t5[f"encoder.block.0.layer.1.DenseReluDense.{'wi_0' if gated else 'wi'}.weight"].shape[0]
    layers = _count(t5, r"encoder\.block\.(\d+)\.")
    return {
        "vocab_size": shared.shape[0], "d_model": shared.shape[1], "d_kv": inner // bias.shape[1], "d_ff": d_ff,
        "num_layers": layers, "num_decoder_layers": layers, "num_heads": bias.shape[1],
        "relative_attention_num_buckets": bias.shape[0], "relative_attention_max_distance": 128,
        "feed_forward_proj": "gated-gelu" if gated else "relu", "layer_norm_epsilon": 1e-6,
        "tie_word_embeddings": False, "decoder_start_token_id": 0, "pad_token_id": 0, "eos_token_id": 1,
        "n_positions": 512,
    }


def gpt2_config(gpt: dict[str, torch.Tensor], max_new_tokens: int) -> dict:
    """GPT2Config of the sequence generator (gpt2 base: 768 wide, 12 layers, 12 heads = width / 64); generation
    length `max_new_tokens` (the original sequence_gen_length) as the conversion script records it."""
    wte = gpt["wte.weight"]
    return {
        "vocab_size": wte.shape[0], "n_embd": wte.shape[1], "n_positions": gpt["wpe.weight"].shape[0],
        "n_layer": _count(gpt, r"h\.(\d+)\."), "n_head": max(wte.shape[1] // 64, 1),
        "max_new_tokens": max_new_tokens,
    }


def scheduler_config(original: Original) -> dict:
    """DDIM with the original linear-in-√β schedule, as every conversion script writes it (diffusers 0.42's full
    DDIMScheduler config)."""
    return {
        "_class_name": "DDIMScheduler", "beta_end": original.linear_end, "beta_schedule": "scaled_linear",
        "beta_start": original.linear_start, "clip_sample": False, "clip_sample_range": 1.0,
        "dynamic_thresholding_ratio": 0.995, "num_train_timesteps": original.timesteps,
        "prediction_type": original.prediction_type, "rescale_betas_zero_snr": False, "sample_max_value": 1.0,
        "set_alpha_to_one": False, "steps_offset": 1, "thresholding": False, "timestep_spacing": "leading",
        "trained_betas": None,
    }
