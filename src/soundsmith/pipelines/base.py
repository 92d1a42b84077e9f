"""What every family's pipeline shares: argument checks, the length arithmetic, latent noise, the guided denoiser
handed to the sampler, decoding (VAE → mel → vocoder → trimmed waveform) and the output.

A family file (audioldm.py, …) only says how prompts become UNet conditioning.
"""

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .. import checkpoints, configs, longform, samplers
from ..errors import CheckpointError, InvalidArgument
from ..models.unet import UNet, UNetConfig
from ..models.vae import AutoencoderKL, VAEConfig
from ..models.vocoder import HifiGan, VocoderConfig

MAX_SECONDS = 3600.0  # one call generates at most an hour of audio
OUTPUT_TYPES = ("np", "pt", "latent")


@dataclass
class AudioOutput:
    """Result of a pipeline call. `audios`: float32 (batch · num_waveforms_per_prompt, samples), numpy for
    output_type "np", torch otherwise ("latent": the final latents (B, C, H, W), not unscaled)."""

    audios: Any
    sample_rate: int
    scores: Any = None  # CLAP text–audio similarity per waveform when candidates were ranked
    seed: int | None = None
    info: dict = field(default_factory=dict)


def check_prompt(prompt) -> list[str] | None:
    """None, a non-empty string or a non-empty list of non-empty strings → list (or None)."""
    if prompt is None:
        return None
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, (list, tuple)) or not all(isinstance(p, str) for p in prompts):
        raise InvalidArgument(f"prompt={prompt!r} is not allowed: give a string or a list of strings")
    if not prompts:
        raise InvalidArgument("prompt=[] is empty: give at least one description of the sound")
    for p in prompts:
        if not p.strip():
            raise InvalidArgument(f"prompt={p!r} is empty: describe the sound, e.g. 'a dog barking in the rain'")
    return list(prompts)


def check_negative(negative_prompt, batch: int) -> list[str] | None:
    """A string applies to every prompt; a list needs one entry per prompt."""
    if negative_prompt is None:
        return None
    if isinstance(negative_prompt, str):
        return [negative_prompt] * batch
    if not isinstance(negative_prompt, (list, tuple)) or not all(isinstance(p, str) for p in negative_prompt):
        raise InvalidArgument(f"negative_prompt={negative_prompt!r} is not allowed: give a string or a list of strings")
    if len(negative_prompt) != batch:
        raise InvalidArgument(f"negative_prompt has {len(negative_prompt)} entries but there are {batch} prompts: "
                              f"give one negative prompt per prompt, or a single string for all")
    return list(negative_prompt)


def check_duration(seconds, minimum: float, name: str = "audio_length_in_s") -> float:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float, np.floating, np.integer)):
        raise InvalidArgument(f"{name}={seconds!r} is not a number: give seconds, e.g. 10")
    if not math.isfinite(seconds) or seconds < minimum or seconds > MAX_SECONDS or seconds <= 0:
        raise InvalidArgument(f"{name}={seconds!r} is not allowed: give a duration between {minimum:g} "
                              f"and {MAX_SECONDS:g} seconds")
    return seconds


def check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InvalidArgument(f"{name}={value!r} is not allowed: give a whole number ≥ 1")
    return int(value)


def check_guidance(guidance_scale) -> float:
    if isinstance(guidance_scale, bool) or not isinstance(guidance_scale, (int, float, np.floating)) \
            or not math.isfinite(guidance_scale) or guidance_scale < 0:
        raise InvalidArgument(f"guidance_scale={guidance_scale!r} is not allowed: give a number ≥ 0 "
                              f"(1 or less turns classifier-free guidance off)")
    return float(guidance_scale)


def check_call(*, steps, guidance_scale, num_waveforms_per_prompt, eta, callback_steps, output_type, seed,
               generator) -> None:
    check_positive_int("num_inference_steps", steps)
    check_guidance(guidance_scale)
    check_positive_int("num_waveforms_per_prompt", num_waveforms_per_prompt)
    check_positive_int("callback_steps", callback_steps)
    if not isinstance(eta, (int, float)) or not math.isfinite(eta) or eta < 0:
        raise InvalidArgument(f"eta={eta!r} is not allowed: give a number ≥ 0 (0 is deterministic DDIM)")
    if output_type not in OUTPUT_TYPES:
        raise InvalidArgument(f"output_type={output_type!r} is not allowed (allowed: {', '.join(OUTPUT_TYPES)})")
    if seed is not None:
        if generator is not None:
            raise InvalidArgument("give seed= or generator=, not both")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2 ** 63:
            raise InvalidArgument(f"seed={seed!r} is not allowed: give a whole number between 0 and 2^63 − 1")


