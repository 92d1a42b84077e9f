"""Quality presets: a sampler and a step count per family, for `--quality draft | standard | high`.

Chosen from bench/samplers.py (mel error against what 200 DDIM steps give, per UNet evaluation; see
bench/RESULTS.md): DPM-Solver++ 2M reaches a given error in the fewest evaluations, so draft and standard use it;
high is the reference's quality setting.
"""

from .errors import InvalidArgument

QUALITIES = ("draft", "standard", "high")

PRESETS: dict[str, dict[str, tuple[str, int]]] = {
    "AudioLDMPipeline": {"draft": ("dpmpp-2m", 10), "standard": ("dpmpp-2m", 25), "high": ("ddim", 200)},
    "MusicLDMPipeline": {"draft": ("dpmpp-2m", 10), "standard": ("dpmpp-2m", 25), "high": ("ddim", 200)},
    "AudioLDM2Pipeline": {"draft": ("dpmpp-2m", 15), "standard": ("dpmpp-2m", 30), "high": ("ddim", 200)},
}


def preset(pipeline_class: str, quality: str) -> tuple[str, int]:
    """(sampler, steps) for a family's quality level."""
    if quality not in QUALITIES:
        raise InvalidArgument(f"quality={quality!r} is not allowed (allowed: {', '.join(QUALITIES)})")
    return PRESETS[pipeline_class][quality]
