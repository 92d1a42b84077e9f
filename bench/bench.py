"""Benchmark soundsmith against diffusers on the same full-size random-weight folder, in one run, alternating.

    .venv/bin/python bench/bench.py [--model audioldm-s-full-v2|audioldm2] [--steps 10 20]
                                    [--dtypes float32 bfloat16] [--repeats 3] [--seconds 10.24] [--quick]
                                    [--compile]

For each dtype one fresh process per implementation (bench/worker.py) loads the pipeline; the two processes are then
driven in turn — diffusers, soundsmith, diffusers, soundsmith … — through the first call, the stages (text
encoding, one UNet step with guidance, VAE decode, vocoder) and the end-to-end calls, so the noise of a shared
machine falls on both. Same prompt, same initial latents, guidance 2.5, one waveform. A call whose CPU
utilisation (CPU seconds / wall seconds) is below 0.8 × threads (--starved) was starved by other processes: it is
rerun (up to --retries times) and never enters a median. The results are printed and prepended to bench/RESULTS.md.
The full-size folders are built by scripts/build_random_checkpoints.py when missing. --compile applies
torch.compile to both implementations' UNet, VAE decoder and vocoder (soundsmith's `--compile`): the first call
then includes the compilation, which the per-process table reports.
"""

import argparse
import json
import os
import select
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WORKER = BENCH / "worker.py"
RESULTS = BENCH / "RESULTS.md"
CHECKPOINTS = Path("~/.cache/soundsmith/random-checkpoints").expanduser()
MODELS = ("audioldm-s-full-v2", "audioldm2", "musicldm", "audioldm-l-full", "audioldm2-large")
IMPLS = ("ref", "ours")  # the order of every turn: diffusers first, then soundsmith (then OpenVINO with --openvino)
NAMES = {"ref": "diffusers", "ours": "soundsmith", "ov": "openvino", "sov": "soundsmith+OpenVINO UNet"}
STAGES = ("text", "unet", "vae", "vocoder")
EFFECTIVE = ("unet", "vae", "vocoder")  # stages whose soundsmith rate is reported on the direct algorithm's FLOPs
TIMEOUT = 1800.0  # seconds one request may take before its worker is declared hung
BARS = {"float32": 1e-4, "bfloat16": 3e-2, "int8": 3e-2}  # waveform vs diffusers; bf16 / int8 mel vs our float32 mel
DTYPES = ("float32", "bfloat16", "int8")  # int8: soundsmith's int8 mode against diffusers (and OpenVINO) in float32
HEADER = "# Benchmark results\n\nWritten by `bench/bench.py` (newest first). Ratios are diffusers / soundsmith: above 1 means soundsmith is faster.\n"


