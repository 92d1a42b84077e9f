"""Samplers: the reverse-diffusion solvers, as plain functions of a denoiser (k-diffusion style).

Every `sample_*(model, x, sigmas, ...)` integrates from sigmas[0] down to sigmas[-1] in the variance-exploding
parameterisation x = x0 + sigma * eps (Karras et al. 2022, arXiv:2206.00364), where `model(x, sigma)` returns the
denoised estimate D(x; sigma) of x0 and eps = (x - D) / sigma. A VP latent x_vp (what DDIM and DPM-Solver step in
diffusers) is x / sqrt(1 + sigma^2) and alpha_bar = 1 / (1 + sigma^2), so one function serves both families.
`callback(i, x, sigma)` is called after step i with x at noise level sigma.

`run(plan, unet_call, latents)` wraps the pipeline's UNet once into that denoiser and replays diffusers' loop:
same model inputs and timesteps, same noise draws from the generator, same callbacks. Schedules and the
scheduler_config.json → Plan step live in `schedules.py`.
"""

import inspect
from typing import Callable

import numpy as np
import torch

from .errors import InvalidArgument
from .schedules import SAMPLERS, Plan, add_noise, plan, sde_midpoint, sigma_to_t, start_at

__all__ = ["SAMPLERS", "Plan", "plan", "run", "start_at", "add_noise", "randn", "ancestral_step", "BrownianNoise",
           "dynamic_threshold", "sample_ddim", "sample_pndm", "sample_plms", "sample_lms", "sample_euler",
           "sample_euler_ancestral", "sample_heun", "sample_dpm_2", "sample_dpm_2_ancestral", "sample_dpmpp_2m",
           "sample_dpmpp_singlestep", "sample_dpmpp_sde", "sample_deis", "sample_unipc"]


def randn(shape, generator=None, device=None, dtype=None) -> torch.Tensor:
    """Standard normal noise of `shape`, drawn exactly like diffusers' `randn_tensor`: one torch.randn of the whole
    shape (on the generator's device when that is the CPU), or with a list of generators one (1, ...) draw per
    sample, concatenated. A list whose length is not shape[0] raises InvalidArgument."""
    device = torch.device(device) if isinstance(device, str) else device
    rand_device = device
    if generator is not None:
        kind = (generator[0] if isinstance(generator, list) else generator).device.type
        here = (device or torch.device("cpu")).type
        if kind != here and kind == "cpu":
            rand_device = "cpu"
        elif kind != here and kind == "cuda":
            raise InvalidArgument(f"Cannot generate a {here} tensor from a generator of type {kind}.")
    if isinstance(generator, list) and len(generator) == 1:
        generator = generator[0]
    shape = tuple(shape)
    if isinstance(generator, list):
        if len(generator) != shape[0]:
            raise InvalidArgument(
                f"You have passed a list of generators of length {len(generator)}, but requested an effective batch"
                f" size of {shape[0]}. Make sure the batch size matches the length of the generators.")
        draws = [torch.randn((1, *shape[1:]), generator=g, device=rand_device, dtype=dtype) for g in generator]
        return torch.cat(draws, dim=0).to(device or torch.device("cpu"))
    return torch.randn(shape, generator=generator, device=rand_device, dtype=dtype).to(device or torch.device("cpu"))


INITIAL_NOISE = ("gaussian", "zero-mean", "zero-mean-bands")  # a model's starting-noise rules (its soundsmith.json)


def zero_mean_noise(noise: torch.Tensor, window_rows: int, per_band: bool = False) -> torch.Tensor:
    """Starting noise (B, C, rows, W) with each channel's mean removed over every window of about `window_rows`
    rows (the UNet's training window; a shorter latent is one window) and scaled back to unit variance. per_band:
    remove the mean of each of the channel's W frequency columns over the window's rows instead (which removes the
    channel's mean too), then scale the channel to a standard deviation of exactly 1 over the window; a window of
    one row keeps the channel rule.

    Why: with a schedule whose last level keeps a little signal (AudioLDM's ᾱ_T ≈ 0.005), a model trained on plain
    Gaussian noise reads the starting noise's channel means (±1/sqrt(rows·W), ±0.04 for the demo) as the clip's own
    and keeps them; in the demo's latent space they set the level, so seeds of one prompt came out up to 20 LU
    apart. Removing them leaves the level to the prompt (issue 21; scripts/seed_level.py). The column means
    (±1/sqrt(rows), ±0.125 for the demo) are the same kind of thing per frequency band, a spectral envelope the seed
    hands the model, and the channel's spread (±1/sqrt(2·rows·W)) its energy: on the demo's 64 validation prompts
    × 3 seeds, removing both took the prompts within ±3 LU from 49 to 60 (median spread 4.8 → 2.4 LU; the column
    means alone: 53, 3.7 LU), and the clips followed their prompts more (CNN 80.2 → 85.4 %; docs/training.md)."""
    rows, width = noise.shape[2], noise.shape[3]
    windows = max(1, round(rows / max(1, window_rows)))
    parts = []
    for part in torch.tensor_split(noise, windows, dim=2):
        if per_band and part.shape[2] > 1:
            centred = part - part.mean(dim=2, keepdim=True)
            parts.append(centred / centred.std(dim=(2, 3), keepdim=True).clamp_min(1e-12))
            continue
        k = part.shape[2] * width
        centred = part - part.mean(dim=(2, 3), keepdim=True)
        parts.append(centred * (k / (k - 1)) ** 0.5 if k > 1 else centred)
    return torch.cat(parts, dim=2)


