"""How soundsmith runs fast on the machine it finds: allocator settings and memory layouts.

Measured on the 2-core AVX-512 CPU this project is built on (bench/RESULTS.md has the numbers):
- glibc returns large freed blocks to the kernel and faults them back in on the next call; for the VAE decoder,
  whose full-resolution activations are tens of MB, that is ~2 s of system time per minute of audio. Keeping
  freed memory (`keep_freed_memory`) removes it. Peak memory is unchanged; resident memory stays at the peak.
- oneDNN's convolutions run faster on channels-last activations for the VAE and for the UNet's two finest
  levels (UNet step, AudioLDM-S, 10.24 s: float32 0.92 → 0.86 s, bfloat16 0.36 → 0.29 s); its deep levels, 2–8
  pixels wide, run slower channels-last and stay channels-first.
- float32 matrix products go to MKL's sgemm, which on AMD EPYC runs at half of oneDNN's rate on the same shapes
  (2 cores, AVX-512: 95–180 vs 170–210 GFLOP/s on the UNet's token-wise products). `linear_path` measures both
  once per process and sends the models' float32 CPU linear layers through oneDNN where it is faster.
"""

import ctypes
import ctypes.util
import os
import sys

import torch

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX = -1, -2, -4
_done = False
LINEAR_PATHS = ("auto", "onednn", "blas")
_linear_path: str | None = None


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse instead of unmapping it (once per process; Linux/glibc
    only; SOUNDSMITH_KEEP_MEMORY=0 turns it off). Returns whether the setting is in effect."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux") or os.environ.get("SOUNDSMITH_KEEP_MEMORY", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = mallopt(_M_MMAP_MAX, 0)  # every block from the heap: blocks above the largest mmap threshold too
    ok &= mallopt(_M_TRIM_THRESHOLD, 2 ** 31 - 1)
    ok &= mallopt(_M_TOP_PAD, 64 * 1024 * 1024)
    _done = bool(ok)
    return _done


def use_fast_layouts(pipe) -> None:
    """Put the pipeline's convolutional networks in the memory layout that runs fastest: the VAE channels-last,
    the UNet channels-last at its two finest resolution levels and channels-first below (its deep levels, 2–8
    pixels wide, run slower channels-last)."""
    pipe.vae.to(memory_format=torch.channels_last)
    levels = len(pipe.unet.layouts)
    pipe.unet.layouts = [torch.channels_last if i < 2 else torch.contiguous_format for i in range(levels)]


def compile_pipeline(pipe, mode: str | None = None, freezing: bool | None = None) -> None:
    """torch.compile the UNet, the VAE decoder and the vocoder (opt-in: the first call then compiles, minutes per
    network on a 2-core CPU; later calls at the same shapes are faster). Other shapes recompile.

    freezing (default: on for the CPU) turns on inductor's freezing: the weights become constants, so oneDNN
    prepacks them and fuses convolutions with their pointwise neighbours (UNet step, AudioLDM-S float32, compiled with
    freezing vs eager: 1.2× here in development; bench/compiled.py measures it, not yet run into bench/RESULTS.md).
    The networks must not be trained or have their weights changed afterwards. Compiled code is kept on disk
    (TORCHINDUCTOR_CACHE_DIR, default ~/.cache/soundsmith/inductor), so a later process at the same shapes loads it
    instead of compiling (it still traces the Python: seconds)."""
    if freezing is None:
        freezing = next(pipe.unet.parameters()).device.type == "cpu"
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(_cache_dir() / "inductor"))
    if freezing:
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True
    pipe.unet = torch.compile(pipe.unet, mode=mode, dynamic=False)
    pipe.vae.decoder = torch.compile(pipe.vae.decoder, mode=mode, dynamic=False)
    pipe.vocoder = torch.compile(pipe.vocoder, mode=mode, dynamic=False)


def _cache_dir():
    from pathlib import Path

    return Path(os.environ.get("SOUNDSMITH_CACHE") or Path.home() / ".cache" / "soundsmith")


def linear_path() -> str:
    """"onednn" or "blas": how float32 CPU linear layers multiply on this machine, decided once per process.

    SOUNDSMITH_CPU_LINEAR=onednn|blas forces a path; "auto" (the default) times a (2048, 512) × (512, 1024)
    product both ways, interleaved, best of 4, and takes oneDNN only when it is at least 15 % faster (MKL is the
    better choice on Intel CPUs, so a close call stays with it); the verdict is remembered per machine
    (machine.remembered), so only a machine's first process measures. Both paths agree to float32 rounding."""
    global _linear_path
    if _linear_path is None:
        choice = os.environ.get("SOUNDSMITH_CPU_LINEAR", "auto")
        if choice not in LINEAR_PATHS:
            from .errors import InvalidArgument

            raise InvalidArgument(f"SOUNDSMITH_CPU_LINEAR={choice!r}: must be one of {', '.join(LINEAR_PATHS)}")
        if choice == "auto":  # measured once per machine, then read from the cache (machine.py)
            from .machine import remembered

            choice = remembered("linear_path", _measure_linear_paths)
        _linear_path = choice
    return _linear_path


