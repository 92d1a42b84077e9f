"""Warm throughput: clips per minute that one long-lived process makes, diffusers against soundsmith.

    .venv/bin/python bench/throughput.py [--model audioldm-s-full-v2] [--clips 20] [--probe 4] [--steps 10]
                                         [--seconds 10.24] [--dtype float32] [--no-compiled]

What a service or a batch worker sees: the process is loaded and warmed (its first call, and for a compiled
configuration its compilation, are reported but not counted), then it makes clip after clip, each with its own
prompt and seed. Every configuration an implementation offers for that (one clip per call or several prompts
batched in one call; for soundsmith also torch.compile with inductor's freezing, which a warm process may afford
(--no-compiled leaves it out: compiling AudioLDM 2 takes many minutes on 2 cores), and, where OpenVINO is installed,
its UNet through OpenVINO, backend="openvino")
runs --probe clips in a fresh process; the fastest of each implementation then makes --clips clips in another
fresh process, and the ratio of those two is the result: soundsmith's best against diffusers' best. The first
clip of the one-clip configurations is compared between the implementations (same prompt, same generator seed).
Runs alternate implementations so the noise of a shared machine falls on both; the load average is reported.
The section is prepended to bench/RESULTS.md.
"""

import argparse
import importlib.util
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
PROMPTS = ("a dog barking in the rain", "a piano melody in a large hall", "footsteps on gravel",
           "a car engine idling", "church bells ringing", "a man speaking on the radio", "waves on a beach",
           "a crowd cheering in a stadium", "birds singing at dawn", "a drum loop with a heavy kick")
GUIDANCE = 2.5
NAMES = {"ref": "diffusers", "ours": "soundsmith"}
# (implementation, clips per call, mode): what each implementation offers a warm process on the CPU
CONFIGS = (("ref", 1, ""), ("ours", 1, ""), ("ref", 4, ""), ("ours", 4, ""), ("ours", 1, "compiled"),
           ("ours", 1, "openvino"), ("ours", 4, "openvino"))
MODES = {"": "", "compiled": ", compiled", "openvino": ", OpenVINO UNet"}


def model_folder(model: str) -> Path:
    """A folder path as given, or a full-size random-weight folder by name (built when missing)."""
    from bench import folder_for

    return Path(model) if Path(model).is_dir() else folder_for(model)


def child(args) -> dict:
    """One process: load, warm up with one call, then args.clips clips in calls of args.batch → JSON."""
    import torch

    from worker import ours, reference

    torch.set_grad_enabled(False)
    folder = model_folder(args.model)
    started = time.perf_counter()
    dtype = getattr(torch, args.dtype)
    if args.kind == "ref":
        impl = reference(folder, dtype, args.seconds, compile=args.mode == "compiled")
    else:
        impl = ours(folder, dtype, args.seconds, compile=args.mode == "compiled",
                    backend="openvino" if args.mode == "openvino" else "torch")
    load = time.perf_counter() - started

    def call(first: int, count: int):
        prompts = [PROMPTS[i % len(PROMPTS)] for i in range(first, first + count)]
        generators = [torch.Generator().manual_seed(i) for i in range(first, first + count)]
        return impl.pipe(prompts, audio_length_in_s=args.seconds, num_inference_steps=args.steps,
                         guidance_scale=GUIDANCE, generator=generators, output_type="np").audios

    started = time.perf_counter()
    audio = call(0, args.batch)
    warm = time.perf_counter() - started
    if args.save:
        np.save(args.save, np.asarray(audio[0], dtype=np.float32))
    made, started = 0, time.perf_counter()
    while made < args.clips:
        count = min(args.batch, args.clips - made)
        audio = call(made, count)
        assert len(audio) == count
        made += count
    wall = time.perf_counter() - started
    return {"load_s": load, "warm_s": warm, "clips": made, "wall_s": wall, "per_min": 60 * made / wall,
            "load_avg": os.getloadavg()[0]}


