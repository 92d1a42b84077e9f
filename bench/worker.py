"""One implementation (diffusers or soundsmith) of one model in one dtype, in its own process, driven by bench.py.

    python bench/worker.py ref|ours|ov FOLDER DTYPE SECONDS THREADS RETRIES OUTDIR   # then JSON requests on stdin
    python bench/worker.py gemm THREADS RETRIES

The worker loads the pipeline and answers {"import_s", "load_s", ...}; then one JSON answer per request line:
  {"op": "first", "steps": n}          first end-to-end call, timed once; saves waveform + mel to OUTDIR
  {"op": "flops"}                      FLOPs of each stage (torch.utils.flop_counter)
  {"op": "time", "what": W, "steps": n} W = "e2e" or a stage: "text", "unet", "vae", "vocoder"
  {"op": "exit"}                       peak RSS, then exit
Every timing (end to end, each stage, the GEMM) goes through `measure`, which records wall and CPU seconds and
reruns a call starved of CPU. Answers go to the original stdout; whatever the libraries print goes to stderr.
"""

import json
import os
import resource
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
PROMPT = "A hammer hitting a wooden surface"
GUIDANCE = 2.5
TIMESTEP = 501  # any timestep: the UNet's cost does not depend on it
STAGES = ("text", "unet", "vae", "vocoder")
# a call with CPU seconds / wall seconds below this × threads lost its CPU to other processes (bench.py --starved)
STARVED = float(os.environ.get("BENCH_STARVED", "0.8"))
LATENT_SEED = 0


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(fn: Callable, threads: int, retries: int) -> tuple[object, list[dict]]:
    """Call fn until one call is not starved, at most 1 + retries times, waiting a little longer before each
    rerun → (its result, every attempt as {wall, cpu, util, starved}); only unstarved attempts enter medians."""
    attempts = []
    for attempt in range(1 + retries):
        if attempt:  # give the processes that starved us time to finish: as long as the call took, doubling
            time.sleep(min(attempts[-1]["wall"] * 2 ** (attempt - 1), 60))
        wall0, cpu0 = time.perf_counter(), cpu_seconds()
        result = fn()
        wall, cpu = time.perf_counter() - wall0, cpu_seconds() - cpu0
        util = cpu / wall
        attempts.append({"wall": wall, "cpu": cpu, "util": util, "starved": util < STARVED * threads})
        if not attempts[-1]["starved"]:
            break
    return result, attempts


# ------------------------------------------------------------------------------------ the two implementations


@dataclass
class Impl:
    """The calls the benchmark makes, the same work in both implementations. latents (1, C, rows, W) in the
    run's dtype; cond: UNet keyword tensors batched [uncond; cond]; mel (1, T, M)."""

    generate: Callable  # (steps, latents) → waveform (1, samples), numpy float32
    encode: Callable  # () → cond, for PROMPT with guidance (the empty negative prompt)
    unet: Callable  # (x (2, C, rows, W), t, cond) → noise prediction
    decode: Callable  # latents → mel: divide by the VAE scaling factor, VAE decode
    vocode: Callable  # mel → waveform
    pipe: object
    mel_method: str  # the pipeline method that receives the mel, spied on to compare mels


