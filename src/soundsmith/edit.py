"""Audio in, audio out: reconstruction, style transfer, inpainting, super-resolution and continuation, for every
family (the families differ only in `prompt_conditioning`, how prompts become UNet conditioning).

audio ─ read, mono, resample ─ waveform_to_mel (the checkpoint's recipe) ─ VAE encoder mean · scaling_factor ─► x0
x0 ─ noised to the strength's level (SDEdit: Meng et al. 2022, arXiv:2108.01073) ─► sampler ─► decode ─► waveform
    with known latents re-imposed in every denoised estimate D(x; σ) ← x0 where known (the sampler's state there
    stays x0 + σ·noise, the known content at the current noise level: inpainting as in RePaint / SDEdit, without
    resampling), and pasted back exactly at the end.

The input is normalised as in training (mean removed, peak 0.5), so the output has the model's level, not the
input's. Outside the regenerated region the audio is the codec's reconstruction of the input (`reconstruct`).
Every function takes the pipeline's generation arguments (num_inference_steps, guidance_scale, negative_prompt,
num_waveforms_per_prompt, eta, generator, seed, sampler, sampler_options, callback, callback_steps, output_type,
return_dict, progress, rank, ranker; transcription and max_new_tokens on AudioLDM 2) and returns its AudioOutput;
output_type="latent" gives the final latents (n, C, rows, W), comparable with `encode`. Long inputs (above
pipe.long_form.above_seconds) are encoded, denoised and decoded in windows and chunks (longform.py).

The CLI commands (`soundsmith reconstruct | transfer | inpaint | upscale | extend`) sit at the end.
"""

import dataclasses
import math
import os
import secrets
from pathlib import Path

import numpy as np
import torch

from . import audio, chunked, longform, samplers
from .errors import InvalidArgument
from .pipelines.base import check_call, check_duration, check_negative, check_prompt, guided

NYQUIST_MARGIN = 0.95  # a detected cutoff above this fraction of Nyquist leaves nothing to regenerate
CUTOFF_FLOOR_DB = -60.0  # the highest frequency within this of the long-term spectrum's peak is the cutoff
CROSSOVER_HZ = 200.0  # width of the ramp from the input's band to the generated band


# ------------------------------------------------------------------------------------------------ audio → latents


def mel_config(pipe) -> audio.MelConfig:
    """The log-mel the checkpoint's VAE and vocoder were trained on, from its vocoder config."""
    return audio.MelConfig.from_vocoder_config(dataclasses.asdict(pipe.vocoder.config))


def load_waveform(pipe, source, sample_rate: int | None = None) -> torch.Tensor:
    """A file path, or samples (samples,) / (channels, samples) at `sample_rate` Hz (default: the model's) →
    (samples,) float32 mono at pipe.sample_rate, at least one latent row (pipe.min_seconds) long."""
    if isinstance(source, (str, os.PathLike)):
        waveform = audio.read(source, pipe.sample_rate)
        name = os.fspath(source)
    else:
        waveform = torch.as_tensor(np.asarray(source) if not torch.is_tensor(source) else source)
        waveform = waveform.detach().to("cpu", torch.float32)
        name = f"audio of shape {tuple(waveform.shape)}"
        if waveform.dim() == 2:
            waveform = waveform.mean(dim=0)
        if waveform.dim() != 1 or waveform.numel() == 0:
            raise InvalidArgument(f"{name}: give samples (samples,) or (channels, samples), or a file path")
        if not torch.isfinite(waveform).all():
            raise InvalidArgument(f"{name}: contains NaN or infinite samples")
        waveform = audio.resample(waveform, sample_rate or pipe.sample_rate, pipe.sample_rate)
    if len(waveform) / pipe.sample_rate < pipe.min_seconds:
        raise InvalidArgument(f"{name} is {len(waveform) / pipe.sample_rate:g} s long: the model needs at least "
                              f"{pipe.min_seconds:g} s of audio")
    return waveform


def latent_rows(pipe, samples: int) -> int:
    """Latent rows covering `samples` samples: ceil(samples / hop) mel frames, rounded up to the VAE factor."""
    hop = pipe.vocoder.config.hop_length
    return math.ceil(math.ceil(samples / hop) / pipe.vae_scale_factor)