def _noise(x, generator):
    return randn(x.shape, generator, x.device, x.dtype)


def ancestral_step(sigma, sigma_next, eta=1.0):
    """(sigma_down, sigma_up): the posterior noise sigma_up = eta sqrt(sigma'^2 (sigma^2 - sigma'^2) / sigma^2) of
    DDPM (Ho et al. 2020) / DDIM (Song et al. 2021, eq. 16) in VE form, and the level sigma_down =
    sqrt(sigma'^2 - sigma_up^2) the deterministic part steps to."""
    if eta == 0:
        return sigma_next, torch.zeros_like(sigma_next)
    sigma_up = eta * (sigma_next ** 2 * (sigma ** 2 - sigma_next ** 2) / sigma ** 2) ** 0.5
    return (sigma_next ** 2 - sigma_up ** 2) ** 0.5, sigma_up


def _relabel(x, sigma, sigma_new):
    """The same VP latents x / sqrt(1 + sigma^2) read at another level (diffusers' DDIM/PNDM land on t - T//N but
    call the model at the next timestep; the two differ under linspace/trailing spacing)."""
    if float(sigma) == float(sigma_new):
        return x
    return x * ((sigma_new ** 2 + 1) / (sigma ** 2 + 1)) ** 0.5


@torch.no_grad()
def sample_ddim(model, x, sigmas, *, eta=0.0, sigmas_next=None, sigmas_up=None, clip=None, generator=None,
                callback=None):
    """DDIM (Song et al. 2021, arXiv:2010.02502, eq. 12): x' = D + sigma_down eps + sigma_up z, an Euler step in
    sigma when eta = 0; eta = 1 is DDPM ancestral sampling (Ho et al. 2020, arXiv:2006.11239).
    sigmas_next[i]: the level step i lands on, when it is not sigmas[i+1] (see `_relabel`).
    sigmas_up[i]: the noise of step i, when it is not the posterior's (DDPM's 'fixed_large' variance, beta_t).
    clip(D): a clipped D for the first term only; eps stays the model's (diffusers' DDIM step without
    use_clipped_model_output)."""
    sigmas_next = sigmas[1:] if sigmas_next is None else sigmas_next
    for i in range(len(sigmas) - 1):
        sigma = sigmas[i]
        if i > 0:
            x = _relabel(x, sigmas_next[i - 1], sigma)
        denoised = model(x, sigma)
        sigma_down, sigma_up = ancestral_step(sigma, sigmas_next[i], eta)
        sigma_up = sigma_up if sigmas_up is None else sigmas_up[i]
        x = (denoised if clip is None else clip(denoised)) + (x - denoised) / sigma * sigma_down
        if eta > 0 and sigma_up > 0:
            x = x + _noise(x, generator) * sigma_up
        if callback is not None:
            callback(i, x, sigmas_next[i])
    return x


def _adams_bashforth(eps):
    """Linear multistep combination of the last 1–4 eps (Liu et al. 2022, eq. 12)."""
    if len(eps) == 1:
        return eps[-1]
    if len(eps) == 2:
        return (3 * eps[-1] - eps[-2]) / 2
    if len(eps) == 3:
        return (23 * eps[-1] - 16 * eps[-2] + 5 * eps[-3]) / 12
    return 1 / 24 * (55 * eps[-1] - 59 * eps[-2] + 37 * eps[-3] - 9 * eps[-4])


def _eps_to_v(eps, x, sigma):
    """v = alpha eps - sigma_vp x0 (Salimans & Ho 2022) of VE latents x at level sigma."""
    return eps * (sigma ** 2 + 1) ** 0.5 - sigma * x / (sigma ** 2 + 1) ** 0.5


def _v_to_eps(v, x, sigma):
    return v / (sigma ** 2 + 1) ** 0.5 + sigma * x / (sigma ** 2 + 1)


