"""A checkpoint's scheduler_config.json → the configuration of one diffusers scheduler class, as
`Class.from_config(config, **overrides)` builds it, and the training noise schedule (alpha_bar) it implies.

DEFAULTS holds each class's config fields with their defaults (diffusers 0.42.1's signatures), SAMPLERS the short
names. `resolve` keeps what from_config keeps, checks every value against what `schedules.py` / `samplers.py`
reproduce and refuses the rest in one line (InvalidArgument): options whose effect is not reproduced, and options
diffusers itself cannot run (it raises, or returns NaN). tests/test_scheduler_configs.py walks every option of every
field against diffusers.
"""

import difflib
import math

import torch

from .errors import InvalidArgument

_COMMON = {"num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "linear",
           "trained_betas": None, "prediction_type": "epsilon"}
_SIGMA_KINDS = {"use_karras_sigmas": False, "use_exponential_sigmas": False, "use_beta_sigmas": False}
_SPACING = {"timestep_spacing": "linspace", "steps_offset": 0}
_SOLVER = {"solver_order": 2, "thresholding": False, "dynamic_thresholding_ratio": 0.995, "sample_max_value": 1.0,
           "lower_order_final": True, "use_flow_sigmas": False, "flow_shift": 1.0, "use_dynamic_shifting": False,
           "time_shift_type": "exponential"}

# Each diffusers scheduler class: its config keys with their defaults (diffusers 0.42.1 signatures).
DEFAULTS = {
    "DDIMScheduler": {**_COMMON, "clip_sample": True, "set_alpha_to_one": True, "steps_offset": 0,
                      "thresholding": False, "dynamic_thresholding_ratio": 0.995, "clip_sample_range": 1.0,
                      "sample_max_value": 1.0, "timestep_spacing": "leading", "rescale_betas_zero_snr": False},
    "DDPMScheduler": {**_COMMON, "variance_type": "fixed_small", "clip_sample": True, "thresholding": False,
                      "dynamic_thresholding_ratio": 0.995, "clip_sample_range": 1.0, "sample_max_value": 1.0,
                      "timestep_spacing": "leading", "steps_offset": 0, "rescale_betas_zero_snr": False},
    "PNDMScheduler": {**_COMMON, "skip_prk_steps": False, "set_alpha_to_one": False, "timestep_spacing": "leading",
                      "steps_offset": 0},
    "LMSDiscreteScheduler": {**_COMMON, **_SIGMA_KINDS, **_SPACING},
    "EulerDiscreteScheduler": {**_COMMON, "interpolation_type": "linear", **_SIGMA_KINDS, "sigma_min": None,
                               "sigma_max": None, **_SPACING, "timestep_type": "discrete",
                               "rescale_betas_zero_snr": False, "final_sigmas_type": "zero"},
    "EulerAncestralDiscreteScheduler": {**_COMMON, **_SPACING, "rescale_betas_zero_snr": False},
    "HeunDiscreteScheduler": {**_COMMON, "beta_start": 0.00085, "beta_end": 0.012, **_SIGMA_KINDS,
                              "clip_sample": False, "clip_sample_range": 1.0, **_SPACING},
    "KDPM2DiscreteScheduler": {**_COMMON, "beta_start": 0.00085, "beta_end": 0.012, **_SIGMA_KINDS, **_SPACING},
    "KDPM2AncestralDiscreteScheduler": {**_COMMON, "beta_start": 0.00085, "beta_end": 0.012, **_SIGMA_KINDS,
                                        **_SPACING},
    "DPMSolverMultistepScheduler": {**_COMMON, **_SOLVER, "algorithm_type": "dpmsolver++", "solver_type": "midpoint",
                                    "euler_at_final": False, **_SIGMA_KINDS, "use_lu_lambdas": False,
                                    "final_sigmas_type": "zero", "lambda_min_clipped": -math.inf,
                                    "variance_type": None, **_SPACING, "rescale_betas_zero_snr": False},
    "DPMSolverSinglestepScheduler": {**_COMMON, **_SOLVER, "algorithm_type": "dpmsolver++", "solver_type": "midpoint",
                                     "lower_order_final": False, **_SIGMA_KINDS, "final_sigmas_type": "zero",
                                     "lambda_min_clipped": -math.inf, "variance_type": None},
    "DPMSolverSDEScheduler": {**_COMMON, "beta_start": 0.00085, "beta_end": 0.012, **_SIGMA_KINDS,
                              "noise_sampler_seed": None, **_SPACING},
    "DEISMultistepScheduler": {**_COMMON, **_SOLVER, "algorithm_type": "deis", "solver_type": "logrho",
                               **_SIGMA_KINDS, **_SPACING},
    "UniPCMultistepScheduler": {**_COMMON, **_SOLVER, "predict_x0": True, "solver_type": "bh2",
                                "disable_corrector": [], "solver_p": None, **_SIGMA_KINDS, **_SPACING,
                                "final_sigmas_type": "zero", "rescale_betas_zero_snr": False, "sigma_min": None,
                                "sigma_max": None, "shift_terminal": None},
}

