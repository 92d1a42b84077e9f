"""diffusers' scheduler classes by name, each carrying only its configuration, so that a diffusers script's

    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)

runs here with one import changed (`from soundsmith.schedulers import DPMSolverMultistepScheduler`). An object of
these classes is a class name and a config, built by the rules of diffusers' `from_config` / `__init__` (defaults for
the fields not given, `_use_default_values`, the keys of other classes kept for the next `from_config`); nothing
else. The pipeline samples with soundsmith's sampler of that name (samplers.py), configured as the object says
(scheduler_config.resolve); values soundsmith does not reproduce are refused when the object is made, in one line.
There is no `set_timesteps` / `step`: the engine runs the loop (schedules.py builds what set_timesteps would hold).
"""

import json
import math
from collections.abc import Mapping
from pathlib import Path

from .errors import InvalidArgument
from .scheduler_config import _REMAP, DEFAULTS, _refuse, resolve


class SchedulerConfig(dict):
    """A read-only config, like diffusers' FrozenDict (a dict, so diffusers' own from_config takes it too):
    `config["solver_order"]` or `config.solver_order`."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"the scheduler config has no {name!r}") from None

    def _read_only(self, *args, **kwargs):
        raise AttributeError("a scheduler config is read-only: make a new scheduler with from_config(config, "
                             "option=…)")

    __setattr__ = __setitem__ = __delitem__ = _read_only
    update = pop = popitem = setdefault = clear = _read_only

    def __repr__(self) -> str:
        return f"SchedulerConfig({json.dumps(dict(self), default=str)})"


def build_config(cls: str, config: Mapping, overrides: dict) -> dict:
    """The config diffusers' `<cls>.from_config(config, **overrides)` holds: the class's fields from `overrides`, else
    from `config` (unless `config` recorded them as defaults in `_use_default_values`), else the class's defaults
    (listed in `_use_default_values`); every other key of `config` kept as it is (the next class may read it), and
    `_class_name` renamed to `cls` when present. Remapped algorithm / solver names as the class's __init__ writes
    them. Unknown overrides are refused (diffusers ignores them)."""
    defaults = DEFAULTS[cls]
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise _refuse(f"{cls} option", unknown[0], list(defaults))
    given_defaults = config.get("_use_default_values", [])
    kept = {k: v for k, v in config.items() if k not in given_defaults and k != "_use_default_values"}
    fields = {k: overrides[k] if k in overrides else kept[k] for k in defaults if k in overrides or k in kept}
    out = {k: fields.get(k, v) for k, v in defaults.items()}
    if len(fields) < len(defaults):
        out["_use_default_values"] = [k for k in defaults if k not in fields]
    for key, mapping in _REMAP.get(cls, {}).items():
        if isinstance(out.get(key), str) and out[key] in mapping:
            out[key] = mapping[out[key]]
    hidden = {k: v for k, v in kept.items() if k not in fields}
    if "_class_name" in hidden:
        hidden["_class_name"] = cls
    return {**out, **hidden}


class Scheduler:
    """A diffusers scheduler class name and its config. Subclasses are named as diffusers names them."""

    def __init__(self, **options):
        """Like diffusers' constructor: the class's defaults with `options` on top (keys of other classes refused)."""
        self._config = SchedulerConfig(build_config(type(self).__name__, {}, options))
        check(type(self).__name__, self._config)

    @classmethod
    def from_config(cls, config: Mapping, **overrides) -> "Scheduler":
        """The scheduler diffusers' `from_config(config, **overrides)` makes: any scheduler's config (a pipeline's
        `scheduler.config`, a scheduler_config.json's contents) with this class's fields picked from it."""
        if isinstance(config, (str, Path)) or not isinstance(config, Mapping):
            raise InvalidArgument(f"{cls.__name__}.from_config takes a config (a mapping such as "
                                  f"pipe.scheduler.config), not {type(config).__name__}; for a folder use "
                                  f"{cls.__name__}.from_pretrained")
        scheduler = cls.__new__(cls)
        scheduler._config = SchedulerConfig(build_config(cls.__name__, config, overrides))
        check(cls.__name__, scheduler._config)
        return scheduler

    @classmethod
    def from_pretrained(cls, name_or_path, subfolder: str | None = None, **overrides) -> "Scheduler":
        """From a folder holding scheduler_config.json (or a pipeline folder / model name with subfolder="scheduler")."""
        from . import checkpoints

        folder = checkpoints.resolve(str(name_or_path))
        if subfolder:
            folder = folder / subfolder
        return cls.from_config(checkpoints.read_json(folder / "scheduler_config.json"), **overrides)

    @property
    def config(self) -> SchedulerConfig:
        return self._config

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        if name in self._config:  # diffusers still answers scheduler.solver_order (deprecated) with the config's
            return self._config[name]
        raise AttributeError(f"{type(self).__name__}.{name}: soundsmith's schedulers carry a config only; the "
                             f"pipeline runs the sampler itself, so set_timesteps/step and the other stateful parts "
                             f"of diffusers' schedulers do not exist here")

    def __repr__(self) -> str:
        return f"{type(self).__name__} {json.dumps(dict(self._config), default=str, indent=2)}"


def check(cls: str, config: Mapping) -> None:
    """Refuse now, in one line, a config whose sampler soundsmith would refuse when it runs."""
    resolve(dict(config), cls, {})


class DDIMScheduler(Scheduler):
    """`ddim`: DDIM (Song et al. 2021), the family's checkpoints' own."""


class DDPMScheduler(Scheduler):
    """`ddpm`: ancestral DDPM (Ho et al. 2020)."""


class PNDMScheduler(Scheduler):
    """`pndm` (with the Runge–Kutta warm-up unless skip_prk_steps) / `plms` (Liu et al. 2022)."""


class LMSDiscreteScheduler(Scheduler):
    """`lms`: linear multistep in sigma (Karras et al. 2022's k-diffusion)."""


class EulerDiscreteScheduler(Scheduler):
    """`euler`."""


class EulerAncestralDiscreteScheduler(Scheduler):
    """`euler-a`."""


class HeunDiscreteScheduler(Scheduler):
    """`heun` (Karras et al. 2022, algorithm 2)."""


class KDPM2DiscreteScheduler(Scheduler):
    """`kdpm2`: DPM-Solver-2 in k-diffusion's form."""


class KDPM2AncestralDiscreteScheduler(Scheduler):
    """`kdpm2-a`."""


class DPMSolverMultistepScheduler(Scheduler):
    """`dpmpp-2m` / `dpmpp-2m-sde` (Lu et al. 2022, DPM-Solver++)."""


class DPMSolverSinglestepScheduler(Scheduler):
    """`dpmpp-2s`."""


class DPMSolverSDEScheduler(Scheduler):
    """`dpm-sde`."""


class DEISMultistepScheduler(Scheduler):
    """`deis` (Zhang & Chen 2023)."""


class UniPCMultistepScheduler(Scheduler):
    """`unipc` (Zhao et al. 2023)."""


CLASSES: dict[str, type[Scheduler]] = {c.__name__: c for c in Scheduler.__subclasses__()}
assert set(CLASSES) == set(DEFAULTS), "one class per scheduler_config.DEFAULTS entry"


def of_checkpoint(scheduler_config: dict) -> Scheduler:
    """The scheduler a pipeline folder's scheduler_config.json describes, as diffusers loads it."""
    name = scheduler_config.get("_class_name")
    if name not in CLASSES:
        raise _refuse("scheduler_config _class_name", name, list(CLASSES))
    return CLASSES[name].from_config(scheduler_config)


def class_and_config(scheduler) -> tuple[str, dict]:
    """(diffusers class name, config) of one of these schedulers, or of any object shaped like a diffusers
    scheduler (a `.config` mapping, its class named as one of CLASSES); anything else is refused in one line."""
    name = type(scheduler).__name__
    config = getattr(scheduler, "config", None)
    if name not in CLASSES or not isinstance(config, Mapping):
        raise InvalidArgument(f"pipe.scheduler = {name} is not allowed: give one of soundsmith.schedulers' classes "
                              f"({', '.join(CLASSES)}), e.g. DPMSolverMultistepScheduler.from_config("
                              f"pipe.scheduler.config)")
    return name, dict(config)


def as_sampler(checkpoint_config: dict, scheduler) -> tuple[str, dict]:
    """(sampler, sampler_options) that make the engine sample as `scheduler` says, relative to the checkpoint's own
    scheduler_config: the class name and the resolved fields whose values differ from what the checkpoint's config
    gives that class. A Request holding these reproduces the run on a freshly loaded pipeline."""
    name, config = class_and_config(scheduler)
    want = resolve(config, name, {})[2]
    have = resolve(checkpoint_config, name, {})[2]
    options = {k: v for k, v in want.items() if k in DEFAULTS[name] and not _same(have.get(k), v)}
    if resolve(checkpoint_config, name, options)[2] != want:
        odd = sorted(k for k in want if not _same(want[k], have.get(k)) and k not in options)
        raise InvalidArgument(f"pipe.scheduler = {name} differs from the checkpoint's scheduler in "
                              f"{', '.join(odd) or 'a field'}, which {name} does not declare; give it in the "
                              f"checkpoint's scheduler_config.json instead")
    return name, options


def _same(a, b) -> bool:
    """Equal values of the same type (False is not 0; NaN equals NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


__all__ = ["CLASSES", "Scheduler", "SchedulerConfig", *CLASSES]
