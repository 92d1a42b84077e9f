"""The UNet compiled ahead of time and kept on disk: torch.export + AOTInductor, with inductor's freezing on the CPU.

torch.compile's own on-disk cache cannot hold a frozen CPU graph (its prepacked oneDNN weights do not pickle), so
every new process compiles again — many minutes on a 2-core CPU. An AOTInductor package holds the compiled code
and the frozen weights; a later process loads it in well under a second. `CompiledUNet` compiles one package per
input signature (shapes and dtypes of the UNet's inputs, which of its optional inputs are given) on first use and
stores it under `cache_dir` (default ~/.cache/soundsmith/aot), named by a hash of the signature, the weights, the
model code and the torch version, so a changed checkpoint or soundsmith never loads a stale package.

For warm processes (the service, batch workers) that make many sounds at one length: `compile_ahead_of_time`.
"""

import hashlib
import os
import tempfile
from pathlib import Path

import torch
from torch import nn

MODEL_CODE = ("unet.py", "attention.py", "layers.py")  # the files whose code a package compiles


def compile_ahead_of_time(pipe, cache_dir=None) -> None:
    """Replace the pipeline's UNet by CompiledUNet: compiled by AOTInductor (freezing on the CPU) once per input
    signature and kept on disk, so that a later process loads it in under a second instead of compiling for minutes
    (torch.compile's own cache cannot hold a frozen CPU graph). For warm processes that make many sounds at one length
    (the service, batch workers); the first sound at a new length compiles. The weights must not change afterwards
    (no LoRA); int8 pipelines are not supported."""
    from .quantize import Int8Linear

    if any(isinstance(m, Int8Linear) for m in pipe.unet.modules()):
        from .errors import InvalidArgument

        raise InvalidArgument("ahead-of-time compilation of an int8 pipeline is not supported: use float32 or bfloat16")
    cpu = next(pipe.unet.parameters()).device.type == "cpu"
    pipe.unet = CompiledUNet(pipe.unet, weights_key(pipe.folder, pipe.dtype), cache_dir, freezing=cpu)


class SignatureUNet(nn.Module):
    """Calls like the UNet it wraps (`forward(sample, timestep, **inputs)`), through a runner built once per input
    signature (shapes, dtypes and devices of the inputs, which optional inputs are given) by `_runner`. Attributes other
    than its own (config, embed, layouts …) are the wrapped UNet's. The base of CompiledUNet and
    openvino_unet.OpenVINOUNet."""

    def __init__(self, unet: nn.Module, cache_dir: Path | None = None):
        super().__init__()
        self.module = unet
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self._runners: dict = {}

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("module"), name)

    def forward(self, sample: torch.Tensor, timestep, **inputs) -> torch.Tensor:
        t = torch.as_tensor(timestep, device=sample.device)
        inputs = pad_masked_states(inputs)
        names = sorted(k for k, v in inputs.items() if v is not None)
        tensors = [inputs[k] for k in names]
        signature = (_spec(sample), _spec(t), tuple((k, _spec(v)) for k, v in zip(names, tensors)))
        runner = self._runners.get(signature)
        if runner is None:
            runner = self._runners[signature] = self._runner(signature, sample, t, names, tensors)
        return runner(sample, t, *tensors)

    def _runner(self, signature, sample, t, names, tensors):
        raise NotImplementedError

    def cache_name(self, signature, key, suffix: str) -> Path:
        """`<cache_dir>/unet-<hash><suffix>`: a hash of the signature, `key` (what else the file depends on), the
        model code and the torch version, so a changed checkpoint or soundsmith never reads a stale file."""
        code = b"".join((Path(__file__).parent / "models" / f).read_bytes() for f in MODEL_CODE)
        digest = hashlib.sha256(repr((signature, key, torch.__version__)).encode() + code).hexdigest()[:24]
        return self.cache_dir / f"unet-{digest}{suffix}"


MASKED_STATES = (("encoder_hidden_states", "encoder_attention_mask"),
                 ("encoder_hidden_states_1", "encoder_attention_mask_1"))
STATES_BUCKET = 32  # masked text states are padded to a multiple of this many tokens


def pad_masked_states(inputs: dict) -> dict:
    """Text states that come with a keep-mask (AudioLDM 2's Flan-T5 states), padded with masked zeros to a multiple of
    STATES_BUCKET tokens, so prompts of different lengths share one compiled or converted UNet instead of one each. The
    UNet's attention gives a masked key a bias of −10000, whose softmax weight is exactly 0 in float32: the output does
    not change."""
    inputs = dict(inputs)
    for states_name, mask_name in MASKED_STATES:
        states, mask = inputs.get(states_name), inputs.get(mask_name)
        if states is None or mask is None or states.shape[1] % STATES_BUCKET == 0:
            continue
        extra = STATES_BUCKET - states.shape[1] % STATES_BUCKET
        inputs[states_name] = torch.nn.functional.pad(states, (0, 0, 0, extra))
        inputs[mask_name] = torch.nn.functional.pad(mask, (0, extra))
    return inputs


class CompiledUNet(SignatureUNet):
    """The UNet through an AOTInductor package per input signature, compiled on first use and kept on disk."""

    def __init__(self, unet: nn.Module, weights_key: str, cache_dir: Path | None = None, freezing: bool = True):
        super().__init__(unet, cache_dir)
        self.weights_key = weights_key
        self.freezing = freezing

    def package_path(self, signature) -> Path:
        return self.cache_name(signature, (self.weights_key, self.freezing), ".pt2")

    def _runner(self, signature, sample, t, names, tensors):
        path = self.package_path(signature)
        if not path.exists():
            compile_package(self.module, (sample, t, *tensors), names, path, self.freezing)
        return torch._inductor.aoti_load_package(str(path))


class _Positional(nn.Module):
    """The UNet with its optional inputs as positional arguments (what torch.export traces)."""

    def __init__(self, unet: nn.Module, names: list[str]):
        super().__init__()
        self.unet, self.names = unet, names

    def forward(self, sample, timestep, *tensors):
        return self.unet(sample, timestep, **dict(zip(self.names, tensors)))


def compile_package(unet: nn.Module, example: tuple, names: list[str], path: Path, freezing: bool) -> Path:
    """Export the UNet at the example inputs' shapes and compile it to an AOTInductor package at `path` (written to a
    temporary name first, then renamed: a package is either whole or absent)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        program = torch.export.export(_Positional(unet, names).eval(), example)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".unet-", suffix=".pt2")
        os.close(fd)
        try:
            torch._inductor.aoti_compile_and_package(program, package_path=tmp,
                                                     inductor_configs={"freezing": freezing})
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    return path


def default_cache_dir() -> Path:
    return Path(os.environ.get("SOUNDSMITH_CACHE") or Path.home() / ".cache" / "soundsmith") / "aot"


def weights_key(folder: Path, dtype: torch.dtype) -> str:
    """Identifies a checkpoint's UNet weights without reading them: the weight files' paths, sizes and mtimes."""
    files = sorted((Path(folder) / "unet").glob("*.safetensors")) + sorted((Path(folder) / "unet").glob("*.bin"))
    stats = [(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    return repr((stats, str(dtype)))


def _spec(x: torch.Tensor) -> tuple:
    return tuple(x.shape), str(x.dtype), x.device.type
