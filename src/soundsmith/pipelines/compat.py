"""diffusers' entry points, so that a diffusers script runs here with its import line changed:

    from soundsmith import AudioLDM2Pipeline                  # was: from diffusers import AudioLDM2Pipeline
    pipe = AudioLDM2Pipeline.from_pretrained("cvssp/audioldm2", torch_dtype=torch.float16).to("cuda")
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)   # soundsmith.schedulers
    audio = pipe("a hammer on wood", num_inference_steps=50, generator=torch.Generator("cuda").manual_seed(0)).audios

AudioLDMPipeline, AudioLDM2Pipeline and MusicLDMPipeline are the family classes (AudioLDM, AudioLDM2, MusicLDM) with
diffusers' loading and pipeline methods added by `DiffusionPipeline`: from_pretrained and its keyword arguments,
`scheduler` (read and assignable), set_progress_bar_config, enable_vae_slicing / enable_vae_tiling (exact chunked
decoding: outputs unchanged) and enable_model_cpu_offload with diffusers' arguments. Calls, outputs and every other
attribute are the family's. What differs from diffusers is in docs/compat.md; an argument soundsmith cannot honour
is refused in one line, never ignored.
"""

import contextlib
from pathlib import Path

import torch

from .. import checkpoints, schedulers
from ..errors import CheckpointError, InvalidArgument
from .audioldm import AudioLDM, MusicLDM
from .audioldm2 import AudioLDM2

# from_pretrained arguments that change nothing here (what they ask for is always so)
_NO_EFFECT = {"low_cpu_mem_usage"}  # networks are always built empty and filled with the weights once
# from_pretrained arguments refused unless left at their default (None / False), with the reason
_REFUSED = {
    "cache_dir": "soundsmith downloads through the huggingface cache: set HF_HOME (or HF_HUB_CACHE) instead",
    "force_download": "delete the cached snapshot (huggingface-cli delete-cache) and load again",
    "proxies": "set HTTPS_PROXY for huggingface_hub instead",
    "token": "set HF_TOKEN (or `huggingface-cli login`) instead",
    "revision": "soundsmith loads the cached or main snapshot; download the revision you want and pass its folder",
    "custom_revision": "custom pipelines are not supported",
    "mirror": "set HF_ENDPOINT instead",
    "custom_pipeline": "custom pipeline code is not run by soundsmith",
    "trust_remote_code": "custom pipeline code is not run by soundsmith",
    "variant": "soundsmith loads the full-precision weights; give torch_dtype=torch.float16 for half precision",
    "use_onnx": "ONNX weights are not supported",
    "provider": "ONNX weights are not supported",
    "provider_options": "ONNX weights are not supported",
    "sess_options": "ONNX weights are not supported",
    "quantization_config": "quantised loading is not supported; give torch_dtype=torch.bfloat16 or torch.float16",
    "max_memory": "multi-device placement is not supported; use .to(device) or enable_model_cpu_offload()",
    "offload_folder": "disk offload is not supported; use enable_model_cpu_offload()",
    "offload_state_dict": "disk offload is not supported; use enable_model_cpu_offload()",
    "dduf_file": "DDUF files are not supported (diffusers dropped them too); pass the folder",
    "load_connected_pipeline": "connected pipelines are not part of this family",
    "use_flashpack": "flashpack weights are not supported",
    "disable_mmap": "soundsmith reads safetensors with memory mapping",
    "output_loading_info": "loading is strict: a missing or unexpected weight is an error, so there is nothing to report",
}
# diffusers pipeline methods that do not exist here, and what to do instead
_NOT_HERE = {
    "enable_sequential_cpu_offload": "use enable_model_cpu_offload(): soundsmith moves whole networks per stage",
    "enable_xformers_memory_efficient_attention": "soundsmith's attention runs torch's scaled_dot_product_attention, "
                                                  "which picks a memory-efficient kernel itself; delete the call",
    "enable_attention_slicing": "soundsmith's attention runs torch's scaled_dot_product_attention, which picks a "
                                "memory-efficient kernel itself; delete the call",
    "save_pretrained": "the folder the pipeline was loaded from is already in the diffusers layout; copy it",
    "push_to_hub": "the folder the pipeline was loaded from is already in the diffusers layout; upload it",
    "components": "use the networks by name: pipe.unet, pipe.vae, pipe.vocoder, pipe.text_encoder, …",
}


