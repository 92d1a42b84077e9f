"""The `soundsmith` command.

    soundsmith generate "a dog barking in the rain" -d 5 -o dog.wav
    soundsmith models
    soundsmith download audioldm2

User errors print one line (`soundsmith: error: …`) and exit with status 2; the output path goes to stdout, progress
and notes to stderr.
"""

import argparse
import json
import secrets
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from .errors import InvalidArgument, SoundsmithError
from .jobs import Job, read_prompt_file

DEFAULT_MODEL = "audioldm-s-full-v2"
AUDIO_SUFFIXES = (".wav", ".flac")


def _note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def slug(text: str, limit: int = 60) -> str:
    """A file-name-safe stem from a prompt: 'A dog, barking!' → 'a_dog_barking'."""
    word = "".join(c if c.isalnum() else "_" for c in text.lower())
    stem = "_".join(w for w in word.split("_") if w)[:limit].rstrip("_")
    return stem or "sound"


def output_paths(out: str | None, prompt: str, n: int, force: bool, folder: Path | None = None,
                 taken: set | None = None, suffix: str = ".wav") -> list[Path]:
    """Where the n candidates go: OUT for one, OUT_1 … OUT_n (best first) for several. Without -o, a name made
    from the prompt (in `folder`) that collides neither with an existing file nor with `taken`. An explicit
    existing file needs --force."""
    taken = set() if taken is None else taken
    if out is None:
        base = (folder or Path(".")) / (slug(prompt) + suffix)
        stem, k = base.stem, 1
        while any(p.exists() or p in taken for p in _numbered(base, n)):
            k += 1
            base = base.with_name(f"{stem}-{k}{base.suffix}")
        paths = _numbered(base, n)
    else:
        base = Path(out).expanduser()
        if base.suffix.lower() not in AUDIO_SUFFIXES:
            raise InvalidArgument(f"output {out!r} has an unsupported extension (allowed: {', '.join(AUDIO_SUFFIXES)})")
        paths = _numbered(base, n)
        existing = [str(p) for p in paths if p.exists()]
        if existing and not force:
            raise InvalidArgument(f"output {existing[0]!r} already exists: choose another -o or pass --force to "
                                  f"overwrite")
    _check_folder(paths[0].parent)
    taken.update(paths)
    return paths


def _check_folder(folder: Path) -> None:
    folder = folder if str(folder) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidArgument(f"output folder {str(folder)!r} cannot be created ({exc.strerror})") from None
    try:  # a real probe: os.access says yes to root even on read-only or special file systems
        tempfile.NamedTemporaryFile(dir=folder, prefix=".soundsmith-probe-").close()
    except OSError as exc:
        raise InvalidArgument(f"output folder {str(folder)!r} is not writable ({exc.strerror})") from None


def _numbered(base: Path, n: int) -> list[Path]:
    if n == 1:
        return [base]
    return [base.with_name(f"{base.stem}_{i}{base.suffix}") for i in range(1, n + 1)]


