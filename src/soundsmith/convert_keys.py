"""Parameter names of the research repositories' checkpoints → the diffusers folder layout.

Pure functions from an original state dict (`{name: tensor}`, the `state_dict` of a `.ckpt` / `.pth`) to the state
dict of one component folder. Each takes the keys under one prefix and fails (CheckpointError) when one of them is
left unplaced, so a layout this module does not know is reported rather than silently dropped.

The original models are the latent-diffusion code of CompVis/LDM as the AudioLDM, AudioLDM 2 and MusicLDM
repositories extend it:
- UNet `model.diffusion_model.`: `input_blocks.k` is a TimestepEmbedSequential of [ResBlock or Downsample,
  SpatialTransformer…]; `middle_block` [ResBlock, SpatialTransformer…, ResBlock]; `output_blocks.k` [ResBlock,
  SpatialTransformer…, Upsample]. AudioLDM has one transformer per layer; the AudioLDM 2 code puts an extra
  self-attention transformer first, then one per context (GPT-2 states, T5 states, or none).
- VAE `first_stage_model.` (LDM Encoder / Decoder, `up.i` numbered from the lowest resolution), its HiFi-GAN
  `first_stage_model.vocoder.`.
- CLAP (open_clip CLAP: RoBERTa `text_branch`, HTSAT `audio_branch`, two-layer `*_projection` Sequentials).
- AudioLDM 2's GPT-2 (`cond_stage_models.0.model.`), its SOS/EOS tables and input projections
  (`cond_stage_models.0.`), Flan-T5 (`cond_stage_models.1.model.`).
"""

from __future__ import annotations

import re

import torch

from .errors import CheckpointError


