"""Quality presets: a sampler and a step count per family, for `--quality draft | standard | high`.

Chosen from `bench/samplers.py` on the trained demo model (table in bench/RESULTS.md): the mel's relative error
against what the reference's quality setting (DDIM, 200 steps) gives, median over prompts. DPM-Solver++ 2M reaches
2.9 % at 10 UNet evaluations, which DDIM needs about 50 for (3.9 %), so draft uses it; DEIS is the most accurate
from 15 steps on (1.2 % at 25), so standard uses it; high is the reference's own setting. Every published
checkpoint shares the demo's noise schedule (scaled-linear betas 0.0015–0.0195, 1000 steps, ε-prediction), so the
same choice holds for each family.
"""

from .errors import InvalidArgument

QUALITIES = ("draft", "standard", "high")

PRESETS: dict[str, dict[str, tuple[str, int]]] = {
    "AudioLDMPipeline": {"draft": ("dpmpp-2m", 10), "standard": ("deis", 25), "high": ("ddim", 200)},
    "MusicLDMPipeline": {"draft": ("dpmpp-2m", 10), "standard": ("deis", 25), "high": ("ddim", 200)},
    "AudioLDM2Pipeline": {"draft": ("dpmpp-2m", 10), "standard": ("deis", 25), "high": ("ddim", 200)},
}


def preset(pipeline_class: str, quality: str) -> tuple[str, int]:
    """(sampler, steps) for a family's quality level."""
    if quality not in QUALITIES:
        raise InvalidArgument(f"quality={quality!r} is not allowed (allowed: {', '.join(QUALITIES)})")
    return PRESETS[pipeline_class][quality]