def model_defaults(folder: Path, steps: int, guidance: float) -> tuple[int, float]:
    """(steps, guidance) a model is called with by default: the family's, unless the folder has a soundsmith.json
    with {"num_inference_steps": N, "guidance_scale": G} (written by `soundsmith train demo` for models trained
    with settings of their own; diffusers ignores the file). The CLI and AudioLDM / MusicLDM calls use them; an
    AudioLDM 2 call keeps the reference's signature defaults."""
    path = Path(folder) / "soundsmith.json"
    if not path.exists():
        return steps, guidance
    own = checkpoints.read_json(path)
    steps, guidance = own.get("num_inference_steps", steps), own.get("guidance_scale", guidance)
    if not (configs.is_whole(steps) and steps >= 1 and configs.is_number(guidance) and guidance >= 0):
        raise CheckpointError(f"{path}: num_inference_steps must be an integer ≥ 1 and guidance_scale a number ≥ 0 "
                              f"(got {configs.show(steps)}, {configs.show(guidance)})")
    return int(steps), float(guidance)


def guided(unet: Callable, conditioning: dict, guidance_scale: float) -> Callable:
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


def repeat_per_prompt(x: torch.Tensor, n: int) -> torch.Tensor:
    """(B, …) → (B·n, …) with each row repeated n times consecutively: [p0]*n + [p1]*n + …"""
    return x.repeat_interleave(n, dim=0)


