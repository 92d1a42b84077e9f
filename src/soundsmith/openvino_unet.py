"""The UNet through OpenVINO's CPU runtime: an optional backend for the one stage where OpenVINO measured faster.

OpenVINO is what CPU users of this family pick instead of torch (the openvino_notebooks AudioLDM 2 notebook).
bench/bench.py --openvino ran it beside us: soundsmith's pipeline is ahead end to end, but OpenVINO's UNet step was
10 % faster on AudioLDM 2 (AMD EPYC without AMX, 2 cores, float32). So the UNet alone may run through it
(`pip install 'soundsmith[openvino]'`):

    soundsmith.load(..., backend="openvino")   the UNet always through OpenVINO
    soundsmith.load(..., backend="fastest")    whichever of torch and OpenVINO runs the UNet faster at the first
                                               call's shapes, timed once per machine, checkpoint and shape and
                                               remembered (machine.json; torch unless OpenVINO is ≥ 3 % faster)

`OpenVINOUNet` exports the UNet with torch.export at the call's input signature (in float32; soundsmith's eager fast
paths are off inside tracing, so the graph holds plain convolutions, products and SDPA), converts it with
`openvino.convert_model`, keeps the converted model on disk (<cache>/openvino/unet-<hash>.xml and .bin, float32
weights: OpenVINO's default fp16 compression would put a 1e-3 error on the output) and compiles it for the CPU in the
pipeline's precision (INFERENCE_PRECISION_HINT f32, or bf16 for a bfloat16 pipeline), with OpenVINO's own cache of
compiled models beside it. The first sound at a new length converts (~45 s for AudioLDM 2 on 2 cores; AudioLDM 2's
text states are padded to 32-token buckets, aot.pad_masked_states, so a new prompt length rarely adds one); a later
process reads the file. The output equals torch's to ~4e-6 relative in float32. The weights must not change
after the first sound (no LoRA loaded afterwards); int8 pipelines and compiled UNets are not supported.
"""

import copy
import hashlib
import importlib.util
import math
import os
import tempfile
import time
import warnings
from pathlib import Path

import torch
from torch import nn

from .aot import SignatureUNet, _Positional, default_cache_dir
from .errors import InvalidArgument

BACKENDS = ("torch", "openvino", "fastest")
MARGIN = 0.97  # "fastest" takes OpenVINO only when its UNet call takes at most 97 % of torch's
MEASURE_S = 1.0  # seconds of UNet calls each side gets when "fastest" measures


def available() -> bool:
    return importlib.util.find_spec("openvino") is not None


def check_backend(backend: str, device: torch.device, compiled: bool = False, int8: bool = False) -> None:
    """Raise InvalidArgument unless `backend` can run a UNet on `device` (compiled: torch.compile'd or AOT; int8:
    quantised linear layers)."""
    if backend not in BACKENDS:
        raise InvalidArgument(f"backend={backend!r} is not allowed (allowed: {', '.join(BACKENDS)})")
    if backend == "torch":
        return
    if not available():
        raise InvalidArgument(f"backend={backend!r} needs OpenVINO: pip install 'soundsmith[openvino]'")
    if device.type != "cpu":
        raise InvalidArgument(f"backend={backend!r} runs the UNet on the cpu (the pipeline is on {device.type}): "
                              f"use backend='torch'")
    if compiled:
        raise InvalidArgument(f"backend={backend!r} converts the eager UNet: it cannot be combined with compile")
    if int8:
        raise InvalidArgument(f"backend={backend!r} is not supported for int8 pipelines: use float32 or bfloat16")


def use_backend(pipe, backend: str, cache_dir: Path | None = None) -> None:
    """Run the pipeline's UNet through `backend` (BACKENDS); "torch" leaves it as it is."""
    from .quantize import Int8Linear

    compiled = isinstance(pipe.unet, SignatureUNet) or hasattr(pipe.unet, "_orig_mod")
    int8 = any(isinstance(m, Int8Linear) for m in pipe.unet.modules())
    check_backend(backend, pipe.device, compiled, int8)
    if backend != "torch":
        pipe.unet = OpenVINOUNet(pipe.unet, precision="bf16" if pipe.dtype == torch.bfloat16 else "f32",
                                 choose=backend == "fastest", cache_dir=cache_dir)


