"""Every rule a job's values must follow, in one place: the Request (request.py) and the engine (engine.py) call
these, whatever door the job came through (Python, CLI, prompt files, the service, batch).

Each check returns the value, normalised, or raises InvalidArgument with one line that names the value and says
what is allowed. `label` is how the door names the field: a plain name gives "name=value" ("steps=0"); a name
ending in "=" is the Python keyword style ("num_inference_steps=0"); a name with "{value}" is a template
("--strength {value:g}"). `subject(label)` is the name alone, for messages about the field rather than its value.
"""

import math
import numbers

from .errors import InvalidArgument

MAX_SECONDS = 3600.0  # one job makes at most an hour of audio
MAX_BATCH = 32  # waveforms per call (prompts × candidates): bounds the memory of one call, whatever -n says
MAX_TEXT = 2000  # characters of a prompt, negative prompt or transcription (the text towers read 77-512 tokens)
OUTPUT_TYPES = ("np", "pt", "latent")
SEED_LIMIT = 2 ** 63


def shown(label: str, value) -> str:
    """How a door writes `field=value` in a message (see the module docstring)."""
    if "{value" in label:
        return label.format(value=value)
    return f"{label}{value!r}" if label.endswith("=") else f"{label}={value!r}"


def given(label: str, value) -> str:
    """An argument as the user gave it, for an error about what it names: `ranker='x'` (Python) or `--ranker x`."""
    return f"{label}{value!r}" if label.endswith("=") else f"{label} {value}"


def subject(label: str) -> str:
    """The field's name alone: "--strength {value:g}" → "--strength", "transcription=" stays as it is."""
    return label.split(" {")[0]


def is_number(value) -> bool:
    """A real number, numpy's included (they register as numbers.Real), not a bool."""
    return not isinstance(value, bool) and isinstance(value, numbers.Real)


def is_whole(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, numbers.Integral)


# ---- text -------------------------------------------------------------------------------------------------------

def check_text(text: str, label: str) -> str:
    """A string a tokenizer can read: valid Unicode (no lone surrogates, no NUL), at most MAX_TEXT characters."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgument(f"{subject(label)} {_clip(text)!r} is not valid Unicode text (it holds a lone "
                              f"surrogate, e.g. from undecodable bytes): give UTF-8 text") from None
    if "\0" in text:
        raise InvalidArgument(f"{subject(label)} {_clip(text)!r} contains a NUL character: give plain text")
    if len(text) > MAX_TEXT:
        raise InvalidArgument(f"{subject(label)} is {len(text)} characters long: give at most {MAX_TEXT}")
    return text


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def check_prompt(prompt, label: str = "prompt") -> list[str] | None:
    """None, a non-empty string or a non-empty list of non-empty strings → list (or None)."""
    if prompt is None:
        return None
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, (list, tuple)) or not all(isinstance(p, str) for p in prompts):
        raise InvalidArgument(f"{shown(label, prompt)} is not allowed: give a string or a list of strings")
    if not prompts:
        raise InvalidArgument(f"{shown(label, [])} is empty: give at least one description of the sound")
    for p in prompts:
        check_text(p, label)
        if not p.strip():
            raise InvalidArgument(f"{shown(label, p)} is empty: describe the sound, e.g. 'a dog barking in the rain'")
    return list(prompts)


def check_negative(negative_prompt, batch: int, label: str = "negative_prompt") -> list[str] | None:
    """A string applies to every prompt; a list needs one entry per prompt."""
    if negative_prompt is None:
        return None
    if isinstance(negative_prompt, str):
        return [check_text(negative_prompt, label)] * batch
    if not isinstance(negative_prompt, (list, tuple)) or not all(isinstance(p, str) for p in negative_prompt):
        raise InvalidArgument(f"{shown(label, negative_prompt)} is not allowed: give a string or a list of strings")
    if len(negative_prompt) != batch:
        raise InvalidArgument(f"{subject(label).rstrip('=')} has {len(negative_prompt)} entries but there are {batch} "
                              f"prompts: give one negative prompt per prompt, or a single string for all")
    return [check_text(p, label) for p in negative_prompt]


def check_name(name, label: str = "name") -> str:
    """An output name: a plain file name (no folders), at most 200 characters."""
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name in (".", "..") or "\0" in name:
        raise InvalidArgument(f"output name {name!r} is not allowed (a plain file name without folders)")
    check_text(name, label)
    if len(name.encode("utf-8")) > 200:
        raise InvalidArgument(f"output name {_clip(name)!r} is {len(name.encode('utf-8'))} bytes long: give at "
                              f"most 200 (file systems allow 255 with the extension and numbering)")
    return name


# ---- numbers ----------------------------------------------------------------------------------------------------

def check_duration(seconds, minimum: float, label: str = "audio_length_in_s") -> float:
    if not is_number(seconds):
        raise InvalidArgument(f"{shown(label, seconds)} is not a number: give seconds, e.g. 10")
    if not math.isfinite(seconds) or seconds < minimum or seconds > MAX_SECONDS or seconds <= 0:
        raise InvalidArgument(f"{shown(label, seconds)} is not allowed: give a duration between {minimum:g} "
                              f"and {MAX_SECONDS:g} seconds")
    return float(seconds)


def check_positive_int(label: str, value) -> int:
    if not is_whole(value) or value < 1:
        raise InvalidArgument(f"{shown(label, value)} is not allowed: give a whole number ≥ 1")
    return int(value)


def check_batch(label: str, candidates, prompts: int = 1) -> int:
    """Waveforms per prompt: ≥ 1, and prompts × candidates ≤ MAX_BATCH per call."""
    candidates = check_positive_int(label, candidates)
    if candidates * prompts > MAX_BATCH:
        raise InvalidArgument(f"{shown(label, candidates)} is not allowed: one call makes at most {MAX_BATCH} "
                              f"waveforms ({prompts} prompt(s) × candidates); split the job")
    return candidates


def check_guidance(guidance_scale, label: str = "guidance_scale") -> float:
    if not is_number(guidance_scale) or not math.isfinite(guidance_scale) or not 0 <= guidance_scale <= 1e4:
        raise InvalidArgument(f"{shown(label, guidance_scale)} is not allowed: give a number ≥ 0 and ≤ 10000 "
                              f"(1 or less turns classifier-free guidance off)")
    return float(guidance_scale)


def check_eta(eta, label: str = "eta") -> float:
    if not is_number(eta) or not math.isfinite(eta) or not 0 <= eta <= 1:
        raise InvalidArgument(f"{shown(label, eta)} is not allowed: give a number between 0 (deterministic DDIM) "
                              f"and 1")
    return float(eta)


def check_seed(seed, label: str = "seed") -> int | None:
    if seed is None:
        return None
    if not is_whole(seed) or not 0 <= seed < SEED_LIMIT:
        raise InvalidArgument(f"{shown(label, seed)} is not allowed: give a whole number between 0 and 2^63 − 1")
    return int(seed)


def check_output_type(output_type) -> str:
    if output_type not in OUTPUT_TYPES:
        raise InvalidArgument(f"output_type={output_type!r} is not allowed (allowed: {', '.join(OUTPUT_TYPES)})")
    return output_type


def check_strength(strength, label: str = "strength") -> float:
    if not is_number(strength) or not 0.0 <= strength <= 1.0:
        raise InvalidArgument(f"{shown(label, strength)} is not allowed: give a number between 0 (keep the input) "
                              f"and 1 (ignore it)")
    return float(strength)


def check_cutoff(cutoff, nyquist: float | None = None, label: str = "cutoff") -> float:
    """A frequency in Hz, below the model's Nyquist frequency when it is known."""
    top = nyquist if nyquist is not None else 1e6
    if not is_number(cutoff) or not math.isfinite(cutoff) or not 0 < cutoff < top:
        where = f"the model's Nyquist frequency, {nyquist:g} Hz" if nyquist is not None else "Nyquist"
        raise InvalidArgument(f"{shown(label, cutoff)} Hz is not allowed: give a frequency between 0 and {where}")
    return float(cutoff)