def input_mel(pipe, waveform: torch.Tensor) -> torch.Tensor:
    """(samples,) at the model's rate → (1, T, M) log-mel as the family trained on it (audio.waveform_to_mel: crop,
    remove the mean, peak 0.5, zero-pad to T·hop, TacotronSTFT log-mel), T = latent_rows · VAE factor."""
    frames = latent_rows(pipe, len(waveform)) * pipe.vae_scale_factor
    return audio.waveform_to_mel(waveform[None].float(), frames, mel_config(pipe))


@torch.no_grad()
def encode(pipe, waveform: torch.Tensor) -> torch.Tensor:
    """(samples,) at the model's rate → latents (1, C, rows, W): the VAE posterior mean × scaling_factor, the scale
    the pipelines' latents have. Chunked (exactly) when long."""
    mel = input_mel(pipe, waveform)[:, None].to(pipe.device, pipe.dtype)
    pipe.stage("vae")
    if longform.is_long(pipe, mel.shape[-2] // pipe.vae_scale_factor):
        mean = chunked.vae_encode(pipe.vae, mel, pipe.long_form.decode_rows, pipe.long_form.budget_mb)
    else:
        mean = pipe.vae.encode(mel)[0]
    return mean * pipe.vae.config.scaling_factor


# ----------------------------------------------------------------------------------------------------- the modes


@torch.no_grad()
def reconstruct(pipe, source, *, sample_rate: int | None = None, output_type: str = "np", return_dict: bool = True):
    """encode → decode → vocoder: the codec's ceiling. Same length as the input."""
    waveform = load_waveform(pipe, source, sample_rate)
    check_call(steps=1, guidance_scale=1.0, num_waveforms_per_prompt=1, eta=0.0, callback_steps=1,
               output_type=output_type, seed=None, generator=None)
    return pipe.output(encode(pipe, waveform), len(waveform), output_type, return_dict, None)


def transfer(pipe, source, prompt, strength: float = 0.5, *, sample_rate: int | None = None, **options):
    """Style transfer / audio-to-audio (SDEdit): the input's latents noised to the last int(steps·strength) steps,
    then denoised towards `prompt`. strength 0 returns the reconstruction, 1 is text-to-audio with the same noise
    (equal to pipe(prompt, audio_length_in_s=…) with the same seed). Output length = input length."""
    if isinstance(strength, bool) or not isinstance(strength, (int, float, np.floating)) \
            or not 0.0 <= strength <= 1.0:
        raise InvalidArgument(f"strength={strength!r} is not allowed: give a number between 0 (keep the input) and 1 "
                              f"(ignore it)")
    waveform = load_waveform(pipe, source, sample_rate)
    return _generate(pipe, encode(pipe, waveform), len(waveform), prompt, strength=float(strength), **options)


def inpaint(pipe, source, prompt, masks, *, sample_rate: int | None = None, **options):
    """Regenerate the time spans `masks` ((start, end) seconds, or a list of them) and keep the rest: the latent
    rows overlapping a span are generated, the others re-imposed at every step. Output length = input length."""
    waveform = load_waveform(pipe, source, sample_rate)
    spans = check_spans(masks, len(waveform) / pipe.sample_rate)
    x0 = encode(pipe, waveform)
    row_s = longform.row_seconds(pipe)
    known = torch.ones(1, 1, x0.shape[-2], 1, dtype=torch.bool, device=x0.device)
    for start, end in spans:
        known[:, :, math.floor(start / row_s + 1e-9):math.ceil(end / row_s - 1e-9)] = False
    return _generate(pipe, x0, len(waveform), prompt, known=known, **options)


def upscale(pipe, source, prompt=None, *, cutoff: float | None = None, sample_rate: int | None = None, **options):
    """Super-resolution: for input with no content above `cutoff` Hz (detected when None: detect_cutoff), the latent
    columns of mel bins wholly below the cutoff are kept and the rest regenerated; the output is the input below the
    cutoff and the generated audio above it (an FFT crossover CROSSOVER_HZ wide). Without a prompt the high band is
    generated unconditionally (guidance off)."""
    waveform = load_waveform(pipe, source, sample_rate)
    nyquist = pipe.sample_rate / 2
    if cutoff is None:
        cutoff = detect_cutoff(waveform, pipe.sample_rate)
        if cutoff >= NYQUIST_MARGIN * nyquist:
            raise InvalidArgument(f"the input has content up to {cutoff:.0f} Hz, next to the model's Nyquist "
                                  f"frequency ({nyquist:g} Hz): nothing to regenerate (give cutoff= / --cutoff)")
    elif isinstance(cutoff, bool) or not isinstance(cutoff, (int, float, np.floating)) or not 0 < cutoff < nyquist:
        raise InvalidArgument(f"cutoff={cutoff!r} Hz is not allowed: give a frequency between 0 and the model's "
                              f"Nyquist frequency, {nyquist:g} Hz")
    cfg = mel_config(pipe)
    upper = audio.mel_to_hz(np.linspace(audio.hz_to_mel(cfg.fmin), audio.hz_to_mel(cfg.fmax), cfg.n_mels + 2))[2:]
    f = pipe.vae_scale_factor
    columns = int(np.sum(upper[f - 1::f] <= cutoff + 1e-6))  # latent columns whose mel bins all lie below
    if columns == 0:
        raise InvalidArgument(f"cutoff={cutoff:g} Hz is below the first latent column's band ({upper[f - 1]:.0f} Hz):"
                              f" nothing to keep")
    x0 = encode(pipe, waveform)
    known = torch.zeros(1, 1, 1, x0.shape[-1], dtype=torch.bool, device=x0.device)
    known[..., :columns] = True
    low = audio.normalize_waveform(waveform[None])[0]  # the level the model saw

    def keep_low_band(waveforms):
        return crossover(low, waveforms, cutoff, pipe.sample_rate)

    if prompt is None:
        prompt, options = "", {**options, "guidance_scale": 1.0}
    return _generate(pipe, x0, len(waveform), prompt, known=known, finish=keep_low_band, allow_empty=True, **options)


def extend(pipe, source, prompt, seconds: float, *, sample_rate: int | None = None, **options):
    """Continue a clip by `seconds`: the input's latents (its complete latent rows) are kept and the rows after
    them generated in their context. Returns the whole clip, input length + seconds. When the result is long-form,
    only the new rows and one window of context before them are denoised."""
    waveform = load_waveform(pipe, source, sample_rate)
    seconds = check_duration(seconds, pipe.min_seconds, name="seconds")
    keep = len(waveform) + round(seconds * pipe.sample_rate)
    check_duration(keep / pipe.sample_rate, 0.0, name="input + seconds")
    x0 = encode(pipe, waveform)
    rows = latent_rows(pipe, keep)
    known_rows = len(waveform) // (pipe.vocoder.config.hop_length * pipe.vae_scale_factor)
    x0 = torch.cat([x0[:, :, :known_rows], x0.new_zeros(*x0.shape[:2], rows - known_rows, x0.shape[-1])], dim=2)
    known = torch.zeros(1, 1, rows, 1, dtype=torch.bool, device=x0.device)
    known[:, :, :known_rows] = True
    first = max(0, known_rows - longform.window_rows(pipe)) if longform.is_long(pipe, rows) else 0
    return _generate(pipe, x0, keep, prompt, known=known, first_row=first, **options)


# ------------------------------------------------------------------------------------------------- shared engine


@torch.no_grad()
def _generate(pipe, x0: torch.Tensor, keep: int, prompt, *, strength: float = 1.0, known: torch.Tensor | None = None,
              first_row: int = 0, finish=None, allow_empty: bool = False, num_inference_steps: int | None = None,
              guidance_scale: float | None = None, negative_prompt=None, num_waveforms_per_prompt: int = 1,
              eta: float = 0.0, generator=None, seed: int | None = None, sampler: str | None = None,
              sampler_options: dict | None = None, callback=None, callback_steps: int = 1, output_type: str = "np",
              return_dict: bool = True, progress: bool = False, rank: bool = True, ranker=None,
              transcription=None, max_new_tokens: int | None = None):
    """Denoise rows first_row… of x0 (1, C, rows, W) from `strength`, with `known` (bool, broadcastable to x0)
    re-imposed; rows before first_row stay x0. finish(waveforms) post-processes the (n, keep) waveforms."""
    steps = pipe.default_steps if num_inference_steps is None else num_inference_steps
    guidance = pipe.default_guidance if guidance_scale is None else guidance_scale
    check_call(steps=steps, guidance_scale=guidance, num_waveforms_per_prompt=num_waveforms_per_prompt, eta=eta,
               callback_steps=callback_steps, output_type=output_type, seed=seed, generator=generator)
    prompts = [prompt] if allow_empty and prompt == "" else check_prompt(prompt)
    if len(prompts) != 1:
        raise InvalidArgument(f"prompt={prompt!r}: give one prompt for the one input audio")
    negative = check_negative(negative_prompt, 1)
    n = num_waveforms_per_prompt
    extra = {k: v for k, v in (("transcription", transcription), ("max_new_tokens", max_new_tokens)) if v is not None}
    conditioning = pipe.prompt_conditioning(prompts, negative, n, guidance > 1.0, **extra)
    generator = pipe.make_generator(seed, generator)

    x0 = x0.repeat(n, 1, 1, 1)
    target = x0[:, :, first_row:]
    known = None if known is None else known[:, :, first_row:] if known.shape[2] > 1 else known
    noise = pipe.initial_latents(n, target.shape[2], generator, None)
    if noise.shape[-1] != target.shape[-1]:
        raise InvalidArgument(f"audio latents of width {target.shape[-1]} do not fit this UNet ({noise.shape[-1]})")
    plan = samplers.plan(pipe.scheduler_config, sampler, steps, **(sampler_options or {}))
    start_plan = samplers.start_at(plan, strength)
    start = samplers.add_noise(start_plan, target, noise)
    if strength == 1.0:  # text-to-audio's own start, noise · init_noise_sigma, where nothing is known
        fresh = noise * plan.init_noise_sigma
        start = fresh if known is None else torch.where(known, start, fresh)
    hook = None if known is None else (lambda denoised, sigma: torch.where(known, target.to(denoised.dtype), denoised))

    model = guided(pipe.unet, conditioning, guidance)
    x = pipe.denoise(model, start, steps=steps, sampler=sampler, generator=generator, eta=eta, callback=callback,
                     callback_steps=callback_steps, progress=progress, plan=start_plan, denoised_hook=hook)
    if known is not None:
        x = torch.where(known, target.to(x.dtype), x)
    x = torch.cat([x0[:, :, :first_row].to(x.dtype), x], dim=2)
    ranking = pipe.ranking(rank, ranker, prompts if prompts != [""] else None, n)

    def post(waveforms):
        waveforms = finish(waveforms) if finish is not None else waveforms
        return ranking(waveforms) if ranking is not None else (waveforms, None)

    return pipe.output(x, keep, output_type, return_dict, seed, post)


# --------------------------------------------------------------------------------------------------- helpers


def check_spans(masks, duration: float) -> list[tuple[float, float]]:
    """(start, end) seconds, or a list of them → sorted spans inside [0, duration] that do not overlap."""
    if isinstance(masks, tuple) and len(masks) == 2 and not isinstance(masks[0], (tuple, list)):
        masks = [masks]
    if not isinstance(masks, (list, tuple)) or not masks:
        raise InvalidArgument(f"masks={masks!r}: give (start, end) in seconds, or a list of such spans")
    spans = []
    for span in masks:
        if not isinstance(span, (tuple, list)) or len(span) != 2 or not all(
                isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool) and math.isfinite(v)
                for v in span):
            raise InvalidArgument(f"mask {span!r} is not a (start, end) pair of seconds")
        start, end = float(span[0]), float(span[1])
        if not 0.0 <= start < end:
            raise InvalidArgument(f"mask {start:g}-{end:g} is not allowed: need 0 ≤ start < end (seconds)")
        if end > duration + 1e-6:
            raise InvalidArgument(f"mask {start:g}-{end:g} ends after the audio ({duration:g} s)")
        spans.append((start, end))
    spans.sort()
    for (s0, e0), (s1, e1) in zip(spans, spans[1:]):
        if s1 < e0:
            raise InvalidArgument(f"masks {s0:g}-{e0:g} and {s1:g}-{e1:g} overlap: give one span "
                                  f"{s0:g}-{max(e0, e1):g} instead")
    return spans


