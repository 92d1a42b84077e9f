"""soundsmith.samplers against diffusers' schedulers, the numerical oracle.

Each test runs a fake deterministic UNet (a fixed 1x1 conv plus a smooth function of t) on (2, 4, 8, 4) latents
through (a) diffusers' scheduler loop, exactly as its AudioLDM pipelines drive it (`from_config`, `set_timesteps`,
`init_noise_sigma`, `scale_model_input`, `step` with eta/generator when the step accepts them, callbacks by the
warm-up/order rule), and (b) `samplers.run(samplers.plan(cfg, name, N), ...)`, and compares the final latents
(relative error <= 1e-4), the timesteps fed to the model, and the callback sequence.

Oracle patches (the reference venv lacks two optional dependencies of diffusers; we patch the oracle, never our code):
- LMSDiscreteScheduler needs scipy.integrate.quad for its coefficients. Without scipy we give its module a `quad`
  that integrates by Gauss-Legendre with 8 nodes, exact for the cubic-at-most Lagrange polynomials it integrates.
- DPMSolverSDEScheduler imports torchsde for a Brownian tree seeded from the global RNG (or noise_sampler_seed),
  never from the pipeline's generator, so no implementation can match its draws. Without torchsde we install a
  stand-in `torchsde.BrownianInterval`: an exact Brownian motion sampled lazily from a generator we choose, drawing
  in the order soundsmith's `BrownianNoise` draws. That proves the step arithmetic exactly (same noise in, same
  latents out); `test_dpm_sde_noise_has_the_law_of_brownian_motion` proves statistically that our noise has the law
  of the Brownian increments torchsde supplies.
"""

import inspect
import math
import sys
import types
import warnings

import numpy as np
import pytest
import torch

import diffusers
from diffusers.utils.torch_utils import randn_tensor

from soundsmith import samplers
from soundsmith.errors import InvalidArgument

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::UserWarning")
diffusers.utils.logging.set_verbosity_error()

# --- oracle patches -------------------------------------------------------------------------------------------

from diffusers.schedulers import scheduling_lms_discrete  # noqa: E402

try:
    import scipy.integrate  # noqa: F401
except ImportError:
    def _gauss_legendre_quad(f, a, b, epsrel=None):
        nodes, weights = np.polynomial.legendre.leggauss(8)
        tau = (b - a) / 2 * nodes + (a + b) / 2
        return (b - a) / 2 * sum(w * float(f(t)) for w, t in zip(weights, tau)), 0.0
    scheduling_lms_discrete.integrate = types.SimpleNamespace(quad=_gauss_legendre_quad)

_BROWNIAN_GENERATOR = [None]

try:
    import torchsde  # noqa: F401
    HAVE_TORCHSDE = True
except ImportError:
    HAVE_TORCHSDE = False

    class _BrownianInterval:
        """Stand-in for torchsde.BrownianInterval: W(tb) - W(ta) of a lazily sampled Brownian motion."""

        def __init__(self, t0, t1, size, dtype=None, device=None, **_):
            self.size, self.dtype, self.device, self.w = size, dtype, device, {}

        def _at(self, t):
            t = float(t)
            if t not in self.w:
                known = sorted(self.w)
                below = [s for s in known if s < t]
                above = [s for s in known if s > t]
                z = lambda: torch.randn(self.size, generator=_BROWNIAN_GENERATOR[0], dtype=self.dtype)  # noqa: E731
                if not known:
                    self.w[t] = torch.zeros(self.size, dtype=self.dtype)
                elif not below or not above:
                    near = above[0] if not below else below[-1]
                    self.w[t] = self.w[near] + abs(t - near) ** 0.5 * z()
                else:
                    lo, hi = below[-1], above[0]
                    self.w[t] = self.w[lo] + (t - lo) / (hi - lo) * (self.w[hi] - self.w[lo]) + \
                        ((t - lo) * (hi - t) / (hi - lo)) ** 0.5 * z()
            return self.w[t]

        def __call__(self, ta, tb):
            w_b = self._at(tb)
            return w_b - self._at(ta)

    sys.modules["torchsde"] = types.SimpleNamespace(BrownianInterval=_BrownianInterval)

