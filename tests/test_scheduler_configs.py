"""Every option of every scheduler config field diffusers accepts: soundsmith matches diffusers or refuses it.

For each of the 14 diffusers scheduler classes behind soundsmith's 16 sampler names, the fields are read from the
installed diffusers' `__init__` signature (so a field diffusers adds fails `test_every_field_has_options_to_walk`).
Each field is walked through its options — booleans both ways, every string value the scheduler's code branches on
(and a few that only other classes accept), representative numbers — one field at a time from the checkpoints'
own scheduler config (AUDIOLDM), and again beside the field that makes it act where it only acts with another
(clip_sample_range with clip_sample, sigma_min with Karras sigmas, …). Each case runs diffusers'
`Class.from_config(AUDIOLDM, field=value)` loop and `samplers.plan(AUDIOLDM, Class, N, field=value)` on the fake UNet
of test_samplers.py; soundsmith must either give the same final latents, model timesteps and callbacks
(relative error <= 1e-4) or raise InvalidArgument with one line naming the field or the value. Where diffusers
itself fails (raises, or returns NaN), soundsmith must refuse. Never a silent difference.
"""

import inspect
import math
import sys

import numpy as np
import pytest
import torch

import diffusers

from soundsmith import samplers
from soundsmith.errors import InvalidArgument
import test_samplers
from test_samplers import (AUDIOLDM, HAVE_TORCHSDE, ORACLE, TOLERANCE, diffusers_loop, noise, relative_error,
                           soundsmith_loop)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::UserWarning")

# The diffusers class of each sampler whose short name picks no variant (e.g. 'ddim', not 'dpmpp-2m-sde').
CLASSES = {cls.__name__: (short, cls) for short, (cls, preset) in ORACLE.items() if not preset}

BETAS = np.linspace(0.0015, 0.0195, 1000).tolist()

# Options walked for each field, whichever class declares it.
OPTIONS = {
    "num_train_timesteps": [500, 1000, 1200],
    "beta_start": [0.00085, 0.0015, 0.0001],
    "beta_end": [0.012, 0.0195, 0.02],
    "beta_schedule": ["linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid", "laplace", "exp"],
    "trained_betas": [None, BETAS],
    "prediction_type": ["epsilon", "v_prediction", "sample", "flow_prediction", "original_sample"],
    "timestep_spacing": ["leading", "linspace", "trailing"],
    "steps_offset": [0, 1, 3],
    "clip_sample": [False, True],
    "clip_sample_range": [1.0, 2.5],
    "set_alpha_to_one": [False, True],
    "thresholding": [False, True],
    "dynamic_thresholding_ratio": [0.995, 0.9],
    "sample_max_value": [1.0, 2.0],
    "rescale_betas_zero_snr": [False, True],
    "variance_type": [None, "fixed_small", "fixed_small_log", "fixed_large", "fixed_large_log", "learned",
                      "learned_range"],
    "skip_prk_steps": [False, True],
    "use_karras_sigmas": [False, True],
    "use_exponential_sigmas": [False, True],
    "use_beta_sigmas": [False, True],
    "use_lu_lambdas": [False, True],
    "use_flow_sigmas": [False, True],
    "use_dynamic_shifting": [False, True],
    "interpolation_type": ["linear", "log_linear"],
    "sigma_min": [None, 0.1],
    "sigma_max": [None, 20.0],
    "timestep_type": ["discrete", "continuous"],
    "final_sigmas_type": ["zero", "sigma_min"],
    "solver_order": [1, 2, 3, 4],
    "algorithm_type": ["dpmsolver", "dpmsolver++", "sde-dpmsolver", "sde-dpmsolver++", "deis"],
    "solver_type": ["midpoint", "heun", "logrho", "bh1", "bh2"],
    "lower_order_final": [True, False],
    "euler_at_final": [False, True],
    "flow_shift": [1.0, 3.0],
    "lambda_min_clipped": [-math.inf, -5.1],
    "time_shift_type": ["exponential", "linear"],
    "predict_x0": [True, False],
    "disable_corrector": [[], [0], [1, 3]],
    "solver_p": [None, "a scheduler instance"],
    "shift_terminal": [None, 0.5],
    "noise_sampler_seed": [None],  # a seed: test_dpm_sde_noise_sampler_seed_fixes_the_brownian_path
}
# Fields that act only beside another (or act differently there): walked again with each of these set.
_KARRAS, _EXPONENTIAL, _BETA = {"use_karras_sigmas": True}, {"use_exponential_sigmas": True}, {"use_beta_sigmas": True}
PARTNERS = {
    "clip_sample_range": [{"clip_sample": True}, {"clip_sample": True, "prediction_type": "v_prediction"}],
    "dynamic_thresholding_ratio": [{"thresholding": True}],
    "sample_max_value": [{"thresholding": True}],
    "sigma_min": [_KARRAS, _EXPONENTIAL, _BETA],
    "sigma_max": [_KARRAS, _EXPONENTIAL, _BETA],
    "flow_shift": [{"use_flow_sigmas": True}],
    "time_shift_type": [{"use_dynamic_shifting": True}],
    "shift_terminal": [{"use_flow_sigmas": True}],
    "lambda_min_clipped": [{"beta_schedule": "squaredcos_cap_v2"}],
    "interpolation_type": [_KARRAS],
    "final_sigmas_type": [_KARRAS, _BETA],
    "euler_at_final": [{"final_sigmas_type": "sigma_min"}],
    "lower_order_final": [{"final_sigmas_type": "sigma_min"}],
    "steps_offset": [{"timestep_spacing": "leading"}],
    "solver_type": [{"solver_order": 3}],
    "algorithm_type": [{"solver_order": 3}, {"final_sigmas_type": "sigma_min"}],
    "use_lu_lambdas": [{"final_sigmas_type": "sigma_min"}],
    "disable_corrector": [{"solver_order": 3}],
    "predict_x0": [{"solver_type": "bh1"}, {"final_sigmas_type": "sigma_min"}],
    "timestep_type": [{"prediction_type": "v_prediction"}],
    "rescale_betas_zero_snr": [{"timestep_spacing": "trailing"},
                               {"timestep_spacing": "trailing", "prediction_type": "v_prediction"}],
    "skip_prk_steps": [{"timestep_spacing": "linspace"}, {"prediction_type": "v_prediction"}],
    "set_alpha_to_one": [{"timestep_spacing": "trailing"}],
    "thresholding": [{"prediction_type": "v_prediction"}],
    "clip_sample": [{"prediction_type": "sample"}],
    "variance_type": [{"timestep_spacing": "trailing"}],
    "solver_order": [{"lower_order_final": False, "final_sigmas_type": "sigma_min"}],
}
STEPS = 10