# Short names (`--sampler`) → (diffusers class, the config keys that pick the variant).
SAMPLERS = {
    "ddim": ("DDIMScheduler", {}),
    "ddpm": ("DDPMScheduler", {}),
    "pndm": ("PNDMScheduler", {}),  # as configured: Runge-Kutta warm-up unless the config sets skip_prk_steps
    "plms": ("PNDMScheduler", {"skip_prk_steps": True}),
    "lms": ("LMSDiscreteScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler-a": ("EulerAncestralDiscreteScheduler", {}),
    "heun": ("HeunDiscreteScheduler", {}),
    "kdpm2": ("KDPM2DiscreteScheduler", {}),
    "kdpm2-a": ("KDPM2AncestralDiscreteScheduler", {}),
    "dpmpp-2m": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "dpmpp-2m-sde": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "solver_order": 2}),
    "dpmpp-2s": ("DPMSolverSinglestepScheduler", {"solver_order": 2}),
    "dpm-sde": ("DPMSolverSDEScheduler", {}),
    "deis": ("DEISMultistepScheduler", {}),
    "unipc": ("UniPCMultistepScheduler", {}),
}

# Config values we reproduce; any other value of these keys is refused rather than silently ignored.
_SPACINGS = ("leading", "linspace", "trailing")
_BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
_EPS_OR_V = ("epsilon", "v_prediction")
_ALLOWED = {
    "beta_schedule": _BETA_SCHEDULES,
    "prediction_type": (*_EPS_OR_V, "sample"),
    "timestep_spacing": _SPACINGS,
    "final_sigmas_type": ("zero", "sigma_min"),
    "interpolation_type": ("linear", "log_linear"),
    "timestep_type": ("discrete",),
    "variance_type": ("fixed_small",),
    "use_flow_sigmas": (False,),
    "use_dynamic_shifting": (False,),
    "predict_x0": (True,),
    "solver_p": (None,),
    "shift_terminal": (None,),
}
# Where a class takes other values than _ALLOWED lists (the branches of diffusers 0.42.1's own code).
_NO_OP_VARIANCES = (None, "fixed_small", "fixed_small_log", "fixed_large", "fixed_large_log")
_CLASS_ALLOWED = {
    "DDPMScheduler": {"beta_schedule": (*_BETA_SCHEDULES, "sigmoid", "laplace"),
                      "variance_type": ("fixed_small", None, "fixed_small_log", "fixed_large")},
    "PNDMScheduler": {"prediction_type": _EPS_OR_V},
    "EulerDiscreteScheduler": {"prediction_type": (*_EPS_OR_V, "sample", "original_sample"),
                               "timestep_type": ("discrete", "continuous")},
    "EulerAncestralDiscreteScheduler": {"prediction_type": _EPS_OR_V},
    "HeunDiscreteScheduler": {"beta_schedule": (*_BETA_SCHEDULES, "exp")},
    "KDPM2DiscreteScheduler": {"prediction_type": _EPS_OR_V},
    "KDPM2AncestralDiscreteScheduler": {"prediction_type": _EPS_OR_V},
    "DPMSolverSDEScheduler": {"prediction_type": _EPS_OR_V},
    # variance_type only acts there as 'learned'/'learned_range' (a 3-channel split), and dynamic shifting only
    # with a `mu` that no AudioLDM-family pipeline passes
    "DPMSolverMultistepScheduler": {"variance_type": _NO_OP_VARIANCES, "use_dynamic_shifting": (False, True)},
    "DPMSolverSinglestepScheduler": {"variance_type": _NO_OP_VARIANCES, "use_dynamic_shifting": (False, True)},
    "DEISMultistepScheduler": {"use_dynamic_shifting": (False, True)},
}
_FLOW = "flow-matching schedules and predictions are not part of the AudioLDM family"
_WHY = {"use_flow_sigmas": _FLOW, "shift_terminal": _FLOW, ("prediction_type", "flow_prediction"): _FLOW,
        ("variance_type", "learned"): "a learned variance needs a UNet that predicts it",
        ("variance_type", "learned_range"): "a learned variance needs a UNet that predicts it",
        ("variance_type", "fixed_large_log"): "diffusers takes the square root of a log-variance there: NaN",
        "use_dynamic_shifting": "UniPC then needs a `mu` the pipelines do not pass; diffusers refuses it too",
        "predict_x0": "UniPC's noise-prediction form is not reproduced",
        "solver_p": "UniPC's external predictor is not reproduced"}
