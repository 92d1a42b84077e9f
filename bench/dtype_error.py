"""Mel error of soundsmith's bfloat16 and int8 modes against its float32, on a full-size random-weight folder.

    .venv/bin/python bench/dtype_error.py [--model audioldm-s-full-v2] [--seconds 10.24] [--steps 10]

The same initial latents (bench/worker.py's seed) and prompt for every mode; the mel handed to the vocoder is
compared as bench.py compares it: ‖mel − mel_float32‖ / ‖mel_float32‖ (issue 18's bar: 3e-2). bench.py reports the
same error when float32 and the low mode run in one invocation; this does it without timing anything (a minute).
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import worker  # noqa: E402
from bench import CHECKPOINTS, rel_err  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="audioldm-s-full-v2")
    parser.add_argument("--seconds", type=float, default=10.24)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    folder = CHECKPOINTS / args.model
    latents = torch.randn(worker.latent_shape(folder, args.seconds),
                          generator=torch.Generator().manual_seed(worker.LATENT_SEED))
    mels = {}
    for mode in ("float32", "bfloat16", "int8"):
        impl = worker.ours(folder, mode if mode == "int8" else getattr(torch, mode), args.seconds)
        seen = worker.spy(impl.pipe, impl.mel_method)
        impl.generate(args.steps, latents.to(torch.bfloat16 if mode == "bfloat16" else torch.float32))
        mels[mode] = np.asarray(seen[0])
    for mode in ("bfloat16", "int8"):
        print(f"{args.model} {args.steps} steps {args.seconds:g} s: {mode} mel vs float32 mel, soundsmith "
              f"{rel_err(mels[mode], mels['float32']):.3e} (bar 3e-2)")


if __name__ == "__main__":
    main()