@torch.no_grad()
def sample_plms(model, x, sigmas, *, sigmas_next=None, heun_start=True, sigma_predict=None, sigma_restart=None,
                combine_v=False, callback=None):
    """Pseudo linear multistep (PLMS; Liu et al. 2022, arXiv:2202.09778): Adams–Bashforth on eps through the DDIM
    transfer x' = x + (sigma' - sigma) eps. Started as diffusers' PNDM with skip_prk_steps does: step 0 is Heun-like,
    an Euler predictor to `sigma_predict`, a second call at sigmas_next[0], then a redo from x (read at
    `sigma_restart`) with the mean of both eps; only the first eps enters the history.
    combine_v: diffusers' PNDM with v_prediction combines the raw v outputs and turns the mix into eps at the
    step's start level and latents."""
    sigmas_next = sigmas[1:] if sigmas_next is None else sigmas_next
    sigma_predict = sigmas_next[0] if sigma_predict is None else sigma_predict
    sigma_restart = sigmas[0] if sigma_restart is None else sigma_restart
    into, back = _v_mixing(combine_v)
    history = []
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas_next[i]
        if i > 0:
            x = _relabel(x, sigmas_next[i - 1], sigma)
        out = into((x - model(x, sigma)) / sigma, x, sigma)
        history = (history + [out])[-4:]
        if i == 0 and heun_start:
            x_pred = _relabel(x + (sigma_predict - sigma) * back(out, x, sigma), sigma_predict, sigma_next)
            out_pred = into((x_pred - model(x_pred, sigma_next)) / sigma_next, x_pred, sigma_next)
            x = _relabel(x, sigma, sigma_restart)
            x = x + (sigma_next - sigma_restart) * back((out_pred + out) / 2, x, sigma_restart)
        else:
            x = x + (sigma_next - sigma) * back(_adams_bashforth(history), x, sigma)
        if callback is not None:
            callback(i, x, sigma_next)
    return x


def _v_mixing(combine_v):
    """(into, back): how diffusers' PNDM mixes model outputs. With v_prediction it mixes the raw v outputs and turns
    the mix into eps at the step's start (latents, level); otherwise eps is mixed directly."""
    if combine_v:
        return _eps_to_v, _v_to_eps
    return (lambda eps, x, sigma: eps), (lambda eps, x, sigma: eps)


@torch.no_grad()
def sample_pndm(model, x, sigmas, *, sigmas_next, sigmas_early, sigmas_mid, combine_v=False, callback=None):
    """Pseudo numerical methods (PNDM; Liu et al. 2022, arXiv:2202.09778, alg. 1-2) as diffusers' PNDMScheduler runs
    them by default: the first len(sigmas_mid) steps are pseudo Runge-Kutta (RK4 through the DDIM transfer
    x' = x0 + (sigma' - sigma) e, four calls: e1 at the start, e2 at the midpoint from the transfer with e1, e3 at
    the midpoint from the transfer with e2, e4 at the end from the transfer with e3, then e = (e1 + 2 e2 + 2 e3 +
    e4) / 6); later steps are pseudo linear multistep (Adams-Bashforth over the last four eps, the RK steps' e1
    included). diffusers' quirk, kept: e1's transfer lands at `sigmas_early` (t - h) and is read at the midpoint
    `sigmas_mid` (t' + h), which differ when the spacing is not even. callback(k, x, sigma) after every model call k
    (diffusers returns a sample from each)."""
    into, back = _v_mixing(combine_v)
    history, k = [], 0

    def report(x, sigma):
        nonlocal k
        if callback is not None:
            callback(k, x, sigma)
        k += 1

    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas_next[i]
        if i > 0:
            x = _relabel(x, sigmas_next[i - 1], sigma)
        out = into((x - model(x, sigma)) / sigma, x, sigma)
        history = (history + [out])[-4:]
        if i < len(sigmas_mid):
            x0, early, mid, total = x, sigmas_early[i], sigmas_mid[i], out / 6
            x = x0 + (early - sigma) * back(out, x0, sigma)
            report(x, early)
            x = _relabel(x, early, mid)
            out = into((x - model(x, mid)) / mid, x, mid)
            total = total + out / 3
            x = x0 + (mid - sigma) * back(out, x0, sigma)
            report(x, mid)
            out = into((x - model(x, mid)) / mid, x, mid)
            total = total + out / 3
            x = x0 + (sigma_next - sigma) * back(out, x0, sigma)
            report(x, sigma_next)
            out = into((x - model(x, sigma_next)) / sigma_next, x, sigma_next)
            x = x0 + (sigma_next - sigma) * back(total + out / 6, x0, sigma)
        else:
            x = x + (sigma_next - sigma) * back(_adams_bashforth(history), x, sigma)
        report(x, sigma_next)
    return x


def _lms_coefficient(sigmas, i, order, j):
    """Integral over [sigma_i, sigma_{i+1}] of the Lagrange basis polynomial of sigma_{i-j} through
    sigma_i … sigma_{i-order+1} (exact: Gauss–Legendre with `order` nodes)."""
    s = [float(sigmas[i - k]) for k in range(order)]
    a, b = float(sigmas[i]), float(sigmas[i + 1])
    nodes, weights = np.polynomial.legendre.leggauss(max(order, 1))
    tau = (b - a) / 2 * nodes + (a + b) / 2
    basis = np.prod([(tau - s[k]) / (s[j] - s[k]) for k in range(order) if k != j], axis=0)
    return float((b - a) / 2 * np.sum(weights * basis))


@torch.no_grad()
def sample_lms(model, x, sigmas, *, order=4, sigmas_before=(), callback=None):
    """Linear multistep in sigma on dx/dsigma = (x - D) / sigma (Karras et al. 2022's LMS baseline; k-diffusion).
    sigmas_before: levels of steps skipped by `start_at`; diffusers' LMS still takes its Lagrange nodes there (its
    order counts from the schedule's start) while its history of slopes starts empty, so fewer terms are summed."""
    nodes = torch.cat([torch.as_tensor(sigmas_before, dtype=sigmas.dtype), sigmas])
    ds = []
    for i in range(len(sigmas) - 1):
        ds = (ds + [(x - model(x, sigmas[i])) / sigmas[i]])[-order:]
        j = i + len(sigmas_before)
        coefficients = [_lms_coefficient(nodes, j, min(j + 1, order), k) for k in range(min(j + 1, order))]
        x = x + sum(c * d for c, d in zip(coefficients, reversed(ds)))
        if callback is not None:
            callback(i, x, sigmas[i + 1])
    return x


