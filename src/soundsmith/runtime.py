"""How soundsmith runs fast on the machine it finds: allocator settings and memory layouts.

Measured on the 2-core AVX-512 CPU this project is built on (bench/RESULTS.md has the numbers):
- glibc returns large freed blocks to the kernel and faults them back in on the next call; for the VAE decoder,
  whose full-resolution activations are tens of MB, that is ~2 s of system time per minute of audio. Keeping
  freed memory (`keep_freed_memory`) removes it. Peak memory is unchanged; resident memory stays at the peak.
- oneDNN's convolutions run faster on channels-last activations for the VAE and for the UNet's two finest
  levels (UNet step, AudioLDM-S, 10.24 s: float32 0.92 → 0.86 s, bfloat16 0.36 → 0.29 s); its deep levels, 2–8
  pixels wide, run slower channels-last and stay channels-first.
"""

import ctypes
import ctypes.util
import os
import sys

import torch

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX = -1, -2, -4
_done = False


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


def compile_pipeline(pipe, mode: str | None = None) -> None:
    """torch.compile the UNet, the VAE decoder and the vocoder (opt-in: the first call then compiles, about a
    minute per network on a 2-core CPU; later calls at the same shapes are faster). Other shapes recompile."""
    pipe.unet = torch.compile(pipe.unet, mode=mode, dynamic=False)
    pipe.vae.decoder = torch.compile(pipe.vae.decoder, mode=mode, dynamic=False)
    pipe.vocoder = torch.compile(pipe.vocoder, mode=mode, dynamic=False)