def set_linear_path(path: str | None) -> None:
    """Force "onednn" or "blas" for the rest of the process (None: decide again on the next call)."""
    global _linear_path
    if path not in (None, "onednn", "blas"):
        raise ValueError(f"linear path {path!r}: must be 'onednn', 'blas' or None")
    _linear_path = path


@torch.no_grad()
def _measure_linear_paths() -> str:
    import time

    import torch.nn.functional as F

    if not torch.backends.mkldnn.is_available():
        return "blas"
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2048, 512, generator=generator)
    w, b = torch.randn(1024, 512, generator=generator), torch.randn(1024, generator=generator)
    paths = {"blas": lambda: F.linear(x, w, b), "onednn": lambda: onednn_linear(x, w, b)}
    best = {name: float("inf") for name in paths}
    for _ in range(4):
        for name, fn in paths.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return "onednn" if best["onednn"] < 0.85 * best["blas"] else "blas"


def onednn_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """F.linear through oneDNN: the rows of x (..., K) become the pixels of a (1, K, rows, 1) channels-last image
    and weight (N, K) a 1×1 convolution, which oneDNN runs as one blocked GEMM. → (..., N), no copies when x is
    contiguous."""
    rows = x.reshape(-1, x.shape[-1])
    image = rows.view(1, rows.shape[0], 1, rows.shape[1]).permute(0, 3, 1, 2)
    out = torch.nn.functional.conv2d(image, weight.view(*weight.shape, 1, 1), bias)
    return out.permute(0, 2, 3, 1).reshape(*x.shape[:-1], weight.shape[0])


# ------------------------------------------------------------------------------ forms chosen by measurement

FORMS = ("auto", "direct", "measure")
_fastest: dict[str, str] = {}
_loaded_disk = False


def fastest(key: str, candidates) -> str:
    """The name of the fastest of the forms `candidates()` returns ({name: callable}, each doing the same work, one
    named "direct": the reference form), measured once per machine and `key` and remembered in
    `forms_file()`: a warm-up call of each, then 5 interleaved rounds, the median of each; another form wins only
    when it is 10 % faster than "direct" (a close call keeps the reference).
    SOUNDSMITH_FORMS: `auto` (default) measures what the file does not hold; `direct` keeps the reference form
    everywhere; `measure` measures again once per process (and updates the file)."""
    choice = os.environ.get("SOUNDSMITH_FORMS", "auto")
    if choice not in FORMS:
        from .errors import InvalidArgument

        raise InvalidArgument(f"SOUNDSMITH_FORMS={choice!r}: must be one of {', '.join(FORMS)}")
    if choice == "direct":
        return "direct"
    if key not in _fastest:
        stored = _read_forms() if choice == "auto" else {}
        if key in stored:
            _fastest[key] = stored[key]
        else:
            _fastest[key] = _measure(candidates())
            _write_form(key, _fastest[key])
    return _fastest[key]


def forget_forms() -> None:
    """Forget the choices made in this process (the file keeps them)."""
    _fastest.clear()


def chosen_forms() -> dict[str, str]:
    """{key: form} of every choice made in this process so far."""
    return dict(_fastest)


def forms_file():
    """Where measured choices are kept: $SOUNDSMITH_CACHE (default ~/.cache/soundsmith)/forms.json, one entry per
    machine (CPU model, torch version, threads)."""
    return _cache_dir() / "forms.json"


def _machine() -> str:
    cpu = "unknown cpu"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        import platform

        cpu = platform.processor() or cpu
    return f"{cpu} | torch {torch.__version__} | {torch.get_num_threads()} threads"


def _read_forms() -> dict:
    import json

    try:
        return json.loads(forms_file().read_text()).get(_machine(), {})
    except (OSError, ValueError, AttributeError):
        return {}


def _write_form(key: str, form: str) -> None:
    """Add one choice to the file, atomically (a failure to write only costs a measurement next time)."""
    import json
    import tempfile

    path = forms_file()
    try:
        try:
            table = json.loads(path.read_text())
        except (OSError, ValueError):
            table = {}
        if not isinstance(table, dict):
            table = {}
        table.setdefault(_machine(), {})[key] = form
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=".forms-", suffix=".tmp", delete=False) as f:
            json.dump(table, f, indent=1, sort_keys=True)
        os.replace(f.name, path)
    except OSError:
        pass


@torch.no_grad()
def _measure(forms: dict, rounds: int = 5) -> str:
    import statistics
    import time

    times = {name: [] for name in forms}
    for fn in forms.values():
        fn()  # warm-up: first-call allocations and oneDNN primitive creation
    for _ in range(rounds):
        for name, fn in forms.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    best = min(medians, key=medians.get)
    return best if medians[best] < 0.9 * medians["direct"] else "direct"