@torch.no_grad()
def sample_euler(model, x, sigmas, *, callback=None):
    """Euler's method on the probability-flow ODE dx/dsigma = (x - D(x; sigma)) / sigma (Karras et al. 2022, alg. 2
    without churn)."""
    for i in range(len(sigmas) - 1):
        d = (x - model(x, sigmas[i])) / sigmas[i]
        x = x + d * (sigmas[i + 1] - sigmas[i])
        if callback is not None:
            callback(i, x, sigmas[i + 1])
    return x


@torch.no_grad()
def sample_euler_ancestral(model, x, sigmas, *, generator=None, callback=None):
    """Ancestral Euler: an Euler step to sigma_down, then fresh noise of std sigma_up (drawn at every step, as
    diffusers does, zero-scaled on the last)."""
    for i in range(len(sigmas) - 1):
        sigma = sigmas[i]
        denoised = model(x, sigma)
        sigma_down, sigma_up = ancestral_step(sigma, sigmas[i + 1])
        x = x + (x - denoised) / sigma * (sigma_down - sigma)
        x = x + _noise(x, generator) * sigma_up
        if callback is not None:
            callback(i, x, sigmas[i + 1])
    return x


@torch.no_grad()
def sample_heun(model, x, sigmas, *, callback=None):
    """Heun's 2nd-order method (Karras et al. 2022, alg. 1 without churn); Euler on the last step to sigma = 0."""
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        d = (x - model(x, sigma)) / sigma
        dt = sigma_next - sigma
        if sigma_next == 0:
            x = x + d * dt
        else:
            x_2 = x + d * dt
            d_2 = (x_2 - model(x_2, sigma_next)) / sigma_next
            x = x + (d + d_2) / 2 * dt
        if callback is not None:
            callback(i, x, sigma_next)
    return x


@torch.no_grad()
def sample_dpm_2(model, x, sigmas, *, sigmas_mid=None, callback=None):
    """DPM-Solver-2 (Lu et al. 2022, arXiv:2206.00927, alg. 1 in sigma; Karras et al. 2022's 'DPM2'): an Euler step to
    the midpoint sigma_mid = sqrt(sigma sigma'), then the full step with the midpoint's slope."""
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        d = (x - model(x, sigma)) / sigma
        if sigma_next == 0:
            x = x + d * (sigma_next - sigma)
        else:
            sigma_mid = sigma.log().lerp(sigma_next.log(), 0.5).exp() if sigmas_mid is None else sigmas_mid[i]
            x_2 = x + d * (sigma_mid - sigma)
            d_2 = (x_2 - model(x_2, sigma_mid)) / sigma_mid
            x = x + d_2 * (sigma_next - sigma)
        if callback is not None:
            callback(i, x, sigma_next)
    return x


@torch.no_grad()
def sample_dpm_2_ancestral(model, x, sigmas, *, sigmas_mid=None, sigmas_up=None, sigmas_down=None, generator=None,
                           callback=None):
    """Ancestral DPM-Solver-2: the midpoint step to sigma_down, then fresh noise of std sigma_up; Euler to 0 last."""
    for i in range(len(sigmas) - 1):
        sigma = sigmas[i]
        d = (x - model(x, sigma)) / sigma
        if sigmas_up is None:
            sigma_down, sigma_up = ancestral_step(sigma, sigmas[i + 1])
        else:
            sigma_down, sigma_up = sigmas_down[i], sigmas_up[i]
        if sigma_down == 0:
            x = x + d * (sigma_down - sigma)
        else:
            sigma_mid = sigma.log().lerp(sigma_down.log(), 0.5).exp() if sigmas_mid is None else sigmas_mid[i]
            x_2 = x + d * (sigma_mid - sigma)
            d_2 = (x_2 - model(x_2, sigma_mid)) / sigma_mid
            x = x + d_2 * (sigma_down - sigma) + _noise(x, generator) * sigma_up
        if callback is not None:
            callback(i, x, sigmas[i + 1])
    return x


def _lambda(sigma):
    """Half log-SNR lambda = log(alpha / sigma_vp) = -log(sigma) (Lu et al. 2022)."""
    return sigma.log().neg()


