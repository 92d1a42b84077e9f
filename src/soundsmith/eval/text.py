"""How well a text tower places prompts it was never trained on, without generating audio: a nearest-neighbour
category vote among the training captions' vectors, and the cosine to the vector the UNet was trained to expect.

    scripts/text_tower_report.py prints both for the teacher, its projection and the demo's tower.

The vote: each held-out prompt (data.eval_prompts) takes the majority category of its k nearest training captions
(cosine, in the tower's own space; ties go to the nearer neighbours' sum of similarities); the score is the share of
prompts whose vote is their category. It bounds what conditioning on that tower can do for the held-out prompts:
a UNet trained on the captions' vectors sees a prompt as roughly its neighbours.
"""

import torch
import torch.nn.functional as F


def knn_vote(queries: torch.Tensor, bank: torch.Tensor, bank_categories: list[str], k: int = 10) -> list[str]:
    """queries (Q, D), bank (N, D) → the category of each query by its k nearest bank rows (cosine), similarity
    summed per category."""
    similarity = F.normalize(queries.float(), dim=-1) @ F.normalize(bank.float(), dim=-1).T
    values, index = similarity.topk(min(k, bank.shape[0]), dim=1)
    votes = []
    for row_values, row_index in zip(values.tolist(), index.tolist()):
        tally: dict[str, float] = {}
        for v, i in zip(row_values, row_index):
            tally[bank_categories[i]] = tally.get(bank_categories[i], 0.0) + 1.0 + 1e-3 * v
        votes.append(max(tally, key=tally.get))
    return votes


def vote_accuracy(queries: torch.Tensor, categories: list[str], bank: torch.Tensor, bank_categories: list[str],
                  k: int = 10) -> tuple[float, dict[str, tuple[int, int]]]:
    """(share of queries voted into their category, {category: (right, total)})."""
    votes = knn_vote(queries, bank, bank_categories, k)
    per: dict[str, list[int]] = {}
    for vote, category in zip(votes, categories):
        per.setdefault(category, [0, 0])
        per[category][0] += vote == category
        per[category][1] += 1
    return sum(v == c for v, c in zip(votes, categories)) / max(len(categories), 1), \
        {c: tuple(v) for c, v in per.items()}


def mean_cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean row-wise cosine of two (N, D) tensors."""
    return float((F.normalize(a.float(), dim=-1) * F.normalize(b.float(), dim=-1)).sum(-1).mean())
