"""What every family's pipeline shares: loading, the length arithmetic, latent noise, the sampler loop with
long-form windows, decoding (VAE → mel → vocoder → waveform), ranking and placement.

A family file (audioldm.py, …) only says how prompts become UNet conditioning (`conditioning`); engine.py runs a
request through these stages.
"""

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .. import checkpoints, configs, longform, samplers
from ..errors import CheckpointError, InvalidArgument
from ..progress import stage
from ..models.unet import UNet, UNetConfig
from ..models.vae import AutoencoderKL, VAEConfig
from ..models.vocoder import HifiGan, VocoderConfig


def network_dtype(name: str, dtype: torch.dtype) -> torch.dtype:
    """The dtype network `name` (a key of Pipeline.modules()) is loaded in for a pipeline in `dtype`. A bfloat16
    pipeline keeps its text stage (every network but the UNet, VAE and vocoder) in float32 and casts the conditioning
    to bfloat16 once, for the UNet; the VAE is loaded in float32 and cast by AutoencoderKL.cast, which keeps the
    decoder's latent-resolution blocks in float32. AudioLDM 2, 10 steps, mel error against float32
    (bench/dtype_error.py): 3.15e-2 with its text stage in bfloat16, 2.62e-2 in float32 (bar 3e-2); the text stage
    then takes ~1.0 s instead of ~0.5 s of a ~19 s sound on a 2-core CPU, and its networks' memory twice over."""
    if dtype == torch.bfloat16 and name not in ("unet", "vocoder"):
        return torch.float32
    return dtype


def model_settings(folder: Path) -> dict:
    """A model folder's own settings, checked: its soundsmith.json (written by `soundsmith train demo` for models
    trained with settings of their own; diffusers ignores the file), {} without one. Keys, all optional:
    "num_inference_steps" (integer ≥ 1) and "guidance_scale" (number ≥ 0), the call defaults; "initial_noise", one
    of samplers.INITIAL_NOISE: how the sampler's starting noise is drawn when the caller passes no latents ("zero-mean":
    samplers.zero_mean_noise, each latent channel centred; "zero-mean-bands": each of its frequency columns, and the
    channel at unit spread)."""
    path = Path(folder) / "soundsmith.json"
    if not path.exists():
        return {}
    own = checkpoints.read_json(path)
    if not isinstance(own, dict):
        raise CheckpointError(f"{path}: must be a JSON object (got {configs.show(own)})")
    steps, guidance = own.get("num_inference_steps", 1), own.get("guidance_scale", 0)
    if not (configs.is_whole(steps) and steps >= 1 and configs.is_number(guidance) and guidance >= 0):
        raise CheckpointError(f"{path}: num_inference_steps must be an integer ≥ 1 and guidance_scale a number ≥ 0 "
                              f"(got {configs.show(steps)}, {configs.show(guidance)})")
    noise = own.get("initial_noise", samplers.INITIAL_NOISE[0])
    if noise not in samplers.INITIAL_NOISE:
        raise CheckpointError(f"{path}: initial_noise {configs.show(noise)} is not one of "
                              f"{', '.join(samplers.INITIAL_NOISE)}")
    return own


def model_defaults(folder: Path, steps: int, guidance: float, own: dict | None = None) -> tuple[int, float]:
    """(steps, guidance) a model is called with by default: the family's, unless the folder's soundsmith.json
    (model_settings; `own` when already read) has its own. Every family and every door uses them (engine.resolve)."""
    own = model_settings(folder) if own is None else own
    return int(own.get("num_inference_steps", steps)), float(own.get("guidance_scale", guidance))


class _FamilyInt(int):
    """A signature default equal to diffusers' (200 steps) that the engine can tell from the same value passed."""


class _FamilyFloat(float):
    """A signature default equal to diffusers' (guidance 3.5) that the engine can tell from the same value passed."""


def family_default(value):
    """diffusers' default for a call argument, as the signature shows it; `given` turns it into None so the model's
    own default (a soundsmith.json) applies when the caller did not pass one."""
    return _FamilyInt(value) if isinstance(value, int) else _FamilyFloat(value)


