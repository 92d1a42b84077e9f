"""One pipeline class per family; `load()` picks it from the folder's model_index.json."""

import torch

from .. import checkpoints, openvino_unet, quantize, runtime
from ..errors import InvalidArgument
from ..progress import stage
from .audioldm import AudioLDM, MusicLDM
from .audioldm2 import AudioLDM2
from ..engine import AudioOutput
from .base import Pipeline

PIPELINES: dict[str, type[Pipeline]] = {cls.pipeline_class: cls for cls in (AudioLDM, AudioLDM2, MusicLDM)}

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}


def resolve_device(device) -> torch.device:
    """None / "auto" → cuda, else mps, else cpu."""
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise InvalidArgument(f"device={device!r} is not a device (allowed: auto, cpu, cuda, cuda:N, mps)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidArgument(f"device={str(device)!r} is not available here: torch sees no CUDA GPU (use cpu)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise InvalidArgument(f"device={str(device)!r} is not available here (use cpu)")
    if device.type not in ("cpu", "cuda", "mps"):
        raise InvalidArgument(f"device={str(device)!r} is not supported (allowed: auto, cpu, cuda, cuda:N, mps)")
    return device


QUANTIZED = ("int8", torch.int8)  # int8 mode: float32 pipeline, the UNet's linear layers int8 (quantize.py)


def resolve_dtype(dtype) -> torch.dtype:
    """The dtype the networks are loaded in; int8 mode loads float32 (its UNet is quantised after loading)."""
    if dtype is None or is_int8(dtype):
        return torch.float32
    if isinstance(dtype, torch.dtype) and dtype in DTYPES.values():
        return dtype
    if isinstance(dtype, str) and dtype in DTYPES:
        return DTYPES[dtype]
    raise InvalidArgument(f"dtype={dtype!r} is not allowed (allowed: float32, bfloat16, float16, int8)")


def is_int8(dtype) -> bool:
    return any(dtype is q or (isinstance(dtype, str) and dtype == q) for q in QUANTIZED)


def load(name_or_path, device=None, dtype=None, compile: bool = False, offload: bool = False,
         progress: bool = True, backend: str = "torch") -> Pipeline:
    """A model name (`audioldm-s-full-v2`, `audioldm2`, `musicldm`, …), hub id or local diffusers folder → its
    pipeline, on `device` (default: cuda, mps or cpu) in `dtype` (default float32; bfloat16 keeps the text stage and
    the VAE decoder's latent-resolution blocks in float32, pipelines.base.network_dtype; "int8", CPU only, is float32 with
    the UNet's linear layers int8, see soundsmith.quantize). compile=True applies torch.compile to the UNet, VAE
    decoder and vocoder (the first call compiles: minutes on a CPU). offload=True
    keeps the networks in CPU memory and moves each to the GPU only for its stage (Pipeline.enable_model_cpu_offload).
    progress: the "loading" line on stderr with its time (progress.py); False for none. backend: what runs the UNet
    on the CPU, "torch" (default), "openvino" or "fastest" (whichever measures faster here; soundsmith.openvino_unet).
    """
    int8, device, dtype = is_int8(dtype), resolve_device(device), resolve_dtype(dtype)
    if int8 and (device.type != "cpu" or not quantize.available()):
        raise InvalidArgument(f"dtype='int8' runs on the cpu with torch's quantized engine (device {device.type}, "
                              f"engines {torch.backends.quantized.supported_engines}): use float32 or bfloat16")
    openvino_unet.check_backend(backend, device, compile, int8)
    if offload and device.type == "cpu":
        raise InvalidArgument("offload=True needs a cuda or mps device: on cpu the networks already live in CPU memory")
    folder = checkpoints.resolve(name_or_path)
    index = checkpoints.read_index(folder, tuple(PIPELINES))
    cls = PIPELINES[index["_class_name"]]
    with stage(f"loading {name_or_path}", progress) as line:
        pipe = open_folder(cls, folder, index, str(name_or_path), device, dtype)
        if int8:
            quantize.quantize_unet(pipe.unet)
        if compile:
            runtime.compile_pipeline(pipe)
        openvino_unet.use_backend(pipe, backend)
        if offload:
            pipe.enable_model_cpu_offload()
        precision = ", int8" if int8 else "" if dtype == torch.float32 else f", {str(dtype).removeprefix('torch.')}"
        line.detail = f"({cls.__name__} on {device}{precision})"
    return pipe


def open_folder(cls: type[Pipeline], folder, index: dict, name: str, device: torch.device,
                dtype: torch.dtype) -> Pipeline:
    """A resolved diffusers-layout folder as a `cls` pipeline (load()'s work once the folder is found, shared with the
    diffusers-named classes' from_pretrained): built on `device` in `dtype`, in the layouts that run fastest."""
    runtime.keep_freed_memory()
    pipe = cls.from_folder(folder, index, name=name, device=device, dtype=dtype)
    runtime.use_fast_layouts(pipe)
    if device.type == "cpu" and dtype == torch.float32:
        runtime.linear_path()  # measured now, not inside the first sound (nor inside torch.compile's tracing)
    return pipe


__all__ = ["AudioLDM", "AudioLDM2", "MusicLDM", "AudioOutput", "PIPELINES", "Pipeline", "load", "resolve_device", "resolve_dtype"]
