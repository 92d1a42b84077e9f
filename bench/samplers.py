"""How fast each deterministic sampler converges: error of the generated mel against a converged solution, as a
function of UNet evaluations — the measurement behind the --quality presets.

    .venv/bin/python bench/samplers.py --model PATH_OR_NAME [--seconds 5.12] [--prompts 4] [--samplers …]
                                       [--steps 5 10 …] [--write]

The target is what the reference's quality setting gives: DDIM at 200 steps (the default of AudioLDM 2 and
MusicLDM). The deterministic samplers approach it as steps grow (they solve the same probability-flow ODE, up to
where the checkpoint's "leading" timestep spacing starts and ends them). Ancestral / SDE samplers (euler-a,
kdpm2-a, dpmpp-2m-sde, dpm-sde, ddpm) do not converge to one solution by design and are left out. The error is
‖mel − mel*‖ / ‖mel*‖, the median over prompts and seeds.
`--write` appends the table and the command to bench/RESULTS.md.
"""

import argparse
import datetime
import statistics
import sys
import time
from pathlib import Path

import torch

import soundsmith

DETERMINISTIC = ["ddim", "plms", "lms", "euler", "heun", "kdpm2", "dpmpp-2m", "dpmpp-2s", "deis", "unipc"]
TWO_EVALS = {"heun", "kdpm2", "dpmpp-2s"}  # UNet evaluations per step
STEPS = [5, 8, 10, 15, 20, 25, 30, 50]
PROMPTS = ["a dog barking in the rain", "a slow piano melody", "a man speaking in a quiet room",
           "an engine idling", "church bells ringing", "a fast drum beat"]


def mel_of(pipe, prompt, seed, sampler, steps, seconds):
    latents = pipe(prompt, audio_length_in_s=seconds, num_inference_steps=steps, sampler=sampler, seed=seed,
                   output_type="latent").audios
    with torch.no_grad():
        return pipe.latents_to_mel(latents).float()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--seconds", type=float, default=5.12)
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--samplers", nargs="+", default=DETERMINISTIC, choices=DETERMINISTIC)
    parser.add_argument("--steps", nargs="+", type=int, default=STEPS)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)

    pipe = soundsmith.load(args.model, device="cpu")
    cases = [(p, seed) for seed, p in enumerate(PROMPTS[: args.prompts])]
    started = time.perf_counter()
    truth = {case: mel_of(pipe, *case, "ddim", 200, args.seconds) for case in cases}
    rows = []
    for sampler in args.samplers:
        for steps in args.steps:
            errors = [((mel_of(pipe, *case, sampler, steps, args.seconds) - truth[case]).norm()
                       / truth[case].norm()).item() for case in cases]
            nfe = steps * (2 if sampler in TWO_EVALS else 1)
            rows.append((sampler, steps, nfe, statistics.median(errors)))
            print(f"{sampler:9s} {steps:3d} steps {nfe:3d} UNet evals  mel error {rows[-1][3]:.4f}", flush=True)

    lines = ["| sampler | " + " | ".join(f"{s} steps" for s in args.steps) + " |",
             "|---|" + "---|" * len(args.steps)]
    for sampler in args.samplers:
        cells = [f"{err:.3f}" + (f" ({nfe})" if sampler in TWO_EVALS else "")
                 for name, _, nfe, err in rows if name == sampler]
        lines.append(f"| {sampler} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    if args.write:
        results = Path(__file__).with_name("RESULTS.md")
        command = "python bench/samplers.py " + " ".join(argv if argv is not None else sys.argv[1:])
        section = (f"\n## Sampler convergence — {datetime.date.today()}\n\n`{command}`\n\n"
                   f"Median relative mel error against DDIM at 200 steps, {len(cases)} prompts, "
                   f"{args.seconds} s, model {args.model}; two-evaluation samplers show their UNet evaluations in "
                   f"brackets. Took {time.perf_counter() - started:.0f} s.\n\n{table}\n")
        with results.open("a") as f:
            f.write(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