def _add_generation_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-m", "--model", default=None,
                   help=f"model name, hub id or local diffusers folder (default {DEFAULT_MODEL} when cached or "
                        "reachable, else the bundled `demo`; `soundsmith models`)")
    p.add_argument("--lora", default=None, metavar="ADAPTER", help="LoRA adapter folder (soundsmith finetune --lora)")
    p.add_argument("-d", "--duration", type=float, default=None, help="seconds of audio (default: the model's)")
    p.add_argument("--steps", type=int, default=None, help="sampler steps (default: the model family's)")
    p.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale (default: family's)")
    p.add_argument("--negative", default=None, help="negative prompt: what the sound should not be")
    p.add_argument("-n", "--candidates", type=int, default=1, help="waveforms per prompt")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: a fresh one, stored in the file)")
    p.add_argument("--sampler", default=None, help="sampler name (default: the checkpoint's scheduler)")
    p.add_argument("-q", "--quality", default=None, choices=["draft", "standard", "high"],
                   help="sampler and steps chosen for speed or quality (presets.py); --sampler/--steps override")
    p.add_argument("--eta", type=float, default=0.0, help="DDIM eta (0 = deterministic)")
    p.add_argument("--transcription", default=None, help="words to speak (AudioLDM 2 speech checkpoints)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="AudioLDM 2 GPT-2 states (speech: 512)")
    p.add_argument("--ranker", default=None,
                   help="CLAP with an audio tower to rank -n candidates (a MusicLDM / AudioLDM 2 / CLAP folder); "
                        "MusicLDM and AudioLDM 2 rank with their own")
    p.add_argument("--no-rank", action="store_true", help="keep candidates in generation order")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--offload", action="store_true",
                   help="keep the networks in CPU memory and move each to the GPU only for its stage (less GPU memory)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the networks (the first sound takes minutes to compile; worth it for batches)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="soundsmith", description="Text-to-audio with the AudioLDM family.")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="text → audio file")
    gen.add_argument("prompt", nargs="?", help="description of the sound")
    gen.add_argument("--prompts", default=None, metavar="FILE",
                     help="prompt list: one per line (`prompt|name`), or JSON Lines with prompt, negative_prompt, "
                          "seed, duration, name, transcription")
    _add_generation_args(gen)
    gen.add_argument("-o", "--output", default=None,
                     help="output .wav (16-bit) or .flac (default: named from the prompt); with --prompts, a folder "
                          "(default ./output)")
    gen.add_argument("--format", default="wav", choices=["wav", "flac"], help="file type for --prompts outputs")
    gen.add_argument("--force", action="store_true", help="overwrite existing output files")
    gen.set_defaults(func=cmd_generate)

    models = sub.add_parser("models", help="list the known model names and whether each is cached")
    models.set_defaults(func=cmd_models)

    download = sub.add_parser("download", help="download a model into the huggingface cache")
    download.add_argument("model", help="model name or hub id")
    download.set_defaults(func=cmd_download)
    from . import data, edit
    from .train import cli as train_cli

    for owner in (data, train_cli, edit):  # each stage owns its subcommands
        owner.add_commands(sub)
    return parser


def _jobs(args) -> list[tuple[Job, list[Path]]]:
    """The sounds to make and where each goes, all checked before any model is loaded."""
    from .pipelines.base import check_duration, check_positive_int, check_prompt

    if (args.prompt is None) == (args.prompts is None):
        raise InvalidArgument("give a PROMPT or --prompts FILE (one of them)")
    n = check_positive_int("candidates (-n)", args.candidates)
    if args.prompts is None:
        check_prompt(args.prompt)
        jobs = [Job(prompt=args.prompt)]
    else:
        jobs = read_prompt_file(args.prompts)
    defaults = dict(negative_prompt=args.negative, seed=args.seed, duration=args.duration,
                    transcription=args.transcription)
    planned, taken = [], set()
    for job in jobs:
        job = replace(job, **{k: v for k, v in defaults.items() if getattr(job, k) is None})
        if job.duration is not None:
            check_duration(job.duration, 0.0, name="duration")
        if job.seed is None:
            job = replace(job, seed=secrets.randbelow(2 ** 31))
        if args.prompts is None:
            paths = output_paths(args.output, job.prompt, n, args.force, taken=taken)
        else:
            folder = Path(args.output or "output").expanduser()
            named = str(folder / f"{job.name}.{args.format}") if job.name else None
            paths = output_paths(named, job.prompt, n, args.force, folder=folder, taken=taken,
                                 suffix=f".{args.format}")
        _check_metadata_fits(paths[0], job)
        planned.append((job, paths))
    return planned


def _check_metadata_fits(path: Path, job: Job) -> None:
    from .audio import WAV_COMMENT_LIMIT

    size = len(json.dumps({"prompt": job.prompt, "negative_prompt": job.negative_prompt,
                           "transcription": job.transcription}, ensure_ascii=True))
    if path.suffix.lower() == ".wav" and size + 400 > WAV_COMMENT_LIMIT:
        raise InvalidArgument(f"the prompt is too long to store in a WAV file's metadata ({size} characters): "
                              f"write .flac instead")


def cmd_generate(args) -> int:
    from .pipelines.base import check_guidance, check_positive_int

    if args.steps is not None:
        check_positive_int("steps", args.steps)
    if args.guidance is not None:
        check_guidance(args.guidance)
    if args.max_new_tokens is not None:
        check_positive_int("max-new-tokens", args.max_new_tokens)
    planned = _jobs(args)

    pipe = _load(args.model, args.device, args.dtype, args.lora, args.compile, args.offload)
    sampler, steps, guidance = sampling(args, pipe)
    from .pipelines import AudioLDM2

    speaking = any(job.transcription is not None for job, _ in planned)
    if (speaking or args.max_new_tokens is not None) and not isinstance(pipe, AudioLDM2):
        flag = "--transcription" if speaking else "--max-new-tokens"
        raise InvalidArgument(f"{flag} needs an AudioLDM 2 checkpoint; {pipe.name} is a {type(pipe).__name__}")
    for number, (job, paths) in enumerate(planned, 1):
        if len(planned) > 1:
            _note(f"[{number}/{len(planned)}] {job.prompt}")
        extra = {}
        if job.transcription is not None:
            extra["transcription"] = job.transcription
        if args.max_new_tokens is not None:
            extra["max_new_tokens"] = args.max_new_tokens
        n = len(paths)
        rank_options = {"rank": not args.no_rank}
        if args.ranker is not None:
            rank_options["ranker"] = args.ranker
        started = time.perf_counter()
        out = pipe(job.prompt, audio_length_in_s=job.duration, num_inference_steps=steps, guidance_scale=guidance,
                   negative_prompt=job.negative_prompt, num_waveforms_per_prompt=n, eta=args.eta, seed=job.seed,
                   sampler=sampler, progress=True, **extra, **(rank_options if n > 1 else {}))
        if args.compile and number == 1:
            _note(f"first sound, compilation included: {time.perf_counter() - started:.1f} s")
        _save_all(paths, out, {
            "prompt": job.prompt, "negative_prompt": job.negative_prompt, "transcription": job.transcription,
            "model": pipe.name, "seed": job.seed, "steps": steps, "guidance": guidance,
            "sampler": sampler or "default", "eta": args.eta,
            "duration": round(out.audios.shape[1] / out.sample_rate, 6), "candidates": n, "dtype": args.dtype,
        })
    return 0


def sampling(args, pipe) -> tuple[str | None, int, float]:
    """(sampler, steps, guidance) from --sampler/--steps/--guidance, else the --quality preset, else the model's
    defaults."""
    sampler, steps = args.sampler, args.steps
    if args.quality is not None:
        from .presets import preset

        preset_sampler, preset_steps = preset(pipe.pipeline_class, args.quality)
        sampler, steps = sampler or preset_sampler, steps or preset_steps
    guidance = pipe.default_guidance if args.guidance is None else args.guidance
    return sampler, steps or pipe.default_steps, guidance


def _load(model: str | None, device: str, dtype: str, lora: str | None = None, compile: bool = False,
          offload: bool = False):
    from . import load

    if model is None:
        from .checkpoints import default_model

        model, why = default_model()
        _note(f"no -m given: using {model} ({why})")
    _note(f"loading {model} …")
    pipe = load(model, device=device, dtype=dtype, compile=compile, offload=offload)
    if lora is not None:
        pipe.load_lora(lora)
    _note(f"loaded {type(pipe).__name__} from {pipe.folder} on {pipe.device}" + (f" with LoRA {lora}" if lora else ""))
    return pipe


def _save_all(paths: list[Path], out, metadata: dict) -> None:
    from . import __version__
    from .audio import write

    for i, (path, audio) in enumerate(zip(paths, out.audios)):
        meta = {**metadata, "soundsmith": __version__}
        if len(paths) > 1:
            meta["candidate"] = i + 1
        if out.scores is not None:
            meta["clap_score"] = round(float(out.scores[i]), 6)
        write(path, audio, out.sample_rate, meta)
        print(path)


def cmd_models(args) -> int:
    from .checkpoints import MODELS, is_cached

    rows = [(name, spec.repo, spec.family, "cached" if is_cached(name) else "-", spec.about)
            for name, spec in MODELS.items()]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[4])
    return 0


def cmd_download(args) -> int:
    from .checkpoints import resolve

    print(resolve(args.model))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except SoundsmithError as exc:
        print(f"soundsmith: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("soundsmith: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
