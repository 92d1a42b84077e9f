"""Original checkpoints of the research repositories (`.ckpt`, `.pth`, `.safetensors`) → diffusers folders.

    soundsmith convert audioldm-s-full-v2.ckpt --out audioldm-s-full-v2     # then -m audioldm-s-full-v2
    soundsmith.load("audioldm_48k.pth")     # converted once into $SOUNDSMITH_CACHE/converted/, then loaded

The folder is what diffusers' conversion scripts (scripts/convert_original_{audioldm,musicldm,audioldm2}_to_diffusers.py
in the diffusers repository) write for the same file, loadable by diffusers' pipeline classes as well as by
soundsmith; `audioldm_48k` (no diffusers script) becomes an AudioLDM pipeline faithful to the original code (its
attention heads, 48 kHz HiFi-GAN and mel recipe). What comes from where: convert_configs (architecture from the
weights' shapes, settings from an original config) and convert_keys (parameter names).

Pickle checkpoints are read with `torch.load(weights_only=True)`: a file holding anything but tensors and plain
containers is refused before any of it runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from . import convert_configs as configs
from . import convert_keys as keys
from .errors import CheckpointError, InvalidArgument, ModelNotFound

SUFFIXES = (".ckpt", ".pth", ".pt", ".bin", ".safetensors")
CLAP_TOKENIZER = "laion/clap-htsat-unfused"   # the CLAP tokenizer and feature extractor the scripts fetch
T5_TOKENIZER = "google/flan-t5-large"         # AudioLDM 2's T5 tokenizer (model_max_length 128)
DIFFUSERS_VERSION = "0.42.1"                  # the diffusers release whose folder layout this writes
CACHE = Path(os.environ.get("SOUNDSMITH_CACHE", Path.home() / ".cache" / "soundsmith")) / "converted"


# ---------------------------------------------------------------------------------------------------- reading


def read_checkpoint(path) -> dict[str, torch.Tensor]:
    """All tensors of an original checkpoint, on the CPU: a Lightning `.ckpt` (its `state_dict`), a `.pth` state
    dict, or `.safetensors`. Pickles load with weights_only=True: any other Python object is refused."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelNotFound(f"checkpoint file {str(path)!r} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(path)
        except Exception as exc:
            raise CheckpointError(f"{path} is not a readable safetensors file ({type(exc).__name__}: "
                                  f"{_first_line(exc)})") from None
    try:
        try:
            data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            data = torch.load(path, map_location="cpu", weights_only=True)  # the legacy (pre-zip) format
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = f" ({found.group(1)})" if found else ""
        raise CheckpointError(
            f"{path} holds Python objects other than tensors and plain containers{what}: refused, soundsmith only "
            "loads weights (torch.load weights_only=True); if you trust the file, re-save its state_dict alone "
            "with torch.save") from None
    except Exception as exc:
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__}: "
                              f"{_first_line(exc)}); it may be truncated: download it again") from None
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict) or not data:
        raise CheckpointError(f"{path} holds a {type(data).__name__}, not a state dict of named tensors")
    tensors = {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}
    if len(tensors) != len(data):
        odd = next(k for k, v in data.items() if not isinstance(v, torch.Tensor))
        raise CheckpointError(f"{path}: entry {odd!r} of its state dict is a {type(data[odd]).__name__}, not a tensor")
    return tensors


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:160] if text else ""


# ----------------------------------------------------------------------------------------------- components


@dataclass
class Component:
    """One subfolder of the pipeline: model_index entry (library, class) and how to write it."""

    name: str
    library: str
    class_name: str
    write: Callable[[Path], None]


def _float32(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: (v.float() if v.is_floating_point() else v).contiguous() for k, v in state.items()}


