"""Each decoder layer in its direct form and in its cheaper exact forms (soundsmith/kernels.py), timed alternately in
one process on the activations a full-size decode produces, with effective GFLOP/s (the direct form's FLOPs / time).

    .venv/bin/python bench/forms.py [--model audioldm-s-full-v2] [--seconds 10.24] [--dtype float32] [--rounds 5]

For every vocoder residual block and upsampler and every VAE upsampler it times the direct form and each other form
the layer offers (forced, not measured), then the whole vocoder and VAE decoder with every layer direct against the
forms `runtime.fastest` picks on this machine. Rounds alternate the forms, so load from other processes falls on
all of them; medians are reported with the load average. The section is prepended to bench/RESULTS.md.
"""

import argparse
import os
import shlex
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "src"))
sys.path.insert(0, str(BENCH))

from soundsmith import runtime  # noqa: E402


@contextmanager
def forced(form: str | None):
    """Every layer takes `form` (a name its candidates offer, else direct); None: runtime.fastest decides."""
    if form is None:
        yield
        return
    original = runtime.fastest

    def fastest(key, candidates):
        names = list(candidates())
        if form.startswith("dft") and any(n.startswith("dft") for n in names):
            return form  # any tile length (--tiles), where the layer offers the DFT form at all
        return form if form in names else "direct"

    runtime.fastest = fastest
    try:
        yield
    finally:
        runtime.fastest = original


