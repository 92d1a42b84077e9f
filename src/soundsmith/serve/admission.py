"""Whether a submitted request may run here, and the request as it is stored.

A body is first a soundsmith.Request (request.py: its own checks and one-line messages), then this service's
rules: only served models (and rankers), audio input only as an upload id, the per-request caps, and a seed fixed
now when the client gave none, so a job run again after a restart makes the same sound. Every refusal is an
InvalidArgument with one line naming the field, which the app answers with 422.
"""

import hashlib
import json
import re
import secrets

from ..checks import check_spans
from ..errors import InvalidArgument
from ..presets import preset
from ..request import AUDIO_TASKS, TASK_FIELDS, Request
from .catalog import Model
from .config import Settings
from .store import UPLOAD_ID, Store

SEED_RANGE = 2 ** 31  # fresh seeds are drawn below this (as the CLI draws them)
_UPLOAD = re.compile(UPLOAD_ID)


def admit(body, settings: Settings, models: dict[str, Model], store: Store) -> Request:
    """A JSON body → the Request to queue: checked, model filled in (the first served one by default), seed
    fixed. Raises InvalidArgument."""
    request = Request.from_dict(body)
    name = request.model if request.model is not None else next(iter(models))
    if name not in models:
        raise InvalidArgument(f"model={name!r} is not served here (served: {', '.join(models)})")
    model = models[name]
    for field in ("ranker", "clap"):  # a CLAP folder on this machine is only ever a served model's
        value = getattr(request, field)
        if value is not None and (value not in models or not models[value].ranks):
            rankers = [m.name for m in models.values() if m.ranks]
            raise InvalidArgument(f"{field}={value!r} is not allowed: give a served model with a CLAP audio tower "
                                  f"({', '.join(rankers) if rankers else 'none is served'})")
    upload = None
    if request.task in AUDIO_TASKS:
        upload = store.get_upload(request.input) if _UPLOAD.fullmatch(request.input) else None
        if upload is None:
            raise InvalidArgument(f"input={request.input[:80]!r} is not an upload id: POST the audio to /v1/uploads "
                                  f"and give the id it answers")
        if upload.seconds < model.min_seconds:
            raise InvalidArgument(f"input {request.input} is {upload.seconds:g} s long: the model needs at least "
                                  f"{model.min_seconds:g} s")
        if upload.seconds > settings.max_duration:
            raise InvalidArgument(f"input {request.input} is {upload.seconds:g} s long: this server takes at most "
                                  f"{settings.max_duration:g} s")
        if request.masks is not None:
            check_spans(request.masks, upload.seconds)
    check_caps(request, model, settings, upload.seconds if upload is not None else None)
    changes = {"model": name}
    if request.seed is None and "seed" in TASK_FIELDS[request.task]:
        changes["seed"] = secrets.randbelow(SEED_RANGE)
    return request.replace(**changes)


def check_caps(request: Request, model: Model, settings: Settings, input_seconds: float | None = None) -> None:
    """duration / seconds / steps / candidates within the service's caps, the model's defaults counted where the
    request leaves them out."""
    if request.task in ("generate", "vary"):
        seconds = model.default_seconds if request.duration is None else request.duration
        if not model.min_seconds <= seconds <= settings.max_duration:
            raise InvalidArgument(f"duration={seconds:g} is not allowed: give between {model.min_seconds:g} s (the "
                                  f"model's shortest) and {settings.max_duration:g} s (this server's cap)")
    if request.task == "extend" and request.seconds < model.min_seconds:
        raise InvalidArgument(f"seconds={request.seconds:g} is not allowed: the model adds at least "
                              f"{model.min_seconds:g} s")
    if request.task == "extend" and request.seconds + (input_seconds or 0.0) > settings.max_duration:
        raise InvalidArgument(f"seconds={request.seconds:g} is not allowed: the input and its extension may last "
                              f"at most {settings.max_duration:g} s here")
    if request.task != "reconstruct":
        steps = request.steps
        if steps is None:
            steps = preset(model.pipeline_class, request.quality)[1] if request.quality else model.default_steps
        if steps > settings.max_steps and request.steps is not None:
            raise InvalidArgument(f"steps={steps} is not allowed: this server runs at most {settings.max_steps} "
                                  f"steps per job")
        if steps > settings.max_steps:
            source = f"quality {request.quality!r}" if request.quality else f"model {model.name!r}"
            raise InvalidArgument(f"steps: the {source} runs {steps} by default, more than the {settings.max_steps} "
                                  f"this server allows per job: give steps ≤ {settings.max_steps}")
    waveforms = request.candidates * len(request.prompts or [None])
    if waveforms > settings.max_candidates:
        raise InvalidArgument(f"candidates={request.candidates} is not allowed: this server makes at most "
                              f"{settings.max_candidates} waveforms per job (prompts × candidates)")


def digest(body) -> str:
    """What an idempotency key is bound to: the body as canonical JSON."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
