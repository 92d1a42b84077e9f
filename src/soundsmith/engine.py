"""Runs a Request on a loaded pipeline: defaults → canvas → conditioning → noise → sampler → decode → rank.

One engine for every family and task; the pipelines' diffusers-style `__call__`s, `soundsmith.edit`, the CLI, the
service and batch all come here. The family decides only how prompts become UNet conditioning
(`pipe.conditioning`); canvas.py decides where denoising starts.

    out = engine.run(pipe, Request(prompt="rain on a tin roof", duration=5.0, seed=0))
    out.audios, out.sample_rate, out.request   # the request as run, every default filled in
"""

from dataclasses import dataclass, field
from typing import Any

import torch

from . import canvas as canvases
from . import lora, samplers, variation
from .progress import stage
from .checks import check_output_type, check_positive_int, subject
from .errors import InvalidArgument, NonFiniteError
from .request import Request


@dataclass
class AudioOutput:
    """Result of a run. `audios`: float32 (batch · candidates, samples), numpy for output_type "np", torch otherwise
    ("latent": the final latents (B, C, H, W), not unscaled). `request`: what was run, with the model's defaults
    filled in (store it to make the sound again)."""

    audios: Any
    sample_rate: int
    scores: Any = None  # CLAP text–audio similarity per waveform when candidates were ranked
    seed: int | None = None
    request: Request | None = None
    info: dict = field(default_factory=dict)


def resolve(pipe, request: Request) -> Request:
    """The request with the model's defaults filled in: steps, guidance and sampler (from the quality preset, the
    pipeline's assigned scheduler, the model folder's soundsmith.json or the family), the duration, the model's
    name. Resolving twice changes nothing."""
    sampler, steps, options = request.sampler, request.steps, request.sampler_options
    if sampler is None and request.quality is None and pipe.default_sampler is not None:  # pipe.scheduler = …
        sampler, options = pipe.default_sampler, {**pipe.default_sampler_options, **(options or {})}
    if request.quality is not None:
        from .presets import preset

        preset_sampler, preset_steps = preset(pipe.pipeline_class, request.quality)
        sampler, steps = sampler or preset_sampler, steps or preset_steps
    guidance = pipe.default_guidance if request.guidance is None else request.guidance
    if request.task == "upscale" and request.prompt is None:
        guidance = 1.0  # no prompt: the high band is generated unconditionally
    changes = dict(model=request.model or pipe.name)
    if request.task in ("generate", "vary") and request.duration is None:
        changes["duration"] = pipe.default_seconds
    if request.task != "reconstruct":
        changes.update(steps=steps or pipe.default_steps, guidance=guidance, sampler=sampler or "default",
                       sampler_options=options)
    return request.replace(**changes)


def guided(unet, conditioning: dict, guidance_scale: float):
    """The model the sampler sees: UNet on [uncond; cond] and the classifier-free guidance combine
    ε = ε_u + g·(ε_c − ε_u) (Ho & Salimans 2022). `conditioning` holds UNet keyword tensors already batched as
    [uncond; cond] when guidance is on. x may stack k copies of the batch (long-form windows, (k·B, C, H, W)): the
    conditioning is then repeated to match. The sampler's state stays float32 whatever the network's dtype: x goes
    in cast to the UNet's dtype and ε comes back as float32, so bfloat16 / float16 round only inside the network,
    not the latents they update step after step."""
    do_cfg = guidance_scale > 1.0
    dtype = next(unet.parameters()).dtype
    branches = 2 if do_cfg else 1
    rows = next((v.shape[0] for v in conditioning.values() if torch.is_tensor(v)), 0)

    def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        cond, batch = conditioning, rows // branches
        if batch and x.shape[0] != batch:  # [uncond; cond] each (B, …) → each (k·B, …), copy-major like x
            k = x.shape[0] // batch
            cond = {name: v.unflatten(0, (branches, 1, batch)).expand(branches, k, batch, *v.shape[1:]).flatten(0, 2)
                    if torch.is_tensor(v) else v for name, v in conditioning.items()}
        out = unet((torch.cat([x, x]) if do_cfg else x).to(dtype), t, **cond).float()
        if not do_cfg:
            return out
        uncond, cond = out.chunk(2)
        return uncond + guidance_scale * (cond - uncond)

    return model