def fields(cls) -> list[str]:
    return [k for k in inspect.signature(cls.__init__).parameters if k not in ("self", "args", "kwargs")]


def _value(field, value):
    return diffusers.DDIMScheduler() if field == "solver_p" and value is not None else value


def cases():
    seen = set()
    for name, (_, cls) in CLASSES.items():
        declared = fields(cls)
        for field in declared:
            for value in OPTIONS.get(field, []):
                walked = [({field: value}, "")] + [
                    ({**partner, field: value}, "-" + "-".join(f"{k}={v}" for k, v in partner.items()))
                    for partner in PARTNERS.get(field, []) if all(k in declared for k in partner)]
                for overrides, with_ in walked:
                    key = (name, repr(sorted(overrides.items())))
                    if key not in seen:
                        seen.add(key)
                        yield pytest.param(name, overrides, id=f"{name}-{field}={value!r:.20}{with_}")


def run_diffusers(name, overrides):
    short, _ = CLASSES[name]
    try:
        x, timesteps, callbacks = diffusers_loop(short, AUDIOLDM, STEPS, noise(), **overrides)
    except Exception as error:  # noqa: BLE001 - any failure of the oracle counts as "diffusers cannot run it"
        return error
    if not torch.isfinite(x).all():
        return ValueError("diffusers returned non-finite latents")
    return x, timesteps, callbacks


def test_every_field_has_options_to_walk():
    for name, (_, cls) in CLASSES.items():
        missing = [f for f in fields(cls) if f not in OPTIONS]
        assert not missing, f"{name}: no options to walk for {missing}"
    assert len(CLASSES) == 14 and {c for c, _ in samplers.SAMPLERS.values()} == set(CLASSES)