def _diffusers_component(name: str, library: str, config: dict, state: dict, check: Callable | None) -> Component:
    """A diffusers-native model: config.json + diffusion_pytorch_model.safetensors; `check(config, state)` builds
    soundsmith's module from the config and verifies every key and shape (soundsmith must load it)."""
    state = _float32(state)
    if check is not None:
        check(config, state)

    def write(folder: Path) -> None:
        from safetensors.torch import save_file

        folder.mkdir(parents=True)
        (folder / "config.json").write_text(
            json.dumps({**config, "_diffusers_version": DIFFUSERS_VERSION}, indent=2, sort_keys=True) + "\n")
        save_file(state, folder / "diffusion_pytorch_model.safetensors", metadata={"format": "pt"})

    return Component(name, library, config["_class_name"], write)


def _check_module(module_cls, config_cls, what: str):
    def check(config: dict, state: dict) -> None:
        with torch.device("meta"):
            module = module_cls(config_cls.from_dict(config))
        _compare(what, {k: v.shape for k, v in module.state_dict().items()}, state)

    return check


def _compare(what: str, expected: dict, state: dict) -> None:
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        detail = "; ".join(f"{label}: {', '.join(names[:4])}" + (f" … ({len(names)} in all)" if len(names) > 4 else "")
                           for label, names in (("missing", missing), ("unexpected", unexpected)) if names)
        raise CheckpointError(f"the converted {what} does not match its inferred config ({detail}); give the "
                              "model's original config with --config")
    for key, shape in expected.items():
        if tuple(state[key].shape) != tuple(shape):
            raise CheckpointError(f"the converted {what}: {key} has shape {tuple(state[key].shape)}, its inferred "
                                  f"config implies {tuple(shape)}; give the model's original config with --config")


def _transformers_component(name: str, class_name: str, config_class: str, config: dict, state: dict,
                            fill: dict | None = None) -> Component:
    """A transformers model built from `config`, filled strictly with `state` (plus `fill` for buffers an older
    checkpoint lacks) and saved with save_pretrained."""
    import transformers

    state = {**(fill or {}), **_float32(state)}
    config_obj = getattr(transformers, config_class)(**config)
    with torch.device("meta"):
        model = getattr(transformers, class_name)(config_obj)
    _compare(name, {k: v.shape for k, v in model.state_dict().items()}, state)
    model.load_state_dict(state, strict=True, assign=True)
    if hasattr(model, "tie_weights"):
        model.tie_weights()

    def write(folder: Path) -> None:
        verbosity = transformers.logging.get_verbosity()
        transformers.logging.set_verbosity_error()
        try:
            model.save_pretrained(folder, safe_serialization=True)
        finally:
            transformers.logging.set_verbosity(verbosity)

    return Component(name, "transformers", class_name, write)


def _unet(state: dict, original: configs.Original, heads: str, ema: bool, vae_factor: int) -> Component:
    from .models.unet import UNet, UNetConfig

    weights = keys.ema_unet(state) if ema else keys.under(state, "model.diffusion_model.")
    shape = configs.unet_shape(weights, original.layout)
    config = configs.unet_config(shape, original, vae_factor, heads)
    converted = keys.unet(weights, shape.num_res_blocks, len(shape.contexts))
    library = "audioldm2" if config["_class_name"].startswith("AudioLDM2") else "diffusers"
    return _diffusers_component("unet", library, config, converted, _check_module(UNet, UNetConfig, "UNet"))


def _vae(state: dict, original: configs.Original) -> tuple[Component, int]:
    from .models.vae import AutoencoderKL, VAEConfig

    weights = {k: v for k, v in keys.under(state, "first_stage_model.").items()
               if k.split(".")[0] in ("encoder", "decoder", "quant_conv", "post_quant_conv")}
    scale = state.get("scale_factor")
    config = configs.vae_config(weights, None if scale is None else float(scale), original)
    levels = len(config["block_out_channels"])
    converted = keys.vae(weights, levels)
    component = _diffusers_component("vae", "diffusers", config, converted,
                                     _check_module(AutoencoderKL, VAEConfig, "VAE"))
    return component, 2 ** (levels - 1)