def _dpmpp_step(x, sigma, sigma_next, h, d, sde, noise, midpoint_2nd):
    """x' = (sigma'/sigma) [e^-h] x + c0 D0 + c1 D1 + c2 D2 (+ sigma' sqrt(1 - e^-2h) z): DPM-Solver++ and its SDE
    variant (Lu et al. 2022, arXiv:2211.01095, eqs. 9, 13 and appendix), with diffusers' coefficients.
    d: D0[, D1[, D2]]; midpoint_2nd: the 2nd-order 'midpoint' coefficient instead of the 'heun' one."""
    if sde:
        e = torch.exp(-2.0 * h)
        c = [1 - e, 0.5 * (1 - e) if midpoint_2nd else (1 - e) / (-2.0 * h) + 1.0,
             (1.0 - e - 2.0 * h) / (2.0 * h) ** 2 - 0.5]  # diffusers' sign: c2 -> -1, not 0, as h -> 0
        x = sigma_next / sigma * torch.exp(-h) * x
    else:
        e = torch.exp(-h)
        c = [-(e - 1.0), -0.5 * (e - 1.0) if midpoint_2nd else (e - 1.0) / h + 1.0, -((e - 1.0 + h) / h ** 2 - 0.5)]
        x = sigma_next / sigma * x
    for c_k, d_k in zip(c, d):
        x = x + c_k * d_k
    return x + sigma_next * torch.sqrt(1.0 - torch.exp(-2 * h)) * noise if sde else x


@torch.no_grad()
def sample_dpmpp_2m(model, x, sigmas, *, orders=None, solver_type="midpoint", sde=False, generator=None,
                    callback=None):
    """DPM-Solver++ multistep (Lu et al. 2022, arXiv:2211.01095, alg. 2; order 3 from their multistep formula), in
    lambda = -log sigma with h = lambda' - lambda and r = h_prev / h; sde=True is SDE-DPM-Solver++(2M), one randn per
    step. orders[i]: the highest order step i may use (diffusers' lower_order_final rules); it warms up from 1."""
    history = []
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        history = (history + [model(x, sigma)])[-3:]
        order = min(2 if orders is None else orders[i], i + 1)
        noise = randn(x.shape, generator, x.device, torch.float32) if sde else None
        h = _lambda(sigma_next) - _lambda(sigma)
        m0 = history[-1]
        if order == 1:
            d = [m0]
        else:
            r0 = (_lambda(sigma) - _lambda(sigmas[i - 1])) / h
            d1_0 = 1.0 / r0 * (m0 - history[-2])
            if order == 2:
                d = [m0, d1_0]
            else:
                r1 = (_lambda(sigmas[i - 1]) - _lambda(sigmas[i - 2])) / h
                d1_1 = 1.0 / r1 * (history[-2] - history[-3])
                d = [m0, d1_0 + r0 / (r0 + r1) * (d1_0 - d1_1), 1.0 / (r0 + r1) * (d1_0 - d1_1)]
        x = _dpmpp_step(x, sigma, sigma_next, h, d, sde, noise, order == 2 and solver_type == "midpoint")
        if callback is not None:
            callback(i, x, sigma_next)
    return x


@torch.no_grad()
def sample_dpmpp_singlestep(model, x, sigmas, *, orders, solver_type="midpoint", sde=False, generator=None,
                            callback=None):
    """Single-step DPM-Solver++ (Lu et al. 2022, arXiv:2211.01095, alg. 1) as diffusers walks it: a group of
    orders 1, 2[, 3] re-solves from the group's first sample, its inner evaluations sitting on the schedule's own
    levels (so every model call is one step of the loop)."""
    history, x_start = [], x
    for i in range(len(sigmas) - 1):
        sigma_next = sigmas[i + 1]
        history = (history + [model(x, sigmas[i])])[-3:]
        noise = randn(x.shape, generator, x.device, x.dtype) if sde else None
        order = min(orders[i], i + 1)
        if order == 1:
            x_start = x
        sigma_start = sigmas[i - order + 1]
        h = _lambda(sigma_next) - _lambda(sigma_start)
        if order == 1:
            d = [history[-1]]
        elif order == 2:
            r0 = (_lambda(sigmas[i]) - _lambda(sigma_start)) / h
            d = [history[-2], 1.0 / r0 * (history[-1] - history[-2])]
        else:
            r0 = (_lambda(sigmas[i]) - _lambda(sigma_start)) / h
            r1 = (_lambda(sigmas[i - 1]) - _lambda(sigma_start)) / h
            d1_0, d1_1 = 1.0 / r1 * (history[-2] - history[-3]), 1.0 / r0 * (history[-1] - history[-3])
            d = [history[-3], d1_1] if solver_type == "midpoint" else \
                [history[-3], (r0 * d1_0 - r1 * d1_1) / (r0 - r1), 2.0 * (d1_1 - d1_0) / (r0 - r1)]
        x = _dpmpp_step(x_start, sigma_start, sigma_next, h, d, sde, noise, order == 2 and solver_type == "midpoint")
        if callback is not None:
            callback(i, x, sigma_next)
    return x