def under(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries whose name starts with `prefix`, with the prefix removed."""
    return {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}


def ema_unet(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The UNet's exponential-moving-average weights: LitEma stores `model.diffusion_model.x.0.weight` as
    `model_ema.diffusion_modelx0weight` (the dots removed)."""
    flat = under(state, "model_ema.")
    out = {}
    for key in under(state, "model.diffusion_model."):
        name = "diffusion_model" + key.replace(".", "")
        if name not in flat:
            raise CheckpointError(f"the checkpoint has no EMA copy of model.diffusion_model.{key} "
                                  f"(model_ema.{name}); convert without --ema")
        out[key] = flat[name]
    return out


def _placed_all(source: dict, used: set, what: str) -> None:
    left = sorted(set(source) - used)
    if left:
        shown = ", ".join(left[:4]) + (f" … ({len(left)} in all)" if len(left) > 4 else "")
        raise CheckpointError(f"{what}: original parameters with no place in the converted model: {shown}")


# ---------------------------------------------------------------------------------------------------------- UNet

_RESNET = (("in_layers.0.", "norm1."), ("in_layers.2.", "conv1."), ("emb_layers.1.", "time_emb_proj."),
           ("out_layers.0.", "norm2."), ("out_layers.3.", "conv2."), ("skip_connection.", "conv_shortcut."))
_UNET_TOP = {"time_embed.0.": "time_embedding.linear_1.", "time_embed.2.": "time_embedding.linear_2.",
             "film_emb.": "class_embedding.", "input_blocks.0.0.": "conv_in.", "out.0.": "conv_norm_out.",
             "out.2.": "conv_out."}


def _resnet_name(rest: str) -> str:
    for old, new in _RESNET:
        if rest.startswith(old):
            return new + rest[len(old):]
    raise CheckpointError(f"unknown UNet residual-block parameter {rest!r}")


def unet(state: dict[str, torch.Tensor], layers: int, transformers: int) -> dict[str, torch.Tensor]:
    """Original UNet parameters (prefix `model.diffusion_model.` removed) → diffusers UNet names.

    layers: residual blocks per level (num_res_blocks); transformers: transformers per layer of an attention block
    (1 for AudioLDM / MusicLDM; 1 + one per context for the AudioLDM 2 code). Transformer k (k ≥ 1 in the original
    TimestepEmbedSequential) of layer j becomes `attentions.{j·transformers + k − 1}`; a transformer's own
    parameter names are the same in both layouts."""
    out, used = {}, set()
    for key in state:
        new = _unet_name(key, layers, transformers)
        if new is not None:
            out[new] = state[key]
            used.add(key)
    _placed_all(state, used, "UNet")
    return out


_BLOCK = re.compile(r"^(input_blocks|output_blocks)\.(\d+)\.(\d+)\.(.*)$")
_MIDDLE = re.compile(r"^middle_block\.(\d+)\.(.*)$")


def _unet_name(key: str, layers: int, transformers: int) -> str | None:
    for old, new in _UNET_TOP.items():
        if key.startswith(old):
            return new + key[len(old):]
    match = _MIDDLE.match(key)
    if match is not None:  # [ResBlock, transformers…, ResBlock]
        i, rest = int(match.group(1)), match.group(2)
        if i in (0, transformers + 1):
            return f"mid_block.resnets.{0 if i == 0 else 1}.{_resnet_name(rest)}"
        return f"mid_block.attentions.{i - 1}.{rest}"
    match = _BLOCK.match(key)
    if match is None:
        return None
    part, i, j, rest = match.group(1), int(match.group(2)), int(match.group(3)), match.group(4)
    if part == "input_blocks":  # input_blocks.0 is conv_in (above); then per level `layers` layers + Downsample
        level, layer = divmod(i - 1, layers + 1)
        block = f"down_blocks.{level}"
        if rest.startswith("op."):
            return f"{block}.downsamplers.0.conv.{rest[3:]}"
    else:  # per level `layers + 1` layers, the last ending with an Upsample (`conv.`) except at the top level
        level, layer = divmod(i, layers + 1)
        block = f"up_blocks.{level}"
        if rest.startswith("conv."):
            return f"{block}.upsamplers.0.conv.{rest[5:]}"
    if j == 0:
        return f"{block}.resnets.{layer}.{_resnet_name(rest)}"
    return f"{block}.attentions.{layer * transformers + j - 1}.{rest}"


# ----------------------------------------------------------------------------------------------------------- VAE

_VAE_ATTENTION = {"norm.": "group_norm.", "q.": "to_q.", "k.": "to_k.", "v.": "to_v.", "proj_out.": "to_out.0."}


def vae(state: dict[str, torch.Tensor], levels: int) -> dict[str, torch.Tensor]:
    """Original KL-autoencoder parameters (prefix `first_stage_model.` removed, vocoder and loss excluded) →
    diffusers AutoencoderKL names (the mid-block attention's 1×1 convolutions become linear to_q/to_k/to_v/to_out.0
    weights; the hub's AudioLDM folders, written by an older diffusers, name them query/key/value/proj_attn)."""
    attention = _VAE_ATTENTION
    out, used = {}, set()
    for key, value in state.items():
        coder, _, rest = key.partition(".")
        if coder in ("quant_conv", "post_quant_conv"):
            new = key
        elif coder not in ("encoder", "decoder"):
            continue
        elif rest.startswith(("conv_in.", "conv_out.")):
            new = key
        elif rest.startswith("norm_out."):
            new = f"{coder}.conv_norm_out.{rest[len('norm_out.'):]}"
        elif rest.startswith("mid.attn_1."):
            name = rest[len("mid.attn_1."):]
            old = next((o for o in attention if name.startswith(o)), None)
            if old is None:
                raise CheckpointError(f"unknown VAE attention parameter first_stage_model.{key}")
            new = f"{coder}.mid_block.attentions.0.{attention[old]}{name[len(old):]}"
            if value.ndim == 4:
                value = value[:, :, 0, 0]
        elif rest.startswith("mid.block_"):
            index = int(rest[len("mid.block_")]) - 1
            new = f"{coder}.mid_block.resnets.{index}.{rest[len('mid.block_1.'):].replace('nin_shortcut', 'conv_shortcut')}"
        else:
            match = re.match(r"^(down|up)\.(\d+)\.(block\.(\d+)|downsample|upsample)\.(.*)$", rest)
            if match is None:
                raise CheckpointError(f"unknown VAE parameter first_stage_model.{key}")
            direction, level, what, tail = match.group(1), int(match.group(2)), match.group(3), match.group(5)
            if direction == "up":
                level = levels - 1 - level  # the decoder's `up.i` counts from the lowest resolution
            block = f"{coder}.{direction}_blocks.{level}"
            if what.startswith("block"):
                new = f"{block}.resnets.{match.group(4)}.{tail.replace('nin_shortcut', 'conv_shortcut')}"
            else:
                new = f"{block}.{what}rs.0.{tail}"  # downsample → downsamplers.0, upsample → upsamplers.0
        out[new] = value
        used.add(key)
    _placed_all({k: v for k, v in state.items() if k.split(".")[0] in ("encoder", "decoder", "quant_conv",
                                                                          "post_quant_conv")}, used, "VAE")
    return out


# ------------------------------------------------------------------------------------------------------- vocoder


def fold_weight_norm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`x.weight_g` / `x.weight_v` pairs (weight normalisation still attached) → `x.weight` = g · v / ‖v‖, the norm
    taken over every dimension but the first, as torch.nn.utils.weight_norm does with its default dim=0."""
    out = {}
    for key, value in state.items():
        if key.endswith(".weight_v"):
            continue
        if key.endswith(".weight_g"):
            stem = key[: -len("_g")]
            v = state[stem + "_v"]
            norm = v.norm(dim=tuple(range(1, v.ndim)), keepdim=True)
            out[stem] = value * v / norm
        else:
            out[key] = value
    return out


def vocoder(state: dict[str, torch.Tensor], mels: int) -> dict[str, torch.Tensor]:
    """Original HiFi-GAN generator (prefix removed) → transformers SpeechT5HifiGan names: `ups.i` → `upsampler.i`;
    the input normalisation buffers (unused: normalize_before is off) are zeros / ones."""
    state = fold_weight_norm(state)
    out = {re.sub(r"^ups\.", "upsampler.", key): value for key, value in state.items()}
    out["mean"], out["scale"] = torch.zeros(mels), torch.ones(mels)
    return out


# ---------------------------------------------------------------------------------------------------------- CLAP

_CLAP_DROPPED = ("text_transform.", "audio_transform.", "audio_branch.spectrogram_extractor.",
                 "audio_branch.logmel_extractor.", "audio_branch.tscam_conv.", "audio_branch.head.")
_HTSAT_BLOCK = (("norm1.", "layernorm_before."), ("norm2.", "layernorm_after."), ("mlp.fc1.", "intermediate.dense."),
                ("mlp.fc2.", "output.dense."), ("attn.proj.", "attention.output.dense."),
                ("attn.relative_position_bias_table", "attention.self.relative_position_bias_table"),
                ("attn.relative_position_index", "attention.self.relative_position_index"))


def clap(state: dict[str, torch.Tensor], audio: bool = True) -> dict[str, torch.Tensor]:
    """Original CLAP (prefix removed) → transformers ClapModel names (audio=True) or ClapTextModelWithProjection
    names (audio=False: the audio branch is left out). The HTSAT attention's fused qkv is split in thirds."""
    out = {}
    for key, value in state.items():
        if key.startswith(_CLAP_DROPPED) or key.endswith(".attn_mask"):
            continue
        if key in ("logit_scale_a", "logit_scale_t"):
            if audio:
                out[key] = value
            continue
        branch, _, rest = key.partition(".")
        if branch == "text_branch":
            out[f"text_model.{rest}"] = value
        elif branch in ("text_projection", "audio_projection"):
            if branch == "audio_projection" and not audio:
                continue
            index, _, tail = rest.partition(".")
            layer = {"0": "linear1", "2": "linear2"}.get(index)
            if layer is None:
                raise CheckpointError(f"unknown CLAP projection parameter {key!r}")
            out[f"{branch}.{layer}.{tail}"] = value
        elif branch == "audio_branch":
            if audio:
                out.update(_htsat(rest, value))
        else:
            raise CheckpointError(f"unknown CLAP parameter {key!r}")
    return out


def _htsat(rest: str, value: torch.Tensor) -> dict[str, torch.Tensor]:
    prefix = "audio_model.audio_encoder."
    if rest.startswith("bn0."):
        return {f"{prefix}batch_norm.{rest[4:]}": value}
    match = re.match(r"^(layers\.\d+\.blocks\.\d+\.)(.*)$", rest)
    if match is None:  # patch_embed, layers.i.downsample, norm
        return {prefix + rest: value}
    block, tail = match.groups()
    if tail.startswith("attn.qkv."):
        query, key, value_ = (part.clone() for part in value.chunk(3, dim=0))  # own storage each, for saving
        leaf = tail[len("attn.qkv."):]
        return {f"{prefix}{block}attention.self.{name}.{leaf}": part
                for name, part in (("query", query), ("key", key), ("value", value_))}
    for old, new in _HTSAT_BLOCK:
        if tail.startswith(old):
            return {f"{prefix}{block}{new}{tail[len(old):]}": value}
    raise CheckpointError(f"unknown CLAP audio parameter audio_branch.{rest}")


# ------------------------------------------------------------------------------------------------ AudioLDM 2 extras


def gpt2(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """GPT-2 (prefix removed): names are transformers' GPT2Model's already; the causal-mask buffers that older
    transformers saved (`attn.bias`, `attn.masked_bias`) are not parameters and are dropped."""
    return {k: v for k, v in state.items() if not k.endswith((".attn.bias", ".attn.masked_bias"))}


def projection(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The sequence generator's learned SOS / EOS rows (the first two of each 32-row table: one per input
    sequence, CLAP then T5) and its two input projections → AudioLDM2ProjectionModel names."""
    try:
        sos, eos = state["start_of_sequence_tokens.weight"], state["end_of_sequence_tokens.weight"]
        return {
            "sos_embed": sos[0].clone(), "sos_embed_1": sos[1].clone(),
            "eos_embed": eos[0].clone(), "eos_embed_1": eos[1].clone(),
            "projection.weight": state["input_sequence_embed_linear.0.weight"],
            "projection.bias": state["input_sequence_embed_linear.0.bias"],
            "projection_1.weight": state["input_sequence_embed_linear.1.weight"],
            "projection_1.bias": state["input_sequence_embed_linear.1.bias"],
        }
    except KeyError as missing:
        raise CheckpointError(f"AudioLDM 2 checkpoint without cond_stage_models.0.{missing.args[0]}") from None