def parse_span(text: str) -> tuple[float, float]:
    """'2.0-3.5' → (2.0, 3.5) seconds."""
    start, sep, end = text.strip().partition("-")
    try:
        if not sep:
            raise ValueError
        return float(start), float(end)
    except ValueError:
        raise InvalidArgument(f"--mask {text!r} is not START-END in seconds, e.g. 2.0-3.5") from None


def detect_cutoff(waveform: torch.Tensor, sample_rate: int, n_fft: int = 1024) -> float:
    """The highest frequency (Hz) with content in (samples,): the upper edge of the highest bin of the long-term
    spectrum (mean Hann-windowed |STFT|², n_fft) within CUTOFF_FLOOR_DB of its strongest bin."""
    x = waveform.double()
    if len(x) < n_fft:
        x = torch.nn.functional.pad(x, (0, n_fft - len(x)))
    spectrum = torch.stft(x, n_fft, n_fft // 4, window=torch.hann_window(n_fft, dtype=x.dtype), center=False,
                          return_complex=True).abs().pow(2).mean(dim=-1)
    level = 10 * torch.log10(spectrum + 1e-30)
    present = torch.nonzero(level > level.max() + CUTOFF_FLOOR_DB).flatten()
    return min(float(present[-1] + 1) * sample_rate / n_fft, sample_rate / 2)


