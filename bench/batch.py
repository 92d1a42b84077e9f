"""Batch throughput: clips per minute of `soundsmith batch` with 1 and 2 local workers and with Ray, against the
one-process loop of `soundsmith generate --prompts` (the reference: what a batch replaces), on the same prompts.

    .venv/bin/python bench/batch.py [-m demo] [--clips 8] [--steps 10] [--rounds 1]
                                    [--configs sequential local-1 local-1x1 local-2 ray-2] [--raw FILE]
                                    [--no-write]

Every configuration runs as its own command, the way a user runs it, in turns (sequential, local-1 (all threads),
local-1x1 (one thread), local-2, ray-2, then again for each round) so the noise of a shared machine falls on all of them. Two rates per run:
- overall: clips / wall time of the whole command (start-up, model loading and, for Ray, starting a cluster);
- steady: clips after the first / time from the first file to the last (file modification times), the rate a long
  batch settles at.
Ratios are configuration / sequential (above 1: faster than the one-process loop). The load average is printed
before and after each run. Results are printed and prepended to bench/RESULTS.md.
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
from importlib import metadata
from pathlib import Path

from soundsmith.machine import cpu_model

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "RESULTS.md"
PROMPTS = ["a dog barking in the rain", "a piano playing a slow melody", "church bells ringing", "a car engine idling",
           "waves crashing on a beach", "a drum kit playing a rock beat", "a man speaking on the phone",
           "birds singing in a forest", "a train passing by", "a crowd cheering", "rain on a tin roof",
           "an old clock ticking"]
CONFIGS = {  # name → extra arguments of `soundsmith batch` (sequential: `soundsmith generate --prompts`)
    "sequential": None,
    "local-1": ["--workers", "1"],
    "local-1x1": ["--workers", "1", "--threads", "1"],
    "local-2": ["--workers", "2"],
    "ray-2": ["--workers", "2", "--ray"],
}


def command(config: str, jobs: Path, out: Path, model: str, steps: int) -> list[str]:
    common = ["-m", model, "--steps", str(steps)]
    if CONFIGS[config] is None:
        return [sys.executable, "-m", "soundsmith.cli", "generate", "--prompts", str(jobs), "-o", str(out),
                "--seed", "0", *common]
    return [sys.executable, "-m", "soundsmith.cli", "batch", str(jobs), "--out", str(out), "--quiet", *common,
            *CONFIGS[config]]


def measure(config: str, jobs: Path, work: Path, model: str, steps: int, clips: int) -> dict:
    out = work / f"{config}-{time.monotonic_ns()}"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "TOKENIZERS_PARALLELISM": "false"}
    load_before = os.getloadavg()
    started = time.time()
    done = subprocess.run(command(config, jobs, out, model, steps), env=env, capture_output=True, text=True)
    wall = time.time() - started
    if done.returncode != 0:
        raise SystemExit(f"{config} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    times = sorted(p.stat().st_mtime for p in out.iterdir() if p.suffix == ".wav")
    if len(times) != clips:
        raise SystemExit(f"{config} wrote {len(times)} files, expected {clips}")
    steady = 60.0 * (clips - 1) / (times[-1] - times[0]) if clips > 1 and times[-1] > times[0] else float("nan")
    return {"config": config, "wall": wall, "overall": 60.0 * clips / wall, "steady": steady,
            "first_file": times[0] - started, "load_before": load_before, "load_after": os.getloadavg()}


def report(runs: list[dict], args, threads: int, started: str, cpu: str) -> str:
    by = {c: [r for r in runs if r["config"] == c] for c in args.configs}
    median = {c: {k: statistics.median(r[k] for r in rs) for k in ("wall", "overall", "steady", "first_file")}
              for c, rs in by.items()}
    base = median.get("sequential")
    argv = " ".join(shlex.quote(a) for a in sys.argv[1:])
    lines = [f"## {started} — batch throughput, {args.model}, {args.clips} clips of {args.steps} steps", "",
             f"Command: `.venv/bin/python bench/batch.py {argv}`".rstrip(), "",
             f"Machine: {cpu}, {os.cpu_count()} CPUs, torch sees {threads} threads; soundsmith "
             f"{metadata.version('soundsmith')}, ray {_version('ray')}. Same {args.clips} prompts in every "
             f"configuration; {args.rounds} round(s) in turns, medians shown. Local workers get the threads divided "
             f"between them (2 workers: 1 thread each); `sequential` is one process with all threads "
             f"(`soundsmith generate --prompts`). Ratios are configuration / sequential: above 1 is faster than "
             f"`generate --prompts`.", "",
             "| configuration | wall s | first file after s | clips/min overall | clips/min steady | overall / "
             "sequential | steady / sequential | load average before → after |",
             "|---|---|---|---|---|---|---|---|"]
    for config, values in median.items():
        loads = "; ".join(f"{r['load_before'][0]:.1f} → {r['load_after'][0]:.1f}" for r in by[config])
        ratio = (lambda key: f"**{values[key] / base[key]:.2f}×**" if base and base[key] == base[key] else "—")
        lines.append(f"| {config} | {values['wall']:.1f} | {values['first_file']:.1f} | {values['overall']:.2f} | "
                     f"{values['steady']:.2f} | {ratio('overall')} | {ratio('steady')} | {loads} |")
    return "\n".join(lines) + "\n"


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-m", "--model", default="demo")
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--raw", default=None, help="write every run as JSON here")
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    args = parser.parse_args()
    import torch

    started = time.strftime("%Y-%m-%d %H:%M")
    with tempfile.TemporaryDirectory(prefix="soundsmith-bench-batch-") as folder:
        work = Path(folder)
        jobs = work / "jobs.txt"
        jobs.write_text("\n".join(PROMPTS[i % len(PROMPTS)] + (f" {i // len(PROMPTS) + 1}" if i >= len(PROMPTS)
                                                                   else "") for i in range(args.clips)) + "\n")
        runs = []
        for round_ in range(args.rounds):
            for config in args.configs:
                result = measure(config, jobs, work, args.model, args.steps, args.clips)
                runs.append(result)
                print(f"round {round_ + 1} {config}: {result['wall']:.1f} s, {result['overall']:.2f} clips/min "
                      f"overall, {result['steady']:.2f} steady, load {result['load_before'][0]:.1f} → "
                      f"{result['load_after'][0]:.1f}", file=sys.stderr, flush=True)
    text = report(runs, args, torch.get_num_threads(), started, cpu_model())
    print(text)
    if args.raw:
        Path(args.raw).write_text(json.dumps(runs, indent=1))
    if not args.no_write:
        old = RESULTS.read_text()
        cut = old.index("\n## ") + 1 if "\n## " in old else len(old)
        RESULTS.write_text(old[:cut] + text + "\n" + old[cut:])


if __name__ == "__main__":
    main()
