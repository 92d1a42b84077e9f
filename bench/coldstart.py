"""Cold start: what a fresh process pays before its first sound, soundsmith against diffusers in the same run.

    .venv/bin/python bench/coldstart.py [--models demo audioldm-s-full-v2] [--rounds 3] [--calls 4] [--no-write]

For each model, each round runs, alternating which implementation goes first:
- a worker process per implementation (this file, --worker): import torch, import the library, load the pipeline,
  then `--calls` generations of the same prompt and shape (the first, then steady state) and one WAV write after the
  first. It reports every mark from its own start, and the parent's clock gives the wall from spawn to the first
  file written: the fresh-process time of import + load + generate + write.
- for soundsmith, the command itself: `soundsmith generate PROMPT -m FOLDER --steps N -o OUT.wav`, wall from spawn to
  exit as a user times it.
Ratios, per implementation: first call / steady-state call (median of the later calls), and fresh-process wall /
warm in-process time (steady call + write). The same prompt, steps, guidance 2.5 and default length (the model's
training window: 2.97 s for the demo, 10.24 s → 5.12 s default for AudioLDM-S as both pipelines compute it) for
both; seeds differ per call (the cost does not depend on them). A call whose CPU utilisation is below 0.8 × threads
was starved by other processes and is marked. Results are printed and prepended to bench/RESULTS.md.

The full-size folder is scripts/build_random_checkpoints.py's (~/.cache/soundsmith/random-checkpoints); the demo is
the bundled one. soundsmith's linear-path verdict is remembered per machine (machine.py): the table's fresh processes
read it; a machine's very first process also measures it (about +0.15 s).
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "RESULTS.md"
CHECKPOINTS = Path("~/.cache/soundsmith/random-checkpoints").expanduser()
PROMPT = "a dog barking in the rain"
GUIDANCE = 2.5
STEPS = {"demo": 25, "audioldm-s-full-v2": 10}  # what `soundsmith generate` uses for each by default
IMPLS = ["diffusers", "soundsmith"]  # --before adds "before": soundsmith from another source tree
SOURCES: dict[str, Path] = {}  # implementation → the src folder its processes import soundsmith from
STARVED = 0.8
NOTE = {"before": " (before)"}
LABELS = {"before": "soundsmith before"}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -------------------------------------------------------------------------------------------------------- worker


def worker(impl: str, folder: Path, steps: int, calls: int, out: Path) -> None:
    """One fresh process: marks (seconds since this process's first line) and each call's wall / CPU seconds."""
    start = time.perf_counter()
    marks = {}

    def mark(name):
        marks[name] = time.perf_counter() - start

    import numpy as np
    import torch

    mark("import torch")
    if impl == "soundsmith":
        import soundsmith

        mark("import library")
        pipe = soundsmith.load(folder)
        mark("load")

        def generate(seed):
            return pipe(PROMPT, num_inference_steps=steps, guidance_scale=GUIDANCE, seed=seed, progress=False)

        def write(result):
            soundsmith.save(out, result.audios[0], result.sample_rate, overwrite=True)  # every round the same scratch file
    else:
        import diffusers  # noqa: F401  (the import a diffusers user pays)
        import soundfile

        mark("import library")
        sys.path.insert(0, str(REPO / "tests"))
        from checkpoints import load_reference  # diffusers' pipeline, patched where it breaks on transformers 5

        pipe = load_reference(folder)
        mark("load")

        def generate(seed):
            return pipe(PROMPT, num_inference_steps=steps, guidance_scale=GUIDANCE,
                        generator=torch.Generator().manual_seed(seed), output_type="np")

        def write(result):
            rate = pipe.vocoder.config.sampling_rate
            soundfile.write(out, np.clip(result.audios[0], -1, 1), rate, subtype="PCM_16")

    timed = []
    for i in range(calls):
        wall, cpu = time.perf_counter(), cpu_seconds()
        result = generate(i)
        timed.append({"wall": time.perf_counter() - wall, "cpu": cpu_seconds() - cpu})
        if i == 0:
            mark("first call")
            w = time.perf_counter()
            write(result)
            mark("write")
            write_s, write_cpu = time.perf_counter() - w, cpu_seconds() - cpu - timed[-1]["cpu"]
            print(json.dumps({"first_file_epoch": time.time(), "first_file_cpu": cpu_seconds()}), flush=True)
    print(json.dumps({"marks": marks, "calls": timed, "write_s": write_s, "write_cpu": write_cpu,
                      "threads": torch.get_num_threads()}), flush=True)


# -------------------------------------------------------------------------------------------------------- parent


def folder_for(model: str) -> Path:
    if model == "demo":
        sys.path.insert(0, str(REPO / "src"))
        from soundsmith.checkpoints import DEMO_FOLDER

        return DEMO_FOLDER
    folder = CHECKPOINTS / model
    if not (folder / "model_index.json").is_file():
        subprocess.run([sys.executable, str(REPO / "scripts" / "build_random_checkpoints.py"), model], check=True)
    return folder


THREADS = None  # --threads: None runs as a user does (torch takes every CPU)


def environment(src: Path | None = None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src or REPO / "src")}
    env.pop("OMP_NUM_THREADS", None)
    if THREADS is not None:  # a busy shared machine: two spinning OpenMP threads per process starve each other
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(THREADS)
    return env


def run_worker(impl: str, folder: Path, steps: int, calls: int, tmp: Path) -> dict:
    out = tmp / f"{impl}.wav"
    spawned = time.time()
    kind = "diffusers" if impl == "diffusers" else "soundsmith"
    proc = subprocess.run([sys.executable, __file__, "--worker", kind, str(folder), str(steps), str(calls), str(out)],
                          capture_output=True, text=True, env=environment(SOURCES.get(impl)), timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"{impl} worker failed:\n{proc.stderr[-3000:]}")
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    record = {k: v for line in lines for k, v in line.items()}
    record["fresh_s"] = record.pop("first_file_epoch") - spawned
    return record


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_cli(impl: str, folder: Path, steps: int, tmp: Path) -> tuple[float, float]:
    """(wall, CPU seconds) of one `soundsmith generate` process, spawn to exit."""
    cpu = children_cpu()
    spawned = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "soundsmith.cli", "generate", PROMPT, "-m", str(folder), "--steps",
                           str(steps), "--seed", "0", "-o", str(tmp / "cli.wav"), "--force"],
                          capture_output=True, text=True, env=environment(SOURCES.get(impl)), timeout=3600)
    wall = time.perf_counter() - spawned
    if proc.returncode != 0:
        raise RuntimeError(f"soundsmith generate failed:\n{proc.stderr[-3000:]}")
    return wall, children_cpu() - cpu


def summarise(records: list[dict], clock: str = "wall") -> dict:
    """Medians over rounds; clock "wall" (seconds) or "cpu" (CPU seconds of the process: with one thread, the work
    done whatever else the machine runs)."""
    first = [r["calls"][0][clock] for r in records]
    steady = [statistics.median(c[clock] for c in r["calls"][1:]) for r in records]
    warm = [s + r["write_s" if clock == "wall" else "write_cpu"] for s, r in zip(steady, records)]
    fresh = [r["fresh_s" if clock == "wall" else "first_file_cpu"] for r in records]
    threads = records[0]["threads"]
    starved = sum(c["cpu"] / c["wall"] < STARVED * threads for r in records for c in r["calls"])
    stage = {name: statistics.median(_stage(r, name) for r in records)
             for name in ("import torch", "import library", "load", "first call", "write")}
    return {"first": statistics.median(first), "steady": statistics.median(steady), "warm": statistics.median(warm),
            "fresh": statistics.median(fresh), "first_ratio": statistics.median(f / s for f, s in zip(first, steady)),
            "fresh_ratio": statistics.median(f / w for f, w in zip(fresh, warm)), "stages": stage,
            "starved": starved, "calls": sum(len(r["calls"]) for r in records), "n": len(records)}


def _stage(record: dict, name: str) -> float:
    order = ["import torch", "import library", "load", "first call", "write"]
    marks = record["marks"]
    before = marks[order[order.index(name) - 1]] if order.index(name) else 0.0
    return marks[name] - before


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def report(args, results: dict, command: str, started: str, load_start: str, load_end: str) -> str:
    import platform

    cpu = platform.processor() or "?"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = ", ".join(f"{p} {_version(p)}" for p in ("torch", "diffusers", "transformers", "soundsmith"))
    out = [f"## {started} — cold start: fresh process and first call (bench/coldstart.py)", "",
           f"Command: `{command}`", "",
           f"Machine: {cpu}, {os.cpu_count()} CPUs, {args.threads or os.cpu_count()} torch threads per process; "
           f"{versions}; load average {load_start} at start, {load_end} at "
           f"the end. Prompt \"{PROMPT}\", guidance 2.5, the model's default length, {args.rounds} rounds alternating "
           f"which implementation runs first; medians over rounds."
           + (f" \"soundsmith before\": soundsmith imported from {SOURCES['before']}." if "before" in SOURCES else ""),
           "",
           "| model | implementation | fresh process to first file s (import torch + import library + load + "
           "first call + write) | first call s | steady call s | **first / steady** | warm: call + write s | "
           "**fresh / warm** | starved calls |",
           "|---|---|---|---|---|---|---|---|---|"]
    for model, per_impl in results.items():
        for impl in IMPLS:
            s = per_impl[impl]
            st = s["stages"]
            out.append(f"| {model} ({per_impl['steps']} steps) | {LABELS.get(impl, impl)} | {s['fresh']:.2f} "
                       f"({st['import torch']:.2f} + "
                       f"{st['import library']:.2f} + {st['load']:.2f} + {st['first call']:.2f} + {st['write']:.2f}) | "
                       f"{s['first']:.2f} | {s['steady']:.2f} | **{s['first_ratio']:.2f}×** | {s['warm']:.2f} | "
                       f"**{s['fresh_ratio']:.2f}×** | {s['starved']}/{s['calls']} |")
        for impl, runs in per_impl["cli"].items():
            cli, ours = [wall for wall, _ in runs], per_impl[impl]
            out.append(f"| {model} ({per_impl['steps']} steps) | `soundsmith generate`{NOTE.get(impl, '')} (wall, spawn "
                       f"to exit) | {statistics.median(cli):.2f} (runs: {', '.join(f'{c:.2f}' for c in cli)}) | | | | "
                       f"{ours['warm']:.2f} | **{statistics.median(cli) / ours['warm']:.2f}×** | |")
    out += ["", "The same runs in CPU seconds of each process (user + system; with one thread per process this is the "
            "work done, which other processes on the machine do not inflate as they inflate wall time):", "",
            "| model | implementation | fresh process to first file, CPU s | first call | steady call | "
            "**first / steady** | warm: call + write | **fresh / warm** |", "|---|---|---|---|---|---|---|---|"]
    for model, per_impl in results.items():
        for impl in IMPLS:
            s = per_impl[impl + " cpu"]
            out.append(f"| {model} | {LABELS.get(impl, impl)} | {s['fresh']:.2f} | {s['first']:.2f} | {s['steady']:.2f} | "
                       f"**{s['first_ratio']:.2f}×** | {s['warm']:.2f} | **{s['fresh_ratio']:.2f}×** |")
        for impl, runs in per_impl["cli"].items():
            cli, warm = [cpu for _, cpu in runs], per_impl[impl + " cpu"]["warm"]
            out.append(f"| {model} | `soundsmith generate`{NOTE.get(impl, '')} (spawn to exit) | "
                       f"{statistics.median(cli):.2f} | | | | {warm:.2f} | **{statistics.median(cli) / warm:.2f}×** |")
    out += ["", "Targets (issue 17): soundsmith's first call ≤ 1.5× its steady state; the command's wall for a demo "
            "clip ≤ 3× the warm in-process time."]
    return "\n".join(out) + "\n"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


def prepend(section: str) -> None:
    """Insert `section` above the earlier ones in RESULTS.md, keeping them."""
    text = RESULTS.read_text()
    head, sep, rest = ("\n" + text).partition("\n## ")
    RESULTS.write_text(head.strip("\n") + "\n\n" + section + (("\n## " + rest) if sep else ""))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["demo", "audioldm-s-full-v2"], choices=list(STEPS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=4, help="calls per worker: the first, then steady state")
    parser.add_argument("--threads", type=int, help="torch threads in every process (default: all CPUs)")
    parser.add_argument("--before", type=Path, metavar="SRC",
                        help="also run soundsmith from this src folder (e.g. a checkout of the previous version)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    parser.add_argument("--worker", nargs=5, metavar=("IMPL", "FOLDER", "STEPS", "CALLS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        impl, folder, steps, calls, out = args.worker
        return worker(impl, Path(folder), int(steps), int(calls), Path(out))
    if args.calls < 2:
        parser.error("--calls must be at least 2 (the first call, then steady state)")
    global THREADS
    THREADS = args.threads
    if args.before:
        IMPLS.append("before")
        SOURCES["before"] = args.before.resolve()

    started, load_start = time.strftime("%Y-%m-%d %H:%M"), load_average()
    command = "python bench/coldstart.py " + " ".join(argv if argv is not None else sys.argv[1:])
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            folder, steps = folder_for(model), STEPS[model]
            records = {impl: [] for impl in IMPLS}
            cli = {impl: [] for impl in IMPLS if impl != "diffusers"}
            for round_ in range(args.rounds):
                for impl in (IMPLS if round_ % 2 == 0 else IMPLS[::-1]):  # noqa: B020
                    records[impl].append(run_worker(impl, folder, steps, args.calls, Path(tmp)))
                    r = records[impl][-1]
                    walls = ", ".join(f"{c['wall']:.2f}" for c in r["calls"])
                    print(f"{model} round {round_ + 1} {impl}: fresh {r['fresh_s']:.2f} s, calls {walls} s", flush=True)
                    if impl != "diffusers":
                        cli[impl].append(run_cli(impl, folder, steps, Path(tmp)))
                        print(f"{model} round {round_ + 1} {impl} generate: {cli[impl][-1][0]:.2f} s "
                              f"({cli[impl][-1][1]:.2f} CPU s)", flush=True)
            results[model] = {impl: summarise(records[impl]) for impl in IMPLS}
            results[model].update({impl + " cpu": summarise(records[impl], "cpu") for impl in IMPLS})
            results[model].update(cli=cli, steps=steps)
    section = report(args, results, command, started, load_start, load_average())
    print(section)
    if not args.no_write:
        prepend(section)


if __name__ == "__main__":
    main()
