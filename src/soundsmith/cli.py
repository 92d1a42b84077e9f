"""The `soundsmith` command: flags become Requests (request.py), the engine runs them, outputs.py writes them.

    soundsmith generate "a dog barking in the rain" -d 5 -o dog.wav
    soundsmith generate --from dog.wav --seed 7 -o dog-7.wav       # make a file's sound again, one field changed
    soundsmith transfer drums.wav "a jazz drum kit" --strength 0.6
    soundsmith vary loop.wav -n 4                                   # four new clips like loop.wav, best first
    soundsmith batch jobs.jsonl --out sounds/ --workers 2           # resumable; --ray for a Ray cluster
    soundsmith models

Everything a user typed is checked before a model loads. User errors print one line (`soundsmith: error: …`) and
exit with status 2; written paths go to stdout, progress and notes to stderr.
"""

import argparse
import os
import secrets
import sys
import time
from pathlib import Path

from .errors import InvalidArgument, SoundsmithError
from .request import AUDIO_TASKS, CLI_LABELS, QUALITIES, Request

SEED_RANGE = 2 ** 31  # fresh seeds are drawn below this
NORMALISED_EDITS = ("transfer", "vary")  # edits whose output is a new sound; the others keep their input's level


def _note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---- flags ------------------------------------------------------------------------------------------------------

def _add_model_args(p: argparse.ArgumentParser) -> None:
    from .checkpoints import DEFAULT

    p.add_argument("-m", "--model", default=None,
                   help=f"model name, hub id, local diffusers folder or original .ckpt/.pth file (converted once) "
                        f"(default {DEFAULT} when cached or reachable, else the bundled `demo`; `soundsmith models`)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16", "int8"],
                   help="default float32; int8 (cpu): the UNet's transformer layers in int8")