def alternate(calls: dict, rounds: int) -> dict:
    """{name: (form, fn)} → {name: median seconds}, each round calling every fn once, in turn."""
    times = {name: [] for name in calls}
    for name, (form, fn) in calls.items():
        with forced(form):
            fn()  # warm-up (and prepared weights)
    for _ in range(rounds):
        for name, (form, fn) in calls.items():
            with forced(form):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def flops(fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with forced("direct"), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def capture(module: torch.nn.Module, run) -> dict:
    """The input of each call of module's submodules during run() (direct forms), by submodule."""
    seen, handles = {}, []

    def keep(sub, args):
        if args and torch.is_tensor(args[0]) and sub not in seen:
            seen[sub] = args[0].clone(memory_format=torch.preserve_format)

    for sub in module.modules():
        handles.append(sub.register_forward_pre_hook(keep))
    with forced("direct"):
        run()
    for h in handles:
        h.remove()
    return seen


def layer_rows(layers: list, inputs: dict, rounds: int, forms_of) -> list[str]:
    rows = []
    for label, layer in layers:
        x = inputs[layer]
        fn = lambda layer=layer, x=x: layer(x)  # noqa: E731
        direct_flops = flops(fn)
        candidates = {"direct": ("direct", fn)}
        for form in forms_of(layer, x):
            candidates[form] = (form, fn)
        with forced(None):
            chosen = _chosen(layer, x)
        medians = alternate(candidates, rounds)
        best = min(medians, key=medians.get)
        cells = " ".join(f"{name} {medians[name] * 1e3:.1f} ms ({direct_flops / medians[name] / 1e9:.0f})"
                         for name in medians)
        rows.append(f"| {label} | {direct_flops / 1e9:.2f} | {cells} | {best} | {chosen} | "
                    f"**{medians['direct'] / medians[best]:.2f}×** |")
    return rows


def _chosen(layer, x) -> str:
    """The form runtime.fastest picks for the layer (a residual block: for its convolutions, which share a shape)."""
    probe = layer.convs1[0] if hasattr(layer, "convs1") else layer
    form = probe.form(x)
    if isinstance(form, int):
        return f"dft{form}" if form else "direct"
    return form


args_all_tiles = None  # --tiles: DFT tile lengths to time for every residual block (default: the ones offered)


def vocoder_forms(layer, x) -> list[str]:
    from soundsmith.models.vocoder import DFT_TILES, ConvTranspose, ResBlock

    if isinstance(layer, ConvTranspose):
        return ["polyphase"]
    if isinstance(layer, ResBlock):
        k = layer.convs1[0].kernel_size[0]
        return [f"dft{n}" for n in (DFT_TILES.get(k, ()) if args_all_tiles is None else args_all_tiles)
                if n > k]
    return []


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="audioldm-s-full-v2")
    parser.add_argument("--seconds", type=float, default=10.24)
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tiles", type=int, nargs="+", help="DFT tile lengths to time on every residual block")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    global args_all_tiles
    args_all_tiles = args.tiles
    command = ".venv/bin/python bench/forms.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    import soundsmith
    from bench import CHECKPOINTS, _version, prepend
    from worker import latent_shape

    torch.set_grad_enabled(False)
    load_start = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M")
    folder = CHECKPOINTS / args.model
    pipe = soundsmith.load(folder, device="cpu", dtype=args.dtype)
    dtype = pipe.dtype
    latents = torch.randn(latent_shape(folder, args.seconds), generator=torch.Generator().manual_seed(0)).to(dtype)
    with forced("direct"):
        mel = pipe.latents_to_mel(latents)
    vocoder, vae = pipe.vocoder, pipe.vae

    out = [f"## {started} — decoder forms, {args.model}, {args.seconds:g} s, {args.dtype}", "",
           f"Command: `{command}`", "",
           f"torch {_version('torch')}, {torch.get_num_threads()} threads; load average at start "
           f"{' '.join(f'{x:.1f}' for x in load_start)}. Median of {args.rounds} alternating rounds per layer, on the "
           "activations of a full-size decode; (GFLOP/s) is effective: the direct form's FLOPs / time.", "",
           "### Vocoder layers", "",
           "| layer | GFLOP (direct) | forms: median ms (effective GFLOP/s) | fastest | runtime.fastest picks | "
           "direct / fastest |", "|---|---|---|---|---|---|"]
    inputs = capture(vocoder, lambda: vocoder(mel))
    per_level = len(vocoder.config.resblock_kernel_sizes)
    layers = []
    for i, up in enumerate(vocoder.upsampler):
        layers.append((f"upsampler {i} ({up.in_channels}→{up.out_channels}, k{up.kernel_size[0]} s{up.stride[0]}, "
                       f"L {inputs[up].shape[-1]})", up))
        for block in vocoder.resblocks[i * per_level:(i + 1) * per_level]:
            c, k = block.convs1[0].in_channels, block.convs1[0].kernel_size[0]
            layers.append((f"resblock level {i} (C {c}, k {k}, L {inputs[block].shape[-1]})", block))
    out += layer_rows(layers, inputs, args.rounds, vocoder_forms)

    out += ["", "### VAE decoder layers", "",
            "| layer | GFLOP (direct) | forms: median ms (effective GFLOP/s) | fastest | runtime.fastest picks | "
            "direct / fastest |", "|---|---|---|---|---|---|"]
    inputs = capture(vae, lambda: vae.decode(latents / vae.config.scaling_factor))
    ups = [(f"upsampler {i} ({tuple(inputs[b.upsamplers[0]].shape[1:])} → ×2)", b.upsamplers[0])
           for i, b in enumerate(vae.decoder.up_blocks) if b.upsamplers is not None]
    out += layer_rows(ups, inputs, args.rounds, lambda layer, x: ["fused"])

    out += ["", "### Whole stages: every layer direct vs the forms runtime.fastest picks", "",
            "| stage | GFLOP (direct) | direct s (GFLOP/s) | picked forms s (effective GFLOP/s) | direct / picked |",
            "|---|---|---|---|---|"]
    for name, fn in (("VAE decode", lambda: pipe.latents_to_mel(latents)), ("vocoder", lambda: pipe.mel_to_waveform(mel))):
        work = flops(fn)
        medians = alternate({"direct": ("direct", fn), "picked": (None, fn)}, args.rounds)
        out.append(f"| {name} | {work / 1e9:.1f} | {medians['direct']:.3f} ({work / medians['direct'] / 1e9:.0f}) | "
                   f"{medians['picked']:.3f} ({work / medians['picked'] / 1e9:.0f}) | "
                   f"**{medians['direct'] / medians['picked']:.2f}×** |")
    with forced("direct"):
        reference_mel, reference_wave = pipe.latents_to_mel(latents), pipe.mel_to_waveform(mel)
    picked_mel, picked_wave = pipe.latents_to_mel(latents), pipe.mel_to_waveform(mel)
    err = lambda a, b: ((a.double() - b.double()).norm() / b.double().norm()).item()  # noqa: E731
    out += ["", f"Picked forms vs direct: mel relative error {err(picked_mel, reference_mel):.1e}, waveform "
            f"{err(picked_wave, reference_wave):.1e}. Picked: "
            + ", ".join(f"{k}: {v}" for k, v in sorted(runtime.chosen_forms().items())) + ".",
            f"Load average at the end {' '.join(f'{x:.1f}' for x in os.getloadavg())}."]
    section = "\n".join(out) + "\n"
    print(section)
    if not args.no_write:
        prepend(section)


if __name__ == "__main__":
    main()
