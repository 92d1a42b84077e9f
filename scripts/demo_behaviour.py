"""Issue 21's behaviour checks of a model (default: the bundled demo), printed as three tables:

    .venv/bin/python scripts/demo_behaviour.py --classifier classifier.pt [-m demo] [--seeds 5] [--long 30]

1. loudness across seeds: per held-out prompt (the first --prompts of each category), the integrated loudness (ITU-R
   BS.1770, soundsmith.loudness.integrated_loudness) of --seeds clips, raw (no output normalisation); the spread is
   max − min in LU (the target: within ±3 LU, a spread ≤ 6; train.adherence.loudness_summary also prints the
   stricter readings), and "mostly silent" counts clips more than half of whose 50 ms frames are below −50 dBFS RMS;
2. long-form: --long-seeds -d --long clips per continuous category (water, vehicle, drums): the longest run below
   −50 dBFS (target ≤ 2 s) and the share of its 3 s windows the classifier puts in the prompt's category;
3. edits, on real clips of --data (a `soundsmith data synth` manifest the model did not train on, e.g. synth-s1):
   `extend` of a 3 s clip of each category by 3 s with that category's first prompt — the classifier's top-1 on the
   new 3 s; `inpaint` of 1.0–2.5 s of a clip of another category with each category's first prompt — top-1 on the
   span. Counts as right when top-1 is the prompt's category; --edit-seeds seeds of each;
4. the codec's ceiling (--only codec): --codec real clips of each category from the share of --data that `soundsmith
   data classifier` holds out with its defaults (seed 0, 15 %: no classifier made so trained on them), classified
   (by every --classifier) as they are, after the vocoder alone (their log-mel → vocoder) and after the VAE and the
   vocoder (`soundsmith reconstruct`): what the model's codec leaves of a category before the UNet is asked for
   anything.
Every clip uses the model's default sampler, steps and guidance, seed = its index.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

FRAME_S = 0.05
SILENCE_DBFS = -50.0
CONTINUOUS = ("water", "vehicle", "drums")


def frame_dbfs(waveform: np.ndarray, sample_rate: int) -> np.ndarray:
    """RMS level of consecutive FRAME_S frames, dBFS (full-scale sine: −3)."""
    n = int(FRAME_S * sample_rate)
    frames = waveform[: len(waveform) // n * n].reshape(-1, n).astype(np.float64)
    return 10 * np.log10((frames ** 2).mean(axis=1) + 1e-20)


def longest_quiet(waveform: np.ndarray, sample_rate: int) -> float:
    """Seconds of the longest run of frames below SILENCE_DBFS."""
    best = run = 0
    for quiet in frame_dbfs(waveform, sample_rate) < SILENCE_DBFS:
        run = run + 1 if quiet else 0
        best = max(best, run)
    return best * FRAME_S


def category_of(model, waveform: np.ndarray, sample_rate: int) -> str:
    from soundsmith.audio import resample
    from soundsmith.eval.classify import SAMPLE_RATE, mel_of, predict

    x = resample(torch.as_tensor(waveform, dtype=torch.float32), sample_rate, SAMPLE_RATE)
    return predict(model, [mel_of(x)])[0]


def loudness_table(pipe, prompts, seeds):
    from soundsmith.loudness import integrated_loudness as loudness
    from soundsmith.train.adherence import loudness_summary

    print(f"\n1. loudness across {seeds} seeds (raw output, LUFS)")
    print(f"{'category':14s} {'prompt':38s} {'min':>7s} {'max':>7s} {'spread':>7s} {'silent':>6s}")
    every, silent, total = {}, 0, 0
    for category, prompt in prompts:
        levels, quiet = [], 0
        for seed in range(seeds):
            out = pipe(prompt, seed=seed, progress=False)
            x = out.audios[0]
            levels.append(float(loudness(torch.as_tensor(x), out.sample_rate)))
            quiet += bool((frame_dbfs(x, out.sample_rate) < SILENCE_DBFS).mean() > 0.5)
        finite = [v for v in levels if np.isfinite(v)]
        spread = max(finite) - min(finite) if len(finite) == len(levels) else float("inf")
        every[prompt] = levels
        silent, total = silent + quiet, total + seeds
        print(f"{category:14s} {prompt[:38]:38s} {min(levels):7.1f} {max(levels):7.1f} {spread:7.1f} {quiet:6d}")
    print(f"{loudness_summary(every)}; mostly-silent clips: {silent} / {total}")


def long_table(pipe, classifier, prompts, seconds, seeds=1):
    print(f"\n2. long-form, {seconds:g} s (seeds 0–{seeds - 1})")
    print(f"{'category':10s} {'prompt':36s} {'seed':>4s} {'longest < -50 dBFS':>19s} {'3 s windows in category':>24s}")
    worst = 0.0
    for category, prompt in prompts:
        if category not in CONTINUOUS:
            continue
        for seed in range(seeds):
            out = pipe(prompt, audio_length_in_s=seconds, seed=seed, progress=False)
            x, rate = out.audios[0], out.sample_rate
            window = 3 * rate
            windows = [x[i:i + window] for i in range(0, len(x) - window + 1, window)]
            right = sum(category_of(classifier, w, rate) == category for w in windows)
            quiet = longest_quiet(x, rate)
            worst = max(worst, quiet)
            print(f"{category:10s} {prompt[:36]:36s} {seed:4d} {quiet:17.2f} s {right:>14d} / {len(windows)}")
    print(f"longest run below -50 dBFS in any clip: {worst:.2f} s")


def edit_table(pipe, classifier, prompts, data, seeds: int):
    from soundsmith import edit
    from soundsmith.data.manifest import load_audio, read_manifest

    rate = pipe.sample_rate
    items = read_manifest(data)
    by_category = {}
    for item in items:
        by_category.setdefault(item.category, item)
    firsts = [(c, p) for c, p in prompts]
    print(f"\n3. edits (seeds 0–{seeds - 1}): top-1 of the classifier on the generated span")
    print(f"{'category':14s} {'seed':>4s} {'extend (new 3 s)':>18s} {'inpaint 1.0–2.5 s (source)':>30s}")
    right_extend = right_inpaint = 0
    for i, (category, prompt) in enumerate(firsts):
        source = load_audio(by_category[category], rate).numpy()[: 3 * rate]
        other = firsts[(i + 1) % len(firsts)][0]
        base = load_audio(by_category[other], rate).numpy()[: 3 * rate]
        for seed in range(seeds):
            out = edit.extend(pipe, source, prompt, 3.0, sample_rate=rate, seed=seed, progress=False)
            extended = category_of(classifier, out.audios[0][3 * rate: 6 * rate], rate)
            out = edit.inpaint(pipe, base, prompt, [(1.0, 2.5)], sample_rate=rate, seed=seed, progress=False)
            inpainted = category_of(classifier, out.audios[0][rate: int(2.5 * rate)], rate)
            right_extend += extended == category
            right_inpaint += inpainted == category
            print(f"{category:14s} {seed:4d} {extended:>18s} {inpainted + ' (' + other + ')':>30s}")
    total = len(firsts) * seeds
    print(f"extend continues the category: {right_extend} / {total}; inpaint puts it in the span: "
          f"{right_inpaint} / {total}")


def codec_table(pipe, classifiers: dict, data, per_category):
    import random

    from soundsmith import canvas, edit
    from soundsmith.audio import waveform_to_mel
    from soundsmith.data.manifest import load_audio, read_manifest
    from soundsmith.eval.classify import holdout_split

    rate = pipe.sample_rate
    by_category = {}
    for item in holdout_split(read_manifest(data))[0]:  # clips no classifier made with data's defaults trained on
        by_category.setdefault(item.category, []).append(item)
    random.seed(0)
    stages = ("as they are", "vocoder", "VAE + vocoder")
    print(f"\n4. the codec's ceiling: real clips ({per_category} per category, first 5 s) classified top-1, "
          f"{' / '.join(stages)}")
    print(f"{'category':14s} " + " ".join(f"{Path(name).stem:>16s}" for name in classifiers))
    totals = np.zeros((len(classifiers), 3), dtype=int)
    for category in sorted(by_category):
        right = np.zeros((len(classifiers), 3), dtype=int)
        for item in random.sample(by_category[category], min(per_category, len(by_category[category]))):
            clip = load_audio(item, rate)[: 5 * rate]
            with torch.no_grad():
                vocoded = pipe.mel_to_waveform(waveform_to_mel(clip[None], cfg=canvas.mel_config(pipe)))[0]
                rebuilt = edit.reconstruct(pipe, clip.numpy(), sample_rate=rate, progress=False).audios[0]
            for i, audio in enumerate((clip.numpy(), vocoded.numpy(), rebuilt)):
                for j, model in enumerate(classifiers.values()):
                    right[j, i] += category_of(model, audio, rate) == category
        totals += right
        print(f"{category:14s} " + " ".join(f"{' / '.join(str(v) for v in row):>16s}" for row in right))
    print(f"{'all':14s} " + " ".join(f"{' / '.join(str(v) for v in row):>16s}" for row in totals))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-m", "--model", default="demo")
    parser.add_argument("--classifier", required=True, action="append",
                        help="soundsmith data classifier output (either kind); repeat for the codec table to use "
                             "several (the other tables use the first)")
    parser.add_argument("--data", default=str(Path.home() / ".cache/soundsmith/data/synth-s1/manifest.jsonl"),
                        help="manifest of real clips for the edits (default: synth-s1)")
    parser.add_argument("--prompts", type=int, default=2, help="held-out prompts per category for loudness")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per prompt for loudness")
    parser.add_argument("--long", type=float, default=30.0, help="seconds of the long-form clips")
    parser.add_argument("--long-seeds", type=int, default=3, help="long-form clips per category (seeds 0, 1, …)")
    parser.add_argument("--edit-seeds", type=int, default=3, help="seeds of each edit (0, 1, …)")
    parser.add_argument("--codec", type=int, default=12, help="real clips per category for the codec table")
    parser.add_argument("--only", default="loudness,long,edit",
                        help="which tables, comma-separated: loudness, long, edit, codec")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    for name in ("prompts", "seeds", "long_seeds", "edit_seeds", "codec"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} {getattr(args, name)}: must be at least 1")

    import soundsmith
    from soundsmith.data.eval_prompts import EVAL_PROMPTS
    from soundsmith.eval.classify import load_classifier

    if args.threads:
        torch.set_num_threads(args.threads)
    began = time.time()
    pipe = soundsmith.load(args.model, device="cpu")
    classifiers = {name: load_classifier(name) for name in args.classifier}
    classifier = next(iter(classifiers.values()))
    tables = set(args.only.split(","))
    if "loudness" in tables:
        loudness_table(pipe, [(c, p) for c, ps in EVAL_PROMPTS.items() for p in ps[: args.prompts]], args.seeds)
    firsts = [(c, ps[0]) for c, ps in EVAL_PROMPTS.items()]
    if "long" in tables:
        long_table(pipe, classifier, firsts, args.long, args.long_seeds)
    if "edit" in tables:
        edit_table(pipe, classifier, firsts, args.data, args.edit_seeds)
    if "codec" in tables:
        codec_table(pipe, classifiers, args.data, args.codec)
    print(f"\n{args.model}: {pipe.default_steps} steps, guidance {pipe.default_guidance}; {time.time() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
