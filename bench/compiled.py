"""torch.compile of soundsmith's UNet with and without inductor's freezing, against eager, and the on-disk cache.

    .venv/bin/python bench/compiled.py [--model audioldm-s-full-v2] [--seconds 10.24] [--dtype float32] [--rounds 5]

Four fresh processes, two per empty cache directory (TORCHINDUCTOR_CACHE_DIR):
1. compiles the UNet (runtime.compile_pipeline: freezing on the CPU) and times its first call, then eager and
   compiled UNet steps (guidance batch of 2) alternately;
2. the same in a new process on the cache the first filled: its first call is what a restarted worker pays;
3, 4. the same two without freezing.
Medians of alternating rounds; the load average is reported. The section is prepended to bench/RESULTS.md.
"""

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def child(args) -> dict:
    """One process: load, compile, first call, alternating rounds → JSON on stdout."""
    import torch

    import soundsmith
    from soundsmith import runtime
    from bench import CHECKPOINTS
    from worker import TIMESTEP, latent_shape

    torch.set_grad_enabled(False)
    folder = CHECKPOINTS / args.model
    pipe = soundsmith.load(folder, device="cpu", dtype=args.dtype)
    cond = pipe.conditioning(["A hammer hitting a wooden surface"], None, 1, True, embeds={}, labels={})[0]
    shape = latent_shape(folder, args.seconds)
    x = torch.randn(2, *shape[1:], generator=torch.Generator().manual_seed(0)).to(pipe.dtype)
    t = torch.tensor(TIMESTEP)
    eager = pipe.unet
    start = time.perf_counter()
    runtime.compile_pipeline(pipe, freezing=not args.no_freezing)
    compiled = pipe.unet
    y = compiled(x, t, **cond)
    first = time.perf_counter() - start
    reference = eager(x, t, **cond)
    error = ((y.float() - reference.float()).norm() / reference.float().norm()).item()
    times = {"eager": [], "compiled": []}
    for _ in range(args.rounds):
        for name, fn in (("eager", eager), ("compiled", compiled)):
            start = time.perf_counter()
            fn(x, t, **cond)
            times[name].append(time.perf_counter() - start)
    return {"first": first, "error": error, **{k: statistics.median(v) for k, v in times.items()},
            "load": os.getloadavg()}


def run(args, cache: Path, freezing: bool) -> dict:
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(cache), "PYTHONPATH": str(BENCH.parent / "src")}
    command = [sys.executable, __file__, "--child", "--model", args.model, "--seconds", str(args.seconds),
               "--dtype", args.dtype, "--rounds", str(args.rounds)] + ([] if freezing else ["--no-freezing"])
    out = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="audioldm-s-full-v2")
    parser.add_argument("--seconds", type=float, default=10.24)
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-freezing", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(BENCH))
    if args.child:
        print(json.dumps(child(args)))
        return
    from bench import _version, prepend

    command = ".venv/bin/python bench/compiled.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    started, load = time.strftime("%Y-%m-%d %H:%M"), " ".join(f"{x:.1f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="soundsmith-inductor-") as tmp:
        runs = {"freezing, empty cache": run(args, Path(tmp) / "freeze", True),
                "freezing, cache filled by the run above": run(args, Path(tmp) / "freeze", True),
                "no freezing, empty cache": run(args, Path(tmp) / "plain", False),
                "no freezing, cache filled by the run above": run(args, Path(tmp) / "plain", False)}
    rows = [f"| {name} | {r['first']:.1f} | {r['eager']:.3f} | {r['compiled']:.3f} | **{r['eager'] / r['compiled']:.2f}×** | "
            f"{r['error']:.1e} | {' '.join(f'{x:.1f}' for x in r['load'])} |" for name, r in runs.items()]
    section = "\n".join([
        f"## {started} — torch.compile of the UNet, {args.model}, {args.seconds:g} s, {args.dtype}", "",
        f"Command: `{command}`", "",
        f"torch {_version('torch')}; load average at start {load}. One UNet step with guidance (batch 2); each row a "
        f"fresh process, eager and compiled alternating, median of {args.rounds}.", "",
        "| process | first compiled call s (compile or cache load) | eager step s | compiled step s | eager / compiled | "
        "compiled vs eager rel. error | load at end |", "|---|---|---|---|---|---|---|", *rows]) + "\n"
    print(section)
    if not args.no_write:
        prepend(section)


if __name__ == "__main__":
    main()
