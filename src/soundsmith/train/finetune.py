"""`soundsmith finetune MODEL --data manifest.jsonl --out DIR [--lora --rank R]`: adapt an AudioLDM-layout model's
UNet to new (audio, caption) pairs with the UNet stage's objective under the model's own scheduler betas,
conditioned on the model's CLAP text embeddings of the captions (its pipeline's text path).

- full: every UNet weight trains; OUT/model is a complete pipeline folder (the other components copied) that
  `soundsmith generate -m OUT/model` loads.
- --lora: only LoRA branches on the attention projections train; OUT/adapter is the adapter that
  `soundsmith generate -m MODEL --lora OUT/adapter` (or `pipe.load_lora(OUT/adapter)`) applies.
Clips are cut to the UNet's sample_size and turned into log-mels with the model's vocoder configuration.
"""

import shutil
from pathlib import Path

import torch

from .. import lora as lora_lib
from ..errors import InvalidArgument
from . import unet as unet_stage
from .data import load_clips
from .loop import train_from_args


@torch.no_grad()
def prepare(pipe, manifest: Path, progress: bool = True) -> dict:
    """Posterior means/stds of the clips' latents and their CLAP text conditioning, with the pipeline's models."""
    from ..checkpoints import read_json
    from ..models.conditioning import clap_text_embeds

    vocoder_cfg = read_json(pipe.folder / "vocoder" / "config.json")
    mel = pipe.mel_config
    frames = (pipe.unet_sample_size or 128) * pipe.vae_scale_factor
    clips = load_clips(manifest, frames, mel, cache=False, progress=progress, center=vocoder_cfg.get("center", True))
    means, stds = [], []
    for i in range(0, len(clips), 32):
        mean, logvar = pipe.vae.encode(clips.mels[i:i + 32].to(pipe.device, pipe.dtype)[:, None])
        means.append(mean.float().cpu())
        stds.append(torch.exp(0.5 * logvar).float().cpu())
    length = pipe.tokenizer.model_max_length
    cond = torch.cat([clap_text_embeds(pipe.text_encoder, pipe.tokenizer, clips.captions[i:i + 64], length).float()
                      for i in range(0, len(clips), 64)]).cpu()
    uncond = clap_text_embeds(pipe.text_encoder, pipe.tokenizer, [""], length)[0].float().cpu()
    return {"mean": torch.cat(means), "std": torch.cat(stds), "cond": cond, "uncond": uncond,
            "scale": pipe.vae.config.scaling_factor}


def finetune(args, schedule) -> int:
    from .. import load
    from ..checkpoints import read_json
    from ..pipelines import AudioLDM

    pipe = load(args.model, device="cpu")
    if type(pipe) is not AudioLDM:
        raise InvalidArgument(f"finetune supports AudioLDM-layout models; {args.model} is a {type(pipe).__name__}")
    prepared = prepare(pipe, Path(args.data), progress=not args.no_progress)
    out = Path(args.out)
    unet = pipe.unet.float().train()
    if args.lora:
        if args.rank < 1:
            raise InvalidArgument(f"--rank {args.rank}: must be at least 1")
        lora_lib.add_lora(unet, args.rank, args.alpha)
    else:
        unet.requires_grad_(True)
        _copy_pipeline(pipe.folder, out / "model")
    config = read_json(pipe.folder / "unet" / "config.json")
    objective = unet_stage.DiffusionObjective(config, unet, pipe.scheduler_config)
    draw = unet_stage.batches(prepared["mean"], prepared["std"], prepared["scale"], prepared["cond"],
                              prepared["uncond"], args.batch, args.dropout)

    def export(objective, out: Path) -> None:
        if args.lora:
            lora_lib.save_adapter(objective.unet, out / "adapter")
        else:
            unet_stage.save(objective.unet, config, out / "model" / "unet")

    return train_from_args(objective, draw, args, schedule, export, "finetune (LoRA)" if args.lora else "finetune")


def _copy_pipeline(source: Path, target: Path) -> None:
    """Every component but the UNet, once (the UNet is written by each export)."""
    if (target / "model_index.json").exists():
        return
    target.mkdir(parents=True, exist_ok=True)
    for entry in Path(source).iterdir():
        if entry.name == "unet":
            continue
        if entry.is_dir():
            shutil.copytree(entry, target / entry.name, dirs_exist_ok=True)
        else:
            shutil.copy2(entry, target / entry.name)