def reference(folder: Path, dtype, seconds: float, compile: bool = False) -> Impl:
    """diffusers' pipeline via tests/checkpoints.load_reference (which holds the transformers-5 patches)."""
    import diffusers
    import torch

    sys.path.insert(0, str(REPO / "tests"))
    from checkpoints import load_reference

    cls = getattr(diffusers, json.loads((folder / "model_index.json").read_text())["_class_name"])
    if dtype != torch.float32:  # load_reference pins float32: load the weights as torch_dtype=dtype would
        from_pretrained = cls.from_pretrained.__func__
        cls.from_pretrained = classmethod(lambda c, *a, **k: from_pretrained(c, *a, **{**k, "dtype": dtype}))
    pipe = load_reference(folder)
    if getattr(pipe, "language_model", None) is not None:
        pipe.language_model.to(dtype)  # load_reference builds it itself (a GPT2LMHeadModel), in float32
    cpu = torch.device("cpu")
    if compile:  # the networks soundsmith's --compile compiles, the same way (the attribute names agree)
        from soundsmith.runtime import compile_pipeline

        compile_pipeline(pipe)

    if hasattr(pipe, "language_model"):  # AudioLDM 2: GPT-2 states + T5 states
        def encode():
            states, mask, generated = pipe.encode_prompt(PROMPT, cpu, 1, True)
            return {"encoder_hidden_states": generated, "encoder_hidden_states_1": states,
                    "encoder_attention_mask_1": mask}
    else:  # AudioLDM / MusicLDM: CLAP vector as class labels
        def encode():
            return {"encoder_hidden_states": None, "class_labels": pipe._encode_prompt(PROMPT, cpu, 1, True)}

    return Impl(
        generate=lambda steps, latents: pipe(PROMPT, audio_length_in_s=seconds, num_inference_steps=steps,
                                             guidance_scale=GUIDANCE, latents=latents.clone(),
                                             num_waveforms_per_prompt=1, output_type="np").audios,
        encode=encode,
        unet=lambda x, t, cond: pipe.unet(x, t, **cond).sample,
        decode=lambda latents: pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample.squeeze(1),
        vocode=pipe.mel_spectrogram_to_waveform,
        pipe=pipe, mel_method="mel_spectrogram_to_waveform",
    )


def ours(folder: Path, dtype, seconds: float, compile: bool = False, backend: str = "torch") -> Impl:
    import soundsmith

    pipe = soundsmith.load(folder, device="cpu", dtype=str(dtype).removeprefix("torch."), compile=compile,
                           backend=backend)
    return Impl(
        generate=lambda steps, latents: pipe(PROMPT, audio_length_in_s=seconds, num_inference_steps=steps,
                                             guidance_scale=GUIDANCE, latents=latents.clone(),
                                             num_waveforms_per_prompt=1, output_type="np").audios,
        encode=lambda: pipe.conditioning([PROMPT], None, 1, True, embeds={}, labels={})[0],
        unet=lambda x, t, cond: pipe.unet(x, t, **cond),
        decode=pipe.latents_to_mel,
        vocode=pipe.mel_to_waveform,
        pipe=pipe, mel_method="mel_to_waveform",
    )


