"""Typed reads of a model folder's config files: every value is checked before a network is built from it.

A config.json is data from outside: any JSON value can sit in any field (a string for a channel count, null for a
list, NaN for a noise level, 10^18 for a layer count). The config classes (models/*.py `from_dict`) and the loader
read every key through these functions, so a broken folder fails at load with one CheckpointError line naming the
file, the key, the value and what is allowed — never later as a TypeError inside a layer, a NaN waveform or an
allocation of terabytes.

Bounds are far beyond every checkpoint of the family (the largest UNet has 4 blocks of at most 1280 channels, the
vocoders 4–5 upsampling stages) and only there to keep a hostile config from building millions of modules.
"""

import math
import re

from .errors import CheckpointError

MAX_WIDTH = 2**16  # channels, embedding widths, heads, kernel sizes
MAX_REPEAT = 64  # blocks, layers per block, transformer depth, upsampling stages: each is a module built at load
MAX_TRAIN_TIMESTEPS = 100_000  # the family trains on 1000
MAX_TRANSFORMERS_INT = 2**24  # any integer in a transformers model config (the largest real one: a 250k vocabulary)
MAX_TRANSFORMERS_REPEAT = 256  # layer / block / flow / depth counts in a transformers model config

REQUIRED = object()


def show(value) -> str:
    """repr of a config value, cut to one short line."""
    text = " ".join(repr(value).split())
    return text if len(text) <= 60 else text[:57] + "..."


