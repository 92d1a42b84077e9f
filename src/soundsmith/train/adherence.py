"""Prompt adherence: generate clips for the held-out evaluation prompts (data.eval_prompts, wording no training
caption uses) and let the category classifier trained on real clips (eval.classify) name each one.

    soundsmith train adherence -m demo --classifier classifier.pt --seeds 2

Adherence of a category = the share of its clips whose top-1 class is that category (chance 1 / 9).
"""

import sys
import time

import torch

from ..audio import resample


def measure(pipe, classifier, seeds: int = 2, steps: int | None = None, guidance: float | None = None,
            seconds: float | None = None, progress: bool = True, sampler: str | None = None) -> dict:
    """→ the eval.classify report {"accuracy", "per_category": {category: (correct, total)}, "confusions"} plus
    "seconds" and the settings."""
    from tqdm import tqdm

    from ..data.eval_prompts import EVAL_PROMPTS
    from ..eval.classify import SAMPLE_RATE, evaluate, mel_of

    jobs = [(category, prompt, seed) for category, prompts in EVAL_PROMPTS.items() for prompt in prompts
            for seed in range(seeds)]
    began = time.time()
    mels, categories = [], []
    for category, prompt, seed in tqdm(jobs, desc="adherence", disable=not progress, file=sys.stderr):
        out = pipe(prompt, num_inference_steps=steps, guidance_scale=guidance, audio_length_in_s=seconds,
                   seed=seed, output_type="pt", sampler=sampler)
        mels.append(mel_of(resample(out.audios[0], out.sample_rate, SAMPLE_RATE)))
        categories.append(category)
    with torch.no_grad():
        report = evaluate(classifier, mels, categories)
    report = {k: v for k, v in report.items()}
    report["per_category"] = {c: v for c, v in report["per_category"].items() if v[1]}  # "other" has no prompts
    report.update(seconds=round(time.time() - began, 1), seeds=seeds, steps=steps or pipe.default_steps,
                  guidance=pipe.default_guidance if guidance is None else guidance, sampler=sampler or pipe.scheduler_config["_class_name"])
    return report


def cmd_adherence(args) -> int:
    from .. import load
    from ..eval.classify import format_report, load_classifier

    if args.threads:
        torch.set_num_threads(args.threads)
    pipe = load(args.model, device="cpu", dtype=args.dtype)
    report = measure(pipe, load_classifier(args.classifier), seeds=args.seeds, steps=args.steps,
                     guidance=args.guidance, seconds=args.duration, progress=not args.no_progress,
                     sampler=args.sampler)
    print(format_report(report))
    print(f"confusions: {report['confusions']}")
    print(f"{args.model} ({args.dtype}): {report['seeds']} seed(s) per prompt, {report['sampler']} "
          f"{report['steps']} steps, guidance {report['guidance']}, {report['seconds']} s")
    return 0