def _vocoder(state: dict, original: configs.Original) -> Component:
    weights = keys.fold_weight_norm(keys.under(state, "first_stage_model.vocoder."))
    if not weights:
        raise CheckpointError("the checkpoint has no HiFi-GAN vocoder (first_stage_model.vocoder.*)")
    config = configs.vocoder_config(weights, original)
    return _transformers_component("vocoder", "SpeechT5HifiGan", "SpeechT5HifiGanConfig", config,
                                   keys.vocoder(weights, config["model_in_dim"]))


def _text_buffers(config: dict) -> dict:
    """ClapTextModel's position and token-type id buffers, for checkpoints saved by transformers that did not
    store them."""
    length = config["max_position_embeddings"]
    return {"text_model.embeddings.position_ids": torch.arange(length).expand((1, -1)),
            "text_model.embeddings.token_type_ids": torch.zeros((1, length), dtype=torch.long)}


def _clap(state: dict, prefix: str, audio: bool, layer_norm_eps: float = 1e-12) -> Component:
    original = keys.under(state, prefix)
    if not original:
        raise CheckpointError(f"the checkpoint has no CLAP under {prefix}")
    if any("fusion_model" in k or "mel_conv2d" in k for k in original):
        raise CheckpointError("the checkpoint's CLAP audio tower uses feature fusion, which these models never do")
    converted = keys.clap(original, audio=audio)
    text = configs.clap_text_config(converted, layer_norm_eps)
    fill = _text_buffers(text)
    if not audio:
        return _transformers_component("text_encoder", "ClapTextModelWithProjection", "ClapTextConfig", text,
                                       converted, fill)
    audio_config = configs.clap_audio_config(converted, configs.htsat_spec_size(original))
    projection_dim = audio_config.pop("projection_dim")
    if text["projection_dim"] != projection_dim:
        raise CheckpointError(f"CLAP text and audio projections differ in width ({text['projection_dim']} vs "
                              f"{projection_dim})")
    config = {"text_config": text, "audio_config": audio_config, "projection_dim": projection_dim}
    return _transformers_component("text_encoder", "ClapModel", "ClapConfig", config, converted, fill)


def components(state: dict, original: configs.Original, *, heads: str, ema: bool) -> list[Component]:
    """The converted models of a checkpoint (tokenizers and scheduler aside)."""
    vae, factor = _vae(state, original)
    out = [_unet(state, original, heads, ema, factor), vae, _vocoder(state, original)]
    if original.layout == "audioldm":
        out.append(_clap(state, "cond_stage_model.model.", audio=original.family == "musicldm"))
    elif original.layout == "audioldm2-film":
        out.append(_clap(state, "cond_stage_models.0.model.", audio=False, layer_norm_eps=1e-5))
    else:
        prefix = "clap.model." if any(k.startswith("clap.model.") for k in state) \
            else "cond_stage_models.0.cond_stage_models.0.model."
        out.append(_clap(state, prefix, audio=True))
        t5 = keys.under(state, "cond_stage_models.1.model.")
        if not t5:
            raise CheckpointError("the AudioLDM 2 checkpoint has no Flan-T5 encoder (cond_stage_models.1.model.*)")
        t5.setdefault("encoder.embed_tokens.weight", t5.get("shared.weight"))
        out.append(_transformers_component("text_encoder_2", "T5EncoderModel", "T5Config", configs.t5_config(t5), t5))
        gpt = keys.gpt2(keys.under(state, "cond_stage_models.0.model."))
        gpt_config = configs.gpt2_config(gpt, original.sequence_gen_length)
        out.append(_transformers_component("language_model", "GPT2Model", "GPT2Config", gpt_config, gpt))
        projection = keys.projection(keys.under(state, "cond_stage_models.0."))
        config = {"_class_name": "AudioLDM2ProjectionModel",
                  "text_encoder_dim": projection["projection.weight"].shape[1],
                  "text_encoder_1_dim": projection["projection_1.weight"].shape[1],
                  "langauge_model_dim": projection["projection.weight"].shape[0],  # (sic: diffusers' spelling)
                  "use_learned_position_embedding": None, "max_seq_length": None}
        out.append(_diffusers_component("projection_model", "audioldm2", config, projection, None))
    return out


