"""Noise schedules: a checkpoint's scheduler_config.json → the noise levels and timesteps a sampler walks.

A `Plan` is what diffusers' `OtherScheduler.from_config(cfg)` followed by `set_timesteps(N)` would hold, written as
arrays instead of a stateful object: the variance-exploding noise levels `sigmas` the sampler steps through
(sigma = sqrt((1 - alpha_bar) / alpha_bar), the DDPM alpha_bar of Ho et al. 2020), the `timesteps` the model is fed,
one per model call, and the per-step options (solver orders, landing levels) the sampler functions in `samplers.py`
take. Every number is computed with the same operations, dtypes and quirks as diffusers 0.42, so that the samplers
reproduce its outputs to float32 rounding.

The AudioLDM / AudioLDM 2 / MusicLDM checkpoints ship `DDIMScheduler(num_train_timesteps=1000, beta_start=0.0015,
beta_end=0.0195, beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False, steps_offset=1,
prediction_type="epsilon", timestep_spacing="leading")`.
"""

import math
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import numpy as np
import torch

from .errors import InvalidArgument
from .scheduler_config import DEFAULTS, SAMPLERS, alphas_cumprod, resolve  # noqa: F401 (re-exported)


@dataclass(frozen=True, eq=False)
class Plan:
    """A sampler and its schedule, ready for `samplers.run`.

    sigmas: (S+1,) float32 VE noise levels; step k goes from sigmas[k] to sigmas[k+1] (sigmas[-1] is where the
        last step lands: 0, or sigma_min for schedules that stop short of it, as diffusers' do).
    timesteps: (M,) the values fed to the model, one per model call, exactly diffusers' `scheduler.timesteps`.
    call_sigmas: (M,) the noise level of each model call (its input is x / sqrt(sigma^2 + 1)).
    step_calls: for the sampler's k-th callback, the index into `timesteps` of the model call it follows (where
        diffusers' loop fires its callback), or None where diffusers' loop fires none (PNDM's Runge-Kutta warm-up).
    space: "vp" if diffusers' latents are x / sqrt(1 + sigma^2) (DDIM, DPM-Solver …), "ve" if they are x (Euler …).
    order: diffusers' `scheduler.order`; the callback's step index is the loop index // order.
    options: keyword arguments of the sampler function; tuple/tensor values hold one entry per step.
    """

    name: str
    scheduler: str
    config: dict
    num_inference_steps: int
    sigmas: torch.Tensor
    timesteps: torch.Tensor
    init_noise_sigma: float
    eta: float = 0.0
    space: str = "ve"
    order: int = 1
    step_calls: tuple = ()
    call_sigmas: torch.Tensor = None
    alphas_cumprod: torch.Tensor = None
    options: dict = field(default_factory=dict)


def _sigma(acp):
    """VE noise level of a VP alpha_bar: sigma = sqrt((1 - alpha_bar) / alpha_bar)."""
    return ((1 - acp) / acp) ** 0.5


def sigma_to_t(sigma, log_sigmas):
    """diffusers' `_sigma_to_t`: fractional timestep by linear interpolation in log sigma (numpy or torch inputs)."""
    log_sigma = np.log(np.maximum(sigma, 1e-10))
    dists = log_sigma - log_sigmas[:, np.newaxis]
    low_idx = np.cumsum(dists >= 0, axis=0).argmax(axis=0).clip(max=log_sigmas.shape[0] - 2)
    high_idx = low_idx + 1
    low, high = log_sigmas[low_idx], log_sigmas[high_idx]
    w = np.clip((low - log_sigma) / (low - high), 0, 1)
    return ((1 - w) * low_idx + w * high_idx).reshape(sigma.shape)


def _sigma_to_t_float32(sigma: torch.Tensor, log_sigmas: torch.Tensor) -> torch.Tensor:
    """`sigma_to_t` as diffusers' KDPM2 schedulers evaluate it on float32 torch tensors (numpy's log, torch's rest)."""
    log_sigma = torch.tensor(np.log(np.maximum(sigma.numpy(), np.float32(1e-10))))
    dists = log_sigma - log_sigmas[:, None]
    low_idx = torch.cumsum(dists >= 0, dim=0).argmax(dim=0).clip(max=log_sigmas.shape[0] - 2)
    low, high = log_sigmas[low_idx], log_sigmas[low_idx + 1]
    w = ((low - log_sigma) / (low - high)).clip(0, 1)
    return ((1 - w) * low_idx + w * (low_idx + 1)).reshape(sigma.shape)