class DiffusionPipeline:
    """diffusers' loading and pipeline methods; `DiffusionPipeline.from_pretrained(folder)` returns the class its
    model_index.json names."""

    _diffusers_class = ""  # model_index.json's _class_name a subclass loads

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """Load a model name (`audioldm2`, …), hub id or diffusers-layout folder as diffusers' from_pretrained does:
        on the CPU in float32 unless torch_dtype= (or dtype=) and device_map= (a device: "cpu", "cuda", …) say
        otherwise. Also accepted: use_safetensors=None/True (True: every network must have safetensors weights),
        local_files_only (no download), low_cpu_mem_usage (always so here), scheduler= (any of
        soundsmith.schedulers), language_model= (a GPT-2, as diffusers' AudioLDM 2 workaround passes it). Every
        other argument is refused in one line unless left at its default."""
        from . import PIPELINES, open_folder, resolve_device, resolve_dtype

        name = str(pretrained_model_name_or_path)
        dtype = _dtype(kwargs)
        device = _device_map(kwargs.pop("device_map", None))
        use_safetensors = kwargs.pop("use_safetensors", None)
        if use_safetensors not in (None, True):
            raise InvalidArgument(f"use_safetensors={use_safetensors!r} is not supported: soundsmith reads "
                                  "safetensors weights where a folder has them (pickles only without, weights-only)")
        offline = kwargs.pop("local_files_only", None)
        scheduler = kwargs.pop("scheduler", None)
        language_model = kwargs.pop("language_model", None)
        _refuse_the_rest(kwargs, cls.__name__)
        with _offline(bool(offline)):
            folder = checkpoints.resolve(name)
        index = checkpoints.read_index(folder, tuple(PIPELINES))
        target = DIFFUSERS_CLASSES[index["_class_name"]]
        if cls is not DiffusionPipeline and cls is not target:
            raise CheckpointError(f"{name}: its model_index.json names {index['_class_name']}, not {cls.__name__}; "
                                  f"load it with {index['_class_name']}.from_pretrained (or "
                                  f"DiffusionPipeline.from_pretrained)")
        if use_safetensors:
            _require_safetensors(folder, index)
        pipe = open_folder(target, folder, index, name, resolve_device(device), resolve_dtype(dtype))
        pipe.show_progress = True  # diffusers shows its progress bar unless set_progress_bar_config(disable=True)
        if language_model is not None:
            pipe.language_model = _gpt2(language_model, target, pipe)
        if scheduler is not None:
            pipe.scheduler = scheduler
        return pipe

    # ---- the scheduler ---------------------------------------------------------------------------------------
    @property
    def scheduler(self) -> schedulers.Scheduler:
        """The scheduler the pipeline samples with, as a soundsmith.schedulers object (class name and config):
        the checkpoint's own until one is assigned."""
        if self.__dict__.get("_scheduler") is None:
            self._scheduler = schedulers.of_checkpoint(self.scheduler_config)
        return self._scheduler

    @scheduler.setter
    def scheduler(self, value) -> None:
        """Sample with `value` from now on (any soundsmith.schedulers object, e.g. DPMSolverMultistepScheduler
        .from_config(pipe.scheduler.config)); a call's own sampler= still wins. Requests record it as their sampler
        and sampler_options."""
        self.default_sampler, self.default_sampler_options = schedulers.as_sampler(self.scheduler_config, value)
        self._scheduler = value

    # ---- progress, decoding memory, placement ------------------------------------------------------------------
    def set_progress_bar_config(self, **kwargs) -> None:
        """disable=True turns the progress bars off (they go to stderr), False on; like diffusers, a call replaces
        the whole configuration. Other tqdm options are refused in one line."""
        unknown = sorted(set(kwargs) - {"disable"})
        if unknown:
            raise InvalidArgument(f"set_progress_bar_config({unknown[0]}=…) is not supported: soundsmith's bars take "
                                  f"disable= only")
        disable = kwargs.get("disable", False)
        if not isinstance(disable, bool):
            raise InvalidArgument(f"set_progress_bar_config(disable={disable!r}) is not allowed: give True or False")
        self.show_progress = not disable

    def enable_vae_slicing(self) -> None:
        """Decode one waveform of a batch at a time (VAE and vocoder): less memory, same output."""
        self.long_form.sliced_decoding = True

    def disable_vae_slicing(self) -> None:
        self.long_form.sliced_decoding = False

    def enable_vae_tiling(self) -> None:
        """Decode every length in exact chunks (chunked.py: VAE and vocoder), as long-form audio always is:
        memory bounded by pipe.long_form.decode_rows / budget_mb, the same output (diffusers' tiling blends
        overlapping tiles and changes it)."""
        self.long_form.chunked_decoding = True

    def disable_vae_tiling(self) -> None:
        self.long_form.chunked_decoding = False

    def enable_model_cpu_offload(self, gpu_id: int | None = None, device: torch.device | str | None = None):
        """Keep the networks in CPU memory and move each to the accelerator only for its stage (see
        Pipeline.enable_model_cpu_offload). As in diffusers: `device` defaults to the accelerator here (cuda, else
        mps), `gpu_id` picks its index, and a machine without one is refused."""
        from . import resolve_device

        if gpu_id is not None and (isinstance(gpu_id, bool) or not isinstance(gpu_id, int) or gpu_id < 0):
            raise InvalidArgument(f"gpu_id={gpu_id!r} is not allowed: give an accelerator index ≥ 0")
        if device is None:
            if not (torch.cuda.is_available() or torch.backends.mps.is_available()):
                raise InvalidArgument("enable_model_cpu_offload() needs a cuda or mps device: on cpu the networks "
                                      "already live in CPU memory")
            device = "cuda" if torch.cuda.is_available() else "mps"
        device = resolve_device(device)
        if device.type == "cpu":
            raise InvalidArgument("enable_model_cpu_offload(device='cpu') is not allowed: on cpu the networks "
                                  "already live in CPU memory")
        if gpu_id is not None and device.index is not None and device.index != gpu_id:
            raise InvalidArgument(f"give gpu_id={gpu_id} or device={str(device)!r}, not both")
        if gpu_id is not None:
            device = resolve_device(torch.device(device.type, gpu_id))
        return super().enable_model_cpu_offload(device)

    def __getattr__(self, name):
        if name in _NOT_HERE:
            raise AttributeError(f"{type(self).__name__}.{name} is not provided by soundsmith: {_NOT_HERE[name]}")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