# ------------------------------------------------------------------------------------------------ tokenizers


def _pretrained(cls_name: str, source, what: str, **kwargs):
    """A transformers tokenizer / feature extractor from a folder or a hub id, with one-line failures."""
    import transformers

    cls = getattr(transformers, cls_name)
    try:
        return cls.from_pretrained(str(source), **kwargs)
    except Exception as exc:
        hint = ("pass --tokenizers FOLDER: a diffusers folder of the same family (e.g. a downloaded "
                "cvssp/audioldm2) whose tokenizer folders are copied")
        raise ModelNotFound(f"the {what} could not be loaded from {source} ({type(exc).__name__}: "
                            f"{_first_line(exc)[:100]}); {hint}") from None


def tokenizers(family: str, source=None) -> dict[str, Component]:
    """The tokenizers (and CLAP feature extractor) the pipeline needs: from `source`, a diffusers folder of the
    family (its tokenizer/, tokenizer_2/, feature_extractor/), or else from the hub ids the diffusers scripts use."""
    folder = None if source is None else Path(source).expanduser()
    if folder is not None and not folder.is_dir():
        raise InvalidArgument(f"--tokenizers {str(source)!r} is not a folder (give a diffusers checkpoint folder)")

    def where(sub: str, hub: str):
        return folder / sub if folder is not None else hub

    out = {"tokenizer": _pretrained("AutoTokenizer", where("tokenizer", CLAP_TOKENIZER), "CLAP tokenizer")}
    if family in ("musicldm", "audioldm2"):
        out["feature_extractor"] = _pretrained("ClapFeatureExtractor", where("feature_extractor", CLAP_TOKENIZER),
                                               "CLAP feature extractor")
    if family == "audioldm2":
        t5 = _pretrained("AutoTokenizer", where("tokenizer_2", T5_TOKENIZER), "T5 tokenizer")
        t5.model_max_length = 128  # the original FlanT5HiddenState's max_length (hard-coded there)
        out["tokenizer_2"] = t5
    return {name: Component(name, "transformers", type(obj).__name__, obj.save_pretrained)
            for name, obj in out.items()}


# ---------------------------------------------------------------------------------------------------- writing

PIPELINES = {"audioldm": "AudioLDMPipeline", "musicldm": "MusicLDMPipeline", "audioldm2": "AudioLDM2Pipeline"}