def crossover(low: torch.Tensor, high: torch.Tensor, cutoff: float, sample_rate: int,
              width: float = CROSSOVER_HZ) -> torch.Tensor:
    """low (samples,) below cutoff − width, high (B, samples) above cutoff, a linear ramp between → (B, samples)."""
    n = high.shape[-1]
    low = audio.pad_or_trim(low.to(high), n)
    freqs = torch.fft.rfftfreq(n, 1.0 / sample_rate, dtype=torch.float64)
    gain = ((cutoff - freqs) / width).clamp(0.0, 1.0)
    spectrum = torch.fft.rfft(low.double(), n) * gain + torch.fft.rfft(high.double(), n) * (1 - gain)
    return torch.fft.irfft(spectrum, n).to(high.dtype)


# -------------------------------------------------------------------------------------------------------- CLI


def add_commands(sub) -> None:
    """Register reconstruct, transfer, inpaint, upscale and extend on the `soundsmith` subparsers."""
    from .cli import DEFAULT_MODEL, _add_generation_args

    def common(p, generation=True):
        p.add_argument("input", help="audio file (wav, flac, ogg, mp3, …)")
        if generation:
            _add_generation_args(p)
        else:
            p.add_argument("-m", "--model", default=None,
                           help=f"model (default {DEFAULT_MODEL} when cached or reachable, else the bundled `demo`)")
            p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
            p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
        p.add_argument("-o", "--output", default=None, help="output .wav or .flac (default: INPUT_<command>.wav)")
        p.add_argument("--force", action="store_true", help="overwrite an existing output file")

    p = sub.add_parser("reconstruct", help="audio → VAE → vocoder: hear the codec's ceiling")
    common(p, generation=False)
    p.set_defaults(func=cmd_reconstruct)
    p = sub.add_parser("transfer", help="style transfer: re-render audio towards a prompt")
    common(p)
    p.add_argument("prompt", help="what the audio should become")
    p.add_argument("--strength", type=float, default=0.5, help="0 keeps the input, 1 ignores it (default 0.5)")
    p.set_defaults(func=cmd_transfer)
    p = sub.add_parser("inpaint", help="regenerate time spans of audio")
    common(p)
    p.add_argument("prompt", help="what the regenerated spans should sound like")
    p.add_argument("--mask", action="append", required=True, metavar="START-END",
                   help="seconds to regenerate, e.g. 2.0-3.5 (repeatable)")
    p.set_defaults(func=cmd_inpaint)
    p = sub.add_parser("upscale", help="super-resolution: regenerate the missing high band")
    common(p)
    p.add_argument("prompt", nargs="?", default=None, help="description of the audio (optional)")
    p.add_argument("--cutoff", type=float, default=None, help="Hz above which to regenerate (default: detected)")
    p.set_defaults(func=cmd_upscale)
    p = sub.add_parser("extend", help="continue a clip")
    common(p)
    p.add_argument("prompt", help="what the continuation should sound like")
    p.add_argument("--seconds", type=float, required=True, help="seconds to add")
    p.set_defaults(func=cmd_extend)


