"""Print the sampler rows of docs/parity.md (markdown): each sampler's largest relative error against its diffusers
scheduler over the cases below, and the outcome of the scheduler-config walk of tests/test_scheduler_configs.py
per diffusers class (options that match, options refused where diffusers fails too, options refused where
diffusers runs).

    .venv/bin/python scripts/sampler_parity.py        # a few minutes on 2 cores
"""

import collections
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
warnings.filterwarnings("ignore")

import test_samplers as S  # noqa: E402
import test_scheduler_configs as W  # noqa: E402

from soundsmith.errors import InvalidArgument  # noqa: E402
from soundsmith.schedules import DEFAULTS  # noqa: E402

CASES = [("audioldm", {}, 10), ("audioldm", {}, 25), ("tiny", {}, 10), ("tiny", {}, 25),
         ("audioldm", {"timestep_spacing": "linspace"}, 10), ("audioldm", {"timestep_spacing": "trailing"}, 10),
         ("audioldm", {"prediction_type": "v_prediction"}, 10)]


def sampler_rows():
    print("| sampler | diffusers scheduler | cases | largest relative error |")
    print("|---|---|---|---|")
    for name, (cls, preset) in S.ORACLE.items():
        if name == "dpm-sde" and S.HAVE_TORCHSDE:
            continue
        errors = []
        for config, extra, n in CASES:
            if not all(k in DEFAULTS[cls.__name__] for k in extra):  # e.g. DPMSolverSinglestep has no spacing
                continue
            config = {**S.CONFIGS[config], **{k: v for k, v in extra.items() if k == "prediction_type"}}
            overrides = {k: v for k, v in extra.items() if k != "prediction_type"}
            errors.append(S.assert_same_run(name, config, n, **overrides))
        variant = ", ".join(f"{k}={v!r}" for k, v in preset.items())
        print(f"| `{name}` | {cls.__name__}{f' ({variant})' if variant else ''} | {len(errors)} | {max(errors):.1e} |")


def walk_rows():
    outcome = collections.defaultdict(collections.Counter)
    refused_runs = collections.defaultdict(set)
    for case in W.cases():
        name, overrides = case.values
        overrides = {k: W._value(k, v) for k, v in overrides.items()}
        reference = W.run_diffusers(name, overrides)
        try:
            W.test_config_option_matches_diffusers_or_is_refused_in_one_line(name, overrides)
        except AssertionError:
            outcome[name]["FAILED"] += 1
            continue
        try:
            W.soundsmith_loop(name, W.AUDIOLDM, W.STEPS, S.noise(), **overrides)
            outcome[name]["match"] += 1
        except InvalidArgument:
            if isinstance(reference, Exception):
                outcome[name]["refused, diffusers fails too"] += 1
            else:
                outcome[name]["refused, diffusers runs"] += 1
                refused_runs[name].add(", ".join(f"{k}={'<object>' if k == 'solver_p' else v}"
                                                 for k, v in overrides.items()))
    print("\n| diffusers class | options walked | match | refused, diffusers fails too | refused, diffusers runs |")
    print("|---|---|---|---|---|")
    for name, counts in outcome.items():
        total = sum(counts.values())
        print(f"| {name} | {total} | {counts['match']} | {counts['refused, diffusers fails too']} | "
              f"{counts['refused, diffusers runs']} |" + (f" FAILED: {counts['FAILED']}" if counts["FAILED"] else ""))
    for name, cases in refused_runs.items():
        print(f"\n{name} refuses, where diffusers runs: " + "; ".join(sorted(cases)))


if __name__ == "__main__":
    sampler_rows()
    walk_rows()
