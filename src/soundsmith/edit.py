"""Audio in, audio out, from Python: reconstruction, style transfer, inpainting, super-resolution and continuation,
for every family, and variations (AudioLDM, MusicLDM).

    out = edit.transfer(pipe, "drums.wav", "a jazz drum kit with brushes", strength=0.6, seed=0)
    out = edit.inpaint(pipe, "street.wav", "a car horn", [(2.0, 3.5)], seed=0)
    out = edit.upscale(pipe, "phone-call.wav", cutoff=4000)
    out = edit.extend(pipe, "loop.wav", "the same groove, building up", 10.0)
    out = edit.vary(pipe, "loop.wav", num_waveforms_per_prompt=4, seed=0)   # like the input, no text

`source` is a file path, or samples (samples,) / (channels, samples) at `sample_rate` Hz (default: the model's).
Every function takes the pipeline's generation arguments (num_inference_steps, guidance_scale, negative_prompt,
num_waveforms_per_prompt, eta, generator, seed, sampler, sampler_options, callback, callback_steps, output_type,
return_dict, progress (stage lines, on unless False), loudness (a LUFS target; default the raw level), rank, ranker;
transcription and max_new_tokens on AudioLDM 2) and returns its AudioOutput;
output_type="latent" gives the final latents (n, C, rows, W), comparable with `encode`. Each call is a
soundsmith.Request run by the engine; how each task starts from its input is canvas.py.
"""

import os

from . import engine
from .canvas import (crossover, detect_cutoff, encode, input_mel, latent_rows, load_waveform,  # noqa: F401 (API)
                     mel_config)
from .request import PYTHON_LABELS, Request

_FIELDS = {"num_inference_steps": "steps", "guidance_scale": "guidance", "negative_prompt": "negative_prompt",
           "num_waveforms_per_prompt": "candidates", "eta": "eta", "seed": "seed", "sampler": "sampler",
           "sampler_options": "sampler_options", "rank": "rank", "transcription": "transcription",
           "max_new_tokens": "max_new_tokens", "loudness": "loudness"}
_EXTRAS = ("generator", "callback", "callback_steps", "output_type", "return_dict", "progress", "ranker")


def reconstruct(pipe, source, *, sample_rate: int | None = None, output_type: str = "np", return_dict: bool = True,
                progress: bool = True, loudness: float | None = None):
    """encode → decode → vocoder: the codec's ceiling. Same length as the input."""
    return _run(pipe, "reconstruct", source, sample_rate, {}, dict(output_type=output_type, return_dict=return_dict,
                                                                   progress=progress, loudness=loudness))


def transfer(pipe, source, prompt, strength: float = 0.5, *, sample_rate: int | None = None, **options):
    """Style transfer / audio-to-audio (SDEdit): the input's latents noised to the last int(steps·strength) steps,
    then denoised towards `prompt`. strength 0 returns the reconstruction, 1 is text-to-audio with the same noise
    (equal to pipe(prompt, audio_length_in_s=…) with the same seed). Output length = input length."""
    return _run(pipe, "transfer", source, sample_rate, dict(prompt=prompt, strength=strength), options)


def inpaint(pipe, source, prompt, masks, *, sample_rate: int | None = None, **options):
    """Regenerate the time spans `masks` ((start, end) seconds, or a list of them) and keep the rest: the latent
    rows overlapping a span are generated, the others re-imposed at every step. Output length = input length."""
    return _run(pipe, "inpaint", source, sample_rate, dict(prompt=prompt, masks=masks), options)


def upscale(pipe, source, prompt=None, *, cutoff: float | None = None, sample_rate: int | None = None, **options):
    """Super-resolution: for input with no content above `cutoff` Hz (detected when None), the latent columns of mel
    bins wholly below the cutoff are kept and the rest regenerated; the output is the input below the cutoff and the
    generated audio above it (an FFT crossover). Without a prompt the high band is generated unconditionally."""
    return _run(pipe, "upscale", source, sample_rate, dict(prompt=prompt, cutoff=cutoff), options)


def extend(pipe, source, prompt, seconds: float, *, sample_rate: int | None = None, **options):
    """Continue a clip by `seconds`: the input's latents (its complete latent rows) are kept and the rows after
    them generated in their context. Returns the whole clip, input length + seconds. When the result is long-form,
    only the new rows and one window of context before them are denoised."""
    return _run(pipe, "extend", source, sample_rate, dict(prompt=prompt, seconds=seconds), options)


def vary(pipe, source, *, audio_length_in_s: float | None = None, clap=None, sample_rate: int | None = None,
         **options):
    """New audio like the input (the original AudioLDM CLI's `--mode generation -f FILE`): generated from fresh noise,
    `audio_length_in_s` seconds long (default: the model's training length), conditioned on the input's CLAP audio
    embedding instead of a prompt's text embedding (negative_prompt= still steers the unconditional branch).
    Candidates (num_waveforms_per_prompt) come best first by CLAP audio similarity to the input. MusicLDM uses its
    own CLAP; AudioLDM's checkpoints keep only CLAP's text tower, so `clap` must name the CLAP folder it was trained
    with (checked); AudioLDM 2 is refused. See variation.py."""
    return _run(pipe, "vary", source, sample_rate, dict(duration=audio_length_in_s, clap=clap), options)


def _run(pipe, task: str, source, sample_rate, fields: dict, options: dict):
    unknown = sorted(set(options) - set(_FIELDS) - set(_EXTRAS))
    if unknown:
        raise TypeError(f"{task}() got an unexpected keyword argument {unknown[0]!r}")
    path = isinstance(source, (str, os.PathLike))
    fields = {k: os.fspath(v) if isinstance(v, os.PathLike) else v for k, v in fields.items()}
    request = Request(task=task, input=os.fspath(source) if path else None, _labels=PYTHON_LABELS, **fields,
                      **{_FIELDS[k]: v for k, v in options.items() if k in _FIELDS})
    extras = {"progress": True, **{k: v for k, v in options.items() if k in _EXTRAS}}
    return engine.run(pipe, request, audio=None if path else source, sample_rate=sample_rate, **extras)