def check_spans(masks, duration: float | None = None) -> list[tuple[float, float]]:
    """(start, end) seconds, or a list of them → sorted spans inside [0, duration] that do not overlap."""
    if isinstance(masks, tuple) and len(masks) == 2 and not isinstance(masks[0], (tuple, list)):
        masks = [masks]
    if not isinstance(masks, (list, tuple)) or not masks:
        raise InvalidArgument(f"masks={masks!r}: give (start, end) in seconds, or a list of such spans")
    spans = []
    for span in masks:
        if not isinstance(span, (tuple, list)) or len(span) != 2 or not all(
                is_number(v) and math.isfinite(v) for v in span):
            raise InvalidArgument(f"mask {span!r} is not a (start, end) pair of seconds")
        start, end = float(span[0]), float(span[1])
        if not 0.0 <= start < end:
            raise InvalidArgument(f"mask {start:g}-{end:g} is not allowed: need 0 ≤ start < end (seconds)")
        if end > MAX_SECONDS:
            raise InvalidArgument(f"mask {start:g}-{end:g} is not allowed: audio is at most {MAX_SECONDS:g} s long")
        if duration is not None and end > duration + 1e-6:
            raise InvalidArgument(f"mask {start:g}-{end:g} ends after the audio ({duration:g} s)")
        spans.append((start, end))
    spans.sort()
    for (s0, e0), (s1, e1) in zip(spans, spans[1:]):
        if s1 < e0:
            raise InvalidArgument(f"masks {s0:g}-{e0:g} and {s1:g}-{e1:g} overlap: give one span "
                                  f"{s0:g}-{max(e0, e1):g} instead")
    return spans


def parse_span(text: str) -> tuple[float, float]:
    """'2.0-3.5' → (2.0, 3.5) seconds."""
    start, sep, end = text.strip().partition("-")
    try:
        if not sep:
            raise ValueError
        return float(start), float(end)
    except ValueError:
        raise InvalidArgument(f"--mask {text!r} is not START-END in seconds, e.g. 2.0-3.5") from None


# ---- samplers ---------------------------------------------------------------------------------------------------

def check_sampler(sampler, label: str = "sampler") -> str | None:
    """A sampler short name or diffusers scheduler class (schedules.SAMPLERS / DEFAULTS), "default" or None for the
    checkpoint's own scheduler. Checked by name only: the checkpoint's config is checked when the plan is built."""
    from .scheduler_config import DEFAULTS, SAMPLERS, _refuse as refuse

    if sampler is None or sampler == "default":
        return sampler
    if not isinstance(sampler, str) or (sampler not in SAMPLERS and sampler not in DEFAULTS):
        raise refuse(subject(label).rstrip("="), sampler, ["default", *SAMPLERS, *DEFAULTS])
    return sampler


def check_sampler_options(options, label: str = "sampler_options") -> dict:
    if options is None:
        return {}
    if not isinstance(options, dict) or not all(isinstance(k, str) for k in options):
        raise InvalidArgument(f"{shown(label, options)} is not allowed: give a dict of scheduler options, e.g. "
                              f"{{\"use_karras_sigmas\": true}}")
    return dict(options)