class BrownianNoise:
    """Normalised increments (W(sigma') - W(sigma)) / sqrt(|sigma' - sigma|) of one Brownian motion W over sigma,
    sampled lazily from `generator`: each new time point costs one randn of x's shape (an extension from the nearest
    known point, or a Brownian-bridge draw between its neighbours). The same law as the torchsde BrownianInterval
    diffusers' DPMSolverSDEScheduler queries; the draws come from the pipeline's generator instead."""

    def __init__(self, x, generator=None):
        self.x, self.generator, self.w = x, generator, {}

    def _at(self, t: float) -> torch.Tensor:
        if t not in self.w:
            below = max((s for s in self.w if s < t), default=None)
            above = min((s for s in self.w if s > t), default=None)
            if below is None and above is None:
                self.w[t] = torch.zeros_like(self.x)
            elif below is None or above is None:
                near = above if below is None else below
                self.w[t] = self.w[near] + abs(t - near) ** 0.5 * _noise(self.x, self.generator)
            else:
                f = (t - below) / (above - below)
                self.w[t] = self.w[below] + f * (self.w[above] - self.w[below]) + \
                    ((t - below) * (above - t) / (above - below)) ** 0.5 * _noise(self.x, self.generator)
        return self.w[t]

    def __call__(self, sigma, sigma_next) -> torch.Tensor:
        start = self._at(float(sigma))
        return (self._at(float(sigma_next)) - start) / abs(float(sigma_next) - float(sigma)) ** 0.5


def _sde_step(x, t, t_to, denoised, noise_sampler):
    """One ancestral exponential step from exp(-t) to exp(-t_to) in the data-prediction form (eta = 1)."""
    sigma_from, sigma_to = t.neg().exp(), t_to.neg().exp()
    sigma_up = torch.minimum(sigma_to, (sigma_to ** 2 * (sigma_from ** 2 - sigma_to ** 2) / sigma_from ** 2) ** 0.5)
    t_down = ((sigma_to ** 2 - sigma_up ** 2) ** 0.5).log().neg()
    x = t_down.neg().exp() / sigma_from * x - (t - t_down).expm1() * denoised
    return x + noise_sampler(sigma_from, sigma_to) * sigma_up


@torch.no_grad()
def sample_dpmpp_sde(model, x, sigmas, *, generator=None, noise_sampler=None, callback=None):
    """DPM-Solver++ SDE, 2nd order with r = 1/2 (k-diffusion's sample_dpmpp_sde, after Lu et al. 2022): an ancestral
    step to the midpoint in t = -log sigma, then the full ancestral step from x with the midpoint's denoised. The
    noise is Brownian (`BrownianNoise`); Euler to sigma = 0 on the last step."""
    noise_sampler = BrownianNoise(x, generator) if noise_sampler is None else noise_sampler
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = model(x, sigma)
        if sigma_next == 0:
            x = x + (x - denoised) / sigma * (sigma_next - sigma)
        else:
            t, t_next = _lambda(sigma), _lambda(sigma_next)
            sigma_mid = sde_midpoint(sigma, sigma_next)
            x_2 = _sde_step(x, t, t + (t_next - t) * 0.5, denoised, noise_sampler)
            x = _sde_step(x, t, t_next, model(x_2, sigma_mid), noise_sampler)
        if callback is not None:
            callback(i, x, sigma_next)
    return x


def _deis_coefficients(sigma_t, sigmas):
    """DEIS (Zhang & Chen 2023, arXiv:2204.13902) 'logrho' coefficients: the integrals over [rho_0, rho_t] drho of
    the Lagrange basis in log rho through rho_0..rho_k (rho = sigma_vp / alpha, the VE level), in diffusers' closed
    form. These differences of near-equal terms cancel in float32, so they are evaluated with diffusers' very
    operations (numpy's float32 log; rho rounded through alpha) to stay within float rounding of its results."""
    def rho(s):
        alpha = 1 / (s ** 2 + 1) ** 0.5
        return s * alpha / alpha

    def lg(v):
        return torch.tensor(np.log(v.numpy()))
    t, r = rho(sigma_t), [rho(s) for s in sigmas]
    if len(r) == 2:
        def ind(t, b, c):
            return t * (-lg(c) + lg(t) - 1) / (lg(b) - lg(c))
        return [ind(t, r[0], r[1]) - ind(r[0], r[0], r[1]), ind(t, r[1], r[0]) - ind(r[0], r[1], r[0])]

    def ind(t, b, c, d):
        num = t * (lg(c) * (lg(d) - lg(t) + 1) - lg(d) * lg(t) + lg(d) + lg(t) ** 2 - 2 * lg(t) + 2)
        return num / ((lg(b) - lg(c)) * (lg(b) - lg(d)))
    s0, s1, s2 = r
    return [ind(t, s0, s1, s2) - ind(s0, s0, s1, s2), ind(t, s1, s2, s0) - ind(s0, s1, s2, s0),
            ind(t, s2, s0, s1) - ind(s0, s2, s0, s1)]


@torch.no_grad()
def sample_deis(model, x, sigmas, *, orders=None, callback=None):
    """DEIS multistep (Zhang & Chen 2023, arXiv:2204.13902): x' = x + sum_j C_j eps_j, an exponential integrator whose
    eps is extrapolated by a polynomial in log sigma through the last 1–3 steps; order 1 is DDIM."""
    history = []
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        history = (history + [(x - model(x, sigma)) / sigma])[-3:]
        order = min(2 if orders is None else orders[i], i + 1)
        if order == 1:
            x = x + (sigma_next - sigma) * history[-1]
        else:
            coefficients = _deis_coefficients(sigma_next, [sigmas[i - k] for k in range(order)])
            for c, eps in zip(coefficients, reversed(history[-order:])):
                x = x + c * eps
        if callback is not None:
            callback(i, x, sigma_next)
    return x