def run(args, kind: str, batch: int, mode: str, clips: int, save: Path | None = None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(BENCH.parent / "src")}
    command = [sys.executable, __file__, "--child", kind, "--batch", str(batch), "--clips", str(clips),
               "--model", args.model, "--steps", str(args.steps), "--seconds", str(args.seconds),
               "--dtype", args.dtype, "--mode", mode] + (["--save", str(save)] if save else [])
    label = f"{NAMES[kind]}, {batch} clip{'s' if batch > 1 else ''} per call{MODES[mode]}"
    print(f"{label}: {clips} clips …", flush=True)
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{label} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"  {result['per_min']:.2f} clips/min (warm-up {result['warm_s']:.1f} s)", flush=True)
    return {"label": label, "kind": kind, "batch": batch, "mode": mode, **result}


def row(r: dict) -> str:
    return (f"| {r['label']} | {r['clips']} | {r['wall_s']:.1f} | **{r['per_min']:.2f}** | {r['load_s']:.1f} | "
            f"{r['warm_s']:.1f} | {r['load_avg']:.1f} |")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="audioldm-s-full-v2", help="a bench model name or a pipeline folder")
    parser.add_argument("--clips", type=int, default=20, help="clips of the final run of each implementation")
    parser.add_argument("--probe", type=int, default=4,
                        help="clips per configuration when choosing the best (rounded up to whole calls)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.24)
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--no-compiled", action="store_true", help="leave out soundsmith's compiled configuration")
    parser.add_argument("--child", choices=tuple(NAMES), help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="", choices=tuple(MODES), help=argparse.SUPPRESS)
    parser.add_argument("--save", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    if args.child:
        args.kind = args.child
        print(json.dumps(child(args)))
        return
    from bench import _version, publish, rel_err
    from soundsmith.machine import cpu_model

    command = ".venv/bin/python bench/throughput.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    started, load = time.strftime("%Y-%m-%d %H:%M"), " ".join(f"{x:.1f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="soundsmith-throughput-") as tmp:
        saved = {kind: Path(tmp) / f"{kind}.npy" for kind in NAMES}
        configs = [(kind, batch, mode) for kind, batch, mode in CONFIGS
                   if not (mode == "compiled" and args.no_compiled)
                   and not (mode == "openvino" and importlib.util.find_spec("openvino") is None)]
        probes = [run(args, kind, batch, mode, -(-args.probe // batch) * batch,  # whole calls
                      saved[kind] if batch == 1 and not mode else None)
                  for kind, batch, mode in configs]
        error = rel_err(np.load(saved["ours"]), np.load(saved["ref"]))
        best = {kind: max((p for p in probes if p["kind"] == kind), key=lambda p: p["per_min"]) for kind in NAMES}
        finals = [run(args, kind, best[kind]["batch"], best[kind]["mode"], args.clips) for kind in NAMES]
    ratio = finals[1]["per_min"] / finals[0]["per_min"]
    header = ("| configuration | clips | seconds | clips/min | load s | warm-up s (first call; compiling) | "
              "load average |\n|---|---|---|---|---|---|---|")
    section = "\n".join([
        f"## {started} — warm throughput, {args.model}, {args.seconds:g} s clips, {args.steps} steps, {args.dtype}", "",
        f"Command: `{command}`", "",
        f"Machine: {cpu_model()}, {os.cpu_count()} CPUs; torch {_version('torch')}, diffusers {_version('diffusers')}, "
        f"transformers {_version('transformers')}; load average at start {load}. Guidance {GUIDANCE}; each clip its "
        f"own prompt (cycling {len(PROMPTS)}) and seed; one process per row, loaded and warmed by one call first.", "",
        f"### Best of each implementation, {args.clips} clips", "", header, *map(row, finals), "",
        f"soundsmith / diffusers: **{ratio:.2f}×** clips per minute (target ≥ 1.5×). First clip of the one-clip "
        f"configurations, soundsmith against diffusers: waveform relative error {'—' if error is None else f'{error:.1e}'}.", "",
        f"### Every configuration, {args.probe} clips (rounded up to whole calls)", "", header,
        *map(row, probes)]) + "\n"
    publish(section, not args.no_write)


if __name__ == "__main__":
    main()