class AudioLDMPipeline(DiffusionPipeline, AudioLDM):
    """diffusers' AudioLDMPipeline: soundsmith.AudioLDM with from_pretrained and diffusers' pipeline methods."""

    _diffusers_class = "AudioLDMPipeline"


class MusicLDMPipeline(DiffusionPipeline, MusicLDM):
    """diffusers' MusicLDMPipeline: soundsmith.MusicLDM with from_pretrained and diffusers' pipeline methods."""

    _diffusers_class = "MusicLDMPipeline"


class AudioLDM2Pipeline(DiffusionPipeline, AudioLDM2):
    """diffusers' AudioLDM2Pipeline: soundsmith.AudioLDM2 with from_pretrained and diffusers' pipeline methods."""

    _diffusers_class = "AudioLDM2Pipeline"


DIFFUSERS_CLASSES = {cls._diffusers_class: cls for cls in (AudioLDMPipeline, MusicLDMPipeline, AudioLDM2Pipeline)}


# ---- from_pretrained's arguments -----------------------------------------------------------------------------

def _dtype(kwargs: dict):
    torch_dtype, dtype = kwargs.pop("torch_dtype", None), kwargs.pop("dtype", None)
    if torch_dtype is not None and dtype is not None:
        raise InvalidArgument("give torch_dtype= or dtype=, not both")
    dtype = dtype if torch_dtype is None else torch_dtype
    if isinstance(dtype, dict):
        raise InvalidArgument("torch_dtype as a dict (one dtype per network) is not supported: give one dtype "
                              "(torch.float32, torch.bfloat16, torch.float16)")
    return dtype