def cmd_reconstruct(args) -> int:
    return _run(args, "reconstruct", lambda pipe, x, options: reconstruct(pipe, x), {})


def cmd_transfer(args) -> int:
    if not 0.0 <= args.strength <= 1.0:  # also catches nan
        raise InvalidArgument(f"--strength {args.strength:g} is not allowed: give a number between 0 and 1")
    return _run(args, "transfer", lambda pipe, x, o: transfer(pipe, x, args.prompt, args.strength, **o),
                {"prompt": args.prompt, "strength": args.strength})


def cmd_inpaint(args) -> int:
    spans = [parse_span(m) for m in args.mask]
    return _run(args, "inpaint", lambda pipe, x, o: inpaint(pipe, x, args.prompt, spans, **o),
                {"prompt": args.prompt, "masks": args.mask}, spans=spans)


def cmd_upscale(args) -> int:
    return _run(args, "upscale", lambda pipe, x, o: upscale(pipe, x, args.prompt, cutoff=args.cutoff, **o),
                {"prompt": args.prompt, "cutoff": args.cutoff})


def cmd_extend(args) -> int:
    check_duration(args.seconds, 0.0, name="--seconds")
    return _run(args, "extend", lambda pipe, x, o: extend(pipe, x, args.prompt, args.seconds, **o),
                {"prompt": args.prompt, "seconds": args.seconds})


