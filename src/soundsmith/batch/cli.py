"""`soundsmith batch JOBS --out DIR`: the command line of a batch (run.py does the work).

Exit status: 0 every line is done, 1 some lines failed (DIR/failures.jsonl; rerun to retry them), 2 a user error
before any work (bad lines are listed one per line first), 130 interrupted (rerun to continue).
"""

import os
import signal
import sys


def add_commands(sub) -> None:
    from ..cli import add_generation_args

    p = sub.add_parser("batch", help="many sounds from a jobs file: resumable, on local workers or a Ray cluster",
                       description="Make one sound per line of JOBS (JSON Lines of requests, or `prompt|name` text) "
                                   "into DIR, with DIR/manifest.jsonl recording each as it lands. Rerun the same "
                                   "command to continue a stopped batch. Flags give every line's defaults.")
    p.add_argument("jobs", metavar="JOBS", nargs="?",
                   help="jobs file: JSON Lines (.jsonl) of requests, or `prompt|name` text")
    p.add_argument("-o", "--out", required=True, metavar="DIR", help="output folder (created when missing)")
    add_generation_args(p)
    p.add_argument("-d", "--duration", type=float, default=None, help="seconds of audio (default: the model's)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes or Ray actors (default: one per GPU; on CPU one, or one per Ray node)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads per worker (default: this machine's threads divided between the workers)")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS|auto",
                   help="run on Ray: alone starts a local cluster, `auto` joins this machine's cluster, an address "
                        "connects to one (pip install 'soundsmith[ray]')")
    p.add_argument("--format", default="wav", choices=["wav", "flac"], help="output file type (default wav)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    for action in p._actions:
        if action.dest == "seed":
            action.help = ("base seed: a line without its own seed gets one derived from this and its line number "
                           "(default 0; docs/batch.md)")
    p.set_defaults(func=cmd_batch)


def cmd_batch(args) -> int:
    import threading

    if threading.current_thread() is not threading.main_thread():
        return _batch(args)
    before = signal.signal(signal.SIGTERM, _interrupt)  # a stop request ends like Ctrl-C: workers stopped, a note
    try:
        return _batch(args)
    finally:
        signal.signal(signal.SIGTERM, before)


def _batch(args) -> int:
    from ..cli import flag_fields
    from ..errors import InvalidArgument
    from ..request import CLI_LABELS, Request
    from .plan import BadLines
    from .run import run

    if args.jobs is None:  # `batch --ray jobs.jsonl …`: the optional value of --ray took the jobs file
        if args.ray not in (None, "local", "auto") and os.path.isfile(args.ray):
            args.jobs, args.ray = args.ray, "local"
        else:
            raise InvalidArgument("give the JOBS file (soundsmith batch JOBS --out DIR)")
    fields = flag_fields(args)
    base_seed = fields.pop("seed", 0)
    Request.from_dict({**fields, "prompt": "x", "seed": base_seed}, labels=CLI_LABELS)  # the flags alone, first
    try:
        summary = run(args.jobs, args.out, defaults=fields, base_seed=base_seed, fmt=args.format,
                      workers=args.workers, threads=args.threads, device=args.device, dtype=args.dtype or "float32",
                      lora=args.lora, compile=args.compile, offload=args.offload, ray=args.ray,
                      progress=not args.quiet)
    except BadLines as exc:
        for problem in exc.problems:
            print(f"soundsmith: {args.jobs} {problem}", file=sys.stderr)
        raise InvalidArgument(f"{args.jobs}: {len(exc.problems)} bad line{'s' if len(exc.problems) > 1 else ''}, "
                              f"nothing was run") from None
    print(f"soundsmith batch: {summary}", file=sys.stderr, flush=True)
    print(summary.folder / "manifest.jsonl", flush=True)
    return 1 if summary.failed else 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt


__all__ = ["add_commands", "cmd_batch"]