class Worker:
    """A worker.py process: one JSON request per line in, one JSON answer per line out. It is dead (with
    .error) once it crashes or hangs; an error in one request is recorded and the worker goes on."""

    def __init__(self, args: list[str], log: Path, threads: int, starved: float = 0.8):
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
               "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(REPO / "src"), "BENCH_STARVED": str(starved)}
        self.log = log
        self.proc = subprocess.Popen([sys.executable, str(WORKER), *map(str, args)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=log.open("w"), text=True, env=env)
        self.error, self.errors = None, []

    def ask(self, request: dict | None = None) -> dict | None:
        """Send `request` (None: just read the next answer) → the answer, or None after an error."""
        if self.error:
            return None
        try:
            if request is not None:
                self.proc.stdin.write(json.dumps(request) + "\n")
                self.proc.stdin.flush()
            hung = not select.select([self.proc.stdout], [], [], TIMEOUT)[0]
            line = "" if hung else self.proc.stdout.readline()
        except OSError:
            hung, line = False, ""
        if not line:
            try:
                self.proc.wait(timeout=0 if hung else 10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            tail = self.log.read_text(errors="replace").strip().splitlines()[-2:]
            self.error = f"worker {'hung' if hung else 'died'} (exit {self.proc.wait()}): " + " | ".join(tail)
            return None
        answer = json.loads(line)
        if "error" in answer:
            self.errors.append(answer["error"].strip().splitlines()[-1][:300])
            return None
        return answer


def folder_for(model: str) -> Path:
    folder = CHECKPOINTS / model
    if not (folder / "model_index.json").exists():
        subprocess.run([sys.executable, str(REPO / "scripts" / "build_random_checkpoints.py"), model], check=True)
    return folder


def run_dtype(args, folder: Path, dtype: str, outdir: Path, count_flops: bool) -> dict:
    """Every implementation in `dtype`, alternating → {impl: record}. In an int8 run soundsmith runs its int8 mode
    and the others float32."""
    impls = args.impls
    record = {impl: {"stages": {s: [] for s in STAGES}, "e2e": {n: [] for n in args.steps}} for impl in impls}
    workers = {}
    for impl in impls:  # one load after the other, so the loads do not compete
        worker_dtype = "float32" if dtype == "int8" and impl != "ours" else dtype
        workers[impl] = Worker([impl, folder, worker_dtype, args.seconds, args.threads, args.retries, outdir,
                                int(args.compile)],
                               outdir / f"{impl}-{dtype}.log", args.threads, args.starved)
        record[impl].update(workers[impl].ask() or {})

    def turn(request: dict, keep) -> None:
        line = []
        for impl in impls:
            answer = workers[impl].ask(request)
            if answer is not None:
                keep(record[impl], answer)
            runs = (answer or {}).get("attempts") or [(answer or {}).get("attempt")]
            line.append(f"{NAMES[impl]} " + (", ".join(f"{a['wall']:.2f} s ({a['util']:.2f} CPU)" for a in runs)
                                              if runs[0] else "ok" if answer else "failed"))
        print(f"  {dtype} {request['op']} {request.get('what', '')} {request.get('steps', '')}: " + "; ".join(line),
              flush=True)

    turn({"op": "first", "steps": args.steps[0]}, lambda r, a: r.update(first=a["attempt"]))
    if count_flops:
        turn({"op": "flops"}, lambda r, a: r.update(flops=a["flops"]))
    for _ in range(args.repeats):
        for stage in STAGES:
            turn({"op": "time", "what": stage}, lambda r, a: r["stages"][stage].extend(a["attempts"]))
    for _ in range(args.repeats):
        for steps in args.steps:
            turn({"op": "time", "what": "e2e", "steps": steps}, lambda r, a: r["e2e"][steps].extend(a["attempts"]))
    turn({"op": "exit"}, lambda r, a: r.update(a))
    for impl, worker in workers.items():
        record[impl]["errors"] = worker.errors + ([worker.error] if worker.error else [])
        if worker.proc.poll() is None:
            worker.proc.kill()
    return record


# ------------------------------------------------------------------------------------------------- reporting


def median(attempts: list[dict]) -> float | None:
    """Median wall seconds of the unstarved attempts (None when every attempt was starved or none ran)."""
    good = [a["wall"] for a in attempts if not a["starved"]]
    return statistics.median(good) if good else None


def counts(attempts: list[dict]) -> str:
    """'accepted/rejected'."""
    rejected = sum(a["starved"] for a in attempts)
    return f"{len(attempts) - rejected}/{rejected}"


def seconds(attempts: list[dict], digits: int = 2) -> str:
    """The median cell; when every run was starved, their median in parentheses (for the record, not a result)."""
    if median(attempts) is not None or not attempts:
        return fmt(median(attempts), digits)
    return f"— (starved: {statistics.median(a['wall'] for a in attempts):.{digits}f})"


def fmt(x: float | None, digits: int = 2) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def ratio(ref: float | None, ours: float | None) -> str:
    return "—" if ref is None or ours is None else f"**{ref / ours:.2f}×**"


def gflop(ref: float | None, ours: float | None) -> str:
    if ref and ours and abs(ref - ours) > 0.01 * ref:
        return f"{ref / 1e9:.1f} / {ours / 1e9:.1f}"
    return fmt((ref or ours or 0) / 1e9 or None, 1)


def rel_err(a: np.ndarray, b: np.ndarray) -> float | None:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return None if a.shape != b.shape or not b.size else float(np.linalg.norm(a - b) / np.linalg.norm(b))


def agreement(outdir: Path, dtypes: list[str], impls=IMPLS) -> list[tuple[str, float | None, float | None]]:
    """(what, relative error, bar or None) from the first calls' saved waveforms and mels."""
    def load(impl, dtype):
        path = outdir / f"{impl}-{dtype}.npz"
        return np.load(path) if path.exists() else None

    rows = []
    ref = load("ref", "float32")
    for impl, bar in (("ours", 1e-4), ("ov", None), ("sov", 1e-4)):
        other = load(impl, "float32") if impl in impls else None
        if ref is not None and other is not None:
            rows += [(f"float32 waveform, {NAMES[impl]} vs diffusers", rel_err(other["waveform"], ref["waveform"]), bar),
                     (f"float32 mel, {NAMES[impl]} vs diffusers", rel_err(other["mel"], ref["mel"]), bar)]
    for low_dtype in ("bfloat16", "int8"):
        if low_dtype not in dtypes:
            continue
        for impl in [i for i in impls if low_dtype == "bfloat16" or i == "ours"]:
            low, full = load(impl, low_dtype), load(impl, "float32")
            error = rel_err(low["mel"], full["mel"]) if low is not None and full is not None else None
            if low is not None and full is not None and ref is not None:
                rows.append((f"{low_dtype} waveform vs diffusers float32 waveform, {NAMES[impl]}",
                             rel_err(low["waveform"], ref["waveform"]), None))
            rows.append((f"{low_dtype} mel vs float32 mel, {NAMES[impl]}" + ("" if full is not None else
                         " (no float32 run)"), error, BARS[low_dtype] if impl == "ours" else None))
    return rows


def report(args, command: str, records: dict, gemm: dict, checks: list, started: str, load_avg: str) -> str:
    impls = args.impls
    others = [i for i in impls if i != "ours"]  # each is compared with soundsmith: other / soundsmith
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown")
    packages = ("torch", "diffusers", "transformers", "soundsmith") + (("openvino",) if {"ov", "sov"} & set(impls)
                                                                       else ())
    versions = ", ".join(f"{p} {_version(p)}" for p in packages)
    out = [f"## {started} — {args.model}, {args.seconds:g} s of audio", "",
           f"Command: `{command}`", "",
           f"Machine: {cpu}, {os.cpu_count()} CPUs, {args.threads} threads; {versions}; load average at start "
           f"{load_avg}. Guidance 2.5, 1 waveform, same prompt and initial latents for all"
           + ("; torch.compile (UNet, VAE decoder, vocoder) in both, the first call compiling" if args.compile else "")
           + ("; OpenVINO: diffusers' UNet, VAE decoder and vocoder converted (bench/openvino_impl.py), text encoders "
              "in torch" if "ov" in impls else "")
           + ("; soundsmith+OpenVINO UNet: soundsmith with backend='openvino' (soundsmith/openvino_unet.py)"
              if "sov" in impls else "")
           + ("; in the int8 rows soundsmith runs dtype='int8' and the others float32" if "int8" in records else "")
           + ".", ""]
    rates = {d: (gemm.get(d) or {}).get("median") for d in ("float32", "bfloat16")}
    rates["int8"] = rates["float32"]
    out += [f"GEMM 4096² (same run): float32 {fmt(rates['float32'], 0)} GFLOP/s, bfloat16 "
            f"{fmt(rates['bfloat16'], 0)} GFLOP/s (median of unstarved calls; best "
            f"{fmt((gemm.get('float32') or {}).get('best'), 0)} / {fmt((gemm.get('bfloat16') or {}).get('best'), 0)}).", ""]

    names = [NAMES[i] for i in impls]
    ratio_names = [f"{NAMES[o]} / soundsmith" for o in others]
    out += ["### End to end (seconds, median of unstarved runs)", "",
            f"| dtype | steps | {' | '.join(names)} | {' | '.join(ratio_names)} | runs kept/rejected ({'; '.join(names)}) |",
            "|---|---|" + "---|" * (len(impls) + len(others) + 1)]
    for dtype, rec in records.items():
        for steps in args.steps:
            runs = {i: rec[i]["e2e"][steps] for i in impls}
            out.append(f"| {dtype} | {steps} | {' | '.join(seconds(runs[i]) for i in impls)} | "
                       f"{' | '.join(ratio(median(runs[o]), median(runs['ours'])) for o in others)} | "
                       f"{'; '.join(counts(runs[i]) for i in impls)} |")

    flops = {impl: next((rec[impl]["flops"] for rec in records.values() if rec[impl].get("flops")), {})
             for impl in impls}
    out += ["", "### Stages (seconds, median of unstarved runs; GFLOP per call as each implementation counts it "
            "(torch.utils.flop_counter, diffusers / soundsmith when they differ); achieved GFLOP/s and % of the GEMM "
            "rate in that dtype; for the UNet, VAE and vocoder the rates of soundsmith and OpenVINO are effective: "
            "the direct algorithm's FLOPs (diffusers' count) / the time, so a cheaper exact form shows above the GEMM "
            "rate)", "",
            "| dtype | stage | GFLOP | " + " | ".join(f"{n} | GFLOP/s (% GEMM)" for n in names) + " | "
            + " | ".join(ratio_names) + f" | kept/rejected ({'; '.join(names)}) |",
            "|---|---|---|" + "---|" * (2 * len(impls) + len(others) + 1)]
    for dtype, rec in records.items():
        for stage in STAGES:
            work = {impl: flops[impl].get(stage) for impl in impls}
            direct = work["ref"] if stage in EFFECTIVE else None
            cells = []
            for impl in impls:
                t = median(rec[impl]["stages"][stage])
                count = direct or work[impl]
                rate = count / t / 1e9 if count and t else None
                share = f" ({100 * rate / rates[dtype]:.0f} %)" if rate and rates.get(dtype) else ""
                cells += [seconds(rec[impl]["stages"][stage], 3), fmt(rate, 0) + share]
            times = {i: median(rec[i]["stages"][stage]) for i in impls}
            out.append(f"| {dtype} | {stage} | {gflop(work['ref'], work['ours'])} | {' | '.join(cells)} | "
                       f"{' | '.join(ratio(times[o], times['ours']) for o in others)} | "
                       f"{'; '.join(counts(rec[i]['stages'][stage]) for i in impls)} |")

    out += ["", "### Per process (one fresh process per implementation and dtype)", "",
            f"| dtype | implementation | import s | load s | first call s{' (compiles)' if args.compile else ''} "
            "(CPU util) | peak RSS GiB |",
            "|---|---|---|---|---|---|"]
    for dtype, rec in records.items():
        for impl in impls:
            r, first = rec[impl], rec[impl].get("first") or {}
            util = f" ({first['util']:.2f}{', starved' if first.get('starved') else ''})" if first else ""
            out.append(f"| {dtype} | {NAMES[impl]} | {fmt(r.get('import_s'))} | {fmt(r.get('load_s'))} | "
                       f"{fmt(first.get('wall'))}{util} | {fmt(r['peak_rss_mib'] / 1024 if 'peak_rss_mib' in r else None)} |")

    out += ["", f"### Outputs agree (first call, {args.steps[0]} steps)", "",
            "| check | relative error | bar | ok |", "|---|---|---|---|"]
    for what, error, bar in checks:
        ok = "—" if bar is None or error is None else ("yes" if error <= bar else "**NO**")
        out.append(f"| {what} | {'—' if error is None else f'{error:.2e}'} | "
                   f"{'—' if bar is None else f'{bar:g}'} | {ok} |")

    timed = [a for rec in records.values() for impl in impls
             for runs in (*rec[impl]["stages"].values(), *rec[impl]["e2e"].values()) for a in runs]
    starved = sum(a["starved"] for a in timed)
    utils = [a["util"] for a in timed if not a["starved"]]
    out += ["", f"Rejected as starved (CPU utilisation < {args.starved * args.threads:.1f}): {starved} of {len(timed)} timed "
            f"calls; kept calls ran at a median utilisation of {fmt(statistics.median(utils) if utils else None)}. "
            f"GEMM calls rejected: {sum((g or {}).get('rejected', 0) for g in gemm.values())}."]
    errors = [f"- {dtype} {NAMES[impl]}: {e}" for dtype, rec in records.items() for impl in impls
              for e in rec[impl].get("errors", [])]
    if errors:
        out += ["", "Errors:", *errors]
    return "\n".join(out) + "\n"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


def prepend(section: str) -> None:
    """Insert `section` above the earlier ones in RESULTS.md, keeping them."""
    text = RESULTS.read_text() if RESULTS.exists() else HEADER
    head, sep, rest = ("\n" + text).partition("\n## ")
    head = head.strip("\n") or HEADER.strip("\n")
    RESULTS.write_text(head + "\n\n" + section + (("\n## " + rest) if sep else ""))


def publish(section: str, write: bool) -> None:
    """Print a results section and, when `write`, prepend it to RESULTS.md (every bench script ends so)."""
    print("\n" + section)
    if write:
        prepend(section)
        print(f"written to {RESULTS}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="audioldm-s-full-v2", choices=MODELS)
    parser.add_argument("--steps", type=int, nargs="+", help="sampler steps per end-to-end call (default 10 20)")
    parser.add_argument("--dtypes", nargs="+", choices=DTYPES)
    parser.add_argument("--openvino", action="store_true",
                        help="a third implementation: diffusers with OpenVINO's UNet, VAE decoder and vocoder")
    parser.add_argument("--ours-openvino", action="store_true",
                        help="a further implementation: soundsmith with backend='openvino' (its UNet through OpenVINO)")
    parser.add_argument("--starved", type=float, default=0.8,
                        help="a call below this × threads CPU utilisation was starved: rerun, never in a median")
    parser.add_argument("--repeats", type=int, help="timed calls per configuration and stage (default 3)")
    parser.add_argument("--seconds", type=float, help="audio length (default 10.24)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: all CPUs)")
    parser.add_argument("--retries", type=int, default=3, help="reruns of a starved call (default 3)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 repeat, 5.12 s, one dtype, 10 steps")
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    parser.add_argument("--raw", type=Path, help="also write every timed call (JSON) to this file")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile both implementations' UNet, VAE decoder and vocoder (first call compiles)")
    args = parser.parse_args(argv)
    args.impls = IMPLS + (("ov",) if args.openvino else ()) + (("sov",) if args.ours_openvino else ())
    quick = args.quick
    args.steps = args.steps or ([10] if quick else [10, 20])
    args.dtypes = (args.dtypes or ["float32", "bfloat16"])[:1 if quick else None]
    args.repeats = args.repeats or (1 if quick else 3)
    args.seconds = args.seconds or (5.12 if quick else 10.24)
    command = ".venv/bin/python bench/bench.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    started, load_avg = time.strftime("%Y-%m-%d %H:%M"), " ".join(f"{x:.1f}" for x in os.getloadavg())

    folder = folder_for(args.model)
    with tempfile.TemporaryDirectory(prefix="soundsmith-bench-") as tmp:
        outdir = Path(tmp)
        print(f"GEMM rates ({args.threads} threads) …", flush=True)
        gemm = (Worker(["gemm", args.threads, args.retries], outdir / "gemm.log", args.threads,
                       args.starved).ask() or {}).get("gemm", {})
        records = {}
        for i, dtype in enumerate(args.dtypes):
            print(f"{args.model} {dtype}: diffusers and soundsmith, alternating", flush=True)
            records[dtype] = run_dtype(args, folder, dtype, outdir, count_flops=i == 0)
        checks = agreement(outdir, args.dtypes, args.impls)
    if args.raw:
        args.raw.write_text(json.dumps({"command": command, "gemm": gemm, "records": records, "checks": checks}, indent=1))
    publish(report(args, command, records, gemm, checks, started, load_avg), not args.no_write)


if __name__ == "__main__":
    main()