_ALGORITHMS = {"DPMSolverMultistepScheduler": ("dpmsolver++", "sde-dpmsolver++"),
               "DPMSolverSinglestepScheduler": ("dpmsolver++", "sde-dpmsolver++"),
               "DEISMultistepScheduler": ("deis",)}
_SOLVER_TYPES = {"DPMSolverMultistepScheduler": ("midpoint", "heun"),
                 "DPMSolverSinglestepScheduler": ("midpoint", "heun"),
                 "DEISMultistepScheduler": ("logrho",), "UniPCMultistepScheduler": ("bh1", "bh2")}
# diffusers re-maps another family's algorithm/solver names when a config moves between classes.
_REMAP = {"DPMSolverMultistepScheduler": {"algorithm_type": {"deis": "dpmsolver++"},
                                          "solver_type": {"logrho": "midpoint", "bh1": "midpoint", "bh2": "midpoint"}},
          "DPMSolverSinglestepScheduler": {"algorithm_type": {"deis": "dpmsolver++"},
                                           "solver_type": {"logrho": "midpoint", "bh1": "midpoint", "bh2": "midpoint"}},
          "DEISMultistepScheduler": {"algorithm_type": {"dpmsolver": "deis", "dpmsolver++": "deis"},
                                     "solver_type": {"midpoint": "logrho", "heun": "logrho", "bh1": "logrho",
                                                     "bh2": "logrho"}},
          "UniPCMultistepScheduler": {"solver_type": {"midpoint": "bh2", "heun": "bh2", "logrho": "bh2"}}}