def convert(checkpoint, out, *, config=None, family: str | None = None, tokenizers_from=None, ema: bool = False,
            heads: str | None = None, force: bool = False) -> Path:
    """Convert an original checkpoint file into a diffusers folder `out` (written atomically: a temporary sibling
    folder renamed at the end). config: the model's original YAML / JSON (optional); family: "audioldm",
    "musicldm" or "audioldm2" when the file does not say (AudioLDM and MusicLDM files look alike; a file or config
    naming musicldm is MusicLDM); tokenizers_from: a diffusers folder to take the tokenizers from (default: the hub);
    ema: the UNet's EMA weights instead of the trained ones; heads: "diffusers" (8 per block, the scripts' and hub
    folders' choice) or "original" (channels / num_head_channels, the original code's; the default for
    audioldm_48k, which has no diffusers script). Returns `out`."""
    checkpoint, out = Path(checkpoint).expanduser(), Path(out).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise InvalidArgument(f"--out {str(out)!r} exists and is not an empty folder (add --force to replace it)")
    state = read_checkpoint(checkpoint)
    original = configs.describe(state, None if config is None else configs.read_config(config), family,
                                checkpoint.name)
    heads = heads or ("original" if original.layout == "audioldm2-film" else "diffusers")
    parts = components(state, original, heads=heads, ema=ema)
    parts += tokenizers(original.family, tokenizers_from).values()
    index = {"_class_name": PIPELINES[original.family], "_diffusers_version": DIFFUSERS_VERSION}
    index.update({p.name: [p.library, p.class_name] for p in parts})
    index["scheduler"] = ["diffusers", "DDIMScheduler"]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for part in parts:
            part.write(tmp / part.name)
        (tmp / "scheduler").mkdir()
        scheduler = {**configs.scheduler_config(original), "_diffusers_version": DIFFUSERS_VERSION}
        (tmp / "scheduler" / "scheduler_config.json").write_text(json.dumps(scheduler, indent=2, sort_keys=True) + "\n")
        if original.layout == "audioldm2-film" and original.evaluation:
            defaults = {"num_inference_steps": int(original.evaluation.get("ddim_sampling_steps", 200)),
                        "guidance_scale": float(original.evaluation.get("unconditional_guidance_scale", 3.5))}
            (tmp / "soundsmith.json").write_text(json.dumps(defaults, indent=2) + "\n")
        (tmp / "model_index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def is_checkpoint_file(path) -> bool:
    path = Path(path).expanduser()
    return path.is_file() and path.suffix.lower() in SUFFIXES


def converted_folder(checkpoint, name: str | None = None, **options) -> Path:
    """The diffusers folder of an original checkpoint file, converted on first use into
    $SOUNDSMITH_CACHE/converted/<name> (default ~/.cache/soundsmith) and reused while the file is unchanged (same
    path, size and modification time)."""
    checkpoint = Path(checkpoint).expanduser().resolve()
    info = checkpoint.stat()
    source = {"file": str(checkpoint), "size": info.st_size, "mtime_ns": info.st_mtime_ns}
    digest = hashlib.sha256(json.dumps(source, sort_keys=True).encode()).hexdigest()[:12]
    folder = CACHE / (name or f"{checkpoint.stem}-{digest}")
    stamp = folder / "soundsmith-source.json"
    if (folder / "model_index.json").is_file() and stamp.is_file():
        try:
            if json.loads(stamp.read_text()) == source:
                return folder
        except (OSError, json.JSONDecodeError):
            pass
    convert(checkpoint, folder, force=True, **options)
    stamp.write_text(json.dumps(source, indent=2, sort_keys=True) + "\n")
    return folder


# -------------------------------------------------------------------------------------------------------- CLI


def add_commands(sub) -> None:
    """Add `convert` to the `soundsmith` subcommands."""
    p = sub.add_parser("convert", help="original AudioLDM / AudioLDM 2 / MusicLDM .ckpt/.pth → diffusers folder")
    p.add_argument("checkpoint", help="the original checkpoint file (.ckpt, .pth, .pt, .bin or .safetensors)")
    p.add_argument("--out", required=True, help="folder to write (must not exist, or be empty; see --force)")
    p.add_argument("--config", default=None, help="the model's original YAML or JSON config (default: the "
                   "published models' settings; the architecture is read from the weights)")
    p.add_argument("--family", default=None, choices=configs.FAMILIES,
                   help="when the file does not say: AudioLDM and MusicLDM checkpoints look alike (default: "
                        "musicldm if the file or config name says so, else audioldm)")
    p.add_argument("--tokenizers", default=None, metavar="FOLDER",
                   help=f"diffusers folder to copy the tokenizers from (default: the hub's {CLAP_TOKENIZER} and "
                        f"{T5_TOKENIZER}, as the diffusers scripts do)")
    p.add_argument("--ema", action="store_true", help="the UNet's EMA weights (model_ema.*) instead of model.*")
    p.add_argument("--heads", default=None, choices=["diffusers", "original"],
                   help="UNet attention heads: 8 per block as diffusers' conversion (default), or the original "
                        "code's channels/num_head_channels (default for audioldm_48k)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=cmd_convert)


def cmd_convert(args) -> int:
    out = convert(args.checkpoint, args.out, config=args.config, family=args.family,
                  tokenizers_from=args.tokenizers, ema=args.ema, heads=args.heads, force=args.force)
    print(out)
    return 0
