"""How well text towers place the held-out evaluation prompts, without generating audio (soundsmith.eval.text):
a 10-nearest-neighbour category vote among the training captions, and the cosine to the vector the UNet was
trained on (the teacher's, projected).

    .venv/bin/python scripts/text_tower_report.py --projection P.pt [--tower FOLDER ...]

Rows: the teacher (all-MiniLM-L6-v2) in its own 384 dimensions; its projection to the UNet's 128 (the target);
each --tower (a pipeline folder or `train tower --out` folder: text_encoder/ + tokenizer/), voted twice — among the
captions as that tower places them ("own") and as the UNet saw them in training ("target"). The captions are those
of `soundsmith data synth --seed 0` clips 0 … --clips − 1 (the demo's training set), from the synthesis plan alone.
"""

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--projection", required=True, type=Path, help="(384, 128) projection the UNet was trained on")
    parser.add_argument("--tower", action="append", default=[], type=Path, help="folder with text_encoder/ tokenizer/")
    parser.add_argument("--clips", type=int, default=10000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)

    from transformers import AutoTokenizer, ClapTextModelWithProjection

    from soundsmith.data import kinds
    from soundsmith.data.eval_prompts import EVAL_PROMPTS
    from soundsmith.eval.text import mean_cosine, vote_accuracy
    from soundsmith.train import clap
    from soundsmith.train.sentence_tower import embed

    if args.threads:
        torch.set_num_threads(args.threads)
    began = time.time()
    soundfont = kinds.music.find_soundfont()
    plans = [kinds.plan(0, i, 5.0, soundfont) for i in range(args.clips)]
    category_of = {p["caption"]: p["category"] for p in plans}
    captions = sorted(category_of)
    bank_categories = [category_of[c] for c in captions]
    prompts = [p for ps in EVAL_PROMPTS.values() for p in ps]
    prompt_categories = [c for c, ps in EVAL_PROMPTS.items() for _ in ps]
    projection = torch.load(args.projection, weights_only=True).float()
    teacher = clap.teacher_folder()
    teacher_captions, teacher_prompts = clap.teacher_embeds(teacher, captions), clap.teacher_embeds(teacher, prompts)
    target_captions = F.normalize(teacher_captions @ projection, dim=-1)
    target_prompts = F.normalize(teacher_prompts @ projection, dim=-1)

    rows = []

    def row(name, prompts_vectors, own_bank, cos_prompts, cos_captions):
        own, per = vote_accuracy(prompts_vectors, prompt_categories, own_bank, bank_categories, args.k)
        target = vote_accuracy(prompts_vectors, prompt_categories, target_captions, bank_categories, args.k)[0] \
            if prompts_vectors.shape[1] == target_captions.shape[1] else float("nan")
        rows.append((name, own, target, cos_prompts, cos_captions, per))

    row("teacher (384)", teacher_prompts, teacher_captions, float("nan"), float("nan"))
    row("teacher projected (128): the target", target_prompts, target_captions, 1.0, 1.0)
    for folder in args.tower:
        tower = ClapTextModelWithProjection.from_pretrained(folder / "text_encoder").float().eval()
        tokenizer = AutoTokenizer.from_pretrained(folder / "tokenizer")
        on_prompts, on_captions = embed(tower, tokenizer, prompts), embed(tower, tokenizer, captions)
        row(f"{folder}", on_prompts, on_captions, mean_cosine(on_prompts, target_prompts),
            mean_cosine(on_captions, target_captions))

    print(f"{len(prompts)} held-out prompts, {len(captions)} distinct training captions, {args.k} neighbours")
    print(f"| space | vote among own caption vectors | vote among target caption vectors | cosine to target: "
          f"prompts | captions |")
    print("|---|---:|---:|---:|---:|")
    for name, own, target, cp, cc in (r[:5] for r in rows):
        print(f"| {name} | {100 * own:.1f} % | {100 * target:.1f} % | {cp:.4f} | {cc:.4f} |")
    print("per category (own vote):")
    for name, *_, per in rows:
        print(f"  {name}: " + ", ".join(f"{c} {r}/{t}" for c, (r, t) in per.items()))
    print(f"{time.time() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