def latent_shape(folder: Path, seconds: float) -> tuple[int, ...]:
    """(1, C, rows, W) for `seconds` of audio, in the reference's arithmetic (frames truncated, then rounded up to
    a multiple of the VAE factor)."""
    config = {name: json.loads((folder / name / "config.json").read_text()) for name in ("unet", "vae", "vocoder")}
    factor = 2 ** (len(config["vae"]["block_out_channels"]) - 1)
    hop_seconds = 1.0
    for rate in config["vocoder"]["upsample_rates"]:
        hop_seconds *= rate
    frames = int(seconds / (hop_seconds / config["vocoder"]["sampling_rate"]))
    frames = -(-frames // factor) * factor
    return 1, config["unet"]["in_channels"], frames // factor, config["vocoder"]["model_in_dim"] // factor


def calls(impl: Impl, latents) -> dict[str, Callable]:
    """The timed calls of one implementation: "e2e" (takes steps) and the four stages, with shared inputs."""
    import torch

    cond = impl.encode()
    mel = impl.decode(latents)
    x, t = torch.cat([latents, latents]), torch.tensor(TIMESTEP)
    return {"e2e": lambda steps: impl.generate(steps, latents), "text": impl.encode,
            "unet": lambda: impl.unet(x, t, cond), "vae": lambda: impl.decode(latents), "vocoder": lambda: impl.vocode(mel)}


def spy(obj, method: str) -> list:
    """Record the first argument of every call of obj.method (the mel handed to the vocoder)."""
    seen, original = [], getattr(obj, method)

    def recorder(mel, *args, **kwargs):
        seen.append((mel.squeeze(1) if mel.dim() == 4 else mel).detach().float().numpy().copy())
        return original(mel, *args, **kwargs)

    setattr(obj, method, recorder)
    return seen


# --------------------------------------------------------------------------------------------------- serving


def serve(kind: str, folder: Path, dtype_name: str, seconds: float, threads: int, retries: int, outdir: Path,
          compile: bool, answer: Callable, started: float) -> None:
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    torch.set_grad_enabled(False)
    dtype = getattr(torch, dtype_name)
    if kind == "ov":
        from openvino_impl import openvino

        load = lambda folder, dtype, seconds, compile: openvino(folder, dtype, seconds, threads)  # noqa: E731
    elif kind == "sov":
        load = lambda folder, dtype, seconds, compile: ours(folder, dtype, seconds, compile, "openvino")  # noqa: E731
    else:
        load = {"ref": reference, "ours": ours}[kind]
    import_s = time.perf_counter() - started
    t0 = time.perf_counter()
    impl = load(folder, dtype, seconds, compile)
    answer({"import_s": import_s, "load_s": time.perf_counter() - t0, "threads": torch.get_num_threads(),
            "rss_after_load_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
    latents = torch.randn(latent_shape(folder, seconds), generator=torch.Generator().manual_seed(LATENT_SEED))
    latents = latents.to(torch.float32 if dtype_name == "int8" else dtype)  # int8 mode runs on float32 activations
    timed = None
    for line in iter(sys.stdin.readline, ""):
        request = json.loads(line)
        op = request["op"]
        try:
            if op == "exit":
                answer({"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
                return
            if op == "first":
                mels = spy(impl.pipe, impl.mel_method)
                waveform, attempts = measure(lambda: impl.generate(request["steps"], latents), threads, 0)
                delattr(impl.pipe, impl.mel_method)  # the spy was an instance attribute over the class's method
                np.savez(outdir / f"{kind}-{dtype_name}.npz", waveform=np.asarray(waveform, dtype=np.float32),
                         mel=mels[0] if mels else np.zeros(0, np.float32))
                answer({"attempt": attempts[0]})
                continue
            timed = timed or calls(impl, latents)
            if op == "flops":
                from torch.utils.flop_counter import FlopCounterMode

                flops = {}
                for stage in STAGES:
                    with FlopCounterMode(display=False) as counter:
                        timed[stage]()
                    flops[stage] = counter.get_total_flops()
                answer({"flops": flops})
            elif op == "time":
                fn = timed[request["what"]]
                steps = request.get("steps")
                _, attempts = measure((lambda: fn(steps)) if steps else fn, threads, retries)
                answer({"attempts": attempts})
            else:
                answer({"error": f"unknown op {op!r}"})
        except Exception:
            answer({"error": f"{op} {request.get('what', '')}: " + traceback.format_exc(limit=-3)})


def gemm(threads: int, retries: int, answer: Callable, repeats: int = 5) -> None:
    """GFLOP/s of a 4096² matmul in float32 and bfloat16: median of the unstarved calls, and the best."""
    import torch

    torch.set_num_threads(threads)
    n, rates = 4096, {}
    for dtype in (torch.float32, torch.bfloat16):
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        a @ b  # warm-up
        attempts = [x for _ in range(repeats) for x in measure(lambda: a @ b, threads, retries)[1]]
        good = sorted(2 * n ** 3 / x["wall"] / 1e9 for x in attempts if not x["starved"])
        rates[str(dtype).removeprefix("torch.")] = {"median": good[len(good) // 2] if good else None,
                                                    "best": good[-1] if good else None,
                                                    "rejected": sum(x["starved"] for x in attempts)}
    answer({"gemm": rates})


def main() -> None:
    started = time.perf_counter()
    channel = os.fdopen(os.dup(1), "w", buffering=1)  # answers only; library chatter goes to stderr
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def answer(message: dict) -> None:
        channel.write(json.dumps(message) + "\n")

    kind, *rest = sys.argv[1:]
    if kind == "gemm":
        gemm(int(rest[0]), int(rest[1]), answer)
    else:
        folder, dtype, seconds, threads, retries, outdir, compile = rest
        serve(kind, Path(folder), dtype, float(seconds), int(threads), int(retries), Path(outdir), compile == "1",
              answer, started)


if __name__ == "__main__":
    main()