def _karras(sigma_min: float, sigma_max: float, n: int, rho: float = 7.0) -> np.ndarray:
    """Karras et al. 2022 (arXiv:2206.00364), eq. 5:
    sigma_i = (max^(1/rho) + i/(n-1) (min^(1/rho) - max^(1/rho)))^rho."""
    ramp = np.linspace(0, 1, n)
    min_inv_rho, max_inv_rho = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return (max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho


def _exponential(sigma_min: float, sigma_max: float, n: int) -> np.ndarray:
    return np.exp(np.linspace(math.log(sigma_max), math.log(sigma_min), n))


def _incomplete_beta(x: float, a: float, b: float) -> float:
    """The regularised incomplete beta function I_x(a, b) in float64: its continued fraction (DLMF 8.17.22),
    evaluated by the modified Lentz method on the side of the mean where it converges fast."""
    if x <= 0.0 or x >= 1.0:
        return 0.0 if x <= 0.0 else 1.0
    if x > (a + 1) / (a + b + 2):
        return 1.0 - _incomplete_beta(1.0 - x, b, a)
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    tiny, f, c, d = 1e-300, 1.0, 1.0, 0.0
    for i in range(1000):
        m = i // 2
        if i == 0:
            term = 1.0
        elif i % 2:
            term = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        else:
            term = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        d = 1.0 / (1.0 + term * d if abs(1.0 + term * d) > tiny else tiny)
        c = 1.0 + term / c if abs(1.0 + term / c) > tiny else tiny
        f *= c * d
        if abs(c * d - 1.0) < 1e-16:
            break
    return math.exp(log_front) / a * (f - 1.0)


def _beta_quantile(q: float, a: float, b: float) -> float:
    """x with I_x(a, b) = q, by bisection to float64 precision."""
    lo, hi = 0.0, 1.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            break
        lo, hi = (mid, hi) if _incomplete_beta(mid, a, b) < q else (lo, mid)
    return (lo + hi) / 2


def _beta(sigma_min: float, sigma_max: float, n: int, a: float = 0.6, b: float = 0.6) -> np.ndarray:
    """Beta sampling (Lee et al. 2024, arXiv:2407.12173): levels at the Beta(0.6, 0.6) quantiles of an even grid,
    denser at both ends of [sigma_min, sigma_max]."""
    return np.array([sigma_min + _beta_quantile(q, a, b) * (sigma_max - sigma_min) for q in 1 - np.linspace(0, 1, n)])


def _respace(config: dict, sigmas: np.ndarray, n: int) -> np.ndarray | None:
    """Karras / exponential / beta levels between the schedule's extremes (sigmas ordered high → low), else None."""
    lo = config.get("sigma_min") if config.get("sigma_min") is not None else sigmas[-1].item()
    hi = config.get("sigma_max") if config.get("sigma_max") is not None else sigmas[0].item()
    if config.get("use_karras_sigmas"):
        return _karras(lo, hi, n)
    if config.get("use_exponential_sigmas"):
        return _exponential(lo, hi, n)
    if config.get("use_beta_sigmas"):
        return _beta(lo, hi, n)
    return None


def _spaced(config: dict, n: int, dtype) -> np.ndarray:
    """N timesteps, high → low: 'linspace', 'leading' (+ steps_offset) or 'trailing' (Lin et al. 2023, table 2)."""
    T, spacing = config["num_train_timesteps"], config["timestep_spacing"]
    if spacing == "linspace":
        if dtype == np.int64:
            return np.linspace(0, T - 1, n).round()[::-1].copy().astype(np.int64)
        return np.linspace(0, T - 1, n, dtype=dtype)[::-1].copy()
    if spacing == "leading":
        ts = (np.arange(0, n) * (T // n)).round()[::-1].copy().astype(dtype)
        return ts + np.asarray(config["steps_offset"]).astype(dtype)
    return np.arange(T, 0, -T / n).round().astype(dtype) - np.asarray(1).astype(dtype)


def _spaced_multistep(config: dict, n: int, last: int) -> np.ndarray:
    """The N timesteps of the multistep solvers: N+1 points, dropping t=0 (int64)."""
    T, spacing = config["num_train_timesteps"], config["timestep_spacing"]
    if spacing == "linspace":
        return np.linspace(0, last - 1, n + 1).round()[::-1][:-1].copy().astype(np.int64)
    if spacing == "leading":
        ts = (np.arange(0, n + 1) * (last // (n + 1))).round()[::-1][:-1].copy().astype(np.int64)
        return ts + config["steps_offset"]
    return np.arange(last, 0, -T / n).round().copy().astype(np.int64) - 1


# --- one builder per diffusers scheduler: (config, alphas_cumprod, N) → Plan fields --------------------------------

def _with_final(sigmas: np.ndarray, final) -> torch.Tensor:
    """float32 levels with the final level appended, as diffusers concatenates and casts them."""
    return torch.from_numpy(np.concatenate([sigmas, [float(final)]]).astype(np.float32))


def _vp(sigmas, timesteps, options=None, calls=None, step_calls=None):
    return dict(sigmas=sigmas, timesteps=timesteps, call_sigmas=sigmas[:len(timesteps)] if calls is None else calls,
                step_calls=tuple(range(len(timesteps))) if step_calls is None else step_calls, space="vp", order=1,
                init_noise_sigma=1.0, options=options or {})


def _final_alpha(config, acp):
    return torch.tensor(1.0) if config["set_alpha_to_one"] else acp[0]


def _ddim(config, acp, n, ddpm=False):
    """DDIM (Song et al. 2021): each step lands on t - T//N (diffusers' integer prev_timestep), which is the next
    timestep only under 'leading' spacing; below 0 it lands on the final alpha_bar (acp[0] unless set_alpha_to_one).
    DDPM (Ho et al. 2020) lands on the next timestep, and on alpha_bar = 1 (sigma = 0) after the last."""
    T = config["num_train_timesteps"]
    if n > T:
        raise InvalidArgument(f"num_inference_steps={n} exceeds num_train_timesteps={T}")
    ts = _spaced(config, n, np.int64)
    if (acp[torch.from_numpy(ts)] == 0).any():
        raise InvalidArgument(f"rescale_betas_zero_snr=True with timestep_spacing {config['timestep_spacing']!r} "
                              f"starts at alpha_bar = 0, an infinite noise level; allowed: timestep_spacing 'leading'")
    levels = _sigma(acp[torch.from_numpy(ts)])
    if ddpm:
        options = {"eta": 1.0}
        if config["variance_type"] == "fixed_large":  # noise of variance beta_t instead of the posterior's
            a, a_prev = acp[torch.from_numpy(ts)], torch.cat([acp[torch.from_numpy(ts[1:])], torch.ones(1)])
            beta = 1 - a / a_prev
            options["sigmas_up"] = torch.where(torch.from_numpy(ts) > 0, beta ** 0.5 / a_prev ** 0.5, 0.0)
        return _vp(torch.cat([levels, torch.zeros(1)]), torch.from_numpy(ts), options)
    final = _final_alpha(config, acp)
    landings = torch.stack([_sigma(acp[int(t)] if t >= 0 else final) for t in ts - T // n])
    return _vp(torch.cat([levels, landings[-1:]]), torch.from_numpy(ts), {"sigmas_next": landings})


def plms_layout(calls, ratio: int, acp, final, combine_v=False) -> dict:
    """PNDM with skip_prk_steps (Liu et al. 2022) as diffusers steps through its model-call timesteps `calls`:
    the first step is a Heun-like pair of calls (an Euler predictor to t - ratio, a model call at calls[1], then a
    redo from the first sample, read at calls[1] + ratio, with the averaged eps); every later call makes one
    Adams-Bashforth step to t - ratio. Levels are read off the VP latents at each call's timestep."""
    def level(t):
        return _sigma(acp[int(t)] if t >= 0 else final)
    m = len(calls)
    heun = m >= 2
    step_ts = [calls[0], *calls[2:]] if heun else [calls[0]]
    landings = [level(calls[1])] + [level(t - ratio) for t in calls[2:]] if heun else [level(calls[0] - ratio)]
    options = {"sigmas_next": torch.stack(landings), "heun_start": heun, "sigma_predict": level(calls[0] - ratio),
               "sigma_restart": level(calls[1] + ratio) if heun else None, "combine_v": combine_v,
               "step_ratio": ratio, "final": final}
    return _vp(torch.stack([level(t) for t in step_ts] + landings[-1:]), torch.as_tensor(calls),
               options, calls=torch.stack([level(t) for t in calls]), step_calls=(1, *range(2, m)) if heun else (0,))


def prk_layout(top, ratio: int, acp, final, combine_v=False) -> dict:
    """PNDM with its pseudo Runge-Kutta warm-up (Liu et al. 2022, alg. 1; diffusers' default skip_prk_steps=False)
    over the descending timesteps `top`: steps 0-2 are pseudo-RK4 steps top[g] → top[g+1], four model calls each at
    top[g], top[g+1] + h, top[g+1] + h, top[g+1] (h = ratio // 2; the first call's transfer lands at top[g] - h, read
    at top[g+1] + h), every later step one pseudo linear multistep call at top[k] landing at top[k] - ratio.
    Callbacks fire, as in diffusers' loop, after each of the last len(top) model calls only."""
    n = len(top)
    if n < 4:
        raise InvalidArgument(f"num_inference_steps={n} is too few for PNDM's Runge-Kutta warm-up (skip_prk_steps="
                              "False needs at least 4, as in diffusers); use 4 or more, or sampler 'plms'")

    def level(t):
        return _sigma(acp[int(t)] if t >= 0 else final)
    h, rk = ratio // 2, range(3)
    starts = [level(t) for t in top]
    landings = starts[1:4] + [level(t - ratio) for t in top[3:]]
    early, mid = [level(top[g] - h) for g in rk], [level(top[g + 1] + h) for g in rk]
    calls = [t for g in rk for t in (top[g], top[g + 1] + h, top[g + 1] + h, top[g + 1])] + list(top[3:])
    call_levels = [s for g in rk for s in (starts[g], mid[g], mid[g], starts[g + 1])] + starts[3:]
    warm_up = len(calls) - n
    options = {"sigmas_next": torch.stack(landings), "sigmas_early": torch.stack(early), "sigmas_mid": torch.stack(mid),
               "combine_v": combine_v, "step_ratio": ratio, "final": final}
    return _vp(torch.stack(starts + landings[-1:]), torch.as_tensor(np.array(calls, dtype=np.int64)), options,
               calls=torch.stack(call_levels), step_calls=(None,) * warm_up + tuple(range(warm_up, len(calls))))


def _pndm(config, acp, n):
    T, spacing = config["num_train_timesteps"], config["timestep_spacing"]
    if spacing == "linspace":
        ts = np.linspace(0, T - 1, n).round().astype(np.int64)
    elif spacing == "leading":
        ts = (np.arange(0, n) * (T // n)).round() + config["steps_offset"]
    else:
        ts = np.round(np.arange(T, 0, -T / n))[::-1].astype(np.int64) - 1
    final, combine_v = _final_alpha(config, acp), config["prediction_type"] == "v_prediction"
    if not config["skip_prk_steps"]:
        return prk_layout(ts[::-1].astype(np.int64), T // n, acp, final, combine_v)
    calls = np.concatenate([ts[:-1], ts[-2:-1], ts[-1:]])[::-1].astype(np.int64)
    return plms_layout(calls, T // n, acp, final, combine_v)


def _discrete(config, acp, n, dtype=np.float32):
    """The k-diffusion style schedules: spaced timesteps, sigmas interpolated from the training table (or Karras /
    exponential levels with timesteps interpolated back in log sigma). Returns (timesteps, sigmas, log_sigmas)."""
    ts = _spaced(config, n, dtype)
    train = _sigma(acp).numpy()
    log_sigmas = np.log(train)
    if config.get("interpolation_type") == "log_linear":
        sigmas = torch.linspace(np.log(train[-1]), np.log(train[0]), n + 1).exp().numpy()
    else:
        sigmas = np.interp(ts, np.arange(0, len(train)), train)
    respaced = _respace(config, sigmas, n)
    if respaced is not None:
        sigmas = respaced
        ts = np.array([sigma_to_t(s, log_sigmas) for s in sigmas])
    return ts, sigmas, log_sigmas


def _ve(config, sigmas, timesteps, calls, order=1, options=None):
    n = len(sigmas) - 1
    top = sigmas.max()
    init = top if config["timestep_spacing"] in ("linspace", "trailing") else (top ** 2 + 1) ** 0.5
    step_calls = tuple(range(n)) if order == 1 else (*range(1, 2 * n - 2, 2), 2 * n - 2)
    return dict(sigmas=sigmas, timesteps=timesteps, call_sigmas=calls, step_calls=step_calls, space="ve",
                order=order, init_noise_sigma=init.item(), options=options or {})


def _euler(config, acp, n):
    ts, sigmas, _ = _discrete(config, acp, n)
    sigmas = _with_final(sigmas, _sigma(acp[0]) if config.get("final_sigmas_type") == "sigma_min" else 0.0)
    timesteps = torch.from_numpy(ts.astype(np.float32))
    if config.get("timestep_type") == "continuous" and config["prediction_type"] == "v_prediction":
        timesteps = torch.stack([0.25 * s.log() for s in sigmas[:n]])  # the EDM preconditioning's c_noise
    return _ve(config, sigmas[:n + 1], timesteps, sigmas[:n])  # log_linear: n + 2


def _own_karras_range(config):
    """LMS and DPM-SDE space Karras sigmas between the schedule's own extremes, whatever sigma_min/max the config
    carries (their exponential sigmas do read them)."""
    return {**config, "sigma_min": None, "sigma_max": None} if config["use_karras_sigmas"] else config


def _lms(config, acp, n):
    ts, sigmas, _ = _discrete(_own_karras_range(config), acp, n)
    sigmas = _with_final(sigmas, 0.0)
    return _ve(config, sigmas, torch.from_numpy(ts).to(torch.float32), sigmas[:n])


def _heun(config, acp, n):
    """Heun's 2nd-order method (Karras et al. 2022, alg. 1): calls at t_0, then t_k twice (corrector, predictor)."""
    ts, sigmas, _ = _discrete(config, acp, n)
    sigmas, ts = _with_final(sigmas, 0.0), torch.from_numpy(ts)
    timesteps = torch.cat([ts[:1], ts[1:].repeat_interleave(2)]).to(torch.float32)
    return _ve(config, sigmas, timesteps, torch.cat([sigmas[:1], sigmas[1:-1].repeat_interleave(2)]), order=2)


def _interleave(first, pairs_a, pairs_b):
    return torch.cat([first, torch.stack((pairs_a, pairs_b), dim=-1).flatten()])


def _kdpm2(config, acp, n, ancestral=False):
    """DPM-Solver-2 (Lu et al. 2022; Karras et al. 2022's 'DPM2'): calls at t_0, then (midpoint, t_k) pairs; the
    midpoint is the geometric mean of the level and the next (ancestral: of the level and sigma_down)."""
    ts, sigmas, log_sigmas = _discrete(config, acp, n)
    ts = torch.from_numpy(ts.round() if config["use_karras_sigmas"] else ts)
    sigmas, options = _with_final(sigmas, 0.0), {}
    if ancestral:
        nxt = sigmas.roll(-1)
        nxt[-1] = 0.0
        up = (nxt ** 2 * (sigmas ** 2 - nxt ** 2) / sigmas ** 2) ** 0.5
        down = (nxt ** 2 - up ** 2) ** 0.5
        down[-1] = 0.0
        mids = sigmas.log().lerp(down.log(), 0.5).exp()
        mids[-2:] = 0.0
        options = {"sigmas_mid": mids[:n], "sigmas_up": up[:n], "sigmas_down": down[:n]}
        mids = mids[:-1]  # mids[k] is step k's midpoint
    else:
        mids = sigmas.log().lerp(sigmas.roll(1).log(), 0.5).exp()[1:]  # geometric mean of sigma_k and sigma_k+1
        options = {"sigmas_mid": mids}
    t_mid = torch.stack([_sigma_to_t_float32(s, torch.from_numpy(log_sigmas)) for s in mids[:n - 1]] or [ts[:0]])
    timesteps = _interleave(ts[:1], t_mid.reshape(-1).to(ts.dtype), ts[1:])
    return _ve(config, sigmas, timesteps, _interleave(sigmas[:1], mids[:n - 1], sigmas[1:-1]), order=2, options=options)


def sde_midpoint(sigma, sigma_next):
    """The level half way between two in t = -log(sigma), computed as diffusers' DPMSolverSDEScheduler.step does."""
    t, t_next = sigma.log().neg(), sigma_next.log().neg()
    return (t + (t_next - t) * 0.5).neg().exp()


def _dpm_sde(config, acp, n):
    ts, sigmas, log_sigmas = _discrete(_own_karras_range(config), acp, n, dtype=float)
    t = -np.log(sigmas)
    t_mid = torch.from_numpy(np.array([sigma_to_t(s, log_sigmas) for s in np.exp(-(t[:-1] + np.diff(t) * 0.5))]))
    sigmas, ts = _with_final(sigmas, 0.0), torch.from_numpy(ts)
    mids = torch.stack([sde_midpoint(sigmas[k], sigmas[k + 1]) for k in range(n - 1)] or [sigmas[:0]]).reshape(-1)
    return _ve(config, sigmas, _interleave(ts[:1], t_mid.reshape(-1), ts[1:]),
               _interleave(sigmas[:1], mids, sigmas[1:-1]), order=2)


def _multistep_sigmas(config, acp, n, last_timestep, round_respaced, final):
    """Timesteps and levels of the multistep solvers (DPM-Solver, DEIS, UniPC) ending on `final`; 'repeat' repeats
    the last Karras / exponential level (DEIS, and UniPC's final_sigmas_type 'sigma_min')."""
    ts = _spaced_multistep(config, n, last_timestep)
    train = _sigma(acp).numpy()
    log_sigmas = np.log(train)
    if config.get("use_lu_lambdas"):
        lambdas = np.flip(log_sigmas.copy())
        sigmas = np.exp(_karras(lambdas[-1].item(), lambdas[0].item(), n, rho=1.0))
    else:
        sigmas = _respace(config, np.flip(train).copy(), n)
    if sigmas is None:
        sigmas = np.interp(ts, np.arange(0, len(train)), train)
    else:
        ts = np.array([sigma_to_t(s, log_sigmas) for s in sigmas])
        if round_respaced and (config.get("use_karras_sigmas") or config.get("use_lu_lambdas")):
            ts = ts.round()
        final = sigmas[-1] if isinstance(final, str) else final
    return _with_final(sigmas, final), torch.from_numpy(ts).to(torch.int64)


def _final(config, acp):
    return _sigma(acp[0]) if config["final_sigmas_type"] == "sigma_min" else 0.0


def _capped_orders(n, solver_order, final_first, second_capped):
    return tuple(1 if solver_order == 1 or (j == n - 1 and final_first) else
                 2 if solver_order == 2 or (j == n - 2 and second_capped) else 3 for j in range(n))


def _lambda_clip(config, acp) -> int:
    lambdas = torch.log(acp.sqrt()) - torch.log((1 - acp).sqrt())
    return torch.searchsorted(torch.flip(lambdas, [0]), config["lambda_min_clipped"]).item()


def _dpmsolver_multistep(config, acp, n):
    last = config["num_train_timesteps"] - _lambda_clip(config, acp)
    round_ = config["beta_schedule"] != "squaredcos_cap_v2"
    sigmas, ts = _multistep_sigmas(config, acp, n, last, round_, _final(config, acp))
    m, lof = len(ts), config["lower_order_final"]
    orders = _capped_orders(m, config["solver_order"], config["euler_at_final"] or (lof and m < 15)
                            or config["final_sigmas_type"] == "zero", lof and m < 15)
    return _vp(sigmas, ts, {"orders": orders, "solver_type": config["solver_type"],
                            "sde": config["algorithm_type"] == "sde-dpmsolver++"})


def _singlestep_orders(n, order, lower_order_final, final_zero):
    """diffusers' order list: groups 1, 2[, 3]; lower_order_final is forced on by a final sigma of 0 or an uneven N."""
    if not (lower_order_final or n % order != 0 or final_zero):
        orders = [1, 2, 3][:order] * (n // order)
    elif order == 3:
        orders = [1, 2, 3] * (n // 3 - 1) + [1, 2] + [1] if n % 3 == 0 else \
            [1, 2, 3] * (n // 3) + ([1] if n % 3 == 1 else [1, 2])
    elif order == 2:
        orders = [1, 2] * (n // 2 - 1) + [1, 1] if n % 2 == 0 else [1, 2] * (n // 2) + [1]
    else:
        orders = [1] * n
    return tuple(orders[:-1] + [1]) if final_zero else tuple(orders)


def _dpmsolver_singlestep(config, acp, n):
    T = config["num_train_timesteps"]
    ts = np.linspace(0, T - 1 - _lambda_clip(config, acp), n + 1).round()[::-1][:-1].copy().astype(np.int64)
    train = _sigma(acp).numpy()
    log_sigmas = np.log(train)
    sigmas = _respace(config, np.flip(train).copy(), n)
    if sigmas is None:
        sigmas = np.interp(ts, np.arange(0, len(train)), train)
    else:
        ts = np.array([sigma_to_t(s, log_sigmas) for s in sigmas])
        ts = ts.round() if config["use_karras_sigmas"] else ts
    final_zero = config["final_sigmas_type"] == "zero"
    orders = _singlestep_orders(n, config["solver_order"], config["lower_order_final"], final_zero)
    return _vp(_with_final(sigmas, _final(config, acp)), torch.from_numpy(ts).to(torch.int64),
               {"orders": orders, "solver_type": config["solver_type"],
                "sde": config["algorithm_type"] == "sde-dpmsolver++"})


def _deis(config, acp, n):
    respaced = config["use_karras_sigmas"] or config["use_exponential_sigmas"] or config["use_beta_sigmas"]
    sigmas, ts = _multistep_sigmas(config, acp, n, config["num_train_timesteps"], True,
                                   "repeat" if respaced else _sigma(acp[0]))
    m, lof = len(ts), config["lower_order_final"] and len(ts) < 15
    return _vp(sigmas, ts, {"orders": _capped_orders(m, config["solver_order"], lof, lof)})


def _unipc(config, acp, n):
    respaced = config["use_karras_sigmas"] or config["use_exponential_sigmas"] or config["use_beta_sigmas"]
    final = "repeat" if respaced and config["final_sigmas_type"] == "sigma_min" else _final(config, acp)
    sigmas, ts = _multistep_sigmas(config, acp, n, config["num_train_timesteps"], True, final)
    m, order = len(ts), config["solver_order"]
    orders = tuple(min(order, m - j) if config["lower_order_final"] else order for j in range(m))
    correct = tuple(j - 1 not in config["disable_corrector"] for j in range(m))
    return _vp(sigmas, ts, {"orders": orders, "correct": correct, "solver_type": config["solver_type"]})


_BUILDERS = {
    "DDIMScheduler": _ddim, "DDPMScheduler": partial(_ddim, ddpm=True), "PNDMScheduler": _pndm,
    "LMSDiscreteScheduler": _lms, "EulerDiscreteScheduler": _euler, "EulerAncestralDiscreteScheduler": _euler,
    "HeunDiscreteScheduler": _heun, "KDPM2DiscreteScheduler": _kdpm2,
    "KDPM2AncestralDiscreteScheduler": partial(_kdpm2, ancestral=True), "DPMSolverSDEScheduler": _dpm_sde,
    "DPMSolverMultistepScheduler": _dpmsolver_multistep, "DPMSolverSinglestepScheduler": _dpmsolver_singlestep,
    "DEISMultistepScheduler": _deis, "UniPCMultistepScheduler": _unipc,
}
# Schedulers that do not look their first step up by timestep (diffusers' `index_for_timestep` takes the second of
# two equal timesteps, so every other scheduler starting on a repeated one runs past its schedule).
_COUNTS_ITS_OWN_STEPS = ("DDIMScheduler", "DDPMScheduler", "PNDMScheduler")
_PER_STEP = ("sigmas_next", "sigmas_mid", "sigmas_up", "sigmas_down", "orders", "correct")


def plan(scheduler_config: dict, sampler: str | None, num_inference_steps: int, **overrides: Any) -> Plan:
    """The schedule diffusers' `Class.from_config(scheduler_config, **overrides).set_timesteps(num_inference_steps)`
    would build. `sampler`: a short name (see SAMPLERS), a diffusers class name, or None for the config's own
    `_class_name`. Overrides: any config key of that class (timestep_spacing, use_karras_sigmas, solver_order …) and
    `eta` (DDIM only). Unknown names and unsupported values raise InvalidArgument."""
    if isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, int) or num_inference_steps < 1:
        raise InvalidArgument(f"num_inference_steps must be a positive integer, got {num_inference_steps!r}")
    name, cls, config, eta = resolve(scheduler_config, sampler, overrides)
    acp = alphas_cumprod(config, cls)
    fields = _BUILDERS[cls](config, acp, num_inference_steps)
    first = fields["timesteps"][:1]
    if cls not in _COUNTS_ITS_OWN_STEPS and len(first) and (fields["timesteps"] == first).sum() > 1:
        spread = [k for k in ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas", "use_lu_lambdas")
                  if config.get(k)]
        raise InvalidArgument(f"{cls} with {' and '.join(spread) or 'this config'} and num_inference_steps="
                              f"{num_inference_steps} starts on a repeated timestep ({first.item():g}), where "
                              "diffusers' scheduler loses its step count and fails; allowed: fewer steps or other "
                              "sigmas")
    return Plan(name=name, scheduler=cls, config=config, num_inference_steps=num_inference_steps, eta=eta,
                alphas_cumprod=acp, **fields)


def start_at(plan: Plan, strength: float) -> Plan:
    """The last int(N * strength) steps, as diffusers' img2img `get_timesteps` + `set_begin_index` keep them.
    The returned plan takes already-noised latents (`add_noise`), so its init_noise_sigma is 1."""
    if not 0.0 <= strength <= 1.0:
        raise InvalidArgument(f"strength must be between 0 and 1, got {strength!r}")
    n = plan.num_inference_steps
    skip = max(n - min(int(n * strength), n), 0)
    if skip == 0:
        return replace(plan, init_noise_sigma=1.0)
    if plan.name == "pndm":  # diffusers would run its Runge-Kutta counter on timesteps it was not built for
        raise InvalidArgument(f"strength={strength!r} needs a sampler that can start part way; PNDM's Runge-Kutta "
                              "warm-up (skip_prk_steps=False) only runs from the start (strength 1): use 'plms'")
    if plan.name == "plms" and skip < len(plan.timesteps):  # it restarts on the sliced timesteps
        o = plan.options
        fields = plms_layout(plan.timesteps[skip:].numpy(), o["step_ratio"], plan.alphas_cumprod, o["final"],
                             o["combine_v"])
    else:
        first = skip * plan.order
        fields = dict(sigmas=plan.sigmas[skip:], timesteps=plan.timesteps[first:],
                      call_sigmas=plan.call_sigmas[first:], step_calls=tuple(i - first for i in plan.step_calls[skip:]),
                      options={k: v[skip:] if k in _PER_STEP else v for k, v in plan.options.items()})
        if plan.name == "lms":  # diffusers' LMS keeps counting its order from the schedule's start
            fields["options"]["sigmas_before"] = plan.sigmas[max(skip - 3, 0):skip]
    return replace(plan, **{**fields, "num_inference_steps": n - skip, "init_noise_sigma": 1.0})


def add_noise(plan: Plan, x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Clean latents x0 (B, C, H, W) noised to the plan's first step, in diffusers' latent space (what `run` takes
    with a `start_at` plan): sqrt(a) x0 + sqrt(1 - a) noise for DDIM/DDPM/PNDM, alpha x0 + sigma noise for the
    DPM-Solver family, x0 + sigma noise for the Euler family. A plan with no steps returns x0."""
    if len(plan.timesteps) == 0:
        return x0
    if plan.scheduler in ("DDIMScheduler", "DDPMScheduler", "PNDMScheduler"):
        a = plan.alphas_cumprod.to(device=x0.device, dtype=x0.dtype)[plan.timesteps[0]]
        return a ** 0.5 * x0 + (1 - a) ** 0.5 * noise
    sigma = plan.call_sigmas[0].to(device=x0.device, dtype=x0.dtype)
    if plan.space == "ve":
        return x0 + noise * sigma
    alpha = 1 / (sigma ** 2 + 1) ** 0.5
    return alpha * x0 + sigma * alpha * noise