@pytest.mark.parametrize("name, overrides", list(cases()))
def test_config_option_matches_diffusers_or_is_refused_in_one_line(name, overrides):
    if name == "DPMSolverSDEScheduler" and HAVE_TORCHSDE:
        pytest.skip("exact comparison needs the stand-in Brownian tree of test_samplers.py")
    overrides = {k: _value(k, v) for k, v in overrides.items()}
    reference = run_diffusers(name, overrides)
    try:
        got = soundsmith_loop(name, AUDIOLDM, STEPS, noise(), **overrides)
    except InvalidArgument as error:
        message = str(error)
        assert "\n" not in message and len(message) < 400, message
        assert any(k in message or str(v) in message for k, v in overrides.items()), message
        return
    assert not isinstance(reference, Exception), f"soundsmith runs what diffusers refuses: {reference!r:.300}"
    x, timesteps, callbacks = reference
    got_x, got_timesteps, got_callbacks = got
    assert relative_error(got_x, x) <= TOLERANCE, relative_error(got_x, x)
    np.testing.assert_allclose(got_timesteps, timesteps, rtol=1e-6, atol=1e-4)
    assert [i for i, _, _ in got_callbacks] == [i for i, _, _ in callbacks]
    np.testing.assert_allclose([t for _, t, _ in got_callbacks], [t for _, t, _ in callbacks], rtol=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("steps", [4, 25])
@pytest.mark.parametrize("name, overrides", list(cases()))
def test_config_option_matches_diffusers_or_is_refused_at_other_step_counts(name, overrides, steps, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "STEPS", steps)
    test_config_option_matches_diffusers_or_is_refused_in_one_line(name, overrides)


# --- what the walk cannot reach: keys of another class's config, seeds -------------------------------------------

RANGE_READERS = [name for name, (_, cls) in CLASSES.items() if "use_exponential_sigmas" in fields(cls)]


@pytest.mark.parametrize("kind", ["use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas"])
@pytest.mark.parametrize("name", RANGE_READERS)
def test_sigma_range_in_the_checkpoint_config_acts_as_in_diffusers(name, kind):
    """diffusers' from_config keeps a foreign config's sigma_min / sigma_max (an Euler config's, say) and most
    classes' Karras / exponential / beta sigmas read them; LMS's and DPM-SDE's Karras sigmas do not."""
    if name == "DPMSolverSDEScheduler" and HAVE_TORCHSDE:
        pytest.skip("exact comparison needs the stand-in Brownian tree of test_samplers.py")
    euler_config = {**AUDIOLDM, "_class_name": "EulerDiscreteScheduler", "sigma_min": 0.1, "sigma_max": 20.0}
    short, _ = CLASSES[name]
    expected, expected_ts, _ = diffusers_loop(short, euler_config, STEPS, noise(), **{kind: True})
    got, got_ts, _ = soundsmith_loop(name, euler_config, STEPS, noise(), **{kind: True})
    assert relative_error(got, expected) <= TOLERANCE
    np.testing.assert_allclose(got_ts, expected_ts, rtol=1e-6, atol=1e-4)
    plain, _, _ = soundsmith_loop(name, AUDIOLDM, STEPS, noise(), **{kind: True})
    reads_range = not (kind == "use_karras_sigmas" and name in ("LMSDiscreteScheduler", "DPMSolverSDEScheduler"))
    assert (relative_error(plain, got) > 1e-3) == reads_range


def test_dpm_sde_noise_sampler_seed_fixes_the_brownian_path():
    """With noise_sampler_seed, diffusers' DPM-SDE noise depends on that seed alone, not on the pipeline's
    generator; soundsmith draws its Brownian path from a generator seeded with it (torchsde's draws themselves
    cannot be reproduced: see test_samplers.py)."""
    def final(seed, generator_seed):
        plan = samplers.plan(AUDIOLDM, "dpm-sde", 8, noise_sampler_seed=seed)
        return samplers.run(plan, test_samplers.FakeUNet(), noise(), generator=torch.Generator().manual_seed(
            generator_seed))
    assert torch.equal(final(5, 1), final(5, 2))
    assert not torch.equal(final(5, 1), final(6, 1))
    assert not torch.equal(final(None, 1), final(None, 2))


def test_refusals_name_an_object_value_on_one_line():
    with pytest.raises(InvalidArgument, match=r"^UniPCMultistepScheduler solver_p <a DDIMScheduler> is not supp"):
        samplers.plan(AUDIOLDM, "unipc", 10, solver_p=diffusers.DDIMScheduler())


# --- through a pipeline ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sampler", ["PNDMScheduler", "pndm"])
def test_audioldm_pipeline_runs_pndm_with_runge_kutta_like_diffusers(tiny_audioldm, sampler):
    """`PNDMScheduler.from_config(pipe.scheduler.config)` on the checkpoint's DDIM config (no skip_prk_steps): the
    Runge-Kutta warm-up, 5 steps = 14 UNet calls, mel and waveform as diffusers'."""
    from parity import compare

    calls = []
    result = compare(tiny_audioldm, prompt="A hammer hitting a wooden surface", num_inference_steps=5,
                     latents_shape=(1, 4, 32, 4), reference_scheduler=diffusers.PNDMScheduler, sampler=sampler,
                     ours_kwargs={"callback": lambda i, t, x: calls.append(i)})
    assert result["mel"] <= TOLERANCE and result["waveform"] <= TOLERANCE, result
    assert calls == [9, 10, 11, 12, 13]  # diffusers' loop indices after its warm-up calls