def _device_map(device_map):
    """device_map: None (the CPU, as diffusers), or one device for every network."""
    if device_map is None:
        return "cpu"
    if isinstance(device_map, torch.device) or (isinstance(device_map, str) and device_map not in ("balanced",
                                                                                                     "auto")):
        return device_map
    raise InvalidArgument(f"device_map={device_map!r} is not supported: give one device (\"cpu\", \"cuda\", "
                          f"\"cuda:1\", \"mps\"), or none and call .to(device) / enable_model_cpu_offload()")


def _refuse_the_rest(kwargs: dict, cls_name: str) -> None:
    components = {"unet", "vae", "vocoder", "text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2",
                  "projection_model", "feature_extractor"}
    for key, value in kwargs.items():
        if key in _NO_EFFECT:
            continue
        if key in _REFUSED:
            if value is None or value is False:
                continue
            raise InvalidArgument(f"{key}={_shown(value)} is not supported: {_REFUSED[key]}")
        if key in components:
            raise InvalidArgument(f"{key}= is not supported: soundsmith loads every network from the folder "
                                  f"(strictly, with its own implementation); only scheduler= and language_model= "
                                  f"can be passed")
        raise InvalidArgument(f"{cls_name}.from_pretrained() got an unexpected keyword argument {key!r}")


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "…"


@contextlib.contextmanager
def _offline(on: bool):
    """local_files_only=True: resolve from the local cache only, as HF_HUB_OFFLINE does."""
    if not on:
        yield
        return
    from huggingface_hub import constants

    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before


def _require_safetensors(folder: Path, index: dict) -> None:
    for key, entry in index.items():
        part = folder / key
        if key.startswith("_") or not isinstance(entry, list) or not part.is_dir():
            continue
        pickles = [p for p in part.iterdir() if p.suffix in (".bin", ".ckpt", ".pt", ".pth")]
        if pickles and not any(p.name.endswith(".safetensors") for p in part.iterdir()):
            raise CheckpointError(f"{part} has no safetensors weights ({pickles[0].name} only) and "
                                  f"use_safetensors=True was given")


def _gpt2(model, target, pipe):
    """language_model=: a transformers GPT-2 (GPT2Model, or GPT2LMHeadModel whose body is used: only its hidden
    states condition the UNet), moved to the pipeline's device and dtype."""
    if target is not AudioLDM2Pipeline:
        raise InvalidArgument(f"language_model= applies to AudioLDM2Pipeline; this folder holds a "
                              f"{target._diffusers_class}")
    name = type(model).__name__
    if name == "GPT2LMHeadModel":
        model = model.transformer
    elif name != "GPT2Model":
        raise InvalidArgument(f"language_model={name} is not allowed: give a transformers GPT2Model or "
                              f"GPT2LMHeadModel")
    ours = pipe.language_model.config
    if (model.config.n_embd, model.config.n_layer) != (ours.n_embd, ours.n_layer):
        raise InvalidArgument(f"language_model= has n_embd {model.config.n_embd} and {model.config.n_layer} layers;"
                              f" this checkpoint's GPT-2 has {ours.n_embd} and {ours.n_layer}")
    if getattr(ours, "max_new_tokens", None) is not None and getattr(model.config, "max_new_tokens", None) is None:
        model.config.max_new_tokens = ours.max_new_tokens
    return model.to(pipe.device, pipe.dtype).eval().requires_grad_(False)


__all__ = ["AudioLDM2Pipeline", "AudioLDMPipeline", "DIFFUSERS_CLASSES", "DiffusionPipeline", "MusicLDMPipeline"]