def finite(model, request: Request, dtype: torch.dtype):
    """`model` that stops the run at the first UNet output holding NaN or infinity, naming the likely cause, instead
    of letting it spread into silent NaN audio."""
    calls = [0]

    def checked(x: torch.Tensor, t) -> torch.Tensor:
        out = model(x, t)
        calls[0] += 1
        if not torch.isfinite(out).all():
            if dtype == torch.float16:
                cause = "float16 overflowed: use dtype bfloat16 or float32"
            elif request.guidance is not None and request.guidance > 100:
                cause = f"guidance {request.guidance:g} is extreme: try 1-10"
            else:
                cause = "the model's weights or the given embeddings hold NaN or infinity"
            raise NonFiniteError(f"the UNet's output became NaN or infinite at evaluation {calls[0]} (timestep "
                                 f"{int(t)}): {cause}")
        return out

    return checked


def make_generator(seed: int | None, generator):
    """seed → a CPU generator seeded with it; otherwise the caller's generator (or None: torch's global RNG)."""
    if seed is None:
        return generator
    return torch.Generator("cpu").manual_seed(int(seed))


@torch.no_grad()
def run(pipe, request: Request, *, audio=None, sample_rate: int | None = None, generator=None, latents=None,
        embeds: dict | None = None, callback=None, callback_steps: int = 1, cross_attention_kwargs: dict | None = None,
        output_type: str = "np", return_dict: bool = True, progress: bool = False, ranker=None):
    """Run `request` on `pipe`. Beyond the request (Python objects a JSON request cannot carry): audio /
    sample_rate — input samples instead of request.input; generator; latents — initial noise (B·n, C, rows, W),
    generate only; embeds — precomputed conditioning (the family's prompt_embeds … keywords); callback(step, t,
    latents) every callback_steps steps; cross_attention_kwargs ({"scale": s} scales a LoRA); output_type "np",
    "pt" or "latent"; return_dict; progress — stage lines on stderr (progress.py); ranker — a
    soundsmith.rank.Ranker or folder. vary (request.clap) conditions on the input's CLAP audio embedding instead of a
    prompt (variation.py). request.loudness (LUFS) brings every waveform to that integrated loudness under a -1 dBTP
    true-peak ceiling after ranking (loudness.normalize_loudness), each candidate alike; what was done is in
    out.info["loudness"] (one LoudnessRecord per waveform). None keeps the model's raw level (diffusers).
    Returns AudioOutput, or (audios,) when return_dict is False."""
    labels = request._labels or {}
    request = resolve(pipe, request)
    check_output_type(output_type)
    check_positive_int("callback_steps", callback_steps)
    if request.seed is not None and generator is not None:
        raise InvalidArgument("give seed= or generator=, not both")
    if latents is not None and request.task != "generate":
        raise InvalidArgument(f"latents= applies to generation, not to {request.task}")
    if latents is not None and (not torch.is_tensor(latents) or not torch.isfinite(latents).all()):
        raise InvalidArgument("latents= must be a tensor of finite values (it holds NaN or infinity, or is not a "
                              "tensor)")
    with stage("encoding the input", progress and request.task != "generate"):
        start = canvases.build(pipe, request, audio, sample_rate, labels)
    if start.decode_only:
        return _output(pipe, request, start, start.x0, output_type, return_dict, None, None, progress)

    prompts = request.prompts or ([""] if request.task == "upscale" else None)
    n, guidance = request.candidates, request.guidance
    if start.reference is not None:  # vary: the input's CLAP audio embedding stands where a prompt's would
        if embeds or ranker is not None:
            name = sorted(embeds)[0] if embeds else "ranker"
            raise InvalidArgument(f"{name}= does not apply to vary: it is conditioned on (and ranked by) the input "
                                  f"audio's CLAP embedding")
        clap = variation.clap_for(pipe, request.clap, subject(labels.get("clap", "clap=")))
        target = variation.audio_embedding(pipe, clap, start.reference)
        embeds = {"prompt_embeds": target}
    with stage("text", progress):
        conditioning, batch = pipe.conditioning(prompts, request.negative_prompts, n, guidance > 1.0,
                                                transcription=request.transcriptions,
                                                max_new_tokens=request.max_new_tokens, embeds=embeds or {},
                                                labels=labels)
    generator = make_generator(request.seed, generator)
    plan = samplers.plan(pipe.scheduler_config, None if request.sampler == "default" else request.sampler,
                         request.steps, **(request.sampler_options or {}))
    hook = None
    if start.x0 is None:
        if latents is not None:  # any number of rows, as diffusers: the output is still trimmed to the duration
            want = pipe.latent_shape(batch * n, latents.shape[-2] if latents.dim() == 4 else start.rows)
            if tuple(latents.shape) != want:
                raise InvalidArgument(f"latents= has shape {tuple(latents.shape)}; this call needs {want} (prompts · "
                                      f"candidates, channels, rows, width)")
            start.rows, start.long = latents.shape[-2], pipe.is_long(latents.shape[-2])
        x = pipe.initial_latents(batch * n, start.rows, generator, latents)
    else:
        x, plan, hook = _from_input(pipe, start, n, generator, plan)
    model = finite(guided(pipe.unet, conditioning, guidance), request, pipe.dtype)
    with lora.scaled(pipe.unet, (cross_attention_kwargs or {}).get("scale")):
        x = pipe.denoise(model, x, plan, long=start.long, generator=generator, eta=request.eta, callback=callback,
                         callback_steps=callback_steps, progress=progress, denoised_hook=hook)
    if start.x0 is not None:
        x = _paste_known(start, x, n)
    if start.reference is not None:
        ranking = variation.ranker(pipe, clap, target) if request.rank and n > 1 else None
    else:
        ranking = pipe.ranking(request.rank, request.ranker if ranker is None else ranker,
                               None if prompts == [""] else prompts, n, subject(labels.get("ranker", "ranker=")))
    return _output(pipe, request, start, x, output_type, return_dict, ranking, start.finish, progress)