def _add_generation_args(p: argparse.ArgumentParser) -> None:
    _add_model_args(p)
    p.add_argument("--lora", default=None, metavar="ADAPTER", help="LoRA adapter folder (soundsmith finetune --lora)")
    p.add_argument("--steps", type=int, default=None, help="sampler steps (default: the model family's)")
    p.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale (default: family's)")
    p.add_argument("--negative", default=None, help="negative prompt: what the sound should not be")
    p.add_argument("-n", "--candidates", type=int, default=None, help="waveforms per prompt (default 1)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: a fresh one, stored in the file)")
    p.add_argument("--sampler", default=None, help="sampler name (default: the checkpoint's scheduler)")
    p.add_argument("-q", "--quality", default=None, choices=QUALITIES,
                   help="sampler and steps chosen for speed or quality (presets.py); --sampler/--steps override")
    p.add_argument("--eta", type=float, default=None, help="DDIM eta (default 0: deterministic)")
    p.add_argument("--transcription", default=None, help="words to speak (AudioLDM 2 speech checkpoints)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="AudioLDM 2 GPT-2 states (speech: 512)")
    p.add_argument("--ranker", default=None,
                   help="CLAP with an audio tower to rank -n candidates (a MusicLDM / AudioLDM 2 / CLAP folder); "
                        "MusicLDM and AudioLDM 2 rank with their own")
    p.add_argument("--no-rank", action="store_true", default=None, help="keep candidates in generation order")
    p.add_argument("--offload", action="store_true",
                   help="keep the networks in CPU memory and move each to the GPU only for its stage (less GPU memory)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the networks (the first sound takes minutes to compile; worth it for batches)")
    p.add_argument("--backend", default="torch", choices=["torch", "openvino", "fastest"],
                   help="what runs the UNet on the cpu: torch (default), openvino, or fastest (measured once per "
                        "machine and shape); openvino needs pip install 'soundsmith[openvino]'")


def _add_output_args(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("-o", "--output", default=None, help=help)
    p.add_argument("--force", action="store_true", help="overwrite existing output files")


def _add_loudness_arg(p: argparse.ArgumentParser, normalised: bool) -> None:
    """--loudness LUFS|off. Made sounds (generate, transfer, vary, batch) are normalised by default; edits that keep part
    of their input (reconstruct, inpaint, upscale, extend) keep its level unless asked."""
    from .loudness import CEILING_DBTP, TARGET_LUFS

    default = f"{TARGET_LUFS:g}" if normalised else "off: the input's level"
    p.add_argument("--loudness", default=None, metavar="LUFS|off",
                   help=f"integrated loudness of the output (ITU-R BS.1770), true peak at most {CEILING_DBTP:g} dBTP; "
                        f"off keeps the model's raw level (default {default})")


_FLAGS = {"duration": "duration", "steps": "steps", "guidance": "guidance", "negative": "negative_prompt",
          "candidates": "candidates", "seed": "seed", "sampler": "sampler", "quality": "quality", "eta": "eta",
          "transcription": "transcription", "max_new_tokens": "max_new_tokens", "ranker": "ranker",
          "strength": "strength", "cutoff": "cutoff", "seconds": "seconds", "clap": "clap"}


def flag_fields(args) -> dict:
    """The request fields the user set with flags (a flag left out sets nothing)."""
    fields = {field: getattr(args, flag) for flag, field in _FLAGS.items() if getattr(args, flag, None) is not None}
    if getattr(args, "no_rank", None):
        fields["rank"] = False
    if getattr(args, "model", None) is not None:
        fields["model"] = args.model
    if getattr(args, "loudness", None) is not None:
        from .loudness import parse_target

        fields["loudness"] = parse_target(args.loudness)  # None for off
    return fields


def _normalised(fields: dict) -> dict:
    """fields with the CLI's default loudness target unless --loudness (or a stored request) says otherwise."""
    from .loudness import TARGET_LUFS

    return {"loudness": TARGET_LUFS, **fields}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="soundsmith", description="Text-to-audio with the AudioLDM family.")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="text → audio file")
    gen.add_argument("prompt", nargs="?", help="description of the sound")
    gen.add_argument("--prompts", default=None, metavar="FILE",
                     help="prompt list: one per line (`prompt|name`), or JSON Lines of requests (prompt, "
                          "negative_prompt, seed, duration, name, transcription, steps, …)")
    gen.add_argument("--from", dest="source", default=None, metavar="FILE",
                     help="make the sound of a file soundsmith wrote again (its stored request); flags override")
    _add_generation_args(gen)
    gen.add_argument("-d", "--duration", type=float, default=None, help="seconds of audio (default: the model's)")
    _add_output_args(gen, "output .wav (16-bit) or .flac (default: named from the prompt); with --prompts, a folder "
                          "(default ./output)")
    gen.add_argument("--format", default="wav", choices=["wav", "flac"], help="file type for --prompts outputs")
    _add_loudness_arg(gen, normalised=True)
    gen.set_defaults(func=cmd_generate)

    _add_edit_commands(sub)
    _add_batch_command(sub)

    models = sub.add_parser("models", help="list the known model names and whether each is here")
    models.set_defaults(func=cmd_models)
    download = sub.add_parser("download", help="download a model into the huggingface cache")
    download.add_argument("model", help="model name or hub id")
    download.set_defaults(func=cmd_download)

    from . import convert, data, serve
    from .train import cli as train_cli

    for owner in (data, train_cli, convert, serve):  # each stage owns its subcommands
        owner.add_commands(sub)
    return parser


def _add_edit_commands(sub) -> None:
    def command(name, help, generation=True, duration=argparse.SUPPRESS):
        p = sub.add_parser(name, help=help)
        p.add_argument("input", help="audio file (wav, flac, ogg, mp3, …)")
        if generation:
            _add_generation_args(p)
            p.add_argument("-d", "--duration", type=float, default=None, help=duration)
        else:
            _add_model_args(p)
        _add_output_args(p, "output .wav or .flac (default: INPUT_<command>.wav)")
        _add_loudness_arg(p, normalised=name in NORMALISED_EDITS)
        p.set_defaults(func=cmd_edit)
        return p

    command("reconstruct", "audio → VAE → vocoder: hear the codec's ceiling", generation=False)
    p = command("transfer", "style transfer: re-render audio towards a prompt")
    p.add_argument("prompt", help="what the audio should become")
    p.add_argument("--strength", type=float, default=None, help="0 keeps the input, 1 ignores it (default 0.5)")
    p = command("inpaint", "regenerate time spans of audio")
    p.add_argument("prompt", help="what the regenerated spans should sound like")
    p.add_argument("--mask", action="append", required=True, metavar="START-END",
                   help="seconds to regenerate, e.g. 2.0-3.5 (repeatable)")
    p = command("upscale", "super-resolution: regenerate the missing high band")
    p.add_argument("prompt", nargs="?", default=None, help="description of the audio (optional)")
    p.add_argument("--cutoff", type=float, default=None, help="Hz above which to regenerate (default: detected)")
    p = command("extend", "continue a clip")
    p.add_argument("prompt", help="what the continuation should sound like")
    p.add_argument("--seconds", type=float, required=True, help="seconds to add")
    p = command("vary", "new audio like the input: conditioned on its CLAP audio embedding instead of text (the "
                        "original AudioLDM's --mode generation -f FILE; AudioLDM and MusicLDM)",
                duration="seconds of audio to make (default: the model's)")
    p.add_argument("--clap", default=None, metavar="FOLDER",
                   help="CLAP with an audio tower in the checkpoint's space (AudioLDM's checkpoints keep only the text "
                        "tower); MusicLDM uses its own")


def _add_batch_command(sub) -> None:
    p = sub.add_parser("batch", help="many sounds from a jobs file: resumable, on local workers or a Ray cluster",
                       description="Make one sound per line of JOBS (JSON Lines of requests, or `prompt|name` text) "
                                   "into DIR, with DIR/manifest.jsonl recording each as it lands. Rerun the same "
                                   "command to continue a stopped batch. Flags give every line's defaults.")
    p.add_argument("jobs", metavar="JOBS", nargs="?",
                   help="jobs file: JSON Lines (.jsonl) of requests, or `prompt|name` text")
    p.add_argument("-o", "--out", required=True, metavar="DIR", help="output folder (created when missing)")
    _add_generation_args(p)
    p.add_argument("-d", "--duration", type=float, default=None, help="seconds of audio (default: the model's)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes or Ray actors (default: one per GPU; on CPU one, or one per Ray node)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads per worker (default: this machine's threads divided between the workers)")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS|auto",
                   help="run on Ray: alone starts a local cluster, `auto` joins this machine's cluster, an address "
                        "connects to one (pip install 'soundsmith[ray]')")
    p.add_argument("--format", default="wav", choices=["wav", "flac"], help="output file type (default wav)")
    _add_loudness_arg(p, normalised=True)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    for action in p._actions:
        if action.dest == "seed":
            action.help = ("base seed: a line without its own seed gets one derived from this and its line number "
                           "(default 0; docs/batch.md)")
    p.set_defaults(func=cmd_batch)


