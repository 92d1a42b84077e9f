"""Prompt adherence: generate clips for the held-out evaluation prompts (data.eval_prompts, wording no training
caption uses) and let the category classifier trained on real clips (eval.classify) name each one.

    soundsmith train adherence -m demo --classifier classifier.pt [--classifier logistic.pt] --seeds 3

Adherence of a category = the share of its clips whose top-1 class is that category (chance 1 / 9). With several
classifiers (e.g. the CNN and the logistic regression of eval.statistics) the same clips are classified by each.
Alongside: the loudness spread across seeds of each prompt (ITU-R BS.1770 integrated loudness of the raw output).
"""

import sys
import time

import torch

from ..audio import resample


def measure(pipe, classifier, seeds: int = 2, steps: int | None = None, guidance: float | None = None,
            seconds: float | None = None, progress: bool = True, sampler: str | None = None,
            prompts: dict | None = None) -> dict:
    """→ the eval.classify report {"accuracy", "per_category": {category: (correct, total)}, "confusions"} plus
    "seconds", "loudness" ({prompt: [LUFS per seed]}) and the settings. `classifier` may be a list: then "reports"
    holds one report per classifier and the top-level keys are the first's. `prompts`: {category: prompts}
    (default: data.eval_prompts.EVAL_PROMPTS)."""
    from tqdm import tqdm

    from ..loudness import integrated_loudness as loudness
    from ..data.eval_prompts import EVAL_PROMPTS
    from ..eval.classify import SAMPLE_RATE, evaluate, mel_of

    classifiers = classifier if isinstance(classifier, (list, tuple)) else [classifier]
    jobs = [(category, prompt, seed) for category, texts in (prompts or EVAL_PROMPTS).items() for prompt in texts
            for seed in range(seeds)]
    began = time.time()
    mels, categories, levels = [], [], {}
    for category, prompt, seed in tqdm(jobs, desc="adherence", disable=not progress, file=sys.stderr):
        out = pipe(prompt, num_inference_steps=steps, guidance_scale=guidance, audio_length_in_s=seconds,
                   seed=seed, output_type="pt", sampler=sampler, progress=False)
        mels.append(mel_of(resample(out.audios[0], out.sample_rate, SAMPLE_RATE)))
        categories.append(category)
        levels.setdefault(prompt, []).append(round(float(loudness(out.audios[0], out.sample_rate)), 2))
    reports = []
    for model in classifiers:
        with torch.no_grad():
            report = dict(evaluate(model, mels, categories))
        report["per_category"] = {c: v for c, v in report["per_category"].items() if v[1]}  # "other": no prompts
        reports.append(report)
    report = dict(reports[0])
    report.update(seconds=round(time.time() - began, 1), seeds=seeds, steps=steps or pipe.default_steps,
                  guidance=pipe.default_guidance if guidance is None else guidance,
                  sampler=sampler or pipe.scheduler_config["_class_name"], loudness=levels, reports=reports)
    return report


def loudness_summary(levels: dict) -> str:
    """One line: how many prompts' seeds lie within ±3 LU of each other (a spread of at most 6 LU), the median and
    worst spread, and two stricter readings: a spread of at most 3 LU, and every seed within 3 LU of the prompt's
    median. levels: {prompt: [LUFS per seed]}; a silent seed (-inf) puts its prompt outside every reading."""
    import math
    import statistics

    finite = [v for v in levels.values() if all(math.isfinite(x) for x in v)]
    spreads = sorted([max(v) - min(v) for v in finite] + [math.inf] * (len(levels) - len(finite)))
    if not spreads:
        return "loudness: no clips"
    near_median = sum(all(abs(x - statistics.median(v)) <= 3 for x in v) for v in finite)
    return (f"loudness across seeds: {sum(s <= 6 for s in spreads)} / {len(spreads)} prompts within ±3 LU; spread "
            f"median {spreads[len(spreads) // 2]:.1f} LU, worst {spreads[-1]:.1f} LU; stricter: spread ≤ 3 LU "
            f"{sum(s <= 3 for s in spreads)}, every seed within 3 LU of the median {near_median}")


def cmd_adherence(args) -> int:
    import json

    from .. import load
    from ..eval.classify import format_report, load_classifier

    if args.threads:
        torch.set_num_threads(args.threads)
    paths = args.classifier if isinstance(args.classifier, list) else [args.classifier]
    classifiers = [load_classifier(p) for p in paths]
    pipe = load(args.model, device="cpu", dtype=args.dtype)
    prompts = None
    if args.split == "validation":
        from ..data.eval_prompts import VALIDATION_PROMPTS as prompts
    report = measure(pipe, classifiers, seeds=args.seeds, steps=args.steps, guidance=args.guidance,
                     seconds=args.duration, progress=not args.no_progress, sampler=args.sampler, prompts=prompts)
    for path, each in zip(paths, report["reports"]):
        print(f"classifier {path}:")
        print(format_report(each))
        print(f"confusions: {each['confusions']}")
    print(loudness_summary(report["loudness"]))
    print(f"{args.model} ({args.dtype}): {args.split} prompts, {report['seeds']} seed(s) per prompt, {report['sampler']} "
          f"{report['steps']} steps, guidance {report['guidance']}, {report['seconds']} s")
    if args.json:
        from pathlib import Path

        Path(args.json).write_text(json.dumps(report, indent=1, default=list) + "\n")
    return 0
