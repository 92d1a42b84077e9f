"""Resumable batches: thousands of sounds from a jobs file, on local worker processes or a Ray cluster.

    soundsmith batch jobs.jsonl --out sounds/ -m demo --workers 2
    soundsmith batch jobs.jsonl --out /shared/sounds --ray auto

    from soundsmith import batch
    summary = batch.run("jobs.jsonl", "sounds/", defaults={"model": "demo", "steps": 25}, workers=2)

plan.py turns each line into a fixed request (seed, name, model), ledger.py keeps the folder's manifest and
failures, worker.py runs lines on a loaded model, local.py and cluster.py hand them out, run.py drives it all.
The user's guide is docs/batch.md.
"""

from .plan import BadLines, Item, derive_name, derive_seed, plan
from .run import Summary, WorkersLost, run

__all__ = ["BadLines", "Item", "Summary", "WorkersLost", "derive_name", "derive_seed", "plan", "run"]