from diffusers.schedulers.scheduling_dpmsolver_sde import DPMSolverSDEScheduler  # noqa: E402

if not HAVE_TORCHSDE:
    del sys.modules["torchsde"]  # the oracle module keeps its reference; nothing else sees the stand-in

# --- configs, model, the two loops ----------------------------------------------------------------------------

# The scheduler_config.json of cvssp/audioldm*, audioldm2* and musicldm.
AUDIOLDM = dict(_class_name="DDIMScheduler", num_train_timesteps=1000, beta_start=0.0015, beta_end=0.0195,
                beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False, steps_offset=1,
                prediction_type="epsilon", timestep_spacing="leading")
# diffusers' fast-test scheduler, as a pipeline's `scheduler.config` holds it (with `_use_default_values`).
TINY = dict(diffusers.DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                    clip_sample=False, set_alpha_to_one=False).config)
CONFIGS = {"audioldm": AUDIOLDM, "tiny": TINY}

ORACLE = {"ddim": (diffusers.DDIMScheduler, {}), "ddpm": (diffusers.DDPMScheduler, {}),
          "pndm": (diffusers.PNDMScheduler, {}), "plms": (diffusers.PNDMScheduler, {"skip_prk_steps": True}),
          "lms": (scheduling_lms_discrete.LMSDiscreteScheduler, {}),
          "euler": (diffusers.EulerDiscreteScheduler, {}),
          "euler-a": (diffusers.EulerAncestralDiscreteScheduler, {}),
          "heun": (diffusers.HeunDiscreteScheduler, {}), "kdpm2": (diffusers.KDPM2DiscreteScheduler, {}),
          "kdpm2-a": (diffusers.KDPM2AncestralDiscreteScheduler, {}),
          "dpmpp-2m": (diffusers.DPMSolverMultistepScheduler, {}),
          "dpmpp-2m-sde": (diffusers.DPMSolverMultistepScheduler, {"algorithm_type": "sde-dpmsolver++"}),
          "dpmpp-2s": (diffusers.DPMSolverSinglestepScheduler, {}), "dpm-sde": (DPMSolverSDEScheduler, {}),
          "deis": (diffusers.DEISMultistepScheduler, {}), "unipc": (diffusers.UniPCMultistepScheduler, {})}
KARRAS = ["lms", "euler", "heun", "kdpm2", "kdpm2-a", "dpmpp-2m", "dpmpp-2m-sde", "dpmpp-2s", "dpm-sde", "deis",
          "unipc"]
TOLERANCE = 1e-4
SHAPE = (2, 4, 8, 4)


class FakeUNet:
    """A deterministic stand-in for the guided UNet: a fixed near-identity 1x1 conv plus a smooth function of t.
    Records the timesteps it is fed."""

    def __init__(self, seed=0, channels=4):
        g = torch.Generator().manual_seed(seed)
        self.weight = torch.eye(channels) * 0.9 + 0.1 * torch.randn(channels, channels, generator=g)
        self.pattern = torch.randn(1, channels, *SHAPE[2:], generator=g)
        self.timesteps = []

    def __call__(self, x, t):
        self.timesteps.append(float(t))
        t = torch.as_tensor(t).to(torch.float32)
        return torch.einsum("oc,bchw->bohw", self.weight, x) + 0.1 * torch.sin(t / 150) * self.pattern


def noise(seed=1, shape=SHAPE):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def generator(seed):
    if isinstance(seed, list):
        return [torch.Generator().manual_seed(s) for s in seed]
    _BROWNIAN_GENERATOR[0] = torch.Generator().manual_seed(seed)  # the stand-in torchsde's draws
    return torch.Generator().manual_seed(seed)