def is_whole(value) -> bool:
    """A JSON whole number: an int (not a bool) or an integral finite float such as 16000.0."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value) and value.is_integer()


def is_number(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def get(cfg: dict, key: str, where: str, default=REQUIRED):
    if key in cfg:
        return cfg[key]
    if default is REQUIRED:
        raise CheckpointError(f"{where}: {key} is missing")
    return default


def refuse(where: str, key: str, value, allowed: str) -> CheckpointError:
    return CheckpointError(f"{where}: {key}={show(value)} is not allowed: {allowed}")


def integer(cfg: dict, key: str, where: str, default=REQUIRED, *, low: int = 1, high: int = MAX_WIDTH,
            nullable: bool = False) -> int | None:
    """A whole number in [low, high] (None too when nullable)."""
    value = get(cfg, key, where, default)
    if value is None and nullable:
        return None
    if is_whole(value) and low <= value <= high:
        return int(value)
    raise refuse(where, key, value, f"give a whole number from {low} to {high}" + (" or null" if nullable else ""))


def number(cfg: dict, key: str, where: str, default=REQUIRED, *, low: float = -math.inf, high: float = math.inf,
           above: float | None = None) -> float:
    """A finite number in [low, high] (and > above when given)."""
    value = get(cfg, key, where, default)
    if is_number(value) and low <= value <= high and (above is None or value > above):
        return float(value)
    bound = f"greater than {above:g}" if above is not None else f"from {low:g} to {high:g}"
    raise refuse(where, key, value, f"give a finite number {bound}")


def boolean(cfg: dict, key: str, where: str, default=REQUIRED) -> bool:
    value = get(cfg, key, where, default)
    if isinstance(value, bool):
        return value
    raise refuse(where, key, value, "give true or false")


def strings(cfg: dict, key: str, where: str, allowed: tuple[str, ...], default=REQUIRED) -> tuple[str, ...]:
    """A non-empty list (of at most MAX_REPEAT) of strings, each one of `allowed`."""
    value = get(cfg, key, where, default)
    if isinstance(value, (list, tuple)) and 1 <= len(value) <= MAX_REPEAT \
            and all(isinstance(v, str) and v in allowed for v in value):
        return tuple(value)
    raise refuse(where, key, value, f"give a list of 1 to {MAX_REPEAT} of {', '.join(allowed)}")


def integers(cfg: dict, key: str, where: str, default=REQUIRED, *, length: int | None = None, low: int = 1,
             high: int = MAX_WIDTH, scalar: bool = False) -> tuple[int, ...]:
    """A list of whole numbers in [low, high]: `length` of them when given, else 1 to MAX_REPEAT. scalar=True
    also takes one number for every entry (diffusers' per-block keys), which needs `length`."""
    value = get(cfg, key, where, default)
    if scalar and is_whole(value):
        value = [value] * length
    count = f"{length}" if length is not None else f"1 to {MAX_REPEAT}"
    if isinstance(value, (list, tuple)) and (len(value) == length if length is not None
                                             else 1 <= len(value) <= MAX_REPEAT) \
            and all(is_whole(v) and low <= v <= high for v in value):
        return tuple(int(v) for v in value)
    either = f"one whole number from {low} to {high}, or a list of {count} of them" if scalar else \
        f"give a list of {count} whole numbers from {low} to {high}"
    raise refuse(where, key, value, either)


def config_object(value, where: str) -> dict:
    """A config file's content must be a JSON object."""
    if not isinstance(value, dict):
        kind = {list: "a list", str: "a string", type(None): "null", bool: "a boolean"}.get(type(value), "a number")
        raise CheckpointError(f"{where} holds {kind}, not a JSON object of settings ({{\"key\": value, ...}})")
    return value


# ---- scheduler_config.json ----------------------------------------------------------------------------------------

_SCHEDULE_BOOLEANS = ("clip_sample", "set_alpha_to_one", "thresholding", "rescale_betas_zero_snr", "use_karras_sigmas",
                      "use_exponential_sigmas", "use_beta_sigmas", "use_lu_lambdas", "lower_order_final",
                      "euler_at_final", "use_flow_sigmas", "use_dynamic_shifting", "predict_x0", "skip_prk_steps")
_SCHEDULE_NUMBERS = ("dynamic_thresholding_ratio", "clip_sample_range", "sample_max_value", "flow_shift",
                     "lambda_min_clipped")
_SCHEDULE_CHOICES = ("beta_schedule", "prediction_type", "timestep_spacing", "final_sigmas_type", "interpolation_type",
                     "timestep_type", "variance_type", "algorithm_type", "solver_type", "time_shift_type",
                     "_class_name")


def check_scheduler_config(cfg: dict, where: str) -> dict:
    """The types and ranges of a scheduler_config.json, for every sampler that may read it (a call can pick another
    sampler than the file's class, which reads its own keys from the same file). Names that select a variant
    (beta_schedule, timestep_spacing, ...) are checked when a sampler is planned, which refuses unsupported ones
    with InvalidArgument; here they only need to be strings or null. Returns cfg."""
    config_object(cfg, where)
    steps = integer(cfg, "num_train_timesteps", where, 1000, high=MAX_TRAIN_TIMESTEPS)
    number(cfg, "beta_start", where, 0.0001, above=0.0, high=0.999)  # a negative beta makes sqrt(beta) NaN
    number(cfg, "beta_end", where, 0.02, above=0.0, high=0.999)
    betas = cfg.get("trained_betas")
    if betas is not None and not (isinstance(betas, list) and len(betas) == steps
                                  and all(is_number(b) and 0 < b < 1 for b in betas)):
        raise refuse(where, "trained_betas", betas, f"give null or a list of num_train_timesteps={steps} numbers "
                                                   "between 0 and 1")
    integer(cfg, "steps_offset", where, 0, low=0, high=steps)
    integer(cfg, "solver_order", where, 2, low=1, high=3)
    for key in _SCHEDULE_BOOLEANS:
        if key in cfg:
            boolean(cfg, key, where)
    for key in _SCHEDULE_NUMBERS:
        if key in cfg and not (key == "lambda_min_clipped" and cfg[key] in (-math.inf, None)):
            number(cfg, key, where)
    for key in ("sigma_min", "sigma_max"):
        if cfg.get(key) is not None:
            number(cfg, key, where, above=0.0)
    for key in _SCHEDULE_CHOICES:
        if key in cfg and cfg[key] is not None and not isinstance(cfg[key], str):
            raise refuse(where, key, cfg[key], "give a name (a string) or null")
    for key in ("disable_corrector", "_use_default_values"):
        value = cfg.get(key, [])
        if not (isinstance(value, list) and all(isinstance(v, (str, int)) and not isinstance(v, bool)
                                                for v in value)):
            raise refuse(where, key, value, "give a list")
    if cfg.get("noise_sampler_seed") is not None:
        integer(cfg, "noise_sampler_seed", where, low=0, high=2**63 - 1)
    return cfg


# ---- transformers components' config.json ---------------------------------------------------------------------------

_REPEAT_KEY = re.compile(r"layer|depth|flows|blocks")


def check_transformers_config(cfg, where: str) -> None:
    """Bounds that keep a transformers model config from building millions of layers or materialising gigantic
    buffers (transformers builds the model before it compares shapes with the weights): every whole number at most
    MAX_TRANSFORMERS_INT in size, every count of layers, blocks, flows or depths at most MAX_TRANSFORMERS_REPEAT.
    Types and everything else are transformers' to check (load_transformers turns its errors into CheckpointError)."""
    config_object(cfg, where)

    def walk(value, key: str):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, str(k))
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v, key)
        elif is_whole(value):
            limit = MAX_TRANSFORMERS_REPEAT if _REPEAT_KEY.search(key.lower()) else MAX_TRANSFORMERS_INT
            if abs(value) > limit:
                raise refuse(where, key, value, f"give a whole number of at most {limit}")

    walk(cfg, "")