def _refuse(what: str, value, allowed, why: str | None = None) -> InvalidArgument:
    """One-line error naming the value, the close allowed names (difflib) and all allowed ones."""
    allowed = [str(a) for a in allowed]
    close = difflib.get_close_matches(str(value), allowed, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    why = f" ({why})" if why else ""
    shown = repr(value) if isinstance(value, (str, int, float, type(None))) else f"<a {type(value).__name__}>"
    return InvalidArgument(f"{what} {shown} is not supported{hint}{why}; allowed: {', '.join(allowed)}")


# diffusers' Karras / exponential / beta sigmas of these classes read `sigma_min` / `sigma_max` off the scheduler's
# config even when the class does not declare them: from_config keeps every key of the checkpoint's config.
_READS_SIGMA_RANGE = ("LMSDiscreteScheduler", "HeunDiscreteScheduler", "KDPM2DiscreteScheduler",
                      "KDPM2AncestralDiscreteScheduler", "DPMSolverMultistepScheduler", "DPMSolverSinglestepScheduler",
                      "DPMSolverSDEScheduler", "DEISMultistepScheduler")


def _check(cls: str, config: dict) -> None:
    """Refuse, in one line, every config value whose effect in diffusers is not reproduced (or that diffusers
    itself cannot run)."""
    allowed_values = {**_ALLOWED, **_CLASS_ALLOWED.get(cls, {}), "algorithm_type": _ALGORITHMS.get(cls, ()),
                      "solver_type": _SOLVER_TYPES.get(cls, ())}
    for key, allowed in allowed_values.items():
        if key in config and not any(config[key] is a or (type(config[key]) is type(a) and config[key] == a)
                                     for a in allowed):
            why = _WHY.get((key, config[key])) if isinstance(config[key], str) else None
            raise _refuse(f"{cls} {key}", config[key], allowed, why or _WHY.get(key))
    order = config.get("solver_order")
    if order is not None:
        top = 3 if cls == "DPMSolverSinglestepScheduler" else None
        if not isinstance(order, int) or isinstance(order, bool) or order < 1 or (top and order > top):
            raise InvalidArgument(f"{cls} solver_order {order!r} is not supported; allowed: "
                                  + ("1, 2, 3" if top else "a positive integer (DPM-Solver and DEIS run 3 above 3)"))
    kinds = ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas", "use_lu_lambdas")
    if sum(bool(config.get(k)) for k in kinds) > 1:
        raise InvalidArgument("use only one of " + ", ".join(k for k in kinds if config.get(k)))
    if config.get("thresholding") and not 0.0 <= config["dynamic_thresholding_ratio"] <= 1.0:
        raise InvalidArgument(f"{cls} dynamic_thresholding_ratio {config['dynamic_thresholding_ratio']!r} is not "
                              "supported; allowed: a quantile in [0, 1]")
    seed = config.get("noise_sampler_seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise InvalidArgument(f"{cls} noise_sampler_seed {seed!r} is not supported; allowed: None or one integer")
    final_zero = config.get("final_sigmas_type") == "zero"
    if cls == "UniPCMultistepScheduler" and final_zero and (config["solver_type"] == "bh1"
                                                             or not config["lower_order_final"]):
        what = "solver_type 'bh1'" if config["solver_type"] == "bh1" else "lower_order_final False"
        raise InvalidArgument(f"UniPCMultistepScheduler {what} with final_sigmas_type 'zero' steps to an infinite "
                              "log-SNR (diffusers returns NaN or fails); allowed: final_sigmas_type 'sigma_min'")


def resolve(scheduler_config: dict, sampler: str | None, overrides: dict) -> tuple[str, str, dict, float]:
    """(short name, diffusers class, resolved config, eta) the way `Class.from_config(scheduler_config, **overrides)`
    builds it: the config keys the class understands, its defaults for the rest, then the variant and overrides."""
    if sampler is None:
        sampler = scheduler_config.get("_class_name")
        if sampler is None:
            raise InvalidArgument("scheduler_config has no '_class_name'; pass a sampler name: " + ", ".join(SAMPLERS))
    if sampler in SAMPLERS:
        cls, preset = SAMPLERS[sampler]
    elif sampler in DEFAULTS:
        cls, preset = sampler, {}
    else:
        raise _refuse("sampler", sampler, [*SAMPLERS, *DEFAULTS])
    overrides = dict(overrides)
    eta = overrides.pop("eta", None)
    if eta is not None and cls != "DDIMScheduler":
        raise InvalidArgument(f"eta={eta!r} only applies to the DDIM sampler, not {sampler!r}")
    defaults = DEFAULTS[cls]
    for key in overrides:
        if key not in defaults:
            raise _refuse(f"{cls} option", key, ["eta", *defaults] if cls == "DDIMScheduler" else defaults)
    # diffusers' from_config ignores the keys a config recorded as its own class's defaults (`_use_default_values`)
    own = {k: v for k, v in scheduler_config.items() if k not in scheduler_config.get("_use_default_values", ())}
    inherited = {k: v for k, v in own.items() if k in defaults}
    if cls in _READS_SIGMA_RANGE:  # see _READS_SIGMA_RANGE
        inherited.update({k: own[k] for k in ("sigma_min", "sigma_max") if own.get(k) is not None})
    config = {**defaults, **inherited, **preset, **overrides}
    if cls.startswith("DPMSolver") and config.get("algorithm_type") == "deis" and config["final_sigmas_type"] == "zero":
        raise InvalidArgument(f"{cls} algorithm_type 'deis' needs final_sigmas_type 'sigma_min' (diffusers refuses "
                              "'zero' before mapping it to 'dpmsolver++'); allowed: dpmsolver++, sde-dpmsolver++")
    for key, mapping in _REMAP.get(cls, {}).items():
        config[key] = mapping.get(config[key], config[key])
    _check(cls, config)
    eta = float(eta or 0.0)
    if not 0.0 <= eta <= 1.0:
        raise InvalidArgument(f"eta must be between 0 and 1, got {eta}")
    return _short_name(cls, config), cls, config, eta


def _short_name(cls: str, config: dict) -> str:
    if cls == "DPMSolverMultistepScheduler":
        return "dpmpp-2m-sde" if config["algorithm_type"] == "sde-dpmsolver++" else "dpmpp-2m"
    if cls == "PNDMScheduler":
        return "plms" if config["skip_prk_steps"] else "pndm"
    return next(name for name, (c, _) in SAMPLERS.items() if c == cls)


# --- the training schedule -------------------------------------------------------------------------------------

def _alpha_bar_cosine(t):
    """Nichol & Dhariwal 2021, eq. 17 (`squaredcos_cap_v2`)."""
    return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2


def _alpha_bar_laplace(t):
    """The Laplace schedule (Hang & Gu 2024): log-SNR -0.5 sign(1/2 - t) log(1 - 2|1/2 - t| + 1e-6)."""
    snr = math.exp(-0.5 * math.copysign(1, 0.5 - t) * math.log(1 - 2 * math.fabs(0.5 - t) + 1e-6))
    return math.sqrt(snr / (1 + snr))


def _alpha_bar_exp(t):
    return math.exp(t * -12.0)


def _betas_for_alpha_bar(n: int, alpha_bar=_alpha_bar_cosine, max_beta: float = 0.999) -> torch.Tensor:
    """beta_i = 1 - alpha_bar((i + 1) / n) / alpha_bar(i / n), capped at max_beta."""
    return torch.tensor([min(1 - alpha_bar((i + 1) / n) / alpha_bar(i / n), max_beta) for i in range(n)],
                        dtype=torch.float32)


def _zero_terminal_snr(betas: torch.Tensor) -> torch.Tensor:
    """Lin et al. 2023 (arXiv:2305.08891), alg. 1: shift and scale sqrt(alpha_bar) so that it ends at exactly 0
    and keeps its first value, then read the betas back off the ratios."""
    root = torch.cumprod(1.0 - betas, dim=0).sqrt()
    first, last = root[0].clone(), root[-1].clone()
    root = (root - last) * (first / (first - last))
    alpha_bar = root ** 2
    return 1 - torch.cat([alpha_bar[0:1], alpha_bar[1:] / alpha_bar[:-1]])


# Classes that keep a zero-terminal-SNR schedule's last alpha_bar at 2^-24 (so its sigma is 4096, not infinite).
_TERMINAL_FLOOR = ("EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler", "DPMSolverMultistepScheduler",
                   "UniPCMultistepScheduler")


def alphas_cumprod(config: dict, cls: str | None = None) -> torch.Tensor:
    """(T,) float32 alpha_bar_t = prod(1 - beta_s, s <= t), as every diffusers scheduler builds it (`cls` decides
    where a zero terminal SNR is floored)."""
    n, start, end = config["num_train_timesteps"], config["beta_start"], config["beta_end"]
    schedule = config["beta_schedule"]
    if config["trained_betas"] is not None:
        betas = torch.tensor(config["trained_betas"], dtype=torch.float32)
    elif schedule == "linear":
        betas = torch.linspace(start, end, n, dtype=torch.float32)
    elif schedule == "scaled_linear":
        betas = torch.linspace(start ** 0.5, end ** 0.5, n, dtype=torch.float32) ** 2
    elif schedule == "sigmoid":  # GeoDiff (Xu et al. 2022)
        betas = torch.sigmoid(torch.linspace(-6, 6, n)) * (end - start) + start
    else:
        alpha_bar = {"squaredcos_cap_v2": _alpha_bar_cosine, "laplace": _alpha_bar_laplace, "exp": _alpha_bar_exp}
        betas = _betas_for_alpha_bar(n, alpha_bar[schedule])
    if config.get("rescale_betas_zero_snr"):
        betas = _zero_terminal_snr(betas)
    acp = torch.cumprod(1.0 - betas, dim=0)
    if config.get("rescale_betas_zero_snr") and cls in _TERMINAL_FLOOR:
        acp[-1] = 2 ** -24
    return acp