def _run(args, command: str, make, metadata: dict, spans=None) -> int:
    """Check what can be checked, load the model, run `make(pipe, waveform, options)`, save."""
    from .cli import _load, _note, _save_all, output_paths, sampling
    from .pipelines.base import check_guidance, check_positive_int

    generation = command != "reconstruct"
    if generation:
        if args.duration is not None:
            raise InvalidArgument(f"-d/--duration does not apply to {command}: the length follows the input"
                                  + (" (use --seconds)" if command == "extend" else ""))
        if args.steps is not None:
            check_positive_int("steps", args.steps)
        if args.guidance is not None:
            check_guidance(args.guidance)
        check_positive_int("candidates (-n)", args.candidates)
    check = audio.read(args.input, audio.SAMPLE_RATE)  # unreadable or empty files fail before the model loads
    if spans is not None:
        check_spans(spans, len(check) / audio.SAMPLE_RATE)
    n = args.candidates if generation else 1
    paths = output_paths(args.output, f"{Path(args.input).stem} {command}", n, args.force)
    seed = (args.seed if args.seed is not None else secrets.randbelow(2 ** 31)) if generation else None

    pipe = _load(args.model, args.device, args.dtype, getattr(args, "lora", None), getattr(args, "compile", False),
                 getattr(args, "offload", False))
    waveform = check if pipe.sample_rate == audio.SAMPLE_RATE else audio.read(args.input, pipe.sample_rate)
    options, sampler = {}, None
    if generation:
        sampler, steps, guidance = sampling(args, pipe)
        options = dict(num_inference_steps=steps, guidance_scale=guidance, negative_prompt=args.negative,
                       num_waveforms_per_prompt=n, eta=args.eta, seed=seed, sampler=sampler, progress=True,
                       rank=not args.no_rank, ranker=args.ranker, transcription=args.transcription,
                       max_new_tokens=args.max_new_tokens)
    if len(waveform) / pipe.sample_rate > longform.LONG_SECONDS:
        _note(f"{args.input}: {len(waveform) / pipe.sample_rate:g} s, long-form (windows and chunks)")
    out = make(pipe, waveform, options)
    meta = {"command": command, "input": str(args.input), **metadata, "model": pipe.name, "dtype": args.dtype,
            "duration": round(out.audios.shape[1] / out.sample_rate, 6)}
    if generation:
        meta.update(seed=seed, steps=options["num_inference_steps"], guidance=options["guidance_scale"],
                    sampler=sampler or "default", eta=args.eta, negative_prompt=args.negative, candidates=n)
    _save_all(paths, out, meta)
    return 0