# ---- commands ---------------------------------------------------------------------------------------------------

def cmd_generate(args) -> int:
    from .outputs import Planner, check_metadata_fits

    if args.source is None and (args.prompt is None) == (args.prompts is None):
        raise InvalidArgument("give a PROMPT or --prompts FILE (one of them)")
    if args.source is not None and args.prompts is not None:
        raise InvalidArgument("--from FILE makes one file's sound again: it does not combine with --prompts")
    fields = flag_fields(args)
    dtype = args.dtype
    if args.source is not None:
        stored, dtype = _from_file(args.source, dtype)
        fields = {**{k: v for k, v in stored.to_dict().items() if k != "version"}, **fields}
        if args.prompt is not None:
            fields["prompt"] = args.prompt
    elif args.prompt is not None:
        fields["prompt"] = args.prompt
    if args.source is None:  # --from: the file's own loudness, as it was made
        fields = _normalised(fields)
    planner = Planner(args.force)
    if args.prompts is None:
        request = _with_seed(Request.from_dict(fields, labels=CLI_LABELS))
        if request.task in AUDIO_TASKS:
            _check_input(request)
        paths = (planner.explicit(args.output, request.candidates) if args.output is not None
                 else planner.from_prompt(_stem(request), request.candidates))
        jobs = [(request, paths)]
    else:
        from .jobs import read_prompt_file

        Request.from_dict({**fields, "prompt": "x"}, labels=CLI_LABELS)  # the flags alone, before any line
        folder = Path(args.output or "output").expanduser()
        jobs = []
        for request in read_prompt_file(args.prompts, fields):  # a line names fields as the file does
            request = _with_seed(request)
            if request.task in AUDIO_TASKS:
                _check_input(request)
            if request.name is not None:
                paths = planner.explicit(folder / f"{request.name}.{args.format}", request.candidates)
            else:
                paths = planner.from_prompt(_stem(request), request.candidates, folder, f".{args.format}")
            jobs.append((request, paths))
    for request, paths in jobs:
        check_metadata_fits(paths[0], request)
    return _run(args, jobs, dtype)