def _from_input(pipe, start: canvases.Canvas, n: int, generator, plan):
    """Noise an input's latents to where the strength starts (every candidate its own noise); known latents are
    re-imposed in every denoised estimate."""
    x0 = start.x0.repeat(n, 1, 1, 1)
    target = x0[:, :, start.first_row:]
    known = start.known
    if known is not None and known.shape[2] > 1:
        known = known[:, :, start.first_row:]
    noise = pipe.initial_latents(n, target.shape[2], generator, None)
    if noise.shape[-1] != target.shape[-1]:
        raise InvalidArgument(f"audio latents of width {target.shape[-1]} do not fit this UNet ({noise.shape[-1]})")
    start_plan = samplers.start_at(plan, start.strength)
    x = samplers.add_noise(start_plan, target, noise)
    if start.strength == 1.0:  # text-to-audio's own start, noise · init_noise_sigma, where nothing is known
        fresh = noise * plan.init_noise_sigma
        x = fresh if known is None else torch.where(known, x, fresh)
    hook = None if known is None else (lambda denoised, sigma: torch.where(known, target.to(denoised.dtype), denoised))
    return x, start_plan, hook


def _paste_known(start: canvases.Canvas, x: torch.Tensor, n: int) -> torch.Tensor:
    x0 = start.x0.repeat(n, 1, 1, 1)
    target = x0[:, :, start.first_row:]
    if start.known is not None:
        known = start.known[:, :, start.first_row:] if start.known.shape[2] > 1 else start.known
        x = torch.where(known, target.to(x.dtype), x)
    return torch.cat([x0[:, :, :start.first_row].to(x.dtype), x], dim=2)


def _output(pipe, request, start, latents, output_type, return_dict, ranking, finish, progress):
    scores, info = None, {}
    if output_type == "latent":
        audio = latents
    else:
        with stage("decoding", progress):
            audio = pipe.mel_to_waveform(pipe.latents_to_mel(latents, long=start.long), long=start.long)
            audio = audio[:, :start.keep]
            if not torch.isfinite(audio).all():
                raise NonFiniteError("decoding produced NaN or infinite samples"
                                     + (": float16 overflowed in the VAE or vocoder, use bfloat16 or float32"
                                        if pipe.dtype == torch.float16 else " (the VAE's or vocoder's weights)"))
            if finish is not None:
                audio = finish(audio)
        if ranking is not None:
            with stage("ranking", progress):
                audio, scores = ranking(audio)
        if request.loudness is not None:
            audio, info["loudness"] = _normalize(audio, pipe.sample_rate, request.loudness, progress)
    if output_type == "np":
        audio = audio.numpy()
    if not return_dict:
        return (audio,)
    return AudioOutput(audios=audio, sample_rate=pipe.sample_rate, scores=scores, seed=request.seed, request=request,
                       info=info)


def _normalize(audio: torch.Tensor, sample_rate: int, target: float, progress: bool):
    """(B, samples) → each row at `target` LUFS under the true-peak ceiling, and the records of what was done."""
    from .loudness import normalize_loudness

    with stage(f"loudness {target:g} LUFS", progress) as line:
        audio, records = normalize_loudness(audio, sample_rate, target)
        if not all(r.applied for r in records):
            line.detail = "(left as it is where there is no sound, under -70 LUFS)"
    return audio, records