def given(value):
    """None for a `family_default` the caller left alone, else the value."""
    return None if type(value) in (_FamilyInt, _FamilyFloat) else value


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
        # the sampler a request that names none runs with (None: the checkpoint's scheduler): set by assigning
        # pipe.scheduler (pipelines/compat.py), recorded in every request as run (engine.resolve)
        self.default_sampler: str | None = None
        self.default_sampler_options: dict = {}
        self.show_progress = True  # stage lines when a call does not say (progress=None; set_progress_bar_config)
        self.initial_noise = samplers.INITIAL_NOISE[0]  # how starting noise is drawn (model_settings: the folder's own)

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
        vae = checkpoints.load_module(AutoencoderKL, vae_config, folder / "vae", "diffusion_pytorch_model",
                                      network_dtype("vae", dtype), device, fix_keys=checkpoints.rename_legacy_vae_keys)
        vae.cast(dtype)
        vocoder = checkpoints.load_module(HifiGan, vocoder_config, folder / "vocoder", "model", dtype, device)
        conditioning = cls.load_conditioning(folder, index, device, network_dtype("text_encoder", dtype))
        pipe = cls(unet=unet, vae=vae, vocoder=vocoder, scheduler_config=scheduler_config,
                   unet_sample_size=configs.integer(unet_cfg, "sample_size", str(paths["unet"]), None, nullable=True),
                   name=name, folder=folder, device=device,
                   dtype=dtype, **conditioning)
        own = model_settings(folder)
        pipe.default_steps, pipe.default_guidance = model_defaults(folder, cls.default_steps, cls.default_guidance, own)
        pipe.initial_noise = own.get("initial_noise", samplers.INITIAL_NOISE[0])
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

    @property
    def row_seconds(self) -> float:
        """Seconds per latent row (0.04 for the family's 16 kHz checkpoints)."""
        return self.frame_seconds * self.vae_scale_factor

    def latent_length(self, seconds: float) -> tuple[int, int]:
        """Seconds → (latent rows, waveform samples to keep), in the reference's exact arithmetic: frames =
        int(seconds / frame_seconds) truncated, rounded up to a multiple of the VAE factor; samples =
        int(seconds · sample_rate) (the output is trimmed to it, never padded)."""
        frames = int(seconds / self.frame_seconds)
        f = self.vae_scale_factor
        if frames % f:
            frames = int(np.ceil(frames / f)) * f
        return frames // f, int(seconds * self.sample_rate)

    def is_long(self, rows: int) -> bool:
        """Whether `rows` latent rows are long-form here (windowed denoising, chunked decoding): self.long_form."""
        return self.long_form.is_long(rows, self.row_seconds)

    # ---- noise and sampling ------------------------------------------------------------------------------------
    def latent_shape(self, batch: int, rows: int) -> tuple[int, int, int, int]:
        """(B, C, rows, W): the UNet's channels, the mel bins over the VAE factor."""
        return batch, self.unet.config.in_channels, rows, self.vocoder.config.model_in_dim // self.vae_scale_factor

    def initial_latents(self, batch: int, rows: int, generator, latents: torch.Tensor | None) -> torch.Tensor:
        """The sampler's starting noise (B, C, rows, W), float32 in every pipeline dtype (see engine.guided): the
        same draws as a float32 run, so precisions differ only by the network's rounding. A model whose folder asks
        for "zero-mean" or "zero-mean-bands" noise (model_settings) gets the draws with their channel or channel-and-
        band means removed per training window; latents the caller passes are used as given."""
        if latents is not None:
            return latents.to(self.device, torch.float32)
        noise = samplers.randn(self.latent_shape(batch, rows), generator, self.device, torch.float32)
        if self.initial_noise != "gaussian":
            noise = samplers.zero_mean_noise(noise, self.unet_sample_size or rows,
                                             per_band=self.initial_noise == "zero-mean-bands")
        return noise

    def denoise(self, model: Callable, latents: torch.Tensor, plan: samplers.Plan, *, long: bool, generator, eta,
                callback, callback_steps: int, progress: bool, denoised_hook: Callable | None = None) -> torch.Tensor:
        """Run the sampler `plan` from `latents`; long latents are denoised in windows (longform.py). progress: the
        "denoising" line with its step count (progress.py). denoised_hook: see samplers.run."""
        self.stage("unet")
        about = None
        if long:
            model, about = self.long_form.windowed(model, latents.shape[-2], self.row_seconds, self.unet_sample_size,
                                                   latents.shape[-1])
        with stage("denoising" + (f" in {about}" if about else ""), progress) as line:
            return samplers.run(plan, model, latents, generator=generator, eta=eta or None, callback=callback,
                                callback_steps=callback_steps, denoised_hook=denoised_hook, progress=line.steps)

    # ---- decoding ------------------------------------------------------------------------------------------------
    def latents_to_mel(self, latents: torch.Tensor, long: bool | None = None) -> torch.Tensor:
        """(B, C, H, W) latents → (B, T, M) log-mel, T = 4H, M = 4W; in exact chunks when long (default: decided
        from H)."""
        self.stage("vae")
        long = self.is_long(latents.shape[-2]) if long is None else long
        return self.long_form.decode_mel(self.vae, latents.to(self.dtype) / self.vae.config.scaling_factor, long)

    def mel_to_waveform(self, mel: torch.Tensor, long: bool | None = None) -> torch.Tensor:
        """(B, T, M) log-mel → (B, samples) float32 on the CPU; in exact chunks when long (default: decided from T)."""
        self.stage("vocoder")
        long = self.is_long(-(-mel.shape[1] // self.vae_scale_factor)) if long is None else long
        return self.long_form.vocode(self.vocoder, mel.to(self.dtype), long).cpu().float()

    def ranking(self, rank: bool, ranker, prompts: list[str] | None, n: int, label: str = "ranker=") -> Callable | None:
        """The best-of-n step for `output`: None unless ranking is asked for and a CLAP audio tower is available."""
        if not rank or n < 2 or prompts is None:
            return None
        from .. import rank as ranking

        chosen = ranking.pipeline_ranker(self, ranker, label)
        if chosen is None:
            return None

        def rank(audio):
            self.stage("text_encoder")  # the pipeline's own CLAP, when it is the ranker
            return ranking.rank(chosen, audio, self.sample_rate, prompts, n)

        return rank

    @property
    def mel_config(self):
        """The vocoder's mel recipe (audio.MelConfig): canvas.mel_config."""
        from ..canvas import mel_config

        return mel_config(self)

    def load_lora(self, path, scale: float = 1.0) -> "Pipeline":
        """Apply the LoRA adapter in folder `path` (soundsmith finetune --lora) to the UNet at `scale`;
        cross_attention_kwargs={"scale": s} multiplies it for one call."""
        from ..aot import SignatureUNet
        from ..lora import load_adapter

        if isinstance(self.unet, SignatureUNet):  # compiled or converted with the weights it had
            raise InvalidArgument("load_lora needs the eager UNet: load the adapter first, then compile or choose "
                                  "the OpenVINO backend (openvino_unet.use_backend)")
        load_adapter(self.unet, Path(path).expanduser(), scale)
        return self

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

    def to(self, *args, device=None, dtype=None) -> "Pipeline":
        """Move every network to a device and/or cast it to a dtype, given by keyword or positionally in any order
        as diffusers' `pipe.to("cuda")`, `pipe.to(torch.float16)`, `pipe.to("cuda", torch.float16)` take them.
        Turns CPU offload off."""
        from . import resolve_device, resolve_dtype

        for arg in args:
            if isinstance(arg, torch.dtype) and dtype is None:
                dtype = arg
            elif isinstance(arg, (str, torch.device)) and device is None:
                device = arg
            else:
                raise InvalidArgument(f"pipe.to({arg!r}) is not allowed: give a device (cpu, cuda, cuda:N, mps) "
                                      f"and/or a dtype (torch.float32, torch.bfloat16, torch.float16)")
        device = None if device is None else resolve_device(device)
        dtype = None if dtype is None else resolve_dtype(dtype)
        self.offload = False
        for name, module in self.modules().items():
            if module is not None:
                module.to(device=device, dtype=None if dtype is None else network_dtype(name, dtype))
        if dtype is not None:
            self.vae.cast(dtype)
            self.dtype = dtype
        if device is not None:
            self.device = device
        return self

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"unet": self.unet, "vae": self.vae, "vocoder": self.vocoder}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, device={self.device}, dtype={self.dtype})"