def cmd_edit(args) -> int:
    from .checks import parse_span
    from .outputs import Planner, check_metadata_fits

    fields = {**flag_fields(args), "task": args.command, "input": os.path.abspath(args.input)}
    if args.command in NORMALISED_EDITS:
        fields = _normalised(fields)
    if getattr(args, "prompt", None) is not None:
        fields["prompt"] = args.prompt
    if getattr(args, "mask", None):
        fields["masks"] = [parse_span(m) for m in args.mask]
    if fields.get("clap") is not None:  # found before the model loads; a folder is stored absolute
        from .checkpoints import resolve

        try:
            folder = resolve(fields["clap"])
        except SoundsmithError as exc:  # the flag named: the message alone would read as about -m
            raise type(exc)(f"--clap {fields['clap']}: {exc}") from None
        if os.path.isdir(fields["clap"]):
            fields["clap"] = str(folder.resolve())
    request = Request.from_dict(fields, labels=CLI_LABELS)
    request = _with_seed(request) if request.task != "reconstruct" else request
    _check_input(request)
    planner = Planner(args.force)
    paths = (planner.explicit(args.output, request.candidates) if args.output is not None
             else planner.from_prompt(f"{Path(args.input).stem} {args.command}", request.candidates))
    check_metadata_fits(paths[0], request)
    return _run(args, [(request, paths)], args.dtype)


def _stem(request: Request) -> str:
    return request.prompts[0] if request.prompts else f"{Path(request.input or 'sound').stem} {request.task}"


def _with_seed(request: Request) -> Request:
    """Every generation gets its seed before it runs, so the file says how to make it again."""
    return request if request.seed is not None else request.replace(seed=secrets.randbelow(SEED_RANGE))


def _check_input(request: Request) -> None:
    """An audio task's input is readable and its masks lie inside it, before any model loads."""
    from .canvas import input_seconds
    from .checks import check_spans

    seconds = input_seconds(request.input)
    if request.masks is not None:
        check_spans(request.masks, seconds)


def _from_file(path: str, dtype: str | None) -> tuple[Request, str]:
    from .audio import read_metadata

    meta = read_metadata(path)
    request = Request.from_metadata(meta, source=path)
    return request, dtype or meta.get("dtype") or "float32"


def _run(args, jobs: list, dtype: str | None) -> int:
    """Load the model once, run every (request, paths) job, write each result."""
    from . import engine
    from .outputs import save

    models = {request.model for request, _ in jobs}
    if len(models) > 1:
        raise InvalidArgument(f"the prompt file names {len(models)} models ({', '.join(sorted(map(str, models)))}): "
                              f"one run uses one model (soundsmith batch runs several)")
    dtype = dtype or "float32"
    pipe = _load(jobs[0][0].model, args.device, dtype, getattr(args, "lora", None), getattr(args, "compile", False),
                 getattr(args, "offload", False), getattr(args, "backend", "torch"))
    for number, (request, paths) in enumerate(jobs, 1):
        if len(jobs) > 1:
            _note(f"soundsmith: [{number}/{len(jobs)}] {request.prompts[0] if request.prompts else request.input}")
        started = time.perf_counter()
        out = engine.run(pipe, request, progress=True)
        if getattr(args, "compile", False) and number == 1:
            _note(f"soundsmith: first sound, compilation included: {time.perf_counter() - started:.1f} s")
        for path in save(paths, out, dtype=dtype, overwrite=args.force, progress=True):
            print(path, flush=True)
    return 0


def _load(model: str | None, device: str, dtype: str, lora: str | None = None, compile: bool = False,
          offload: bool = False, backend: str = "torch"):
    from . import load, openvino_unet
    from .pipelines import is_int8, resolve_device

    if model is None:
        from .checkpoints import default_model

        model, why = default_model()
        _note(f"soundsmith: no -m given: using {model} ({why})")
    openvino_unet.check_backend(backend, resolve_device(device), compile, is_int8(dtype))
    pipe = load(model, device=device, dtype=dtype, compile=compile, offload=offload, progress=True)
    if lora is not None:
        pipe.load_lora(lora)
        _note(f"soundsmith: with LoRA {lora}")
    openvino_unet.use_backend(pipe, backend)  # after the LoRA: the UNet is converted with its adapter merged
    return pipe