class Pipeline:
    """Shared machinery; see the family classes for the call signatures."""

    pipeline_class: str = ""
    default_steps: int = 10
    default_guidance: float = 2.5

    def __init__(self, *, unet, vae, vocoder, scheduler_config: dict, unet_sample_size: int | None,
                 name: str, folder: Path, device: torch.device, dtype: torch.dtype):
        self.unet, self.vae, self.vocoder = unet, vae, vocoder
        self.scheduler_config = scheduler_config
        self.unet_sample_size = unet_sample_size
        self.name, self.folder = name, folder
        self.device, self.dtype = device, dtype
        self.long_form = longform.LongForm()  # when and how audio longer than the training window is made
        self.offload = False  # enable_model_cpu_offload: networks live in CPU memory between their stages

    # ---- loading -----------------------------------------------------------------------------------------------
    @classmethod
    def from_folder(cls, folder: Path, index: dict, *, name: str, device: torch.device, dtype: torch.dtype):
        """Build the pipeline from a diffusers-layout folder whose model_index.json names this family. Every config
        is checked before its network is built (soundsmith.configs): a broken folder raises CheckpointError."""
        checkpoints.component_class(folder, index, "unet", ("UNet2DConditionModel", "AudioLDM2UNet2DConditionModel"))
        checkpoints.component_class(folder, index, "vae", ("AutoencoderKL",))
        checkpoints.component_class(folder, index, "vocoder", ("SpeechT5HifiGan",))
        checkpoints.component_class(folder, index, "scheduler", required=False)
        paths = {name: folder / name / "config.json" for name in ("unet", "vae", "vocoder")}
        unet_cfg = checkpoints.read_json(paths["unet"])
        unet_config = UNetConfig.from_dict(unet_cfg, str(paths["unet"]))
        vae_config = VAEConfig.from_dict(checkpoints.read_json(paths["vae"]), str(paths["vae"]))
        vocoder_config = VocoderConfig.from_dict(checkpoints.read_json(paths["vocoder"]), str(paths["vocoder"]))
        scheduler_path = folder / "scheduler" / "scheduler_config.json"
        scheduler_config = configs.check_scheduler_config(checkpoints.read_json(scheduler_path), str(scheduler_path))
        if vocoder_config.model_in_dim % vae_config.scale_factor:
            raise CheckpointError(f"{folder}: the vocoder's {vocoder_config.model_in_dim} mel bins are not divisible "
                                  f"by the VAE factor {vae_config.scale_factor}")
        unet = checkpoints.load_module(UNet, unet_config, folder / "unet", "diffusion_pytorch_model", dtype, device)
        vae = checkpoints.load_module(AutoencoderKL, vae_config, folder / "vae", "diffusion_pytorch_model", dtype,
                                      device, fix_keys=checkpoints.rename_legacy_vae_keys)
        vocoder = checkpoints.load_module(HifiGan, vocoder_config, folder / "vocoder", "model", dtype, device)
        conditioning = cls.load_conditioning(folder, index, device, dtype)
        pipe = cls(unet=unet, vae=vae, vocoder=vocoder, scheduler_config=scheduler_config,
                   unet_sample_size=configs.integer(unet_cfg, "sample_size", str(paths["unet"]), None, nullable=True),
                   name=name, folder=folder, device=device,
                   dtype=dtype, **conditioning)
        pipe.default_steps, pipe.default_guidance = model_defaults(folder, cls.default_steps, cls.default_guidance)
        return pipe

    @classmethod
    def load_conditioning(cls, folder: Path, index: dict, device, dtype) -> dict:
        """The family's text encoders and tokenizers, as keyword arguments of its constructor."""
        raise NotImplementedError

    # ---- lengths -----------------------------------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return self.vocoder.config.sampling_rate

    @property
    def vae_scale_factor(self) -> int:
        return self.vae.config.scale_factor

    @property
    def frame_seconds(self) -> float:
        """Seconds per mel frame (0.01 at 16 kHz, hop 160)."""
        return float(np.prod(self.vocoder.config.upsample_rates)) / self.vocoder.config.sampling_rate

    @property
    def min_seconds(self) -> float:
        return self.frame_seconds * self.vae_scale_factor

    @property
    def default_seconds(self) -> float:
        return (self.unet_sample_size or 128) * self.vae_scale_factor * self.frame_seconds

    def latent_length(self, seconds: float) -> tuple[int, int]:
        """Seconds → (latent rows, waveform samples to keep), in the reference's exact arithmetic: frames =
        int(seconds / frame_seconds) truncated, rounded up to a multiple of the VAE factor; samples =
        int(seconds · sample_rate) (the output is trimmed to it, never padded)."""
        frames = int(seconds / self.frame_seconds)
        f = self.vae_scale_factor
        if frames % f:
            frames = int(np.ceil(frames / f)) * f
        return frames // f, int(seconds * self.sample_rate)

    # ---- noise and sampling ------------------------------------------------------------------------------------
    def initial_latents(self, batch: int, rows: int, generator, latents: torch.Tensor | None) -> torch.Tensor:
        """The sampler's starting noise (B, C, rows, W), float32 in every pipeline dtype (see `guided`): the same
        draws as a float32 run, so precisions differ only by the network's rounding."""
        if latents is not None:
            return latents.to(self.device, torch.float32)
        width = self.vocoder.config.model_in_dim // self.vae_scale_factor
        shape = (batch, self.unet.config.in_channels, rows, width)
        return samplers.randn(shape, generator, self.device, torch.float32)

    def denoise(self, model: Callable, latents: torch.Tensor, *, steps: int, sampler: str | None, generator, eta,
                callback, callback_steps: int, progress: bool, sampler_options: dict | None = None,
                plan: samplers.Plan | None = None, denoised_hook: Callable | None = None) -> torch.Tensor:
        """Run the sampler (or the given `plan`, e.g. a `samplers.start_at` one) from `latents`; long latents are
        denoised in windows (longform.py). denoised_hook: see samplers.run."""
        plan = plan or samplers.plan(self.scheduler_config, sampler, steps, **(sampler_options or {}))
        self.stage("unet")
        model, bar = longform.long_denoiser(self, model, latents.shape[-2], len(plan.timesteps), progress)
        x = samplers.run(plan, model, latents, generator=generator, eta=eta or None, callback=callback,
                         callback_steps=callback_steps, denoised_hook=denoised_hook,
                         progress=progress and bar is None)
        if bar is not None:
            bar.close()
        return x

    # ---- decoding ------------------------------------------------------------------------------------------------
    def latents_to_mel(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) latents → (B, T, M) log-mel, T = 4H, M = 4W; in exact chunks when long (longform.py)."""
        self.stage("vae")
        return longform.decode_mel(self, latents.to(self.dtype) / self.vae.config.scaling_factor)

    def mel_to_waveform(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, T, M) log-mel → (B, samples) float32 on the CPU; in exact chunks when long."""
        self.stage("vocoder")
        return longform.vocode(self, mel.to(self.dtype)).cpu().float()

    def output(self, latents: torch.Tensor, keep_samples: int, output_type: str, return_dict: bool,
               seed: int | None, postprocess: Callable | None = None):
        if output_type == "latent":
            audio = latents
        else:
            audio = self.mel_to_waveform(self.latents_to_mel(latents))[:, :keep_samples]
        scores = None
        if postprocess is not None and output_type != "latent":
            audio, scores = postprocess(audio)
        if output_type == "np":
            audio = audio.numpy()
        if not return_dict:
            return (audio,)
        return AudioOutput(audios=audio, sample_rate=self.sample_rate, scores=scores, seed=seed)

    def ranking(self, rank: bool, ranker, prompts: list[str] | None, n: int) -> Callable | None:
        """The best-of-n step for `output`: None unless ranking is asked for and a CLAP audio tower is available."""
        if not rank or n < 2 or prompts is None:
            return None
        from .. import rank as ranking

        chosen = ranking.pipeline_ranker(self, ranker)
        if chosen is None:
            return None

        def rank(audio):
            self.stage("text_encoder")  # the pipeline's own CLAP, when it is the ranker
            return ranking.rank(chosen, audio, self.sample_rate, prompts, n)

        return rank

    @property
    def mel_config(self):
        """The vocoder's mel recipe (audio.MelConfig) from vocoder/config.json: 16 kHz / 64 mels / hop 160 for the
        published checkpoints, 22,050 Hz / 80 mels / hop 256 / fmax 8000 for the bundled demo."""
        from ..audio import MelConfig

        return MelConfig.from_vocoder_config(checkpoints.read_json(self.folder / "vocoder" / "config.json"))

    def load_lora(self, path, scale: float = 1.0) -> "Pipeline":
        """Apply the LoRA adapter in folder `path` (soundsmith finetune --lora) to the UNet at `scale`;
        cross_attention_kwargs={"scale": s} multiplies it for one call."""
        from ..lora import load_adapter

        load_adapter(self.unet, Path(path).expanduser(), scale)
        return self

    @staticmethod
    def make_generator(seed, generator):
        if seed is None:
            return generator
        return torch.Generator("cpu").manual_seed(int(seed))

    # ---- placement ---------------------------------------------------------------------------------------------
    def enable_model_cpu_offload(self, device=None) -> "Pipeline":
        """Keep every network in CPU memory and move each to `device` (default: the pipeline's) only while its stage
        runs: text encoders, UNet, VAE, vocoder. Accelerator memory then peaks at the largest network plus
        activations instead of all of them (AudioLDM 2 large: the UNet alone); outputs are unchanged, each move
        costs a host-to-device copy per call."""
        self.device = self.device if device is None else torch.device(device)
        self.offload = True
        for module in self.modules().values():
            if module is not None:
                module.to("cpu")
        return self

    def stage(self, *names: str) -> None:
        """Called before a stage runs with the names (keys of modules()) of the networks it uses: with offload on,
        they move to the pipeline's device and every other network to the CPU; otherwise nothing happens."""
        if not self.offload:
            return
        for name, module in self.modules().items():
            if module is not None:
                module.to(self.device if name in names else torch.device("cpu"))

    def to(self, device=None, dtype=None) -> "Pipeline":
        self.offload = False
        for module in self.modules().values():
            module.to(device=device, dtype=dtype if dtype is not None and module is not None else None)
        if device is not None:
            self.device = torch.device(device)
        if dtype is not None:
            self.dtype = dtype
        return self

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"unet": self.unet, "vae": self.vae, "vocoder": self.vocoder}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, device={self.device}, dtype={self.dtype})"
