"""The one description of a job: what to make, with which model and settings.

Every door builds a Request — the pipelines' diffusers-style calls, `soundsmith.edit`, the CLI's flags, a line of a
prompt file, a file's metadata (`--from`), the service's and batch's JSON — and the engine (engine.py) runs it. It
is checked when it is made (checks.py: every value, before any model is loaded); what depends on the model (the
shortest length, whether it speaks, its Nyquist frequency) is checked by the engine.

    Request(prompt="a dog barking in the rain", duration=5.0, steps=25, seed=0, sampler="dpmpp-2m")
    Request(task="inpaint", input="street.wav", prompt="a car horn", masks=((2.0, 3.5),), seed=0)
    Request(task="vary", input="loop.wav", candidates=4, seed=0)       # the input's CLAP audio embedding, no text
    Request.from_dict({"version": 1, "task": "generate", "prompt": "rain", "steps": 10})

Plain JSON both ways (`to_dict` / `from_dict`, with a version); unknown fields and wrong types are refused with a
message naming the field. None means "the model's default" (steps, guidance, duration) or "not given".
"""

import math
from dataclasses import dataclass, field, fields, replace

from .checks import (check_batch, check_cutoff, check_duration, check_eta, check_guidance, check_name,
                     check_negative, check_positive_int, check_prompt, check_sampler, check_sampler_options,
                     check_seed, check_spans, check_strength, check_text, is_number, is_whole, shown, subject)
from .errors import InvalidArgument

VERSION = 1
TASKS = ("generate", "reconstruct", "transfer", "inpaint", "upscale", "extend", "vary")
AUDIO_TASKS = TASKS[1:]
QUALITIES = ("draft", "standard", "high")
GENERATION = ("prompt", "negative_prompt", "steps", "guidance", "seed", "sampler", "sampler_options", "quality",
              "eta", "candidates", "rank", "ranker", "transcription", "max_new_tokens")
TASK_FIELDS = {  # what each task reads beyond task, model, name and loudness
    "generate": (*GENERATION, "duration"),
    "reconstruct": ("input",),
    "transfer": (*GENERATION, "input", "strength"),
    "inpaint": (*GENERATION, "input", "masks"),
    "upscale": (*GENERATION, "input", "cutoff"),
    "extend": (*GENERATION, "input", "seconds"),
    "vary": (*(name for name in GENERATION if name not in ("prompt", "ranker", "transcription", "max_new_tokens")),
             "input", "duration", "clap"),
}
TASK_SPECIFIC = tuple(dict.fromkeys(name for names in TASK_FIELDS.values() for name in names))
LOUDNESS_RANGE = (-70.0, 0.0)  # LUFS a loudness target may take

# How the Python API names the fields (diffusers' argument names) and how the CLI does (its flags); messages use the
# door's names so a user reads back what they typed.
PYTHON_LABELS = {"steps": "num_inference_steps=", "guidance": "guidance_scale=", "duration": "audio_length_in_s=",
                 "candidates": "num_waveforms_per_prompt=", **{k: f"{k}=" for k in (
                     "prompt", "negative_prompt", "seed", "eta", "sampler", "sampler_options", "transcription",
                     "max_new_tokens", "strength", "seconds", "cutoff", "ranker", "loudness", "clap")}}
CLI_LABELS = {"duration": "-d/--duration {value:g}", "steps": "steps", "guidance": "guidance_scale",
              "candidates": "candidates (-n)", "negative_prompt": "--negative", "seed": "--seed {value}",
              "eta": "--eta {value:g}", "sampler": "--sampler", "transcription": "--transcription",
              "max_new_tokens": "--max-new-tokens", "strength": "--strength {value:g}", "seconds": "--seconds",
              "cutoff": "cutoff", "loudness": "--loudness {value:g}", "quality": "--quality",
              "ranker": "--ranker", "clap": "--clap"}

_TYPES = {  # JSON types of each field, for from_dict's messages
    "version": "int", "task": "str", "model": "str", "prompt": "str or list", "negative_prompt": "str or list",
    "duration": "number", "steps": "int", "guidance": "number", "seed": "int", "sampler": "str",
    "sampler_options": "object", "quality": "str", "eta": "number", "candidates": "int", "rank": "bool",
    "ranker": "str", "transcription": "str or list", "max_new_tokens": "int", "input": "str", "strength": "number",
    "masks": "list", "cutoff": "number", "seconds": "number", "name": "str", "loudness": "number", "clap": "str",
}