def cmd_batch(args) -> int:
    """soundsmith.batch.run with the flags as every line's defaults (--seed: the base seed). Exit status: 0 every
    line done, 1 some failed (DIR/failures.jsonl), 2 a user error before any work (bad lines listed first), 130
    interrupted (SIGINT or SIGTERM; rerun to continue)."""
    import signal

    from . import stopping

    # a stop request ends like Ctrl-C: workers stopped, a note
    before = stopping.install({signal.SIGTERM: stopping.unwinding(lambda signum: KeyboardInterrupt())})
    try:
        return _batch(args)
    finally:
        stopping.restore(before)


def _batch(args) -> int:
    from .batch import BadLines, run

    if args.jobs is None:  # `batch --ray jobs.jsonl …`: the optional value of --ray took the jobs file
        if args.ray not in (None, "local", "auto") and os.path.isfile(args.ray):
            args.jobs, args.ray = args.ray, "local"
        else:
            raise InvalidArgument("give the JOBS file (soundsmith batch JOBS --out DIR)")
    fields = _normalised(flag_fields(args))
    base_seed = fields.pop("seed", 0)
    Request.from_dict({**fields, "prompt": "x", "seed": base_seed}, labels=CLI_LABELS)  # the flags alone, first
    try:
        summary = run(args.jobs, args.out, defaults=fields, base_seed=base_seed, fmt=args.format,
                      workers=args.workers, threads=args.threads, device=args.device, dtype=args.dtype or "float32",
                      lora=args.lora, compile=args.compile, offload=args.offload, backend=args.backend, ray=args.ray,
                      progress=not args.quiet)
    except BadLines as exc:
        for problem in exc.problems:
            _note(f"soundsmith: {args.jobs} {problem}")
        raise InvalidArgument(f"{args.jobs}: {len(exc.problems)} bad line{'s' if len(exc.problems) > 1 else ''}, "
                              f"nothing was run") from None
    _note(f"soundsmith batch: {summary}")
    print(summary.folder / "manifest.jsonl", flush=True)
    return 1 if summary.failed else 0


def cmd_models(args) -> int:
    from .checkpoints import DEMO, MODELS, is_cached

    rows = [("name", "hub id", "family", "here", "what")]
    rows.append((DEMO, "(bundled with soundsmith)", "AudioLDM", "bundled", "demo model trained by soundsmith, 22 kHz"))
    rows += [(name, spec.repo, spec.family, "cached" if is_cached(name) else "no", spec.about)
             for name, spec in MODELS.items()]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[4])
    print("\nhere: cached = in the huggingface cache (HF_HOME); no = `soundsmith download NAME` fetches it; "
          "bundled = shipped in the package", file=sys.stderr)
    return 0


def cmd_download(args) -> int:
    from .checkpoints import resolve

    print(resolve(args.model))
    return 0


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"soundsmith: warning: {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    import signal
    import warnings

    from . import stopping
    from .errors import SoundsmithWarning

    from .quiet import silence_third_party

    with warnings.catch_warnings():
        silence_third_party()  # the process is ours: no third-party log lines or warnings reach the user
        warnings.filterwarnings("ignore")  # third-party warnings are not the user's business; ours are one line each
        warnings.filterwarnings("default", category=SoundsmithWarning)
        warnings.showwarning = _show_warning
        # SIGTERM unwinds like Ctrl-C (temporary files are removed on the way out); a SIGINT the caller chose to
        # ignore (nohup, a background job) stays ignored
        handlers = {signal.SIGTERM: stopping.unwinding(lambda signum: SystemExit(128 + signum))}
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            handlers[signal.SIGINT] = stopping.unwinding(lambda signum: KeyboardInterrupt())
        previous = stopping.install(handlers)
        try:
            args = build_parser().parse_args(argv)
            return args.func(args)
        except SoundsmithError as exc:
            print(f"soundsmith: error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("soundsmith: interrupted", file=sys.stderr)
            return 130
        finally:
            stopping.restore(previous)


if __name__ == "__main__":
    sys.exit(main())