def _unipc_terms(h, rks, order, solver_type):
    """B(h), phi_1(-h) and the order conditions R rho = b of UniPC (Zhao et al. 2023, arXiv:2302.04867, alg. 2)."""
    hh = -h
    h_phi_1 = torch.expm1(hh)
    h_phi_k, factorial = h_phi_1 / hh - 1, 1
    b_h = hh if solver_type == "bh1" else torch.expm1(hh)
    rks = torch.stack(rks + [torch.ones(())])
    r, b = [], []
    for k in range(1, order + 1):
        r.append(torch.pow(rks, k - 1))
        b.append(h_phi_k * factorial / b_h)
        factorial *= k + 1
        h_phi_k = h_phi_k / hh - 1 / factorial
    return h_phi_1, b_h, torch.stack(r), torch.stack(b)


def _unipc_update(x, sigma_s, sigma_t, m0, previous, rhos_fn, order, solver_type, m_t=None):
    """UniP (m_t None) or UniC step from (x, sigma_s) to sigma_t; `previous`: (sigma_k, denoised_k) further back."""
    h = _lambda(sigma_t) - _lambda(sigma_s)
    rks = [(_lambda(s_k) - _lambda(sigma_s)) / h for s_k, _ in previous]
    d1s = [(m_k - m0) / r_k for (_, m_k), r_k in zip(previous, rks)]
    h_phi_1, b_h, r, b = _unipc_terms(h, rks, order, solver_type)
    x_t = sigma_t / sigma_s * x - h_phi_1 * m0
    if m_t is None and not d1s:
        return x_t
    rhos = rhos_fn(r, b).to(x.device, x.dtype)
    res = sum(rho * d for rho, d in zip(rhos, d1s))
    if m_t is not None:
        res = res + rhos[-1] * (m_t - m0)
    return x_t - b_h * res


def _rhos_p(r, b):
    return torch.ones(1) * 0.5 if len(b) == 2 else torch.linalg.solve(r[:-1, :-1], b[:-1])


def _rhos_c(r, b):
    return torch.ones(1) * 0.5 if len(b) == 1 else torch.linalg.solve(r, b)


@torch.no_grad()
def sample_unipc(model, x, sigmas, *, orders=None, correct=None, solver_type="bh2", callback=None):
    """UniPC (Zhao et al. 2023, arXiv:2302.04867), data prediction: each new denoised first corrects the previous
    step (UniC, no extra model call), then predicts the next (UniP); no corrector after the last step."""
    history, x_last, order_last = [], None, 1
    keep = max(3, *(orders or (2,)))
    for i in range(len(sigmas) - 1):
        sigma = sigmas[i]
        denoised = model(x, sigma)
        if x_last is not None and (correct is None or correct[i]):
            previous = [(sigmas[i - 1 - k], history[-1 - k]) for k in range(1, order_last)]
            x = _unipc_update(x_last, sigmas[i - 1], sigma, history[-1], previous, _rhos_c, order_last, solver_type,
                              m_t=denoised)
        history = (history + [denoised])[-keep:]
        order = min(2 if orders is None else orders[i], i + 1)
        x_last, order_last = x, order
        previous = [(sigmas[i - k], history[-1 - k]) for k in range(1, order)]
        x = _unipc_update(x, sigma, sigmas[i + 1], denoised, previous, _rhos_p, order, solver_type)
        if callback is not None:
            callback(i, x, sigmas[i + 1])
    return x


_SAMPLE = {"ddim": sample_ddim, "ddpm": sample_ddim, "pndm": sample_pndm, "plms": sample_plms, "lms": sample_lms,
           "euler": sample_euler, "euler-a": sample_euler_ancestral, "heun": sample_heun, "kdpm2": sample_dpm_2,
           "kdpm2-a": sample_dpm_2_ancestral, "dpmpp-2m": sample_dpmpp_2m, "dpmpp-2m-sde": sample_dpmpp_2m,
           "dpmpp-2s": sample_dpmpp_singlestep, "dpm-sde": sample_dpmpp_sde, "deis": sample_deis,
           "unipc": sample_unipc}
_SCHEDULE_ONLY = ("step_ratio", "final")  # kept for start_at


def _clip(config: dict):
    """The scheduler's own x0 clipping (dynamic thresholding, else clip_sample), as a function, or None."""
    if config.get("thresholding"):
        return lambda x0: dynamic_threshold(x0, config["dynamic_thresholding_ratio"], config["sample_max_value"])
    if config.get("clip_sample"):
        return lambda x0: x0.clamp(-config["clip_sample_range"], config["clip_sample_range"])
    return None