def diffusers_loop(name, config, n, latents, seed=7, eta=0.0, callback_steps=1, **overrides):
    """diffusers' AudioLDM denoising loop around `Cls.from_config(config)`; (latents, model timesteps, callbacks)."""
    cls, preset = ORACLE[name]
    sched = cls.from_config(config, **{**preset, **overrides})
    sched.set_timesteps(n)
    model, g, callbacks = FakeUNet(), generator(seed), []
    x = latents * sched.init_noise_sigma
    accepts = set(inspect.signature(sched.step).parameters)
    kwargs = {k: v for k, v in (("eta", eta), ("generator", g)) if k in accepts}
    warmup = len(sched.timesteps) - n * sched.order
    for i, t in enumerate(sched.timesteps):
        x = sched.step(model(sched.scale_model_input(x, t), t), t, x, **kwargs).prev_sample
        if i == len(sched.timesteps) - 1 or ((i + 1) > warmup and (i + 1) % sched.order == 0):
            if i % callback_steps == 0:
                callbacks.append((i // sched.order, t.item(), x.clone()))
    return x, model.timesteps, callbacks


def soundsmith_loop(name, config, n, latents, seed=7, eta=None, callback_steps=1, **overrides):
    plan = samplers.plan(config, name, n, **overrides)
    model, callbacks = FakeUNet(), []
    x = samplers.run(plan, model, latents, generator=generator(seed), eta=eta, callback_steps=callback_steps,
                     callback=lambda i, t, x: callbacks.append((i, t.item(), x.clone())))
    return x, model.timesteps, callbacks


def relative_error(ours, reference):
    return ((ours - reference).norm() / reference.norm()).item()


def assert_same_run(name, config, n, latents=None, **kwargs):
    latents = noise() if latents is None else latents
    expected, expected_ts, expected_calls = diffusers_loop(name, config, n, latents, **kwargs)
    kwargs.pop("eta", None) if name != "ddim" else None
    got, got_ts, got_calls = soundsmith_loop(name, config, n, latents, **kwargs)
    assert relative_error(got, expected) <= TOLERANCE, relative_error(got, expected)
    np.testing.assert_allclose(got_ts, expected_ts, rtol=1e-6, atol=1e-4)
    assert [(i, t) for i, t, _ in got_calls] == [(i, t) for i, t, _ in expected_calls]
    for (_, _, a), (_, _, b) in zip(got_calls, expected_calls):
        assert relative_error(a, b) <= TOLERANCE
    return relative_error(got, expected)


# --- every sampler, both configs ------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 10, 25])
@pytest.mark.parametrize("config", ["audioldm", "tiny"])
@pytest.mark.parametrize("name", list(ORACLE))
def test_sampler_matches_diffusers_scheduler_loop(name, config, n):
    if name == "pndm" and n < 4:  # see test_pndm_runge_kutta_needs_four_steps_like_diffusers
        n += 3
    assert_same_run(name, CONFIGS[config], n)


@pytest.mark.parametrize("n", [4, 5, 7, 13])
@pytest.mark.parametrize("spacing", ["leading", "linspace", "trailing"])
def test_pndm_runge_kutta_warm_up_matches_diffusers_step_for_step(spacing, n):
    """skip_prk_steps=False (diffusers' default): 3 pseudo-RK4 steps of 4 calls, then PLMS; the callbacks (after
    the last N of the N + 9 calls, some inside the last RK step) carry the same intermediate latents."""
    assert_same_run("pndm", AUDIOLDM, n, timestep_spacing=spacing)
    assert len(samplers.plan(AUDIOLDM, "pndm", n).timesteps) == n + 9


@pytest.mark.parametrize("n", [1, 2, 3])
def test_pndm_runge_kutta_needs_four_steps_like_diffusers(n):
    sched = diffusers.PNDMScheduler.from_config(AUDIOLDM)
    with pytest.raises(ValueError):
        sched.set_timesteps(n)
    with pytest.raises(InvalidArgument, match=f"num_inference_steps={n} is too few for PNDM's Runge-Kutta"):
        samplers.plan(AUDIOLDM, "pndm", n)
    assert samplers.plan(AUDIOLDM, "plms", n).num_inference_steps == n


def test_pndm_runs_runge_kutta_unless_the_config_skips_it():
    """'pndm' / 'PNDMScheduler' take skip_prk_steps from the checkpoint's config like from_config; 'plms' skips."""
    assert samplers.plan(AUDIOLDM, "PNDMScheduler", 10).name == "pndm"
    assert samplers.plan(AUDIOLDM, "pndm", 10).config["skip_prk_steps"] is False
    sd_style = {**AUDIOLDM, "_class_name": "PNDMScheduler", "skip_prk_steps": True}
    assert samplers.plan(sd_style, None, 10).name == "plms"
    assert samplers.plan(sd_style, "pndm", 10).name == "plms"
    assert samplers.plan(AUDIOLDM, "pndm", 10, skip_prk_steps=True).name == "plms"
    assert samplers.plan(sd_style, "pndm", 10, skip_prk_steps=False).name == "pndm"
    expected, _, _ = diffusers_loop("plms", sd_style, 10, noise())
    got, _, _ = soundsmith_loop("pndm", sd_style, 10, noise())
    assert relative_error(got, expected) <= TOLERANCE


@pytest.mark.parametrize("n", [2, 10, 25])
@pytest.mark.parametrize("name", KARRAS)
def test_sampler_matches_diffusers_with_karras_sigmas(name, n):
    assert_same_run(name, AUDIOLDM, n, use_karras_sigmas=True)


@pytest.mark.parametrize("name", ["lms", "euler", "heun", "kdpm2", "dpmpp-2m", "dpmpp-2s", "deis", "unipc"])
def test_sampler_matches_diffusers_with_exponential_sigmas(name):
    assert_same_run(name, TINY, 10, use_exponential_sigmas=True)


@pytest.mark.parametrize("n", [1, 10, 25])
@pytest.mark.parametrize("eta", [0.3, 1.0])
def test_ddim_with_eta_draws_noise_from_the_generator_like_diffusers(eta, n):
    assert_same_run("ddim", AUDIOLDM, n, eta=eta)


@pytest.mark.parametrize("spacing", ["linspace", "trailing"])
def test_ddim_with_eta_and_other_spacings_matches_diffusers(spacing):
    assert_same_run("ddim", AUDIOLDM, 7, eta=0.8, timestep_spacing=spacing)


def test_ddim_with_eta_and_a_generator_per_sample_matches_diffusers():
    assert_same_run("ddim", AUDIOLDM, 10, eta=0.5, seed=[3, 4])


def test_ddim_eta_override_in_plan_matches_diffusers_eta():
    expected, _, _ = diffusers_loop("ddim", AUDIOLDM, 10, noise(), eta=0.7)
    plan = samplers.plan(AUDIOLDM, "ddim", 10, eta=0.7)
    got = samplers.run(plan, FakeUNet(), noise(), generator=generator(7))
    assert relative_error(got, expected) <= TOLERANCE


@pytest.mark.parametrize("n", [3, 7, 10])
@pytest.mark.parametrize("spacing", ["linspace", "trailing"])
@pytest.mark.parametrize("name", ["ddim", "ddpm", "plms", "euler", "heun", "kdpm2-a", "dpmpp-2m", "deis", "unipc"])
def test_sampler_matches_diffusers_with_other_timestep_spacings(name, spacing, n):
    """DDIM and PNDM step to t - T//N, not to the next timestep, under these spacings (the latents are re-read)."""
    assert_same_run(name, AUDIOLDM, n, timestep_spacing=spacing)


@pytest.mark.parametrize("name", ["ddim", "ddpm", "pndm", "plms", "lms", "euler", "euler-a", "heun", "kdpm2", "kdpm2-a",
                                  "dpmpp-2m", "dpmpp-2m-sde", "dpmpp-2s", "dpm-sde", "deis", "unipc"])
def test_sampler_matches_diffusers_with_v_prediction(name):
    assert_same_run(name, {**AUDIOLDM, "prediction_type": "v_prediction"}, 10)


@pytest.mark.parametrize("overrides", [
    {"solver_order": 1}, {"solver_order": 3}, {"solver_type": "heun"}, {"final_sigmas_type": "sigma_min"},
    {"euler_at_final": True}, {"lower_order_final": False}, {"use_lu_lambdas": True},
    {"solver_order": 3, "algorithm_type": "sde-dpmsolver++"},
    {"solver_type": "heun", "algorithm_type": "sde-dpmsolver++"},
], ids=str)
def test_dpm_solver_multistep_variants_match_diffusers(overrides):
    assert_same_run("dpmpp-2m", AUDIOLDM, 20, **overrides)


@pytest.mark.parametrize("n", [6, 7, 8])
@pytest.mark.parametrize("overrides", [
    {"solver_order": 3}, {"solver_order": 3, "solver_type": "heun"}, {"solver_type": "heun"}, {"solver_order": 1},
    {"algorithm_type": "sde-dpmsolver++"}, {"algorithm_type": "sde-dpmsolver++", "solver_order": 3},
    {"final_sigmas_type": "sigma_min", "lower_order_final": False},
], ids=str)
def test_dpm_solver_singlestep_variants_match_diffusers(overrides, n):
    assert_same_run("dpmpp-2s", AUDIOLDM, n, **overrides)


@pytest.mark.parametrize("overrides", [
    {"solver_order": 3}, {"solver_order": 1}, {"solver_order": 3, "use_karras_sigmas": True},
], ids=str)
def test_deis_variants_match_diffusers(overrides):
    assert_same_run("deis", TINY, 50, **overrides)


@pytest.mark.parametrize("overrides", [
    {"solver_order": 3}, {"solver_order": 1}, {"disable_corrector": [0, 3]}, {"final_sigmas_type": "sigma_min"},
    {"solver_order": 3, "use_karras_sigmas": True, "final_sigmas_type": "sigma_min"},
    {"lower_order_final": False, "final_sigmas_type": "sigma_min"},  # with 'zero' diffusers itself ends in inf
], ids=str)
def test_unipc_variants_match_diffusers(overrides):
    assert_same_run("unipc", AUDIOLDM, 20, **overrides)


@pytest.mark.parametrize("overrides", [{"final_sigmas_type": "sigma_min"}, {"interpolation_type": "log_linear"},
                                       {"use_karras_sigmas": True, "sigma_min": 0.1, "sigma_max": 20.0}], ids=str)
def test_euler_variants_match_diffusers(overrides):
    assert_same_run("euler", AUDIOLDM, 10, **overrides)


@pytest.mark.parametrize("name", ["pndm", "plms"])
def test_pndm_set_alpha_to_one_matches_diffusers(name):
    assert_same_run(name, AUDIOLDM, 10, set_alpha_to_one=True)


@pytest.mark.parametrize("name", ["ddim", "pndm", "plms", "heun", "kdpm2-a", "dpm-sde", "unipc"])
def test_callback_steps_fire_at_diffusers_loop_indices(name):
    assert_same_run(name, AUDIOLDM, 10, callback_steps=3)


def test_callbacks_get_step_index_and_model_timestep_like_diffusers():
    _, _, calls = soundsmith_loop("heun", AUDIOLDM, 3, noise())
    assert [(i, t) for i, t, _ in calls] == [(0, 334.0), (1, 1.0), (2, 1.0)]  # timesteps 667, 334, 334, 1, 1
    _, _, calls = soundsmith_loop("plms", TINY, 2, noise())
    assert [(i, t) for i, t, _ in calls] == [(1, 0.0), (2, 0.0)]  # the first call is PLMS's warm-up
    _, _, calls = soundsmith_loop("pndm", AUDIOLDM, 4, noise())  # calls 751 626 626 501 501 376 376 251 251 126 126 1 1
    assert [(i, t) for i, t, _ in calls] == [(9, 126.0), (10, 126.0), (11, 1.0), (12, 1.0)]


# --- DPM-Solver SDE: Brownian noise ----------------------------------------------------------------------------

def test_dpm_sde_noise_has_the_law_of_brownian_motion():
    """Each step asks for (W(mid) - W(sigma)) / sqrt(sigma - mid) and (W(next) - W(sigma)) / sqrt(sigma - next):
    both standard normal, correlated by sqrt((sigma - mid) / (sigma - next)), independent across steps; a query
    inside known points is a Brownian bridge."""
    x = torch.zeros(400_000)
    brownian = samplers.BrownianNoise(x, torch.Generator().manual_seed(0))
    sigma, mid, nxt, later = 10.0, 4.0, 1.0, 0.5
    first, second, third = brownian(sigma, mid), brownian(sigma, nxt), brownian(nxt, later)
    inside = brownian(mid, 2.0)
    for z in (first, second, third, inside):
        assert abs(z.mean()) < 0.01 and abs(z.var() - 1) < 0.01
    assert abs((first * second).mean() - math.sqrt((sigma - mid) / (sigma - nxt))) < 0.01
    assert abs((second * third).mean()) < 0.01
    assert abs((first * inside).mean()) < 0.01  # disjoint intervals of one path


def test_dpm_sde_draws_two_noises_per_step_from_the_generator():
    plan = samplers.plan(AUDIOLDM, "dpm-sde", 5)
    a = samplers.run(plan, FakeUNet(), noise(), generator=torch.Generator().manual_seed(3))
    b = samplers.run(plan, FakeUNet(), noise(), generator=torch.Generator().manual_seed(3))
    c = samplers.run(plan, FakeUNet(), noise(), generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.skipif(HAVE_TORCHSDE, reason="exact comparison needs the stand-in Brownian tree")
def test_dpm_sde_matches_diffusers_given_the_same_brownian_path():
    assert_same_run("dpm-sde", AUDIOLDM, 25)
    assert_same_run("dpm-sde", TINY, 10, use_karras_sigmas=True)


# --- img2img: start_at + add_noise ----------------------------------------------------------------------------

def diffusers_img2img(name, config, n, strength, x0, eps, seed=7, **overrides):
    """diffusers' img2img arithmetic: get_timesteps (+ set_begin_index), scheduler.add_noise, then the loop."""
    cls, preset = ORACLE[name]
    sched = cls.from_config(config, **{**preset, **overrides})
    sched.set_timesteps(n)
    t_start = max(n - min(int(n * strength), n), 0)
    timesteps = sched.timesteps[t_start * sched.order:]
    if hasattr(sched, "set_begin_index"):
        sched.set_begin_index(t_start * sched.order)
    steps = n - t_start
    x = sched.add_noise(x0, eps, timesteps[:1].repeat(x0.shape[0]))
    noised = x.clone()
    model, g, callbacks = FakeUNet(), generator(seed), []
    accepts = set(inspect.signature(sched.step).parameters)
    kwargs = {k: v for k, v in (("eta", 0.0), ("generator", g)) if k in accepts}
    warmup = len(timesteps) - steps * sched.order
    for i, t in enumerate(timesteps):
        x = sched.step(model(sched.scale_model_input(x, t), t), t, x, **kwargs).prev_sample
        if i == len(timesteps) - 1 or ((i + 1) > warmup and (i + 1) % sched.order == 0):
            callbacks.append((i // sched.order, t.item()))
    return noised, x, callbacks


@pytest.mark.parametrize("strength", [0.3, 0.75, 1.0])
@pytest.mark.parametrize("name", list(ORACLE))
def test_start_at_and_add_noise_match_diffusers_img2img(name, strength):
    x0, eps = noise(11), noise(12)
    if name == "pndm" and strength < 1:  # see test_pndm_runge_kutta_refuses_to_start_part_way
        strength = 1.0
    noised, expected, expected_calls = diffusers_img2img(name, AUDIOLDM, 10, strength, x0, eps)
    plan = samplers.start_at(samplers.plan(AUDIOLDM, name, 10), strength)
    x = samplers.add_noise(plan, x0, eps)
    assert relative_error(x, noised) <= 1e-6
    calls = []
    got = samplers.run(plan, FakeUNet(), x, generator=generator(7),
                       callback=lambda i, t, _: calls.append((i, t.item())))
    assert relative_error(got, expected) <= TOLERANCE
    assert calls == expected_calls


@pytest.mark.parametrize("strength", [0.0, 0.5, 0.99])
def test_pndm_runge_kutta_refuses_to_start_part_way(strength):
    """diffusers' PNDM counts its Runge-Kutta calls from its own first timestep whatever timesteps the img2img loop
    passes, so a sliced schedule mixes noise levels; soundsmith refuses instead of reproducing that."""
    with pytest.raises(InvalidArgument, match="only runs from the start .* use 'plms'"):
        samplers.start_at(samplers.plan(AUDIOLDM, "pndm", 10), strength)


def test_start_at_keeps_the_last_int_n_times_strength_steps():
    plan = samplers.plan(AUDIOLDM, "ddim", 10)
    assert samplers.start_at(plan, 0.55).num_inference_steps == 5
    assert torch.equal(samplers.start_at(plan, 0.55).timesteps, plan.timesteps[5:])
    assert torch.equal(samplers.start_at(plan, 1.0).timesteps, plan.timesteps)
    heun = samplers.plan(AUDIOLDM, "heun", 10)
    assert torch.equal(samplers.start_at(heun, 0.3).timesteps, heun.timesteps[14:])


def test_strength_zero_runs_no_step_and_adds_no_noise():
    plan = samplers.start_at(samplers.plan(AUDIOLDM, "euler", 10), 0.0)
    x0 = noise(11)
    assert plan.num_inference_steps == 0 and len(plan.timesteps) == 0
    assert torch.equal(samplers.add_noise(plan, x0, noise(12)), x0)
    assert torch.equal(samplers.run(plan, FakeUNet(), x0), x0)


def test_start_at_rejects_strength_outside_0_1():
    with pytest.raises(InvalidArgument, match="strength"):
        samplers.start_at(samplers.plan(AUDIOLDM, "ddim", 10), 1.5)


# --- randn -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seeds", [5, [5], [5, 6, 7]], ids=["one", "list-of-one", "list"])
def test_randn_matches_diffusers_randn_tensor(seeds):
    make = lambda: [torch.Generator().manual_seed(s) for s in seeds] if isinstance(seeds, list) \
        else torch.Generator().manual_seed(seeds)  # noqa: E731
    shape = (3, 8, 16, 16) if isinstance(seeds, list) and len(seeds) == 3 else (2, 8, 16, 16)
    expected = randn_tensor(shape, generator=make(), device=torch.device("cpu"), dtype=torch.float32)
    assert torch.equal(samplers.randn(shape, make(), torch.device("cpu"), torch.float32), expected)


def test_randn_without_generator_uses_the_global_rng_like_diffusers():
    torch.manual_seed(9)
    expected = randn_tensor((2, 4, 8, 4), device=torch.device("cpu"), dtype=torch.float32)
    torch.manual_seed(9)
    assert torch.equal(samplers.randn((2, 4, 8, 4), None, "cpu", torch.float32), expected)


def test_randn_rejects_a_generator_list_of_the_wrong_length():
    with pytest.raises(InvalidArgument, match="generators of length 2, but requested an effective batch size of 3"):
        samplers.randn((3, 4), [torch.Generator(), torch.Generator()], "cpu", torch.float32)


# --- plan: names, overrides, errors ----------------------------------------------------------------------------

def test_plan_without_sampler_uses_the_config_class():
    plan = samplers.plan(AUDIOLDM, None, 10)
    assert (plan.name, plan.scheduler) == ("ddim", "DDIMScheduler")
    assert plan.timesteps.tolist() == [901, 801, 701, 601, 501, 401, 301, 201, 101, 1]
    assert plan.init_noise_sigma == 1.0


def test_class_name_and_config_keys_pick_the_variant_like_diffusers():
    assert samplers.plan(AUDIOLDM, "DPMSolverMultistepScheduler", 10).name == "dpmpp-2m"
    assert samplers.plan(AUDIOLDM, "DPMSolverMultistepScheduler", 10,
                         algorithm_type="sde-dpmsolver++").name == "dpmpp-2m-sde"
    sde = {**AUDIOLDM, "_class_name": "DPMSolverMultistepScheduler", "algorithm_type": "sde-dpmsolver++"}
    assert samplers.plan(sde, None, 10).name == "dpmpp-2m-sde"
    assert samplers.plan(sde, "dpmpp-2m", 10).config["algorithm_type"] == "dpmsolver++"
    assert samplers.plan(AUDIOLDM, "EulerAncestralDiscreteScheduler", 10).name == "euler-a"


def test_short_names_cover_every_sampler():
    assert sorted(samplers.SAMPLERS) == sorted(ORACLE)


def test_from_config_keeps_the_keys_the_new_class_understands():
    plan = samplers.plan(AUDIOLDM, "euler", 10)
    assert plan.config["timestep_spacing"] == "leading" and plan.config["steps_offset"] == 1
    assert plan.config["beta_start"] == 0.0015 and "set_alpha_to_one" not in plan.config
    assert samplers.plan(TINY, "euler", 10).config["timestep_spacing"] == "linspace"  # a default is not inherited


@pytest.mark.parametrize("sampler, match", [("eulr", "did you mean 'euler'"), ("DDIMSchedular", "DDIMScheduler"),
                                            ("karras", "allowed: ddim")])
def test_unknown_sampler_raises_invalid_argument_naming_close_names(sampler, match):
    with pytest.raises(InvalidArgument, match=match):
        samplers.plan(AUDIOLDM, sampler, 10)


@pytest.mark.parametrize("sampler, overrides, match", [
    ("ddim", {"use_karras_sigmas": True}, "use_karras_sigmas"),
    ("euler", {"timestep_spacin": "leading"}, "did you mean 'timestep_spacing'"),
    ("euler", {"timestep_spacing": "lead"}, "did you mean 'leading'"),
    ("euler", {"eta": 0.5}, "only applies to the DDIM"),
    ("ddim", {"eta": 2.0}, "between 0 and 1"),
    ("dpmpp-2m", {"algorithm_type": "dpmsolver"}, "allowed: dpmsolver\\+\\+, sde-dpmsolver\\+\\+"),
    ("dpmpp-2s", {"solver_order": 4}, "solver_order 4 is not supported; allowed: 1, 2, 3"),
    ("dpmpp-2m", {"solver_order": 0}, "solver_order 0 is not supported; allowed: a positive integer"),
    ("ddim", {"rescale_betas_zero_snr": True, "timestep_spacing": "trailing"}, "infinite noise level"),
    ("dpmpp-2s", {"timestep_spacing": "leading"}, "DPMSolverSinglestepScheduler"),
    ("PNDMScheduler", {"prediction_type": "sample"}, "allowed: epsilon, v_prediction"),
    ("lms", {"use_karras_sigmas": True, "use_exponential_sigmas": True}, "only one of"),
])
def test_bad_override_raises_invalid_argument(sampler, overrides, match):
    with pytest.raises(InvalidArgument, match=match):
        samplers.plan(AUDIOLDM, sampler, 10, **overrides)


@pytest.mark.parametrize("steps", [0, -3, 2.5, None])
def test_bad_step_count_raises_invalid_argument(steps):
    with pytest.raises(InvalidArgument, match="num_inference_steps"):
        samplers.plan(AUDIOLDM, "ddim", steps)


def test_bad_callback_steps_raises_invalid_argument():
    with pytest.raises(InvalidArgument, match="callback_steps"):
        samplers.run(samplers.plan(AUDIOLDM, "ddim", 2), FakeUNet(), noise(), callback_steps=0)


def test_invalid_argument_messages_are_one_line():
    with pytest.raises(InvalidArgument) as error:
        samplers.plan(AUDIOLDM, "eulr", 10)
    assert "\n" not in str(error.value)


# --- hooks and progress ----------------------------------------------------------------------------------------

def test_denoised_hook_sees_every_prediction_before_the_sampler_uses_it():
    seen = []
    plan = samplers.plan(AUDIOLDM, "heun", 5)
    identity = samplers.run(plan, FakeUNet(), noise(), denoised_hook=lambda d, s: seen.append(float(s)) or d)
    assert len(seen) == len(plan.timesteps) == 9
    assert torch.equal(identity, samplers.run(plan, FakeUNet(), noise()))
    zeroed = samplers.run(plan, FakeUNet(), noise(), denoised_hook=lambda d, s: torch.zeros_like(d))
    assert zeroed.abs().max() < 1e-6  # the last step lands on the (zero) prediction


def test_progress_counts_the_steps_not_the_model_calls():
    counts = []
    samplers.run(samplers.plan(AUDIOLDM, "heun", 4), FakeUNet(), noise(), progress=lambda *c: counts.append(c))
    assert counts == [(1, 4), (2, 4), (3, 4), (4, 4)]  # Heun calls the model 7 times
