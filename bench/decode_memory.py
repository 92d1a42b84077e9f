"""Decoding memory with diffusers' memory switches: soundsmith's pipe.enable_vae_slicing() / enable_vae_tiling() (exact
chunked decoding) against diffusers' vae.enable_slicing() / vae.enable_tiling(), full-size AudioLDM-S random weights,
CPU, float32.

    .venv/bin/python bench/decode_memory.py [--seconds 10.24] [--batch 4] [--no-write]

Each (library, switch) runs in a fresh process: load the pipeline, make the same latents (B, 8, rows, 16) from a
seeded generator, decode them (VAE → mel → vocoder → waveform) and report the peak growth of resident anonymous
memory over the loaded state (sampled every 10 ms, bench/memory.py) and the time. The parent prints, per library,
each switch against its plain decode (memory ratio, relative error of the waveform), and soundsmith against diffusers
switch for switch (memory ratio diffusers / soundsmith). Results are prepended to bench/RESULTS.md. The folder is built by
scripts/build_random_checkpoints.py audioldm-s-full-v2 when missing.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
FOLDER = Path("~/.cache/soundsmith/random-checkpoints/audioldm-s-full-v2").expanduser()
SWITCHES = ("plain", "slicing", "tiling", "slicing+tiling")


def child(library: str, switch: str, out: str, seconds: float, batch: int) -> dict:
    import numpy as np
    import torch

    torch.set_grad_enabled(False)
    if library == "soundsmith":
        from soundsmith import AudioLDMPipeline

        pipe = AudioLDMPipeline.from_pretrained(FOLDER)
        if "slicing" in switch:
            pipe.enable_vae_slicing()
        if "tiling" in switch:
            pipe.enable_vae_tiling()
        rows = pipe.latent_length(seconds)[0]

        def decode(latents):
            return pipe.mel_to_waveform(pipe.latents_to_mel(latents))
    else:
        from diffusers import AudioLDMPipeline

        pipe = AudioLDMPipeline.from_pretrained(FOLDER)
        if "slicing" in switch:
            pipe.vae.enable_slicing()
        if "tiling" in switch:
            pipe.vae.enable_tiling()
        rows = int(seconds / 0.01) // 4

        def decode(latents):
            return pipe.mel_spectrogram_to_waveform(pipe.decode_latents(latents))
    from memory import AnonymousPeak  # bench/memory.py: resident anonymous memory, sampled in a thread

    latents = torch.randn(batch, 8, rows, 16, generator=torch.Generator().manual_seed(0))
    peak = AnonymousPeak()
    base = peak.peak
    t0 = time.perf_counter()
    waveform = decode(latents)
    took = time.perf_counter() - t0
    np.save(out, waveform.float().numpy())
    return dict(library=library, switch=switch, growth_mb=(peak.peak - base) * 1024, seconds=took)


def run_child(library: str, switch: str, args, out: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "TOKENIZERS_PARALLELISM": "false"}
    command = [sys.executable, __file__, "--child", library, switch, out, "--seconds", str(args.seconds), "--batch",
               str(args.batch)]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(f"{library} {switch} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(rows: list[dict], vs_diffusers: float, args, load: tuple, wall: float) -> str:
    import torch

    command = " ".join([".venv/bin/python", "bench/decode_memory.py"] + sys.argv[1:])
    lines = ["## Decoding memory with the slicing and tiling switches (bench/decode_memory.py)", "",
             f"`{command}` — {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, torch "
             f"{metadata.version('torch')} ({torch.get_num_threads()} threads), diffusers {metadata.version('diffusers')},"
             f" AudioLDM-S full-size random weights, float32, {args.batch} × {args.seconds:g} s decoded (VAE + "
             f"vocoder), each in a fresh process; load average at start {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; "
             f"{wall / 60:.0f} min.", "",
             "| library | switch | peak anonymous growth (MB) | vs its plain decode | waveform error vs its plain "
             "decode | decode (s) |", "|---|---|---:|---:|---:|---:|"]
    plain = {r["library"]: r for r in rows if r["switch"] == "plain"}
    for r in rows:
        base = plain[r["library"]]
        lines.append(f"| {r['library']} | {r['switch']} | {r['growth_mb']:.0f} | "
                     f"{r['growth_mb'] / base['growth_mb']:.2f} | {r['error']:.1e} | {r['seconds']:.1f} |")
    lines.append("")
    ours = {r["switch"]: r for r in rows if r["library"] == "soundsmith"}
    theirs = {r["switch"]: r for r in rows if r["library"] == "diffusers"}
    lines.append("- peak anonymous growth, diffusers / soundsmith, switch for switch: " + ", ".join(
        f"{s} {theirs[s]['growth_mb'] / ours[s]['growth_mb']:.2f}" for s in SWITCHES if s in ours and s in theirs))
    lines.append(f"- waveform, soundsmith vs diffusers, plain decode of the same latents: relative error "
                 f"{vs_diffusers:.1e}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.24)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    parser.add_argument("--child", nargs=3, metavar=("LIBRARY", "SWITCH", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(*args.child, args.seconds, args.batch)))
        return
    import numpy as np

    if not (FOLDER / "model_index.json").exists():
        subprocess.run([sys.executable, str(REPO / "scripts" / "build_random_checkpoints.py"), "audioldm-s-full-v2"],
                       check=True)
    load, start, rows = os.getloadavg(), time.perf_counter(), []
    with tempfile.TemporaryDirectory() as tmp:
        waves = {}
        for switch in SWITCHES:  # alternating the libraries, so that a change of load hits both
            for library in ("soundsmith", "diffusers"):
                out = os.path.join(tmp, f"{library}-{switch}.npy")
                rows.append(run_child(library, switch, args, out))
                waves[library, switch] = np.load(out).astype(np.float64)
                print(json.dumps(rows[-1]), flush=True)
    for r in rows:
        base = waves[r["library"], "plain"]
        r["error"] = float(np.linalg.norm(waves[r["library"], r["switch"]] - base) / np.linalg.norm(base))
    ref = waves["diffusers", "plain"]
    vs_diffusers = float(np.linalg.norm(waves["soundsmith", "plain"] - ref) / np.linalg.norm(ref))
    rows.sort(key=lambda r: (r["library"] != "soundsmith", SWITCHES.index(r["switch"])))
    sys.path.insert(0, str(BENCH))
    from bench import publish  # bench/RESULTS.md's format: newest section first

    publish(report(rows, vs_diffusers, args, load, time.perf_counter() - start), not args.no_write)


if __name__ == "__main__":
    main()