class OpenVINOUNet(SignatureUNet):
    """The UNet through an OpenVINO model per input signature (or, with choose=True, through whichever of torch and
    OpenVINO measured faster for that signature on this machine)."""

    def __init__(self, unet: nn.Module, precision: str = "f32", choose: bool = False, cache_dir: Path | None = None):
        super().__init__(unet, Path(cache_dir) if cache_dir else default_cache_dir().parent / "openvino")
        self.precision, self.choose = precision, choose
        self.chosen: dict = {}  # signature → "torch" or "openvino", for those chosen by measurement
        self._compiled: dict = {}  # signature → OpenVINO runner

    def _runner(self, signature, sample, t, names, tensors):
        def eager(sample, t, *tensors):
            return self.module(sample, t, **dict(zip(names, tensors)))

        if self.choose:
            from .machine import remembered

            key = hashlib.sha256(repr((signature, weights_fingerprint(self.module))).encode()).hexdigest()[:16]
            verdict = remembered(f"unet backend {key}",
                                 lambda: self._measure(eager, self._openvino(signature, sample, t, names, tensors),
                                                       sample, t, tensors))
            self.chosen[signature] = verdict
            if verdict == "torch":
                return eager
        return self._openvino(signature, sample, t, names, tensors)

    def _openvino(self, signature, sample, t, names, tensors):
        """The compiled OpenVINO model for this signature as a runner (converted or read from disk once)."""
        if signature not in self._compiled:
            self._compiled[signature] = self._compile(signature, sample, t, names, tensors)
        return self._compiled[signature]

    def _compile(self, signature, sample, t, names, tensors):
        import openvino as ov

        path = self.model_path(signature)
        if not path.exists():
            convert(self.module, [_float32(x) for x in (sample, t, *tensors)], names, path)
        core = ov.Core()
        config = {"INFERENCE_PRECISION_HINT": self.precision, "PERFORMANCE_HINT": "LATENCY",
                  "INFERENCE_NUM_THREADS": torch.get_num_threads(), "CACHE_DIR": str(self.cache_dir / "compiled")}
        request = core.compile_model(core.read_model(str(path)), "CPU", config).create_infer_request()

        def run(sample, t, *tensors):
            arrays = [_float32(x).detach().contiguous().numpy() for x in (sample, t, *tensors)]
            request.infer(arrays, share_inputs=True)
            return torch.from_numpy(request.get_output_tensor(0).data.copy()).to(sample.dtype)

        return run

    def model_path(self, signature) -> Path:
        import openvino as ov

        return self.cache_name(signature, (weights_fingerprint(self.module), ov.__version__), ".xml")

    @staticmethod
    def _measure(eager, openvino, sample, t, tensors) -> str:
        """Time the UNet call both ways on the call's own inputs, in turns: one warm-up each, then enough turns for
        about MEASURE_S seconds of each (2 to 20; a tiny UNet's call is too short for two to decide), best of each →
        "openvino" when it takes at most MARGIN of torch's time, else "torch"."""
        calls = (("torch", eager), ("openvino", openvino))
        with torch.no_grad():
            first = {name: _timed(call, sample, t, tensors) for name, call in calls}
            turns = min(20, max(2, math.ceil(MEASURE_S / max(first.values()))))
            best = dict.fromkeys(first, float("inf"))
            for _ in range(turns):
                for name, call in calls:
                    best[name] = min(best[name], _timed(call, sample, t, tensors))
        return "openvino" if best["openvino"] <= MARGIN * best["torch"] else "torch"


def convert(unet: nn.Module, example: list, names: list[str], path: Path) -> Path:
    """Export the UNet (a float32 copy when it holds another dtype) at the example inputs' shapes, convert it with
    OpenVINO and save it at `path` (.xml, with its .bin beside it; written under temporary names, the .xml last, so
    a model is either whole or absent)."""
    import openvino as ov

    path.parent.mkdir(parents=True, exist_ok=True)
    module = unet if all(p.dtype == torch.float32 for p in unet.parameters()) else copy.deepcopy(unet).float()
    with torch.no_grad(), warnings.catch_warnings(), tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        warnings.simplefilter("ignore")  # the converter's deprecation chatter
        program = torch.export.export(_Positional(module, names).eval(), tuple(example))
        staged = Path(tmp) / "unet.xml"
        ov.save_model(ov.convert_model(program), str(staged), compress_to_fp16=False)
        os.replace(staged.with_suffix(".bin"), path.with_suffix(".bin"))
        os.replace(staged, path)
    return path


def weights_fingerprint(module: nn.Module) -> str:
    """A hash of every parameter's and buffer's name, shape, dtype and float64 sums (plain and absolute): changes
    when the weights change (another checkpoint, a merged LoRA), without hashing gigabytes."""
    digest = hashlib.sha256()
    with torch.no_grad():
        for name, x in [*module.named_parameters(), *module.named_buffers()]:
            sums = (torch.sum(x, dtype=torch.float64).item(), torch.sum(x.abs(), dtype=torch.float64).item()) \
                if x.is_floating_point() else (int(x.sum()),)
            digest.update(repr((name, tuple(x.shape), str(x.dtype), sums)).encode())
    return digest.hexdigest()


def _timed(call, sample, t, tensors) -> float:
    started = time.perf_counter()
    call(sample, t, *tensors)
    return time.perf_counter() - started


def _float32(x: torch.Tensor) -> torch.Tensor:
    return x.float() if x.is_floating_point() else x