@dataclass(frozen=True)
class Request:
    """A job. `task`: generate (text → audio), or an audio task on `input` (see edit.py): vary makes new audio
    like the input, conditioned on its CLAP audio embedding instead of text. Seconds, Hz and LUFS."""

    task: str = "generate"
    model: str | None = None
    prompt: str | tuple[str, ...] | None = None
    negative_prompt: str | tuple[str, ...] | None = None
    duration: float | None = None  # seconds of audio (generate, vary); None: the model's training length
    steps: int | None = None  # sampler steps; None: the model's (or the quality preset's)
    guidance: float | None = None  # classifier-free guidance scale; None: the model's
    seed: int | None = None
    sampler: str | None = None  # a samplers name, a diffusers scheduler class, or "default" (the checkpoint's)
    sampler_options: dict | None = None
    quality: str | None = None  # draft | standard | high: a measured sampler and step count (presets.py)
    eta: float = 0.0
    candidates: int = 1  # waveforms per prompt, ranked best first
    rank: bool = True
    ranker: str | None = None  # a folder with a CLAP audio tower, to rank models whose own CLAP has none
    transcription: str | tuple[str, ...] | None = None  # words to speak (AudioLDM 2 speech checkpoints)
    max_new_tokens: int | None = None  # AudioLDM 2's GPT-2 states
    input: str | None = None  # audio file of an audio task
    strength: float | None = None  # transfer: 0 keeps the input, 1 ignores it (default 0.5)
    masks: tuple[tuple[float, float], ...] | None = None  # inpaint: (start, end) seconds to regenerate
    cutoff: float | None = None  # upscale: Hz above which to regenerate (None: detected)
    seconds: float | None = None  # extend: seconds to add
    name: str | None = None  # output file name (prompt files, batch, the service)
    loudness: float | None = None  # output loudness target, LUFS (None: the model's raw level)
    clap: str | None = None  # vary: a CLAP folder with an audio tower in the checkpoint's space (AudioLDM needs one)
    _labels: dict | None = field(default=None, repr=False, compare=False)  # how the door names fields

    def __post_init__(self):
        labels = self._labels or {}

        def label(name):
            return labels.get(name, name)

        def put(name, value):
            object.__setattr__(self, name, value)

        if self.task not in TASKS:
            raise InvalidArgument(f"task={self.task!r} is not allowed (allowed: {', '.join(TASKS)})")
        for name in ("model", "input", "ranker", "clap"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise InvalidArgument(f"{shown(label(name), value)} is not allowed: give a non-empty string")
            if value is not None:
                check_text(value, label(name))
        for name in TASK_SPECIFIC:  # given only where it applies
            if name not in TASK_FIELDS[self.task] and getattr(self, name) != _DEFAULTS[name]:
                hint = ": the length follows the input" if name == "duration" else ""
                hint += f" (use {subject(label('seconds'))})" if name == "duration" and self.task == "extend" else ""
                if self.task == "vary" and name in ("prompt", "transcription"):
                    hint = ": vary is conditioned on the input audio's CLAP embedding, not on text"
                raise InvalidArgument(f"{subject(label(name))} does not apply to {self.task}{hint}")

        prompts = check_prompt(_listed(self.prompt), label("prompt"))
        if self.task in AUDIO_TASKS and self.task not in ("reconstruct", "vary"):
            if self.prompt is None and self.task != "upscale":
                raise InvalidArgument(f"{self.task} needs a prompt: what the audio should become")
            if prompts is not None and (not isinstance(self.prompt, str)):
                raise InvalidArgument(f"{shown(label('prompt'), self.prompt)}: give one prompt for the one input "
                                      f"audio")
        put("prompt", _frozen(self.prompt))
        batch = len(prompts) if prompts else 1
        check_negative(_listed(self.negative_prompt), batch, label("negative_prompt"))
        put("negative_prompt", _frozen(self.negative_prompt))
        if self.transcription is not None:
            check_prompt(_listed(self.transcription), label("transcription"))
            put("transcription", _frozen(self.transcription))
        if self.duration is not None:
            put("duration", check_duration(self.duration, 0.0, label("duration")))
        for name in ("steps", "max_new_tokens"):
            if getattr(self, name) is not None:
                put(name, check_positive_int(label(name), getattr(self, name)))
        put("candidates", check_batch(label("candidates"), self.candidates, batch))
        if self.guidance is not None:
            put("guidance", check_guidance(self.guidance, label("guidance")))
        put("eta", check_eta(self.eta, label("eta")))
        put("seed", check_seed(self.seed, label("seed")))
        check_sampler(self.sampler, label("sampler"))
        if self.sampler_options is not None:
            put("sampler_options", check_sampler_options(self.sampler_options, label("sampler_options")))
        if self.quality is not None and self.quality not in QUALITIES:
            raise InvalidArgument(f"{shown(label('quality'), self.quality)} is not allowed "
                                  f"(allowed: {', '.join(QUALITIES)})")
        if not isinstance(self.rank, bool):
            raise InvalidArgument(f"{shown(label('rank'), self.rank)} is not allowed: give true or false")
        if self.strength is not None:
            put("strength", check_strength(self.strength, label("strength")))
        if self.task == "inpaint" and self.masks is None:
            raise InvalidArgument("inpaint needs masks: the (start, end) seconds to regenerate")
        if self.masks is not None:
            put("masks", tuple(check_spans(self.masks)))
        if self.cutoff is not None:
            put("cutoff", check_cutoff(self.cutoff, label=label("cutoff")))
        if self.task == "extend":
            if self.seconds is None:
                raise InvalidArgument("extend needs seconds: how much audio to add")
            put("seconds", check_duration(self.seconds, 0.0, label("seconds")))
        if self.name is not None:
            check_name(self.name, label("name"))
        if self.loudness is not None and (not is_number(self.loudness) or not math.isfinite(self.loudness)
                                          or not LOUDNESS_RANGE[0] <= self.loudness <= LOUDNESS_RANGE[1]):
            raise InvalidArgument(f"{shown(label('loudness'), self.loudness)} is not allowed: give a target between "
                                  f"{LOUDNESS_RANGE[0]:g} and {LOUDNESS_RANGE[1]:g} LUFS, or off")
        if self.loudness is not None:
            put("loudness", float(self.loudness))

    # ---- views ------------------------------------------------------------------------------------------------
    @property
    def prompts(self) -> list[str] | None:
        return _listed(self.prompt)

    @property
    def negative_prompts(self) -> list[str] | None:
        return _listed(self.negative_prompt)

    @property
    def transcriptions(self) -> list[str] | None:
        return _listed(self.transcription)

    def replace(self, **changes) -> "Request":
        """A copy with some fields changed, checked again."""
        return replace(self, **changes)

    # ---- JSON -------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Plain JSON: {"version": 1, "task": …, and every field that is not None}."""
        out = {"version": VERSION}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.startswith("_") or value is None:
                continue
            out[f.name] = _plain(value)
        return out

    @classmethod
    def from_dict(cls, data, labels: dict | None = None, where: str = "") -> "Request":
        """A request from plain JSON (to_dict's shape; "version" optional). Unknown fields, wrong types and a missing
        prompt are refused with one line naming the field; `where` prefixes it (e.g. "jobs.jsonl line 3: ")."""
        try:
            return cls(**_fields_of(data), _labels=labels)
        except InvalidArgument as exc:
            raise InvalidArgument(f"{where}{exc}") from None

    @classmethod
    def from_metadata(cls, metadata: dict, source: str = "the file") -> "Request":
        """The request stored in the metadata of a file soundsmith wrote (audio.read_metadata), including files
        written before requests had a version (their flat keys are the same names)."""
        if not isinstance(metadata, dict) or "soundsmith" not in metadata or (
                "prompt" not in metadata and "command" not in metadata):
            raise InvalidArgument(f"{source} has no soundsmith metadata: only files soundsmith wrote can be made again")
        data = {k: v for k, v in metadata.items() if k in _TYPES}
        if "version" not in metadata:  # before version 1: "command" named the task, masks were "START-END" text
            data["task"] = metadata.get("command", "generate")
            if isinstance(data.get("masks"), list) and all(isinstance(m, str) for m in data["masks"]):
                from .checks import parse_span

                data["masks"] = [list(parse_span(m)) for m in data["masks"]]
            keep = (*TASK_FIELDS.get(data["task"], ()), "task", "model")
            data = {k: v for k, v in data.items() if k in keep}
        return cls.from_dict(data, where=f"{source}: ")


_DEFAULTS = {f.name: f.default for f in fields(Request)}


def _listed(value) -> list | None:
    if value is None or isinstance(value, str):
        return None if value is None else [value]
    return list(value) if isinstance(value, (list, tuple)) else value


def _frozen(value):
    return tuple(value) if isinstance(value, list) else value


def _plain(value):
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _fields_of(data) -> dict:
    if not isinstance(data, dict):
        raise InvalidArgument(f"expected a JSON object with a \"prompt\", got {type(data).__name__}")
    unknown = sorted(k for k in data if k not in _TYPES)
    if unknown:
        raise InvalidArgument(f"unknown key {unknown[0]!r} (allowed: {', '.join(_TYPES)})")
    version = data.get("version", VERSION)
    if not is_whole(version) or not 0 <= version <= VERSION:
        raise InvalidArgument(f"version={version!r} is not one this soundsmith reads (1)")
    out = {}
    for key, value in data.items():
        if key == "version" or value is None:
            continue
        if not _type_ok(key, value):
            raise InvalidArgument(f"{key}={value!r} has the wrong type (expected {_TYPES[key]})")
        out[key] = value
    task = out.get("task", "generate")
    prompt = out.get("prompt")
    if task in ("generate", "transfer", "inpaint", "extend") and (not isinstance(prompt, (str, list)) or not prompt
                                                                or isinstance(prompt, str) and not prompt.strip()):
        raise InvalidArgument("\"prompt\" is missing or empty")
    if task in AUDIO_TASKS and "input" not in out:
        raise InvalidArgument(f"\"input\" is missing: {task} needs an audio file")
    if "masks" in out:
        out["masks"] = tuple(tuple(m) if isinstance(m, list) else m for m in out["masks"])
    return out


def _type_ok(key: str, value) -> bool:
    kind = _TYPES[key]
    if kind == "str":
        return isinstance(value, str)
    if kind == "int":
        return is_whole(value)
    if kind == "number":
        return is_number(value)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "object":
        return isinstance(value, dict)
    if kind == "str or list":
        return isinstance(value, str) or isinstance(value, list) and all(isinstance(v, str) for v in value)
    return isinstance(value, list)  # masks: checked by check_spans


__all__ = ["AUDIO_TASKS", "CLI_LABELS", "PYTHON_LABELS", "QUALITIES", "Request", "TASKS", "VERSION"]
