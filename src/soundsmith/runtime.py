"""How soundsmith runs fast on the machine it finds: allocator settings and memory layouts.

Measured on the 2-core AVX-512 CPU this project is built on (bench/RESULTS.md has the numbers):
- glibc returns large freed blocks to the kernel and faults them back in on the next call; for the VAE decoder,
  whose full-resolution activations are tens of MB, that is ~2 s of system time per minute of audio. Keeping
  freed memory (`keep_freed_memory`) removes it. Peak memory is unchanged; resident memory stays at the peak.
- oneDNN's convolutions run faster on channels-last activations for the VAE (all dtypes) and for the UNet in
  bfloat16/float16; the float32 UNet, whose deep levels are 2–8 pixels wide, gains nothing, so it stays as is.
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
    """Convert the pipeline's convolutional networks to the memory layout that runs fastest for its dtype."""
    pipe.vae.to(memory_format=torch.channels_last)
    if pipe.dtype != torch.float32:
        pipe.unet.to(memory_format=torch.channels_last)