def _denoiser(plan: Plan, model, denoised_hook, dtype, clip=None):
    """D(x; sigma) from the pipeline's `model(x_in, t)`: x_in = x / sqrt(sigma^2 + 1) and t the timestep diffusers
    feeds that call (the samplers call the model in diffusers' order; a level off the plan gets its timestep by
    diffusers' log-sigma interpolation); eps, v (Salimans & Ho 2022) or sample prediction per the config."""
    levels = plan.call_sigmas.tolist()
    first_call_at = {}
    for i, s in enumerate(levels):
        first_call_at.setdefault(s, i)
    log_sigmas = np.log((((1 - plan.alphas_cumprod) / plan.alphas_cumprod) ** 0.5).numpy())
    prediction = plan.config["prediction_type"]
    calls = [0]

    def timestep(sigma):
        j, s = calls[0], float(sigma)
        calls[0] += 1
        i = j if j < len(levels) and levels[j] == s else first_call_at.get(s)
        if i is not None:
            return plan.timesteps[i]
        return torch.as_tensor(sigma_to_t(np.float64(s), log_sigmas), dtype=plan.timesteps.dtype)

    def denoise(x, sigma):
        out = model((x / (sigma ** 2 + 1) ** 0.5).to(dtype), timestep(sigma)).to(x.dtype)
        if prediction == "epsilon":
            denoised = x - sigma * out
        elif prediction == "v_prediction":
            denoised = out * (-sigma / (sigma ** 2 + 1) ** 0.5) + x / (sigma ** 2 + 1)
        else:  # "sample" (Euler's alias "original_sample")
            denoised = out
        denoised = denoised if clip is None else clip(denoised)
        return denoised if denoised_hook is None else denoised_hook(denoised, sigma)
    return denoise


def dynamic_threshold(x0: torch.Tensor, ratio: float, max_value: float) -> torch.Tensor:
    """Dynamic thresholding (Saharia et al. 2022, arXiv:2205.11487, sec. 2.3) of x0 predictions (B, ...): s = the
    `ratio` quantile of |x0| per sample, kept within [1, max_value]; x0 is clipped to [-s, s] and divided by s."""
    flat = x0.reshape(x0.shape[0], -1)
    s = torch.quantile(flat.abs().float(), ratio, dim=1).clamp(min=1, max=max_value).unsqueeze(1)
    return (flat.clamp(-s, s) / s).reshape(x0.shape).to(x0.dtype)


def run(plan: Plan, model, latents: torch.Tensor, *, generator=None, eta=None, callback=None, callback_steps=1,
        denoised_hook=None, progress: Callable | None = None) -> torch.Tensor:
    """Run the plan's sampler from `latents` (unit-variance noise, or a `start_at` plan's `add_noise` output) and
    return the final latents (B, C, H, W) exactly as diffusers' denoising loop leaves them.

    model(x_in, t): the pipeline's guided UNet call, fed what diffusers feeds it (scale_model_input output, t).
    eta: DDIM's eta (None: the plan's); ignored by other samplers, as diffusers' pipelines ignore it.
    callback(step, t, latents): called where diffusers' loop calls it (every `callback_steps` loop indices, at
        loop index // scheduler.order), latents in diffusers' space.
    denoised_hook(denoised, sigma) -> denoised: applied to every x0 prediction before the sampler uses it.
    progress(done, total): called after each of the num_inference_steps steps (a progress.Stage's `steps`).
    """
    if isinstance(callback_steps, bool) or not isinstance(callback_steps, int) or callback_steps < 1:
        raise InvalidArgument(f"callback_steps must be a positive integer, got {callback_steps!r}")
    dtype = latents.dtype  # the sampler state is kept in at least float32, the model sees `dtype`
    x = (latents * plan.init_noise_sigma).to(torch.promote_types(dtype, torch.float32))
    if len(plan.timesteps) == 0:
        return x.to(dtype)
    sigmas = plan.sigmas
    if plan.space == "vp":
        x = x * (sigmas[0] ** 2 + 1) ** 0.5
    done = [0]

    def in_diffusers_space(x, sigma):
        return (x / (sigma ** 2 + 1) ** 0.5 if plan.space == "vp" else x).to(dtype)

    def on_step(k, x, sigma):
        i = plan.step_calls[k]
        if i is None:  # a warm-up call, where diffusers' loop reports nothing
            return
        done[0] += 1
        if progress:
            progress(done[0], plan.num_inference_steps)
        if callback is not None and i % callback_steps == 0:
            callback(i // plan.order, plan.timesteps[i], in_diffusers_space(x, sigma))

    options = {k: v for k, v in plan.options.items() if k not in _SCHEDULE_ONLY}
    if plan.name == "ddim":
        options["eta"] = plan.eta if eta is None else float(eta)
    sample = _SAMPLE[plan.name]
    if "generator" in inspect.signature(sample).parameters:
        options["generator"] = generator
    if plan.config.get("noise_sampler_seed") is not None:  # DPM-SDE's Brownian path from its own seed, as diffusers
        seeded = torch.Generator(x.device).manual_seed(int(plan.config["noise_sampler_seed"]))
        options["noise_sampler"] = BrownianNoise(x, seeded)
    clip = _clip(plan.config)
    if plan.name == "ddim":  # DDIM clips the x0 term only
        options["clip"], clip = clip, None
    x = sample(_denoiser(plan, model, denoised_hook, dtype, clip), x, sigmas, callback=on_step, **options)
    return in_diffusers_space(x, sigmas[-1])
